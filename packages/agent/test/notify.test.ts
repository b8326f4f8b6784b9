import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentError } from '../src/errors.js';
import {
  type ChangeEvent,
  type DeliveryFailure,
  type KillFn,
  type Notifier,
  type NotifyReport,
  createNotifier,
} from '../src/notify.js';

const CANARY = 'canary-value-4f9e1c7d';

interface LogEntry {
  level: string;
  obj: object;
  msg: string;
}

function captureLogger() {
  const entries: LogEntry[] = [];
  const at = (level: string) => (obj: object, msg: string) => void entries.push({ level, obj, msg });
  return { entries, logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } };
}

function event(version: number, changes: Partial<ChangeEvent> = {}): ChangeEvent {
  return { version, added: [], removed: [], changed: [], ...changes };
}

function failureOf(report: NotifyReport, index = 0): DeliveryFailure {
  const result = report.results[index];
  if (result === undefined || result.ok) throw new Error(`expected a failure, got ${JSON.stringify(result)}`);
  return result;
}

let dir: string;
const children: ChildProcess[] = [];
const notifiers: Notifier[] = [];
const servers: Server[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'phasekit-notify-'));
});

afterEach(async () => {
  await Promise.all(notifiers.splice(0).map((n) => n.close()));
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    ),
  );
  await rm(dir, { recursive: true, force: true });
});

function track(notifier: Notifier): Notifier {
  notifiers.push(notifier);
  return notifier;
}

/** A stand-in app: writes its pid file (optional), prints one line per SIGHUP or SIGUSR1 it receives. */
async function startApp(options: { pidfile?: string; title?: string } = {}) {
  const script = [
    options.title === undefined ? '' : `process.title = ${JSON.stringify(options.title)};`,
    "for (const s of ['SIGHUP', 'SIGUSR1']) process.on(s, () => console.log(s));",
    options.pidfile === undefined
      ? ''
      : `require('fs').writeFileSync(${JSON.stringify(options.pidfile)}, process.pid + '\\n');`,
    "console.log('ready');",
    'setInterval(() => {}, 1000);',
  ].join('\n');
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    waiters.splice(0).forEach((wake) => wake());
  });
  const waitFor = async (predicate: (lines: string[]) => boolean, timeoutMs = 5000) => {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(lines)) {
      if (Date.now() > deadline) throw new Error(`timed out; app printed ${JSON.stringify(lines)}`);
      await Promise.race([new Promise<void>((wake) => waiters.push(wake)), delay(50)]);
    }
  };
  await waitFor((l) => l.includes('ready'));
  return {
    pid: child.pid!,
    child,
    signals: () => lines.filter((line) => line !== 'ready'),
    waitForSignals: (count: number) => waitFor((l) => l.filter((line) => line !== 'ready').length >= count),
  };
}

describe('options', () => {
  const { logger } = captureLogger();

  it('validates the signal with the one signal parser, naming the option and a near miss', () => {
    expect(() => createNotifier({ logger, pidfile: '/x', signal: 'hup' })).toThrow(
      /`signal` must be a signal name .*did you mean SIGHUP\?/,
    );
    expect(() => createNotifier({ logger, pidfile: '/x', signal: 'SIGBOGUS' })).toThrow(AgentError);
    expect(() => createNotifier({ logger, pidfile: '/x', signal: 'USR1' })).not.toThrow();
  });

  it('rejects contradictory or malformed targets with a named option', () => {
    const cases: [Parameters<typeof createNotifier>[0], string][] = [
      [{ logger, signal: 'SIGHUP' }, '`signal` needs `pidfile` or `processName` to find the app.'],
      [
        { logger, pidfile: '/a', processName: 'b' },
        'Set either `pidfile` or `processName` to find the app, not both.',
      ],
      [{ logger, processName: 'bin/app' }, 'Expected `processName` to be a program name without `/`.'],
      [{ logger, http: 'not a url' }, 'Expected `http` to be an absolute http:// or https:// URL.'],
      [{ logger, http: 'ftp://x/' }, 'Expected `http` to be an http:// or https:// URL, got ftp://.'],
      [{ logger, exec: [] }, 'Expected `exec` to be a non-empty argv array of strings.'],
      [
        { logger, debounceMs: -1 },
        'Expected `debounceMs` to be a non-negative number of milliseconds, got -1.',
      ],
    ];
    for (const [options, message] of cases) {
      expect(() => createNotifier(options)).toThrow(message);
      try {
        createNotifier(options);
      } catch (error) {
        expect((error as AgentError).code).toBe('NOTIFY_CONFIG');
      }
    }
  });

  it('never echoes URL credentials in errors or targets', async () => {
    const { logger, entries } = captureLogger();
    const notifier = track(
      createNotifier({
        logger,
        http: `http://user:${CANARY}@127.0.0.1:9/hook?token=${CANARY}`,
        debounceMs: 0,
        httpRetryDelayMs: 0,
      }),
    );
    const report = await notifier.notify(event(1, { changed: ['A'] }));
    expect(report.results[0]?.target).toBe('http://127.0.0.1:9/hook');
    expect(JSON.stringify({ report, entries, message: failureOf(report).error.message })).not.toContain(
      CANARY,
    );
  });
});

