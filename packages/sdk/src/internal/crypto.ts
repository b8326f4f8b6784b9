import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import { dirname, join } from 'node:path';
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
  /** How it was loaded: sodium-native's addon directly, sodium-native's package API, or libsodium-wrappers. */
  readonly via: 'native' | 'native-api' | 'wasm';
  /** The addon file, when loaded directly (a helper thread loads the same file). */
  readonly addonPath?: string;
  /**
   * The whole of a ph:v1 decryption after the text checks, without allocating anything but views (the addon
   * backend): `ephemeralHex` is the 64 hex digits, `body` the base64 text. Returns a view of a scratch buffer,
   * valid until the next call; throws {@link OpenFailure}.
   */
  openAsymmetric?(ephemeralHex: string, body: string, own: KxKeyPair): Uint8Array;
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
    via: 'wasm',
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
    via: 'native-api',
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

/** Why {@link Backend.openAsymmetric} failed, so the caller reports it as decryptAsymmetric always did. */
class OpenFailure extends Error {
  constructor(
    readonly kind: 'hex' | 'short' | 'key' | 'tag',
    options?: ErrorOptions,
  ) {
    super(kind, options);
  }
}

/** The part of sodium-native's compiled addon we call; the functions return libsodium's status codes. */
interface SodiumBinding {
  readonly crypto_kx_SESSIONKEYBYTES: unknown;
  readonly crypto_aead_xchacha20poly1305_ietf_NPUBBYTES: unknown;
  crypto_kx_server_session_keys(
    rx: Uint8Array | undefined,
    tx: Uint8Array | undefined,
    pk: Uint8Array,
    sk: Uint8Array,
    peer: Uint8Array,
  ): number;
  crypto_kx_client_session_keys(
    rx: Uint8Array | undefined,
    tx: Uint8Array | undefined,
    pk: Uint8Array,
    sk: Uint8Array,
    peer: Uint8Array,
  ): number;
  crypto_aead_xchacha20poly1305_ietf_decrypt(
    m: Uint8Array,
    c: Uint8Array,
    ad: undefined,
    nonce: Uint8Array,
    key: Uint8Array,
  ): number;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
    c: Uint8Array,
    m: Uint8Array,
    ad: undefined,
    nonce: Uint8Array,
    key: Uint8Array,
  ): number;
  crypto_kx_keypair(pk: Uint8Array, sk: Uint8Array): number;
  crypto_kx_seed_keypair(pk: Uint8Array, sk: Uint8Array, seed: Uint8Array): number;
  crypto_generichash(
    out: ArrayBufferLike,
    outOffset: number,
    outLength: number,
    message: ArrayBufferLike,
    messageOffset: number,
    messageLength: number,
    key: ArrayBufferLike,
    keyOffset: number,
    keyLength: number,
  ): number;
  crypto_scalarmult_base(q: Uint8Array, n: Uint8Array): number;
  randombytes_buf(buffer: ArrayBufferLike, offset: number, length: number): void;
}

/**
 * sodium-native's compiled addon called directly. Its functions take the same typed arrays as the package's
 * JavaScript wrappers, minus their argument checks, and the C++ side *aborts the process* on a wrong length, so
 * every length is checked here first. Loaded only after {@link selfTest} proves the calling convention.
 */
