import { constants, lchownSync, lstatSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { open } from 'node:fs/promises';

// Metadata calls (lstat, readlink, symlink, rename) are made synchronously: they take microseconds on any file
// system, while their promise versions each cost a round trip through libuv's thread pool, and a snapshot of a
// thousand keys makes thousands of them. File contents and fsyncs stay asynchronous.

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

/** Flushes a directory's entries (new names, renames, removals) to stable storage. */
export async function fsyncDir(path: string): Promise<void> {
  const handle = await open(path, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Creates `path` (it must not exist), writes `data`, sets the final owner and mode and fsyncs it, so the file is
 * complete and has its final permissions before any reader can reach it through a flipped `..data`.
 */
export async function writeNewFile(
  path: string,
  data: string,
  options: { readonly mode: number; readonly owner: Ownership | undefined },
): Promise<void> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  // Created with the final mode: a new file's descriptor is writable even when the mode is read-only.
  const handle = await open(path, flags, options.mode);
  try {
    await handle.writeFile(data, 'utf8');
    // chown before chmod: chown may clear mode bits. chmod makes the mode independent of the umask.
    if (options.owner) await handle.chown(options.owner.uid, options.owner.gid);
    await handle.chmod(options.mode);
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
  try {
    return lstatSync(path).isSymbolicLink() ? 'symlink' : 'other';
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return 'missing';
    throw error;
  }
}

/**
 * Points the symlink `path` at `target`, atomically: a temporary link next to it is renamed over `path`, so a
 * reader sees the old link or the new one, never no link.
 */
export function replaceSymlink(
  path: string,
  target: string,
  options: { readonly tmpPath: string; readonly owner: Ownership | undefined },
): void {
  rmSync(options.tmpPath, { force: true });
  symlinkSync(target, options.tmpPath);
  try {
    if (options.owner) lchownSync(options.tmpPath, options.owner.uid, options.owner.gid);
    renameSync(options.tmpPath, path);
  } catch (error) {
    rmSync(options.tmpPath, { force: true });
    throw error;
  }
}
