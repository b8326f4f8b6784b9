// `phasekit operator` as a process: the kubeconfig, leader election, the HMAC key, health and metrics around one
// Operator. A lost Lease ends the command with an error, so the pod restarts as a candidate.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { PhaseClientOptions } from '@phasekit/sdk';
import type { OperatorConfig } from '../config/index.js';
import { AgentError, AgentErrorCode } from '../errors.js';
import { startHealthServer } from '../health.js';
import type { Logger } from '../logger.js';
import { createMetrics, type RuntimeStats } from '../metrics.js';
import { connect } from './kube.js';
import { leadWhile } from './leader.js';
import { loadHmacKey } from './managed-secret.js';
import { Operator } from './operator.js';

const POD_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

function podNamespace(): string | undefined {
  try {
    return readFileSync(POD_NAMESPACE_FILE, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export interface OperatorCommandDeps {
  readonly logger: Logger;
  readonly signal: AbortSignal;
  readonly clientOptions?: Partial<PhaseClientOptions>;
  /** Process figures for /metrics (the CLI passes them; the core never reads `process`). */
  readonly runtime?: () => RuntimeStats;
}

/** Runs the operator until `signal` aborts (resolves) or leadership is lost (rejects). */
export async function runOperatorCommand(config: OperatorConfig, deps: OperatorCommandDeps): Promise<void> {
  const kube = connect(config.kubeconfig);
  const operatorNamespace = config.operatorNamespace ?? podNamespace() ?? 'default';
  const metrics = createMetrics(deps.runtime ? { runtime: deps.runtime } : {});
  const stop = new AbortController();
  const signal = AbortSignal.any([deps.signal, stop.signal]);
  let operator: Operator | undefined;
  let standby = config.leaderElect;
  const health = config.healthAddr
    ? await startHealthServer({
        host: config.healthAddr.host,
        port: config.healthAddr.port,
        metrics,
        readiness: () =>
          standby || operator?.synced === true
            ? { ready: true }
            : { ready: false, reason: 'the informers have not listed yet' },
        logger: deps.logger.child({ component: 'health' }),
        signal,
      })
    : undefined;
  let lostLeadership = false;
  try {
    if (config.leaderElect) {
      const lead = await leadWhile(
        {
          kube,
          namespace: operatorNamespace,
          identity: `${hostname()}_${randomUUID().slice(0, 8)}`,
          leaseDurationMs: config.leaseDurationMs,
          renewMs: Math.floor(config.leaseDurationMs / 3),
          logger: deps.logger,
        },
        signal,
      );
      if (lead === undefined) return;
      void lead.lost.then(() => {
        lostLeadership = true;
        stop.abort();
      });
      standby = false;
    }
    const hmacKey = await loadHmacKey(kube.core, operatorNamespace);
    operator = new Operator({
      kube,
      logger: deps.logger,
      hmacKey,
      namespace: config.namespace,
      allowNamespaces: config.allowNamespaces,
      timeoutMs: config.timeoutMs,
      insecureHttp: config.insecureHttp,
      metrics,
      clientOptions: {
        ...deps.clientOptions,
        onResponse: (route, status) => metrics.httpRequest(route, status),
      },
    });
    await operator.run(signal);
  } finally {
    await health?.close();
  }
  if (lostLeadership) {
    throw new AgentError(
      AgentErrorCode.KUBE_UNAVAILABLE,
      'lost the leader Lease; stopping so that only the leader writes',
    );
  }
}
