// A real Kubernetes control plane for tests (issue 11): etcd, kube-apiserver (RBAC, generated certificates) and
// kube-controller-manager on free loopback ports, from the binaries testbin/build.sh makes. Recipe, flags and
// pitfalls: ../shared/docs/k8s-control-plane-verified.md.
//
//   node packages/agent/test/k8s/control-plane.mjs up     builds when needed, starts, prints the kubeconfig path last
//   node packages/agent/test/k8s/control-plane.mjs up --node   a whole node in its own network namespace (node.mjs)
//   node packages/agent/test/k8s/control-plane.mjs down   stops what `up` started (by pid) and removes its directory
//
// In code: `const plane = await startControlPlane(); ...; await plane.stop();`
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { request } from 'node:https';

const HERE = dirname(fileURLToPath(import.meta.url));
const VERSION = 'v1.34.4';
/** Where `up` records the running plane for `down`. */
const STATE = join(homedir(), '.cache', 'phasekit', 'k8s-plane.json');

/** The binaries, built by testbin/build.sh into a cache keyed by version when missing. */
export async function ensureBinaries() {
  const dir = process.env.PHASEKIT_K8S_BIN ?? join(homedir(), '.cache', 'phasekit', 'k8s-testbin', VERSION);
  const names = [
    'etcd',
    'etcdctl',
    'kube-apiserver',
    'kube-controller-manager',
    'kube-scheduler',
    'kubelet',
    'kubectl',
    'helm',
    'pause',
  ];
  if (!names.every((n) => existsSync(join(dir, n)))) {
    try {
      execFileSync('go', ['version'], { stdio: 'ignore' });
    } catch {
      throw new Error(
        'Go is needed to build the Kubernetes test binaries (kube-apiserver, etcd), and `go` is not on the PATH',
      );
    }
    await promisify(execFile)(join(HERE, 'testbin', 'build.sh'), [dir], {
      maxBuffer: 64 * 1024 * 1024,
      timeout: 30 * 60_000,
    });
  }
  return Object.fromEntries(names.map((n) => [n, join(dir, n)]));
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const openssl = (args, cwd) => execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });

/**
 * CA, serving certificate, admin client certificate and the service-account key pair, with openssl; for a node also
 * the kubelet's client and serving certificates and the apiserver's client certificate for the kubelet.
 */
function makeCertificates(dir, node) {
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-days',
      '30',
      '-subj',
      '/CN=phasekit-test-ca',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
      '-out',
      'ca.crt',
    ],
    dir,
  );
  const issue = (name, subject, ext) => {
    openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`], dir);
    openssl(['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`], dir);
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(
      [
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-days',
        '30',
        '-extfile',
        `${name}.ext`,
        '-out',
        `${name}.crt`,
      ],
      dir,
    );
  };
  issue(
    'server',
    '/CN=localhost',
    `subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:kubernetes.default.svc,IP:10.0.0.1${node ? `,IP:${node.ip}` : ''}\nextendedKeyUsage=serverAuth\n`,
  );
  issue('admin', '/O=system:masters/CN=admin', 'extendedKeyUsage=clientAuth\n');
  if (node) {
    issue('kubelet', `/O=system:nodes/CN=system:node:${node.name}`, 'extendedKeyUsage=clientAuth\n');
    issue(
      'kubelet-serving',
      `/CN=${node.name}`,
      `subjectAltName=DNS:${node.name},IP:${node.ip}\nextendedKeyUsage=serverAuth\n`,
    );
    issue('apiserver-kubelet', '/O=system:masters/CN=kube-apiserver', 'extendedKeyUsage=clientAuth\n');
  }
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key'], dir);
  openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
}

