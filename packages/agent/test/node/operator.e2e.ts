// The operator in a pod on a real node, installed by deploy/helm/phasekit-operator, under the chart's ServiceAccount
// and least-privilege RBAC: a change in Phase reaches new pods of a Deployment (envFrom, env.valueFrom and a Secret
// volume), a StatefulSet and a DaemonSet through exactly one rollout each. The chart in namespaced mode cannot read a
// Secret outside its namespace, from inside its own pod.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { V1PodList } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  apply,
  eventually,
  getJson,
  hardeningProblems,
  idsInContainer,
  IMAGE,
  kubectl,
  manifest,
  NODE,
  phaseObjects,
  podExec,
  program,
  runningPods,
  startPhase,
  testNamespace,
  type Phase,
} from './pods.js';
import { CHART, helmIn } from '../k8s/cluster.js';

const helm = helmIn(mkdtempSync(join(tmpdir(), 'phasekit-helm-')));
const CANARY = 'operator-canary-value';

/** Installs the chart as `release` in `namespace`, with this node's image and Phase's CA (extraEnv/extraVolumes). */
async function install(release: string, namespace: string, phase: Phase, set: string[] = []): Promise<void> {
  await kubectl(['create', 'namespace', namespace]);
  await apply(namespace, [phaseObjects(phase, 'unused')[1]!]);
  await helm([
    'install',
    release,
    CHART,
    '--namespace',
    namespace,
    '--set',
    `image.repository=${IMAGE.split(':')[0]}`,
    '--set',
    'image.tag=dev',
    '--set',
    'image.pullPolicy=Never',
    '--set-json',
    'extraEnv=[{"name":"NODE_EXTRA_CA_CERTS","value":"/etc/phase-ca/ca.pem"}]',
    '--set-json',
    'extraVolumes=[{"name":"phase-ca","configMap":{"name":"phase-ca"}}]',
    '--set-json',
    'extraVolumeMounts=[{"name":"phase-ca","mountPath":"/etc/phase-ca","readOnly":true}]',
    ...set.flatMap((s) => ['--set', s]),
    '--wait',
    '--timeout=120s',
  ]);
}

/** Each pod of the workloads logs what it was started with: the env var, the env.valueFrom one and the file. */
const APP = program(`
const fs = require('fs');
console.log(JSON.stringify({
  envFrom: process.env.DATABASE_URL,
  valueFrom: process.env.DB_FROM_REF,
  file: fs.readFileSync('/etc/shop/DATABASE_URL', 'utf8'),
}));
`);

const podTemplate = (app: string) => ({
  metadata: { labels: { app } },
  spec: {
    automountServiceAccountToken: false,
    terminationGracePeriodSeconds: 5,
    securityContext: { runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: 'RuntimeDefault' } },
    containers: [
      {
        name: 'app',
        image: IMAGE,
        imagePullPolicy: 'Never',
        command: [NODE, '-e', APP],
        envFrom: [{ secretRef: { name: 'shop-env' } }],
        env: [
          { name: 'DB_FROM_REF', valueFrom: { secretKeyRef: { name: 'shop-env', key: 'DATABASE_URL' } } },
        ],
        volumeMounts: [{ name: 'secrets', mountPath: '/etc/shop', readOnly: true }],
        securityContext: {
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        },
      },
    ],
    volumes: [{ name: 'secrets', secret: { secretName: 'shop-env' } }],
  },
});

const workloads = (annotations: Record<string, string>) => [
  {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'db', annotations },
    spec: { serviceName: 'db', selector: { matchLabels: { app: 'db' } }, template: podTemplate('db') },
  },
  {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: 'agent', annotations },
    spec: { selector: { matchLabels: { app: 'agent' } }, template: podTemplate('agent') },
  },
];

/** What the running pods of `app` were started with. */
async function started(
  namespace: string,
  app: string,
): Promise<{ envFrom: string; valueFrom: string; file: string }[]> {
  return Promise.all(
    (await runningPods(namespace, `app=${app}`)).map(async (p) => {
      const text = await kubectl(['logs', '-n', namespace, p.metadata!.name!]);
      return JSON.parse(text.split('\n').find((l) => l.startsWith('{'))!) as {
        envFrom: string;
        valueFrom: string;
        file: string;
      };
    }),
  );
}

const count = async (kind: string, namespace: string, app: string) =>
  (await getJson<{ items: unknown[] }>([kind, '-n', namespace, '-l', `app=${app}`])).items.length;

let phase: Phase;
let shop: Awaited<ReturnType<typeof testNamespace>>;

beforeAll(async () => {
  phase = await startPhase({
    apps: [
      {
        name: 'shop',
        environments: [
          {
            name: 'Production',
            secrets: [
              { key: 'DATABASE_URL', value: 'postgres://db/v1' },
              { key: 'OPERATOR_CANARY', value: CANARY },
            ],
          },
        ],
      },
    ],
  });
  await install('phasekit', 'phasekit-system', phase);
  shop = await testNamespace('shop');
  await apply(shop.name, [
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'phase-service-token' },
      stringData: { token: phase.emu.tokens.serviceAccount },
    },
  ]);
});
afterAll(async () => {
  await shop?.drop();
  for (const [release, namespace] of [
    ['phasekit', 'phasekit-system'],
    ['team-operator', 'team'],
  ]) {
    await helm(['uninstall', release!, '--namespace', namespace!]).catch(() => undefined);
    await kubectl(['delete', 'namespace', namespace!, '--timeout=120s']).catch(() => undefined);
  }
  await phase?.emu.close();
});

