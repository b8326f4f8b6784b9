// A real Kubernetes node for the pod tests (issue 16): the control plane of control-plane.mjs plus kube-scheduler,
// containerd (runc, CNI bridge) and a kubelet, all inside a network namespace this harness creates, with the pod
// bridge inside it and no default route, so nothing a pod or a test sends can leave the machine. Recipe, timings
// and pitfalls: ../shared/docs/k8s-real-node-verified.md. Needs Linux and root.
//
//   node node.mjs up               starts it (installs containerd, runc and CNI plugins from Debian when missing,
//                                  builds binaries and the phasekit image when missing); prints the kubeconfig last
//   node node.mjs exec -- CMD...   runs CMD inside the namespace with KUBECONFIG and the node's facts in its env
//   node node.mjs down             removes what `up` made, and only that: processes by pid, mounts, cgroups, namespace
//
// Inside the namespace: the apiserver listens on 127.0.0.1 and the node's bridge address, pods reach the apiserver
// through the `kubernetes` Service (a DNAT rule stands in for kube-proxy) and host processes (the emulator) on the
// bridge address. Images come from OCI archives imported into containerd (no registry): the phasekit image as
// localhost/phasekit:<version> and localhost/phasekit:dev, and a pause image built from testbin/pause.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildImage } from '../../scripts/build-image.mjs';
import { writeOciArchive } from '../../scripts/oci.mjs';
import {
  alive,
  ensureBinaries,
  kubeconfig,
  startControlPlane,
  stopPids,
  waitUntil,
} from './control-plane.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const AGENT = resolve(HERE, '..', '..');
/** The node: its name, its address on the pod bridge, the pod range, and the namespace and cgroup it lives in. */
export const NODE = {
  name: 'phasekit-node',
  ip: '10.244.0.1',
  podCidr: '10.244.0.0/24',
  bridge: 'pk0',
  netns: 'phasekit-node',
  cgroupRoot: 'phasekit-node',
};
const STATE = join(homedir(), '.cache', 'phasekit', 'k8s-node.json');
const NETNS = `/run/netns/${NODE.netns}`;
const CGROUP = '/sys/fs/cgroup';

