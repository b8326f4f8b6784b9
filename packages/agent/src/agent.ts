import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { EventEmitter } from 'eventemitter3';
import type { Logger } from './logger.js';
import {
  PhaseClient,
  isPhaseError,
  type ChangeSet,
  type PhaseClientOptions,
  type Secret,
} from '@phasekit/sdk';
import { type OutputConfig, type SidecarConfig } from './config/index.js';
import { AgentError, AgentErrorCode } from './errors.js';
import type { Readiness } from './health.js';
import type { Metrics } from './metrics.js';
import type { Notifier } from './notify.js';
import type { SnapshotWriter } from './snapshot/writer.js';
import { lockOutputs } from './snapshot/lock.js';
import { applySecrets, prepareOutputs, writerFor } from './sync.js';

/** Events of a running {@link Sidecar}. Payloads carry names, versions and codes, never values. */
export interface SidecarEvents {
  /** A new snapshot was flipped into place. */
  written: [info: { output: string; version: number; changes: ChangeSet; first: boolean }];
  /** A sync failed (Phase, the guard or the disk); the last good snapshot stays. */
  failed: [info: { output: string; code: string; message: string }];
  /** Every output has its first snapshot. */
  ready: [];
}

/** What the sidecar is built from; the CLI passes real ones, tests may pass their own. */
export interface SidecarDeps {
  readonly logger: Logger;
  readonly metrics?: Metrics | undefined;
  readonly notifier?: Notifier | undefined;
  /** Extra options for every PhaseClient (a dispatcher, for instance). */
  readonly clientOptions?: Partial<PhaseClientOptions>;
}

interface OutputState {
  readonly output: OutputConfig;
  readonly writer: SnapshotWriter;
  written: boolean;
  lastSuccess: number | undefined;
  refused: string | undefined;
  /** Why the latest secrets could not be written (the disk, not the guard); cleared by the next good write. */
  failed: string | undefined;
  /** How long the poll that fetched the pending snapshot took. */
  pollMs: number;
}

/** How long to wait before writing again after a failed write: doubling from the interval, at most this. */
const MAX_WRITE_RETRY_MS = 30_000;

/**
 * The long-running agent: keeps every output's snapshot current through the SDK's watch (a cheap probe per
 * interval, a fetch only on change), keeps the last good snapshot through every failure, notifies the app
 * after real changes, and reports readiness. Never touches `process`.
 */
export class Sidecar extends EventEmitter<SidecarEvents> {
  readonly #config: SidecarConfig;
  readonly #deps: SidecarDeps;
  readonly #states: OutputState[];
  #token: string;

