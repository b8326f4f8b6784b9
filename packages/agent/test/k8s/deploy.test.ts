// deploy/ against a real kube-apiserver: helm (v4, built from the Go module proxy) lints and templates the operator
// chart; every rendered object and every example manifest is accepted by the API server (dry-run=server); and the
// chart's ServiceAccount can do what the operator needs and nothing more, cluster-wide and namespaced (issue 11,
// deploy/ and acceptance 6).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, killAll, spawnCli } from '../helpers/cli.js';
import { APP, CANARY, ENV, startSeeded } from '../helpers/fixture.js';
import { CHART, CRD_FILE, eventually, helmIn, kubeconfigWithToken, useCluster } from './cluster.js';
import { ensureBinaries } from './control-plane.mjs';

const EXAMPLES = join(REPO_ROOT, 'deploy', 'kubernetes');
const cluster = useCluster();
let runHelm: (args: string[]) => Promise<string>;

const docs = (text: string) =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as KubernetesObject | null)
    .filter((o): o is KubernetesObject => o !== null && typeof o === 'object' && 'kind' in o);

async function render(namespace: string, set: string[] = []): Promise<KubernetesObject[]> {
  return docs(
    await runHelm([
      'template',
      'phasekit',
      CHART,
      '--namespace',
      namespace,
      ...set.flatMap((s) => ['--set', s]),
    ]),
  );
}

/** Creates `objects` for real (dryRun undefined) or as a server-side dry run; the CRD through the raw path. */
async function create(
  objects: KubernetesObject[],
  dryRun: 'All' | undefined,
  namespace?: string,
): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(cluster.kube.config);
  for (const object of objects) {
    const body = {
      ...object,
      metadata: {
        ...object.metadata,
        ...(namespace && object.kind !== 'ClusterRole' && object.kind !== 'ClusterRoleBinding'
          ? { namespace: object.metadata?.namespace ?? namespace }
          : {}),
      },
    };
    if (object.kind === 'CustomResourceDefinition') {
      await cluster.kube.custom.createClusterCustomObject({
        group: 'apiextensions.k8s.io',
        version: 'v1',
        plural: 'customresourcedefinitions',
        body,
        ...(dryRun ? { dryRun } : {}),
      });
    } else {
      await api.create(body, undefined, dryRun);
    }
  }
}

