import { setTimeout as sleep } from 'node:timers/promises';
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';

import { EventEmitter } from 'eventemitter3';

import { ErrorCode, PhaseError } from './errors.js';
import { FORMAT_FILE_NAMES } from './format.js';
import { DATA_LINK, MANIFEST_NAME, parseSnapshotManifest, type SecretsDirSource } from './snapshot-layout.js';
import type { CallOptions, ChangeSet } from './types.js';

export type { SecretsDirSource } from './snapshot-layout.js';

// A reader that resolved `..data` just before the writer pruned that version sees ENOENT and starts over,
// after a short, growing pause so that a burst of flips can finish.
const MAX_ATTEMPTS = 30;

/** One consistent version of the agent's snapshot directory. */
export interface SecretsDirSnapshot {
  /** The manifest's version; increases by one with every change the agent applies. */
  readonly version: number;
  /** ISO 8601 time of the secrets' last change in Phase. */
  readonly updatedAt: string;
  readonly source: SecretsDirSource;
  /** The keys in `secrets`, sorted. */
  readonly keys: readonly string[];
  /** Values by key, in an object without a prototype (a key such as `__proto__` is an ordinary entry). */
  readonly secrets: Readonly<Record<string, string>>;
}

/** Payload of the `change` event: names only, never values. */
export interface SecretsDirChange extends ChangeSet {
  /** Version of the snapshot that introduced the change. */
  readonly version: number;
}

/** Events of {@link SecretsDirWatcher}. */
export interface SecretsDirWatcherEvents {
  /** A new version with different keys or values was read. Not emitted for the first snapshot. */
  change: [change: SecretsDirChange];
  /** Reading failed (no snapshot yet, unreadable files). Watching continues; the same failure is reported once. */
  error: [error: PhaseError];
}

/** Options of {@link watchSecretsDir}. */
export interface WatchSecretsDirOptions {
  /** Stops watching and ends the iteration. */
  readonly signal?: AbortSignal;
  /**
   * How often `..data` is checked in case a file system event was missed (network file systems, some overlays).
   * @default 1000
   * @unit milliseconds
   */
  readonly pollIntervalMs?: number;
  /**
   * How long to wait after a file system event before reading, so one flip's burst of events is read once.
   * @default 50
   * @unit milliseconds
   */
  readonly debounceMs?: number;
}

interface Read {
  /** The version directory `..data` pointed to. */
  readonly target: string;
  readonly snapshot: SecretsDirSnapshot;
}

/**
 * Reads the agent's snapshot directory consistently: `..data` is resolved once and every file comes from that one
 * version, so the result never mixes two versions. Values come from the per-key files when the `files` format was
 * written, else from `secrets.json`. A key the agent could not write as a file (an unsafe name) is read from
 * `secrets.json` when present and left out otherwise.
 *
 * @throws {PhaseError} `NOT_FOUND` when the directory holds no snapshot yet, `CONFIG` when it is not a valid
 *   snapshot or has neither the `files` nor the `json` format, `CONFLICT` when it kept changing during the read,
 *   `ABORTED` when `signal` fired. Messages name files and keys, never values.
 */
export async function readSecretsDir(dir: string, options: CallOptions = {}): Promise<SecretsDirSnapshot> {
  return (await readConsistent(dir, options.signal)).snapshot;
}

async function readConsistent(dir: string, signal: AbortSignal | undefined): Promise<Read> {
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    throwIfAborted(signal, dir);
    const target = await readDataLink(dir);
    try {
      return { target, snapshot: await readVersion(dir, target) };
    } catch (error) {
      // The version vanished under us: the writer flipped and pruned it. Start over from `..data`.
      if (errnoCode(error) !== 'ENOENT') throw error;
    }
    await sleep(Math.min(attempt, 10) * Math.random() * 2);
  }
  throw new PhaseError(
    ErrorCode.CONFLICT,
    `The snapshot in ${dir} changed ${MAX_ATTEMPTS} times while it was being read; try again`,
  );
}

async function readDataLink(dir: string): Promise<string> {
  let target: string;
  try {
    target = await readlink(join(dir, DATA_LINK));
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new PhaseError(
        ErrorCode.NOT_FOUND,
        `No phasekit snapshot in ${dir}: ${DATA_LINK} does not exist (has the agent written one yet?)`,
        { cause: error },
      );
    }
    if (code === 'EINVAL') {
      throw new PhaseError(
        ErrorCode.CONFIG,
        `${join(dir, DATA_LINK)} is not a symlink; not a phasekit snapshot`,
        {
          cause: error,
        },
      );
    }
    throw new PhaseError(ErrorCode.CONFIG, `Cannot read ${join(dir, DATA_LINK)}`, { cause: error });
  }
  if (target.includes('/') || !target.startsWith('..')) {
    throw new PhaseError(
      ErrorCode.CONFIG,
      `${join(dir, DATA_LINK)} points outside the snapshot directory (${JSON.stringify(target)})`,
    );
  }
  return target;
}

