// Bundles the SDK's internal crypto module (packages/sdk/src/internal/crypto.ts, the exact code getSecrets runs)
// with esbuild into bench/.tmp/, so the bench can call decryptAsymmetric/encryptAsymmetric directly.
// sodium-native stays external and is loaded at run time (the root's sodium-native, the same version the SDK uses);
// libsodium-wrappers is bundled from the SDK's own node_modules.
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export async function loadSdkCrypto() {
  const requireFromTsup = createRequire(createRequire(join(ROOT, 'package.json')).resolve('tsup'));
  const esbuild = requireFromTsup('esbuild');
  const dir = join(ROOT, 'bench', '.tmp');
  mkdirSync(dir, { recursive: true });
  const outfile = join(dir, `sdk-crypto-${process.pid}.mjs`);
  await esbuild.build({
    entryPoints: [join(ROOT, 'packages/sdk/src/internal/crypto.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    outfile,
    external: ['sodium-native'],
    nodePaths: [join(ROOT, 'packages/sdk/node_modules')],
    logLevel: 'silent',
  });
  try {
    return await import(pathToFileURL(outfile).href);
  } finally {
    const { rmSync } = await import('node:fs');
    rmSync(outfile, { force: true });
  }
}
