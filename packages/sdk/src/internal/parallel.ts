import { Worker } from 'node:worker_threads';
import type * as WorkerThreads from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { decryptAsymmetric, nativeAddonPath } from './crypto.js';
import type { KxKeyPair } from './crypto.js';

// Large batches of ph:v1 ciphertexts are shared between this thread and one helper thread. Every ciphertext costs
// its own X25519 agreement (~35 us native), so a cold read of 1,000 secrets with comments is ~100 ms of one core.
//
// The two threads take chunks from one shared counter (Atomics), so neither waits for the other: this thread starts
// at once, and the helper joins whenever it has started (tens of milliseconds for a new thread) and takes what is
// left. What the helper cannot decrypt comes back empty and is decrypted here again, where the error is reported
// with its context; the helper's code applies the same checks as decryptAsymmetric, so it never accepts what this
// thread would refuse.

/**
 * Below this many ciphertexts, starting a thread costs more than it saves: a new thread takes tens of milliseconds of
 * a core to start, which on a 2-core machine competes with this thread (measured: a cold read of 3,000 ciphertexts
 * got ~10% slower with a helper started for it; see docs/benchmarks.md, item 1). 8,192 take ~300 ms alone.
 */
export const PARALLEL_MIN_BATCH = 8192;
/** A helper already running (started by a larger batch less than 2 s ago) is worth using from this many. */
export const PARALLEL_MIN_BATCH_WARM = 1024;
const CHUNK = 64;
/** A helper thread left idle this long is stopped (it holds a few MB of memory). */
const IDLE_MS = 2_000;

interface Job {
  readonly ciphertexts: readonly string[];
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
  readonly counter: SharedArrayBuffer;
  readonly chunk: number;
}

interface JobResult {
  /** Chunk index and its plaintexts (`null` where the helper could not decrypt). */
  readonly chunks: Array<[number, Array<string | null>]>;
}

/**
 * The helper thread's program, shipped as source text (the CLI bundle has no separate file for it). Self-contained:
 * it uses only its arguments and globals. `load` is the helper's `require` (a parameter, so that bundlers leave the
 * calls alone).
 */
function helperMain(load: NodeJS.Require): void {
  /* eslint-disable @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-member-access -- the untyped addon */
  const { parentPort, workerData } = load('node:worker_threads') as typeof WorkerThreads;
  const addon = load((workerData as { addon: string }).addon);
  /* eslint-enable @typescript-eslint/no-unsafe-assignment */
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const one = (text: string, pk: Uint8Array, sk: Uint8Array): string | null => {
    // The checks of decryptAsymmetric and decryptRaw: prefix, one colon after 64 hex digits, 40+ bytes.
    if (!text.startsWith('ph:v1:')) return null;
    const rest = text.slice(6);
    const sep = rest.indexOf(':');
    if (sep !== 64 || rest.indexOf(':', sep + 1) !== -1) return null;
    const ephemeral = Buffer.from(rest.slice(0, sep), 'hex');
    if (ephemeral.length !== 32) return null;
    const body = Buffer.from(rest.slice(sep + 1), 'base64');
    if (body.length < 40) return null;
    const rx = Buffer.allocUnsafe(32);
    if (addon.crypto_kx_server_session_keys(rx, undefined, pk, sk, ephemeral) !== 0) return null;
    const nonce = body.subarray(body.length - 24);
    const box = body.subarray(0, body.length - 24);
    const out = Buffer.allocUnsafe(box.length - 16);
    if (addon.crypto_aead_xchacha20poly1305_ietf_decrypt(out, box, undefined, nonce, rx) < 0) return null;
    try {
      return utf8.decode(out);
    } catch {
      return null;
    }
  };
  /* eslint-enable @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-member-access */
  parentPort!.on('message', (job: Job) => {
    const counter = new Int32Array(job.counter);
    const total = Math.ceil(job.ciphertexts.length / job.chunk);
    const chunks: JobResult['chunks'] = [];
    for (let index = Atomics.add(counter, 0, 1); index < total; index = Atomics.add(counter, 0, 1)) {
      const from = index * job.chunk;
      const to = Math.min(from + job.chunk, job.ciphertexts.length);
      const plain: Array<string | null> = [];
      for (let i = from; i < to; i++) plain.push(one(job.ciphertexts[i]!, job.publicKey, job.privateKey));
      chunks.push([index, plain]);
    }
    parentPort!.postMessage({ chunks } satisfies JobResult);
  });
}

/** Chunks decrypted by helper threads so far (tests and benchmarks). */
let helperChunks = 0;

/** How many chunks of 64 ciphertexts helper threads have decrypted in this process. */
export function helperChunkCount(): number {
  return helperChunks;
}

