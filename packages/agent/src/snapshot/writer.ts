import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  lchownSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import { join } from 'node:path';

import {
  ErrorCode,
  FORMAT_FILE_NAMES,
  PhaseError,
  formatSecrets,
  isOutputFormat,
  parseSnapshotManifest,
} from '@phasekit/sdk';
import { AgentError, AgentErrorCode } from '../errors.js';
import type {
  ChangeSet,
  Logger,
  OutputFormat,
  SecretEntry,
  SecretsDirSource,
  SnapshotManifest,
} from '@phasekit/sdk';

import {
  childPath,
  ensureOutputDir,
  entryKinds,
  errnoCode,
  fsyncDir,
  fsyncFiles,
  isDurable,
  readlinkOrUndefined,
  removeVersionDir,
  replaceSymlink,
  writeNewFile,
} from './fs-ops.js';
import type { Ownership } from './fs-ops.js';
import {
  DATA_LINK,
  DATA_TMP_LINK,
  MANIFEST_NAME,
  SNAPSHOT_FORMATS,
  VERSION_DIR_PATTERN,
  isSnapshotFormat,
  unsafeKeyReason,
  versionDirName,
} from './layout.js';
import type { SnapshotFormat } from './layout.js';

/** Where the secrets came from; recorded in the manifest. */
export type SnapshotSource = SecretsDirSource;

/** Options of {@link createSnapshotWriter}. */
export interface SnapshotWriterOptions {
  /** The snapshot directory (`--out`). Created when missing. */
  readonly dir: string;
  /** What to write: `files` (one file per key) and rendered formats. At least one; duplicates are ignored. */
  readonly formats: ReadonlyArray<SnapshotFormat>;
  /**
   * Mode of every written file (the version directory itself is always 0755).
   * @default 0o400
   */
  readonly fileMode?: number;
  /** Owner of every written file, directory and link (`--uid`); unchanged when omitted. */
  readonly uid?: number;
  /** Group of every written file, directory and link (`--gid`); unchanged when omitted. */
  readonly gid?: number;
  /** Where the secrets came from, recorded in `.phasekit.json`. */
  readonly source: SnapshotSource;
  /** Receives key names, counts, versions and paths; never a value. */
  readonly logger?: Logger;
  /**
   * Clock used for version directory names and the default `updatedAt` (tests replace it).
   * @default () => new Date()
   */
  readonly now?: () => Date;
}

/** Options of {@link SnapshotWriter.write}. */
export interface WriteOptions {
  /** ISO 8601 time of the secrets' last change in Phase, recorded in the manifest. Defaults to now. */
  readonly updatedAt?: string;
  /**
   * Refuse the whole write (AgentError `GUARD_REFUSED`, nothing touched) when a format cannot hold a key, instead
   * of leaving the key out of that format. The CLI sets it unless `--skip-invalid-keys`.
   * @default false
   */
  readonly refuseInvalidKeys?: boolean;
}

/** A key left out of one format, and why. The other formats still contain it. */
export interface RefusedKey {
  readonly key: string;
  /** The format that cannot hold it: `files` for an unsafe file name, or a rendered format. */
  readonly format: SnapshotFormat;
  /** Names the key, never its value. */
  readonly reason: string;
}

/** Outcome of {@link SnapshotWriter.write}. */
export interface WriteResult {
  /** False when the content was unchanged and nothing was written. */
  readonly changed: boolean;
  /** The manifest version now current (incremented once per flip of `..data`). */
  readonly version: number;
  /** Absolute path of the version directory `..data` points to. */
  readonly versionDir: string;
  /** Names of keys added, removed and changed by this write (all empty when `changed` is false). */
  readonly changes: ChangeSet;
  /** Keys not written as files (unsafe names); empty without the `files` format. */
  readonly refusedKeys: readonly RefusedKey[];
}

/** The current snapshot as recorded in its manifest. */
export interface SnapshotInfo {
  readonly version: number;
  readonly keys: readonly string[];
  readonly sha256: string;
  readonly updatedAt: string;
}

