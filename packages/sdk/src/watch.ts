import { EventEmitter } from 'eventemitter3';
import { ErrorCode, PhaseError } from './errors.js';
import type { ChangeSet, Logger, Secret } from './types.js';

/** How often a watch (and `phasekit sidecar`, `run`) probes for changes when not told otherwise. */
export const DEFAULT_POLL_INTERVAL_MS = 30_000;
/** The shortest poll interval a watch (and the CLI's `--interval`) accepts; below a second is meant for tests. */
export const MIN_POLL_INTERVAL_MS = 10;

/**
 * The one staleness rule: secrets are stale after this long without a successful poll, by default. Long enough
 * that neither a few failed polls nor one slow poll that still succeeds within its deadline flips it.
 */
export function defaultStaleAfterMs(intervalMs: number, timeoutMs: number): number {
  return Math.max(3 * intervalMs, intervalMs + timeoutMs);
}

/** Options of {@link PhaseClient.watch}. */
export interface WatchOptions {
  /**
   * How often to probe for changes.
   * @unit milliseconds
   * @default 30000
   */
  intervalMs?: number;
  /** Stops the watch. */
  signal?: AbortSignal;
  /**
   * Spread of each wait, as a fraction of the interval, so a fleet of pods does not poll in step.
   * @default 0.1
   */
  jitter?: number;
  /**
   * After this long without a successful probe, `stale` is emitted.
   * @unit milliseconds
   * @default max(3 × intervalMs, intervalMs + the client's totalTimeoutMs)
   */
  staleAfterMs?: number;
}

/** One state of the watched secrets, with what changed since the previous one delivered. */
export interface WatchSnapshot {
  readonly secrets: readonly Secret[];
  readonly changes: ChangeSet;
}

/** Events of a {@link SecretsWatch}. Payloads carry key names and error codes, never values. */
export interface WatchEvents {
  /** The secrets changed; names only. Not emitted for the first read. */
  change: [changes: ChangeSet];
  /** A poll succeeded; `changed` tells whether it found (and fetched) a change; `durationMs` covers both. */
  polled: [info: { changed: boolean; durationMs: number }];
  /** A probe or fetch failed; the watch keeps the last good secrets and retries. */
  error: [error: PhaseError];
  /** No successful probe for `staleAfterMs`. */
  stale: [info: { lastSuccessAt: Date | undefined }];
  /** A probe succeeded again after `stale`. */
  recovered: [];
}

/** What a watch needs from the client. */
export interface WatchSource {
  read(signal: AbortSignal): Promise<{ secrets: Secret[]; dependencies: Set<string> }>;
  probe(signal: AbortSignal): Promise<Map<string, string>>;
}

const EMPTY: ChangeSet = { added: [], removed: [], changed: [] };

/**
 * Errors that retrying cannot mend: before the first snapshot they end the watch and reject its iterators (a
 * misspelled app must not hang a `for await` forever). After it, every error keeps the last good secrets.
 */
const FATAL_BEFORE_FIRST: ReadonlySet<string> = new Set([
  ErrorCode.CONFIG,
  ErrorCode.NOT_FOUND,
  ErrorCode.UNAUTHORIZED,
  ErrorCode.FORBIDDEN,
  ErrorCode.INVALID_TOKEN,
  ErrorCode.DECRYPT,
  ErrorCode.REFERENCE,
]);

/** Names of keys added, removed and changed between two sets of secrets. */
export function diffSecrets(before: readonly Secret[] | undefined, after: readonly Secret[]): ChangeSet {
  const id = (s: Secret) => `${s.path}\0${s.key}`;
  const old = new Map((before ?? []).map((s) => [id(s), s]));
  const now = new Map(after.map((s) => [id(s), s]));
  const added = new Set<string>();
  const removed = new Set<string>();
  const changed = new Set<string>();
  for (const [k, s] of now) {
    const prev = old.get(k);
    if (!prev) added.add(s.key);
    else if (prev.value !== s.value) changed.add(s.key);
  }
  for (const [k, s] of old) if (!now.has(k)) removed.add(s.key);
  return { added: [...added], removed: [...removed], changed: [...changed] };
}

export function isEmptyChange(c: ChangeSet): boolean {
  return c.added.length === 0 && c.removed.length === 0 && c.changed.length === 0;
}

/**
 * A running watch: an async iterable of snapshots (the current one first, then one per change; a slow
 * consumer gets the newest state with the changes merged) and an event emitter. Stops on `close()` or
 * when the signal aborts.
 */
export class SecretsWatch extends EventEmitter<WatchEvents> implements AsyncIterable<WatchSnapshot> {
  readonly #source: WatchSource;
  readonly #logger: Logger;
  readonly #interval: number;
  readonly #jitter: number;
  readonly #staleAfter: number;
  readonly #controller = new AbortController();
  #current: readonly Secret[] | undefined;
  #generation = 0;
  #waiters: (() => void)[] = [];
  #lastSuccess: Date | undefined;
  /** When the watch started: the staleness clock before the first success. */
  readonly #startedAt = Date.now();
  #stale = false;
  /** The error that ended the watch before its first snapshot; iterators reject with it. */
  #fatal: PhaseError | undefined;
  /** The wait between polls: its timer and how to end it early (close). */
  #timer: NodeJS.Timeout | undefined;
  #endWait: (() => void) | undefined;
  readonly #done: Promise<void>;

