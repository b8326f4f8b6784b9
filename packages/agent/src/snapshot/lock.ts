// One writer per snapshot directory (product.md): a second `once` or `sidecar` on the same directory is refused,
// naming the holder's pid, and a lock whose holder died is taken over at once.
//
// On Linux the lock is a listening Unix socket in the abstract namespace, named after the directory's device and
// inode: the kernel lets one process bind a name, and releases it when that process ends, however it ends (kill -9
// included), so there is no stale lock to judge and no race between two processes taking over a stale one. It is
// shared by every process in one network namespace: a laptop, or all the containers of a pod (which see a shared
// emptyDir under one device and inode). A process that finds the name taken connects and is told the holder's pid.
// Elsewhere (macOS) an exclusive lock file with the holder's pid stands in, taken over when that pid is gone.
import { openSync, readFileSync, statSync, unlinkSync, writeSync, closeSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { kill, pid as ownPid, platform } from 'node:process';
import { AgentError, AgentErrorCode } from '../errors.js';
import { ensureOutputDir, errnoCode } from './fs-ops.js';

/** A held lock; `release()` lets the next writer in. */
export interface DirLock {
  release(): Promise<void>;
}

/** The lock file of the fallback, inside the directory (`..` names are skipped by kubelet-style readers). */
export const LOCK_FILE = '..phasekit.lock';

/**
 * Takes the lock of snapshot directory `dir` (created when missing).
 * @throws {AgentError} `WRITE` when another live phasekit process holds it, naming that process's pid.
 */
export async function lockSnapshotDir(dir: string): Promise<DirLock> {
  ensureOutputDir(dir, 0o755);
  const { dev, ino } = statSync(dir);
  return platform === 'linux' ? socketLock(dir, `\0phasekit-snapshot-lock/${dev}/${ino}`) : fileLock(dir);
}

/** Takes the lock of every snapshot directory, or none: on a refusal the ones already taken are let go. */
export async function lockOutputs(dirs: readonly string[]): Promise<DirLock[]> {
  const locks: DirLock[] = [];
  try {
    for (const dir of new Set(dirs)) locks.push(await lockSnapshotDir(dir));
    return locks;
  } catch (error) {
    await Promise.all(locks.map((lock) => lock.release()));
    throw error;
  }
}

function locked(dir: string, pid: number | undefined): AgentError {
  return new AgentError(
    AgentErrorCode.LOCKED,
    `snapshot directory ${dir} is being written by another phasekit process (pid ${pid ?? 'unknown'}); one writer per directory`,
  );
}

async function socketLock(dir: string, name: string): Promise<DirLock> {
  const server: Server = createServer((socket) => {
    socket.end(`${JSON.stringify({ pid: ownPid })}\n`);
  });
  const bound = await new Promise<boolean>((resolve, reject) => {
    server.once('error', (error) => (errnoCode(error) === 'EADDRINUSE' ? resolve(false) : reject(error)));
    server.listen({ path: name, exclusive: true }, () => resolve(true));
  });
  if (!bound) throw locked(dir, await holderPid(name));
  // The lock must not keep a finished `once` alive.
  server.unref();
  return {
    release: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Asks the holder of `name` for its pid; `undefined` when it does not answer within a second. */
function holderPid(name: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    let text = '';
    const socket = connect({ path: name });
    const done = (pid: number | undefined) => {
      socket.destroy();
      resolve(pid);
    };
    socket.setTimeout(1_000, () => done(undefined));
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    socket.on('end', () => {
      try {
        const pid = (JSON.parse(text) as { pid?: unknown }).pid;
        done(typeof pid === 'number' ? pid : undefined);
      } catch {
        done(undefined);
      }
    });
    socket.on('error', () => done(undefined));
  });
}

function fileLock(dir: string): DirLock {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o644);
      try {
        writeSync(fd, `${ownPid}\n`);
      } finally {
        closeSync(fd);
      }
      return {
        release: () => {
          try {
            unlinkSync(path);
          } catch {
            // Already gone: nothing to release.
          }
          return Promise.resolve();
        },
      };
    } catch (error) {
      if (errnoCode(error) !== 'EEXIST') throw error;
    }
    const pid = Number.parseInt(readOrEmpty(path), 10);
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== ownPid && isAlive(pid)) throw locked(dir, pid);
    // Its holder is gone: take it over.
    try {
      unlinkSync(path);
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw error;
    }
  }
  throw locked(dir, undefined);
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function isAlive(pid: number): boolean {
  try {
    kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, but belongs to someone else.
    return errnoCode(error) === 'EPERM';
  }
}