export type { SnapshotManifest } from '@phasekit/sdk';

interface CurrentState {
  readonly dirName: string;
  readonly manifest: SnapshotManifest;
  /** Values of the current snapshot, `undefined` where they could not be recovered after a restart. */
  readonly values: ReadonlyMap<string, string | undefined>;
}

const DEFAULT_FILE_MODE = 0o400;
const VERSION_DIR_MODE = 0o755;
const OPTION_NAMES: ReadonlySet<string> = new Set([
  'dir',
  'formats',
  'fileMode',
  'uid',
  'gid',
  'source',
  'logger',
  'now',
]);

const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * Writes secrets into a directory with the kubelet's AtomicWriter layout: an immutable version directory per
 * change, a `..data` symlink flipped by one `rename`, and stable top-level links `NAME -> ..data/NAME`. A reader
 * that resolves `..data` once never sees a half-written file or a mix of two versions.
 *
 * Writes are serialised. A write whose content (entries, formats, mode, owner, source) matches the current
 * manifest changes nothing. A write that fails (a format cannot represent a value, the disk is full) leaves the
 * previous snapshot untouched. On its first use the writer takes over a snapshot left by an earlier run, even one
 * killed mid-write, and removes that run's leftovers.
 */
export class SnapshotWriter {
  readonly #dir: string;
  readonly #formats: readonly SnapshotFormat[];
  readonly #fileMode: number;
  readonly #owner: Ownership | undefined;
  readonly #uid: number | undefined;
  readonly #gid: number | undefined;
  readonly #source: SnapshotSource;
  readonly #log: Logger;
  readonly #now: () => Date;

  #queue: Promise<unknown> = Promise.resolve();
  #initialised = false;
  #current: CurrentState | undefined;
  /** Highest version seen on disk, so versions keep increasing across restarts. */
  #lastVersion = 0;
  /** Set when the steps after a flip (links, pruning) failed; the next write retries them. */
  #needsRepair = false;
  /** Whether fsync means anything for this directory (false on tmpfs); decided on first use. */
  #durable = true;

