// What a hostile review found (issue 15), each through the built CLI against the emulator, over real sockets and
// real files: a transient 500, two writers on one directory, keys a format cannot hold, the same key at two paths,
// the exit codes of product.md (4 for a missing reference, 6 for a cycle, 2 for an --out that is a file, 8 for an
// output that cannot be written), version directories left by a killed writer, and warnings without stack traces.
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startEmulator, type Emulator } from '@phasekit/emulator';
import { describe, expect, it } from 'vitest';
import { runCli, spawnCli, waitFor } from './helpers/cli.js';
import {
  APP,
  ENV,
  consistentSnapshot,
  itLeaksNothing,
  readManifest,
  setMarker,
  tokenNeedles,
  useSeededEmulator,
} from './helpers/fixture.js';
import { SnapshotReader } from './helpers/reader.js';
import { snapshotAbove, startSidecar } from './helpers/sidecar.js';

const VERSION_DIR = /^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d{9}$/;

const fixture = useSeededEmulator('hostile');

const token = () => fixture.emu.tokens.serviceAccount;
const once = (out: string, ...extra: string[]) =>
  runCli(['once', '--host', fixture.emu.url, '--app', APP, '--env', ENV, '--out', out, ...extra], {
    token: token(),
  });

/** An emulator of one environment holding `secrets`, for the cases that need data of their own. */
async function withSecrets<T>(
  secrets: { key: string; value: string; path?: string }[],
  body: (e: Emulator) => Promise<T>,
): Promise<T> {
  const e = await startEmulator({ seed: { apps: [{ name: 'A', environments: [{ name: 'E', secrets }] }] } });
  fixture.needles.push(...tokenNeedles(e));
  try {
    return await body(e);
  } finally {
    await e.close();
  }
}
const onceAt = (e: Emulator, out: string, ...extra: string[]) =>
  runCli(['once', '--host', e.url, '--app', 'A', '--env', 'E', '--out', out, ...extra], {
    token: e.tokens.serviceAccount,
  });

describe('1. transient server errors', () => {
  it.each([500, 502, 503, 504])('once survives a single %i and exits 0', async (status) => {
    fixture.emu.clearRequests();
    fixture.emu.fault({ route: 'tokens', status, count: 1 });
    const r = await once(join(fixture.work.path, `transient-${status}`));
    expect(r.code, r.stderr).toBe(0);
    expect(
      fixture.emu
        .requests()
        .filter((q) => q.route === 'tokens')
        .map((q) => q.status),
    ).toEqual([status, 200]);
  });
});

describe('2. one writer per snapshot directory', () => {
  it('refuses a second sidecar and a second once at once with exit 8, naming the holder pid', async () => {
    const out = join(fixture.work.path, 'two-writers');
    const first = startSidecar(fixture.emu, out);
    await first.waitForMsg('ready');
    const started = Date.now();
    const second = await runCli(
      ['sidecar', '--host', fixture.emu.url, '--app', APP, '--env', ENV, '--out', out, '--interval', '100ms'],
      { token: token() },
    );
    expect(second.code, second.stderr).toBe(8);
    expect(second.stderr).toContain(`pid ${first.pid}`);
    expect(Date.now() - started).toBeLessThan(5_000);
    const third = await once(out);
    expect(third.code, third.stderr).toBe(8);
    expect(third.stderr).toContain(`pid ${first.pid}`);
    await first.stop();
  });

  it('keeps every read whole while the refused second writer comes and goes, and hands over within a second after kill -9', async () => {
    const out = join(fixture.work.path, 'torn');
    setMarker(fixture.emu, 'M0');
    const holder = startSidecar(fixture.emu, out);
    await holder.waitForMsg('ready');
    // A reader in a process of its own, as an app would be (helpers/reader.ts).
    const reader = await SnapshotReader.start(fixture.work.path, out);
    for (let round = 1; round <= 10; round++) {
      const contender = await once(out);
      expect(contender.code, contender.stderr).toBe(8);
      const from = holder.logs.length;
      setMarker(fixture.emu, `M${round}`);
      await holder.waitForLog(snapshotAbove(round), `snapshot ${round + 1}`, { from });
    }
    await holder.kill9();
    const killedAt = Date.now();
    const next = startSidecar(fixture.emu, out);
    await next.waitForMsg('ready');
    expect(Date.now() - killedAt).toBeLessThan(1_000 + 2_000); // the takeover itself is immediate; start-up is the rest
    const from = next.logs.length;
    setMarker(fixture.emu, 'M99');
    await next.waitForLog(
      (l) => (l.msg === 'snapshot updated' || l.msg === 'snapshot written') && l.component === 'watcher',
      'the new writer writing',
      { from },
    );
    const summary = await reader.stop();
    expect(summary.problems, JSON.stringify(summary)).toEqual([]);
    expect(summary.torn).toBe(0);
    expect(summary.errors).toBe(0);
    expect(summary.backwards).toBe(0);
    expect(summary.reads).toBeGreaterThan(10);
    expect((await consistentSnapshot(out)).marker).toBe('M99');
    await next.stop();
  });
});

