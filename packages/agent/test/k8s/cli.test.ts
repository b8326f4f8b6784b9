// The built CLI against a real kube-apiserver: `phasekit k8s sync` (once and --watch; create, in-place update, no
// write when unchanged, refusal of an unmanaged Secret, --adopt, exit codes) and `phasekit operator` as processes
// (two replicas with leader election: only the Lease holder writes, and a killed holder is replaced in time).
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, recordText, spawnCli, runCli } from '../helpers/cli.js';
import { startProxy } from '../helpers/proxy.js';
import {
  CANARY,
  itLeaksNothing,
  startSeeded,
  tokenNeedles,
  setMarker,
  APP,
  ENV,
} from '../helpers/fixture.js';
import type { Emulator } from '@phasekit/emulator';
import {
  decoded,
  eventually,
  kubeconfigWithToken,
  readSecret as readClusterSecret,
  useCluster,
} from './cluster.js';

const cluster = useCluster();
let emu: Emulator;
const needles: string[] = [CANARY];
const NS = 'team';

const readSecret = (name: string, namespace = NS) => readClusterSecret(cluster.kube, name, namespace);

const sync = (extra: string[]) => [
  'k8s',
  'sync',
  '--kubeconfig',
  cluster.plane.kubeconfig,
  '--host',
  emu.url,
  '--app',
  APP,
  '--env',
  ENV,
  '--namespace',
  NS,
  ...extra,
];
const opts = () => ({ token: emu.tokens.serviceAccount });

beforeAll(async () => {
  emu = await startSeeded();
  needles.push(...tokenNeedles(emu));
  await cluster.namespace(NS);
});
afterAll(async () => {
  await killAll();
  await emu?.close();
});