describe.runIf(process.platform === 'linux')('signal by pid file', () => {
  it('signals an isolated change at once, a burst twice (the rest merged after the window), and never without a change', async () => {
    const pidfile = join(dir, 'app.pid');
    const app = await startApp({ pidfile });
    const { logger, entries } = captureLogger();
    const metrics: [string, string][] = [];
    const debounceMs = 600;
    const notifier = track(
      createNotifier({
        logger,
        pidfile,
        signal: 'SIGHUP',
        debounceMs,
        metrics: (m, r) => metrics.push([m, r]),
      }),
    );

    // Nothing is sent until notify() is called.
    await delay(300);
    expect(app.signals()).toEqual([]);

    // The first change of a burst is signalled at once, not after the window.
    const t0 = performance.now();
    const first = notifier.notify(event(2, { added: ['A'], changed: ['B'] }));
    await app.waitForSignals(1);
    expect(performance.now() - t0).toBeLessThan(debounceMs / 3);
    const firstReport = await first;
    expect(firstReport).toMatchObject({
      version: 2,
      added: ['A'],
      removed: [],
      changed: ['B'],
      cancelled: false,
    });
    expect(firstReport.results).toEqual([
      expect.objectContaining({ method: 'signal', ok: true, target: `pidfile ${pidfile}`, pids: [app.pid] }),
    ]);

    // The rest of the burst is held back for the window, then merged into one signal.
    const second = notifier.notify(event(3, { changed: ['B', 'C'], removed: ['D'] }));
    await delay(40);
    const third = notifier.notify(event(4, { added: ['E'], changed: ['C', 'F'] }));
    await delay(100);
    expect(app.signals()).toEqual(['SIGHUP']);
    const [secondReport, thirdReport] = await Promise.all([second, third]);
    const elapsed = performance.now() - t0;
    expect(secondReport).toBe(thirdReport);
    expect(secondReport).toMatchObject({
      version: 4,
      added: ['E'],
      removed: ['D'],
      changed: ['B', 'C', 'F'],
      cancelled: false,
    });
    expect(secondReport.results).toEqual([expect.objectContaining({ ok: true, pids: [app.pid] })]);
    expect(elapsed).toBeGreaterThanOrEqual(debounceMs - 5); // the window runs from the first signal, after t0
    expect(elapsed).toBeLessThan(debounceMs + 400);
    await app.waitForSignals(2);

    // No third signal: nothing changed after the burst.
    await delay(debounceMs + 200);
    expect(app.signals()).toEqual(['SIGHUP', 'SIGHUP']);
    expect(metrics).toEqual([
      ['signal', 'success'],
      ['signal', 'success'],
    ]);
    expect(entries).toContainEqual(
      expect.objectContaining({
        level: 'info',
        obj: expect.objectContaining({
          method: 'signal',
          result: 'success',
          version: 4,
          added: 1,
          changed: 3,
        }),
      }),
    );

    // An isolated change after the window is signalled at once again, and only once.
    const t1 = performance.now();
    expect(await notifier.notify(event(5, { changed: ['A'] }))).toMatchObject({ version: 5, changed: ['A'] });
    await app.waitForSignals(3);
    expect(performance.now() - t1).toBeLessThan(debounceMs / 3);
    await delay(debounceMs + 200);
    expect(app.signals()).toEqual(['SIGHUP', 'SIGHUP', 'SIGHUP']);
  });

  it('signals every change at once with debounceMs 0', async () => {
    const pidfile = join(dir, 'app.pid');
    const app = await startApp({ pidfile });
    const { logger } = captureLogger();
    const notifier = track(createNotifier({ logger, pidfile, debounceMs: 0 }));
    for (let version = 1; version <= 3; version++) {
      const started = performance.now();
      const report = await notifier.notify(event(version, { changed: [`K${version}`] }));
      expect(report).toMatchObject({ version, changed: [`K${version}`], cancelled: false });
      expect(report.results[0]?.ok).toBe(true);
      await app.waitForSignals(version);
      expect(performance.now() - started).toBeLessThan(200);
    }
    await delay(200);
    expect(app.signals()).toEqual(['SIGHUP', 'SIGHUP', 'SIGHUP']);
  });

  it('re-reads the pid file and sends the configured signal (short form accepted)', async () => {
    const pidfile = join(dir, 'app.pid');
    const { logger } = captureLogger();
    const notifier = track(createNotifier({ logger, pidfile, signal: 'USR1', debounceMs: 10 }));
    const a = await startApp({ pidfile });
    await notifier.notify(event(1, { changed: ['A'] }));
    await a.waitForSignals(1);
    const b = await startApp({ pidfile }); // the app restarted with a new pid
    await notifier.notify(event(2, { changed: ['A'] }));
    await b.waitForSignals(1);
    expect(a.signals()).toEqual(['SIGUSR1']);
    expect(b.signals()).toEqual(['SIGUSR1']);
  });

  it('delivers held-back changes now on flush(), and cancels them on close()', async () => {
    const pidfile = join(dir, 'app.pid');
    const app = await startApp({ pidfile });
    const { logger } = captureLogger();
    const notifier = createNotifier({ logger, pidfile, debounceMs: 60_000 });

    // The first change does not wait for the (long) window.
    const t0 = performance.now();
    const first = await notifier.notify(event(1, { changed: ['A'] }));
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(first).toMatchObject({ version: 1, changed: ['A'], cancelled: false });
    expect(first.results[0]?.ok).toBe(true);
    await app.waitForSignals(1);
    expect(await notifier.flush()).toBeUndefined();

    // Later changes are held back by the window until flush().
    const held = notifier.notify(event(2, { changed: ['B'] }));
    const held2 = notifier.notify(event(3, { added: ['C'] }));
    await delay(200);
    expect(app.signals()).toEqual(['SIGHUP']);
    const flushed = await notifier.flush();
    expect(flushed).toMatchObject({
      version: 3,
      added: ['C'],
      removed: [],
      changed: ['B'],
      cancelled: false,
    });
    expect(flushed?.results[0]?.ok).toBe(true);
    expect(await held).toBe(flushed);
    expect(await held2).toBe(flushed);
    await app.waitForSignals(2);
    expect(await notifier.flush()).toBeUndefined();

    // Held back again (the flushed delivery started a new window), then cancelled.
    const cancelled = notifier.notify(event(4, { changed: ['D'] }));
    await notifier.close();
    expect(await cancelled).toMatchObject({ version: 4, changed: ['D'], cancelled: true, results: [] });
    expect(await notifier.notify(event(5))).toMatchObject({ cancelled: true, results: [] });
    expect(await notifier.flush()).toBeUndefined();
    await delay(200);
    expect(app.signals()).toEqual(['SIGHUP', 'SIGHUP']);
  });

  it('reports a missing pid file without throwing', async () => {
    const { logger, entries } = captureLogger();
    const metrics: [string, string][] = [];
    const pidfile = join(dir, 'missing.pid');
    const notifier = track(
      createNotifier({ logger, pidfile, debounceMs: 0, metrics: (m, r) => metrics.push([m, r]) }),
    );
    const failure = failureOf(await notifier.notify(event(1, { changed: ['A'] })));
    expect(failure.error.code).toBe('NOTIFY_PIDFILE_MISSING');
    expect(failure.error.message).toBe(
      `Pid file ${pidfile} does not exist; has the app started and written it? (In Kubernetes, share the directory through a volume mounted in both containers.)`,
    );
    expect(metrics).toEqual([['signal', 'failure']]);
    expect(entries).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        obj: expect.objectContaining({ method: 'signal', result: 'failure', code: 'NOTIFY_PIDFILE_MISSING' }),
      }),
    );
  });

  it('reports garbage in the pid file without echoing it', async () => {
    const { logger, entries } = captureLogger();
    const pidfile = join(dir, 'app.pid');
    const notifier = track(createNotifier({ logger, pidfile, debounceMs: 0 }));
    for (const content of [`${CANARY}\n`, '1\n', '', '12 34', '-5']) {
      await writeFile(pidfile, content);
      const failure = failureOf(await notifier.notify(event(1)));
      expect(failure.error.code).toBe('NOTIFY_PIDFILE_INVALID');
      expect(failure.error.message).toMatch(
        /does not hold a process id \(expected one integer greater than 1/,
      );
    }
    expect(JSON.stringify(entries)).not.toContain(CANARY);
  });

  it('reports an unreadable pid file', async () => {
    const { logger } = captureLogger();
    const notifier = track(createNotifier({ logger, pidfile: dir, debounceMs: 0 })); // a directory: EISDIR
    const failure = failureOf(await notifier.notify(event(1)));
    expect(failure.error.code).toBe('NOTIFY_PIDFILE_UNREADABLE');
    expect(failure.error.message).toBe(`Cannot read pid file ${dir}: EISDIR.`);
  });

  it('reports a process that is gone (ESRCH)', async () => {
    const gone = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    await once(gone, 'exit');
    const pidfile = join(dir, 'app.pid');
    await writeFile(pidfile, `${gone.pid}\n`);
    const { logger } = captureLogger();
    const notifier = track(createNotifier({ logger, pidfile, debounceMs: 0 }));
    const failure = failureOf(await notifier.notify(event(1)));
    expect(failure.error.code).toBe('NOTIFY_PROCESS_GONE');
    expect(failure.error.message).toBe(
      `Process ${gone.pid} (pid file ${pidfile}) is not running (ESRCH); the pid file may be stale or the app has exited.`,
    );
  });

  it('reports EPERM with a hint about the user and CAP_KILL', async () => {
    const pidfile = join(dir, 'app.pid');
    await writeFile(pidfile, '4242\n');
    const kill: KillFn = () => {
      throw Object.assign(new Error('kill EPERM'), { code: 'EPERM', errno: -1, syscall: 'kill' });
    };
    const { logger } = captureLogger();
    const notifier = track(createNotifier({ logger, pidfile, kill, debounceMs: 0 }));
    const failure = failureOf(await notifier.notify(event(1)));
    expect(failure.error.code).toBe('NOTIFY_NOT_PERMITTED');
    expect(failure.error.message).toBe(
      `Not permitted to send SIGHUP to process 4242 (pid file ${pidfile}) (EPERM): run the agent as the same user as the app (in Kubernetes the same runAsUser) or give it the CAP_KILL capability.`,
    );
  });
});

