// `phasekit k8s sync`: one Phase environment into one managed Secret, once or kept current (--watch).
import { setTimeout as sleep } from 'node:timers/promises';
import type { PhaseClientOptions, Secret, SecretsWatch } from '@phasekit/sdk';
import { clientFor } from '../commands.js';
import type { K8sSyncConfig } from '../config/index.js';
import { AgentError, AgentErrorCode } from '../errors.js';
import type { Logger } from '../logger.js';
import { firstSecrets, guardReason, toEntries } from '../sync.js';
import { connect, type Kube } from './kube.js';
import { applySecret, loadHmacKey, type ApplyResult } from './managed-secret.js';
import { buildSecretData } from './transform.js';

export interface K8sSyncDeps {
  readonly logger: Logger;
  readonly signal: AbortSignal;
  readonly clientOptions?: Partial<PhaseClientOptions>;
  /** The API to write to; default from `config.kubeconfig`. */
  readonly kube?: Kube;
}

/**
 * Writes the Secret once, or with `watch` keeps it current: after every change in Phase, and at every interval
 * re-checks the Secret so that a deleted or hand-edited one is repaired. A failure while watching leaves the Secret
 * as it was and is retried; only the first sync's failure ends the command.
 */
export async function runK8sSync(config: K8sSyncConfig, deps: K8sSyncDeps): Promise<void> {
  const log = deps.logger.child({ component: 'k8s-sync' });
  const kube = deps.kube ?? connect(config.kubeconfig);
  const namespace =
    config.secret.namespace ??
    kube.config.getContextObject(kube.config.getCurrentContext())?.namespace ??
    'default';
  const hmacKey = await loadHmacKey(kube.core, namespace);
  const client = clientFor(config, log, deps.clientOptions);
  let keys: number | undefined;

  const write = async (secrets: readonly Secret[]): Promise<ApplyResult> => {
    const entries = toEntries(secrets);
    const refused = guardReason(entries.length, keys, { allowEmpty: config.allowEmpty, shrinkThreshold: 0 });
    if (refused !== undefined) throw new AgentError(AgentErrorCode.GUARD_REFUSED, refused);
    const { data, collisions } = buildSecretData(entries, { nameTransformer: config.secret.nameTransformer });
    for (const c of collisions) {
      log.warn(
        { output: c.output, winner: c.winner, loser: c.loser },
        'two Phase keys map to one Secret key; the later one wins',
      );
    }
    const result = await applySecret(
      kube.core,
      {
        namespace,
        name: config.secret.name,
        type: config.secret.type,
        data,
        labels: config.secret.labels,
        annotations: config.secret.annotations,
      },
      { adopt: config.adopt, hmacKey },
    );
    keys = entries.length;
    const level = result.action === 'unchanged' ? 'debug' : 'info';
    log[level](
      { secret: `${namespace}/${config.secret.name}`, action: result.action, keys: keys },
      `Secret ${result.action}`,
    );
    return result;
  };

  let watch: SecretsWatch | undefined;
  try {
    if (!config.watch) {
      const deadline = AbortSignal.any([deps.signal, AbortSignal.timeout(config.timeoutMs)]);
      await write(await client.getSecrets(config.source, { signal: deadline }));
      return;
    }

    watch = client.watch(config.source, { intervalMs: config.intervalMs, signal: deps.signal });
    // The watch's first snapshot is the first sync (one read at start, not a read and then the watch's own); an
    // error before it ends the command, as a sync without --watch would.
    await write(await firstSecrets(watch));
    watch.on('error', (e) => log.warn({ code: e.code }, `${e.message}; the Secret is left as it is`));
    let writing = Promise.resolve();
    const sync = (why: string) => {
      const secrets = watch?.current;
      if (secrets === undefined) return;
      writing = writing.then(() =>
        write(secrets).then(
          () => undefined,
          (error: unknown) => {
            const e = error instanceof Error ? error : new Error(String(error));
            log.error({ code: (e as { code?: unknown }).code, why }, `${e.message}; will retry`);
          },
        ),
      );
    };
    watch.on('change', () => sync('change'));
    // Drift: the watch only reports Phase's changes, so re-check the Secret itself every interval (a read; a write
    // only when it differs).
    while (!deps.signal.aborted) {
      try {
        await sleep(config.intervalMs, undefined, { signal: deps.signal });
      } catch {
        break;
      }
      sync('interval');
    }
    await writing;
  } finally {
    await watch?.close();
    await client.close();
  }
}
