import { type ChildProcess, spawn } from 'node:child_process';
import type { EnvSource } from '@phasekit/sdk';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@phasekit/sdk';
import { AgentError } from './errors.js';
import type { NotifyMethod, NotifyResult } from './metrics.js';
import { tryParseSignal } from './parse.js';

export type { NotifyMethod, NotifyResult } from './metrics.js';

/** The SDK's one Logger type (pino-shaped: facts first, then the message); kept under this name for callers. */
export type NotifyLogger = Logger;

/** What changed in one snapshot: names only, never values. */
export interface ChangeEvent {
  /** Snapshot version after the change. */
  version: number;
  /** Keys that are new. */
  added: readonly string[];
  /** Keys that are gone. */
  removed: readonly string[];
  /** Keys whose value changed. */
  changed: readonly string[];
}

/** Sends `signal` to `pid`; the default is `process.kill`. Throws a Node system error (`code` ESRCH, EPERM…). */
export type KillFn = (pid: number, signal: NodeJS.Signals) => void;

/** Options for {@link createNotifier}. Configure any mix of signal, HTTP and exec targets. */
export interface NotifierOptions {
  /**
   * Signal to send the app, written `SIGHUP` or `HUP`. Needs `pidfile` or `processName`.
   * @default 'SIGHUP' when `pidfile` or `processName` is set
   */
  signal?: string;
  /** File holding the app's pid; re-read before every signal. */
  pidfile?: string;
  /**
   * Signal every visible process whose `/proc/PID/comm` equals this name or whose `argv[0]` base name does.
   * `comm` is cut to 15 characters by the kernel, so longer names match through `argv[0]` only.
   */
  processName?: string;
  /**
   * URL to POST `{version, added, removed, changed}` (names only) to after a change. Credentials in the URL
   * are sent as Basic authorization and never logged. 5 s timeout, one retry on network errors, 408, 429, 5xx.
   */
  http?: string;
  /** Command to run after a change, as argv (no shell). */
  exec?: readonly string[];
  /**
   * Environment for `exec`, usually the agent's own. `PHASE_SERVICE_TOKEN` is never passed on; the hook gets
   * `PHASEKIT_VERSION`, `PHASEKIT_ADDED`, `PHASEKIT_REMOVED` and `PHASEKIT_CHANGED` (comma-separated names).
   * @default {}
   */
  env?: EnvSource;
  /**
   * Throttle window, in milliseconds (leading edge). A change is delivered at once unless a notification
   * started less than `debounceMs` ago or is still in flight; changes arriving then are merged (union of names,
   * latest version) and delivered once, when the window has passed and the delivery in flight is done. A burst
   * thus gives at most two notifications: the first change at once, the rest together `debounceMs` later. `0`
   * delivers every change at once (one after another).
   * @default 1000
   */
  debounceMs?: number;
  /** Per-attempt timeout of the HTTP hook, in milliseconds. @default 5000 */
  httpTimeoutMs?: number;
  /** Pause before the HTTP hook's one retry, in milliseconds. @default 1000 */
  httpRetryDelayMs?: number;
  /** Timeout of the exec hook, in milliseconds; then SIGTERM, and SIGKILL 2 s later. @default 30000 */
  execTimeoutMs?: number;
  /** Where delivery results are logged (method, result, reason; never a value). */
  logger: NotifyLogger;
  /** Called once per method and delivery, e.g. `metrics.notification`. */
  metrics?: (method: NotifyMethod, result: NotifyResult) => void;
  /** Delivers signals. @default process.kill */
  kill?: KillFn;
  /** Root of the proc filesystem, for finding processes by name. @default '/proc' */
  procRoot?: string;
}