  constructor(config: SidecarConfig, deps: SidecarDeps) {
    super();
    this.#config = config;
    this.#deps = deps;
    this.#token = config.auth.token;
    this.#states = config.outputs.map((output) => ({
      output,
      writer: writerFor(output, config.host, deps.logger),
      written: false,
      lastSuccess: undefined,
      refused: undefined,
      failed: undefined,
      pollMs: 0,
    }));
  }

  /** `/readyz`: every output written, none refused, and each synced within `staleAfterMs`. */
  readiness(now = Date.now()): Readiness {
    for (const s of this.#states) {
      if (s.refused)
        return { ready: false, reason: `output ${s.output.name} refused the latest secrets: ${s.refused}` };
      if (s.failed)
        return {
          ready: false,
          reason: `output ${s.output.name} could not write the latest secrets: ${s.failed}`,
        };
      if (!s.written)
        return { ready: false, reason: `waiting for the first snapshot of output ${s.output.name}` };
      const age = now - (s.lastSuccess ?? 0);
      if (age > this.#config.staleAfterMs) {
        return {
          ready: false,
          reason: `stale: output ${s.output.name} last synced ${Math.round(age / 1000)}s ago`,
        };
      }
    }
    return { ready: true };
  }

  /**
   * Runs until `signal` aborts. Token-file rotation restarts the watches with a new client; the writers
   * (and so the snapshots) carry on.
   */
  async run(signal: AbortSignal): Promise<void> {
    const { logger } = this.#deps;
    const locks = await lockOutputs(this.#states.map((state) => state.output.out));
    try {
      await prepareOutputs(this.#states.map((state) => state.writer));
    } catch (error) {
      await Promise.all(locks.map((lock) => lock.release()));
      throw error;
    }
    const stopTokenWatch = this.#watchTokenFile(signal);
    try {
      while (!signal.aborted) {
        const generation = new AbortController();
        const onAbort = () => generation.abort();
        signal.addEventListener('abort', onAbort, { once: true });
        this.#rotate = () => generation.abort();
        const client = this.#client();
        try {
          await Promise.all(this.#states.map((state) => this.#follow(state, client, generation.signal)));
        } finally {
          signal.removeEventListener('abort', onAbort);
          await client.close();
        }
        if (!signal.aborted) logger.info({}, 'token changed; reconnecting with the new token');
      }
    } finally {
      await stopTokenWatch();
      await this.#deps.notifier?.close();
      if (this.#config.cleanup) {
        for (const s of this.#states) await s.writer.cleanup();
        logger.info({ outputs: this.#states.length }, 'snapshot directories removed (--cleanup)');
      }
      await Promise.all(locks.map((lock) => lock.release()));
    }
  }

  #rotate: () => void = () => {};

  #client(): PhaseClient {
    const { logger, metrics, clientOptions } = this.#deps;
    return new PhaseClient({
      token: this.#token,
      host: this.#config.host,
      env: {},
      totalTimeoutMs: this.#config.timeoutMs,
      logger: logger.child({ component: 'sdk' }),
      ...(metrics ? { onResponse: (route, status) => metrics.httpRequest(route, status) } : {}),
      ...clientOptions,
    });
  }

  async #follow(state: OutputState, client: PhaseClient, signal: AbortSignal): Promise<void> {
    const { logger, metrics } = this.#deps;
    const log = logger.child({ component: 'watcher', output: state.output.name });
    const watch = client.watch(state.output.source, {
      intervalMs: this.#config.intervalMs,
      staleAfterMs: this.#config.staleAfterMs,
      signal,
    });
    watch.on('polled', ({ changed, durationMs }) => {
      state.lastSuccess = Date.now();
      // A changed poll is counted once its snapshot is applied, with the write's time added.
      if (changed) state.pollMs = durationMs;
      else metrics?.syncResult('unchanged', durationMs / 1000);
    });
    watch.on('error', (error) => {
      metrics?.syncResult('failure', 0);
      log.warn({ code: error.code, status: error.status, retryAfterMs: error.retryAfterMs }, error.message);
      this.emit('failed', { output: state.output.name, code: error.code, message: error.message });
    });
    watch.on('stale', () =>
      log.error({ staleAfterMs: this.#config.staleAfterMs }, 'secrets are stale: Phase has not answered'),
    );
    watch.on('recovered', () => log.info({}, 'Phase answers again'));

    for await (const snapshot of watch) {
      // A failed write (the disk, not the guard) is retried with backoff, or at once when Phase changes again: the
      // watch delivers a snapshot only once, so without this the output would stay behind until the next change.
      let secrets = snapshot.secrets;
      for (let attempt = 0; !(await this.#apply(state, secrets, log)) && !signal.aborted; attempt++) {
        const wake = new AbortController();
        const onChange = () => wake.abort();
        watch.once('change', onChange);
        const delay = Math.min(this.#config.intervalMs * 2 ** attempt, MAX_WRITE_RETRY_MS);
        await sleep(delay, undefined, { signal: AbortSignal.any([signal, wake.signal]) }).catch(
          () => undefined,
        );
        watch.off('change', onChange);
        secrets = watch.current ?? secrets;
      }
    }
  }

  /** Writes one output's snapshot; false when the write failed and is worth retrying (not refused by the guard). */
  async #apply(state: OutputState, secrets: readonly Secret[], log: Logger): Promise<boolean> {
    const { metrics, notifier } = this.#deps;
    const started = performance.now() - state.pollMs;
    state.pollMs = 0;
    try {
      const result = await applySecrets(state.writer, secrets, this.#config);
      const seconds = (performance.now() - started) / 1000;
      const first = !state.written;
      state.written = true;
      state.refused = undefined;
      state.failed = undefined;
      state.lastSuccess = Date.now();
      metrics?.secrets(new Set(secrets.map((s) => s.key)).size);
      metrics?.syncResult(result.changed ? 'success' : 'unchanged', seconds);
      if (result.changed) {
        log.info(
          {
            version: result.version,
            added: result.changes.added,
            removed: result.changes.removed,
            changed: result.changes.changed,
          },
          first ? 'snapshot written' : 'snapshot updated',
        );
        this.emit('written', {
          output: state.output.name,
          version: result.version,
          changes: result.changes,
          first,
        });
        if (notifier && (!first || this.#config.notify?.onStart)) {
          void notifier.notify({ version: result.version, ...result.changes });
        }
      } else if (first) {
        log.info({ version: result.version }, 'snapshot up to date');
      }
      if (first && this.#states.every((s) => s.written)) {
        log.info({ outputs: this.#states.length }, 'ready');
        this.emit('ready');
      }
      return true;
    } catch (error) {
      const refused = error instanceof AgentError && error.code === AgentErrorCode.GUARD_REFUSED;
      metrics?.syncResult(refused ? 'refused' : 'failure', (performance.now() - started) / 1000);
      if (refused) state.refused = error.message;
      else state.failed = (error as Error).message;
      const code = error instanceof AgentError || isPhaseError(error) ? error.code : 'WRITE';
      log.error({ code }, (error as Error).message);
      this.emit('failed', { output: state.output.name, code, message: (error as Error).message });
      return refused;
    }
  }

  /** Re-reads `--token-file` when it changes (a projected Secret rotating) and restarts with the new token. */
  #watchTokenFile(signal: AbortSignal): () => Promise<void> {
    const auth = this.#config.auth;
    if (auth.source !== 'file') return async () => {};
    const log = this.#deps.logger.child({ component: 'token' });
    const reread = async () => {
      try {
        await sleep(50, undefined, { signal });
        const token = (await readFile(auth.tokenFile, 'utf8')).trim();
        if (token && token !== this.#token) {
          // A malformed new token must not take down a sidecar that still has a working one.
          await new PhaseClient({ token, host: this.#config.host, env: {} }).close();
          this.#token = token;
          log.info({ file: auth.tokenFile }, 'token file changed');
          this.#rotate();
        }
      } catch (error) {
        if (!signal.aborted) {
          log.warn(
            { file: auth.tokenFile, code: (error as { code?: string }).code },
            'could not use the changed token file; keeping the current token',
          );
        }
      }
    };
    // chokidar is loaded only here: a sidecar whose token comes from the environment never pays for it.
    const watching = import('chokidar').then(
      ({ watch }) => {
        if (signal.aborted) return undefined;
        // Kubernetes swaps projected files through a `..data` symlink flip, so watch the folder too.
        const watcher = watch(auth.tokenFile, {
          ignoreInitial: true,
          awaitWriteFinish: { stabilityThreshold: 100 },
        });
        watcher.on('all', () => void reread());
        return watcher;
      },
      (error: unknown) => {
        log.warn({ err: error }, 'cannot watch the token file; a rotated token is picked up only on restart');
        return undefined;
      },
    );
    return async () => {
      await (await watching)?.close();
    };
  }
}
