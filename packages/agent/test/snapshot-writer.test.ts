import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { existsSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { readSecretsDir } from '@phasekit/sdk';
import type { SecretEntry } from '@phasekit/sdk';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { isDurable } from '../src/snapshot/fs-ops.js';
import { createSnapshotWriter } from '../src/snapshot/writer.js';
import type { SnapshotWriterOptions } from '../src/snapshot/writer.js';

const VERSION_DIR = /^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d{9}$/;
const SOURCE = { host: 'https://phase.example', app: 'shop', env: 'Production', path: '/' } as const;
const CANARY = 'canary-value-9f1c2b';

let out: string;

beforeEach(async () => {
  out = join(await mkdtemp(join(tmpdir(), 'phasekit-snapshot-')), 'out');
});

afterEach(async () => {
  await rm(join(out, '..'), { recursive: true, force: true });
});

function writer(options: Partial<SnapshotWriterOptions> = {}) {
  return createSnapshotWriter({ dir: out, formats: ['files', 'dotenv', 'json'], source: SOURCE, ...options });
}

function entries(values: Record<string, string>): SecretEntry[] {
  return Object.entries(values).map(([key, value]) => ({ key, value }));
}

async function versionDirs(): Promise<string[]> {
  return (await readdir(out)).filter((name) => VERSION_DIR.test(name));
}

/** Everything on disk under `out`: names, link targets, modes, owners, inodes and file contents. */
async function tree(dir = out): Promise<Record<string, unknown>> {
  const result: Record<string, unknown> = {};
  for (const name of (await readdir(dir)).sort()) {
    const path = join(dir, name);
    const st = await lstat(path);
    if (st.isSymbolicLink()) result[name] = { link: await readlink(path) };
    else if (st.isDirectory())
      result[name] = { mode: st.mode, ino: st.ino, uid: st.uid, entries: await tree(path) };
    else result[name] = { mode: st.mode, ino: st.ino, uid: st.uid, data: await readFile(path, 'utf8') };
  }
  return result;
}

describe('snapshot layout', () => {
  it('writes a version directory, flips ..data to it and links every name at the top level', async () => {
    const result = await writer().write(
      entries({ DATABASE_URL: `postgres://u:${CANARY}@db/shop`, API_KEY: 'k-1' }),
      { updatedAt: '2026-11-22T18:00:00.000Z' },
    );

    const [versionName] = await versionDirs();
    expect(versionName).toMatch(VERSION_DIR);
    expect((await readdir(out)).sort()).toEqual(
      ['..data', versionName, '.env', '.phasekit.json', 'API_KEY', 'DATABASE_URL', 'secrets.json'].sort(),
    );
    expect(await readlink(join(out, '..data'))).toBe(versionName);
    for (const name of ['.env', '.phasekit.json', 'API_KEY', 'DATABASE_URL', 'secrets.json']) {
      expect(await readlink(join(out, name))).toBe(`..data/${name}`);
    }
    expect((await readdir(join(out, versionName!))).sort()).toEqual(
      ['.env', '.phasekit.json', 'API_KEY', 'DATABASE_URL', 'secrets.json'].sort(),
    );
    expect(await readFile(join(out, 'DATABASE_URL'), 'utf8')).toBe(`postgres://u:${CANARY}@db/shop`);
    expect(await readFile(join(out, 'API_KEY'), 'utf8')).toBe('k-1');
    expect(result).toEqual({
      changed: true,
      version: 1,
      versionDir: join(out, versionName!),
      changes: { added: ['API_KEY', 'DATABASE_URL'], removed: [], changed: [] },
      refusedKeys: [],
    });
  });

  it('gives files mode 0400 by default and the version directory 0755', async () => {
    await writer().write(entries({ A: '1' }));
    const [versionName] = await versionDirs();
    expect((await stat(join(out, versionName!))).mode & 0o7777).toBe(0o755);
    for (const name of ['A', '.env', 'secrets.json', '.phasekit.json']) {
      expect((await stat(join(out, name))).mode & 0o7777).toBe(0o400);
    }
  });

  it('applies a custom file mode to every file', async () => {
    await writer({ fileMode: 0o440 }).write(entries({ A: '1' }));
    for (const name of ['A', '.env', 'secrets.json', '.phasekit.json']) {
      expect((await stat(join(out, name))).mode & 0o7777).toBe(0o440);
    }
  });

  it('records names and metadata in the manifest, never values', async () => {
    await writer({ formats: ['json', 'files', 'dotenv', 'files'] }).write(
      entries({ ZED: CANARY, ALPHA: `${CANARY}-2` }),
      { updatedAt: '2026-11-22T18:00:00.000Z' },
    );
    const text = await readFile(join(out, '.phasekit.json'), 'utf8');
    expect(text).not.toContain(CANARY);
    expect(JSON.parse(text)).toEqual({
      version: 1,
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      updatedAt: '2026-11-22T18:00:00.000Z',
      source: SOURCE,
      keys: ['ALPHA', 'ZED'],
      formats: ['files', 'dotenv', 'json'],
      refusedKeys: [],
      leftOut: [],
    });
  });

  it('renders the formats in key order', async () => {
    await writer().write(entries({ B: 'two', A: 'one' }));
    expect(await readFile(join(out, '.env'), 'utf8')).toBe("A='one'\nB='two'\n");
    expect(JSON.parse(await readFile(join(out, 'secrets.json'), 'utf8'))).toEqual({ A: 'one', B: 'two' });
  });

  it('chowns files, the version directory and the links when uid and gid are given', async () => {
    await writer({ uid: 1234, gid: 5678 }).write(entries({ A: '1' }));
    const [versionName] = await versionDirs();
    for (const path of ['A', '.env', '.phasekit.json', versionName!].map((name) => join(out, name))) {
      const st = await stat(path);
      expect([st.uid, st.gid]).toEqual([1234, 5678]);
    }
    for (const name of ['A', '..data']) {
      const st = await lstat(join(out, name));
      expect([st.uid, st.gid]).toEqual([1234, 5678]);
    }
  });
});

describe('snapshot changes', () => {
  it('rewrites nothing when the content is unchanged', async () => {
    const w = writer();
    const first = await w.write(entries({ A: '1', B: '2' }), { updatedAt: '2026-01-01T00:00:00Z' });
    const before = await tree();
    const dataInode = (await stat(join(out, '..data'))).ino;

    // Same entries in another order and a newer updatedAt: still the same content.
    const second = await w.write(entries({ B: '2', A: '1' }), { updatedAt: '2026-02-02T00:00:00Z' });

    expect(second).toEqual({
      changed: false,
      version: 1,
      versionDir: first.versionDir,
      changes: { added: [], removed: [], changed: [] },
      refusedKeys: [],
    });
    expect((await stat(join(out, '..data'))).ino).toBe(dataInode);
    expect(await tree()).toEqual(before);
  });

  it('writes a new version for a changed value, prunes the old one and reports names only', async () => {
    const w = writer();
    const first = await w.write(entries({ A: '1', B: '2', GONE: 'x' }));
    const second = await w.write(entries({ A: '1', B: 'changed', NEW: 'n' }));

    expect(second.changed).toBe(true);
    expect(second.version).toBe(2);
    expect(second.versionDir).not.toBe(first.versionDir);
    expect(second.changes).toEqual({ added: ['NEW'], removed: ['GONE'], changed: ['B'] });
    expect(await versionDirs()).toEqual([second.versionDir.slice(out.length + 1)]);
    expect(await readFile(join(out, 'B'), 'utf8')).toBe('changed');
    expect(await readlink(join(out, 'NEW'))).toBe('..data/NEW');
    await expect(lstat(join(out, 'GONE'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(JSON.parse(await readFile(join(out, '.phasekit.json'), 'utf8')).version).toBe(2);
  });

  it('rewrites when only the file mode changes', async () => {
    await writer().write(entries({ A: '1' }));
    const result = await writer({ fileMode: 0o444 }).write(entries({ A: '1' }));
    expect(result).toMatchObject({
      changed: true,
      version: 2,
      changes: { added: [], removed: [], changed: [] },
    });
    expect((await stat(join(out, 'A'))).mode & 0o777).toBe(0o444);
  });

  it('refuses unsafe key names for the files format only, with a reason naming the key', async () => {
    const result = await writer({ formats: ['files', 'json', 'properties'] }).write(
      entries({ '../evil': 'e', 'a/b': 'ab', '..data': 'd', 'SAFE.name': 's' }),
    );

    expect(result.refusedKeys.map((refused) => refused.key)).toEqual(['../evil', '..data', 'a/b']);
    for (const { key, reason } of result.refusedKeys) expect(reason).toContain(JSON.stringify(key));
    expect(result.refusedKeys.find((refused) => refused.key === 'a/b')?.reason).toMatchInlineSnapshot(
      `"key "a/b" contains "/" and would escape the snapshot directory; left out of the files format"`,
    );
    expect(result.refusedKeys.find((refused) => refused.key === '..data')?.reason).toMatchInlineSnapshot(
      `"key "..data" starts with "..", which is reserved for the snapshot's own entries; left out of the files format"`,
    );

    // Nothing escaped the directory and `..data` is still the link to the version.
    await expect(lstat(join(out, '..', 'evil'))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(lstat(join(out, 'a'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readlink(join(out, '..data'))).toMatch(VERSION_DIR);
    expect(await readFile(join(out, 'SAFE.name'), 'utf8')).toBe('s');
    const [versionName] = await versionDirs();
    expect((await readdir(join(out, versionName!))).sort()).toEqual(
      ['.phasekit.json', 'SAFE.name', 'secrets.json', 'secrets.properties'].sort(),
    );

    // The rendered formats still carry every key.
    expect(JSON.parse(await readFile(join(out, 'secrets.json'), 'utf8'))).toEqual({
      '../evil': 'e',
      '..data': 'd',
      'SAFE.name': 's',
      'a/b': 'ab',
    });
    expect(await readFile(join(out, 'secrets.properties'), 'utf8')).toContain('../evil=e');

    const manifest = JSON.parse(await readFile(join(out, '.phasekit.json'), 'utf8'));
    expect(manifest.keys).toEqual(['../evil', '..data', 'SAFE.name', 'a/b']);
    expect(manifest.refusedKeys).toEqual(['../evil', '..data', 'a/b']);
  });

  it('keeps keys named like snapshot entries in .env while refusing them as files', async () => {
    const result = await writer({ formats: ['files', 'dotenv'] }).write(
      entries({ '..data': 'd', '.env': 'x', '..data_tmp': 't', OK: 'ok' }),
    );
    expect(result.refusedKeys.map((refused) => refused.key)).toEqual(['..data', '..data_tmp', '.env']);
    expect(result.refusedKeys.find((refused) => refused.key === '.env')?.reason).toMatchInlineSnapshot(
      `"key ".env" collides with the snapshot's own file of that name; left out of the files format"`,
    );
    expect(await readFile(join(out, '.env'), 'utf8')).toBe("..data='d'\n..data_tmp='t'\n.env='x'\nOK='ok'\n");
    expect(await readlink(join(out, '.env'))).toBe('..data/.env');
    expect(await readFile(join(out, 'OK'), 'utf8')).toBe('ok');
  });

  it('refuses empty, dot and NUL key names', async () => {
    const result = await writer({ formats: ['files', 'json'] }).write(
      entries({ '': 'empty', '.': 'dot', 'A\0B': 'nul', '.phasekit.json': 'm', OK: 'ok' }),
    );
    expect(result.refusedKeys.map((refused) => refused.key).sort()).toEqual([
      '',
      '.',
      '.phasekit.json',
      'A\0B',
    ]);
    expect(result.refusedKeys.find((refused) => refused.key === 'A\0B')?.reason).toContain('"A\\u0000B"');
    expect(JSON.parse(await readFile(join(out, '.phasekit.json'), 'utf8')).keys).toContain('.phasekit.json');
  });

  it('refuses a key a format cannot represent for that format alone, and writes the rest', async () => {
    const w = writer({ formats: ['files', 'shell', 'json'] });
    await w.write(entries({ GOOD: 'g' }));

    const result = await w.write(entries({ GOOD: 'g2', 'NOT-AN-IDENTIFIER': CANARY }));

    expect(result).toMatchObject({ changed: true, version: 2 });
    expect(result.refusedKeys).toEqual([
      {
        key: 'NOT-AN-IDENTIFIER',
        format: 'shell',
        reason: expect.stringContaining('NOT-AN-IDENTIFIER') as unknown,
      },
    ]);
    expect(JSON.stringify(result.refusedKeys)).not.toContain(CANARY);
    expect(await readFile(join(out, 'secrets.sh'), 'utf8')).toBe("export GOOD='g2'\n");
    expect(JSON.parse(await readFile(join(out, 'secrets.json'), 'utf8'))).toEqual({
      GOOD: 'g2',
      'NOT-AN-IDENTIFIER': CANARY,
    });
    expect(await readFile(join(out, 'NOT-AN-IDENTIFIER'), 'utf8')).toBe(CANARY);
  });

  it('refuses duplicate keys without touching the disk', async () => {
    const w = writer();
    await w.write(entries({ A: '1' }));
    const before = await tree();
    await expect(w.write([...entries({ A: '1' }), { key: 'A', value: '2' }])).rejects.toMatchObject({
      code: 'CONFIG',
      message: expect.stringContaining('"A"'),
    });
    expect(await tree()).toEqual(before);
  });

  it('never replaces a file it did not create', async () => {
    await mkdir(out, { recursive: true });
    await writeFile(join(out, 'README'), 'mine');
    const w = writer();
    await expect(w.write(entries({ README: 'secret' }))).rejects.toMatchObject({ code: 'CONFIG' });
    expect(await readdir(out)).toEqual(['README']);
    expect(await readFile(join(out, 'README'), 'utf8')).toBe('mine');
  });

  it('rejects invalid options with one error naming each problem', () => {
    expect(() =>
      createSnapshotWriter({
        dir: out,
        formats: ['files', 'toml' as never],
        fileMode: 0o4755,
        source: SOURCE,
        bogus: true,
      } as SnapshotWriterOptions),
    ).toThrowErrorMatchingInlineSnapshot(
      `[PhaseError: Invalid snapshot writer options: unknown option "bogus"; \`formats\` has "toml"; expected one of files, dotenv, json, yaml, shell, properties; \`fileMode\` must be an integer permission mode from 0o000 to 0o777]`,
    );
  });
});

describe('snapshot takeover', () => {
  it('takes over a snapshot left by a killed run and removes its leftovers', async () => {
    await writer().write(entries({ A: '1', B: '2' }));
    const [kept] = await versionDirs();
    // A run killed between building a version and flipping: an orphan version and a dangling ..data_tmp.
    const orphan = '..2020_01_01_00_00_00.000000001';
    await mkdir(join(out, orphan));
    await writeFile(join(out, orphan, 'A'), 'half');
    await symlink(orphan, join(out, '..data_tmp'));
    // ... and one killed after the flip but before linking every name.
    await unlink(join(out, 'B'));
    await symlink('..data/STALE', join(out, 'STALE'));

    const w = writer();
    expect(await w.current()).toMatchObject({ version: 1, keys: ['A', 'B'] });
    expect((await readdir(out)).sort()).toEqual(
      ['..data', kept, '.env', '.phasekit.json', 'A', 'B', 'secrets.json'].sort(),
    );
    expect(await readlink(join(out, 'B'))).toBe('..data/B');

    expect(await w.write(entries({ A: '1', B: '2' }))).toMatchObject({ changed: false, version: 1 });
    // Values were recovered from the files, so only B counts as changed.
    expect(await w.write(entries({ A: '1', B: '3' }))).toMatchObject({
      changed: true,
      version: 2,
      changes: { added: [], removed: [], changed: ['B'] },
    });
  });

  it('continues the version number after a restart', async () => {
    await writer().write(entries({ A: '1' }));
    await writer().write(entries({ A: '2' }));
    expect(await writer().write(entries({ A: '3' }))).toMatchObject({ version: 3 });
    expect(await writer().current()).toMatchObject({ version: 3, keys: ['A'] });
  });

  it('rebuilds when ..data points to a missing version', async () => {
    await mkdir(out, { recursive: true });
    await symlink('..2020_01_01_00_00_00.000000001', join(out, '..data'));
    const w = writer();
    expect(await w.current()).toBeUndefined();
    const result = await w.write(entries({ A: '1' }));
    expect(result).toMatchObject({ changed: true, version: 1, changes: { added: ['A'] } });
    expect(await readFile(join(out, 'A'), 'utf8')).toBe('1');
  });

  it('rebuilds when the current version is corrupt, keeping the version number increasing', async () => {
    await writer().write(entries({ A: '1' }));
    await writer().write(entries({ A: '2' }));
    const [current] = await versionDirs();
    await rm(join(out, current!, 'A'), { force: true });

    const w = writer();
    expect(await w.current()).toBeUndefined();
    const result = await w.write(entries({ A: '2' }));
    expect(result).toMatchObject({ changed: true, version: 3 });
    expect(await readFile(join(out, 'A'), 'utf8')).toBe('2');
    expect(await versionDirs()).toHaveLength(1);
  });

  it('is readable by the SDK reader', async () => {
    await writer({ formats: ['files', 'json'] }).write(entries({ A: '1', 'a/b': 'slash' }), {
      updatedAt: '2026-11-22T18:00:00.000Z',
    });
    const snapshot = await readSecretsDir(out);
    expect(snapshot).toMatchObject({ version: 1, updatedAt: '2026-11-22T18:00:00.000Z', source: SOURCE });
    expect({ ...snapshot.secrets }).toEqual({ A: '1', 'a/b': 'slash' });
  });
});

describe('snapshot cleanup', () => {
  it('removes the whole snapshot', async () => {
    const w = writer();
    await w.write(entries({ A: '1' }));
    await w.cleanup();
    await expect(stat(out)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await w.current()).toBeUndefined();
  });

  it('keeps files it did not write', async () => {
    const w = writer();
    await w.write(entries({ A: '1' }));
    await writeFile(join(out, 'mine.txt'), 'keep');
    await w.cleanup();
    expect(await readdir(out)).toEqual(['mine.txt']);
  });
});

describe('durability', () => {
  it('knows tmpfs has no stable storage to fsync to, and treats any other file system as durable', () => {
    expect(isDurable(tmpdir())).toBe(statfsSync(tmpdir()).type !== 0x01021994);
    expect(isDurable(join(tmpdir(), 'no', 'such', 'dir'))).toBe(true);
    if (existsSync('/dev/shm') && statfsSync('/dev/shm').type === 0x01021994) {
      expect(isDurable('/dev/shm')).toBe(false);
    }
  });

  it('writes, changes and takes over a snapshot on tmpfs exactly as on a disk', async () => {
    const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
    const dir = join(await mkdtemp(join(base, 'phasekit-snapshot-')), 'out');
    try {
      const first = createSnapshotWriter({ dir, formats: ['files', 'dotenv'], source: SOURCE });
      await first.write(entries({ A: '1', B: '2' }));
      const second = createSnapshotWriter({ dir, formats: ['files', 'dotenv'], source: SOURCE });
      const result = await second.write(entries({ A: '1', B: '3' }));
      expect(result.changes).toEqual({ added: [], removed: [], changed: ['B'] });
      expect(result.version).toBe(2);
      expect(await readFile(join(dir, 'B'), 'utf8')).toBe('3');
      expect(await readFile(join(dir, '.env'), 'utf8')).toBe("A='1'\nB='3'\n");
      expect((await readdir(dir)).filter((name) => VERSION_DIR.test(name))).toHaveLength(1);
    } finally {
      await rm(join(dir, '..'), { recursive: true, force: true });
    }
  });
});
