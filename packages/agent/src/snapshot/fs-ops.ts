import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  lchownSync,
  lstatSync,
  openSync,
  readlinkSync,
  renameSync,
  rmSync,
  statfsSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';

// The writer's file system calls are synchronous: on tmpfs (where snapshots live in a pod) each takes microseconds,
// while its promise version costs a round trip through libuv's thread pool, and a snapshot of a thousand keys makes
// thousands of them. The one call that can take long on a disk, fsync, stays asynchronous and is skipped where it
// means nothing: tmpfs and ramfs have no stable storage to flush to.

/** Owner to apply with `chown`; `-1` keeps the current id. */
export interface Ownership {
  readonly uid: number;
  readonly gid: number;
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
export async function fsyncDir(path: string): Promise<void> {
  const handle = await open(path, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

const NEW_FILE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

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
    writeFileSync(fd, data, 'utf8');
    // chown before chmod: chown may clear mode bits. chmod makes the mode independent of the umask.
    if (options.owner) fchownSync(fd, options.owner.uid, options.owner.gid);
    fchmodSync(fd, options.mode);
  } finally {
    closeSync(fd);
  }
}

/** Flushes a written file's content to stable storage. */
export async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
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