function bindingBackend(b: SodiumBinding, path: string): Backend {
  const KEY = 32;
  const need = (ok: boolean, what: string) => {
    if (!ok) throw new Error(`${what} has the wrong length`);
  };
  const status = (res: number, what: string) => {
    if (res !== 0) throw new Error(`${what} failed`);
  };
  const view = (u: Uint8Array) =>
    Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
  const pair = (): KxKeyPair => ({ publicKey: Buffer.alloc(KEY), privateKey: Buffer.alloc(KEY) });
  /** Our session key with `peer`: the receive key as the server side, the send key as the client side. */
  const sessionKey = (
    side: 'server' | 'client',
    own: KxKeyPair,
    peer: Uint8Array,
    out = Buffer.alloc(KEY),
  ) => {
    need(own.publicKey.length === KEY && own.privateKey.length === KEY && peer.length === KEY, 'a key');
    const res =
      side === 'server'
        ? b.crypto_kx_server_session_keys(out, undefined, own.publicKey, own.privateKey, peer)
        : b.crypto_kx_client_session_keys(undefined, out, own.publicKey, own.privateKey, peer);
    status(res, 'key exchange');
    return out;
  };
  if (b.crypto_kx_SESSIONKEYBYTES !== KEY || b.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES !== NONCE_BYTES) {
    throw new Error('unexpected sodium-native binding');
  }
  // Scratch buffers of openAsymmetric: one decryption at a time (all of this is synchronous).
  const ephemeral = Buffer.alloc(KEY);
  const rx = Buffer.alloc(KEY);
  let body = Buffer.alloc(4096);
  let plain = Buffer.alloc(4096);
  const openAsymmetric = (ephemeralHex: string, text: string, own: KxKeyPair): Uint8Array => {
    // Buffer's hex decoder stops at the first pair that is not hex: 32 bytes means all 64 digits were hex.
    if (ephemeral.write(ephemeralHex, 'hex') !== KEY) throw new OpenFailure('hex');
    const room = Math.ceil(text.length / 4) * 3;
    if (room > body.length) body = Buffer.alloc(Math.max(room, body.length * 2));
    const length = body.write(text, 'base64');
    if (length < NONCE_BYTES + TAG_BYTES) throw new OpenFailure('short');
    try {
      sessionKey('server', own, ephemeral, rx);
    } catch (error) {
      throw new OpenFailure('key', { cause: error });
    }
    const box = body.subarray(0, length - NONCE_BYTES);
    if (box.length - TAG_BYTES > plain.length) plain = Buffer.alloc(Math.max(box.length, plain.length * 2));
    const out = plain.subarray(0, box.length - TAG_BYTES);
    const nonce = body.subarray(length - NONCE_BYTES, length);
    if (b.crypto_aead_xchacha20poly1305_ietf_decrypt(out, box, undefined, nonce, rx) < 0) {
      throw new OpenFailure('tag');
    }
    return out;
  };
  return {
    name: 'native',
    via: 'native',
    openAsymmetric,
    addonPath: path,
    serverRx: (own, peer) => sessionKey('server', own, peer),
    clientTx: (own, peer) => sessionKey('client', own, peer),
    open: (box, nonce, key) => {
      need(
        box.length >= TAG_BYTES && nonce.length === NONCE_BYTES && key.length === KEY,
        'a ciphertext or key',
      );
      // Fully written on success; discarded when the tag does not verify.
      const out = Buffer.allocUnsafe(box.length - TAG_BYTES);
      if (b.crypto_aead_xchacha20poly1305_ietf_decrypt(out, box, undefined, nonce, key) < 0) {
        throw new Error('could not verify data');
      }
      return out;
    },
    seal: (plain, nonce, key) => {
      need(nonce.length === NONCE_BYTES && key.length === KEY, 'a nonce or key');
      const out = Buffer.alloc(plain.length + TAG_BYTES);
      if (b.crypto_aead_xchacha20poly1305_ietf_encrypt(out, plain, undefined, nonce, key) < 0) {
        throw new Error('sealing failed');
      }
      return out;
    },
    kxKeyPair: () => {
      const kp = pair();
      status(b.crypto_kx_keypair(kp.publicKey, kp.privateKey), 'key generation');
      return kp;
    },
    seedKeyPair: (seed) => {
      need(seed.length === KEY, 'a seed');
      const kp = pair();
      status(b.crypto_kx_seed_keypair(kp.publicKey, kp.privateKey, seed), 'key derivation');
      return kp;
    },
    hash: (message, key) => {
      need(key === null || (key.length >= 16 && key.length <= 64), 'a hash key');
      const out = Buffer.alloc(KEY);
      const m = view(message);
      const k = key === null ? Buffer.alloc(0) : view(key);
      status(
        b.crypto_generichash(
          out.buffer,
          out.byteOffset,
          KEY,
          m.buffer,
          m.byteOffset,
          m.byteLength,
          k.buffer,
          k.byteOffset,
          k.byteLength,
        ),
        'hashing',
      );
      return out;
    },
    scalarmultBase: (sk) => {
      need(sk.length === KEY, 'a private key');
      const out = Buffer.alloc(KEY);
      status(b.crypto_scalarmult_base(out, sk), 'scalar multiplication');
      return out;
    },
    random: (size) => {
      const out = Buffer.alloc(size);
      b.randombytes_buf(out.buffer, out.byteOffset, out.byteLength);
      return out;
    },
  };
}

/**
 * Proves a backend computes what libsodium does before it is used: RFC 7748's X25519 vector, the seed key pair
 * (BLAKE2b of the seed, then the base point), a key exchange both ways and a seal/open round trip that refuses a
 * flipped bit. Any difference (an addon whose calling convention changed) falls back to the package's API.
 */
