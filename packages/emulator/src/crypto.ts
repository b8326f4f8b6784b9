/**
 * The emulator's own implementation of the Phase E2EE primitives (phase-protocol.md section 4).
 *
 * Deliberately independent of packages/sdk: the emulator is the oracle the SDK is checked against, so sharing code
 * would hide exactly the bugs the cross-check exists to catch. Every function here is synchronous and assumes
 * `await initCrypto()` has run once.
 */
import sodium from 'libsodium-wrappers';

/** Server-side write validation regex (`validate_encrypted_string`); an empty string is allowed separately. */
export const CIPHERTEXT_PATTERN = /^ph:v1:[0-9a-fA-F]{64}:.+$/;

const NONCE_BYTES = 24;

/** A hex-encoded X25519 keypair. */
export interface HexKeypair {
  publicKey: string;
  privateKey: string;
}

/** Waits for the libsodium WASM module; safe to call many times. */
export async function initCrypto(): Promise<void> {
  await sodium.ready;
}

/** `n` random bytes as lowercase hex. */
export function randomHex(n: number): string {
  return sodium.to_hex(sodium.randombytes_buf(n));
}

/** XChaCha20-Poly1305-IETF without associated data; output is `ciphertext||tag||nonce` (nonce appended). */
export function encryptRaw(plaintext: Uint8Array, key: Uint8Array): Uint8Array {
  const nonce = sodium.randombytes_buf(NONCE_BYTES);
  const sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, null, null, nonce, key);
  const out = new Uint8Array(sealed.length + NONCE_BYTES);
  out.set(sealed, 0);
  out.set(nonce, sealed.length);
  return out;
}

/** Inverse of {@link encryptRaw}; throws when authentication fails. */
export function decryptRaw(data: Uint8Array, key: Uint8Array): Uint8Array {
  if (data.length < NONCE_BYTES + 16) throw new Error('ciphertext too short');
  const nonce = data.subarray(data.length - NONCE_BYTES);
  const sealed = data.subarray(0, data.length - NONCE_BYTES);
  return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, sealed, null, nonce, key);
}

/** `ph:v1:<ephemeral pub hex>:<base64(c||nonce)>` for the recipient's X25519 public key. */
export function encryptAsymmetric(plaintext: string, recipientPublicKeyHex: string): string {
  const ephemeral = sodium.crypto_kx_keypair();
  const { sharedTx } = sodium.crypto_kx_client_session_keys(
    ephemeral.publicKey,
    ephemeral.privateKey,
    sodium.from_hex(recipientPublicKeyHex),
  );
  const body = encryptRaw(sodium.from_string(plaintext), sharedTx);
  return `ph:v1:${sodium.to_hex(ephemeral.publicKey)}:${Buffer.from(body).toString('base64')}`;
}

/** Decrypts a `ph:v1` string with the recipient's own keypair; throws on any malformed or forged input. */
export function decryptAsymmetric(ciphertext: string, keypair: HexKeypair): string {
  const parts = ciphertext.split(':');
  const [prefix, version, ephemeralHex, body] = parts;
  if (parts.length !== 4 || prefix !== 'ph' || version !== 'v1' || ephemeralHex === undefined || !body) {
    throw new Error('invalid ph:v1 ciphertext');
  }
  if (!/^[0-9a-fA-F]{64}$/.test(ephemeralHex)) throw new Error('invalid ephemeral public key');
  const { sharedRx } = sodium.crypto_kx_server_session_keys(
    sodium.from_hex(keypair.publicKey),
    sodium.from_hex(keypair.privateKey),
    sodium.from_hex(ephemeralHex),
  );
  return sodium.to_string(decryptRaw(new Uint8Array(Buffer.from(body, 'base64')), sharedRx));
}

/** True when `ciphertext` is a well-formed `ph:v1` string that authenticates under `keypair`. */
export function decryptsWith(ciphertext: string, keypair: HexKeypair): boolean {
  try {
    decryptAsymmetric(ciphertext, keypair);
    return true;
  } catch {
    return false;
  }
}

/**
 * The blind index: hex BLAKE2b-256 of UTF-8(`key`), keyed with the UTF-8 bytes of the salt *hex text*.
 * Callers pass the key already uppercased when they want the canonical digest.
 */
export function keyDigest(key: string, saltHex: string): string {
  return sodium.to_hex(sodium.crypto_generichash(32, sodium.from_string(key), sodium.from_string(saltHex)));
}

/** The environment keypair, `crypto_kx_seed_keypair(hexdecode(seed))`. */
export function envKeypair(seedHex: string): HexKeypair {
  const kp = sodium.crypto_kx_seed_keypair(sodium.from_hex(seedHex));
  return { publicKey: sodium.to_hex(kp.publicKey), privateKey: sodium.to_hex(kp.privateKey) };
}

/** A fresh random X25519 keypair for a principal. */
export function newKxKeypair(): HexKeypair {
  const kp = sodium.crypto_kx_keypair();
  return { publicKey: sodium.to_hex(kp.publicKey), privateKey: sodium.to_hex(kp.privateKey) };
}

/** What minting a token produces (protocol 4.4); only `wrappedKeyShare` is kept server side. */
export interface KeyShares {
  shareA: string;
  wrapKey: string;
  wrappedKeyShare: string;
}

/**
 * Splits a principal's private key into the client share (in the token) and the wrapped server share.
 * share_b is encrypted as its 64-character hex TEXT, which is the detail clients most often get wrong.
 */
export function splitPrivateKey(privateKeyHex: string): KeyShares {
  const sk = sodium.from_hex(privateKeyHex);
  const shareA = sodium.randombytes_buf(32);
  const shareB = sk.map((byte, i) => byte ^ (shareA[i] ?? 0));
  const wrapKey = sodium.randombytes_buf(32);
  const wrapped = encryptRaw(sodium.from_string(sodium.to_hex(shareB)), wrapKey);
  return {
    shareA: sodium.to_hex(shareA),
    wrapKey: sodium.to_hex(wrapKey),
    wrappedKeyShare: sodium.to_hex(wrapped),
  };
}
