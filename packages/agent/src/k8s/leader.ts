// Leader election with a coordination.k8s.io Lease, as client-go's leaderelection: the holder renews the Lease
// every renew period; a candidate takes it once it has not been renewed for the lease duration.
import { setTimeout as sleep } from 'node:timers/promises';
import { V1MicroTime, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../logger.js';
import { kubeError, statusOf, type Kube } from './kube.js';

export interface LeaderElectionOptions {
  readonly kube: Kube;
  readonly namespace: string;
  /** @default 'phasekit-operator' */
  readonly name?: string;
  /** This replica's name in the Lease (the pod name). */
  readonly identity: string;
  /** @default 15000 @unit ms */
  readonly leaseDurationMs?: number;
  /** @default 5000 @unit ms */
  readonly renewMs?: number;
  readonly logger: Logger;
}

/**
 * Waits until this replica holds the Lease, then keeps renewing it. Resolves `lost` when leadership is lost (the
 * operator must stop writing: it exits and its pod restarts as a candidate) and releases the Lease when `signal`
 * aborts, so a successor need not wait out the lease.
 */
export async function leadWhile(
  options: LeaderElectionOptions,
  signal: AbortSignal,
): Promise<{ lost: Promise<void> } | undefined> {
  const { kube, namespace, identity, logger } = options;
  const name = options.name ?? 'phasekit-operator';
  const durationMs = options.leaseDurationMs ?? 15_000;
  const renewMs = options.renewMs ?? 5_000;
  const log = logger.child({ component: 'leader', lease: `${namespace}/${name}` });

  /** One attempt to take or renew; true when we hold the Lease afterwards. */
  const tryAcquire = async (): Promise<boolean> => {
    const now = new V1MicroTime();
    let lease: V1Lease | undefined;
    try {
      lease = await kube.coordination.readNamespacedLease({ name, namespace });
    } catch (error) {
      if (statusOf(error) !== 404) throw kubeError(error, 'cannot read the Lease');
    }
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(durationMs / 1000),
      renewTime: now,
    };
    if (lease === undefined) {
      try {
        await kube.coordination.createNamespacedLease({
          namespace,
          body: { metadata: { name, namespace }, spec: { ...spec, acquireTime: now, leaseTransitions: 0 } },
        });
        return true;
      } catch (error) {
        if (statusOf(error) === 409) return false;
        throw kubeError(error, 'cannot create the Lease');
      }
    }
    const holder = lease.spec?.holderIdentity;
    const renewed = lease.spec?.renewTime ? new Date(lease.spec.renewTime).getTime() : 0;
    const expired = Date.now() - renewed > (lease.spec?.leaseDurationSeconds ?? 15) * 1000;
    if (holder && holder !== identity && !expired) return false;
    const taking = holder !== identity;
    try {
      await kube.coordination.replaceNamespacedLease({
        name,
        namespace,
        body: {
          ...lease,
          spec: {
            ...lease.spec,
            ...spec,
            ...(taking
              ? { acquireTime: now, leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + 1 }
              : {}),
          },
        },
      });
      return true;
    } catch (error) {
      if (statusOf(error) === 409) return false;
      throw kubeError(error, 'cannot update the Lease');
    }
  };

  // Campaign.
  for (;;) {
    if (signal.aborted) return undefined;
    try {
      if (await tryAcquire()) break;
    } catch (error) {
      log.warn({}, error instanceof Error ? error.message : 'lease error');
    }
    try {
      await sleep(renewMs, undefined, { signal });
    } catch {
      return undefined;
    }
  }
  log.info({ identity }, 'became the leader');

  // Renew until the signal or a renew deadline passes.
  const lost = (async () => {
    let lastRenew = Date.now();
    for (;;) {
      try {
        await sleep(renewMs, undefined, { signal });
      } catch {
        break;
      }
      try {
        if (await tryAcquire()) {
          lastRenew = Date.now();
          continue;
        }
        log.error({}, 'another replica holds the Lease: leadership lost');
        return;
      } catch (error) {
        log.warn({}, error instanceof Error ? error.message : 'lease error');
        if (Date.now() - lastRenew > durationMs - renewMs) {
          log.error({}, 'could not renew the Lease in time: leadership lost');
          return;
        }
      }
    }
    // Stopping: hand the Lease over at once.
    try {
      const lease = await kube.coordination.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity === identity) {
        await kube.coordination.replaceNamespacedLease({
          name,
          namespace,
          body: { ...lease, spec: { ...lease.spec, renewTime: new V1MicroTime(0) } },
        });
      }
    } catch {
      // The Lease expires by itself.
    }
    await new Promise<void>(() => {});
  })();
  return { lost };
}