/** Stable codes of a notification's AgentError (a subset of {@link AgentErrorCode}). */
export const NotifyErrorCode = {
  /** Bad notifier options (thrown by {@link createNotifier}). */
  CONFIG: 'NOTIFY_CONFIG',
  /** The pid file does not exist. */
  PIDFILE_MISSING: 'NOTIFY_PIDFILE_MISSING',
  /** The pid file exists but cannot be read. */
  PIDFILE_UNREADABLE: 'NOTIFY_PIDFILE_UNREADABLE',
  /** The pid file does not hold a process id greater than 1. */
  PIDFILE_INVALID: 'NOTIFY_PIDFILE_INVALID',
  /** No visible process has the configured name. */
  NO_PROCESS: 'NOTIFY_NO_PROCESS',
  /** The process is gone (ESRCH). */
  PROCESS_GONE: 'NOTIFY_PROCESS_GONE',
  /** The agent may not signal the process (EPERM). */
  NOT_PERMITTED: 'NOTIFY_NOT_PERMITTED',
  /** Any other signal delivery failure. */
  SIGNAL_FAILED: 'NOTIFY_SIGNAL_FAILED',
  /** The HTTP hook answered with a non-2xx status. */
  HTTP_STATUS: 'NOTIFY_HTTP_STATUS',
  /** The HTTP hook could not be reached or did not answer in time. */
  HTTP_FAILED: 'NOTIFY_HTTP_FAILED',
  /** The exec hook exited non-zero or was killed by a signal. */
  EXEC_EXIT: 'NOTIFY_EXEC_EXIT',
  /** The exec hook could not be started. */
  EXEC_FAILED: 'NOTIFY_EXEC_FAILED',
  /** The exec hook ran past its timeout. */
  EXEC_TIMEOUT: 'NOTIFY_EXEC_TIMEOUT',
  /** The notifier was closed while delivering. */
  ABORTED: 'NOTIFY_ABORTED',
} as const;
/** Union of every {@link NotifyErrorCode}. */
export type NotifyErrorCode = (typeof NotifyErrorCode)[keyof typeof NotifyErrorCode];

/**
 * A notification that could not be delivered, or bad options: an {@link AgentError} with a `NOTIFY_*` code. Messages
 * never carry a secret value.
 */
function notifyError(code: NotifyErrorCode, message: string, options?: { cause?: unknown }): AgentError {
  return new AgentError(code, message, options);
}

/** What a target reports for one delivery, before the common fields are added. */
type Outcome = { ok: true; pids?: readonly number[]; status?: number } | { ok: false; error: AgentError };

interface DeliveryCommon {
  method: NotifyMethod;
  /** What was notified: `pidfile PATH`, `process "NAME"`, the URL without credentials or query, or argv[0]. */
  target: string;
  /** How long the delivery took, retries included. */
  durationMs: number;
}

/** A delivery that reached the app. */
export interface DeliverySuccess extends DeliveryCommon {
  ok: true;
  /** For `signal`: the pids that received it. */
  pids?: readonly number[];
  /** For `http`: the response status. */
  status?: number;
}

/** A delivery that did not reach the app; `error.code` says why. */
export interface DeliveryFailure extends DeliveryCommon {
  ok: false;
  error: AgentError;
}

/** One method's delivery of one notification. */
export type DeliveryResult = DeliverySuccess | DeliveryFailure;

/** The merged change a delivery announced, and how each method fared. */
export interface NotifyReport extends ChangeEvent {
  results: readonly DeliveryResult[];
  /** True when the notifier was closed before this change was delivered. */
  cancelled: boolean;
}

export interface Notifier {
  /**
   * Report a change. It is delivered to every target at once unless a notification started less than
   * `debounceMs` ago or is in flight; then it is merged (union of names, latest version) with the other changes
   * held back and delivered once when the window ends. Changes reported before their delivery starts (e.g. in
   * the same tick) share it. Resolves with the report of the delivery that carried the change; never rejects.
   */
  notify(event: ChangeEvent): Promise<NotifyReport>;
  /**
   * Deliver the held-back changes now, without waiting for the window to end (after the delivery in flight, if
   * any). Resolves with that delivery's report, or `undefined` when nothing was held back, once deliveries in
   * flight are done.
   */
  flush(): Promise<NotifyReport | undefined>;
  /** Cancel the held-back changes (their promises resolve with `cancelled: true`) and abort deliveries in flight. */
  close(): Promise<void>;
}

interface Batch {
  version: number;
  added: Set<string>;
  removed: Set<string>;
  changed: Set<string>;
  waiters: ((report: NotifyReport) => void)[];
}

interface Target {
  method: NotifyMethod;
  target: string;
  deliver(event: ChangeEvent, signal: AbortSignal): Promise<Outcome>;
}