describe('the operator in a pod, installed by the Helm chart', () => {
  it('runs under the chart ServiceAccount, hardened', async () => {
    const pods = await getJson<V1PodList>(['pods', '-n', 'phasekit-system']);
    expect(pods.items).toHaveLength(1);
    const pod = pods.items[0]!;
    expect(pod.spec?.serviceAccountName).toBe('phasekit-operator');
    expect(pod.status?.containerStatuses?.[0]?.ready).toBe(true);
    expect(hardeningProblems(pod)).toEqual([]);
    expect(await idsInContainer('phasekit-system', pod.metadata!.name!, 'operator')).toBe('65532:65532');
  });

  it('a change reaches new pods of a Deployment, StatefulSet and DaemonSet through exactly one rollout each', async () => {
    // deploy/kubernetes/operator-phasesecret.yaml, with this Phase's host and a 5 s interval.
    const [phaseSecret, deployment] = manifest('operator-phasesecret.yaml') as [
      { spec: Record<string, unknown> },
      { spec: { replicas: number; template: unknown } },
    ];
    phaseSecret.spec['phaseHost'] = phase.url;
    phaseSecret.spec['pollingInterval'] = 5;
    deployment.spec.replicas = 1;
    deployment.spec.template = {
      ...podTemplate('web'),
      metadata: { labels: { 'app.kubernetes.io/name': 'shop', app: 'web' } },
    };
    await apply(shop.name, [phaseSecret]);
    await eventually(
      async () => (await kubectl(['get', 'secret', 'shop-env', '-n', shop.name, '-o', 'name'])) !== '',
      'the managed Secret',
    );
    const annotations = { 'secrets.phase.dev/redeploy': 'true' };
    await apply(shop.name, [deployment, ...workloads(annotations)]);
    for (const app of ['web', 'db', 'agent']) {
      await eventually(
        async () => {
          const seen = await started(shop.name, app);
          return seen.length === 1 && seen[0]!.envFrom === 'postgres://db/v1';
        },
        `${app} running with v1`,
        90_000,
      );
    }
    expect(await count('replicasets', shop.name, 'web')).toBe(1);
    expect(await count('controllerrevisions', shop.name, 'db')).toBe(1);
    expect(await count('controllerrevisions', shop.name, 'agent')).toBe(1);

    phase.emu.setSecret({ app: 'shop', env: 'Production', key: 'DATABASE_URL', value: 'postgres://db/v2' });
    for (const app of ['web', 'db', 'agent']) {
      const seen = await eventually(
        async () => {
          const all = await started(shop.name, app);
          return all.length === 1 && all[0]!.envFrom === 'postgres://db/v2' && all[0];
        },
        `${app} restarted with v2`,
        120_000,
      );
      expect(seen).toEqual({
        envFrom: 'postgres://db/v2',
        valueFrom: 'postgres://db/v2',
        file: 'postgres://db/v2',
      });
    }
    // Two more polls without a change: no further rollout.
    await sleep(11_000);
    expect(await count('replicasets', shop.name, 'web')).toBe(2);
    expect(await count('controllerrevisions', shop.name, 'db')).toBe(2);
    expect(await count('controllerrevisions', shop.name, 'agent')).toBe(2);
  });

  it('never logs a secret value or the token', async () => {
    const logs = await kubectl(['logs', '-n', 'phasekit-system', 'deployment/phasekit-operator']);
    expect(logs.length).toBeGreaterThan(0);
    expect(logs).not.toContain(CANARY);
    expect(logs).not.toContain('postgres://db/');
    expect(logs).not.toContain(phase.emu.tokens.serviceAccount);
  });

  it('in namespaced mode cannot read a Secret outside its namespace, from inside its pod', async () => {
    await install('team-operator', 'team', phase, ['scope=namespaced']);
    const sa = 'system:serviceaccount:team:team-operator-phasekit-operator';
    expect((await kubectl(['auth', 'can-i', 'get', 'secrets', '-n', 'team', '--as', sa])).trim()).toBe('yes');
    const other = await kubectl(['auth', 'can-i', 'get', 'secrets', '-n', shop.name, '--as', sa]).catch(
      (error: { stdout?: string }) => error.stdout ?? '',
    );
    expect(other.trim()).toBe('no');
    // From the operator's own container, with its own ServiceAccount token: 403 outside, 200 inside.
    const probe = (namespace: string) => `
const fs = require('fs'); const https = require('https');
const dir = '/var/run/secrets/kubernetes.io/serviceaccount/';
https.get({ host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT,
  path: '/api/v1/namespaces/${namespace}/secrets/phase-service-token', ca: fs.readFileSync(dir + 'ca.crt'),
  headers: { authorization: 'Bearer ' + fs.readFileSync(dir + 'token', 'utf8') } },
  (res) => { console.log(res.statusCode); res.resume(); });`;
    const pod = (await getJson<V1PodList>(['pods', '-n', 'team'])).items[0]!.metadata!.name!;
    expect((await podExec('team', pod, 'operator', [NODE, '-e', probe(shop.name)])).trim()).toBe('403');
  });
});