export function kubeconfig(dir, server, user = 'admin') {
  const b64 = (f) => readFileSync(join(dir, f)).toString('base64');
  return `apiVersion: v1
kind: Config
clusters:
- name: kcp
  cluster:
    server: ${server}
    certificate-authority-data: ${b64('ca.crt')}
users:
- name: admin
  user:
    client-certificate-data: ${b64(`${user}.crt`)}
    client-key-data: ${b64(`${user}.key`)}
contexts:
- name: kcp
  context: { cluster: kcp, user: admin }
current-context: kcp
`;
}

/** GET `url` with the admin certificate; resolves the status code and body, or rejects. */
function adminGet(dir, url) {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        ca: readFileSync(join(dir, 'ca.crt')),
        cert: readFileSync(join(dir, 'admin.crt')),
        key: readFileSync(join(dir, 'admin.key')),
        timeout: 2_000,
      },
      (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode, body }));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** Polls `check` every 100 ms until it returns a truthy value, which it resolves; fails naming `what` and the last error. */
export async function waitUntil(check, what, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Starts etcd, kube-apiserver and kube-controller-manager; resolves `{ kubeconfig, server, dir, pids, stop() }` once
 * `/readyz` answers `ok` and the controller manager is healthy.
 */
export async function startControlPlane({
  readyTimeoutMs = 90_000,
  detached = false,
  node,
  dir = mkdtempSync(join(tmpdir(), 'phasekit-kcp-')),
  logs,
} = {}) {
  const bin = await ensureBinaries();
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o700);
  makeCertificates(dir, node);
  const [etcdClient, etcdPeer, apiPort, kcmPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  mkdirSync(join(dir, 'etcd'), { mode: 0o700 });
  // etcd reads every ETCD_* variable as a flag: start it without any.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_')));
  const procs = [];
  // Detached (its own process group) when the plane must outlive the command that started it (`up`).
  const start = (file, args) => {
    const log = logs ? openSync(join(logs, `${basename(file)}.log`), 'a') : 'ignore';
    const child = spawn(file, args, { env, stdio: ['ignore', log, log], detached });
    if (logs) closeSync(log);
    if (detached) child.unref();
    procs.push(child);
    return child;
  };
  start(bin.etcd, [
    '--name=kcp',
    `--data-dir=${join(dir, 'etcd')}`,
    `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
    `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
    `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
    `--initial-cluster=kcp=http://127.0.0.1:${etcdPeer}`,
    '--unsafe-no-fsync=true',
    '--logger=zap',
    '--log-level=warn',
  ]);
  await waitUntil(
    async () => (await (await fetch(`http://127.0.0.1:${etcdClient}/health`)).json()).health === 'true',
    'etcd',
    readyTimeoutMs,
  );
  start(bin['kube-apiserver'], [
    `--etcd-servers=http://127.0.0.1:${etcdClient}`,
    // On a node the apiserver also listens on the node's address, which the `kubernetes` Service points pods to.
    `--bind-address=${node ? '0.0.0.0' : '127.0.0.1'}`,
    `--advertise-address=${node ? node.ip : '127.0.0.1'}`,
    `--secure-port=${apiPort}`,
    `--cert-dir=${dir}`,
    `--tls-cert-file=${join(dir, 'server.crt')}`,
    `--tls-private-key-file=${join(dir, 'server.key')}`,
    `--client-ca-file=${join(dir, 'ca.crt')}`,
    `--service-account-issuer=https://127.0.0.1:${apiPort}`,
    `--service-account-key-file=${join(dir, 'sa.pub')}`,
    `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
    '--service-cluster-ip-range=10.0.0.0/24',
    '--allow-privileged=true',
    ...(node
      ? [
          '--authorization-mode=Node,RBAC',
          '--kubelet-preferred-address-types=InternalIP',
          `--kubelet-client-certificate=${join(dir, 'apiserver-kubelet.crt')}`,
          `--kubelet-client-key=${join(dir, 'apiserver-kubelet.key')}`,
        ]
      : ['--authorization-mode=RBAC', '--disable-admission-plugins=ServiceAccount']),
    '--profiling=false',
    '--v=1',
  ]);
  const server = `https://127.0.0.1:${apiPort}`;
  await waitUntil(
    async () => (await adminGet(dir, `${server}/readyz`)).body === 'ok',
    'kube-apiserver /readyz',
    readyTimeoutMs,
  );
  const config = join(dir, 'kubeconfig');
  writeFileSync(config, kubeconfig(dir, server), { mode: 0o600 });
  start(bin['kube-controller-manager'], [
    `--kubeconfig=${config}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${kcmPort}`,
    '--leader-elect=false',
    '--controllers=*',
    '--use-service-account-credentials=false',
    // Pods get projected ServiceAccount tokens and kube-root-ca.crt.
    ...(node
      ? [`--service-account-private-key-file=${join(dir, 'sa.key')}`, `--root-ca-file=${join(dir, 'ca.crt')}`]
      : []),
    '--v=1',
  ]);
  await waitUntil(
    async () =>
      (await adminGet(dir, `${server}/api/v1/namespaces/default/serviceaccounts/default`)).status === 200,
    'kube-controller-manager (the default ServiceAccount)',
    readyTimeoutMs,
  );
  const pids = procs.map((p) => p.pid);
  const stop = () => stopPids(pids, dir);
  // For tests: nothing of the plane is kept, so no graceful shutdown is needed.
  const kill = () => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return {
    kubeconfig: config,
    server,
    dir,
    pids,
    stop,
    kill,
    apiPort,
    etcd: `http://127.0.0.1:${etcdClient}`,
    bin,
  };
}

/** Whether `pid` runs: a zombie (which this machine's init reaps slowly, ~2 s) counts as gone. */
export function alive(pid) {
  try {
    return !/^\d+ \(.*\) Z/s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    try {
      process.kill(pid, 0);
      return true; // no /proc (not Linux)
    } catch {
      return false;
    }
  }
}

/** SIGTERM to each pid (the controller manager and apiserver before etcd), SIGKILL after 20 s; then removes `dir`. */
export async function stopPids(pids, dir) {
  for (const pid of [...pids].reverse()) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      continue; // already gone
    }
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (!alive(pid)) break;
      if (Date.now() > deadline) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [command, ...flags] = process.argv.slice(2);
  if (command === 'up' && flags.includes('--node')) {
    // A whole node in its own network namespace: node.mjs (a child process: it imports this module).
    const child = spawnSync(process.execPath, [join(HERE, 'node.mjs'), 'up'], { stdio: 'inherit' });
    process.exit(child.status ?? 1);
  } else if (command === 'up') {
    const plane = await startControlPlane({ detached: true });
    mkdirSync(dirname(STATE), { recursive: true });
    writeFileSync(STATE, JSON.stringify({ pids: plane.pids, dir: plane.dir, kubeconfig: plane.kubeconfig }));
    process.stdout.write(`${plane.kubeconfig}\n`);
    // The plane outlives this command: `down` stops it.
    process.exit(0);
  } else if (command === 'down') {
    // Whichever `up` started: the node (with its plane) and a plain control plane.
    const node = spawnSync(process.execPath, [join(HERE, 'node.mjs'), 'down'], {
      stdio: ['ignore', 'inherit', 'pipe'],
      encoding: 'utf8',
    });
    if (node.status !== 0) process.stderr.write(node.stderr);
    const nodeWasUp = node.status === 0 && !node.stderr.includes('no node');
    if (existsSync(STATE)) {
      const { pids, dir } = JSON.parse(readFileSync(STATE, 'utf8'));
      await stopPids(pids, dir);
      rmSync(STATE, { force: true });
    } else if (!nodeWasUp) {
      process.stderr.write('nothing was started by `up`\n');
    }
  } else {
    process.stderr.write('usage: control-plane.mjs up [--node] | down\n');
    process.exit(2);
  }
}