/** A signal name (`SIGHUP` or `HUP`) for option `option`; NOTIFY_CONFIG, with the parser's hint, otherwise. */
function signalOption(name: string, option = 'signal'): NodeJS.Signals {
  const parsed = tryParseSignal(name);
  if (!parsed.ok) throw notifyError(NotifyErrorCode.CONFIG, `\`${option}\` must be ${parsed.expected}`);
  return parsed.value;
}

/** The URL as safe to log: no credentials, query or fragment. */
function describeUrl(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function isNonNegative(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

function checkDuration(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!isNonNegative(value)) {
    throw notifyError(
      NotifyErrorCode.CONFIG,
      `Expected \`${name}\` to be a non-negative number of milliseconds, got ${typeof value === 'number' ? String(value) : typeof value}.`,
    );
  }
  return value;
}

/** Build a notifier. Throws {@link AgentError} (`NOTIFY_CONFIG`) on bad options; delivery never throws. */
export function createNotifier(options: NotifierOptions): Notifier {
  const { logger } = options;
  const debounceMs = checkDuration('debounceMs', options.debounceMs, 1000);
  const targets: Target[] = [];

  if (options.pidfile !== undefined && options.processName !== undefined) {
    throw notifyError(
      NotifyErrorCode.CONFIG,
      'Set either `pidfile` or `processName` to find the app, not both.',
    );
  }
  if (options.pidfile !== undefined || options.processName !== undefined) {
    const signal = signalOption(options.signal ?? 'SIGHUP');
    const kill: KillFn = options.kill ?? ((pid, sig) => void process.kill(pid, sig));
    const procRoot = options.procRoot ?? '/proc';
    if (options.pidfile !== undefined) {
      if (options.pidfile === '')
        throw notifyError(NotifyErrorCode.CONFIG, 'Expected `pidfile` to be a path, got an empty string.');
      targets.push(pidfileTarget(options.pidfile, signal, kill, logger));
    } else if (options.processName !== undefined) {
      if (options.processName === '' || options.processName.includes('/')) {
        throw notifyError(NotifyErrorCode.CONFIG, 'Expected `processName` to be a program name without `/`.');
      }
      targets.push(processNameTarget(options.processName, signal, kill, procRoot, logger));
    }
  } else if (options.signal !== undefined) {
    signalOption(options.signal);
    throw notifyError(NotifyErrorCode.CONFIG, '`signal` needs `pidfile` or `processName` to find the app.');
  }

  if (options.http !== undefined) {
    let url: URL;
    try {
      url = new URL(options.http);
    } catch {
      throw notifyError(NotifyErrorCode.CONFIG, 'Expected `http` to be an absolute http:// or https:// URL.');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw notifyError(
        NotifyErrorCode.CONFIG,
        `Expected \`http\` to be an http:// or https:// URL, got ${url.protocol}//.`,
      );
    }
    targets.push(
      httpTarget(
        url,
        checkDuration('httpTimeoutMs', options.httpTimeoutMs, 5000),
        checkDuration('httpRetryDelayMs', options.httpRetryDelayMs, 1000),
        logger,
      ),
    );
  }

  if (options.exec !== undefined) {
    const argv = options.exec;
    if (
      !Array.isArray(argv) ||
      argv.length === 0 ||
      typeof argv[0] !== 'string' ||
      argv[0] === '' ||
      argv.some((a) => typeof a !== 'string')
    ) {
      throw notifyError(NotifyErrorCode.CONFIG, 'Expected `exec` to be a non-empty argv array of strings.');
    }
    targets.push(
      execTarget(argv, options.env ?? {}, checkDuration('execTimeoutMs', options.execTimeoutMs, 30_000)),
    );
  }

  const closing = new AbortController();
  /** Changes not yet delivered: held back by the window or a delivery in flight, or about to start. */
  let pending: Batch | undefined;
  /** Ends the window: set while `pending` waits for it. */
  let timer: NodeJS.Timeout | undefined;
  /** The last delivery, or one queued after it; deliveries run one after another. */
  let chain: Promise<unknown> = Promise.resolve();
  /** The delivery queued on `chain` that will take `pending` when it starts. */
  let next: Promise<NotifyReport | undefined> | undefined;
  let inFlight = false;
  /** When the last delivery started (`performance.now()`); the window runs `debounceMs` from there. */
  let lastStartedAt = Number.NEGATIVE_INFINITY;

  const report = (batch: Batch, results: readonly DeliveryResult[], cancelled: boolean): NotifyReport => ({
    version: batch.version,
    added: [...batch.added],
    removed: [...batch.removed],
    changed: [...batch.changed],
    results,
    cancelled,
  });

  async function deliver(batch: Batch): Promise<NotifyReport> {
    const event = report(batch, [], false);
    if (closing.signal.aborted) return { ...event, cancelled: true };
    const results = await Promise.all(
      targets.map(async (target): Promise<DeliveryResult> => {
        const started = performance.now();
        let outcome: Outcome;
        try {
          outcome = await target.deliver(event, closing.signal);
        } catch (error) {
          // Targets return failures; this only catches bugs, which must not crash the agent either.
          const code = { signal: 'SIGNAL_FAILED', http: 'HTTP_FAILED', exec: 'EXEC_FAILED' } as const;
          outcome = {
            ok: false,
            error: notifyError(NotifyErrorCode[code[target.method]], 'Unexpected notification failure.', {
              cause: error,
            }),
          };
        }
        const durationMs = Math.round(performance.now() - started);
        const result = {
          ...outcome,
          method: target.method,
          target: target.target,
          durationMs,
        };
        const facts = {
          method: result.method,
          target: result.target,
          version: event.version,
          added: event.added.length,
          removed: event.removed.length,
          changed: event.changed.length,
          durationMs,
        };
        if (result.ok) {
          logger.info(
            {
              ...facts,
              result: 'success',
              ...(result.pids ? { pids: result.pids } : {}),
              ...(result.status ? { status: result.status } : {}),
            },
            'notified the app',
          );
        } else {
          logger.warn(
            { ...facts, result: 'failure', code: result.error.code, reason: result.error.message },
            'could not notify the app',
          );
        }
        try {
          options.metrics?.(result.method, result.ok ? 'success' : 'failure');
        } catch (error) {
          logger.debug({ err: error }, 'notification metrics callback threw');
        }
        return result;
      }),
    );
    return report(batch, results, false);
  }

  /** Deliver `pending` as soon as the delivery in flight (if any) is done, ignoring the window. */
  function deliverNext(): Promise<NotifyReport | undefined> {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (next !== undefined) return next;
    const queued = chain.then(async (): Promise<NotifyReport | undefined> => {
      next = undefined;
      // Changes that arrived while this delivery waited its turn ride along; close() may have taken them.
      const batch = pending;
      pending = undefined;
      if (batch === undefined) return undefined;
      lastStartedAt = performance.now();
      inFlight = true;
      let result: NotifyReport;
      try {
        result = await deliver(batch);
      } catch (error) {
        logger.error({ err: error }, 'notification delivery failed unexpectedly');
        result = report(batch, [], false);
      } finally {
        inFlight = false;
      }
      batch.waiters.forEach((resolve) => resolve(result));
      schedule();
      return result;
    });
    next = queued;
    chain = queued;
    return queued;
  }

  /** Start delivering `pending` now if the window has passed and nothing is in flight, else when it has. */
  function schedule(): void {
    if (pending === undefined || closing.signal.aborted) return;
    // Already waiting for the window, or for its turn after the delivery in flight (which reschedules).
    if (timer !== undefined || next !== undefined || inFlight) return;
    const wait = lastStartedAt + debounceMs - performance.now();
    if (wait <= 0) {
      void deliverNext();
      return;
    }
    logger.debug(
      { version: pending.version, waitMs: Math.ceil(wait) },
      'change held back until the notification window ends',
    );
    timer = setTimeout(() => {
      timer = undefined;
      void deliverNext();
    }, wait);
  }

  function flush(): Promise<NotifyReport | undefined> {
    if (pending === undefined) return chain.then(() => undefined);
    return deliverNext();
  }

  return {
    notify(event) {
      if (closing.signal.aborted) {
        const batch: Batch = {
          version: event.version,
          added: new Set(event.added),
          removed: new Set(event.removed),
          changed: new Set(event.changed),
          waiters: [],
        };
        return Promise.resolve(report(batch, [], true));
      }
      const batch = (pending ??= {
        version: event.version,
        added: new Set(),
        removed: new Set(),
        changed: new Set(),
        waiters: [],
      });
      batch.version = event.version;
      for (const name of event.added) batch.added.add(name);
      for (const name of event.removed) batch.removed.add(name);
      for (const name of event.changed) batch.changed.add(name);
      const promise = new Promise<NotifyReport>((resolve) => batch.waiters.push(resolve));
      schedule();
      return promise;
    },
    flush,
    async close() {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      closing.abort(notifyError(NotifyErrorCode.ABORTED, 'The notifier was closed.'));
      const batch = pending;
      pending = undefined;
      if (batch !== undefined) {
        const cancelled = report(batch, [], true);
        batch.waiters.forEach((resolve) => resolve(cancelled));
      }
      await chain.catch(() => undefined);
    },
  };
}

// ---- signal ---------------------------------------------------------------------------------------------

function signalOne(
  kill: KillFn,
  pid: number,
  signal: NodeJS.Signals,
  via: string,
): { ok: true } | { ok: false; error: AgentError } {
  try {
    kill(pid, signal);
    return { ok: true };
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'ESRCH') {
      return {
        ok: false,
        error: notifyError(
          NotifyErrorCode.PROCESS_GONE,
          `Process ${pid} (${via}) is not running (ESRCH); the pid file may be stale or the app has exited.`,
          { cause: error },
        ),
      };
    }
    if (code === 'EPERM') {
      return {
        ok: false,
        error: notifyError(
          NotifyErrorCode.NOT_PERMITTED,
          `Not permitted to send ${signal} to process ${pid} (${via}) (EPERM): run the agent as the same user as the app (in Kubernetes the same runAsUser) or give it the CAP_KILL capability.`,
          { cause: error },
        ),
      };
    }
    return {
      ok: false,
      error: notifyError(
        NotifyErrorCode.SIGNAL_FAILED,
        `Could not send ${signal} to process ${pid} (${via}): ${code ?? 'unknown error'}.`,
        { cause: error },
      ),
    };
  }
}

