import { createRequire } from 'node:module';
import type sodiumWrappers from 'libsodium-wrappers';
import { ErrorCode, PhaseError } from '../errors.js';

// Phase's E2EE primitives (phase-protocol.md section 4). Every function here works on keys as bytes and
// takes care that no key, ciphertext or plaintext ends up in an error message.
//
// Two interchangeable backends compute the same libsodium operations: sodium-native (an optional
// dependency; about five times faster, native code) and libsodium-wrappers (WebAssembly, always there).
// test/golden-vectors.test.ts runs the golden vectors through both.

/** An X25519 key pair as raw bytes. */
export interface KxKeyPair {
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
}

/** The libsodium operations we use. */
interface Backend {
  readonly name: 'native' | 'wasm';
  /** Our receive key for a message from `peer` (crypto_kx_server_session_keys). */
  serverRx(own: KxKeyPair, peer: Uint8Array): Uint8Array;
  /** Our send key to `peer` (crypto_kx_client_session_keys). */
  clientTx(own: KxKeyPair, peer: Uint8Array): Uint8Array;
  /** XChaCha20-Poly1305 decryption; throws when the tag does not verify. */
  open(box: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array;
  seal(plain: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array;
  kxKeyPair(): KxKeyPair;
  seedKeyPair(seed: Uint8Array): KxKeyPair;
  hash(message: Uint8Array, key: Uint8Array | null): Uint8Array;
  scalarmultBase(sk: Uint8Array): Uint8Array;
  random(n: number): Uint8Array;
}

type Wrappers = typeof sodiumWrappers;

function wasmBackend(s: Wrappers): Backend {
  return {
    name: 'wasm',
    serverRx: (own, peer) => s.crypto_kx_server_session_keys(own.publicKey, own.privateKey, peer).sharedRx,
    clientTx: (own, peer) => s.crypto_kx_client_session_keys(own.publicKey, own.privateKey, peer).sharedTx,
    open: (box, nonce, key) => s.crypto_aead_xchacha20poly1305_ietf_decrypt(null, box, null, nonce, key),
    seal: (plain, nonce, key) => s.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, null, null, nonce, key),
    kxKeyPair: () => s.crypto_kx_keypair(),
    seedKeyPair: (seed) => s.crypto_kx_seed_keypair(seed),
    hash: (message, key) => s.crypto_generichash(32, message, key),
    scalarmultBase: (sk) => s.crypto_scalarmult_base(sk),
    random: (n) => s.randombytes_buf(n),
  };
}

/* eslint-disable @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-member-access -- untyped addon */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- sodium-native ships no types
function nativeBackend(n: any): Backend {
  // sodium-native takes any Uint8Array; wrapping is kept for the rarely used operations only.
  const buf = (u: Uint8Array) => (Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength));
  const pair = (): KxKeyPair => ({ publicKey: Buffer.alloc(32), privateKey: Buffer.alloc(32) });
  return {
    name: 'native',
    serverRx: (own, peer) => {
      const rx = Buffer.allocUnsafe(32);
      n.crypto_kx_server_session_keys(rx, null, own.publicKey, own.privateKey, peer);
      return rx;
    },
    clientTx: (own, peer) => {
      const tx = Buffer.alloc(32);
      n.crypto_kx_client_session_keys(null, tx, buf(own.publicKey), buf(own.privateKey), buf(peer));
      return tx;
    },
    open: (box, nonce, key) => {
      // Fully written on success; discarded when the tag does not verify.
      const out = Buffer.allocUnsafe(box.length - 16);
      n.crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, box, null, nonce, key);
      return out;
    },
    seal: (plain, nonce, key) => {
      const out = Buffer.alloc(plain.length + 16);
      n.crypto_aead_xchacha20poly1305_ietf_encrypt(out, buf(plain), null, null, buf(nonce), buf(key));
      return out;
    },
    kxKeyPair: () => {
      const kp = pair();
      n.crypto_kx_keypair(kp.publicKey, kp.privateKey);
      return kp;
    },
    seedKeyPair: (seed) => {
      const kp = pair();
      n.crypto_kx_seed_keypair(kp.publicKey, kp.privateKey, buf(seed));
      return kp;
    },
    hash: (message, key) => {
      const out = Buffer.alloc(32);
      if (key) n.crypto_generichash(out, buf(message), buf(key));
      else n.crypto_generichash(out, buf(message));
      return out;
    },
    scalarmultBase: (sk) => {
      const out = Buffer.alloc(32);
      n.crypto_scalarmult_base(out, buf(sk));
      return out;
    },
    random: (size) => {
      const out = Buffer.alloc(size);
      n.randombytes_buf(out);
      return out;
    },
  };
}
/* eslint-enable @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-member-access */

