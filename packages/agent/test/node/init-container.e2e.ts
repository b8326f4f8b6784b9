// Pattern (a) on a real node: deploy/kubernetes/init-container.yaml, changed only in image and host, starts the app
// with the secrets on a memory emptyDir; with Phase down the init container exits 5, and the pod recovers by itself
// once Phase is back.
import type { V1PodList } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  adapt,
  apply,
  eventually,
  getJson,
  hardeningProblems,
  kubectl,
  manifest,
  phaseObjects,
  program,
  readInPod,
  runningPods,
  startPhase,
  testNamespace,
  type Phase,
} from './pods.js';

let phase: Phase;
let ns: { name: string; drop(): Promise<void> };

beforeAll(async () => {
  phase = await startPhase({
    apps: [
      {
        name: 'shop',
        environments: [
          {
            name: 'Production',
            secrets: [
              { key: 'DATABASE_URL', value: 'postgres://db/shop' },
              { key: 'API_KEY', value: 'init-canary-value' },
            ],
          },
        ],
      },
    ],
  });
  ns = await testNamespace('init-container');
  await apply(ns.name, phaseObjects(phase, phase.emu.tokens.serviceAccount));
});
afterAll(async () => {
  await ns?.drop();
  await phase?.emu.close();
});

describe('init container (deploy/kubernetes/init-container.yaml)', () => {
  it('starts the app with the secrets on a memory emptyDir', async () => {
    const [deployment] = manifest('init-container.yaml');
    await apply(ns.name, [adapt(deployment!, phase, program(''))]);
    await kubectl(['rollout', 'status', 'deployment/shop', '-n', ns.name, '--timeout=90s']);
    const pods = await runningPods(ns.name, 'app.kubernetes.io/name=shop');
    expect(pods).toHaveLength(2);
    for (const pod of pods) {
      const name = pod.metadata!.name!;
      expect(await readInPod(ns.name, name, 'app', '/phase/secrets/DATABASE_URL')).toBe('postgres://db/shop');
      expect(await readInPod(ns.name, name, 'app', '/phase/secrets/.env')).toContain('API_KEY=');
      const mounts = await readInPod(ns.name, name, 'app', '/proc/mounts');
      expect(mounts).toMatch(/^tmpfs \/phase\/secrets tmpfs ro[,\s]/m);
      expect(pod.status?.initContainerStatuses?.[0]?.state?.terminated?.exitCode).toBe(0);
      expect(hardeningProblems(pod)).toEqual([]);
    }
  });

  it('exits 5 while Phase is down, and the pod recovers by itself once Phase is back', async () => {
    await phase.stop();
    await kubectl(['rollout', 'restart', 'deployment/shop', '-n', ns.name]);
    const failed = await eventually(
      async () => {
        const list = await getJson<V1PodList>(['pods', '-n', ns.name]);
        for (const pod of list.items) {
          const init = pod.status?.initContainerStatuses?.[0];
          const exit = init?.state?.terminated?.exitCode ?? init?.lastState?.terminated?.exitCode;
          if (exit !== undefined && exit !== 0) return { pod: pod.metadata!.name!, exit };
        }
        return undefined;
      },
      'an init container to fail',
      120_000,
    );
    expect(failed.exit).toBe(5);
    const logs = await kubectl(['logs', '-n', ns.name, failed.pod, '-c', 'phasekit']);
    expect(logs).not.toContain('init-canary-value');
    // The old pods keep serving meanwhile.
    expect(await runningPods(ns.name, 'app.kubernetes.io/name=shop')).toHaveLength(2);

    await phase.start();
    await kubectl(['rollout', 'status', 'deployment/shop', '-n', ns.name, '--timeout=180s']);
    const pods = await runningPods(ns.name, 'app.kubernetes.io/name=shop');
    expect(pods.map((p) => p.metadata?.name)).toContain(failed.pod);
    expect(await readInPod(ns.name, failed.pod, 'app', '/phase/secrets/DATABASE_URL')).toBe(
      'postgres://db/shop',
    );
  });
});
