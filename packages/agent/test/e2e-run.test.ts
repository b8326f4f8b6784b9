// Process-level acceptance tests of `phasekit run` (issue 3): argv kept exactly (no shell), the secrets in the
// child's environment and the token not, the exit code and SIGTERM passed through, and --on-change restart.
import { expect, it } from 'vitest';
import { runCli, spawnCli, waitFor } from './helpers/cli.js';
import { APP, CANARY, ENV, TRICKY, itLeaksNothing, setMarker, useSeededEmulator } from './helpers/fixture.js';

const fixture = useSeededEmulator('run');
const { needles } = fixture;

const runArgs = (extra: string[], command: string[]) => [
  'run',
  '--host',
  fixture.emu.url,
  '--app',
  APP,
  '--env',
  ENV,
  ...extra,
  '--',
  ...command,
];
// The child's stdout is phasekit's stdout: it legitimately carries values.
const opts = () => ({ token: fixture.emu.tokens.serviceAccount, stdoutCarriesValues: true });

it('passes arguments with spaces and quotes intact, without a shell', async () => {
  const args = ['a b', "c'd", 'e"f', '$HOME', '', '*', '; echo pwned'];
  const r = await runCli(
    runArgs(
      [],
      [process.execPath, '-e', 'process.stdout.write(JSON.stringify(process.argv.slice(1)))', '--', ...args],
    ),
    opts(),
  );
  expect(r.code, r.stderr).toBe(0);
  expect(JSON.parse(r.stdout)).toEqual(args);
});

it('puts the secrets in the environment and keeps PHASE_SERVICE_TOKEN out of it', async () => {
  const script = `process.stdout.write(JSON.stringify({
    k: process.env.K07, canary: process.env.CANARY_SECRET, tricky: process.env.TRICKY,
    token: process.env.PHASE_SERVICE_TOKEN ?? null,
    leaked: Object.entries(process.env).filter(([, v]) => v && v.includes(${JSON.stringify(fixture.emu.tokens.serviceAccount.split(':')[2])})).map(([k]) => k),
    kept: process.env.KEPT_VAR ?? null,
  }))`;
  const r = await runCli(runArgs([], [process.execPath, '-e', script]), {
    ...opts(),
    env: { KEPT_VAR: 'kept' },
  });
  expect(r.code, r.stderr).toBe(0);
  expect(JSON.parse(r.stdout)).toEqual({
    k: 'value-7:M0',
    canary: CANARY,
    tricky: TRICKY,
    token: null,
    leaked: [],
    kept: 'kept',
  });
});

it("passes the child's exit code through (42) and reports a signal death as 128+N", async () => {
  const r = await runCli(runArgs([], [process.execPath, '-e', 'process.exit(42)']), opts());
  expect(r.code, r.stderr).toBe(42);
  const killed = await runCli(
    runArgs([], [process.execPath, '-e', "process.kill(process.pid, 'SIGKILL')"]),
    opts(),
  );
  expect(killed.code, killed.stderr).toBe(137);
});

it('fails (non-zero, naming ENOENT) when the command does not exist, without running a shell', async () => {
  const r = await runCli(runArgs([], ['/nonexistent/definitely-not-here', 'x']), opts());
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain('ENOENT');
});

it('forwards SIGTERM to the child and exits with its code', async () => {
  const script = `
    process.on('SIGTERM', () => { process.stdout.write('got SIGTERM\\n'); process.exit(3); });
    process.stdout.write('started\\n');
    setInterval(() => {}, 1000);`;
  const proc = spawnCli(runArgs([], [process.execPath, '-e', script]), opts());
  await waitFor(() => proc.stdout.includes('started\n'), 'the child to start');
  const { code, ms } = await proc.stop();
  expect(proc.stdout).toContain('got SIGTERM');
  expect(code).toBe(3);
  expect(ms).toBeLessThan(5_000);
});

it('SIGTERM before the child started (Phase slow) stops within 5 s and never starts the child', async () => {
  for (const extra of [[], ['--interval', '100ms', '--on-change', 'restart']]) {
    fixture.emu.fault({ route: 'any', delayMs: 8_000 });
    try {
      const proc = spawnCli(
        runArgs(extra, [process.execPath, '-e', "process.stdout.write('child ran')"]),
        opts(),
      );
      await waitFor(() => fixture.emu.requests().some((r) => r.faulted), 'the first (slow) request');
      const { code, ms } = await proc.stop();
      expect(ms, `phasekit run ${extra.join(' ')} ignored SIGTERM`).toBeLessThan(5_000);
      expect(proc.stdout).not.toContain('child ran');
      expect(code).toBe(143);
    } finally {
      fixture.emu.clearFaults();
      fixture.emu.clearRequests();
    }
  }
});

