/** The emulator's crypto against the published golden vectors (phase-protocol.md 4.6 and 4.8). */
import sodium from 'libsodium-wrappers';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  decryptAsymmetric,
  decryptRaw,
  encryptAsymmetric,
  envKeypair,
  initCrypto,
  keyDigest,
  newKxKeypair,
  splitPrivateKey,
} from '../src/crypto.js';

beforeAll(async () => {
  await initCrypto();
});

describe('emulator crypto', () => {
  it('matches the known blake2b digest vectors, keyed with the salt as text', () => {
    expect(keyDigest('hello', 'world')).toBe(
      '38010cfe3a8e684cb17e6d049525e71d4e9dc3be173fc05bf5c5ca1c7e7c25e7',
    );
    const salt = 'a2432aea4a96d05452b88342a072e34ad08318b5ba55bcba2c83dcac4717aab2';
    expect(keyDigest('FOO', salt)).toBe('afae0a1c52dba0d456e9d6491920f05bc976a12cd3046d5191b83eea07a9395e');
  });

  it('derives the node-sdk fixture environment public key from its seed', () => {
    const kp = envKeypair('2c40c01a3881988494ec6dce2b9827686beb71e54c61d163ffdc62d6d8048f80');
    expect(kp.publicKey).toBe('2d1eb10b8406cc4a2ef0287053cd21da408a24fbfb65d8002f56132fbe46cc20');
  });

  it('round-trips ph:v1 strings and produces 140 base64 characters for a 64-character plaintext', () => {
    const kp = newKxKeypair();
    const text = 'ab'.repeat(32);
    const ct = encryptAsymmetric(text, kp.publicKey);
    expect(ct).toMatch(/^ph:v1:[0-9a-f]{64}:[A-Za-z0-9+/=]+$/);
    expect(ct.split(':')[3]).toHaveLength(140);
    expect(decryptAsymmetric(ct, kp)).toBe(text);
    expect(() => decryptAsymmetric(ct, newKxKeypair())).toThrow();
  });

  it('splits a private key into share A and a 208-hex wrapped share B that XOR back to it', () => {
    const kp = newKxKeypair();
    const shares = splitPrivateKey(kp.privateKey);
    expect(shares.wrappedKeyShare).toMatch(/^[0-9a-f]{208}$/);
    const shareBText = sodium.to_string(
      decryptRaw(sodium.from_hex(shares.wrappedKeyShare), sodium.from_hex(shares.wrapKey)),
    );
    expect(shareBText).toMatch(/^[0-9a-f]{64}$/);
    const shareA = sodium.from_hex(shares.shareA);
    const sk = sodium.from_hex(shareBText).map((b, i) => b ^ (shareA[i] ?? 0));
    expect(sodium.to_hex(sk)).toBe(kp.privateKey);
    expect(sodium.to_hex(sodium.crypto_scalarmult_base(sk))).toBe(kp.publicKey);
  });
});
