// `pnpm bench`: runs every comparison of issue 4 side by side, on one emulator, alternating the contenders, and
// writes docs/benchmarks.md (and the raw numbers to bench/.tmp/last-run.json). Not part of `pnpm test`.
//
// Environment knobs:
//   PHASEKIT_BENCH_SOAK_S   soak length in seconds (default 300)
//   PHASEKIT_BENCH_CHANGES  changes per propagation run (default 50)
//   PHASEKIT_BENCH_ROUNDS   rounds of the cold-read and cold-start comparisons (default 15 and 20)
//   PHASEKIT_BENCH_ONLY     comma list of items to run (1..8), for development; the doc then says which ran
//   PHASEKIT_BENCH_POD_ROUNDS, PHASEKIT_BENCH_POD_CHANGES   item 8: pod starts per variant (10), sidecar changes (1000)
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { generateCertificate } from '@phasekit/emulator';
import { entrypointFlags, stageImage } from '../packages/agent/scripts/stage-image.mjs';
import { startEmulatorProcess } from './lib/emulator.mjs';
import { machineInfo, versions } from './lib/machine.mjs';
import { cpuMsOf, lastJson, rssKiB, runNode, sleep, startNode } from './lib/proc.mjs';
import { shuffled, slope, summarize } from './lib/stats.mjs';
import { renderDoc } from './lib/report.mjs';
import { operatorItem } from './operator.mjs';
import { podsItem } from './pods.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BENCH = join(ROOT, 'bench');

