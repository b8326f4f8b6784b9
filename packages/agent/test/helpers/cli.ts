// Spawns the BUILT `phasekit` CLI (packages/agent/dist/cli/phasekit.js) as a real process, collects its stdout and
// stderr, waits (always with a bound) for JSON log lines, and stops it with SIGTERM. Every process started here is
// remembered, so a test file can kill leftovers and check every transcript for leaked values at the end.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
export const CLI_PATH = join(REPO_ROOT, 'packages', 'agent', 'dist', 'cli', 'phasekit.js');

/** The node flags of the image's ENTRYPOINT (deploy/Containerfile): what the shipped CLI runs with. */
export { entrypointFlags as imageNodeFlags } from '../../scripts/stage-image.mjs';

let cliCopy: string | undefined;
/**
 * The bundle this test file runs: a private copy of CLI_PATH taken at first use, so a rebuild of the agent while
 * the suite runs (tsup empties dist/ first) cannot pull the file from under a test. The bundle is self-contained.
 */
function cliPath(): string {
  if (cliCopy !== undefined) return cliCopy;
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run pnpm build first`);
  const dir = mkdtempSync(join(tmpdir(), 'phasekit-e2e-cli-'));
  // The bundle is split into chunks that load per command: copy the whole directory.
  cpSync(dirname(CLI_PATH), dir, { recursive: true });
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  cliCopy = join(dir, 'phasekit.js');
  return cliCopy;
}

/** One pino JSON line from the agent's stderr. */
export interface LogLine {
  readonly level: string | number;
  readonly msg: string;
  readonly component?: string;
  readonly version?: number;
  readonly url?: string;
  readonly key?: string;
  readonly code?: string;
  readonly [field: string]: unknown;
}

export interface ExitResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** What a process printed, kept for the leak checks at the end of a test file. */
export interface Transcript {
  readonly label: string;
  /** True when stdout legitimately carries secret values (`export`, the `run` child's own output). */
  readonly stdoutCarriesValues: boolean;
  readonly stdout: () => string;
  readonly stderr: () => string;
}

const transcripts: Transcript[] = [];
const live = new Set<ChildProcess>();

/** Every transcript of this test file (each vitest file runs in its own process). */
export function allTranscripts(): readonly Transcript[] {
  return transcripts;
}

/** Records output that is not a CLI process's (a hook's request body, a /metrics scrape). */
export function recordText(label: string, text: string): void {
  transcripts.push({ label, stdoutCarriesValues: false, stdout: () => text, stderr: () => '' });
}

export interface SpawnOptions {
  /** PHASE_SERVICE_TOKEN; `null` leaves it unset. */
  readonly token: string | null;
  /** Extra environment (the child does not inherit the test runner's PHASE_* variables). */
  readonly env?: Record<string, string>;
  readonly cwd?: string;
  /** Flags for node itself, before the script (the image's ENTRYPOINT flags, say). */
  readonly nodeArgs?: readonly string[];
  /** See {@link Transcript.stdoutCarriesValues}. @default false */
  readonly stdoutCarriesValues?: boolean;
}

/** Polls `check` until it returns a value other than undefined/false, or fails with `what` after `timeoutMs`. */
export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs = 10_000,
  everyMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const suffix = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${suffix}`);
    }
    await sleep(everyMs);
  }
}

/** A running `phasekit` process. */
export class CliProcess {
  readonly child: ChildProcess;
  readonly label: string;
  readonly exited: Promise<ExitResult>;
  #stdout = '';
  #stderr = '';
  #logs: LogLine[] = [];
  #partial = '';
  #listeners = new Set<() => void>();
  #exit: ExitResult | undefined;

