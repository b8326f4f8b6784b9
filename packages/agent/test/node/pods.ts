// Helpers for the pod tests (issue 16): they run inside the test node's network namespace (`pnpm test:e2e`), speak
// to the real apiserver with kubectl (what a user types), run the emulator on the node's bridge address over HTTPS
// (pods reach it as they reach Phase), and adapt deploy/kubernetes' manifests to this node: the image and the host.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  generateCertificate,
  startEmulator,
  type Emulator,
  type EmulatorState,
  type Seed,
  type TlsCredentials,
} from '@phasekit/emulator';
import type { V1Pod, V1PodList, V1PodSpec } from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import { REPO_ROOT } from '../helpers/cli.js';
import { eventually as clusterEventually } from '../k8s/cluster.js';

const NODE_IP = process.env['PHASEKIT_NODE_IP'];
if (NODE_IP === undefined || process.env['KUBECONFIG'] === undefined) {
  throw new Error(
    'the pod tests run on the test node: use `pnpm test:e2e` (or `pnpm k8s:exec -- vitest ...`)',
  );
}
/** The node's address on the pod bridge: where pods reach processes of the test (the emulator). */
export const nodeIp: string = NODE_IP;
/** The phasekit image, imported into the node's containerd by `pnpm k8s:up --node`. */
export const IMAGE = 'localhost/phasekit:dev';
/** The node binary inside the image (app containers run small node programs on the same image). */
export const NODE = '/nodejs/bin/node';

/** Runs kubectl; resolves stdout. `input` goes to its stdin (for `apply -f -`). */
export async function kubectl(args: string[], input?: string): Promise<string> {
  const child = promisify(execFile)('kubectl', args, { maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  return (await child).stdout;
}

/** `kubectl get -o json`, parsed. */
export async function getJson<T>(args: string[]): Promise<T> {
  return JSON.parse(await kubectl(['get', ...args, '-o', 'json'])) as T;
}

/** Applies objects (or YAML text) in `namespace`. */
export async function apply(namespace: string, objects: unknown[] | string): Promise<void> {
  const text = typeof objects === 'string' ? objects : objects.map((o) => stringify(o)).join('---\n');
  await kubectl(['apply', '--namespace', namespace, '-f', '-'], text);
}

/** The Kubernetes suite's poll-until-truthy (cluster.ts), with a default of a minute: pods take longer. */
export const eventually = <T>(
  check: () => Promise<T | undefined | false>,
  what: string,
  timeoutMs = 60_000,
) => clusterEventually(check, what, timeoutMs);

/** A fresh namespace for one test file; `drop()` deletes it and waits until it is gone. */
export async function testNamespace(name: string): Promise<{ name: string; drop(): Promise<void> }> {
  await kubectl(['create', 'namespace', name]);
  // The default ServiceAccount comes from the controller manager, a moment after the namespace.
  await eventually(
    async () => (await kubectl(['get', 'serviceaccount', 'default', '-n', name])) !== '',
    'a ServiceAccount',
  );
  // Waits until the namespace is gone, so the next test file starts on a quiet node.
  return { name, drop: async () => void (await kubectl(['delete', 'namespace', name, '--timeout=120s'])) };
}

/** A Phase for pods: the emulator on the node's bridge address over HTTPS, its CA in a ConfigMap. */
export interface Phase {
  emu: Emulator;
  /** PHASE_HOST for pods. */
  url: string;
  /** The CA pods must trust (NODE_EXTRA_CA_CERTS). */
  ca: string;
  /** Stops it: every connection refused, as when Phase is down. Keeps its state for `start()`. */
  stop(): Promise<void>;
  /** Starts it again on the same address with the same state. */
  start(): Promise<void>;
}

let credentials: TlsCredentials | undefined;

/** Starts the emulator with `seed` on the node's address. */
export async function startPhase(seed: Seed): Promise<Phase> {
  credentials ??= await generateCertificate({ hosts: [nodeIp] });
  const tls = credentials;
  const phase: Phase = {
    emu: await startEmulator({ host: nodeIp, tls, seed }),
    url: '',
    ca: tls.cert,
    async stop() {
      state = phase.emu.snapshot();
      await phase.emu.close();
    },
    async start() {
      phase.emu = await startEmulator({ host: nodeIp, port, tls, state });
    },
  };
  phase.url = phase.emu.url;
  const port = phase.emu.port;
  let state: EmulatorState = phase.emu.snapshot();
  return phase;
}

/** The Secret holding the token and the ConfigMap holding Phase's CA, as docs/kubernetes.md has users create. */
export function phaseObjects(phase: Phase, token: string): unknown[] {
  return [
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'phase-token' }, stringData: { token } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'phase-ca' }, data: { 'ca.pem': phase.ca } },
  ];
}