// Every client item speaks HTTPS, as production does with Phase Cloud: the emulator serves a certificate made for
// this run, and every process trusts it the way a user would, through NODE_EXTRA_CA_CERTS. The bench re-runs itself
// once with that variable set, since Node reads it only at start.
if (process.env.PHASEKIT_BENCH_TLS_DIR === undefined) {
  const dir = join(BENCH, '.tmp', 'tls');
  mkdirSync(dir, { recursive: true });
  const { cert, key } = await generateCertificate();
  writeFileSync(join(dir, 'ca.pem'), cert);
  writeFileSync(join(dir, 'key.pem'), key, { mode: 0o600 });
  const child = spawnSync(process.execPath, process.argv.slice(1), {
    stdio: 'inherit',
    env: { ...process.env, PHASEKIT_BENCH_TLS_DIR: dir, NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem') },
  });
  process.exit(child.status ?? 1);
}
const TLS_DIR = process.env.PHASEKIT_BENCH_TLS_DIR;

// The CLI as the image runs it: /app laid out by the image's own script (the bundle, sodium-native with its Linux
// prebuild), started with the node flags of the Containerfile's ENTRYPOINT. A private copy, so a concurrent rebuild
// of packages/agent cannot pull it away mid-run.
const IMAGE_APP = join(BENCH, '.tmp', 'image', 'app');
stageImage(IMAGE_APP);
const ENTRY = join(IMAGE_APP, 'phasekit.js');
const ENTRYPOINT_FLAGS = entrypointFlags();
/** `node ...CLI args`: the image's ENTRYPOINT. */
const CLI = [...ENTRYPOINT_FLAGS, ENTRY];

const SOAK_S = Number(process.env.PHASEKIT_BENCH_SOAK_S ?? 300);
const CHANGES = Number(process.env.PHASEKIT_BENCH_CHANGES ?? 50);
const ROUNDS = process.env.PHASEKIT_BENCH_ROUNDS ? Number(process.env.PHASEKIT_BENCH_ROUNDS) : undefined;
const ONLY = process.env.PHASEKIT_BENCH_ONLY
  ? new Set(process.env.PHASEKIT_BENCH_ONLY.split(',').map(Number))
  : undefined;
const want = (n) => !ONLY || ONLY.has(n);
/** Item 3: measured no-change polls, after warm-up polls that reach the steady state (10 s at 200 ms). */
const POLLS = 60;
const POLL_WARMUP = 50;
/** Item 3, long-lived watch: no-change polls (at 10 ms) before the warm-up; the CPU of a poll has settled by then. */
const POLL_AGE = 3000;
/** Item 3, the CLI sidecar: seconds of no-change polls at 200 ms, after 10 s of warm-up. */
const SIDECAR_POLL_S = 30;

/** Item 5's reference rows: idle node processes that loaded only an HTTP client and made one request. */
const CLIENT_ONLY = {
  undici: "idle node + one request through undici's entry point",
  https: 'idle node + one request through node:https',
};
/** The undici the SDK resolves. */
const UNDICI = createRequire(join(ROOT, 'packages', 'sdk', 'package.json')).resolve('undici');

const log = (...args) => process.stderr.write(`[bench] ${args.join(' ')}\n`);
const started = Date.now();
// Snapshots live on tmpfs in production (an emptyDir with medium: Memory), so the bench writes there too
// when the machine has one; every contender's output goes to the same place.
const WORK_FS = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
const work = mkdtempSync(join(WORK_FS, 'phasekit-bench-'));

const ENVS = [
  { name: 'Large', count: 1000, comments: 'half', prefix: 'LARGE' },
  { name: 'Small', count: 100, prefix: 'SMALL' },
  { name: 'Soak', count: 1000, prefix: 'SOAK' },
  { name: 'Prop', count: 1000, prefix: 'PROP' },
];

const results = {
  machine: machineInfo(),
  versions: versions(),
  config: { SOAK_S, CHANGES, workDir: WORK_FS, entrypointFlags: ENTRYPOINT_FLAGS, protocol: 'https' },
  items: {},
};
log(
  'starting the emulator (seeding',
  ENVS.reduce((a, e) => a + e.count, 0),
  'secrets)',
);
const seedStart = performance.now();
const emu = await startEmulatorProcess({ app: 'bench', envs: ENVS, tls: TLS_DIR });
results.config.seedMs = performance.now() - seedStart;
const TOKEN = emu.tokens.serviceAccount;
const tokenEnv = { PHASE_SERVICE_TOKEN: TOKEN };

try {
  if (want(1)) results.items.coldGet = await coldGet();
  if (want(2)) results.items.crypto = await cryptoCeiling();
  if (want(3)) results.items.poll = await noChangePoll();
  if (want(4)) results.items.coldStart = await coldStart();
  if (want(5)) results.items.soak = await soak();
  if (want(6)) results.items.propagation = await propagation();
  if (want(7))
    results.items.operator = await operatorItem({
      cli: CLI,
      crdFile: join(ROOT, 'deploy', 'crds', 'phasesecrets.secrets.phase.dev.yaml'),
      chartValues: join(ROOT, 'deploy', 'helm', 'phasekit-operator', 'values.yaml'),
      tlsDir: TLS_DIR,
      log,
    });
  if (want(8)) results.items.pods = await podsItem({ log });
} finally {
  await emu.close();
  rmSync(work, { recursive: true, force: true });
  rmSync(dirname(IMAGE_APP), { recursive: true, force: true });
}
results.machine.loadAfter = (await import('node:os')).loadavg();
results.totalS = (Date.now() - started) / 1000;
mkdirSync(join(BENCH, '.tmp'), { recursive: true });
writeFileSync(join(BENCH, '.tmp', 'last-run.json'), `${JSON.stringify(results, null, 2)}\n`);
if (ONLY)
  log(
    'PHASEKIT_BENCH_ONLY is set: docs/benchmarks.md is not rewritten (raw numbers in bench/.tmp/last-run.json)',
  );
else writeFileSync(join(ROOT, 'docs', 'benchmarks.md'), renderDoc(results));
log(`done in ${results.totalS.toFixed(0)} s`);

// ---------------------------------------------------------------------------------------------------------------

/** Item 1: cold getSecrets of 1,000 secrets, fresh process per sample, then in one process. */
async function coldGet() {
  const rounds = ROUNDS ?? 15;
  log(`item 1: cold getSecrets, ${rounds} rounds of fresh processes`);
  const child = join(BENCH, 'cold-get-child.mjs');
  const contenders = {
    phasekit: [child, 'phasekit'],
    official: [child, 'official'],
    'phasekit-default': [child, 'phasekit-nocomments'],
    'phasekit-wasm': ['-r', join(BENCH, 'no-native.cjs'), child, 'phasekit'],
  };
  const samples = Object.fromEntries(
    Object.keys(contenders).map((k) => [k, { opMs: [], importMs: [], wallMs: [] }]),
  );
  const info = {};
  for (let r = 0; r < rounds; r++) {
    for (const name of shuffled(Object.keys(contenders))) {
      const res = await retryOnce(
        () =>
          runNode([...contenders[name], emu.url, emu.appId, 'Large'], { env: tokenEnv, timeoutMs: 90_000 }),
        name,
      );
      if (res.code !== 0) throw new Error(`${name} failed: ${res.stderr}`);
      const out = lastJson(res.stdout);
      samples[name].opMs.push(out.opMs);
      samples[name].importMs.push(out.importMs);
      samples[name].wallMs.push(res.ms);
      info[name] = {
        count: out.count,
        comments: out.comments,
        decryptions: out.decryptions,
        backend: out.backend,
      };
    }
  }
  const inRounds = ROUNDS ?? 15;
  log(`item 1: in-process, ${inRounds} rounds`);
  const res = await runNode(
    // --expose-gc: every sample starts after a full collection, so neither contender pays for the other's garbage.
    ['--expose-gc', join(BENCH, 'inproc-child.mjs'), emu.url, emu.appId, 'Large', String(inRounds)],
    {
      env: tokenEnv,
      timeoutMs: 600_000,
    },
  );
  if (res.code !== 0) throw new Error(`in-process bench failed: ${res.stderr}`);
  const inproc = lastJson(res.stdout);
  return {
    rounds,
    fresh: Object.fromEntries(
      Object.entries(samples).map(([k, v]) => [
        k,
        {
          op: summarize(v.opMs),
          import: summarize(v.importMs),
          wall: summarize(v.wallMs),
          raw: v,
          info: info[k],
        },
      ]),
    ),
    inproc: {
      rounds: inRounds,
      backend: inproc.backend,
      phasekit: summarize(inproc.ms.phasekit),
      official: summarize(inproc.ms.official),
      info: inproc.info,
      raw: inproc.ms,
    },
  };
}

/** Item 2: decryptions per second, one core. */
async function cryptoCeiling() {
  log('item 2: crypto ceiling');
  const res = await runNode([join(BENCH, 'crypto-child.mjs'), '3000', '15'], { timeoutMs: 300_000 });
  if (res.code !== 0) throw new Error(`crypto bench failed: ${res.stderr}`);
  const out = lastJson(res.stdout);
  return {
    n: out.n,
    rounds: out.rounds,
    rates: Object.fromEntries(Object.entries(out.rates).map(([k, v]) => [k, summarize(v)])),
    raw: out.rates,
  };
}

/** `phasekit sidecar` arguments for the bench app's environment ENV, polled every INTERVAL. */
function sidecarArgs(env, interval, ...more) {
  return ['sidecar', '--host', emu.url, '--app', 'bench', '--env', env, '--interval', interval, ...more];
}

/** Item 3: a poll that finds no change, 1,000 secrets. */
async function noChangePoll() {
  log('item 3: no-change poll');
  const watchRun = async (age) => {
    const res = await runNode(
      [
        join(BENCH, 'poll-child.mjs'),
        emu.url,
        emu.appId,
        'Large',
        String(POLLS),
        String(POLL_WARMUP),
        String(age),
      ],
      { env: tokenEnv },
    );
    if (res.code !== 0) throw new Error(`poll bench failed: ${res.stderr}`);
    return lastJson(res.stdout);
  };
  const baselineRun = async (age) => {
    const res = await runNode(
      [join(BENCH, 'http-baseline-child.mjs'), emu.url, String(POLLS), String(POLL_WARMUP), String(age)],
      { env: tokenEnv },
    );
    if (res.code !== 0) throw new Error(`http baseline failed: ${res.stderr}`);
    return lastJson(res.stdout);
  };
  const young = await watchRun(0);
  const youngBase = await baselineRun(0);
  log(`item 3: long-lived watch (${POLL_AGE} polls first)`);
  const aged = await watchRun(POLL_AGE);
  const agedBase = await baselineRun(POLL_AGE);
  const sidecar = await sidecarPollCpu();
  const ms = (out) => summarize(out.cpuUs.map((u) => u / 1000));
  return {
    warmup: POLL_WARMUP,
    age: POLL_AGE,
    polls: aged.polls,
    changedPolls: aged.changedPolls + young.changedPolls,
    requestsPerPoll: aged.requests / aged.polls,
    byRoute: aged.byRoute,
    decryptionsPerPoll: aged.decryptions / aged.polls,
    initialDecryptions: young.initialDecryptions,
    cpuMs: ms(aged),
    bareHttpCpuMs: ms(agedBase),
    young: {
      requestsPerPoll: young.requests / young.polls,
      decryptionsPerPoll: young.decryptions / young.polls,
      cpuMs: ms(young),
      bareHttpCpuMs: ms(youngBase),
    },
    sidecar,
    raw: { aged, young },
  };
}

/** Item 3, for context: CPU per no-change poll of the CLI sidecar (its own V8 settings), from /proc/PID/stat. */
async function sidecarPollCpu() {
  log('item 3: sidecar polls');
  const p = startNode([...CLI, ...sidecarArgs('Large', '200ms', '--out', join(work, 'poll-sidecar'))], {
    env: tokenEnv,
  });
  try {
    await p.waitLine((l) => l.msg === 'ready', 60_000);
    await sleep(10_000);
    await emu.control.clearRequests();
    const cpu0 = cpuMsOf(p.child.pid);
    await sleep(SIDECAR_POLL_S * 1000);
    const cpu = cpuMsOf(p.child.pid) - cpu0;
    const polls = (await emu.control.requests()).filter((r) => r.route === 'tokens').length;
    return { polls, cpuMsPerPoll: cpu / polls, seconds: SIDECAR_POLL_S };
  } finally {
    p.child.kill('SIGTERM');
    await new Promise((resolve) => (p.child.exitCode !== null ? resolve() : p.child.once('exit', resolve)));
  }
}

/** Item 4: cold start of `phasekit once` (100 secrets) vs the official client's script vs bare node. */
async function coldStart() {
  const rounds = ROUNDS ? Math.max(ROUNDS, 15) : 20;
  log(`item 4: cold start, ${rounds} rounds`);
  let k = 0;
  const contenders = {
    'phasekit once': () => {
      const out = join(work, `once-${k++}`);
      return {
        args: [
          ...CLI,
          'once',
          '--host',
          emu.url,
          '--app',
          'bench',
          '--env',
          'Small',
          '--out',
          out,
          '--log-level',
          'warn',
        ],
        check: () =>
          existsSync(join(out, '.env')) &&
          readFileSync(join(out, '.env'), 'utf8').trim().split('\n').length === 100,
      };
    },
    'official script': () => {
      const out = join(work, `official-${k++}.env`);
      return {
        args: [join(BENCH, 'official-dotenv.cjs'), emu.url, emu.appId, 'Small', out],
        check: () => existsSync(out) && readFileSync(out, 'utf8').trim().split('\n').length === 100,
      };
    },
    'node -e 0': () => ({ args: ['-e', '0'], check: () => true }),
    // Loading the CLI bundle and printing its help: how much of `once` is start-up rather than work.
    'phasekit --help (load only)': () => ({ args: [...CLI, '--help'], check: () => true }),
  };
  const ms = Object.fromEntries(Object.keys(contenders).map((n) => [n, []]));
  for (let r = -1; r < rounds; r++) {
    for (const name of shuffled(Object.keys(contenders))) {
      const { args, check } = contenders[name]();
      const res = await retryOnce(() => runNode(args, { env: tokenEnv, cwd: work }), name);
      if (res.code !== 0 || !check())
        throw new Error(`${name} failed (exit ${res.code}): ${res.stderr.slice(-2000)}`);
      if (r >= 0) ms[name].push(res.ms); // round -1 warms the page cache
    }
  }
  return {
    rounds,
    ms: Object.fromEntries(Object.entries(ms).map(([n, v]) => [n, summarize(v)])),
    raw: ms,
    go: await goCli(),
  };
}

/** Tries to get Phase's Go CLI from the Go module proxy (and only from there). */
async function goCli() {
  const { spawnSync } = await import('node:child_process');
  const which = spawnSync('sh', ['-c', 'command -v go'], { encoding: 'utf8' });
  if (which.status !== 0) return { ok: false, why: 'no Go toolchain on this machine' };
  const attempts = [];
  for (const mod of ['github.com/phasehq/cli', 'github.com/phasehq/cli/src']) {
    const r = spawnSync('go', ['list', '-m', '-versions', mod], {
      encoding: 'utf8',
      timeout: 60_000,
      cwd: work,
    });
    const text = `${r.stdout}${r.stderr}`.trim().split('\n').slice(-2).join(' ');
    attempts.push({ module: mod, status: r.status, output: text });
    if (r.status === 0) {
      // A listing works: try the install with a time bound.
      const i = spawnSync('go', ['install', `${mod}@latest`], {
        encoding: 'utf8',
        timeout: 300_000,
        cwd: work,
        env: { ...process.env, GOFLAGS: '-mod=mod', GOBIN: join(work, 'gobin') },
      });
      attempts.push({
        module: `${mod}@latest (install)`,
        status: i.status,
        output: `${i.stdout}${i.stderr}`.trim().slice(-500),
      });
      if (i.status === 0) return { ok: true, attempts, note: 'built; not yet wired into the timing loop' };
    }
  }
  return { ok: false, attempts, why: 'the Go module proxy does not serve the Phase CLI module here' };
}

/** Item 5: sidecar resident memory over a soak, vs an idle node process. */
async function soak() {
  log(`item 5: soak for ${SOAK_S} s`);
  const base = sidecarArgs('Soak', '1s', '--health-addr', '127.0.0.1:0');
  const contenders = {
    idle: startNode(['-e', 'setInterval(()=>{},1000)']),
    sidecar: startNode([...CLI, ...base, '--out', join(work, 'soak-default')], { env: tokenEnv }),
    // The same bundle without the ENTRYPOINT's V8 flags: what they buy.
    "sidecar, Node's default V8 settings": startNode(
      [ENTRY, ...base, '--out', join(work, 'soak-v8-defaults')],
      {
        env: tokenEnv,
      },
    ),
    'sidecar, WASM backend': startNode(
      ['-r', join(BENCH, 'no-native.cjs'), ...CLI, ...base, '--out', join(work, 'soak-wasm')],
      {
        env: tokenEnv,
      },
    ),
    // What the HTTP client alone costs, to read the sidecar rows against: an idle node (the ENTRYPOINT's flags) that
    // made one HTTPS request to the emulator through undici's public entry point, as the SDK does, and one that made
    // it through node:https.
    [CLIENT_ONLY.undici]: startNode([
      ...ENTRYPOINT_FLAGS,
      '-e',
      `const u = require(${JSON.stringify(UNDICI)}); globalThis.agent = new u.EnvHttpProxyAgent();
       u.request(${JSON.stringify(emu.url)}, { dispatcher: globalThis.agent }).then((r) => r.body.dump(), () => {});
       setInterval(() => {}, 1000);`,
    ]),
    [CLIENT_ONLY.https]: startNode([
      ...ENTRYPOINT_FLAGS,
      '-e',
      `require('node:https').get(${JSON.stringify(emu.url)}, (r) => r.resume()).on('error', () => {});
       setInterval(() => {}, 1000);`,
    ]),
  };
  const sidecars = Object.entries(contenders).filter(
    ([n]) => n !== 'idle' && !Object.values(CLIENT_ONLY).includes(n),
  );
  try {
    await Promise.all(sidecars.map(([, p]) => p.waitLine((l) => l.msg === 'ready', 60_000)));
    const health = contenders.sidecar.lines.find((l) => l.msg === 'health server listening')?.url;
    const samples = Object.fromEntries(Object.keys(contenders).map((n) => [n, []]));
    let changes = 0;
    const t0 = Date.now();
    for (let s = 0; s <= SOAK_S; s++) {
      const t = (Date.now() - t0) / 1000;
      for (const [n, p] of Object.entries(contenders)) samples[n].push([t, rssKiB(p.child.pid) / 1024]);
      if (s > 0 && s % 10 === 0 && s < SOAK_S) {
        changes++;
        await emu.control.setSecret({
          app: 'bench',
          env: 'Soak',
          key: `SOAK_KEY_${String(changes % 1000).padStart(4, '0')}`,
          value: `changed-${changes}-${Date.now()}`,
        });
      }
      await sleep(Math.max(0, t0 + (s + 1) * 1000 - Date.now()));
    }
    let metrics = '';
    if (health) {
      try {
        metrics = await (await fetch(`${health}/metrics`)).text();
      } catch {
        metrics = '';
      }
    }
    const updates = Object.fromEntries(
      sidecars.map(([n, p]) => [n, p.lines.filter((l) => l.msg === 'snapshot updated').length]),
    );
    const out = {};
    for (const [n, points] of Object.entries(samples)) {
      const ys = points.map((p) => p[1]);
      const half = Math.floor(points.length / 2);
      // Retained memory: the minimum of each 20 s window (after the GC troughs), and its trend.
      const windows = [];
      for (let i = 0; i + 20 <= points.length; i += 20) {
        const w = points.slice(i, i + 20);
        const low = w.reduce((a, b) => (b[1] < a[1] ? b : a));
        windows.push(low);
      }
      out[n] = {
        start: ys[0],
        end: ys[ys.length - 1],
        max: Math.max(...ys),
        median: summarize(ys).median,
        slopeMBperMin: slope(
          points.map((p) => p[0] / 60),
          ys,
        ),
        slopeSecondHalfMBperMin: slope(
          points.slice(half).map((p) => p[0] / 60),
          ys.slice(half),
        ),
        windowMinima: windows.map((w) => w[1]),
        slopeMinimaMBperMin: slope(
          windows.map((w) => w[0] / 60),
          windows.map((w) => w[1]),
        ),
        points,
      };
    }
    const metric = (name) => {
      const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(metrics);
      return m ? Number(m[1]) : undefined;
    };
    return {
      seconds: SOAK_S,
      changes,
      updates,
      rss: out,
      // The sidecar's default metrics carry its `phasekit_` prefix.
      sidecarHeapMB:
        metric('phasekit_nodejs_heap_size_used_bytes') !== undefined
          ? metric('phasekit_nodejs_heap_size_used_bytes') / 1048576
          : undefined,
      sidecarExternalMB:
        metric('phasekit_nodejs_external_memory_bytes') !== undefined
          ? metric('phasekit_nodejs_external_memory_bytes') / 1048576
          : undefined,
      defaultMetrics: /phasekit_nodejs_heap_size_used_bytes/.test(metrics),
    };
  } finally {
    await Promise.all(Object.values(contenders).map((p) => p.stop()));
  }
}

/** Item 6: emulator change -> snapshot flip -> SIGHUP received by the app. */
async function propagation() {
  const variants = [
    { name: 'default (--notify-debounce 1s)', extra: [] },
    { name: '--notify-debounce 0', extra: ['--notify-debounce', '0'] },
  ];
  const out = {};
  for (const variant of variants) {
    log(`item 6: propagation, ${CHANGES} changes, ${variant.name}`);
    out[variant.name] = await propagationRun(variant.extra, variant.name.replace(/[^a-z0-9]+/gi, '-'));
  }
  return out;
}

async function propagationRun(extra, tag) {
  const pidfile = join(work, `app-${tag}.pid`);
  const app = startNode([join(BENCH, 'signal-app.cjs'), pidfile]);
  const hups = [];
  app.onStdout = () => {
    for (const line of app.stdout.split('\n')) {
      const m = /^HUP (\d+) (\d+)$/.exec(line);
      if (m && !hups.some((h) => h.n === Number(m[1]))) hups.push({ n: Number(m[1]), at: Number(m[2]) });
    }
  };
  await waitUntil(() => app.stdout.includes('ready\n'), 10_000, 'the app to start');
  const sidecar = startNode(
    [
      ...CLI,
      ...sidecarArgs('Prop', '1s'),
      '--out',
      join(work, `prop-${tag}`),
      '--notify-signal',
      'SIGHUP',
      '--notify-pidfile',
      pidfile,
      '--health-addr',
      '127.0.0.1:0',
      ...extra,
    ],
    { env: tokenEnv },
  );
  const snapshotFlip = [];
  sidecar.onLine = (line) => {
    if (line.msg === 'snapshot updated')
      snapshotFlip.push({ version: line.version, at: Date.parse(line.time) });
  };
  try {
    await sidecar.waitLine((l) => l.msg === 'ready', 60_000);
    await sleep(1500);
    const samples = [];
    let lost = 0;
    for (let i = 0; i < CHANGES; i++) {
      const before = { hups: hups.length, flips: snapshotFlip.length };
      // Land the change at a random phase of the poll interval.
      await sleep(Math.random() * 1000);
      const at = Date.now();
      await emu.control.setSecret({
        app: 'bench',
        env: 'Prop',
        key: `PROP_KEY_${String(i % 1000).padStart(4, '0')}`,
        value: `changed-${i}-${at}`,
      });
      try {
        await waitUntil(
          () => hups.length > before.hups && snapshotFlip.length > before.flips,
          15_000,
          `change ${i}`,
        );
      } catch {
        lost++;
        continue;
      }
      samples.push({ flipMs: snapshotFlip[before.flips].at - at, signalMs: hups[before.hups].at - at });
    }
    let syncSeconds;
    const health = sidecar.lines.find((l) => l.msg === 'health server listening')?.url;
    if (health) {
      try {
        const text = await (await fetch(`${health}/metrics`)).text();
        const sum = /^phasekit_sync_duration_seconds_sum(?:\{[^}]*\})? ([0-9.e+-]+)$/m.exec(text);
        const count = /^phasekit_sync_duration_seconds_count(?:\{[^}]*\})? ([0-9.e+-]+)$/m.exec(text);
        if (sum && count) syncSeconds = { sum: Number(sum[1]), count: Number(count[1]) };
      } catch {
        syncSeconds = undefined;
      }
    }
    return {
      syncSeconds,
      changes: CHANGES,
      lost,
      flip: summarize(samples.map((s) => s.flipMs)),
      signal: summarize(samples.map((s) => s.signalMs)),
      raw: samples,
    };
  } finally {
    await sidecar.stop();
    await app.stop();
  }
}

/** Runs a sample again once after a failure (another engineer's rebuild can briefly remove packages/sdk/dist). */
async function retryOnce(run, what) {
  const first = await run();
  if (first.code === 0) return first;
  log(
    `${what} failed (exit ${first.code}); retrying once in 3 s: ${first.stderr.trim().split('\n').slice(-1)[0]}`,
  );
  await sleep(3000);
  return run();
}

async function waitUntil(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