describe.runIf(process.platform === 'linux')('signal by process name', () => {
  const unique = () => Math.random().toString(36).slice(2, 9);

  it('finds a process by comm (short name) and signals it', async () => {
    const name = `pk${unique()}`; // under 15 characters: /proc/PID/comm holds it whole
    const app = await startApp({ title: name });
    expect((await readFile(`/proc/${app.pid}/comm`, 'utf8')).trim()).toBe(name);
    const { logger } = captureLogger();
    const notifier = track(createNotifier({ logger, processName: name, signal: 'SIGUSR1', debounceMs: 0 }));
    const report = await notifier.notify(event(1, { changed: ['A'] }));
    expect(report.results).toEqual([
      expect.objectContaining({ ok: true, target: `process "${name}"`, pids: [app.pid] }),
    ]);
    await app.waitForSignals(1);
    expect(app.signals()).toEqual(['SIGUSR1']);
  });

  it('finds a long name through argv[0] (comm is cut to 15 characters) and signals every match', async () => {
    const name = `phasekit-test-app-${unique()}`;
    const a = await startApp({ title: name });
    const b = await startApp({ title: name });
    expect((await readFile(`/proc/${a.pid}/comm`, 'utf8')).trim()).toBe(name.slice(0, 15));
    const { logger, entries } = captureLogger();
    const notifier = track(createNotifier({ logger, processName: name, debounceMs: 0 }));
    const report = await notifier.notify(event(1, { changed: ['A'] }));
    expect(report.results[0]).toMatchObject({ ok: true, pids: [a.pid, b.pid].sort((x, y) => x - y) });
    await a.waitForSignals(1);
    await b.waitForSignals(1);
    expect(entries).toContainEqual(
      expect.objectContaining({
        msg: 'several processes match the name; signalling all',
        obj: expect.objectContaining({ count: 2 }),
      }),
    );
  });

  it('hints at shareProcessNamespace when no process matches in /proc', async () => {
    const { logger } = captureLogger();
    const name = `nomatch${unique()}`;
    const notifier = track(createNotifier({ logger, processName: name, debounceMs: 0 }));
    const failure = failureOf(await notifier.notify(event(1)));
    expect(failure.error.code).toBe('NOTIFY_NO_PROCESS');
    expect(failure.error.message).toMatch(
      new RegExp(
        `^No process named "${name}" is visible in /proc \\(\\d+ other processes seen\\)\\. In Kubernetes the app and the agent must share a process namespace: set \`shareProcessNamespace: true\` in the pod spec\\.$`,
      ),
    );
  });
});