function selfTest(backend: Backend): boolean {
  try {
    const hex = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('hex');
    const alice = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex');
    if (
      hex(backend.scalarmultBase(alice)) !==
      '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a'
    ) {
      return false;
    }
    const seed = Buffer.alloc(32, 7);
    const server = backend.seedKeyPair(seed);
    if (hex(server.privateKey) !== hex(backend.hash(seed, null))) return false;
    if (hex(server.publicKey) !== hex(backend.scalarmultBase(server.privateKey))) return false;
    const client = backend.seedKeyPair(Buffer.alloc(32, 9));
    const key = backend.clientTx(client, server.publicKey);
    if (hex(key) !== hex(backend.serverRx(server, client.publicKey))) return false;
    const nonce = Buffer.alloc(NONCE_BYTES, 1);
    const box = backend.seal(Buffer.from('phasekit'), nonce, key);
    if (Buffer.from(backend.open(box, nonce, key)).toString() !== 'phasekit') return false;
    box[0]! ^= 1;
    try {
      backend.open(box, nonce, key);
      return false;
    } catch {
      return true;
    }
  } catch {
    return false;
  }
}

const PREFIX = 'ph:v1:';
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

let sodium: Backend | undefined;
let ready: Promise<Backend> | undefined;

// A computed name keeps bundlers from inlining the addon, which must be loaded from node_modules.
const NATIVE = ['sodium', 'native'].join('-');

/**
 * sodium-native, preferring its compiled addon loaded directly (see {@link bindingBackend}) over the package's
 * JavaScript API, whose start-up (its argument checks, `node:assert` and the addon resolver) costs ~20 ms of a
 * cold start. `via: 'api'` forces the package's API (tests compare the two).
 */
function loadNative(via: 'binding' | 'api' = 'binding'): Backend | undefined {
  // Always createRequire: in the ESM bundle esbuild rewrites a bare `require` into a shim that throws
  // ("Dynamic require is not supported"), which silently fell back to the ~3x slower WASM backend.
  // tsup's shims give the CJS bundle an import.meta.url too.
  let load: NodeJS.Require;
  try {
    load = createRequire(import.meta.url);
  } catch {
    return undefined;
  }
  if (via === 'binding') {
    const direct = loadBinding(load);
    if (direct) return direct;
  }
  try {
    return nativeBackend(load(NATIVE));
  } catch {
    return undefined;
  }
}

/** The prebuilt addon of sodium-native for this platform, when present and behaving as expected. */
function loadBinding(load: NodeJS.Require): Backend | undefined {
  try {
    const dir = dirname(load.resolve(`${NATIVE}/package.json`));
    const path = join(dir, 'prebuilds', `${platform()}-${arch()}`, `${NATIVE}.node`);
    const backend = bindingBackend(load(path) as SodiumBinding, path);
    return selfTest(backend) ? backend : undefined;
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

/** Which backend is in use (after {@link cryptoReady}). */
export function cryptoBackend(): 'native' | 'wasm' | undefined {
  return sodium?.name;
}

/** The sodium-native addon file in use, when loaded directly; helper threads load the same one. */
export function nativeAddonPath(): string | undefined {
  return sodium?.addonPath;
}

/** How the backend in use was loaded (tests and benchmarks). */
export function cryptoBackendVia(): Backend['via'] | undefined {
  return sodium?.via;
}

/** Switches backends, for tests that prove both give identical results. */
export async function useCryptoBackend(name: 'native' | 'native-api' | 'wasm'): Promise<void> {
  const next = name === 'wasm' ? await loadWasm() : loadNative(name === 'native-api' ? 'api' : 'binding');
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
  const backend = lib();
  if (backend.openAsymmetric) {
    let plain: Uint8Array;
    try {
      plain = backend.openAsymmetric(rest.slice(0, sep), rest.slice(sep + 1), own);
    } catch (error) {
      if (!(error instanceof OpenFailure)) throw decryptError(what, error);
      if (error.kind === 'hex') throw new PhaseError(ErrorCode.DECRYPT, `${what} is not valid hex`);
      throw decryptError(what, error.kind === 'short' ? undefined : new Error('could not verify data'));
    }
    try {
      return utf8.decode(plain);
    } catch (error) {
      throw decryptError(`${what}: plaintext is not UTF-8`, error);
    }
  }
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