/** What `kubectl auth can-i --as=system:serviceaccount:NS:NAME` answers. */
async function can(
  sa: { namespace: string; name: string },
  verb: string,
  resource: string,
  namespace?: string,
  group = '',
): Promise<boolean> {
  const review = await cluster.kube.authorization.createSubjectAccessReview({
    body: {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: `system:serviceaccount:${sa.namespace}:${sa.name}`,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${sa.namespace}`, 'system:authenticated'],
        resourceAttributes: { verb, resource, group, ...(namespace ? { namespace } : {}) },
      },
    },
  });
  return review.status?.allowed === true;
}

beforeAll(async () => {
  runHelm = helmIn(join(cluster.plane.dir, 'helm'), (await ensureBinaries())['helm']);
  for (const ns of ['phasekit-system', 'team-a', 'team-b', 'apps']) await cluster.namespace(ns);
});

describe('the Helm chart', () => {
  it('lints in both scopes, and its crds/ is deploy/crds', async () => {
    await runHelm(['lint', CHART, '--strict']);
    await runHelm(['lint', CHART, '--strict', '--set', 'scope=namespaced']);
    expect(readFileSync(join(CHART, 'crds', 'phasesecrets.secrets.phase.dev.yaml'), 'utf8')).toBe(
      readFileSync(CRD_FILE, 'utf8'),
    );
  });

  it('renders a hardened Deployment, with leader election exactly when replicas > 1', async () => {
    const one = (await render('phasekit-system')).find((o) => o.kind === 'Deployment') as unknown as {
      spec: {
        template: {
          spec: {
            securityContext: Record<string, unknown>;
            containers: {
              args: string[];
              env: unknown[];
              securityContext: Record<string, unknown>;
              livenessProbe: unknown;
              readinessProbe: unknown;
            }[];
          };
        };
      };
    };
    const container = one.spec.template.spec.containers[0]!;
    expect(container.args).not.toContain('--leader-elect');
    expect(container.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(one.spec.template.spec.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container.env).toContainEqual({ name: 'NODE_OPTIONS', value: '--max-old-space-size=96' });
    expect(container.livenessProbe).toBeDefined();
    expect(container.readinessProbe).toBeDefined();
    const two = (await render('phasekit-system', ['replicaCount=2'])).find(
      (o) => o.kind === 'Deployment',
    ) as unknown as typeof one;
    expect(two.spec.template.spec.containers[0]!.args).toContain('--leader-elect');
    const off = (await render('phasekit-system', ['replicaCount=2', 'leaderElection.enabled=false'])).find(
      (o) => o.kind === 'Deployment',
    ) as unknown as typeof one;
    expect(off.spec.template.spec.containers[0]!.args).not.toContain('--leader-elect');
  });

  it('every rendered object is accepted by the API server (dry-run=server), in both scopes', async () => {
    await create(await render('phasekit-system'), 'All');
    await create(await render('team-a', ['scope=namespaced', 'replicaCount=2']), 'All');
  });
});

describe('RBAC: what the operator needs and nothing more', () => {
  it('cluster scope', async () => {
    await create(
      (await render('phasekit-system')).filter((o) => o.kind !== 'Deployment'),
      undefined,
    );
    const sa = { namespace: 'phasekit-system', name: 'phasekit-operator' };
    for (const verb of ['get', 'list', 'watch', 'patch'])
      expect(await can(sa, verb, 'phasesecrets', undefined, 'secrets.phase.dev'), verb).toBe(true);
    expect(await can(sa, 'patch', 'phasesecrets/status', 'apps', 'secrets.phase.dev')).toBe(true);
    for (const verb of ['get', 'list', 'watch', 'create', 'update'])
      expect(await can(sa, verb, 'secrets', 'apps'), verb).toBe(true);
    expect(await can(sa, 'create', 'events', 'apps')).toBe(true);
    for (const kind of ['deployments', 'statefulsets', 'daemonsets'])
      expect(await can(sa, 'patch', kind, 'apps', 'apps'), kind).toBe(true);
    expect(await can(sa, 'update', 'leases', 'phasekit-system', 'coordination.k8s.io')).toBe(true);
    // Nothing more.
    expect(await can(sa, 'delete', 'secrets', 'apps')).toBe(false);
    expect(await can(sa, 'create', 'phasesecrets', 'apps', 'secrets.phase.dev')).toBe(false);
    expect(await can(sa, 'delete', 'phasesecrets', 'apps', 'secrets.phase.dev')).toBe(false);
    expect(await can(sa, 'get', 'configmaps', 'apps')).toBe(false);
    expect(await can(sa, 'list', 'pods', 'apps')).toBe(false);
    expect(await can(sa, 'delete', 'deployments', 'apps', 'apps')).toBe(false);
    expect(await can(sa, 'update', 'leases', 'apps', 'coordination.k8s.io')).toBe(false);
    expect(await can(sa, 'create', 'clusterroles', undefined, 'rbac.authorization.k8s.io')).toBe(false);
  });

  it('namespaced scope cannot read or write outside its namespace', async () => {
    await create(
      (await render('team-a', ['scope=namespaced'])).filter((o) => o.kind !== 'Deployment'),
      undefined,
    );
    const sa = { namespace: 'team-a', name: 'phasekit-operator' };
    expect(await can(sa, 'get', 'secrets', 'team-a')).toBe(true);
    expect(await can(sa, 'watch', 'phasesecrets', 'team-a', 'secrets.phase.dev')).toBe(true);
    expect(await can(sa, 'get', 'secrets', 'team-b')).toBe(false);
    expect(await can(sa, 'list', 'secrets')).toBe(false);
    expect(await can(sa, 'list', 'phasesecrets', undefined, 'secrets.phase.dev')).toBe(false);
    expect(await can(sa, 'patch', 'deployments', 'team-b', 'apps')).toBe(false);
  });
});

describe("the operator under the chart's ServiceAccount", () => {
  /** A kubeconfig holding a token of the ServiceAccount, as a pod would get it. */
  async function kubeconfigOf(namespace: string): Promise<string> {
    const token = await cluster.kube.core.createNamespacedServiceAccountToken({
      name: 'phasekit-operator',
      namespace,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    return kubeconfigWithToken(cluster.plane, token.status?.token, `operator-${namespace}.kubeconfig`);
  }

  async function syncsUnder(operatorArgs: string[], namespace: string): Promise<void> {
    const emu = await startSeeded();
    try {
      await cluster.kube.core.createNamespacedSecret({
        namespace,
        body: { metadata: { name: 'phase-service-token' }, stringData: { token: emu.tokens.serviceAccount } },
      });
      const operator = spawnCli(['operator', ...operatorArgs], { token: null });
      const name = `under-rbac-${namespace}`;
      await cluster.kube.custom.createNamespacedCustomObject({
        group: 'secrets.phase.dev',
        version: 'v1alpha1',
        plural: 'phasesecrets',
        namespace,
        body: {
          apiVersion: 'secrets.phase.dev/v1alpha1',
          kind: 'PhaseSecret',
          metadata: { name },
          spec: {
            phaseApp: APP,
            phaseAppEnv: ENV,
            phaseHost: emu.url,
            managedSecretReferences: [{ secretName: `${name}-env` }],
          },
        },
      });
      const ready = await eventually(async () => {
        const ps = (await cluster.kube.custom.getNamespacedCustomObject({
          group: 'secrets.phase.dev',
          version: 'v1alpha1',
          plural: 'phasesecrets',
          namespace,
          name,
        })) as { status?: { conditions?: { type: string; status: string; message: string }[] } };
        return ps.status?.conditions?.find((c) => c.type === 'Ready');
      }, 'a Ready condition');
      expect(ready.status, ready.message).toBe('True');
      const secret = await cluster.kube.core.readNamespacedSecret({ name: `${name}-env`, namespace });
      expect(Buffer.from(secret.data?.['CANARY_SECRET'] ?? '', 'base64').toString()).toBe(CANARY);
      expect(operator.logs.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
      expect((await operator.stop()).code).toBe(0);
    } finally {
      await killAll();
      await emu.close();
    }
  }

  it('syncs a PhaseSecret with exactly the RBAC the chart grants (cluster scope)', async () => {
    // RBAC from the 'cluster scope' test above.
    const kubeconfig = await kubeconfigOf('phasekit-system');
    await syncsUnder(['--kubeconfig', kubeconfig, '--operator-namespace', 'phasekit-system'], 'apps');
  });

  it('syncs a PhaseSecret with exactly the RBAC the chart grants (namespaced scope)', async () => {
    // RBAC from the 'namespaced scope' test above: a Role in team-a only.
    const kubeconfig = await kubeconfigOf('team-a');
    await syncsUnder(
      ['--kubeconfig', kubeconfig, '--namespace', 'team-a', '--operator-namespace', 'team-a'],
      'team-a',
    );
  });
});

describe('example manifests', () => {
  it.each(readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml')))(
    '%s is accepted by the API server (dry-run=server)',
    async (file) => {
      const objects = docs(readFileSync(join(EXAMPLES, file), 'utf8'));
      expect(objects.length).toBeGreaterThan(0);
      await create(objects, 'All', 'apps');
    },
  );
});
