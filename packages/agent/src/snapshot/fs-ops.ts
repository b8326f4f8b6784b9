import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  rmSync,
  statfsSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { AgentError, AgentErrorCode } from '../errors.js';

// The writer's file system calls are synchronous: on tmpfs (where snapshots live in a pod) each takes microseconds,
// while its promise version costs a round trip through libuv's thread pool, and a snapshot of a thousand keys makes
// thousands of them. The one call that can take long on a disk, fsync, stays asynchronous and is skipped where it
// means nothing: tmpfs and ramfs have no stable storage to flush to.

/** How many files of one version are being fsynced at once (libuv runs four at a time by default anyway). */
const FSYNC_CONCURRENCY = 16;

/** Owner to apply with `chown`; `-1` keeps the current id. */
export interface Ownership {
  readonly uid: number;
  readonly gid: number;
}

/**
 * `dir/name` for a plain name (no separator, not `.` or `..`): path.join would normalise the whole path again,
 * a few thousand times per snapshot.
 */
export function childPath(dir: string, name: string): string {
  return dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`;
}

/**
 * Creates the snapshot directory (and its parents) when missing.
 * @throws {AgentError} `USAGE` when the path exists and is not a directory: a mistaken `--out`, exit 2.
 */
export function ensureOutputDir(dir: string, mode: number): void {
  try {
    mkdirSync(dir, { recursive: true, mode });
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'EEXIST' || code === 'ENOTDIR') {
      throw new AgentError(
        AgentErrorCode.USAGE,
        `the output ${dir} exists and is not a directory (--out names a directory)`,
      );
    }
    throw error;
  }
}

/** Node's error code of a failed fs call, or `undefined`. */
export function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;
}

// statfs(2) f_type values of the memory-backed file systems (linux/magic.h).
const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;

/**
 * Whether `path` is on a file system with stable storage, where fsync makes writes survive a power loss. False on
 * tmpfs and ramfs, whose fsync does nothing; true when it cannot be told (the safe answer).
 */
export function isDurable(path: string): boolean {
  try {
    const { type } = statfsSync(path);
    return type !== TMPFS_MAGIC && type !== RAMFS_MAGIC;
  } catch {
    return true;
  }
}

/** Flushes a directory's entries (new names, renames, removals) to stable storage. */
export function fsyncDir(path: string): Promise<void> {
  return fsyncPath(path, constants.O_RDONLY | constants.O_DIRECTORY);
}

async function fsyncPath(path: string, flags: number): Promise<void> {
  const handle = await open(path, flags);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

const NEW_FILE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Writes all of `data` at the descriptor's offset: straight from the string, without a Buffer per file. */
function writeAll(fd: number, data: string): void {
  const length = Buffer.byteLength(data, 'utf8');
  let done = writeSync(fd, data, null, 'utf8');
  if (done >= length) return;
  // A short write (a signal, a nearly full disk): finish from the bytes.
  const bytes = Buffer.from(data, 'utf8');
  while (done < length) done += writeSync(fd, bytes, done, length - done);
}

/**
 * Creates `path` (it must not exist), writes `data` and sets the final owner and mode, so the file is complete and
 * has its final permissions before any reader can reach it through a flipped `..data`. Not fsynced: see
 * {@link fsyncFile}.
 */
export function writeNewFile(
  path: string,
  data: string,
  options: { readonly mode: number; readonly owner: Ownership | undefined },
): void {
  // Created with the final mode: a new file's descriptor is writable even when the mode is read-only.
  const fd = openSync(path, NEW_FILE_FLAGS, options.mode);
  try {
    writeAll(fd, data);
    // chown before chmod: chown may clear mode bits. chmod makes the mode independent of the umask.
    if (options.owner) fchownSync(fd, options.owner.uid, options.owner.gid);
    fchmodSync(fd, options.mode);
  } finally {
    closeSync(fd);
  }
}

/** Flushes a written file's content to stable storage. */
export function fsyncFile(path: string): Promise<void> {
  return fsyncPath(path, constants.O_RDONLY | constants.O_NOFOLLOW);
}

/**
 * fsyncs the files `names` of directory `dir`, a bounded number at a time (a thousand descriptors waiting on fsync
 * would only queue in libuv). The first error is thrown once the fsyncs in progress have finished.
 */
export async function fsyncFiles(dir: string, names: Iterable<string>): Promise<void> {
  const queue = names[Symbol.iterator]();
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    for (let next = queue.next(); !next.done && !failure; next = queue.next()) {
      try {
        await fsyncFile(childPath(dir, next.value));
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: FSYNC_CONCURRENCY }, worker));
  if (failure) throw failure.error;
}

/**
 * Removes a version directory and the files in it (anything unexpected inside is removed recursively). A missing
 * directory is fine. Cheaper than a recursive rm, which stats every file first.
 */
export function removeVersionDir(path: string): void {
  let names: string[];
  try {
    names = readdirSync(path);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return;
    throw error;
  }
  for (const name of names) {
    try {
      unlinkSync(childPath(path, name));
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') rmSync(childPath(path, name), { recursive: true, force: true });
    }
  }
  try {
    rmdirSync(path);
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw error;
  }
}

/**
 * What is directly in `dir`, by name, without following symlinks: one readdir instead of an lstat per name.
 * Empty when `dir` does not exist.
 */
export function entryKinds(dir: string): Map<string, 'symlink' | 'other'> {
  const kinds = new Map<string, 'symlink' | 'other'>();
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return kinds;
    throw error;
  }
  for (const entry of entries) kinds.set(entry.name, entry.isSymbolicLink() ? 'symlink' : 'other');
  return kinds;
}

/** `readlink`, or `undefined` when `path` does not exist or is not a symlink. */
export function readlinkOrUndefined(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT' || code === 'EINVAL') return undefined;
    throw error;
  }
}

/** What is at `path` without following a final symlink: `missing`, `symlink` or `other`. */
export function entryKind(path: string): 'missing' | 'symlink' | 'other' {
  // No exception for a missing name: a first snapshot asks this of every key.
  const stats = lstatSync(path, { throwIfNoEntry: false });
  if (stats === undefined) return 'missing';
  return stats.isSymbolicLink() ? 'symlink' : 'other';
}

/**
 * Points the symlink `path` at `target`, atomically: a temporary link next to it is renamed over `path`, so a
 * reader sees the old link or the new one, never no link. Where nothing is at `path` yet, the link is made in
 * place (there is no old link a reader could miss).
 */
export function replaceSymlink(
  path: string,
  target: string,
  options: {
    readonly tmpPath: string;
    readonly owner: Ownership | undefined;
    /** What {@link entryKind} found at `path`, when the caller already knows. */
    readonly kind?: 'missing' | 'symlink';
  },
): void {
  if ((options.kind ?? entryKind(path)) === 'missing') {
    try {
      symlinkSync(target, path);
      if (options.owner) lchownSync(path, options.owner.uid, options.owner.gid);
      return;
    } catch (error) {
      // Something appeared in between: fall back to the atomic replacement.
      if (errnoCode(error) !== 'EEXIST') throw error;
    }
  }
  try {
    symlinkSync(target, options.tmpPath);
  } catch (error) {
    // A leftover of an interrupted run.
    if (errnoCode(error) !== 'EEXIST') throw error;
    rmSync(options.tmpPath, { force: true });
    symlinkSync(target, options.tmpPath);
  }
  try {
    if (options.owner) lchownSync(options.tmpPath, options.owner.uid, options.owner.gid);
    renameSync(options.tmpPath, path);
  } catch (error) {
    rmSync(options.tmpPath, { force: true });
    throw error;
  }
}
