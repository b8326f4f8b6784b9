import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node22',
  // crypto.ts loads the optional sodium-native addon through createRequire(import.meta.url).
  shims: true,
});
