import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/cli.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node22',
  // cli.ts starts with its own `#!/usr/bin/env node`, which esbuild keeps and tsup marks executable.
});