it('SIGTERM during an --on-change restart ends the run instead of starting a new child', async () => {
  const script = `
    process.stdout.write('start ' + process.env.K00 + '\\n');
    process.on('SIGTERM', () => { process.stdout.write('stopping\\n'); setTimeout(() => process.exit(0), 800); });
    setInterval(() => {}, 1000);`;
  const proc = spawnCli(
    runArgs(['--interval', '100ms', '--on-change', 'restart'], [process.execPath, '-e', script]),
    opts(),
  );
  await waitFor(() => proc.stdout.includes('start value-0:M0'), 'the first start');
  setMarker(fixture.emu, 'M7');
  await waitFor(() => proc.stdout.includes('stopping\n'), 'the restart to stop the old child');
  const { code, ms } = await proc.stop();
  expect(ms).toBeLessThan(5_000);
  expect(code).toBe(0);
  expect(proc.stdout).not.toContain('start value-0:M7');
  setMarker(fixture.emu, 'M0');
});

it('--on-change restart replaces the child with the new environment', async () => {
  const script = `
    process.stdout.write('start ' + process.env.K00 + ' ' + process.pid + '\\n');
    process.on('SIGTERM', () => process.exit(0));
    setInterval(() => {}, 1000);`;
  const proc = spawnCli(
    runArgs(['--interval', '100ms', '--on-change', 'restart'], [process.execPath, '-e', script]),
    opts(),
  );
  const starts = () => proc.stdout.split('\n').filter((l) => l.startsWith('start '));
  await waitFor(() => starts().length === 1, 'the first start');
  expect(starts()[0]).toMatch(/^start value-0:M0 \d+$/);
  setMarker(fixture.emu, 'M1');
  await waitFor(() => starts().length >= 2, `a restart after the change (stderr: ${proc.tail(5)})`);
  // Unchanged polls restart nothing.
  const base = fixture.emu.requests().filter((r) => r.route === 'tokens').length;
  await waitFor(
    () => fixture.emu.requests().filter((r) => r.route === 'tokens').length >= base + 4,
    'four more polls',
  );
  const lines = starts();
  expect(lines).toHaveLength(2);
  expect(lines[1]).toMatch(/^start value-0:M1 \d+$/);
  expect(lines[1]?.split(' ')[2]).not.toBe(lines[0]?.split(' ')[2]);
  const { code } = await proc.stop();
  expect(code).toBe(0);
  setMarker(fixture.emu, 'M0');
});

it('--on-change restart keeps the running child when the new set is refused by the guard', async () => {
  fixture.emu.addEnvironment(APP, 'RunShrink');
  for (let i = 0; i < 10; i++)
    fixture.emu.setSecret({ app: APP, env: 'RunShrink', key: `S${i}`, value: `s${i}` });
  const script = `
    process.stdout.write('start ' + Object.keys(process.env).filter((k) => /^S\\d$/.test(k)).length + '\\n');
    process.on('SIGTERM', () => process.exit(0));
    setInterval(() => {}, 1000);`;
  const args = [
    'run',
    '--host',
    fixture.emu.url,
    '--app',
    APP,
    '--env',
    'RunShrink',
    '--interval',
    '100ms',
    '--on-change',
    'restart',
  ];
  const proc = spawnCli([...args, '--', process.execPath, '-e', script], opts());
  await waitFor(() => proc.stdout.includes('start 10\n'), 'the first start with 10 secrets');
  for (let i = 0; i < 8; i++) fixture.emu.deleteSecret({ app: APP, env: 'RunShrink', key: `S${i}` });
  await proc.waitForLog(
    (l) => /shr/.test(l.msg) && (l.level === 50 || l.level === 'error'),
    'the guard refusing the shrunken set',
  );
  const base = fixture.emu.requests().filter((r) => r.route === 'tokens').length;
  await waitFor(
    () => fixture.emu.requests().filter((r) => r.route === 'tokens').length >= base + 3,
    'three more polls',
  );
  expect(proc.exitResult, `phasekit run ended: ${proc.tail(5)}`).toBeUndefined();
  expect(proc.stdout.split('\n').filter((l) => l.startsWith('start '))).toEqual(['start 10']);
  expect((await proc.stop()).code).toBe(0);
});

it('--on-change signal:HUP signals the child once per change', async () => {
  const script = `
    let n = 0;
    process.on('SIGHUP', () => process.stdout.write('HUP ' + (++n) + '\\n'));
    process.on('SIGTERM', () => process.exit(0));
    process.stdout.write('started\\n');
    setInterval(() => {}, 1000);`;
  const proc = spawnCli(
    runArgs(['--interval', '100ms', '--on-change', 'signal:HUP'], [process.execPath, '-e', script]),
    opts(),
  );
  await waitFor(() => proc.stdout.includes('started\n'), 'the child to start');
  setMarker(fixture.emu, 'M5');
  await waitFor(() => proc.stdout.includes('HUP 1\n'), 'a SIGHUP after the change');
  const base = fixture.emu.requests().filter((r) => r.route === 'tokens').length;
  await waitFor(
    () => fixture.emu.requests().filter((r) => r.route === 'tokens').length >= base + 4,
    'four more polls',
  );
  expect(proc.stdout).not.toContain('HUP 2');
  expect((await proc.stop()).code).toBe(0);
  setMarker(fixture.emu, 'M0');
});

itLeaksNothing(() => needles);
