// Item 8, inside the test node's network namespace (bench/pods.mjs starts it there): pod start latency with and
// without the phasekit init container (and with one that does nothing) and with a native sidecar, the sidecar's memory as the kubelet reports it
// (its summary API: the container's cgroup), idle and after 1,000 changes. Writes one JSON object to argv[2].
//
// Timing: each pod's app container logs Date.now() as its first act; latency = that minus the moment just before the
// create call (same machine clock). Pods run one at a time on the otherwise idle node, the variants alternating.
import { writeFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import { generateCertificate, startEmulator } from '@phasekit/emulator';
import { waitUntil } from '../packages/agent/test/k8s/control-plane.mjs';
import { sleep } from './lib/proc.mjs';
import { summarize } from './lib/stats.mjs';

const out = process.argv[2];
const ROUNDS = Number(process.env.PHASEKIT_BENCH_POD_ROUNDS ?? 10);
const CHANGES = Number(process.env.PHASEKIT_BENCH_POD_CHANGES ?? 1000);
const NODE_IP = process.env.PHASEKIT_NODE_IP;
const NODE_NAME = process.env.PHASEKIT_NODE_NAME;
const IMAGE = 'localhost/phasekit:dev';
const NODE = '/nodejs/bin/node';
const NS = 'bench-pods';
const SIDECAR_INTERVAL_MS = 100;

const kc = new k8s.KubeConfig();
kc.loadFromDefault();
// One connection for every call (client-node 2.0.1 makes an Agent per call; see packages/agent/src/k8s/kube.ts).
const createDispatcher = kc.createDispatcher;
let dispatcher;
kc.createDispatcher = (...args) => (dispatcher ??= createDispatcher.apply(kc, args));
const core = kc.makeApiClient(k8s.CoreV1Api);

const tls = await generateCertificate({ hosts: [NODE_IP] });
const emu = await startEmulator({
  host: NODE_IP,
  tls,
  seed: {
    apps: [
      {
        name: 'shop',
        environments: [
          {
            name: 'Production',
            secrets: Array.from({ length: 20 }, (_, i) => ({ key: `KEY_${i}`, value: `value-${i}` })),
          },
        ],
      },
    ],
  },
});

const hardened = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
};
const agentEnv = [
  { name: 'PHASE_HOST', value: emu.url },
  { name: 'NODE_EXTRA_CA_CERTS', value: '/etc/phase-ca/ca.pem' },
  { name: 'PHASE_SERVICE_TOKEN', valueFrom: { secretKeyRef: { name: 'phase-token', key: 'token' } } },
];
const agentMounts = [
  { name: 'secrets', mountPath: '/phase/secrets' },
  { name: 'phase-ca', mountPath: '/etc/phase-ca', readOnly: true },
];
const APP = `console.log(Date.now()); process.on('SIGTERM', () => process.exit(0)); setInterval(() => {}, 1 << 30);`;

/**
 * A pod: the app alone, after an init container that does nothing, after a phasekit init container, or after a
 * native sidecar with its startup probe.
 */
