import { constants } from 'node:fs';
import { lchown, lstat, open, readlink, rename, rm, symlink } from 'node:fs/promises';

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
export async function readlinkOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await readlink(path);
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT' || code === 'EINVAL') return undefined;
    throw error;
  }
}

/** What is at `path` without following a final symlink: `missing`, `symlink` or `other`. */
export async function entryKind(path: string): Promise<'missing' | 'symlink' | 'other'> {
  try {
    return (await lstat(path)).isSymbolicLink() ? 'symlink' : 'other';
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return 'missing';
    throw error;
  }
}

/**
 * Points the symlink `path` at `target`, atomically: a temporary link next to it is renamed over `path`, so a
 * reader sees the old link or the new one, never no link.
 */
export async function replaceSymlink(
  path: string,
  target: string,
  options: { readonly tmpPath: string; readonly owner: Ownership | undefined },
): Promise<void> {
  await rm(options.tmpPath, { force: true });
  await symlink(target, options.tmpPath);
  try {
    if (options.owner) await lchown(options.tmpPath, options.owner.uid, options.owner.gid);
    await rename(options.tmpPath, path);
  } catch (error) {
    await rm(options.tmpPath, { force: true });
    throw error;
  }
}