const PREFIX = 'ph:v1:';
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

let sodium: Backend | undefined;
let ready: Promise<Backend> | undefined;

// A computed name keeps bundlers from inlining the addon, which must be loaded from node_modules.
const NATIVE = ['sodium', 'native'].join('-');

/** sodium-native through its package API, when it is installed and its prebuilt addon loads here. */
function loadNative(): Backend | undefined {
  // createRequire, not a bare require: in an ES module bundle esbuild turns `require` into a shim that throws.
  // tsup's shims give the CommonJS build an import.meta.url too.
  try {
    return nativeBackend(createRequire(import.meta.url)(NATIVE));
  } catch {
    return undefined;
  }
}

async function loadWasm(): Promise<Backend> {
  const mod = (await import('libsodium-wrappers')) as unknown as { default?: Wrappers } & Wrappers;
  const s = mod.default ?? mod;
  await s.ready;
  return wasmBackend(s);
}

/** Resolves once a libsodium backend is loaded; cheap after the first call. */
export function cryptoReady(): Promise<void> {
  ready ??= (async () => (sodium = loadNative() ?? (await loadWasm())))();
  return ready.then(() => undefined);
}

/**
 * Which libsodium build decrypts: `native` (the optional sodium-native package) or `wasm` (libsodium-wrappers);
 * `undefined` until a client has made its first request. A diagnostic: results are identical either way.
 */
export function cryptoBackend(): 'native' | 'wasm' | undefined {
  return sodium?.name;
}

/** Switches backends, for tests that prove both give identical results. */
export async function useCryptoBackend(name: 'native' | 'wasm'): Promise<void> {
  const next = name === 'wasm' ? await loadWasm() : loadNative();
  if (!next) throw new Error('sodium-native is not installed');
  sodium = next;
  ready = Promise.resolve(next);
}

function lib(): Backend {
  if (!sodium) throw new Error('cryptoReady() must resolve before crypto is used');
  return sodium;
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
    return lib().open(box, nonce, key);
  } catch (error) {
    throw decryptError(what, error);
  }
}

/** XChaCha20-Poly1305 encryption with a random nonce, returning `ciphertext || tag || nonce`. */
export function encryptRaw(plaintext: Uint8Array, key: Uint8Array): Uint8Array {
  const nonce = lib().random(NONCE_BYTES);
  const box = lib().seal(plaintext, nonce, key);
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
  if (sep !== 64 || rest.indexOf(':', sep + 1) !== -1)
    throw decryptError(`${what}: malformed ph:v1 ciphertext`);
  // Buffer's hex decoder stops at the first pair that is not hex, so 32 bytes out of 64 characters means all
  // of them were hex digits (the same rule as fromHex, without its regular expression and copy).
  const ephemeral = Buffer.from(rest.slice(0, sep), 'hex');
  if (ephemeral.length !== 32) throw new PhaseError(ErrorCode.DECRYPT, `${what} is not valid hex`);
  const body = Buffer.from(rest.slice(sep + 1), 'base64');
  let rx: Uint8Array;
  try {
    rx = lib().serverRx(own, ephemeral);
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
  const ephemeral = lib().kxKeyPair();
  const body = encryptRaw(encoder.encode(plaintext), lib().clientTx(ephemeral, recipientPublicKey));
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
  const shareBText = decryptRaw(
    fromHex(wrappedKeyShareHex, 'the wrapped key share'),
    wrapKey,
    'the key share',
  );
  const shareB = fromHex(Buffer.from(shareBText).toString('latin1'), 'the key share');
  if (shareB.length !== shareA.length) throw decryptError('the key share: wrong length');
  const sk = new Uint8Array(shareA.length);
  for (let i = 0; i < sk.length; i++) sk[i] = shareA[i]! ^ shareB[i]!;
  return sk;
}

/** X25519 public key of a private key. */
export function publicKeyOf(privateKey: Uint8Array): Uint8Array {
  return lib().scalarmultBase(privateKey);
}

/** Environment key pair from its seed, given as the 64-character hex text (section 4.5). */
export function envKeyPair(seedHex: string): KxKeyPair {
  return lib().seedKeyPair(fromHex(seedHex, 'the environment seed'));
}

/** Blind index of a key name: BLAKE2b-256 keyed with the salt's hex TEXT (section 4.6). */
export function keyDigest(key: string, saltHex: string): string {
  const salt = encoder.encode(saltHex);
  return toHex(lib().hash(encoder.encode(key), salt.length === 0 ? null : salt));
}