function pidfileTarget(pidfile: string, signal: NodeJS.Signals, kill: KillFn, logger: NotifyLogger): Target {
  const via = `pid file ${pidfile}`;
  return {
    method: 'signal',
    target: `pidfile ${pidfile}`,
    async deliver() {
      let text: string;
      try {
        text = await readFile(pidfile, 'utf8');
      } catch (error) {
        const code = errnoOf(error);
        if (code === 'ENOENT') {
          return {
            ok: false,
            error: notifyError(
              NotifyErrorCode.PIDFILE_MISSING,
              `Pid file ${pidfile} does not exist; has the app started and written it? (In Kubernetes, share the directory through a volume mounted in both containers.)`,
              { cause: error },
            ),
          };
        }
        return {
          ok: false,
          error: notifyError(
            NotifyErrorCode.PIDFILE_UNREADABLE,
            `Cannot read pid file ${pidfile}: ${code ?? 'unknown error'}.`,
            { cause: error },
          ),
        };
      }
      // The content is never echoed: a misconfigured path could point at a secret.
      const trimmed = text.trim();
      const pid = /^\d{1,10}$/.test(trimmed) ? Number(trimmed) : NaN;
      if (!Number.isSafeInteger(pid) || pid <= 1) {
        return {
          ok: false,
          error: notifyError(
            NotifyErrorCode.PIDFILE_INVALID,
            `Pid file ${pidfile} does not hold a process id (expected one integer greater than 1, found ${trimmed.length} characters of something else).`,
          ),
        };
      }
      const sent = signalOne(kill, pid, signal, via);
      if (!sent.ok) return sent;
      logger.debug({ method: 'signal', pid, signal }, 'signal sent');
      return { ok: true, pids: [pid] };
    },
  };
}

