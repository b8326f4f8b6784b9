// Item 7: `phasekit operator` at scale, against a real kube-apiserver (+ controller-manager) and five emulators
// (five tokens) over HTTPS: 1,000 PhaseSecrets in 20 namespaces. Measures the time from start to all Ready, Phase
// requests and apiserver writes per unchanged interval, the delay from a change in Phase to the updated Secret, and
// the operator's RSS. The operator runs as the image runs it (the CLI from the image layout, the ENTRYPOINT flags).
import * as k8s from '@kubernetes/client-node';
import { startControlPlane } from '../packages/agent/test/k8s/control-plane.mjs';
import { startEmulatorProcess } from './lib/emulator.mjs';
import { rssKiB, sleep, startNode } from './lib/proc.mjs';
import { summarize } from './lib/stats.mjs';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

const GROUP = { group: 'secrets.phase.dev', version: 'v1alpha1', plural: 'phasesecrets' };
const NAMESPACES = 20;
const PER_NAMESPACE = 50;
const TOKENS = 5;
const INTERVAL_S = 10;
const CHANGES = 10;

/**
 * Runs item 7; `cli` is `[...nodeFlags, entry]` of the image layout, `crdFile` deploy/'s CRD, `chartValues` the
 * operator chart's values.yaml, whose NODE_OPTIONS the operator runs with, as the chart runs it.
 */
