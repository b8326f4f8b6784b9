import { spawn, type ChildProcess } from 'node:child_process';
import type { EnvSource } from '@phasekit/sdk';
import { once } from 'node:events';
import { constants as osConstants } from 'node:os';
import type { Logger } from './logger.js';
import type { PhaseClientOptions, Secret } from '@phasekit/sdk';
import { type RunConfig } from './config/index.js';
import { AgentError, AgentErrorCode } from './errors.js';
import { clientFor } from './commands.js';
import { firstSecrets, guardReason, toEntries } from './sync.js';

/** Signals relayed to the child. SIGKILL and SIGSTOP cannot be caught, so they never reach us. */
export const RELAYED_SIGNALS: readonly NodeJS.Signals[] = [
  'SIGTERM',
  'SIGINT',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR1',
  'SIGUSR2',
];

/** Signals that, arriving while no child runs (before the first start, during a restart), stop `run`. */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGQUIT'];

/** How `run` learns of signals sent to the agent; the CLI wires it to `process`. */
export type SignalSource = (handler: (signal: NodeJS.Signals) => void) => () => void;

export interface RunDeps {
  readonly logger: Logger;
  /** The environment the child inherits (the agent's own); secrets are added on top and win. */
  readonly env: EnvSource;
  readonly signals: SignalSource;
  readonly clientOptions?: Partial<PhaseClientOptions>;
  /**
   * How long a child asked to stop (restart) may take before SIGKILL.
   * @default 10000
   */
  readonly killAfterMs?: number;
}

// Variables of ours that must not leak into the child.
const STRIPPED = ['PHASE_SERVICE_TOKEN', 'PHASE_TOKEN_FILE'];

function childEnv(base: RunDeps['env'], secrets: readonly Secret[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined && !STRIPPED.includes(k)) env[k] = v;
  for (const { key, value } of toEntries(secrets)) {
    // The OS cannot carry a NUL inside an environment variable; refuse rather than truncate silently.
    if (value.includes('\0')) {
      throw new AgentError(
        AgentErrorCode.GUARD_REFUSED,
        `secret ${key} contains a NUL byte and cannot be put in an environment variable`,
      );
    }
    env[key] = value;
  }
  return env;
}

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  // A child killed by a signal: report it the way shells do.
  return 128 + (signal ? (osConstants.signals[signal] ?? 0) : 0);
}

/**
 * `phasekit run -- CMD ARGS...`: fetches the secrets, starts CMD without a shell (argv kept exactly) with
 * the secrets in its environment, relays signals, and resolves with the child's exit code. With
 * `--on-change restart` the child is replaced with a fresh environment after a change; with
 * `signal:NAME` it is signalled.
 */
export async function runCommand(config: RunConfig, deps: RunDeps, signal: AbortSignal): Promise<number> {
  const { logger } = deps;
  const log = logger.child({ component: 'run' });
  const client = clientFor(config, logger, deps.clientOptions);
  const [file, ...args] = config.run.command;
  if (file === undefined) throw new AgentError(AgentErrorCode.USAGE, 'no command given after --');
  const stopWatch = new AbortController();
  // Set by a stop signal: no (new) child may start after it, and a pending fetch is abandoned.
  const stopping = new AbortController();
  let child: ChildProcess | undefined;
  /** How many secrets the running child was given: the guard's reference for a change. */
  let childKeys: number | undefined;
  let restarting = false;
  let finish: (code: number) => void = () => {};
  let fail: (error: unknown) => void = () => {};
  const finished = new Promise<number>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });

  const start = (secrets: readonly Secret[]): void => {
    if (stopping.signal.aborted) return;
    const reason = guardReason(toEntries(secrets).length, undefined, config);
    if (reason !== undefined) throw new AgentError(AgentErrorCode.GUARD_REFUSED, reason);
    const proc = spawn(file, args, { env: childEnv(deps.env, secrets), stdio: 'inherit', shell: false });
    child = proc;
    childKeys = toEntries(secrets).length;
    proc.on('error', (error: NodeJS.ErrnoException) => {
      if (proc === child)
        fail(new AgentError(AgentErrorCode.USAGE, `could not start ${file}: ${error.code ?? 'error'}`));
    });
    proc.on('exit', (code, sig) => {
      // A child we are replacing does not end the run.
      if (proc !== child || restarting) return;
      log.info({ code, signal: sig }, 'the command exited');
      finish(exitCodeOf(code, sig));
    });
    log.info({ command: file, pid: proc.pid, keys: childKeys }, 'started the command');
  };

  const restart = async (old: ChildProcess, secrets: readonly Secret[]): Promise<void> => {
    restarting = true;
    const exited = once(old, 'exit');
    old.kill('SIGTERM');
    const timer = setTimeout(() => old.kill('SIGKILL'), deps.killAfterMs ?? 10_000);
    const [code, sig] = (await exited) as [number | null, NodeJS.Signals | null];
    clearTimeout(timer);
    try {
      // Asked to stop while the old child was going: end with its exit instead of starting a new one.
      if (stopping.signal.aborted) finish(exitCodeOf(code, sig));
      else start(secrets);
    } catch (error) {
      fail(error);
    } finally {
      restarting = false;
    }
  };

  const unsubscribe = deps.signals((sig) => {
    const running = child !== undefined && child.exitCode === null && child.signalCode === null;
    if (STOP_SIGNALS.includes(sig) && !stopping.signal.aborted) {
      stopping.abort();
      // Without a running child (still fetching, or between two children) nobody else would end the run.
      if (!running && !restarting) {
        log.info({ signal: sig }, 'stopping before the command started');
        finish(exitCodeOf(null, sig));
      }
    }
    if (running) child?.kill(sig);
  });
  try {
    const deadline = AbortSignal.any([signal, stopping.signal, AbortSignal.timeout(config.timeoutMs)]);
    const onChange = config.run.onChange;
    try {
      await startFirst(deadline, onChange);
    } catch (error) {
      if (!stopping.signal.aborted) throw error;
    }
    return await finished;
  } finally {
    unsubscribe();
    stopWatch.abort();
    await client.close();
  }

  async function startFirst(deadline: AbortSignal, onChange: RunConfig['run']['onChange']): Promise<void> {
    if (onChange.action === 'none') {
      start(await client.getSecrets(config.source, { signal: deadline }));
    } else {
      const watch = client.watch(config.source, {
        intervalMs: config.intervalMs,
        signal: AbortSignal.any([signal, stopWatch.signal, stopping.signal]),
      });
      watch.on('error', (e) => log.warn({ code: e.code }, e.message));
      start(await firstSecrets(watch));
      watch.on('change', (changes) => {
        const current = child;
        const secrets = watch.current;
        if (!current || !secrets || restarting || stopping.signal.aborted) return;
        // An empty or sharply shrunken set must not replace the running child's environment.
        const refused = guardReason(toEntries(secrets).length, childKeys, config);
        if (refused !== undefined) {
          log.error({ code: AgentErrorCode.GUARD_REFUSED }, `${refused}; the command keeps running`);
          return;
        }
        log.info(
          { added: changes.added, removed: changes.removed, changed: changes.changed },
          'secrets changed',
        );
        if (onChange.action === 'signal') current.kill(onChange.signal);
        else void restart(current, secrets);
      });
    }
  }
}