/** Matches `name` against a process's `comm` (exactly) or its argv[0] base name. */
function matchesName(name: string, comm: string | undefined, cmdline: string | undefined): boolean {
  if (comm !== undefined && comm.replace(/\n$/, '') === name) return true;
  if (cmdline === undefined || cmdline === '') return false;
  const argv0 = cmdline.split('\0', 1)[0] ?? '';
  return argv0 !== '' && basename(argv0) === name;
}

async function readOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

async function findProcesses(procRoot: string, name: string): Promise<{ pids: number[]; scanned: number }> {
  let self: number | undefined;
  try {
    self = Number(await readlink(join(procRoot, 'self')));
  } catch {
    self = undefined;
  }
  const entries = await readdir(procRoot);
  const candidates = entries.filter((entry) => /^\d+$/.test(entry) && Number(entry) !== self);
  const found = await Promise.all(
    candidates.map(async (entry) => {
      // A process may exit while we look; unreadable entries simply do not match.
      const [comm, cmdline] = await Promise.all([
        readOrUndefined(join(procRoot, entry, 'comm')),
        readOrUndefined(join(procRoot, entry, 'cmdline')),
      ]);
      return matchesName(name, comm, cmdline) ? Number(entry) : undefined;
    }),
  );
  return {
    pids: found.filter((pid): pid is number => pid !== undefined).sort((a, b) => a - b),
    scanned: candidates.length,
  };
}