describe('signal by process name in a fake /proc', () => {
  async function fakeProc(processes: Record<string, { comm: string; cmdline: string[] }>, self?: string) {
    const root = join(dir, 'proc');
    await mkdir(root);
    for (const [pid, p] of Object.entries(processes)) {
      await mkdir(join(root, pid));
      await writeFile(join(root, pid, 'comm'), `${p.comm}\n`);
      await writeFile(join(root, pid, 'cmdline'), p.cmdline.map((a) => `${a}\0`).join(''));
    }
    await mkdir(join(root, 'sys')); // non-numeric entries are ignored
    if (self !== undefined) await symlink(self, join(root, 'self'));
    return root;
  }

  it('excludes its own pid, and explains shareProcessNamespace when nothing else matches', async () => {
    const procRoot = await fakeProc(
      {
        '1': { comm: 'pause', cmdline: ['/pause'] },
        '7': { comm: 'phasekit', cmdline: ['/usr/bin/phasekit', 'sidecar'] },
      },
      '7',
    );
    const killed: number[] = [];
    const { logger } = captureLogger();
    const notifier = track(
      createNotifier({
        logger,
        processName: 'phasekit',
        procRoot,
        kill: (pid) => void killed.push(pid),
        debounceMs: 0,
      }),
    );
    const failure = failureOf(await notifier.notify(event(1)));
    expect(killed).toEqual([]);
    expect(failure.error.code).toBe('NOTIFY_NO_PROCESS');
    expect(failure.error.message).toBe(
      `No process named "phasekit" is visible in ${procRoot} (1 other processes seen). In Kubernetes the app and the agent must share a process namespace: set \`shareProcessNamespace: true\` in the pod spec.`,
    );
  });

  it('matches comm exactly or the argv[0] base name, nothing looser', async () => {
    const procRoot = await fakeProc({
      '10': { comm: 'node', cmdline: ['/usr/local/bin/my-app', '--port', '80'] },
      '11': { comm: 'my-app', cmdline: [] },
      '12': { comm: 'my-app-worker', cmdline: ['my-app-worker'] },
      '13': { comm: 'bash', cmdline: ['bash', '-c', 'my-app'] },
    });
    const killed: [number, string][] = [];
    const { logger } = captureLogger();
    const notifier = track(
      createNotifier({
        logger,
        processName: 'my-app',
        signal: 'SIGTERM',
        procRoot,
        kill: (pid, sig) => void killed.push([pid, sig]),
        debounceMs: 0,
      }),
    );
    const report = await notifier.notify(event(1));
    expect(report.results[0]).toMatchObject({ ok: true, pids: [10, 11] });
    expect(killed).toEqual([
      [10, 'SIGTERM'],
      [11, 'SIGTERM'],
    ]);
  });

  it('turns EPERM from kill into a typed diagnostic', async () => {
    const procRoot = await fakeProc({ '300': { comm: 'app', cmdline: ['/app'] } });
    const kill: KillFn = () => {
      throw Object.assign(new Error('kill EPERM'), { code: 'EPERM' });
    };
    const { logger } = captureLogger();
    const notifier = track(createNotifier({ logger, processName: 'app', procRoot, kill, debounceMs: 0 }));
    const failure = failureOf(await notifier.notify(event(1)));
    expect(failure.error.code).toBe('NOTIFY_NOT_PERMITTED');
    expect(failure.error.message).toMatch(/EPERM.*same user as the app.*CAP_KILL/);
  });

  it('throttles a continuous stream of changes to one notification per window, the first at once', async () => {
    const procRoot = await fakeProc({ '40': { comm: 'app', cmdline: ['/app'] } });
    const killedAt: number[] = [];
    const { logger } = captureLogger();
    const debounceMs = 200;
    const notifier = track(
      createNotifier({
        logger,
        processName: 'app',
        procRoot,
        kill: () => void killedAt.push(performance.now()),
        debounceMs,
      }),
    );
    const start = performance.now();
    const pending: Promise<NotifyReport>[] = [];
    const names: string[] = [];
    for (let version = 1; performance.now() - start < 700; version++) {
      names.push(`K${version}`);
      pending.push(notifier.notify(event(version, { changed: [`K${version}`] })));
      await delay(30);
    }
    const reports = await Promise.all(pending);
    expect(killedAt[0]! - start).toBeLessThan(100);
    for (let i = 1; i < killedAt.length; i++) {
      expect(killedAt[i]! - killedAt[i - 1]!).toBeGreaterThanOrEqual(debounceMs - 20);
    }
    // Starts at 0, 200, 400 and 600 ms, then one more for the changes after the last of them.
    expect(killedAt.length).toBeGreaterThanOrEqual(3);
    expect(killedAt.length).toBeLessThanOrEqual(5);
    const distinct = [...new Set(reports)];
    expect(distinct).toHaveLength(killedAt.length);
    // Every change was delivered exactly once, the last with the latest version.
    expect(distinct.flatMap((r) => r.changed)).toEqual(names);
    expect(reports.at(-1)?.version).toBe(names.length);
  });

  it('succeeds when at least one of several matches could be signalled', async () => {
    const procRoot = await fakeProc({
      '20': { comm: 'nginx', cmdline: ['nginx: master process /usr/sbin/nginx'] },
      '21': { comm: 'nginx', cmdline: ['nginx: worker process'] },
    });
    const kill: KillFn = (pid) => {
      if (pid === 21) throw Object.assign(new Error('kill EPERM'), { code: 'EPERM' });
    };
    const { logger, entries } = captureLogger();
    const notifier = track(createNotifier({ logger, processName: 'nginx', procRoot, kill, debounceMs: 0 }));
    const report = await notifier.notify(event(1));
    expect(report.results[0]).toMatchObject({ ok: true, pids: [20] });
    expect(entries).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        obj: expect.objectContaining({ pid: 21, code: 'NOTIFY_NOT_PERMITTED' }),
      }),
    );
  });
});

