// Process helpers: run a node script and time it, sample VmRSS, follow JSON log lines.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * Runs `node ...args` to completion. Resolves {code, signal, stdout, stderr, ms}; `ms` is wall time from spawn to
 * exit as seen by the parent (the same overhead for every contender). Never rejects; kills after `timeoutMs`.
 */
export function runNode(args, { env = {}, cwd, timeoutMs = 120_000, node = process.execPath } = {}) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(node, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code, signal) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      clearTimeout(timer);
      // Let the pipes drain.
      setImmediate(() => resolve({ code, signal, stdout, stderr, ms }));
    });
  });
}

/** Parses the last JSON line a child printed on stdout. */
export function lastJson(stdout) {
  const lines = stdout.trim().split('\n').filter(Boolean);
  return JSON.parse(lines[lines.length - 1]);
}

/** Resident set size of a process in KiB (VmRSS from /proc/PID/status), or NaN when it is gone. */
export function rssKiB(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** CPU time (user + system) a process has used, in ms, from /proc/PID/stat (clock ticks, 10 ms each on Linux). */
export function cpuMsOf(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Starts a long-running node process and collects its output; `lines` holds parsed JSON stderr lines. */
export function startNode(args, { env = {}, cwd } = {}) {
  const child = spawn(process.execPath, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = { child, stdout: '', stderr: '', lines: [], waiters: [] };
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (c) => {
    proc.stdout += c;
    proc.onStdout?.(c);
  });
  child.stderr.setEncoding('utf8').on('data', (c) => {
    proc.stderr += c;
    partial += c;
    let nl;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      try {
        const parsed = JSON.parse(line);
        proc.lines.push(parsed);
        proc.onLine?.(parsed);
      } catch {
        // not JSON
      }
    }
  });
  proc.waitLine = (predicate, timeoutMs = 30_000) =>
    new Promise((resolve, reject) => {
      const found = proc.lines.find(predicate);
      if (found) return resolve(found);
      const timer = setTimeout(
        () => reject(new Error(`timed out waiting for a log line; stderr: ${proc.stderr.slice(-2000)}`)),
        timeoutMs,
      );
      const prev = proc.onLine;
      proc.onLine = (line) => {
        prev?.(line);
        if (predicate(line)) {
          clearTimeout(timer);
          resolve(line);
        }
      };
    });
  proc.stop = () =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    });
  return proc;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
