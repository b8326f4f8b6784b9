import { writeFile } from 'node:fs/promises';
import { defineConfig } from 'tsup';

export default defineConfig([
  {
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node22',
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
    target: 'node22',
    platform: 'node',
    noExternal: [/.*/],
    splitting: true,
    // Whitespace and comments out, names kept (stack traces and logs stay readable; source maps map the rest):
    // a third of the bytes V8 must scan before the first request.
    esbuildOptions(options) {
      options.minifyWhitespace = true;
      options.minifySyntax = true;
    },
    // Marks the chunks as ES modules wherever the directory is copied (the image's /app has no package.json of
    // its own), so Node loads them directly instead of first trying them as CommonJS.
    onSuccess: () => writeFile('dist/cli/package.json', '{ "type": "module" }\n'),
    banner: {
      // Bundled CommonJS dependencies call require(); give ESM one.
      js: "import { createRequire as __phasekitCreateRequire } from 'node:module'; const require = __phasekitCreateRequire(import.meta.url);",
    },
  },
]);
