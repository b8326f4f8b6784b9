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
    // Split into chunks so each command compiles only what it uses (`once` never loads the sidecar's
    // metrics, watcher and health server); dist/cli is one self-contained directory.
    entry: { phasekit: 'src/bin.ts' },
    format: ['esm'],
    outDir: 'dist/cli',
    sourcemap: true,
    clean: true,
    target: 'node20',
    platform: 'node',
    noExternal: [/.*/],
    splitting: true,
    banner: {
      // Bundled CommonJS dependencies call require(); give ESM one.
      js: "import { createRequire as __phasekitCreateRequire } from 'node:module'; const require = __phasekitCreateRequire(import.meta.url);",
    },
  },
]);
