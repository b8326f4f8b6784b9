import { defineConfig } from 'tsup';

export default defineConfig([
  {
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
  },
  {
    // The CLI bundle: everything but node built-ins inlined, so the container image needs no node_modules.
    entry: { phasekit: 'src/bin.ts' },
    format: ['esm'],
    outDir: 'dist/cli',
    sourcemap: true,
    clean: true,
    target: 'node20',
    platform: 'node',
    noExternal: [/.*/],
    splitting: false,
    banner: {
      // Bundled CommonJS dependencies call require(); give ESM one.
      js: "import { createRequire as __phasekitCreateRequire } from 'node:module'; const require = __phasekitCreateRequire(import.meta.url);",
    },
  },
]);