/** Reads one version directory. ENOENT propagates as is, so the caller can retry. */
async function readVersion(dir: string, target: string): Promise<SecretsDirSnapshot> {
  const versionDir = join(dir, target);
  const manifestPath = join(versionDir, MANIFEST_NAME);
  const manifest = parseSnapshotManifest(await readFile(manifestPath, 'utf8'), manifestPath);
  const hasFiles = manifest.formats.includes('files');
  const hasJson = manifest.formats.includes('json');
  if (!hasFiles && !hasJson) {
    throw new PhaseError(
      ErrorCode.CONFIG,
      `The snapshot in ${dir} has no machine-readable values (formats: ${manifest.formats.join(', ')}); ` +
        'enable the `files` or `json` format in the agent (--format files or --format json)',
    );
  }
  const refused = new Set(manifest.refusedKeys);
  const values = new Map<string, string>();
  if (hasFiles) {
    for (const key of manifest.keys) {
      if (!refused.has(key)) values.set(key, await readFile(join(versionDir, key), 'utf8'));
    }
  }
  if (hasJson && (!hasFiles || refused.size > 0)) {
    const fromJson = parseJsonValues(
      await readFile(join(versionDir, FORMAT_FILE_NAMES.json), 'utf8'),
      versionDir,
    );
    for (const key of manifest.keys) {
      if (values.has(key)) continue;
      const value = fromJson.get(key);
      if (value === undefined) {
        throw new PhaseError(
          ErrorCode.CONFIG,
          `${join(versionDir, FORMAT_FILE_NAMES.json)} lacks key ${JSON.stringify(key)} listed in its manifest`,
        );
      }
      values.set(key, value);
    }
  }
  const secrets = Object.create(null) as Record<string, string>;
  const keys: string[] = [];
  for (const key of manifest.keys) {
    const value = values.get(key);
    if (value === undefined) continue;
    secrets[key] = value;
    keys.push(key);
  }
  return Object.freeze({
    version: manifest.version,
    updatedAt: manifest.updatedAt,
    source: Object.freeze({ ...manifest.source }),
    keys: Object.freeze(keys),
    secrets: Object.freeze(secrets),
  });
}

function parseJsonValues(text: string, versionDir: string): Map<string, string> {
  const where = join(versionDir, FORMAT_FILE_NAMES.json);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    // Not chained: a JSON syntax error's message quotes the text around the error, which holds values.
    throw new PhaseError(ErrorCode.CONFIG, `${where} is not valid JSON`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new PhaseError(ErrorCode.CONFIG, `${where} is not a JSON object`);
  }
  const values = new Map<string, string>();
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value !== 'string') {
      throw new PhaseError(
        ErrorCode.CONFIG,
        `${where} has a non-string value for key ${JSON.stringify(key)}`,
      );
    }
    values.set(key, value);
  }
  return values;
}

function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;
}

function throwIfAborted(signal: AbortSignal | undefined, dir: string): void {
  if (signal?.aborted) {
    throw new PhaseError(ErrorCode.ABORTED, `Reading the snapshot in ${dir} was aborted`, {
      cause: signal.reason,
    });
  }
}

function diffSnapshots(before: SecretsDirSnapshot, after: SecretsDirSnapshot): SecretsDirChange {
  const added: string[] = [];
  const changed: string[] = [];
  for (const key of after.keys) {
    if (!Object.hasOwn(before.secrets, key)) added.push(key);
    else if (before.secrets[key] !== after.secrets[key]) changed.push(key);
  }
  const removed = before.keys.filter((key) => !Object.hasOwn(after.secrets, key));
  return { version: after.version, added, removed, changed };
}

function toPhaseError(error: unknown, dir: string): PhaseError {
  return error instanceof PhaseError
    ? error
    : new PhaseError(ErrorCode.CONFIG, `Cannot read the snapshot in ${dir}`, { cause: error });
}

/**
 * Follows the agent's snapshot directory. Iterate it (`for await`) to get the current snapshot first and then
 * every new version; a slow consumer gets the latest version, not a backlog. Listen to `change` for the names of
 * added, removed and changed keys. Leaving the loop, `close()` or the signal stops it and releases every handle.
 */