function pod(name, variant) {
  const app = {
    name: 'app',
    image: IMAGE,
    imagePullPolicy: 'Never',
    command: [NODE, '-e', APP],
    volumeMounts: [{ name: 'secrets', mountPath: '/phase/secrets', readOnly: true }],
    securityContext: hardened,
  };
  const initContainers = [];
  if (variant === 'noop') {
    // Any init container's cost: a container of the same image that starts node and exits.
    initContainers.push({
      name: 'noop',
      image: IMAGE,
      imagePullPolicy: 'Never',
      command: [NODE, '-e', '0'],
      securityContext: hardened,
    });
  } else if (variant === 'init') {
    initContainers.push({
      name: 'phasekit',
      image: IMAGE,
      imagePullPolicy: 'Never',
      args: ['once', '--app=shop', '--env=Production', '--out=/phase/secrets'],
      env: agentEnv,
      volumeMounts: agentMounts,
      securityContext: hardened,
    });
  } else if (variant === 'native') {
    initContainers.push({
      name: 'phasekit',
      image: IMAGE,
      imagePullPolicy: 'Never',
      restartPolicy: 'Always',
      args: ['sidecar', '--app=shop', '--env=Production', '--out=/phase/secrets', '--health-addr=:8081'],
      env: agentEnv,
      volumeMounts: agentMounts,
      startupProbe: { httpGet: { path: '/readyz', port: 8081 }, periodSeconds: 1, failureThreshold: 120 },
      securityContext: hardened,
    });
  }
  return {
    metadata: { name },
    spec: {
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 5,
      securityContext: {
        runAsNonRoot: true,
        runAsUser: 10001,
        runAsGroup: 10001,
        seccompProfile: { type: 'RuntimeDefault' },
      },
      volumes: [
        { name: 'secrets', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
        { name: 'phase-ca', configMap: { name: 'phase-ca' } },
      ],
      initContainers,
      containers: [app],
    },
  };
}

/** The harness's poll-until-truthy, with this file's default of two minutes. */
const eventually = (check, what, timeoutMs = 120_000) => waitUntil(check, what, timeoutMs);

/** Creates the pod, waits for its app's first log line, deletes it; resolves created → app running, in ms. */
async function startLatency(name, variant) {
  const body = pod(name, variant);
  // The kubelet sees an init container's exit at its next relist (every second); a random pause puts each create
  // at a random point of that second, instead of one set by when the previous pod's deletion was seen.
  await sleep(Math.random() * 1_000);
  const t0 = Date.now();
  await core.createNamespacedPod({ namespace: NS, body });
  const first = await eventually(async () => {
    const text = await core.readNamespacedPodLog({ name, namespace: NS, container: 'app' });
    return /^\d+$/m.exec(text)?.[0];
  }, `${name} to run`);
  await core.deleteNamespacedPod({ name, namespace: NS });
  await eventually(async () => {
    try {
      await core.readNamespacedPod({ name, namespace: NS });
      return false;
    } catch {
      return true;
    }
  }, `${name} to be deleted`);
  return Number(first) - t0;
}

/** The kubelet's view of a container's memory (summary API: the container's cgroup). */
async function kubeletMemory(podName, container) {
  const summary = await core.connectGetNodeProxyWithPath({ name: NODE_NAME, path: 'stats/summary' });
  const stats = (typeof summary === 'string' ? JSON.parse(summary) : summary).pods
    .find((p) => p.podRef.name === podName && p.podRef.namespace === NS)
    ?.containers.find((c) => c.name === container);
  return (
    stats?.memory && {
      workingSetMiB: stats.memory.workingSetBytes / 2 ** 20,
      rssMiB: stats.memory.rssBytes / 2 ** 20,
      time: stats.memory.time,
    }
  );
}

const result = { rounds: ROUNDS, changes: CHANGES, intervalMs: SIDECAR_INTERVAL_MS };
try {
  await core.createNamespace({ body: { metadata: { name: NS } } });
  await eventually(
    () => core.readNamespacedServiceAccount({ name: 'default', namespace: NS }),
    'a ServiceAccount',
  );
  await core.createNamespacedSecret({
    namespace: NS,
    body: { metadata: { name: 'phase-token' }, stringData: { token: emu.tokens.serviceAccount } },
  });
  await core.createNamespacedConfigMap({
    namespace: NS,
    body: { metadata: { name: 'phase-ca' }, data: { 'ca.pem': tls.cert } },
  });

  // Warm-up: one of each, not counted (first container start of the image, first CNI set-up).
  const variants = ['plain', 'noop', 'init', 'native'];
  for (const variant of variants) await startLatency(`warm-${variant}`, variant);
  const samples = Object.fromEntries(variants.map((v) => [v, []]));
  for (let i = 0; i < ROUNDS; i++) {
    for (const variant of i % 2 === 0 ? variants : variants.toReversed()) {
      samples[variant].push(await startLatency(`${variant}-${i}`, variant));
    }
  }
  result.start = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)]));

  // The sidecar's memory: one pod, a native sidecar polling every 100 ms; idle for a minute, then 1,000 changes.
  const name = 'sidecar-memory';
  const body = pod(name, 'native');
  const sidecar = body.spec.initContainers[0];
  sidecar.args = [...sidecar.args, `--interval=${SIDECAR_INTERVAL_MS}ms`, '--format=files,dotenv,json'];
  await core.createNamespacedPod({ namespace: NS, body });
  await eventually(async () => {
    const p = await core.readNamespacedPod({ name, namespace: NS });
    return p.status?.containerStatuses?.[0]?.state?.running;
  }, 'the sidecar pod');
  // The kubelet's stats refresh every 10-15 s: read after the pod has settled, then again after a fresh sample.
  await sleep(60_000);
  const idle = await eventually(() => kubeletMemory(name, 'phasekit'), 'kubelet stats of the sidecar');
  const changeStart = Date.now();
  for (let n = 1; n <= CHANGES; n++) {
    emu.setSecret({ app: 'shop', env: 'Production', key: 'KEY_0', value: `changed-${n}` });
    await sleep(SIDECAR_INTERVAL_MS * 1.5);
  }
  result.changesS = (Date.now() - changeStart) / 1000;
  const afterAt = Date.now();
  const after = await eventually(
    async () => {
      const m = await kubeletMemory(name, 'phasekit');
      return m && Date.parse(m.time) > afterAt + 1000 && m;
    },
    'fresh kubelet stats after the changes',
    60_000,
  );
  result.sidecarMemory = { idle, after };
  const requests = emu.requests();
  result.secretsFetches = requests.filter((r) => r.route === 'secrets').length;
  await core.deleteNamespacedPod({ name, namespace: NS });
} finally {
  await core.deleteNamespace({ name: NS }).catch(() => undefined);
  await emu.close();
}
writeFileSync(out, JSON.stringify(result));