function processNameTarget(
  name: string,
  signal: NodeJS.Signals,
  kill: KillFn,
  procRoot: string,
  logger: NotifyLogger,
): Target {
  const via = `process "${name}"`;
  return {
    method: 'signal',
    target: via,
    async deliver() {
      let found: { pids: number[]; scanned: number };
      try {
        found = await findProcesses(procRoot, name);
      } catch (error) {
        return {
          ok: false,
          error: notifyError(
            NotifyErrorCode.NO_PROCESS,
            `Cannot list processes in ${procRoot} (${errnoOf(error) ?? 'unknown error'}) to find ${via}.`,
            { cause: error },
          ),
        };
      }
      if (found.pids.length === 0) {
        return {
          ok: false,
          error: notifyError(
            NotifyErrorCode.NO_PROCESS,
            `No process named "${name}" is visible in ${procRoot} (${found.scanned} other processes seen). In Kubernetes the app and the agent must share a process namespace: set \`shareProcessNamespace: true\` in the pod spec.`,
          ),
        };
      }
      if (found.pids.length > 1) {
        logger.info(
          { method: 'signal', process: name, count: found.pids.length, pids: found.pids },
          'several processes match the name; signalling all',
        );
      }
      const sent: number[] = [];
      let firstError: AgentError | undefined;
      for (const pid of found.pids) {
        const outcome = signalOne(kill, pid, signal, via);
        if (outcome.ok) {
          sent.push(pid);
        } else {
          firstError ??= outcome.error;
          if (found.pids.length > 1)
            logger.warn(
              { method: 'signal', pid, code: outcome.error.code, reason: outcome.error.message },
              'could not signal one matching process',
            );
        }
      }
      if (sent.length === 0) return { ok: false, error: firstError! };
      return { ok: true, pids: sent };
    },
  };
}

// ---- http -----------------------------------------------------------------------------------------------

const RETRYABLE_STATUS = (status: number) => status === 408 || status === 429 || status >= 500;

function httpTarget(url: URL, timeoutMs: number, retryDelayMs: number, logger: NotifyLogger): Target {
  const target = describeUrl(url);
  // fetch refuses URLs with credentials: move them into a Basic authorization header.
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': 'phasekit-agent',
  };
  if (url.username !== '' || url.password !== '') {
    const user = decodeURIComponent(url.username);
    const password = decodeURIComponent(url.password);
    headers['authorization'] = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    url = new URL(url);
    url.username = '';
    url.password = '';
  }
  return {
    method: 'http',
    target,
    async deliver(event, closing) {
      const body = JSON.stringify({
        version: event.version,
        added: event.added,
        removed: event.removed,
        changed: event.changed,
      });
      let failure: AgentError | undefined;
      for (let attempt = 1; attempt <= 2; attempt++) {
        if (attempt > 1) {
          logger.debug(
            { method: 'http', target, attempt, reason: failure?.message },
            'retrying the HTTP hook',
          );
          try {
            await sleep(retryDelayMs, undefined, { signal: closing });
          } catch {
            break;
          }
        }
        let retryable: boolean;
        try {
          const response = await fetch(url, {
            method: 'POST',
            headers,
            body,
            redirect: 'manual',
            signal: AbortSignal.any([closing, AbortSignal.timeout(timeoutMs)]),
          });
          await response.body?.cancel().catch(() => undefined);
          if (response.status >= 200 && response.status < 300) return { ok: true, status: response.status };
          failure = notifyError(
            NotifyErrorCode.HTTP_STATUS,
            `HTTP hook ${target} answered ${response.status}.`,
          );
          retryable = RETRYABLE_STATUS(response.status);
        } catch (error) {
          if (closing.aborted) break;
          const timedOut = (error as { name?: unknown } | null)?.name === 'TimeoutError';
          const cause = (error as { cause?: unknown } | null)?.cause;
          const reason = timedOut
            ? `no answer within ${timeoutMs} ms`
            : (errnoOf(cause) ?? errnoOf(error) ?? 'request failed');
          failure = notifyError(NotifyErrorCode.HTTP_FAILED, `HTTP hook ${target} failed: ${reason}.`, {
            cause: error,
          });
          retryable = true;
        }
        if (!retryable) break;
      }
      if (closing.aborted)
        return {
          ok: false,
          error: notifyError(
            NotifyErrorCode.ABORTED,
            `HTTP hook ${target} aborted: the notifier was closed.`,
          ),
        };
      return { ok: false, error: failure! };
    },
  };
}