describe('HTTP hook', () => {
  interface Received {
    method: string | undefined;
    contentType: string | undefined;
    body: string;
  }

  async function startServer(reply: (req: IncomingMessage, res: ServerResponse, count: number) => void) {
    const received: Received[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        received.push({ method: req.method, contentType: req.headers['content-type'], body });
        reply(req, res, received.length);
      });
    });
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    return { url: `http://127.0.0.1:${port}/reload`, received };
  }

  it('POSTs the first change of a burst at once and the rest merged after the window, and nothing else', async () => {
    const { url, received } = await startServer((_req, res) => res.writeHead(204).end());
    const { logger, entries } = captureLogger();
    const metrics: [string, string][] = [];
    const notifier = track(
      createNotifier({
        logger,
        http: url,
        debounceMs: 150,
        env: { PHASE_SERVICE_TOKEN: CANARY },
        metrics: (m, r) => metrics.push([m, r]),
      }),
    );
    const first = await notifier.notify(event(7, { added: ['NEW_KEY'], changed: ['DATABASE_URL'] }));
    expect(received).toHaveLength(1);
    const [report] = await Promise.all([
      notifier.notify(event(8, { removed: ['OLD_KEY'], changed: ['DATABASE_URL', 'API_KEY'] })),
      notifier.notify(event(9, { changed: ['API_KEY'] })),
    ]);
    expect(received).toHaveLength(2);
    for (const call of received) {
      expect(call.method).toBe('POST');
      expect(call.contentType).toBe('application/json');
    }
    const bodies = received.map((call) => JSON.parse(call.body) as Record<string, unknown>);
    expect(Object.keys(bodies[1]!).sort()).toEqual(['added', 'changed', 'removed', 'version']);
    expect(bodies).toEqual([
      { version: 7, added: ['NEW_KEY'], removed: [], changed: ['DATABASE_URL'] },
      { version: 9, added: [], removed: ['OLD_KEY'], changed: ['DATABASE_URL', 'API_KEY'] },
    ]);
    for (const r of [first, report]) {
      expect(r.results).toEqual([
        expect.objectContaining({ method: 'http', ok: true, status: 204, target: url }),
      ]);
    }
    await delay(300);
    expect(received).toHaveLength(2);
    expect(metrics).toEqual([
      ['http', 'success'],
      ['http', 'success'],
    ]);
    expect(JSON.stringify({ received, entries, report })).not.toContain(CANARY);
  });

  it('sends URL credentials as Basic authorization, and keeps them out of logs', async () => {
    const auth: (string | undefined)[] = [];
    const { url, received } = await startServer((req, res) => {
      auth.push(req.headers.authorization);
      res.writeHead(200).end();
    });
    const { logger, entries } = captureLogger();
    const withCredentials = url.replace('http://', `http://hook:${CANARY}@`);
    const notifier = track(createNotifier({ logger, http: withCredentials, debounceMs: 0 }));
    const report = await notifier.notify(event(1));
    expect(report.results[0]).toMatchObject({ ok: true, target: url });
    expect(received).toHaveLength(1);
    expect(auth).toEqual([`Basic ${Buffer.from(`hook:${CANARY}`).toString('base64')}`]);
    expect(JSON.stringify({ entries, report })).not.toContain(CANARY);
  });

  it('retries once on a 5xx, then reports the failure', async () => {
    const { url, received } = await startServer((_req, res) => res.writeHead(503).end('busy'));
    const { logger } = captureLogger();
    const metrics: [string, string][] = [];
    const notifier = track(
      createNotifier({
        logger,
        http: url,
        debounceMs: 0,
        httpRetryDelayMs: 10,
        metrics: (m, r) => metrics.push([m, r]),
      }),
    );
    const failure = failureOf(await notifier.notify(event(1, { changed: ['A'] })));
    expect(received).toHaveLength(2);
    expect(failure.error.code).toBe('NOTIFY_HTTP_STATUS');
    expect(failure.error.message).toBe(`HTTP hook ${url} answered 503.`);
    expect(metrics).toEqual([['http', 'failure']]);
  });

  it('succeeds when the retry succeeds, and does not retry a 4xx', async () => {
    const flaky = await startServer((_req, res, count) => res.writeHead(count === 1 ? 500 : 200).end());
    const { logger } = captureLogger();
    const notifier = track(createNotifier({ logger, http: flaky.url, debounceMs: 0, httpRetryDelayMs: 10 }));
    expect((await notifier.notify(event(1))).results[0]).toMatchObject({ ok: true, status: 200 });
    expect(flaky.received).toHaveLength(2);

    const missing = await startServer((_req, res) => res.writeHead(404).end());
    const other = track(createNotifier({ logger, http: missing.url, debounceMs: 0, httpRetryDelayMs: 10 }));
    expect(failureOf(await other.notify(event(1))).error.message).toBe(
      `HTTP hook ${missing.url} answered 404.`,
    );
    expect(missing.received).toHaveLength(1);
  });

  it('times out a hook that never answers', async () => {
    const { url, received } = await startServer(() => undefined);
    const { logger } = captureLogger();
    const notifier = track(
      createNotifier({ logger, http: url, debounceMs: 0, httpTimeoutMs: 100, httpRetryDelayMs: 10 }),
    );
    const failure = failureOf(await notifier.notify(event(1)));
    expect(failure.error.code).toBe('NOTIFY_HTTP_FAILED');
    expect(failure.error.message).toBe(`HTTP hook ${url} failed: no answer within 100 ms.`);
    expect(received).toHaveLength(2);
  });

  it('reports a refused connection', async () => {
    const { url } = await startServer((_req, res) => res.end());
    await new Promise<void>((resolve) => servers.pop()!.close(() => resolve()));
    const { logger } = captureLogger();
    const notifier = track(createNotifier({ logger, http: url, debounceMs: 0, httpRetryDelayMs: 10 }));
    const failure = failureOf(await notifier.notify(event(1)));
    expect(failure.error.message).toBe(`HTTP hook ${url} failed: ECONNREFUSED.`);
  });
});