const run = (file, args, options = {}) =>
  execFileSync(file, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', ...options });

/** Refuses, naming why, where the node cannot run. */
export function requireRootOnLinux() {
  if (process.platform !== 'linux')
    throw new Error(`a real node needs Linux (kubelet, containerd, runc); this is ${process.platform}`);
  if (process.getuid?.() !== 0)
    throw new Error('a real node needs root (network namespaces, mounts, cgroups); run it as root');
}

/** containerd, runc, the CNI plugins, iptables, ip and nsenter from Debian, when missing. */
function ensurePackages() {
  const missing = [
    ['containerd', '/usr/bin/containerd'],
    ['runc', '/usr/sbin/runc'],
    ['containernetworking-plugins', '/usr/lib/cni/bridge'],
    ['iptables', '/usr/sbin/iptables'],
    ['iproute2', '/usr/sbin/ip', '/sbin/ip', '/bin/ip'],
    ['util-linux', '/usr/bin/nsenter'],
  ].filter(([, ...paths]) => !paths.some((path) => existsSync(path)));
  if (missing.length === 0) return;
  const names = missing.map(([name]) => name);
  if (!existsSync('/usr/bin/apt-get'))
    throw new Error(`install ${names.join(', ')} (no apt-get here to do it)`);
  process.stderr.write(`installing ${names.join(', ')} from Debian\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () =>
    spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...names], { env, stdio: 'inherit' });
  if (install().status !== 0) {
    spawnSync('apt-get', ['update'], { env, stdio: 'inherit' });
    if (install().status !== 0) throw new Error(`apt-get could not install ${names.join(', ')}`);
  }
}

function containerdConfig(dir, pauseImage) {
  return `version = 2
root = "${dir}/containerd/root"
state = "${dir}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "${dir}/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${pauseImage}"
  stream_server_address = "127.0.0.1"
  netns_mounts_under_state_dir = true
  # This machine kind withholds CAP_SYS_RESOURCE: runc cannot lower a sandbox's oom_score_adj to -998, so clamp it.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${dir}/cni"
`;
}

// Pod traffic stays on the bridge: no outbound NAT (ipMasq false), and the namespace has no default route anyway.
const cniConfig = () =>
  JSON.stringify({
    cniVersion: '1.0.0',
    name: 'phasekit',
    plugins: [
      {
        type: 'bridge',
        bridge: NODE.bridge,
        isGateway: true,
        ipMasq: false,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: NODE.podCidr, gateway: NODE.ip }]],
          routes: [{ dst: '0.0.0.0/0' }],
        },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  });

function kubeletConfig(dir) {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /${NODE.cgroupRoot}
failSwapOn: false
address: ${NODE.ip}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
containerRuntimeEndpoint: unix://${dir}/containerd.sock
tlsCertFile: ${dir}/plane/kubelet-serving.crt
tlsPrivateKeyFile: ${dir}/plane/kubelet-serving.key
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true }
  x509: { clientCAFile: ${dir}/plane/ca.crt }
authorization:
  mode: Webhook
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 1Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
serializeImagePulls: false
maxPods: 110
`;
}

/** Spawns a daemon detached from this process (it outlives `up`), logging to `logs/<name>.log`. */
function daemon(dir, name, file, args, env = process.env) {
  const log = openSync(join(dir, 'logs', `${name}.log`), 'a');
  const child = spawn(file, args, { stdio: ['ignore', log, log], detached: true, env });
  closeSync(log);
  child.unref();
  return child.pid;
}

/** The pause image for containerd's sandboxes, as an OCI archive built from testbin/pause. */
async function pauseArchive(dir, bin) {
  const out = join(dir, 'pause.oci.tar');
  await writeOciArchive({
    out,
    files: [{ name: 'pause', source: bin.pause, mode: 0o755 }],
    config: { Entrypoint: ['/pause'], User: '65535:65535' },
    names: ['localhost/pause:phasekit'],
  });
  return { archive: out, name: 'localhost/pause:phasekit' };
}

/** `up`, inside the namespace (re-executed there by `up`): starts everything and writes the state file. */
async function upInside(dir, image) {
  mkdirSync(join(dir, 'logs'), { recursive: true });
  mkdirSync(join(dir, 'cni'), { recursive: true });
  const state = JSON.parse(readFileSync(STATE, 'utf8'));
  const { pids } = state;
  const plane = await startControlPlane({
    node: NODE,
    dir: join(dir, 'plane'),
    detached: true,
    logs: join(dir, 'logs'),
  });
  pids.push(...plane.pids);
  Object.assign(state, { kubeconfig: plane.kubeconfig, etcd: plane.etcd, bin: dirname(plane.bin.kubelet) });
  writeFileSync(STATE, JSON.stringify(state));
  // kube-proxy's one job here: the `kubernetes` Service's ClusterIP leads to the apiserver.
  run('iptables', [
    '-t',
    'nat',
    '-A',
    'PREROUTING',
    '-d',
    '10.0.0.1/32',
    '-p',
    'tcp',
    '--dport',
    '443',
    '-j',
    'DNAT',
    '--to-destination',
    `${NODE.ip}:${new URL(plane.server).port}`,
  ]);
  pids.push(
    daemon(dir, 'kube-scheduler', plane.bin['kube-scheduler'], [
      `--kubeconfig=${plane.kubeconfig}`,
      '--bind-address=127.0.0.1',
      '--leader-elect=false',
      '--v=1',
    ]),
  );
  const pause = await pauseArchive(dir, plane.bin);
  writeFileSync(join(dir, 'containerd.toml'), containerdConfig(dir, pause.name));
  writeFileSync(join(dir, 'cni', '10-phasekit.conflist'), cniConfig());
  pids.push(daemon(dir, 'containerd', 'containerd', ['--config', join(dir, 'containerd.toml')]));
  writeFileSync(STATE, JSON.stringify(state));
  const ctr = (...args) =>
    run('ctr', ['--address', state.containerdSocket, '--namespace', 'k8s.io', ...args]);
  await waitUntil(() => (ctr('version'), true), 'containerd', 30_000);
  ctr('images', 'import', pause.archive);
  importImage(state, image);
  writeFileSync(join(dir, 'kubelet.kubeconfig'), kubeconfig(join(dir, 'plane'), plane.server, 'kubelet'), {
    mode: 0o600,
  });
  writeFileSync(join(dir, 'kubelet.yaml'), kubeletConfig(dir));
  makeCgroupRoot();
  pids.push(
    daemon(dir, 'kubelet', plane.bin.kubelet, [
      `--config=${join(dir, 'kubelet.yaml')}`,
      `--kubeconfig=${join(dir, 'kubelet.kubeconfig')}`,
      `--hostname-override=${NODE.name}`,
      `--node-ip=${NODE.ip}`,
      `--root-dir=${join(dir, 'kubelet')}`,
      `--cert-dir=${join(dir, 'kubelet-pki')}`,
      '--v=1',
    ]),
  );
  writeFileSync(STATE, JSON.stringify(state));
  const kubectl = (...args) => run(plane.bin.kubectl, [`--kubeconfig=${plane.kubeconfig}`, ...args]);
  const kubeletPid = pids.at(-1);
  await waitUntil(
    () => {
      if (!alive(kubeletPid)) throw new Error('the kubelet exited');
      return (
        kubectl(
          'get',
          'node',
          NODE.name,
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ) === 'True'
      );
    },
    'the node to be Ready',
    90_000,
  );
  return state;
}

/**
 * The kubelet's cgroup root in every cgroup v1 hierarchy (it must exist before the kubelet starts); cpuset needs
 * its CPUs and memory nodes copied from the parent before a task can join.
 */
function makeCgroupRoot() {
  for (const controller of readdirSync(CGROUP)) {
    if (controller === 'unified') continue;
    const path = join(CGROUP, controller, NODE.cgroupRoot);
    mkdirSync(path, { recursive: true });
    if (controller === 'cpuset') {
      for (const file of ['cpuset.cpus', 'cpuset.mems']) {
        writeFileSync(join(path, file), readFileSync(join(CGROUP, controller, file)));
      }
    }
  }
}

/** Imports an OCI archive (the phasekit image) into the node's containerd, where pods find it by name. */
export function importImage(state, archive) {
  run('ctr', ['--address', state.containerdSocket, '--namespace', 'k8s.io', 'images', 'import', archive]);
}

/**
 * The node with `image` in it: the one `pnpm k8s:up --node` left running (the image imported into it), or one
 * started now. `started` says whether the caller should take it down.
 */
export async function useNode(image) {
  const running = nodeState();
  if (running) {
    importImage(running, image);
    return { state: running, started: false };
  }
  return { state: await up(image), started: true };
}

/** Whether the node of the state file is up (its namespace exists). */
export function nodeState() {
  if (!existsSync(STATE)) return undefined;
  const state = JSON.parse(readFileSync(STATE, 'utf8'));
  return existsSync(`/run/netns/${state.netns}`) ? state : undefined;
}

/**
 * Starts the node with the phasekit image `image` (an OCI archive; default: $PHASEKIT_IMAGE, else built now by
 * scripts/build-image.mjs); resolves its state ({ kubeconfig, dir, bin, etcd, ... }).
 */
export async function up(image = process.env.PHASEKIT_IMAGE) {
  requireRootOnLinux();
  const running = nodeState();
  if (running) return running;
  if (existsSync(STATE)) await down();
  ensurePackages();
  await ensureBinaries();
  image ??= (await buildImage()).path;
  const dir = join(homedir(), '.cache', 'phasekit', 'k8s-node');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Recorded before anything starts, so `down` can clean up after a failed `up`.
  writeFileSync(
    STATE,
    JSON.stringify({ dir, netns: NODE.netns, pids: [], containerdSocket: join(dir, 'containerd.sock') }),
  );
  // A namespace of this name is a leftover of ours (a killed `up`): start afresh.
  if (existsSync(NETNS)) run('ip', ['netns', 'del', NODE.netns]);
  run('ip', ['netns', 'add', NODE.netns]);
  const ip = (...args) => run('ip', ['-n', NODE.netns, ...args]);
  ip('link', 'set', 'lo', 'up');
  ip('link', 'add', NODE.bridge, 'type', 'bridge');
  ip('addr', 'add', `${NODE.ip}/24`, 'dev', NODE.bridge);
  ip('link', 'set', NODE.bridge, 'up');
  // `nsenter --net`, not `ip netns exec`: the latter gives the command a private mount namespace and remounts /sys,
  // which hides the cgroup mounts from the kubelet and one daemon's mounts from another.
  const child = spawnSync(
    'nsenter',
    [`--net=${NETNS}`, process.execPath, fileURLToPath(import.meta.url), '_up', dir, image],
    {
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
  if (child.status !== 0) {
    // The daemons' last words, before `down` removes them.
    const logs = join(dir, 'logs');
    for (const name of existsSync(logs) ? readdirSync(logs) : []) {
      const lines = readFileSync(join(logs, name), 'utf8').trimEnd().split('\n').slice(-15);
      process.stderr.write(`--- ${name}\n${lines.join('\n')}\n`);
    }
    await down();
    throw new Error('the node did not come up (its logs are above)');
  }
  return nodeState();
}

/** The environment `exec` gives a command: KUBECONFIG, the binaries on the PATH, and the node's facts. */
export function nodeEnv(state, env = process.env) {
  return {
    ...env,
    KUBECONFIG: state.kubeconfig,
    PATH: `${state.bin}:${env.PATH ?? '/usr/bin:/bin'}`,
    PHASEKIT_NODE_IP: NODE.ip,
    PHASEKIT_NODE_NAME: NODE.name,
    PHASEKIT_ETCD: state.etcd,
    PHASEKIT_K8S_BIN: state.bin,
  };
}

/** Runs `args` inside the node's namespace with nodeEnv; resolves its exit code. */
export function exec(args, state = nodeState()) {
  if (!state) throw new Error('no node is up: run `pnpm k8s:up --node` first');
  return new Promise((resolvePromise, reject) => {
    const child = spawn('nsenter', [`--net=/run/netns/${state.netns}`, '--', ...args], {
      stdio: 'inherit',
      env: nodeEnv(state),
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolvePromise(code ?? 128 + (signal === 'SIGKILL' ? 9 : 15)));
  });
}

/** The processes in the node's cgroup tree (every container the kubelet started). */
function podProcesses() {
  const found = new Set();
  const walk = (path) => {
    if (!existsSync(path)) return;
    try {
      for (const line of readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n')) {
        if (line) found.add(Number(line));
      }
    } catch {
      // gone meanwhile
    }
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(path, entry.name));
    }
  };
  walk(join(CGROUP, 'pids', NODE.cgroupRoot));
  walk(join(CGROUP, 'memory', NODE.cgroupRoot));
  return [...found];
}

/**
 * Our containerd and its shims, matched by the config file and socket in their command lines (a containerd restarted
 * by hand while debugging is not in the pid list).
 */
function containerdProcesses(socket, config) {
  const found = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      const ours =
        (argv[0]?.endsWith('containerd-shim-runc-v2') && argv.includes(socket)) ||
        (argv[0] === 'containerd' && argv.includes(config));
      if (ours) found.push(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

const kill = (pid, signal) => {
  try {
    process.kill(pid, signal);
  } catch {
    // gone
  }
};

/** Removes everything `up` made: containers, daemons, mounts, cgroups, the namespace and the state directory. */
export async function down() {
  if (!existsSync(STATE)) return false;
  const state = JSON.parse(readFileSync(STATE, 'utf8'));
  const [kubelet, ...rest] = [...state.pids].reverse();
  if (kubelet !== undefined) await stopPids([kubelet], undefined);
  for (let round = 0; round < 50; round++) {
    const procs = podProcesses().filter(alive);
    if (procs.length === 0) break;
    for (const pid of procs) kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const pid of containerdProcesses(state.containerdSocket, join(state.dir, 'containerd.toml')))
    kill(pid, 'SIGKILL');
  await stopPids(rest.reverse(), undefined);
  // Mounts under the state directory (containers' root filesystems, volumes, pod network namespaces), deepest first.
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((point) => point?.startsWith(`${state.dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const point of mounts) spawnSync('umount', ['-l', point]);
  for (const controller of existsSync(CGROUP) ? readdirSync(CGROUP) : []) {
    const root = join(CGROUP, controller, NODE.cgroupRoot);
    if (!existsSync(root)) continue;
    const dirs = [];
    const walk = (path) => {
      for (const entry of readdirSync(path, { withFileTypes: true })) {
        if (entry.isDirectory()) walk(join(path, entry.name));
      }
      dirs.push(path);
    };
    walk(root);
    for (const path of dirs) spawnSync('rmdir', [path]);
  }
  if (existsSync(`/run/netns/${state.netns}`)) spawnSync('ip', ['netns', 'del', state.netns]);
  rmSync(state.dir, { recursive: true, force: true });
  rmSync(STATE, { force: true });
  return true;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [command, ...args] = process.argv.slice(2);
  try {
    if (command === 'up') {
      const state = await up();
      process.stdout.write(`${state.kubeconfig}\n`);
    } else if (command === '_up') {
      await upInside(args[0], args[1]);
    } else if (command === 'exec') {
      const argv = args[0] === '--' ? args.slice(1) : args;
      if (argv.length === 0) throw new Error('usage: node.mjs exec -- CMD [ARGS...]');
      process.exitCode = await exec(argv);
    } else if (command === 'down') {
      if (!(await down())) process.stderr.write('no node was started by `up`\n');
    } else {
      process.stderr.write('usage: node.mjs up|exec -- CMD...|down\n');
      process.exitCode = 2;
    }
  } catch (error) {
    process.stderr.write(`${error.message}\n`);
    process.exitCode = 1;
  }
}