let helper: { worker: Worker; idle: NodeJS.Timeout | undefined; busy: boolean } | undefined;

function startHelper(addon: string): NonNullable<typeof helper> {
  const worker = new Worker(`(${helperMain.toString()})(require)`, {
    eval: true,
    workerData: { addon },
    // The helper needs little: keep its heap small.
    resourceLimits: { maxYoungGenerationSizeMb: 8, maxOldGenerationSizeMb: 64 },
  });
  // Never keeps the process alive.
  worker.unref();
  const slot = { worker, idle: undefined as NodeJS.Timeout | undefined, busy: false };
  const forget = () => {
    if (helper === slot) helper = undefined;
  };
  worker.once('error', forget);
  worker.once('exit', forget);
  return slot;
}

/** Whether a batch of `count` ciphertexts would be shared with a helper thread. */
export function wouldParallelise(count: number): boolean {
  const min = helper && !helper.busy ? PARALLEL_MIN_BATCH_WARM : PARALLEL_MIN_BATCH;
  return count >= min && nativeAddonPath() !== undefined && availableParallelism() > 1;
}

/**
 * Decrypts many ciphertexts for one key pair, on this thread and (for large batches, with the native backend and
 * more than one CPU) a helper thread. Returns the plaintexts in order; `undefined` where decryption failed (the
 * caller decrypts those again one by one to report the error).
 */
export async function decryptBatch(
  ciphertexts: readonly string[],
  keys: KxKeyPair,
  options: {
    /** False leaves every chunk to the helper (tests of the helper's own results). @default true */
    readonly share?: boolean;
  } = {},
): Promise<Array<string | undefined>> {
  const results = new Array<string | undefined>(ciphertexts.length);
  const decryptHere = (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      try {
        results[i] = decryptAsymmetric(ciphertexts[i]!, keys, 'a secret');
      } catch {
        results[i] = undefined;
      }
    }
  };
  const addon = nativeAddonPath();
  if (addon === undefined || !wouldParallelise(ciphertexts.length) || helper?.busy === true) {
    decryptHere(0, ciphertexts.length);
    return results;
  }

  let slot: NonNullable<typeof helper>;
  try {
    slot = helper ??= startHelper(addon);
  } catch {
    decryptHere(0, ciphertexts.length);
    return results;
  }
  clearTimeout(slot.idle);
  slot.busy = true;
  const total = Math.ceil(ciphertexts.length / CHUNK);
  const counter = new SharedArrayBuffer(4);
  const next = new Int32Array(counter);
  const answer = new Promise<JobResult | undefined>((resolve) => {
    const onMessage = (result: JobResult) => finish(result);
    const onGone = () => finish(undefined);
    const finish = (result: JobResult | undefined) => {
      slot.worker.off('message', onMessage).off('error', onGone).off('exit', onGone);
      resolve(result);
    };
    slot.worker.on('message', onMessage).once('error', onGone).once('exit', onGone);
  });
  // While a job is out, the helper keeps the process alive (an unref'd worker would let Node exit under a pending
  // await). It answers every job, even one it found finished; only then may the next job use it.
  slot.worker.ref();
  void answer.then(() => {
    slot.worker.unref();
    slot.busy = false;
    if (helper === slot) {
      slot.idle = setTimeout(() => void slot.worker.terminate(), IDLE_MS);
      slot.idle.unref();
    }
  });
  slot.worker.postMessage({
    ciphertexts,
    publicKey: keys.publicKey,
    privateKey: keys.privateKey,
    counter,
    chunk: CHUNK,
  } satisfies Job);

  const done = new Set<number>();
  const share = options.share ?? true;
  for (let index = share ? Atomics.add(next, 0, 1) : total; index < total; index = Atomics.add(next, 0, 1)) {
    decryptHere(index * CHUNK, Math.min((index + 1) * CHUNK, ciphertexts.length));
    done.add(index);
  }
  // Every index below `total` was handed out once: what this thread did not take, the helper did. When this
  // thread took everything (the helper had not started yet), there is nothing to wait for.
  if (done.size < total) {
    const result = await answer;
    helperChunks += result?.chunks.length ?? 0;
    for (const [index, plain] of result?.chunks ?? []) {
      plain.forEach((text, i) => {
        results[index * CHUNK + i] = text ?? undefined;
      });
      done.add(index);
    }
    // A helper that died mid-job leaves chunks nobody finished.
    for (let index = 0; index < total; index++) {
      if (!done.has(index)) decryptHere(index * CHUNK, Math.min((index + 1) * CHUNK, ciphertexts.length));
    }
  }
  return results;
}