describe('exec hook', () => {
  const dumpEnv = "require('fs').writeFileSync(process.argv[1], JSON.stringify(process.env))";

  it('runs argv without a shell, with the agent env and the change names', async () => {
    const out = join(dir, 'env.json');
    const { logger, entries } = captureLogger();
    const metrics: [string, string][] = [];
    const notifier = track(
      createNotifier({
        logger,
        exec: [process.execPath, '-e', dumpEnv, out],
        env: { FROM_AGENT: 'yes', PHASE_SERVICE_TOKEN: CANARY, UNSET: undefined },
        debounceMs: 20,
        metrics: (m, r) => metrics.push([m, r]),
      }),
    );
    const [report] = await Promise.all([
      notifier.notify(event(3, { added: ['NEW'], changed: ['A'] })),
      notifier.notify(event(4, { changed: ['B'], removed: ['GONE'] })),
    ]);
    expect(report.results).toEqual([
      expect.objectContaining({ method: 'exec', ok: true, target: process.execPath }),
    ]);
    const env = JSON.parse(await readFile(out, 'utf8'));
    expect(env).toMatchObject({
      FROM_AGENT: 'yes',
      PHASEKIT_VERSION: '4',
      PHASEKIT_CHANGED: 'A,B',
      PHASEKIT_ADDED: 'NEW',
      PHASEKIT_REMOVED: 'GONE',
    });
    expect(env).not.toHaveProperty('PHASE_SERVICE_TOKEN');
    expect(env).not.toHaveProperty('UNSET');
    expect(metrics).toEqual([['exec', 'success']]);
    expect(JSON.stringify({ entries, report })).not.toContain(CANARY);
  });

  it('passes shell metacharacters through as plain arguments', async () => {
    const out = join(dir, 'argv.json');
    const { logger } = captureLogger();
    const notifier = track(
      createNotifier({
        logger,
        exec: [
          process.execPath,
          '-e',
          "require('fs').writeFileSync(process.argv[1], JSON.stringify(process.argv.slice(2)))",
          out,
          '$HOME; echo hi',
          '`id`',
        ],
        debounceMs: 0,
      }),
    );
    await notifier.notify(event(1));
    expect(JSON.parse(await readFile(out, 'utf8'))).toEqual(['$HOME; echo hi', '`id`']);
  });

  it('reports a non-zero exit, a missing command and a timeout', async () => {
    const { logger } = captureLogger();
    const failing = track(
      createNotifier({ logger, exec: [process.execPath, '-e', 'process.exit(3)'], debounceMs: 0 }),
    );
    const exit = failureOf(await failing.notify(event(1)));
    expect(exit.error.code).toBe('NOTIFY_EXEC_EXIT');
    expect(exit.error.message).toBe(`Exec hook ${process.execPath} exited with code 3.`);

    const missingCommand = join(dir, 'no-such-command');
    const missing = track(createNotifier({ logger, exec: [missingCommand], debounceMs: 0 }));
    const notFound = failureOf(await missing.notify(event(1)));
    expect(notFound.error.code).toBe('NOTIFY_EXEC_FAILED');
    expect(notFound.error.message).toBe(
      `Cannot start exec hook ${missingCommand}: ENOENT (command not found).`,
    );

    const slow = track(
      createNotifier({
        logger,
        exec: [process.execPath, '-e', 'setTimeout(() => {}, 60000)'],
        execTimeoutMs: 200,
        debounceMs: 0,
      }),
    );
    const timedOut = failureOf(await slow.notify(event(1)));
    expect(timedOut.error.code).toBe('NOTIFY_EXEC_TIMEOUT');
    expect(timedOut.error.message).toBe(
      `Exec hook ${process.execPath} ran longer than 200 ms and was stopped.`,
    );
  });

  it('merges changes that arrive during a delivery into one delivery right after it, never overlapping', async () => {
    const out = join(dir, 'runs');
    const hook = [
      "const fs = require('fs');",
      "const run = process.env.PHASEKIT_VERSION + ' ' + process.env.PHASEKIT_CHANGED;",
      "fs.appendFileSync(process.argv[1], 'start ' + run + '\\n');",
      "setTimeout(() => fs.appendFileSync(process.argv[1], 'end ' + run + '\\n'), 400);",
    ].join('\n');
    const { logger } = captureLogger();
    const notifier = track(
      createNotifier({ logger, exec: [process.execPath, '-e', hook, out], debounceMs: 100 }),
    );
    const first = notifier.notify(event(1, { changed: ['A'] }));
    await delay(150); // the window is over, the hook still runs
    const second = notifier.notify(event(2, { changed: ['B'] }));
    await delay(30);
    const third = notifier.notify(event(3, { changed: ['C'] }));
    const [r1, r2, r3] = await Promise.all([first, second, third]);
    expect(r1).toMatchObject({ version: 1, changed: ['A'] });
    expect(r2).toBe(r3);
    expect(r2).toMatchObject({ version: 3, changed: ['B', 'C'], cancelled: false });
    expect(r2.results[0]?.ok).toBe(true);
    expect((await readFile(out, 'utf8')).trim().split('\n')).toEqual([
      'start 1 A',
      'end 1 A',
      'start 3 B,C',
      'end 3 B,C',
    ]);
  });

  it('flush() waits for the delivery in flight when nothing is held back; close() aborts it', async () => {
    const out = join(dir, 'ran');
    const { logger } = captureLogger();
    const quick = track(
      createNotifier({
        logger,
        exec: [
          process.execPath,
          '-e',
          "setTimeout(() => require('fs').writeFileSync(process.argv[1], 'x'), 300)",
          out,
        ],
        debounceMs: 0,
      }),
    );
    const order: string[] = [];
    const delivered = quick.notify(event(1)).then((r) => (order.push('delivered'), r));
    await delay(50); // the delivery has started
    expect(await quick.flush()).toBeUndefined();
    order.push('flushed');
    expect(order).toEqual(['delivered', 'flushed']);
    expect((await delivered).results[0]?.ok).toBe(true);
    expect(await readFile(out, 'utf8')).toBe('x');

    const slow = createNotifier({
      logger,
      exec: [process.execPath, '-e', 'setTimeout(() => {}, 60000)'],
      debounceMs: 0,
    });
    const inFlight = slow.notify(event(1, { changed: ['A'] }));
    await delay(100);
    const held = slow.notify(event(2, { changed: ['B'] }));
    const closeStarted = performance.now();
    await slow.close();
    expect(performance.now() - closeStarted).toBeLessThan(2000);
    expect(await held).toMatchObject({ version: 2, cancelled: true, results: [] });
    const aborted = failureOf(await inFlight);
    expect(aborted.error.code).toBe('NOTIFY_ABORTED');
  });

  it('delivers each burst to every configured target', async () => {
    const out = join(dir, 'ran');
    const pidfile = join(dir, 'missing.pid');
    const { logger } = captureLogger();
    const metrics: [string, string][] = [];
    const notifier = track(
      createNotifier({
        logger,
        pidfile,
        exec: [process.execPath, '-e', "require('fs').appendFileSync(process.argv[1], 'x')", out],
        debounceMs: 0,
        metrics: (m, r) => metrics.push([m, r]),
      }),
    );
    const report = await notifier.notify(event(1));
    expect(report.results.map((r) => [r.method, r.ok])).toEqual([
      ['signal', false],
      ['exec', true],
    ]);
    expect(metrics.sort()).toEqual([
      ['exec', 'success'],
      ['signal', 'failure'],
    ]);
    expect(await readFile(out, 'utf8')).toBe('x');
  });
});