export class SecretsDirWatcher
  extends EventEmitter<SecretsDirWatcherEvents>
  implements AsyncIterable<SecretsDirSnapshot>
{
  readonly #dir: string;
  readonly #debounceMs: number;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = (): void => this.close();
  #fsWatcher: FSWatcher | undefined;
  #poll: ReturnType<typeof setInterval> | undefined;
  #debounce: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #checking = false;
  #checkAgain = false;
  #target: string | undefined;
  #latest: SecretsDirSnapshot | undefined;
  #seq = 0;
  #lastErrorMessage: string | undefined;
  #waiters = new Set<() => void>();

  constructor(dir: string, options: WatchSecretsDirOptions = {}) {
    super();
    const pollIntervalMs = options.pollIntervalMs ?? 1000;
    const debounceMs = options.debounceMs ?? 50;
    for (const [name, value] of [
      ['pollIntervalMs', pollIntervalMs],
      ['debounceMs', debounceMs],
    ] as const) {
      if (!Number.isFinite(value) || value < 0) {
        throw new PhaseError(ErrorCode.CONFIG, `\`${name}\` must be a non-negative number of milliseconds`);
      }
    }
    this.#dir = dir;
    this.#debounceMs = debounceMs;
    this.#signal = options.signal;
    if (this.#signal?.aborted) {
      this.#closed = true;
      return;
    }
    this.#signal?.addEventListener('abort', this.#onAbort, { once: true });
    this.#poll = setInterval(
      () => {
        this.#startFsWatch();
        void this.#check();
      },
      Math.max(pollIntervalMs, 1),
    );
    this.#startFsWatch();
    void this.#check();
  }

  /** The directory being watched. */
  get dir(): string {
    return this.#dir;
  }

  /** The latest snapshot read, if any. */
  get current(): SecretsDirSnapshot | undefined {
    return this.#latest;
  }

  /** True once stopped. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Stops watching, releases the file system watcher and timers, and ends every iteration. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    clearInterval(this.#poll);
    clearTimeout(this.#debounce);
    this.#fsWatcher?.close();
    this.#fsWatcher = undefined;
    this.#wake();
  }

  [Symbol.asyncIterator](): AsyncIterator<SecretsDirSnapshot> {
    let seen = 0;
    return {
      next: async (): Promise<IteratorResult<SecretsDirSnapshot>> => {
        for (;;) {
          if (this.#closed) return { value: undefined, done: true };
          if (this.#latest && this.#seq > seen) {
            seen = this.#seq;
            return { value: this.#latest, done: false };
          }
          await new Promise<void>((resolve) => this.#waiters.add(resolve));
        }
      },
      return: (): Promise<IteratorResult<SecretsDirSnapshot>> => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  #wake(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const resolve of waiters) resolve();
  }

  #startFsWatch(): void {
    if (this.#closed || this.#fsWatcher) return;
    try {
      // The flip renames `..data_tmp` over `..data`, which inotify and friends report as an event on the directory.
      const watcher = watch(this.#dir, { persistent: true }, () => this.#schedule());
      watcher.on('error', () => {
        // The directory was removed or replaced; the poll re-creates the watcher once it is back.
        watcher.close();
        if (this.#fsWatcher === watcher) this.#fsWatcher = undefined;
        this.#schedule();
      });
      this.#fsWatcher = watcher;
    } catch {
      // No directory yet: the poll keeps trying.
    }
  }

  #schedule(): void {
    // Throttle rather than debounce: a steady stream of events still gets read every `debounceMs`.
    if (this.#closed || this.#debounce !== undefined) return;
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      void this.#check();
    }, this.#debounceMs);
  }

  async #check(): Promise<void> {
    if (this.#checking) {
      this.#checkAgain = true;
      return;
    }
    this.#checking = true;
    try {
      do {
        this.#checkAgain = false;
        await this.#checkOnce();
      } while (this.#checkAgain && !this.#closed);
    } finally {
      this.#checking = false;
    }
  }

  async #checkOnce(): Promise<void> {
    if (this.#closed) return;
    try {
      if (this.#latest) {
        let target: string | undefined;
        try {
          target = await readlink(join(this.#dir, DATA_LINK));
        } catch {
          target = undefined;
        }
        if (target === this.#target) return;
      }
      const read = await readConsistent(this.#dir, undefined);
      if (this.#closed) return;
      this.#lastErrorMessage = undefined;
      const previous = this.#latest;
      this.#target = read.target;
      this.#latest = read.snapshot;
      this.#seq++;
      this.#wake();
      if (previous) {
        const change = diffSnapshots(previous, read.snapshot);
        if (change.added.length + change.removed.length + change.changed.length > 0)
          this.emit('change', change);
      }
    } catch (error) {
      if (this.#closed) return;
      const phaseError = toPhaseError(error, this.#dir);
      if (phaseError.code === ErrorCode.NOT_FOUND) {
        // The directory may have been removed and re-created: watch the new one once the poll finds it.
        this.#fsWatcher?.close();
        this.#fsWatcher = undefined;
      }
      if (phaseError.message !== this.#lastErrorMessage) {
        this.#lastErrorMessage = phaseError.message;
        this.emit('error', phaseError);
      }
    }
  }
}

/**
 * Watches the agent's snapshot directory; see {@link SecretsDirWatcher}.
 *
 * @example
 * for await (const snapshot of watchSecretsDir('/phase/secrets', { signal })) {
 *   reconfigure(snapshot.secrets);
 * }
 */
export function watchSecretsDir(dir: string, options: WatchSecretsDirOptions = {}): SecretsDirWatcher {
  return new SecretsDirWatcher(dir, options);
}