// ---- exec -----------------------------------------------------------------------------------------------

function execTarget(argv: readonly string[], env: EnvSource, timeoutMs: number): Target {
  const [command, ...args] = argv as [string, ...string[]];
  const target = command;
  return {
    method: 'exec',
    target,
    deliver(event, closing) {
      const childEnv: Record<string, string> = {};
      for (const [key, value] of Object.entries(env)) {
        if (value !== undefined && key !== 'PHASE_SERVICE_TOKEN') childEnv[key] = value;
      }
      childEnv['PHASEKIT_VERSION'] = String(event.version);
      childEnv['PHASEKIT_ADDED'] = event.added.join(',');
      childEnv['PHASEKIT_REMOVED'] = event.removed.join(',');
      childEnv['PHASEKIT_CHANGED'] = event.changed.join(',');

      return new Promise((resolve) => {
        let settled = false;
        let timedOut = false;
        let killTimer: NodeJS.Timeout | undefined;
        const finish = (outcome: Outcome) => {
          if (settled) return;
          settled = true;
          clearTimeout(timeout);
          clearTimeout(killTimer);
          closing.removeEventListener('abort', onAbort);
          resolve(outcome);
        };
        // Hook output is not captured or logged: it could print anything, values included.
        let child: ChildProcess;
        try {
          child = spawn(command, args, { env: childEnv, shell: false, stdio: 'ignore', windowsHide: true });
        } catch (error) {
          resolve({
            ok: false,
            error: notifyError(
              NotifyErrorCode.EXEC_FAILED,
              `Cannot start exec hook ${target}: ${errnoOf(error) ?? 'invalid command'}.`,
              { cause: error },
            ),
          });
          return;
        }
        const stop = () => {
          child.kill('SIGTERM');
          killTimer = setTimeout(() => child.kill('SIGKILL'), 2000);
        };
        const timeout = setTimeout(() => {
          timedOut = true;
          stop();
        }, timeoutMs);
        const onAbort = () => stop();
        closing.addEventListener('abort', onAbort, { once: true });
        child.once('error', (error) => {
          const code = errnoOf(error);
          const hint =
            code === 'ENOENT' ? ' (command not found)' : code === 'EACCES' ? ' (not executable)' : '';
          finish({
            ok: false,
            error: notifyError(
              NotifyErrorCode.EXEC_FAILED,
              `Cannot start exec hook ${target}: ${code ?? 'unknown error'}${hint}.`,
              { cause: error },
            ),
          });
        });
        child.once('close', (code, signal) => {
          if (closing.aborted) {
            finish({
              ok: false,
              error: notifyError(
                NotifyErrorCode.ABORTED,
                `Exec hook ${target} stopped: the notifier was closed.`,
              ),
            });
          } else if (timedOut) {
            finish({
              ok: false,
              error: notifyError(
                NotifyErrorCode.EXEC_TIMEOUT,
                `Exec hook ${target} ran longer than ${timeoutMs} ms and was stopped.`,
              ),
            });
          } else if (code === 0) {
            finish({ ok: true });
          } else {
            const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code}`;
            finish({
              ok: false,
              error: notifyError(NotifyErrorCode.EXEC_EXIT, `Exec hook ${target} ${how}.`),
            });
          }
        });
      });
    },
  };
}