  /** `timeoutMs`: the client's deadline of one call, which the default staleness allows for. */
  constructor(source: WatchSource, options: WatchOptions, logger: Logger, timeoutMs = 0) {
    super();
    this.#source = source;
    this.#logger = logger;
    this.#interval = options.intervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    if (!Number.isFinite(this.#interval) || this.#interval < MIN_POLL_INTERVAL_MS) {
      throw new PhaseError(
        ErrorCode.CONFIG,
        `watch option intervalMs must be a number >= ${MIN_POLL_INTERVAL_MS}`,
      );
    }
    this.#jitter = Math.min(Math.max(options.jitter ?? 0.1, 0), 0.5);
    this.#staleAfter = options.staleAfterMs ?? defaultStaleAfterMs(this.#interval, timeoutMs);
    if (options.signal) {
      if (options.signal.aborted) this.#controller.abort();
      else options.signal.addEventListener('abort', () => void this.close(), { once: true });
    }
    this.#done = this.#loop();
  }

  /** The newest secrets, once the first read succeeded. */
  get current(): readonly Secret[] | undefined {
    return this.#current;
  }

  /** True while no probe has succeeded for `staleAfterMs`. */
  get stale(): boolean {
    return this.#stale;
  }

  /** Stops polling; iterators end. Resolves when the loop has exited. */
  async close(): Promise<void> {
    this.#controller.abort();
    this.#wake();
    clearTimeout(this.#timer);
    this.#endWait?.();
    await this.#done;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WatchSnapshot> {
    let seen = 0;
    let delivered: readonly Secret[] | undefined;
    const signal = this.#controller.signal;
    while (!signal.aborted) {
      if (this.#generation > seen && this.#current) {
        seen = this.#generation;
        yield snapshotOf(delivered, this.#current);
        delivered = this.#current;
        continue;
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    if (this.#fatal) throw this.#fatal;
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  #publish(secrets: readonly Secret[]): void {
    this.#current = secrets;
    this.#generation++;
    this.#wake();
  }

  async #loop(): Promise<void> {
    const signal = this.#controller.signal;
    let stamps: Map<string, string> | undefined;
    let failures = 0;
    while (!signal.aborted) {
      let delay: number;
      const started = performance.now();
      try {
        const probed = await this.#source.probe(signal);
        const changed = stamps === undefined || differ(stamps, probed);
        if (changed) {
          const { secrets, dependencies } = await this.#source.read(signal);
          const changes = diffSecrets(this.#current, secrets);
          const first = this.#current === undefined;
          // Record the stamps seen before the read: a write racing the read shows up at the next probe.
          stamps = new Map([...dependencies].map((env) => [env, probed.get(env) ?? '']));
          if (first || !isEmptyChange(changes)) {
            this.#publish(secrets);
            if (!first) {
              this.#logger.debug({ ...counts(changes) }, 'secrets changed');
              this.emit('change', changes);
            }
          } else {
            this.#current = secrets;
          }
        }
        failures = 0;
        this.#lastSuccess = new Date();
        this.emit('polled', { changed, durationMs: performance.now() - started });
        if (this.#stale) {
          this.#stale = false;
          this.emit('recovered');
        }
        delay = this.#interval * (1 - this.#jitter + 2 * this.#jitter * Math.random());
      } catch (error) {
        if (signal.aborted) break;
        const err =
          error instanceof PhaseError
            ? error
            : new PhaseError(ErrorCode.NETWORK, 'watch failed unexpectedly', { cause: error });
        failures++;
        if (this.#current === undefined && FATAL_BEFORE_FIRST.has(err.code)) {
          this.#fatal = err;
          this.#controller.abort();
          // Listeners hear it too; with none, eventemitter3 drops it, and the iterators carry it instead.
          this.emit('error', err);
          break;
        }
        this.emit('error', err);
        // One staleness rule: no successful probe for staleAfterMs, counted from the start before the first one.
        const since = this.#lastSuccess?.getTime() ?? this.#startedAt;
        if (!this.#stale && Date.now() - since >= this.#staleAfter) {
          this.#stale = true;
          this.emit('stale', { lastSuccessAt: this.#lastSuccess });
        }
        // Back off quickly from short blips, never beyond the interval unless Phase asks for longer.
        const backoff = Math.min(this.#interval, 250 * 2 ** Math.min(failures, 10));
        delay = Math.max(err.retryAfterMs ?? 0, backoff) * (1 + this.#jitter * Math.random());
      }
      if (signal.aborted) break;
      // A plain timer that close() ends: no promise machinery or abort listener per poll.
      await new Promise<void>((resolve) => {
        this.#endWait = resolve;
        this.#timer = setTimeout(resolve, delay);
      });
      this.#timer = undefined;
      this.#endWait = undefined;
    }
    this.#wake();
  }
}

/** True when a recorded stamp no longer matches the probed one. */
function differ(stamps: ReadonlyMap<string, string>, probed: ReadonlyMap<string, string>): boolean {
  for (const [env, at] of stamps) if (probed.get(env) !== at) return true;
  return false;
}

/**
 * The snapshot of `secrets` after `previous`. Its `changes` are worked out when first read: a consumer that keeps
 * its own account (the agent's writer) does not pay for a second diff of every key on every change.
 */
function snapshotOf(previous: readonly Secret[] | undefined, secrets: readonly Secret[]): WatchSnapshot {
  let changes: ChangeSet | undefined;
  return {
    secrets,
    get changes(): ChangeSet {
      changes ??= previous === undefined ? EMPTY : diffSecrets(previous, secrets);
      return changes;
    },
  };
}

function counts(c: ChangeSet): { added: number; removed: number; changed: number } {
  return { added: c.added.length, removed: c.removed.length, changed: c.changed.length };
}