export async function operatorItem({ cli, crdFile, chartValues, tlsDir, log }) {
  const nodeOptions = parse(readFileSync(chartValues, 'utf8')).nodeOptions ?? '';
  log(
    `item 7: operator, ${NAMESPACES * PER_NAMESPACE} PhaseSecrets in ${NAMESPACES} namespaces over ${TOKENS} tokens`,
  );
  const plane = await startControlPlane();
  const emulators = [];
  let operator;
  try {
    for (let i = 0; i < TOKENS; i++) {
      emulators.push(
        await startEmulatorProcess({
          app: 'bench',
          envs: [{ name: 'Production', count: 20, prefix: 'OP' }],
          tls: tlsDir,
        }),
      );
    }
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(plane.kubeconfig);
    // The same connection reuse as packages/agent/src/k8s/kube.ts (client-node 2.0.1 makes an Agent per call), so
    // the bench's own polling does not load the API server with a TLS handshake per request.
    const createDispatcher = kc.createDispatcher;
    let dispatcher;
    kc.createDispatcher = (...args) => (dispatcher ??= createDispatcher.apply(kc, args));
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const crd = parse(readFileSync(crdFile, 'utf8'));
    await custom.createClusterCustomObject({
      group: 'apiextensions.k8s.io',
      version: 'v1',
      plural: 'customresourcedefinitions',
      body: crd,
    });
    for (let i = 0; ; i++) {
      try {
        await custom.listClusterCustomObject(GROUP);
        break;
      } catch (error) {
        if (i > 100) throw error;
        await sleep(100);
      }
    }
    await core.createNamespace({ body: { metadata: { name: 'phasekit-system' } } });
    const namespaces = Array.from({ length: NAMESPACES }, (_, i) => `bench-${String(i).padStart(2, '0')}`);
    for (const [i, namespace] of namespaces.entries()) {
      await core.createNamespace({ body: { metadata: { name: namespace } } });
      await core.createNamespacedSecret({
        namespace,
        body: {
          metadata: { name: 'phase-service-token' },
          stringData: { token: emulators[i % TOKENS].tokens.serviceAccount },
        },
      });
    }

    const started = performance.now();
    operator = startNode(
      [
        ...cli,
        'operator',
        '--kubeconfig',
        plane.kubeconfig,
        '--operator-namespace',
        'phasekit-system',
        '--health-addr',
        '127.0.0.1:0',
      ],
      {
        env: {
          PHASE_LOG_LEVEL: 'info',
          NODE_OPTIONS: nodeOptions,
        },
      },
    );
    const metricsUrl = `${(await operator.waitLine((l) => l.msg === 'health server listening')).url}/metrics`;
    /** The operator's own memory figures, from its /metrics. */
    const memory = async () => {
      const text = await (await fetch(metricsUrl)).text();
      const read = (name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]) / 1024 / 1024;
      return {
        rssMiB: read('phasekit_process_resident_memory_bytes'),
        heapUsedMiB: read('phasekit_nodejs_heap_size_used_bytes'),
        heapTotalMiB: read('phasekit_nodejs_heap_size_total_bytes'),
        externalMiB: read('phasekit_nodejs_external_memory_bytes'),
      };
    };
    let peakRss = 0;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, rssKiB(operator.child.pid) / 1024 || 0);
    }, 200);
    try {
      // Created in parallel batches, as `kubectl apply -f dir/` would.
      const all = namespaces.flatMap((namespace, n) =>
        Array.from({ length: PER_NAMESPACE }, (_, i) => ({
          namespace,
          name: `ps-${i}`,
          host: emulators[n % TOKENS].url,
        })),
      );
      for (let i = 0; i < all.length; i += 50) {
        await Promise.all(
          all.slice(i, i + 50).map(({ namespace, name, host }) =>
            custom.createNamespacedCustomObject({
              ...GROUP,
              namespace,
              body: {
                apiVersion: 'secrets.phase.dev/v1alpha1',
                kind: 'PhaseSecret',
                metadata: { name },
                spec: {
                  phaseApp: 'bench',
                  phaseAppEnv: 'Production',
                  phaseHost: host,
                  pollingInterval: INTERVAL_S,
                  managedSecretReferences: [{ secretName: `${name}-env` }],
                },
              },
            }),
          ),
        );
      }
      const created = performance.now();
      const readyCount = async () => {
        const list = await custom.listClusterCustomObject(GROUP);
        return list.items.filter((ps) =>
          ps.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        ).length;
      };
      let ready = 0;
      while (ready < all.length && performance.now() - started < 300_000) {
        await sleep(500);
        ready = await readyCount();
      }
      const allReadyS = (performance.now() - started) / 1000;
      log(`item 7: ${ready}/${all.length} Ready ${allReadyS.toFixed(1)} s after start`);

      // Unchanged intervals: Phase requests (all five emulators) and objects written (resourceVersion changed).
      await sleep(INTERVAL_S * 1000);
      const versions = async () => {
        const [secrets, phaseSecrets, events] = await Promise.all([
          core.listSecretForAllNamespaces({ labelSelector: 'app.kubernetes.io/managed-by=phasekit' }),
          custom.listClusterCustomObject(GROUP),
          core.listEventForAllNamespaces(),
        ]);
        return {
          objects: new Map(
            [...secrets.items, ...phaseSecrets.items].map((o) => [
              o.metadata.uid,
              o.metadata.resourceVersion,
            ]),
          ),
          events: events.items.length,
        };
      };
      for (const e of emulators) await e.control.clearRequests();
      const before = await versions();
      const windows = 3;
      await sleep(windows * INTERVAL_S * 1000);
      const after = await versions();
      let requests = { tokens: 0, secrets: 0 };
      for (const e of emulators) {
        for (const r of await e.control.requests()) requests[r.route] = (requests[r.route] ?? 0) + 1;
      }
      let writes = after.events - before.events;
      for (const [uid, rv] of after.objects) if (before.objects.get(uid) !== rv) writes += 1;
      const steadyRss = rssKiB(operator.child.pid) / 1024;
      const steadyMemory = await memory();

      // Changes: one secret in one emulator; the time until every Secret of that token's namespaces has the value.
      const delays = [];
      for (let c = 0; c < CHANGES; c++) {
        const t = c % TOKENS;
        const value = `changed-${c}`;
        const changedAt = performance.now();
        await emulators[t].control.setSecret({ app: 'bench', env: 'Production', key: 'OP_KEY_0000', value });
        const watched = namespaces.filter((_, n) => n % TOKENS === t);
        const pending = new Set(
          watched.flatMap((ns) => Array.from({ length: PER_NAMESPACE }, (_, i) => `${ns}/ps-${i}-env`)),
        );
        while (pending.size > 0 && performance.now() - changedAt < 120_000) {
          for (const ns of watched) {
            const list = await core.listNamespacedSecret({
              namespace: ns,
              labelSelector: 'app.kubernetes.io/managed-by=phasekit',
            });
            for (const s of list.items) {
              const key = `${ns}/${s.metadata.name}`;
              if (pending.has(key) && Buffer.from(s.data?.OP_KEY_0000 ?? '', 'base64').toString() === value) {
                pending.delete(key);
                delays.push(performance.now() - changedAt);
              }
            }
          }
          if (pending.size > 0) await sleep(250);
        }
      }
      return {
        phaseSecrets: all.length,
        namespaces: NAMESPACES,
        tokens: TOKENS,
        intervalS: INTERVAL_S,
        createS: (created - started) / 1000,
        allReadyS,
        ready,
        unchanged: {
          windows,
          tokens: requests.tokens / windows,
          secrets: requests.secrets / windows,
          writes: writes / windows,
        },
        changes: CHANGES,
        updateMs: summarize(delays),
        peakRssMiB: peakRss,
        steadyRssMiB: steadyRss,
        steadyMemory,
        nodeOptions,
      };
    } finally {
      clearInterval(sampler);
    }
  } finally {
    operator?.child.kill('SIGTERM');
    for (const e of emulators) await e.close();
    plane.kill();
  }
}