describe('3. keys a requested format cannot hold', () => {
  const secrets = [
    { key: 'GOOD', value: 'fine' },
    { key: 'BAD-NAME', value: 'shell cannot name this' },
  ];

  it('refuses the set with exit 7 naming the key and the format, and writes nothing', async () => {
    await withSecrets(secrets, async (e) => {
      const out = join(fixture.work.path, 'invalid-refused');
      const r = await onceAt(e, out, '--format', 'files,shell');
      expect(r.code, r.stderr).toBe(7);
      expect(r.stderr).toContain('BAD-NAME');
      expect(r.stderr).toContain('shell');
      expect(r.stderr).not.toContain('shell cannot name this');
      expect(await readManifest(out)).toBeUndefined();
    });
  });

  it('with --skip-invalid-keys leaves the key out of that format, and the manifest lists it with the format', async () => {
    await withSecrets(secrets, async (e) => {
      const out = join(fixture.work.path, 'invalid-skipped');
      const r = await onceAt(e, out, '--format', 'files,shell', '--skip-invalid-keys');
      expect(r.code, r.stderr).toBe(0);
      expect(await readFile(join(out, 'BAD-NAME'), 'utf8')).toBe('shell cannot name this');
      expect(await readFile(join(out, 'secrets.sh'), 'utf8')).not.toContain('BAD-NAME');
      const manifest = await readManifest(out);
      expect(manifest?.['leftOut']).toEqual([{ key: 'BAD-NAME', format: 'shell' }]);
    });
  });

  it('export refuses it with exit 7 too, unless --skip-invalid-keys', async () => {
    await withSecrets(secrets, async (e) => {
      const args = ['export', '--host', e.url, '--app', 'A', '--env', 'E', '--format', 'shell'];
      const refused = await runCli(args, { token: e.tokens.serviceAccount, stdoutCarriesValues: true });
      expect(refused.code, refused.stderr).toBe(7);
      expect(refused.stdout).toBe('');
      const skipped = await runCli([...args, '--skip-invalid-keys'], {
        token: e.tokens.serviceAccount,
        stdoutCarriesValues: true,
      });
      expect(skipped.code, skipped.stderr).toBe(0);
      expect(skipped.stdout).toContain("export GOOD='fine'");
      expect(skipped.stdout).not.toContain('BAD-NAME');
    });
  });
});

describe('4. the same key at two paths', () => {
  it('is refused with exit 7 under --recursive, naming the key and both paths', async () => {
    const secrets = [
      { key: 'DUP', value: 'root-value', path: '/' },
      { key: 'DUP', value: 'sub-value', path: '/sub' },
      { key: 'ONLY', value: 'x', path: '/sub' },
    ];
    await withSecrets(secrets, async (e) => {
      const out = join(fixture.work.path, 'dup');
      const r = await onceAt(e, out, '--recursive');
      expect(r.code, r.stderr).toBe(7);
      expect(r.stderr).toMatch(/key DUP is at two paths, \/ and \/sub/);
      expect(r.stderr).not.toContain('sub-value');
      expect(await readManifest(out)).toBeUndefined();
    });
  });
});