  constructor(options: SnapshotWriterOptions) {
    validateOptions(options);
    this.#dir = options.dir;
    const wanted = new Set<SnapshotFormat>(options.formats);
    this.#formats = SNAPSHOT_FORMATS.filter((format) => wanted.has(format));
    this.#fileMode = options.fileMode ?? DEFAULT_FILE_MODE;
    this.#uid = options.uid;
    this.#gid = options.gid;
    this.#owner =
      options.uid === undefined && options.gid === undefined
        ? undefined
        : { uid: options.uid ?? -1, gid: options.gid ?? -1 };
    this.#source = {
      host: options.source.host,
      app: options.source.app,
      env: options.source.env,
      path: options.source.path,
    };
    this.#log = options.logger ?? silentLogger;
    this.#now = options.now ?? (() => new Date());
  }

  /** The snapshot directory. */
  get dir(): string {
    return this.#dir;
  }

  /**
   * Applies `entries` as the new snapshot, whole or not at all.
   *
   * @throws {PhaseError} `CONFIG` when a format cannot represent a key or value, keys repeat, or a top-level name
   *   is taken by something that is not a link of ours. File system errors are passed through. In every failure
   *   case the previous snapshot is left as it was.
   */
  write(entries: ReadonlyArray<SecretEntry>, options: WriteOptions = {}): Promise<WriteResult> {
    return this.#serialise(() => this.#write(entries, options));
  }

  /**
   * Takes over the directory now rather than at the first write: keeps a valid current snapshot, removes every
   * version directory `..data` does not point to, and leftovers of a killed run. Later calls do nothing.
   */
  prepare(): Promise<void> {
    return this.#serialise(() => this.#init());
  }

  /** The current snapshot's manifest facts, or `undefined` when there is none. */
  current(): Promise<SnapshotInfo | undefined> {
    return this.#serialise(async () => {
      await this.#init();
      if (!this.#current) return undefined;
      const { version, keys, sha256, updatedAt } = this.#current.manifest;
      return { version, keys, sha256, updatedAt };
    });
  }

  /**
   * Removes the whole snapshot: the top-level links, `..data`, every version directory and leftover, and the
   * directory itself when that leaves it empty (`--cleanup`). Entries that are not the writer's are kept.
   */
  cleanup(): Promise<void> {
    return this.#serialise(async () => {
      const names = readdirOrEmpty(this.#dir);
      // Links first, then `..data`, then the versions: a reader sees fewer names, never a link into nothing.
      for (const name of names) {
        if (isOurLink(name, readlinkOrUndefined(join(this.#dir, name)))) {
          rmSync(join(this.#dir, name), { force: true });
        }
      }
      rmSync(join(this.#dir, DATA_LINK), { force: true });
      rmSync(join(this.#dir, DATA_TMP_LINK), { force: true });
      for (const name of names) {
        if (VERSION_DIR_PATTERN.test(name)) rmSync(join(this.#dir, name), { recursive: true, force: true });
      }
      try {
        rmdirSync(this.#dir);
      } catch {
        // Not empty (someone else's files) or a mount point: keeping the directory is fine.
        try {
          if (isDurable(this.#dir)) await fsyncDir(this.#dir);
        } catch {
          // The directory is gone or unreadable; nothing left to flush.
        }
      }
      this.#current = undefined;
      this.#initialised = false;
      this.#needsRepair = false;
      this.#log.info({ dir: this.#dir }, 'snapshot removed');
    });
  }

  #serialise<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #write(entries: ReadonlyArray<SecretEntry>, options: WriteOptions): Promise<WriteResult> {
    await this.#init();
    const sorted = sortEntries(entries);
    const refusedKeys = this.#formats.includes('files') ? refuse(sorted) : [];
    // The manifest's refusedKeys tells readers which keys have no file of their own.
    const refusedNames = new Set(refusedKeys.map((refused) => refused.key));
    const sha256 = this.#hash(sorted);
    const current = this.#current;

    if (current && current.manifest.sha256 === sha256) {
      if (this.#needsRepair) await this.#repair(current);
      this.#log.debug({ dir: this.#dir, version: current.manifest.version }, 'snapshot unchanged');
      return {
        changed: false,
        version: current.manifest.version,
        versionDir: join(this.#dir, current.dirName),
        changes: { added: [], removed: [], changed: [] },
        refusedKeys,
      };
    }

    // Render everything before touching the disk: a format that cannot hold a value fails the whole write here.
    const files = new Map<string, string>();
    if (this.#formats.includes('files')) {
      for (const { key, value } of sorted) if (!refusedNames.has(key)) files.set(key, value);
    }
    for (const format of this.#formats) {
      if (format === 'files') continue;
      const rendered = render(sorted, format);
      files.set(FORMAT_FILE_NAMES[format], rendered.text);
      refusedKeys.push(...rendered.refused);
    }
    if (options.refuseInvalidKeys === true && refusedKeys.length > 0) {
      const list = refusedKeys.map((r) => `${JSON.stringify(r.key)} (${r.format})`).join(', ');
      throw new AgentError(
        AgentErrorCode.GUARD_REFUSED,
        `${refusedKeys.length === 1 ? 'a key' : `${refusedKeys.length} keys`} cannot be written in a requested format: ${list}; ${whyRefused(refusedKeys[0]!)}. Nothing was written (use --skip-invalid-keys to leave such keys out)`,
      );
    }
    const manifest: SnapshotManifest = {
      version: this.#lastVersion + 1,
      sha256,
      updatedAt: options.updatedAt ?? this.#now().toISOString(),
      source: this.#source,
      keys: sorted.map((entry) => entry.key),
      formats: this.#formats,
      refusedKeys: [...refusedNames],
      leftOut: refusedKeys.map(({ key, format }) => ({ key, format })),
    };
    files.set(MANIFEST_NAME, `${JSON.stringify(manifest, null, 2)}\n`);
    this.#checkTopLevelNames(files.keys());

    const dirName = await this.#buildVersionDir(files);
    await this.#flip(dirName);

    const previous = current;
    this.#lastVersion = manifest.version;
    this.#current = { dirName, manifest, values: new Map(sorted.map((entry) => [entry.key, entry.value])) };
    this.#needsRepair = true;
    await this.#repair(this.#current);

    for (const refused of refusedKeys) {
      this.#log.warn({ key: refused.key, format: refused.format, dir: this.#dir }, refused.reason);
    }
    const changes = diff(previous?.values, sorted);
    // The caller reports the write; this line is for debugging the writer itself.
    this.#log.debug(
      {
        dir: this.#dir,
        version: manifest.version,
        keys: manifest.keys.length,
        added: changes.added,
        removed: changes.removed,
        changed: changes.changed,
      },
      'snapshot written',
    );
    return {
      changed: true,
      version: manifest.version,
      versionDir: join(this.#dir, dirName),
      changes,
      refusedKeys,
    };
  }

  #hash(sorted: readonly SecretEntry[]): string {
    // Canonical: sorted entries as pairs, formats in canonical order, and everything that shapes the files on disk.
    const canonical = JSON.stringify({
      v: 1,
      entries: sorted.map((entry) => [entry.key, entry.value]),
      formats: this.#formats,
      fileMode: this.#fileMode,
      uid: this.#uid ?? null,
      gid: this.#gid ?? null,
      source: this.#source,
    });
    return createHash('sha256').update(canonical).digest('hex');
  }

  /** Refuses (before anything is written) to replace a top-level entry that is not a symlink, e.g. a user's file. */
  #checkTopLevelNames(names: Iterable<string>): void {
    const kinds = entryKinds(this.#dir);
    for (const name of names) {
      if (kinds.get(name) === 'other') {
        throw new PhaseError(
          ErrorCode.CONFIG,
          `Cannot link ${JSON.stringify(name)} in snapshot directory ${this.#dir}: a file or directory that phasekit did not create is in the way`,
        );
      }
    }
  }

  /** Writes a complete, fsynced version directory; on failure removes it and rethrows. */
  async #buildVersionDir(files: ReadonlyMap<string, string>): Promise<string> {
    const dirName = this.#mkdirVersion();
    const path = join(this.#dir, dirName);
    try {
      if (this.#owner) chownSync(path, this.#owner.uid, this.#owner.gid);
      chmodSync(path, VERSION_DIR_MODE);
      for (const [name, data] of files) {
        writeNewFile(childPath(path, name), data, { mode: this.#fileMode, owner: this.#owner });
      }
      if (this.#durable) {
        // Several at a time: concurrent fsyncs share the file system's journal commits.
        await fsyncFiles(path, files.keys());
        await fsyncDir(path);
      }
      return dirName;
    } catch (error) {
      try {
        removeVersionDir(path);
      } catch {
        // The failure being reported matters more; the next takeover removes the leftover.
      }
      throw error;
    }
  }

  #mkdirVersion(): string {
    for (let attempt = 0; ; attempt++) {
      // Unique, not secret: a clash is retried below.
      const name = versionDirName(this.#now(), Math.floor(Math.random() * 1_000_000_000));
      try {
        mkdirSync(join(this.#dir, name), { mode: VERSION_DIR_MODE });
        return name;
      } catch (error) {
        if (errnoCode(error) !== 'EEXIST' || attempt >= 100) throw error;
      }
    }
  }

  /** The one atomic step: `..data_tmp -> dirName` renamed over `..data`, then the parent directory fsynced. */
  async #flip(dirName: string): Promise<void> {
    const tmpPath = join(this.#dir, DATA_TMP_LINK);
    try {
      rmSync(tmpPath, { force: true });
      symlinkSync(dirName, tmpPath);
      if (this.#owner) lchownSync(tmpPath, this.#owner.uid, this.#owner.gid);
      renameSync(tmpPath, join(this.#dir, DATA_LINK));
    } catch (error) {
      try {
        rmSync(tmpPath, { force: true });
        rmSync(join(this.#dir, dirName), { recursive: true, force: true });
      } catch {
        // As in #buildVersionDir.
      }
      throw error;
    }
    if (!this.#durable) return;
    try {
      await fsyncDir(this.#dir);
    } catch (error) {
      // The rename is done and visible; only its durability across a power loss is in doubt.
      this.#log.warn({ dir: this.#dir, err: error }, 'could not fsync the snapshot directory after the flip');
    }
  }

  /**
   * Brings the directory in line with `state` after a flip or a takeover: a link for every name in the version,
   * no link for a name that disappeared, no other version directory, no `..data_tmp`. Failures are logged and
   * retried on the next write; the flip already made the new version current.
   */
  async #repair(state: CurrentState): Promise<void> {
    try {
      const versionNames = new Set(readdirSync(childPath(this.#dir, state.dirName)));
      const kinds = entryKinds(this.#dir);
      for (const name of versionNames) {
        const path = childPath(this.#dir, name);
        const wanted = `${DATA_LINK}/${name}`;
        const kind = kinds.get(name) ?? 'missing';
        if (kind === 'other') continue; // Checked before the build; never replace what is not ours.
        if (kind === 'symlink' && readlinkOrUndefined(path) === wanted) continue;
        replaceSymlink(path, wanted, {
          tmpPath: join(this.#dir, `${DATA_TMP_LINK}.link`),
          owner: this.#owner,
          kind,
        });
      }
      for (const name of kinds.keys()) {
        const path = childPath(this.#dir, name);
        if (name === state.dirName || name === DATA_LINK) continue;
        if (name === DATA_TMP_LINK || name === `${DATA_TMP_LINK}.link`) {
          rmSync(path, { force: true });
        } else if (VERSION_DIR_PATTERN.test(name)) {
          removeVersionDir(path);
        } else if (!versionNames.has(name) && isOurLink(name, readlinkOrUndefined(path))) {
          unlinkSync(path);
        }
      }
      if (this.#durable) await fsyncDir(this.#dir);
      this.#needsRepair = false;
    } catch (error) {
      this.#needsRepair = true;
      this.#log.warn(
        { dir: this.#dir, err: error },
        'snapshot links or old versions could not be updated; will retry',
      );
    }
  }

  /** Takes over what an earlier run left: a valid current version is kept, everything else goes. */
  async #init(): Promise<void> {
    if (this.#initialised) return;
    ensureOutputDir(this.#dir, VERSION_DIR_MODE);
    this.#durable = isDurable(this.#dir);
    const names = readdirOrEmpty(this.#dir);
    const target = readlinkOrUndefined(join(this.#dir, DATA_LINK));
    this.#current = target === undefined ? undefined : this.#adopt(target);
    if (this.#current) {
      // Versions that were built but never flipped to were never seen by a reader: their numbers are reused.
      this.#lastVersion = Math.max(this.#lastVersion, this.#current.manifest.version);
    } else {
      // Rebuilding: stay above every version a reader may have seen, including the corrupt current one.
      for (const name of names) {
        if (!VERSION_DIR_PATTERN.test(name)) continue;
        const manifest = readManifest(join(this.#dir, name));
        if (manifest) this.#lastVersion = Math.max(this.#lastVersion, manifest.version);
      }
    }
    if (this.#current) {
      await this.#repair(this.#current);
      this.#log.info(
        { dir: this.#dir, version: this.#current.manifest.version, keys: this.#current.manifest.keys.length },
        'took over existing snapshot',
      );
    } else {
      // No usable snapshot: only clear leftovers. `..data` (if any) stays until the next flip replaces it.
      rmSync(join(this.#dir, DATA_TMP_LINK), { force: true });
      rmSync(join(this.#dir, `${DATA_TMP_LINK}.link`), { force: true });
      for (const name of names) {
        if (VERSION_DIR_PATTERN.test(name) && name !== target) {
          rmSync(join(this.#dir, name), { recursive: true, force: true });
        }
      }
      if (target !== undefined) {
        this.#log.warn({ dir: this.#dir, target }, 'snapshot is incomplete or corrupt; it will be rebuilt');
      }
    }
    this.#initialised = true;
  }

  /** The state for version directory `dirName` when it is complete and its manifest valid, else `undefined`. */
  #adopt(dirName: string): CurrentState | undefined {
    if (!VERSION_DIR_PATTERN.test(dirName)) return undefined;
    const path = join(this.#dir, dirName);
    const manifest = readManifest(path);
    if (!manifest) return undefined;
    let present: Set<string>;
    try {
      present = new Set(readdirSync(path));
    } catch {
      return undefined;
    }
    const refused = new Set(manifest.refusedKeys);
    const expected = [
      ...manifest.formats.filter(isOutputFormat).map((format: OutputFormat) => FORMAT_FILE_NAMES[format]),
      ...(manifest.formats.includes('files') ? manifest.keys.filter((key) => !refused.has(key)) : []),
    ];
    if (!expected.every((name) => present.has(name))) return undefined;
    return { dirName, manifest, values: recoverValues(path, manifest) };
  }
}

/** Creates a {@link SnapshotWriter}; see there. */
export function createSnapshotWriter(options: SnapshotWriterOptions): SnapshotWriter {
  return new SnapshotWriter(options);
}

function validateOptions(options: SnapshotWriterOptions): void {
  const problems: string[] = [];
  for (const name of Object.keys(options)) {
    if (!OPTION_NAMES.has(name)) problems.push(`unknown option ${JSON.stringify(name)}`);
  }
  if (typeof options.dir !== 'string' || options.dir === '') problems.push('`dir` must be a non-empty path');
  if (!Array.isArray(options.formats) || options.formats.length === 0) {
    problems.push(`\`formats\` must list at least one of ${SNAPSHOT_FORMATS.join(', ')}`);
  } else {
    for (const format of options.formats as readonly unknown[]) {
      if (!isSnapshotFormat(format)) {
        problems.push(
          `\`formats\` has ${JSON.stringify(format)}; expected one of ${SNAPSHOT_FORMATS.join(', ')}`,
        );
      }
    }
  }
  const mode = options.fileMode;
  if (mode !== undefined && !(Number.isInteger(mode) && mode >= 0 && mode <= 0o777)) {
    problems.push('`fileMode` must be an integer permission mode from 0o000 to 0o777');
  }
  for (const id of ['uid', 'gid'] as const) {
    const value = options[id];
    if (value !== undefined && !(Number.isInteger(value) && value >= 0 && value < 2 ** 32 - 1)) {
      problems.push(`\`${id}\` must be a non-negative integer`);
    }
  }
  const source = options.source as Partial<SnapshotSource> | undefined;
  if (typeof source !== 'object' || source === null) {
    problems.push('`source` must be an object with host, app, env and path');
  } else {
    for (const field of ['host', 'app', 'env', 'path'] as const) {
      if (typeof source[field] !== 'string') problems.push(`\`source.${field}\` must be a string`);
    }
  }
  if (problems.length > 0) {
    throw new PhaseError(ErrorCode.CONFIG, `Invalid snapshot writer options: ${problems.join('; ')}`);
  }
}

function sortEntries(entries: ReadonlyArray<SecretEntry>): SecretEntry[] {
  const sorted = entries.map(({ key, value }) => ({ key, value }));
  sorted.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.key === sorted[i - 1]!.key) {
      throw new PhaseError(
        ErrorCode.CONFIG,
        `Duplicate key ${JSON.stringify(sorted[i]!.key)} in the snapshot`,
      );
    }
  }
  return sorted;
}

function refuse(sorted: readonly SecretEntry[]): RefusedKey[] {
  const refused: RefusedKey[] = [];
  for (const { key } of sorted) {
    const reason = unsafeKeyReason(key);
    if (reason !== undefined)
      refused.push({ key, format: 'files', reason: `${reason}; left out of the files format` });
  }
  return refused;
}

/** Why a key was refused, without the "; left out of the FORMAT format" that the reason adds for the log. */
export function whyRefused(refused: RefusedKey): string {
  const suffix = `; left out of the ${refused.format} format`;
  return refused.reason.endsWith(suffix) ? refused.reason.slice(0, -suffix.length) : refused.reason;
}

/**
 * Renders one format. A key the format cannot hold (a name dotenv cannot write, a value with a NUL for
 * shell) is left out of that format alone, with the formatter's reason, rather than failing the snapshot.
 */
export function render(
  sorted: readonly SecretEntry[],
  format: OutputFormat,
): { text: string; refused: RefusedKey[] } {
  try {
    return { text: formatSecrets(sorted, format), refused: [] };
  } catch (error) {
    if (!(error instanceof PhaseError) || error.code !== ErrorCode.CONFIG) throw error;
  }
  const refused: RefusedKey[] = [];
  const kept = sorted.filter((entry) => {
    try {
      formatSecrets([entry], format);
      return true;
    } catch (error) {
      if (!(error instanceof PhaseError) || error.code !== ErrorCode.CONFIG) throw error;
      refused.push({ key: entry.key, format, reason: `${error.message}; left out of the ${format} format` });
      return false;
    }
  });
  return { text: formatSecrets(kept, format), refused };
}

function diff(
  previous: ReadonlyMap<string, string | undefined> | undefined,
  next: readonly SecretEntry[],
): ChangeSet {
  const added: string[] = [];
  const changed: string[] = [];
  const nextKeys = new Set<string>();
  for (const { key, value } of next) {
    nextKeys.add(key);
    if (!previous?.has(key)) added.push(key);
    // A value that could not be recovered after a restart counts as changed: better one spurious notice than none.
    else if (previous.get(key) !== value) changed.push(key);
  }
  const removed = previous ? [...previous.keys()].filter((key) => !nextKeys.has(key)) : [];
  return { added, removed, changed };
}

/** A top-level link of ours: `NAME -> ..data/NAME`. */
function isOurLink(name: string, target: string | undefined): boolean {
  return target === `${DATA_LINK}/${name}`;
}

function readdirOrEmpty(path: string): string[] {
  try {
    return readdirSync(path);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return [];
    throw error;
  }
}

/** The manifest of a version directory when present and well-formed, else `undefined`. */
function readManifest(versionDir: string): SnapshotManifest | undefined {
  const path = join(versionDir, MANIFEST_NAME);
  try {
    return parseSnapshotManifest(readFileSync(path, 'utf8'), path);
  } catch {
    return undefined;
  }
}

/**
 * Reads the values of the snapshot being taken over, so the first write after a restart reports which keys
 * changed. Per-key files first, then `secrets.json`; values found in neither stay unknown.
 */
function recoverValues(versionDir: string, manifest: SnapshotManifest): Map<string, string | undefined> {
  const values = new Map<string, string | undefined>(manifest.keys.map((key) => [key, undefined]));
  if (manifest.formats.includes('json')) {
    try {
      const parsed: unknown = JSON.parse(readFileSync(join(versionDir, FORMAT_FILE_NAMES.json), 'utf8'));
      if (typeof parsed === 'object' && parsed !== null) {
        for (const [key, value] of Object.entries(parsed)) {
          if (values.has(key) && typeof value === 'string') values.set(key, value);
        }
      }
    } catch {
      // Unknown values only make the next change report broader.
    }
  }
  if (manifest.formats.includes('files')) {
    const refused = new Set(manifest.refusedKeys);
    for (const key of manifest.keys) {
      if (refused.has(key)) continue;
      try {
        values.set(key, readFileSync(join(versionDir, key), 'utf8'));
      } catch {
        // As above.
      }
    }
  }
  return values;
}