describe('phasekit k8s sync', () => {
  it('creates the managed Secret, then writes nothing while nothing changed, then updates it in place', async () => {
    const first = await runCli(
      sync(['--secret', 'app-env', '--label', 'team=payments', '--name-transformer', 'lower-kebab']),
      opts(),
    );
    expect(first.code, first.stderr).toBe(0);
    const created = await readSecret('app-env');
    expect(decoded(created)).toMatchObject({ 'canary-secret': CANARY, k00: 'value-0:M0' });
    expect(created?.metadata?.labels).toMatchObject({
      'app.kubernetes.io/managed-by': 'phasekit',
      team: 'payments',
    });
    expect(created?.metadata?.annotations?.['secrets.phasekit.dev/data-hmac']).toMatch(/^[0-9a-f]{64}$/);

    const again = await runCli(
      sync(['--secret', 'app-env', '--label', 'team=payments', '--name-transformer', 'lower-kebab']),
      opts(),
    );
    expect(again.code, again.stderr).toBe(0);
    expect((await readSecret('app-env'))?.metadata?.resourceVersion).toBe(created?.metadata?.resourceVersion);

    setMarker(emu, 'M1');
    const changed = await runCli(
      sync(['--secret', 'app-env', '--label', 'team=payments', '--name-transformer', 'lower-kebab']),
      opts(),
    );
    expect(changed.code, changed.stderr).toBe(0);
    const updated = await readSecret('app-env');
    expect(updated?.metadata?.uid).toBe(created?.metadata?.uid);
    expect(decoded(updated)['k00']).toBe('value-0:M1');
    expect(changed.logs.some((l) => l.msg === 'Secret updated')).toBe(true);
  });

  it('refuses an existing Secret it does not manage (exit 7, naming it) and takes it over with --adopt', async () => {
    await cluster.kube.core.createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: 'theirs' }, stringData: { THEIRS: 'keep' } },
    });
    const refused = await runCli(sync(['--secret', 'theirs']), opts());
    expect(refused.code).toBe(7);
    expect(refused.stderr).toMatch(/Secret team\/theirs exists and is not managed by phasekit.*--adopt/);
    expect(decoded(await readSecret('theirs'))).toEqual({ THEIRS: 'keep' });

    const adopted = await runCli(sync(['--secret', 'theirs', '--adopt']), opts());
    expect(adopted.code, adopted.stderr).toBe(0);
    const secret = await readSecret('theirs');
    expect(secret?.metadata?.labels?.['app.kubernetes.io/managed-by']).toBe('phasekit');
    expect(decoded(secret)['CANARY_SECRET']).toBe(CANARY);
    expect(decoded(secret)['THEIRS']).toBeUndefined();
  });

  it('exits 8 naming a namespace that does not exist, and 3 when Kubernetes refuses the credentials', async () => {
    const missing = await runCli(
      [...sync(['--secret', 'x']).slice(0, -2), '--namespace', 'no-such-namespace', '--secret', 'x'],
      opts(),
    );
    expect(missing.code).toBe(8);
    expect(missing.stderr).toMatch(/no-such-namespace/);

    // The same cluster, with a bearer token the API server does not know.
    const stranger = kubeconfigWithToken(cluster.plane, 'not-a-known-token', 'stranger.kubeconfig');
    const args = sync(['--secret', 'x']);
    args[args.indexOf('--kubeconfig') + 1] = stranger;
    const refused = await runCli(args, opts());
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/Unauthorized|forbidden/i);
  });

  it('--watch keeps the Secret current and repairs a deleted one, and stops on SIGTERM', async () => {
    const reads = () => emu.requests().filter((r) => r.route === 'secrets').length;
    const readsBefore = reads();
    const proc = spawnCli(sync(['--secret', 'watched', '--watch', '--interval', '500ms']), opts());
    await eventually(async () => readSecret('watched'), 'the first write');
    // One read of the secrets at start (the watch's first), and none while nothing changes: polls only probe.
    await sleep(1_500);
    expect(reads() - readsBefore).toBe(1);
    setMarker(emu, 'M2');
    await eventually(
      async () => decoded(await readSecret('watched'))['K00'] === 'value-0:M2',
      'the change',
      10_000,
    );
    const uid = (await readSecret('watched'))?.metadata?.uid;
    await cluster.kube.core.deleteNamespacedSecret({ name: 'watched', namespace: NS });
    const recreated = await eventually(
      async () => {
        const s = await readSecret('watched');
        return s !== undefined && s.metadata?.uid !== uid && s;
      },
      'the repaired Secret',
      10_000,
    );
    expect(decoded(recreated)['K00']).toBe('value-0:M2');
    const { code } = await proc.stop();
    expect(code).toBe(0);
  });
});