describe('5. exit codes as product.md gives them', () => {
  it('4: a ${...} reference to a key that does not exist', async () => {
    await withSecrets([{ key: 'REF', value: 'x-${MISSING}' }], async (e) => {
      const r = await onceAt(e, join(fixture.work.path, 'missing-ref'));
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toContain('MISSING');
    });
  });

  it('6: a reference cycle', async () => {
    await withSecrets(
      [
        { key: 'A', value: '${B}' },
        { key: 'B', value: '${A}' },
      ],
      async (e) => {
        const r = await onceAt(e, join(fixture.work.path, 'cycle'));
        expect(r.code, r.stderr).toBe(6);
        expect(r.stderr).toContain('cycle');
      },
    );
  });

  it('2: --out naming a file, with a message that says so', async () => {
    const file = join(fixture.work.path, 'a-file');
    await writeFile(file, 'not a directory');
    const r = await once(file);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('is not a directory');
    expect(r.stderr).not.toContain('INTERNAL');
  });

  it('8: a read-only output', async () => {
    const out = join(fixture.work.path, 'read-only');
    await mkdir(out);
    const unmount = readOnly(out);
    try {
      const r = await once(out);
      expect(r.code, r.stderr).toBe(8);
      expect(r.stderr).toMatch(/read-only|permission denied/);
    } finally {
      unmount();
    }
  });

  it('8: a full output', async () => {
    const out = join(fixture.work.path, 'full');
    await mkdir(out);
    if (!isRoot()) {
      // A full file system needs a small tmpfs, which only root can mount: the read-only case covers the rest.
      expect(process.getuid?.()).not.toBe(0);
      return;
    }
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8k', 'tmpfs', out]);
    try {
      // Fill it, so the snapshot cannot fit.
      await writeFile(join(out, 'filler'), Buffer.alloc(4096, 1)).catch(() => undefined);
      await writeFile(join(out, 'filler2'), Buffer.alloc(4096, 1)).catch(() => undefined);
      const r = await once(out);
      expect(r.code, r.stderr).toBe(8);
      expect(r.stderr).toContain('full');
    } finally {
      execFileSync('umount', [out]);
    }
  });
});

describe('6. version directories left by a killed writer', () => {
  it('are removed at the next start, even when Phase is down then; nothing else is touched', async () => {
    const out = join(fixture.work.path, 'leftovers');
    const first = startSidecar(fixture.emu, out);
    await first.waitForMsg('ready');
    await first.kill9();
    // What a writer killed mid-write leaves: version directories no `..data` points to.
    const current = (await readdir(out)).filter((n) => VERSION_DIR.test(n));
    expect(current).toHaveLength(1);
    await mkdir(join(out, '..2020_01_01_00_00_00.000000001'));
    await writeFile(join(out, '..2020_01_01_00_00_00.000000001', 'K00'), 'stale');
    await mkdir(join(out, '..2020_01_01_00_00_00.000000002'));
    await mkdir(join(out, '..not-a-version'));
    await writeFile(join(out, 'users-file'), 'mine');
    // Phase is down for the restart: the takeover must not wait for a first fetch.
    fixture.emu.fault({ route: 'any', status: 503 });
    const r = await once(out, '--timeout', '1s');
    expect(r.code, r.stderr).toBe(5);
    const after = await readdir(out);
    expect(after.filter((n) => VERSION_DIR.test(n))).toEqual(current);
    expect(after).toContain('..not-a-version');
    expect(after).toContain('users-file');
  });
});

describe('7. warnings at the default log level', () => {
  it('carry no stack trace; --log-level debug has them', async () => {
    // A token file that cannot be watched is a warning with an error attached.
    const out = join(fixture.work.path, 'warn');
    const tokenFile = join(fixture.work.path, 'token');
    await writeFile(tokenFile, token());
    const args = [
      'sidecar',
      '--host',
      fixture.emu.url,
      '--app',
      APP,
      '--env',
      ENV,
      '--out',
      out,
      '--interval',
      '100ms',
    ];
    const failing = spawnCli(
      [...args, '--notify-http', 'http://127.0.0.1:9/hook', '--token-file', tokenFile],
      {
        token: null,
      },
    );
    await failing.waitForMsg('ready');
    setMarker(fixture.emu, 'W1');
    await waitFor(() => failing.logs.some((l) => l.level === 'warn' || l.level === 'error'), 'a warning');
    await failing.stop();
    const warnings = failing.logs.filter((l) => l.level === 'warn' || l.level === 'error');
    expect(warnings.length).toBeGreaterThan(0);
    expect(failing.stderr).not.toMatch(/"stack"/);
  });
});

/** Makes `dir` read-only: a read-only tmpfs over it as root (root ignores mode bits), else mode 0555. */
function readOnly(dir: string): () => void {
  if (isRoot()) {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', dir]);
    return () => execFileSync('umount', [dir]);
  }
  execFileSync('chmod', ['0555', dir]);
  return () => execFileSync('chmod', ['0755', dir]);
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

itLeaksNothing(() => fixture.needles);