  constructor(args: readonly string[], options: SpawnOptions) {
    const cli = cliPath();
    this.label = `phasekit ${args.join(' ')}`;
    const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/bin:/bin' };
    const home = process.env['HOME'];
    if (home !== undefined) env['HOME'] = home;
    Object.assign(env, options.env);
    if (options.token !== null) env['PHASE_SERVICE_TOKEN'] = options.token;
    this.child = spawn(process.execPath, [...(options.nodeArgs ?? []), cli, ...args], {
      env,
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(this.child);
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.#stdout += chunk;
      this.#notify();
    });
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.#stderr += chunk;
      this.#partial += chunk;
      const lines = this.#partial.split('\n');
      this.#partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        try {
          this.#logs.push(JSON.parse(line) as LogLine);
        } catch {
          // not a log line
        }
      }
      this.#notify();
    });
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        live.delete(this.child);
        this.#exit = { code, signal };
        this.#notify();
        resolve(this.#exit);
      });
    });
    transcripts.push({
      label: this.label,
      stdoutCarriesValues: options.stdoutCarriesValues ?? false,
      stdout: () => this.#stdout,
      stderr: () => this.#stderr,
    });
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.label} did not start`);
    return this.child.pid;
  }
  get stdout(): string {
    return this.#stdout;
  }
  get stderr(): string {
    return this.#stderr;
  }
  get logs(): readonly LogLine[] {
    return this.#logs;
  }
  get exitResult(): ExitResult | undefined {
    return this.#exit;
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  /** The last lines of stderr, for failure messages. */
  tail(lines = 15): string {
    return this.#stderr.split('\n').slice(-lines).join('\n');
  }

  /** Waits until a log line at index >= `from` matches; fails after `timeoutMs` or when the process exits first. */
  waitForLog(
    predicate: (line: LogLine) => boolean,
    what: string,
    options: { timeoutMs?: number; from?: number } = {},
  ): Promise<LogLine> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const from = options.from ?? 0;
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        for (let i = from; i < this.#logs.length; i++) {
          const line = this.#logs[i];
          if (line !== undefined && predicate(line)) {
            done();
            resolve(line);
            return true;
          }
        }
        if (this.#exit !== undefined) {
          done();
          reject(
            new Error(
              `${this.label} exited (${JSON.stringify(this.#exit)}) before logging ${what}; stderr:\n${this.tail()}`,
            ),
          );
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what} from ${this.label}; stderr:\n${this.tail()}`,
          ),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
      };
      const listener = () => void check();
      if (!check()) this.#listeners.add(listener);
    });
  }

  /** Waits for a log line whose `msg` equals `msg`. */
  waitForMsg(msg: string, options: { timeoutMs?: number; from?: number } = {}): Promise<LogLine> {
    return this.waitForLog((line) => line.msg === msg, `log "${msg}"`, options);
  }

  /** Waits for the exit; fails after `timeoutMs`. */
  async waitForExit(timeoutMs = 15_000): Promise<ExitResult> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${this.label} did not exit within ${timeoutMs} ms; stderr:\n${this.tail()}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends SIGTERM and fails unless the process exits within `timeoutMs` (default 5 s). */
  async stop(timeoutMs = 5_000): Promise<ExitResult & { ms: number }> {
    const started = Date.now();
    if (this.#exit === undefined) this.child.kill('SIGTERM');
    const result = await this.waitForExit(timeoutMs).catch((error: unknown) => {
      this.child.kill('SIGKILL');
      throw new Error(`SIGTERM did not stop it: ${(error as Error).message}`);
    });
    return { ...result, ms: Date.now() - started };
  }

  /** SIGKILL, then waits for the exit. */
  async kill9(): Promise<ExitResult> {
    this.child.kill('SIGKILL');
    return this.waitForExit(5_000);
  }
}

/** Starts `phasekit ARGS` (see {@link CliProcess}). */
export function spawnCli(args: readonly string[], options: SpawnOptions): CliProcess {
  return new CliProcess(args, options);
}

/** Runs `phasekit ARGS` to completion (bounded) and returns its exit code and output. */
export async function runCli(
  args: readonly string[],
  options: SpawnOptions & { timeoutMs?: number },
): Promise<{
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  logs: readonly LogLine[];
  proc: CliProcess;
}> {
  const proc = spawnCli(args, options);
  const { code, signal } = await proc.waitForExit(options.timeoutMs ?? 20_000);
  return { code, signal, stdout: proc.stdout, stderr: proc.stderr, logs: proc.logs, proc };
}

/** SIGKILLs every process this file started that is still running (for afterEach/afterAll). */
export async function killAll(): Promise<void> {
  const waits: Promise<unknown>[] = [];
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) {
      waits.push(new Promise((resolve) => child.once('close', resolve)));
      child.kill('SIGKILL');
    }
  }
  live.clear();
  await Promise.race([Promise.all(waits), sleep(3_000)]);
}

/**
 * Fails when any needle occurs in a transcript: every stderr, and every stdout except those marked as carrying
 * values. Returns how many transcripts were checked.
 */
export function assertNoLeaks(needles: readonly string[]): number {
  const found: string[] = [];
  for (const t of transcripts) {
    const streams: [string, string][] = [['stderr', t.stderr()]];
    if (!t.stdoutCarriesValues) streams.push(['stdout', t.stdout()]);
    for (const [name, text] of streams) {
      for (const needle of needles) {
        if (needle !== '' && text.includes(needle)) {
          found.push(`${t.label} (${name}) contains ${needle.slice(0, 12)}...`);
        }
      }
    }
  }
  if (found.length > 0) throw new Error(`leaked secret material:\n${found.join('\n')}`);
  return transcripts.length;
}
