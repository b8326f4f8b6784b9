// Crypto ceiling (issue item 2), on one core, in one process. Prints one JSON line.
// N ciphertexts in the ph:v1 format are made once with the SDK's own encryptAsymmetric. Then, alternating in
// rounds, each contender decrypts all N:
//   raw-native: sodium-native crypto_kx_server_session_keys + crypto_aead_xchacha20poly1305_ietf_decrypt per
//               ciphertext on pre-parsed buffers (no string parsing at all: the ceiling)
//   raw-wasm:   the same two operations through libsodium-wrappers, also on pre-parsed buffers
//   sdk:        the SDK's decryptAsymmetric (string in, string out: prefix check, hex + base64 decode, kx, open, UTF-8)
//               with the backend getSecrets uses (sodium-native)
//   sdk-wasm:   the same SDK function with the libsodium-wrappers backend
import { createRequire } from 'node:module';
import { loadSdkCrypto } from './lib/sdk-internal.mjs';

const N = Number(process.argv[2] ?? 3000);
const ROUNDS = Number(process.argv[3] ?? 7);
const require = createRequire(import.meta.url);
const sodium = require('sodium-native');
const sdk = await loadSdkCrypto();
const wrappersRequire = createRequire(new URL('../packages/sdk/package.json', import.meta.url));
const wrappers = wrappersRequire('libsodium-wrappers');
await wrappers.ready;

await sdk.cryptoReady();
await sdk.useCryptoBackend('native');
const seed = Buffer.alloc(32);
sodium.randombytes_buf(seed);
const own = { publicKey: Buffer.alloc(32), privateKey: Buffer.alloc(32) };
sodium.crypto_kx_seed_keypair(own.publicKey, own.privateKey, seed);

const plains = Array.from(
  { length: N },
  (_, i) => `value-${i}-${'x'.repeat(24)}-${(i * 2654435761) % 1000003}`,
);
const cts = plains.map((p) => sdk.encryptAsymmetric(p, own.publicKey));
const parsed = cts.map((c) => {
  const [, , pk, b64] = c.split(':');
  const body = Buffer.from(b64, 'base64');
  return {
    pk: Buffer.from(pk, 'hex'),
    box: body.subarray(0, body.length - 24),
    nonce: body.subarray(body.length - 24),
  };
});
const ownU8 = { publicKey: new Uint8Array(own.publicKey), privateKey: new Uint8Array(own.privateKey) };

function rawNative() {
  const rx = Buffer.alloc(32);
  let bytes = 0;
  for (const p of parsed) {
    sodium.crypto_kx_server_session_keys(rx, null, own.publicKey, own.privateKey, p.pk);
    const out = Buffer.allocUnsafe(p.box.length - 16);
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, p.box, null, p.nonce, rx);
    bytes += out.length;
  }
  return bytes;
}
function rawWasm() {
  let bytes = 0;
  for (const p of parsed) {
    const { sharedRx } = wrappers.crypto_kx_server_session_keys(ownU8.publicKey, ownU8.privateKey, p.pk);
    bytes += wrappers.crypto_aead_xchacha20poly1305_ietf_decrypt(null, p.box, null, p.nonce, sharedRx).length;
  }
  return bytes;
}
function sdkPath() {
  let chars = 0;
  for (let i = 0; i < cts.length; i++) chars += sdk.decryptAsymmetric(cts[i], own, 'bench').length;
  return chars;
}

// Correctness: the SDK gives back exactly the plaintexts, on both backends.
for (let i = 0; i < N; i++)
  if (sdk.decryptAsymmetric(cts[i], own, 'check') !== plains[i]) throw new Error('sdk mismatch');
await sdk.useCryptoBackend('wasm');
for (let i = 0; i < 50; i++)
  if (sdk.decryptAsymmetric(cts[i], own, 'check') !== plains[i]) throw new Error('sdk wasm mismatch');

const contenders = {
  'raw-native': async () => rawNative(),
  'raw-wasm': async () => rawWasm(),
  sdk: async () => {
    await sdk.useCryptoBackend('native');
    return sdkPath();
  },
  'sdk-wasm': async () => {
    await sdk.useCryptoBackend('wasm');
    return sdkPath();
  },
};
const rates = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
// One warm-up round, not recorded.
for (const fn of Object.values(contenders)) await fn();
for (let r = 0; r < ROUNDS; r++) {
  const order = Object.keys(contenders).sort(() => Math.random() - 0.5);
  for (const name of order) {
    const t0 = process.hrtime.bigint();
    await contenders[name]();
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    rates[name].push(N / s);
  }
}
process.stdout.write(`${JSON.stringify({ n: N, rounds: ROUNDS, rates })}\n`);
