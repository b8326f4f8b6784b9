import sodium from 'libsodium-wrappers';
import { ErrorCode, PhaseError } from '../errors.js';

// Phase's E2EE primitives (phase-protocol.md section 4). Every function here works on keys as bytes and
// takes care that no key, ciphertext or plaintext ends up in an error message.

/** An X25519 key pair as raw bytes. */
export interface KxKeyPair {
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
}

const PREFIX = 'ph:v1:';
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

let ready: Promise<void> | undefined;

/** Resolves once libsodium's WASM is initialised; cheap after the first call. */
export function cryptoReady(): Promise<void> {
  ready ??= sodium.ready;
  return ready;
}

function decryptError(what: string, cause?: unknown): PhaseError {
  return new PhaseError(ErrorCode.DECRYPT, `could not decrypt ${what}`, cause === undefined ? {} : { cause });
}

/** Strict hex decoding: anything other than an even run of hex digits is refused. */
export function fromHex(hex: string, what: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new PhaseError(ErrorCode.DECRYPT, `${what} is not valid hex`);
  }
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** XChaCha20-Poly1305 decryption of `ciphertext || tag || nonce` (the nonce is appended, section 4.2). */
export function decryptRaw(data: Uint8Array, key: Uint8Array, what: string): Uint8Array {
  if (data.length < NONCE_BYTES + TAG_BYTES) throw decryptError(what);
  const nonce = data.subarray(data.length - NONCE_BYTES);
  const box = data.subarray(0, data.length - NONCE_BYTES);
  try {
    return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, box, null, nonce, key);
  } catch (error) {
    throw decryptError(what, error);
  }
}

/** XChaCha20-Poly1305 encryption with a random nonce, returning `ciphertext || tag || nonce`. */
export function encryptRaw(plaintext: Uint8Array, key: Uint8Array): Uint8Array {
  const nonce = sodium.randombytes_buf(NONCE_BYTES);
  const box = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, null, null, nonce, key);
  const out = new Uint8Array(box.length + NONCE_BYTES);
  out.set(box, 0);
  out.set(nonce, box.length);
  return out;
}

/** Decrypts a `ph:v1:<ephemeral pk hex>:<base64>` string with our own key pair (section 4.3). */
export function decryptAsymmetric(ciphertext: string, own: KxKeyPair, what: string): string {
  if (!ciphertext.startsWith(PREFIX)) throw decryptError(`${what}: not a ph:v1 ciphertext`);
  const rest = ciphertext.slice(PREFIX.length);
  const sep = rest.indexOf(':');
  if (sep !== 64 || rest.indexOf(':', sep + 1) !== -1) throw decryptError(`${what}: malformed ph:v1 ciphertext`);
  const ephemeral = fromHex(rest.slice(0, sep), what);
  const body = Buffer.from(rest.slice(sep + 1), 'base64');
  let rx: Uint8Array;
  try {
    rx = sodium.crypto_kx_server_session_keys(own.publicKey, own.privateKey, ephemeral).sharedRx;
  } catch (error) {
    throw decryptError(what, error);
  }
  const plain = decryptRaw(new Uint8Array(body.buffer, body.byteOffset, body.byteLength), rx, what);
  try {
    return utf8.decode(plain);
  } catch (error) {
    throw decryptError(`${what}: plaintext is not UTF-8`, error);
  }
}

/** Encrypts text for a recipient's X25519 public key as a `ph:v1` string (section 4.3). */
export function encryptAsymmetric(plaintext: string, recipientPublicKey: Uint8Array): string {
  const ephemeral = sodium.crypto_kx_keypair();
  const { sharedTx } = sodium.crypto_kx_client_session_keys(
    ephemeral.publicKey,
    ephemeral.privateKey,
    recipientPublicKey,
  );
  const body = encryptRaw(encoder.encode(plaintext), sharedTx);
  return `${PREFIX}${toHex(ephemeral.publicKey)}:${Buffer.from(body).toString('base64')}`;
}

/**
 * Rebuilds the principal's X25519 private key from the token's share A and the server's wrapped share B
 * (section 4.4): share B is the 64-character hex text of the bytes, encrypted with the token's wrap key.
 */
export function reconstructPrivateKey(
  wrappedKeyShareHex: string,
  shareA: Uint8Array,
  wrapKey: Uint8Array,
): Uint8Array {
  const shareBText = decryptRaw(fromHex(wrappedKeyShareHex, 'the wrapped key share'), wrapKey, 'the key share');
  const shareB = fromHex(Buffer.from(shareBText).toString('latin1'), 'the key share');
  if (shareB.length !== shareA.length) throw decryptError('the key share: wrong length');
  const sk = new Uint8Array(shareA.length);
  for (let i = 0; i < sk.length; i++) sk[i] = shareA[i]! ^ shareB[i]!;
  return sk;
}

/** X25519 public key of a private key. */
export function publicKeyOf(privateKey: Uint8Array): Uint8Array {
  return sodium.crypto_scalarmult_base(privateKey);
}

/** Environment key pair from its seed, given as the 64-character hex text (section 4.5). */
export function envKeyPair(seedHex: string): KxKeyPair {
  return sodium.crypto_kx_seed_keypair(fromHex(seedHex, 'the environment seed'));
}

/** Blind index of a key name: BLAKE2b-256 keyed with the salt's hex TEXT (section 4.6). */
export function keyDigest(key: string, saltHex: string): string {
  const salt = encoder.encode(saltHex);
  return sodium.crypto_generichash(32, encoder.encode(key), salt.length === 0 ? null : salt, 'hex');
}

/** Constant-time comparison of two byte arrays. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && sodium.memcmp(a, b);
}
