// Process-level acceptance tests of `phasekit once` and `phasekit export` (issue 3): the built CLI against the
// emulator. Layout and modes of the snapshot directory, every exit code, and the last good snapshot surviving
// every failing run byte for byte.
import { execFile } from 'node:child_process';
import { lstat, readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { startEmulator } from '@phasekit/emulator';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT, runCli } from './helpers/cli.js';
import {
  APP,
  CANARY,
  ENV,
  TRICKY,
  fingerprint,
  itLeaksNothing,
  keyName,
  type Manifest,
  useSeededEmulator,
} from './helpers/fixture.js';

const run = promisify(execFile);
// The dotenv package is the SDK's test dependency: the reader the dotenv format is written for.
const dotenv = createRequire(join(REPO_ROOT, 'packages/sdk/package.json'))('dotenv') as {
  parse: (text: string) => Record<string, string>;
};
const VERSION_DIR = /^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d{9}$/;
const ALL_KEYS = ['CANARY_SECRET', ...Array.from({ length: 10 }, (_, i) => keyName(i)), 'TRICKY'].sort();

const fixture = useSeededEmulator('once');

const source = () => ['--host', fixture.emu.url, '--app', APP];
const token = () => fixture.emu.tokens.serviceAccount;

describe('phasekit once', () => {
  it('writes the kubelet-style layout: ..data, per-key links, .env and a names-only manifest, mode 0400', async () => {
    const out = join(fixture.work.path, 'layout');
    const result = await runCli(['once', ...source(), '--env', ENV, '--out', out], { token: token() });
    expect(result.code, result.stderr).toBe(0);
    expect(result.logs.some((l) => l.msg === 'snapshot written')).toBe(true);

    const target = await readlink(join(out, '..data'));
    expect(target).toMatch(VERSION_DIR);
    const entries = (await readdir(out)).sort();
    expect(entries).toEqual(['..data', target, '.env', '.phasekit.json', ...ALL_KEYS].sort());
    for (const key of ALL_KEYS) {
      expect((await lstat(join(out, key))).isSymbolicLink()).toBe(true);
      expect(await readlink(join(out, key))).toBe(`..data/${key}`);
    }
    expect(await readlink(join(out, '.env'))).toBe('..data/.env');
    expect(await readlink(join(out, '.phasekit.json'))).toBe('..data/.phasekit.json');

    // Values: one file per key, exact bytes; .env has them all.
    expect(await readFile(join(out, 'CANARY_SECRET'), 'utf8')).toBe(CANARY);
    expect(await readFile(join(out, 'TRICKY'), 'utf8')).toBe(TRICKY);
    expect(await readFile(join(out, 'K03'), 'utf8')).toBe('value-3:M0');
    expect(await readFile(join(out, '.env'), 'utf8')).toContain(CANARY);

    // The manifest carries names, never values.
    const manifestText = await readFile(join(out, '.phasekit.json'), 'utf8');
    const manifest = JSON.parse(manifestText) as Manifest;
    expect(manifest.version).toBe(1);
    expect([...manifest.keys].sort()).toEqual(ALL_KEYS);
    expect(manifest.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(manifestText).not.toContain(CANARY);
    expect(manifestText).not.toContain('value-');

    // Every file of the version directory is 0400 by default.
    const versionFiles = await readdir(join(out, target));
    expect(versionFiles.sort()).toEqual(['.env', '.phasekit.json', ...ALL_KEYS].sort());
    for (const name of versionFiles) {
      expect(((await stat(join(out, target, name))).mode & 0o777).toString(8), name).toBe('400');
    }

    // A second run with the same content rewrites nothing.
    const before = await fingerprint(out);
    const again = await runCli(['once', ...source(), '--env', ENV, '--out', out], { token: token() });
    expect(again.code, again.stderr).toBe(0);
    expect(again.logs.some((l) => l.msg === 'snapshot up to date')).toBe(true);
    expect(await fingerprint(out)).toBe(before);
  });

  it('reads a --config YAML file with several outputs (the bundled CLI loads its YAML parser on demand)', async () => {
    const file = join(fixture.work.path, 'phasekit.yaml');
    const first = join(fixture.work.path, 'config-a');
    const second = join(fixture.work.path, 'config-b');
    await writeFile(
      file,
      [
        `host: ${fixture.emu.url}`,
        `app: ${APP}`,
        `env: ${ENV}`,
        'outputs:',
        '  - name: a',
        `    out: ${first}`,
        '  - name: b',
        `    out: ${second}`,
        '    format: [json]',
        '',
      ].join('\n'),
    );
    const result = await runCli(['once', '--config', file], { token: token() });
    expect(result.code, result.stderr).toBe(0);
    expect((await readdir(first)).sort()).toContain('.env');
    const json = JSON.parse(await readFile(join(second, 'secrets.json'), 'utf8')) as Record<string, string>;
    expect(Object.keys(json).sort()).toEqual(ALL_KEYS);
  });

  it('honours --file-mode 0440, --uid and --gid, and extra formats', async () => {
    const out = join(fixture.work.path, 'modes');
    const result = await runCli(
      [
        'once',
        ...source(),
        '--env',
        ENV,
        '--out',
        out,
        '--file-mode',
        '0440',
        '--uid',
        '1234',
        '--gid',
        '2345',
        '--format',
        'files,dotenv,json',
      ],
      { token: token() },
    );
    expect(result.code, result.stderr).toBe(0);
    const target = await readlink(join(out, '..data'));
    const names = await readdir(join(out, target));
    expect(names).toContain('secrets.json');
    for (const name of names) {
      const st = await stat(join(out, target, name));
      expect((st.mode & 0o777).toString(8), name).toBe('440');
      expect([st.uid, st.gid], name).toEqual([1234, 2345]);
    }
    expect(JSON.parse(await readFile(join(out, 'secrets.json'), 'utf8'))).toMatchObject({
      TRICKY,
      CANARY_SECRET: CANARY,
    });
  });

  describe('exit codes, and the previous snapshot survives every failure byte for byte', () => {
    let out: string;
    let good: string;
    beforeAll(async () => {
      out = join(fixture.work.path, 'keep');
      const result = await runCli(['once', ...source(), '--env', ENV, '--out', out], { token: token() });
      expect(result.code, result.stderr).toBe(0);
      good = await fingerprint(out);
    });
    afterEach(async () => {
      expect(await fingerprint(out), 'the last good snapshot changed').toBe(good);
    });

    it('2: an unknown flag', async () => {
      const r = await runCli(['once', ...source(), '--env', ENV, '--out', out, '--bogus-flag', 'x'], {
        token: token(),
      });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain('unknown option');
      const near = await runCli(['once', ...source(), '--env', ENV, '--out', out, '--file-mod', '0400'], {
        token: token(),
      });
      expect(near.code, near.stderr).toBe(2);
      expect(near.stderr).toContain('did you mean --file-mode');
    });

    it('2: a missing --env', async () => {
      const r = await runCli(['once', ...source(), '--out', out], { token: token() });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain('--env');
    });

    it('2: a --token flag, without echoing the token', async () => {
      const r = await runCli(['once', ...source(), '--env', ENV, '--out', out, '--token', token()], {
        token: null,
      });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain('--token');
      expect(r.stderr).not.toContain(token());
    });

    it('3: a revoked token', async () => {
      fixture.emu.revokeToken('service');
      const r = await runCli(['once', ...source(), '--env', ENV, '--out', out], {
        token: fixture.emu.tokens.service,
      });
      expect(r.code, r.stderr).toBe(3);
    });

    it('4: an unknown environment', async () => {
      const r = await runCli(['once', ...source(), '--env', 'NoSuchEnv', '--out', out], { token: token() });
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toContain('NoSuchEnv');
    });

    it('5: Phase unreachable, within --timeout', async () => {
      const down = await startEmulator({ seed: { apps: [] } });
      const url = down.url;
      await down.close();
      const started = Date.now();
      const r = await runCli(
        ['once', '--host', url, '--app', APP, '--env', ENV, '--out', out, '--timeout', '2s'],
        { token: token() },
      );
      expect(r.code, r.stderr).toBe(5);
      expect(Date.now() - started).toBeLessThan(8_000);
    });

    it('5: a 503 storm, within --timeout', async () => {
      fixture.emu.fault({ route: 'any', status: 503 });
      const started = Date.now();
      const r = await runCli(['once', ...source(), '--env', ENV, '--out', out, '--timeout', '2s'], {
        token: token(),
      });
      expect(r.code, r.stderr).toBe(5);
      expect(Date.now() - started).toBeLessThan(8_000);
      expect(fixture.emu.requests().filter((q) => q.status === 503).length).toBeGreaterThan(1); // it did retry
    });

    it('6: a tampered ciphertext', async () => {
      const state = fixture.emu.snapshot();
      const production = state.environments.find((e) => e.name === ENV);
      const row = state.secrets.find((s) => s.environment_id === production?.id && s.deleted_at === null);
      if (!row) throw new Error('no secret row to tamper with');
      const parts = row.value.split(':');
      const body = Buffer.from(parts[3] ?? '', 'base64');
      const at = Math.floor(body.length / 2);
      body.writeUInt8(body.readUInt8(at) ^ 0x01, at);
      parts[3] = body.toString('base64');
      row.value = parts.join(':');
      const tampered = await startEmulator({ state });
      try {
        const r = await runCli(['once', '--host', tampered.url, '--app', APP, '--env', ENV, '--out', out], {
          token: tampered.tokens.serviceAccount,
        });
        expect(r.code, r.stderr).toBe(6);
      } finally {
        await tampered.close();
      }
    });

    it('7: an empty environment without --allow-empty', async () => {
      const r = await runCli(['once', ...source(), '--env', 'Staging', '--out', out], { token: token() });
      expect(r.code, r.stderr).toBe(7);
      expect(r.stderr).toContain('allow-empty');
    });

    it('7: a sharply shrunken set', async () => {
      const r = await runCli(['once', ...source(), '--env', ENV, '--out', out, '--keys', 'K00,K01'], {
        token: token(),
      });
      expect(r.code, r.stderr).toBe(7);
      expect(r.stderr).toContain('shr');
    });
  });

  it('7: a shrink in Phase itself is refused and keeps the old snapshot; --allow-empty accepts an empty set', async () => {
    fixture.emu.addEnvironment(APP, 'Shrink');
    for (let i = 0; i < 10; i++)
      fixture.emu.setSecret({ app: APP, env: 'Shrink', key: keyName(i), value: `s${i}` });
    const out = join(fixture.work.path, 'shrink');
    const args = ['once', ...source(), '--env', 'Shrink', '--out', out];
    expect((await runCli(args, { token: token() })).code).toBe(0);
    const before = await fingerprint(out);
    for (let i = 0; i < 8; i++) fixture.emu.deleteSecret({ app: APP, env: 'Shrink', key: keyName(i) });
    const r = await runCli(args, { token: token() });
    expect(r.code, r.stderr).toBe(7);
    expect(await fingerprint(out)).toBe(before);

    const empty = join(fixture.work.path, 'empty');
    const allowed = await runCli(['once', ...source(), '--env', 'Staging', '--out', empty, '--allow-empty'], {
      token: token(),
    });
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(JSON.parse(await readFile(join(empty, '.phasekit.json'), 'utf8'))).toMatchObject({ keys: [] });
  });
});

describe('phasekit export', () => {
  const exportAs = (format: string) =>
    runCli(['export', ...source(), '--env', ENV, '--format', format], {
      token: token(),
      stdoutCarriesValues: true,
    });

  it('refuses an empty environment with exit 7 and prints nothing, unless --allow-empty', async () => {
    const args = ['export', ...source(), '--env', 'Staging', '--format', 'dotenv'];
    const refused = await runCli(args, { token: token(), stdoutCarriesValues: true });
    expect(refused.code, refused.stderr).toBe(7);
    expect(refused.stdout).toBe('');
    const allowed = await runCli([...args, '--allow-empty'], { token: token(), stdoutCarriesValues: true });
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(allowed.stdout).toBe('\n');
  });

  it('--format json parses back to the exact values', async () => {
    const r = await exportAs('json');
    expect(r.code, r.stderr).toBe(0);
    const parsed = JSON.parse(r.stdout) as Record<string, string>;
    expect(Object.keys(parsed).sort()).toEqual(ALL_KEYS);
    expect(parsed['TRICKY']).toBe(TRICKY);
    expect(parsed['CANARY_SECRET']).toBe(CANARY);
  });

  it('--format shell is sourced by sh to the exact tricky value', async () => {
    const r = await exportAs('shell');
    expect(r.code, r.stderr).toBe(0);
    const file = join(fixture.work.path, 'secrets.sh');
    await writeFile(file, r.stdout);
    const { stdout } = await run('sh', ['-c', `. "$1" && printf '%s' "$TRICKY"`, 'sh', file], {
      env: { PATH: process.env['PATH'] },
    });
    expect(stdout).toBe(TRICKY);
    const exported = await run('sh', ['-c', `. "$1" && env`, 'sh', file], {
      env: { PATH: process.env['PATH'] },
    });
    expect(exported.stdout).toContain(`K09=value-9:M0`);
  });

  it('--format dotenv parses back (with the dotenv package) to the exact values', async () => {
    const r = await exportAs('dotenv');
    expect(r.code, r.stderr).toBe(0);
    const parsed = dotenv.parse(r.stdout);
    expect(Object.keys(parsed).sort()).toEqual(ALL_KEYS);
    expect(parsed['TRICKY']).toBe(TRICKY);
    expect(parsed['K05']).toBe('value-5:M0');
  });

  it('--format yaml parses back to the exact values', async () => {
    const r = await exportAs('yaml');
    expect(r.code, r.stderr).toBe(0);
    expect(parseYaml(r.stdout)).toMatchObject({ TRICKY, CANARY_SECRET: CANARY, K00: 'value-0:M0' });
  });

  it('exits 2 for --format files', async () => {
    const r = await runCli(['export', ...source(), '--env', ENV, '--format', 'files'], { token: token() });
    expect(r.code, r.stderr).toBe(2);
  });
});

itLeaksNothing(() => fixture.needles);