/** The manifests of deploy/kubernetes/NAME, parsed. */
export function manifest(name: string): Record<string, unknown>[] {
  const text = readFileSync(join(REPO_ROOT, 'deploy', 'kubernetes', name), 'utf8');
  return parseAllDocuments(text).map((doc) => doc.toJS() as Record<string, unknown>);
}

/**
 * Adapts a docs manifest to this node, changing only what a user changes: the phasekit image (imported, never
 * pulled), the host (PHASE_HOST) and, because this Phase has a private CA, NODE_EXTRA_CA_CERTS from a ConfigMap, as
 * a self-hosted Phase with its own CA needs. The app container runs `app` (a node program) on the same image.
 */
export function adapt(object: Record<string, unknown>, phase: Phase, app: string): Record<string, unknown> {
  const copy = structuredClone(object);
  const outer = copy['spec'] as { template?: { spec?: V1PodSpec } } & V1PodSpec;
  const spec = outer.template?.spec ?? outer;
  spec.volumes = [...(spec.volumes ?? []), { name: 'phase-ca', configMap: { name: 'phase-ca' } }];
  for (const container of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
    if (String(container.image).includes('/phasekit:')) {
      container.image = IMAGE;
      container.imagePullPolicy = 'Never';
      container.env = [
        ...(container.env ?? []),
        { name: 'PHASE_HOST', value: phase.url },
        { name: 'NODE_EXTRA_CA_CERTS', value: '/etc/phase-ca/ca.pem' },
      ];
      container.volumeMounts = [
        ...(container.volumeMounts ?? []),
        { name: 'phase-ca', mountPath: '/etc/phase-ca', readOnly: true },
      ];
    } else {
      container.image = IMAGE;
      container.imagePullPolicy = 'Never';
      container.command = [NODE, '-e', app];
    }
  }
  return copy;
}

/** Runs `argv` in a container (kubectl exec); resolves stdout. */
export async function podExec(
  namespace: string,
  pod: string,
  container: string,
  argv: string[],
): Promise<string> {
  return kubectl(['exec', '--namespace', namespace, pod, '-c', container, '--', ...argv]);
}

/** Reads a file in a container with the image's node (there is no shell or cat). */
export async function readInPod(
  namespace: string,
  pod: string,
  container: string,
  path: string,
): Promise<string> {
  return podExec(namespace, pod, container, [
    NODE,
    '-e',
    `process.stdout.write(require('fs').readFileSync(${JSON.stringify(path)}))`,
  ]);
}

/** The running pods matching `selector` in `namespace`. */
export async function runningPods(namespace: string, selector: string): Promise<V1Pod[]> {
  const list = await getJson<V1PodList>(['pods', '-n', namespace, '-l', selector]);
  return list.items.filter(
    (p) => p.status?.phase === 'Running' && p.metadata?.deletionTimestamp === undefined,
  );
}

/**
 * Checks that every phasekit container of `pod` runs hardened as docs/kubernetes.md recommends: non-root, a read-only
 * root filesystem, every capability dropped, no privilege escalation, the RuntimeDefault seccomp profile. Returns the
 * problems (empty when hardened).
 */
export function hardeningProblems(pod: V1Pod): string[] {
  const problems: string[] = [];
  const spec = pod.spec!;
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    if (!c.image?.includes('/phasekit:')) continue;
    const sc = c.securityContext ?? {};
    const where = `${pod.metadata?.name}/${c.name}`;
    if (!(sc.runAsNonRoot ?? spec.securityContext?.runAsNonRoot)) problems.push(`${where}: runAsNonRoot`);
    if (sc.readOnlyRootFilesystem !== true) problems.push(`${where}: readOnlyRootFilesystem`);
    if (!sc.capabilities?.drop?.includes('ALL')) problems.push(`${where}: capabilities.drop ALL`);
    if (sc.allowPrivilegeEscalation !== false) problems.push(`${where}: allowPrivilegeEscalation`);
    const seccomp = sc.seccompProfile?.type ?? spec.securityContext?.seccompProfile?.type;
    if (seccomp !== 'RuntimeDefault') problems.push(`${where}: seccompProfile RuntimeDefault`);
  }
  return problems;
}

/** The uid and gid a running container's processes have (from /proc/self/status, read by the image's node). */
export async function idsInContainer(namespace: string, pod: string, container: string): Promise<string> {
  return (
    await podExec(namespace, pod, container, [
      NODE,
      '-e',
      'process.stdout.write(process.getuid() + ":" + process.getgid())',
    ])
  ).trim();
}

/**
 * An app program for the image's node: exits on SIGTERM (as PID 1 it would otherwise ignore it and every stop would
 * wait the grace period), and runs `body`.
 */
export function program(body: string): string {
  return `process.on('SIGTERM', () => process.exit(0)); setInterval(() => {}, 1 << 30); ${body}`;
}