describe('phasekit operator, two replicas', () => {
  it('only the Lease holder writes, and killing it hands over within the lease duration', async () => {
    await cluster.kube.core.createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: 'phase-service-token' }, stringData: { token: emu.tokens.serviceAccount } },
    });
    const args = [
      'operator',
      '--health-addr',
      '127.0.0.1:0',
      '--kubeconfig',
      cluster.plane.kubeconfig,
      '--leader-elect',
      '--lease-duration',
      '3s',
      '--operator-namespace',
      NS,
    ];
    const a = spawnCli(args, { token: null });
    await a.waitForMsg('became the leader', { timeoutMs: 15_000 });
    const b = spawnCli(args, { token: null });
    await sleep(1_500);
    expect(b.logs.some((l) => l.msg === 'became the leader')).toBe(false);

    await cluster.kube.custom.createNamespacedCustomObject({
      group: 'secrets.phase.dev',
      version: 'v1alpha1',
      plural: 'phasesecrets',
      namespace: NS,
      body: {
        apiVersion: 'secrets.phase.dev/v1alpha1',
        kind: 'PhaseSecret',
        metadata: { name: 'ha' },
        spec: {
          phaseApp: APP,
          phaseAppEnv: ENV,
          phaseHost: emu.url,
          pollingInterval: 5,
          managedSecretReferences: [{ secretName: 'ha-env' }],
        },
      },
    });
    await eventually(async () => readSecret('ha-env'), 'the Secret written by the leader');
    // The leader logs the write after recording its Event.
    await a.waitForLog(
      (l) => /created Secret team\/ha-env/.test(String(l.msg)),
      'the leader logging its write',
    );
    expect(b.logs.some((l) => /Secret team\/ha-env/.test(String(l.msg)))).toBe(false);

    const killedAt = Date.now();
    await a.kill9();
    await b.waitForMsg('became the leader', { timeoutMs: 10_000 });
    // The lease (3 s), one renew period of the candidate (1 s), and slack for a loaded machine.
    expect(Date.now() - killedAt).toBeLessThan(3_000 + 1_000 + 3_000);
    // The new leader serves changes.
    setMarker(emu, 'M3');
    await eventually(
      async () => decoded(await readSecret('ha-env'))['K00'] === 'value-0:M3',
      'the change, by the new leader',
      15_000,
    );
    // Health and metrics, as the sidecar serves them.
    const url = String((await b.waitForMsg('health server listening')).url);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    // The sync is counted once it finished (after the Secret write, the Event and the status): wait for it.
    const metrics = await eventually(async () => {
      const text = await (await fetch(`${url}/metrics`)).text();
      return /phasekit_sync_total\{result="success"\} [1-9]/.test(text) && text;
    }, 'a counted sync');
    recordText('operator /metrics', metrics);
    expect(metrics).toMatch(/phasekit_sync_total\{result="success"\} [1-9]/);
    expect(metrics).toMatch(/phasekit_http_requests_total\{route="tokens",status="200"\}/);
    const { code } = await b.stop();
    expect(code).toBe(0);
  }, 60_000);
});

describe('through a proxy named by HTTP(S)_PROXY', () => {
  // Corporate clusters reach Phase through a proxy. The Kubernetes API is reached as the kubeconfig says
  // (@kubernetes/client-node reads its proxy-url, not the environment), so in-cluster traffic stays direct.
  it('k8s sync and the operator reach Phase through the proxy, and the Kubernetes API directly', async () => {
    const proxy = await startProxy();
    try {
      const env = { HTTPS_PROXY: proxy.url, HTTP_PROXY: proxy.url };
      const synced = await runCli(sync(['--secret', 'proxied-sync']), { ...opts(), env });
      expect(synced.code, synced.stderr).toBe(0);
      expect(decoded(await readSecret('proxied-sync'))['CANARY_SECRET']).toBe(CANARY);
      const phaseHost = new URL(emu.url).host;
      expect(proxy.targets.length).toBeGreaterThan(0);
      expect(new Set(proxy.targets)).toEqual(new Set([phaseHost]));

      proxy.targets.length = 0;
      const operator = spawnCli(
        ['operator', '--health-addr', '127.0.0.1:0', '--kubeconfig', cluster.plane.kubeconfig],
        { token: null, env },
      );
      await cluster.kube.custom.createNamespacedCustomObject({
        group: 'secrets.phase.dev',
        version: 'v1alpha1',
        plural: 'phasesecrets',
        namespace: NS,
        body: {
          apiVersion: 'secrets.phase.dev/v1alpha1',
          kind: 'PhaseSecret',
          metadata: { name: 'proxied' },
          spec: {
            phaseApp: APP,
            phaseAppEnv: ENV,
            phaseHost: emu.url,
            managedSecretReferences: [{ secretName: 'proxied-env' }],
          },
        },
      });
      const secret = await eventually(
        async () => readSecret('proxied-env'),
        'the Secret written by the operator',
      );
      expect(decoded(secret)['CANARY_SECRET']).toBe(CANARY);
      expect(proxy.targets.length).toBeGreaterThan(0);
      expect(new Set(proxy.targets)).toEqual(new Set([phaseHost]));
      const { code } = await operator.stop();
      expect(code).toBe(0);
    } finally {
      await proxy.close();
    }
  }, 60_000);
});

itLeaksNothing(() => needles);
