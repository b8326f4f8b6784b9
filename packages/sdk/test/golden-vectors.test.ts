import { readFileSync } from 'node:fs';
import sodium from 'libsodium-wrappers';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import {
  cryptoBackend,
  cryptoReady,
  useCryptoBackend,
  decryptAsymmetric,
  decryptRaw,
  encryptAsymmetric,
  envKeyPair,
  fromHex,
  keyDigest,
  publicKeyOf,
  reconstructPrivateKey,
  toHex,
} from '../src/internal/crypto.js';
import { parseToken } from '../src/internal/token.js';

const golden = JSON.parse(readFileSync(new URL('./fixtures/golden.json', import.meta.url), 'utf8'));

beforeAll(async () => {
  await cryptoReady();
  await sodium.ready;
});

function principal(tokenString: string, wrappedKeyShare: string) {
  const token = parseToken(tokenString);
  const privateKey = reconstructPrivateKey(wrappedKeyShare, token.shareA, token.wrapKey);
  return { token, keys: { publicKey: token.publicKey, privateKey } };
}

// Every vector runs through both backends: identical results are what makes the fast one safe to use.
describe.each(['native', 'wasm'] as const)(
  'golden vectors (phase-protocol.md 4.8) with the %s backend',
  (backend) => {
    beforeAll(async () => {
      await useCryptoBackend(backend);
      expect(cryptoBackend()).toBe(backend);
    });

    it('reconstructs the node-sdk fixture private key, whose public key is the token public key', () => {
      const { keys } = principal(golden.nodeSdk.token, golden.nodeSdk.wrappedKeyShare);
      expect(toHex(keys.privateKey)).toBe(golden.nodeSdk.privateKey);
      expect(toHex(publicKeyOf(keys.privateKey))).toBe(toHex(keys.publicKey));
    });

    it('unwraps the node-sdk Development seed and salt and derives the environment public key', () => {
      const { keys } = principal(golden.nodeSdk.token, golden.nodeSdk.wrappedKeyShare);
      const dev = golden.nodeSdk.development;
      const seed = decryptAsymmetric(dev.wrappedSeed, keys, 'seed');
      const salt = decryptAsymmetric(dev.wrappedSalt, keys, 'salt');
      expect(seed).toBe(dev.seed);
      expect(salt).toBe(dev.salt);
      expect(toHex(envKeyPair(seed).publicKey)).toBe(dev.identityKey);
      expect(keyDigest('FOO', salt)).toBe(dev.digestFOO);
    });

    it('derives identity_key for every environment of the node-sdk fixture', () => {
      const { keys } = principal(golden.nodeSdk.token, golden.nodeSdk.wrappedKeyShare);
      for (const env of golden.nodeSdk.otherEnvironments) {
        const seed = decryptAsymmetric(env.wrappedSeed, keys, 'seed');
        expect(seed).toMatch(/^[0-9a-f]{64}$/);
        expect(toHex(envKeyPair(seed).publicKey)).toBe(env.identityKey);
      }
    });

    it('decrypts the go-sdk live capture: key share, env keys, secrets, comments and digests', () => {
      const go = golden.goSdk;
      const { keys } = principal(go.token, go.wrappedKeyShare);
      expect(toHex(keys.privateKey)).toBe(go.privateKey);
      const seed = decryptAsymmetric(go.wrappedSeed, keys, 'seed');
      const salt = decryptAsymmetric(go.wrappedSalt, keys, 'salt');
      const env = envKeyPair(seed);
      expect(toHex(env.publicKey)).toBe(go.identityKey);
      const plain: Record<string, string> = {};
      for (const secret of go.secrets) {
        const key = decryptAsymmetric(secret.key, env, 'key');
        plain[key] = decryptAsymmetric(secret.value, env, 'value');
        expect(decryptAsymmetric(secret.comment, env, 'comment')).toBe('');
        expect(keyDigest(key, salt)).toBe(secret.keyDigest);
      }
      expect(plain).toEqual(go.plain);
    });

    it('matches the PyNaCl seed key pairs, digests, session keys and XOR vectors', () => {
      for (const v of golden.vectors.seedKeypairs) {
        const kp = envKeyPair(v.seed);
        expect(toHex(kp.publicKey)).toBe(v.publicKey);
        expect(toHex(kp.privateKey)).toBe(v.privateKey);
      }
      for (const v of golden.vectors.digests) {
        // sodium-native enforces libsodium's 16-64 byte key range; Phase's salts are always 64 bytes.
        const inRange = v.salt.length === 0 || (v.salt.length >= 16 && v.salt.length <= 64);
        if (backend === 'wasm' || inRange) expect(keyDigest(v.input, v.salt)).toBe(v.digest);
      }
      const salt = golden.nodeSdk.development.salt;
      expect(keyDigest('FOO', salt)).toBe(golden.nodeSdk.development.digestFOO);
      const s = golden.vectors.sessionKeys;
      const a = envKeyPair(s.seedA);
      const b = envKeyPair(s.seedB);
      const client = sodium.crypto_kx_client_session_keys(a.publicKey, a.privateKey, b.publicKey);
      expect(toHex(client.sharedRx)).toBe(s.clientRx);
      expect(toHex(client.sharedTx)).toBe(s.clientTx);
      for (const v of golden.vectors.xorReconstruct) {
        const [x, y] = v.shares.map((h: string) => fromHex(h, 'share'));
        expect(toHex(x.map((byte: number, i: number) => byte ^ y[i]))).toBe(v.expected);
      }
    });

    it('decrypts the PyNaCl raw and asymmetric ciphertexts', () => {
      for (const v of golden.vectors.encryptRaw) {
        const plain = decryptRaw(fromHex(v.ciphertextWithNonce, 'ct'), fromHex(v.key, 'key'), 'vector');
        expect(Buffer.from(plain).toString('utf8')).toBe(v.plaintext);
      }
      for (const v of golden.vectors.asymmetric) {
        const recipient = envKeyPair(v.recipientSeed);
        expect(toHex(recipient.publicKey)).toBe(v.recipientPublicKey);
        expect(decryptAsymmetric(v.ciphertext, recipient, 'vector')).toBe(v.plaintext);
      }
    });

    it('decrypts what the other backend encrypted', async () => {
      const recipient = envKeyPair(golden.vectors.asymmetric[0].recipientSeed);
      await useCryptoBackend(backend === 'wasm' ? 'native' : 'wasm');
      const ct = encryptAsymmetric('cross-backend ✓', recipient.publicKey);
      await useCryptoBackend(backend);
      expect(decryptAsymmetric(ct, recipient, 'value')).toBe('cross-backend ✓');
    });

    it('round-trips its own asymmetric encryption and rejects a tampered ciphertext with DECRYPT', () => {
      const recipient = envKeyPair(golden.vectors.asymmetric[0].recipientSeed);
      const ct = encryptAsymmetric('pa$$word ✓', recipient.publicKey);
      expect(decryptAsymmetric(ct, recipient, 'value')).toBe('pa$$word ✓');
      const body = Buffer.from(ct.split(':')[3]!, 'base64');
      body[0] = body[0]! ^ 1;
      const tampered = ct.split(':').slice(0, 3).join(':') + ':' + body.toString('base64');
      expect(() => decryptAsymmetric(tampered, recipient, 'value of KEY')).toThrowError(
        expect.objectContaining({ code: 'DECRYPT', message: 'could not decrypt value of KEY' }),
      );
    });
  },
);

describe('crypto backend loading', () => {
  it('prefers sodium-native, through its package API, where it is installed', async () => {
    // A fresh module instance: the choice made by cryptoReady() on first use.
    vi.resetModules();
    const fresh = await import('../src/internal/crypto.js');
    await fresh.cryptoReady();
    expect(fresh.cryptoBackend()).toBe('native');
  });

  it('answers a wrong key or buffer length with a DECRYPT error and never aborts the process', async () => {
    await useCryptoBackend('native');
    const recipient = envKeyPair(golden.vectors.asymmetric[0].recipientSeed);
    const short = { publicKey: recipient.publicKey.subarray(0, 31), privateKey: recipient.privateKey };
    expect(() => decryptAsymmetric(golden.vectors.asymmetric[0].ciphertext, short, 'value')).toThrow(
      expect.objectContaining({ code: 'DECRYPT' }),
    );
    expect(() => decryptRaw(new Uint8Array(48), new Uint8Array(31), 'value')).toThrow(
      expect.objectContaining({ code: 'DECRYPT' }),
    );
  });
});
