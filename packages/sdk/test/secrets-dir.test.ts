import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { PhaseError } from '../src/errors.js';
import { readSecretsDir, watchSecretsDir } from '../src/secrets-dir.js';
import type { SecretsDirChange, SecretsDirSnapshot } from '../src/secrets-dir.js';

// These tests lay out snapshot directories by hand, exactly as the agent's writer does (see product.md, "The
// snapshot directory"), so the reader is checked against the documented layout rather than against the writer.

const SOURCE = { host: 'https://phase.example', app: 'shop', env: 'Production', path: '/' };
const CANARY = 'canary-value-5d0e71';

let out: string;
let counter = 0;

beforeEach(async () => {
  out = await mkdtemp(join(tmpdir(), 'phasekit-secrets-dir-'));
});

afterEach(async () => {
  await rm(out, { recursive: true, force: true });
});

interface Layout {
  readonly values: Record<string, string>;
  readonly formats?: readonly string[];
  readonly refusedKeys?: readonly string[];
  readonly version?: number;
}

/** Writes a version directory and flips `..data` to it, as the agent does. Returns the version directory name. */
async function publish(layout: Layout): Promise<string> {
  const formats = layout.formats ?? ['files', 'json'];
  const refused = new Set(layout.refusedKeys ?? []);
  const name = `..2026_11_22_18_00_00.${String(++counter).padStart(9, '0')}`;
  const dir = join(out, name);
  await mkdir(dir);
  const keys = Object.keys(layout.values).sort();
  if (formats.includes('files')) {
    for (const key of keys) if (!refused.has(key)) await writeFile(join(dir, key), layout.values[key]!);
  }
  if (formats.includes('json')) await writeFile(join(dir, 'secrets.json'), JSON.stringify(layout.values));
  if (formats.includes('dotenv')) await writeFile(join(dir, '.env'), keys.map((k) => `${k}=x\n`).join(''));
  const manifest = {
    version: layout.version ?? counter,
    sha256: '0'.repeat(64),
    updatedAt: '2026-11-22T18:00:00.000Z',
    source: SOURCE,
    keys,
    formats,
    refusedKeys: [...refused],
  };
  await writeFile(join(dir, '.phasekit.json'), JSON.stringify(manifest));
  await rm(join(out, '..data_tmp'), { force: true });
  await symlink(name, join(out, '..data_tmp'));
  await rename(join(out, '..data_tmp'), join(out, '..data'));
  return name;
}

describe('readSecretsDir', () => {
  it('reads the values of the version ..data points to from the per-key files', async () => {
    await publish({ values: { B: 'two', A: `multi\nline ${CANARY}` }, formats: ['files'], version: 7 });
    const snapshot = await readSecretsDir(out);
    expect(snapshot).toEqual({
      version: 7,
      updatedAt: '2026-11-22T18:00:00.000Z',
      source: SOURCE,
      keys: ['A', 'B'],
      secrets: expect.objectContaining({ A: `multi\nline ${CANARY}`, B: 'two' }),
    });
    expect(Object.getPrototypeOf(snapshot.secrets)).toBeNull();
    expect(Object.isFrozen(snapshot.secrets)).toBe(true);
  });

  it('keeps a __proto__ key as an ordinary entry', async () => {
    await publish({ values: JSON.parse('{"__proto__": "p", "constructor": "c"}') as Record<string, string> });
    const { secrets } = await readSecretsDir(out);
    expect(Object.keys(secrets).sort()).toEqual(['__proto__', 'constructor']);
    expect(secrets['__proto__']).toBe('p');
  });

  it('falls back to secrets.json without the files format', async () => {
    await publish({ values: { A: '1', 'a/b': 'slash' }, formats: ['json', 'dotenv'] });
    expect({ ...(await readSecretsDir(out)).secrets }).toEqual({ A: '1', 'a/b': 'slash' });
  });

  it('reads keys refused as files from secrets.json', async () => {
    await publish({
      values: { A: '1', '../evil': 'e' },
      formats: ['files', 'json'],
      refusedKeys: ['../evil'],
    });
    const snapshot = await readSecretsDir(out);
    expect(snapshot.keys).toEqual(['../evil', 'A']);
    expect(snapshot.secrets['../evil']).toBe('e');
  });

  it('leaves out keys refused as files when there is no secrets.json', async () => {
    await publish({
      values: { A: '1', '../evil': 'e' },
      formats: ['files', 'dotenv'],
      refusedKeys: ['../evil'],
    });
    expect((await readSecretsDir(out)).keys).toEqual(['A']);
  });

  it('explains how to fix a snapshot with neither files nor json', async () => {
    await publish({ values: { A: CANARY }, formats: ['dotenv'] });
    const error = await readSecretsDir(out).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PhaseError);
    expect(error).toMatchObject({ code: 'CONFIG' });
    expect((error as Error).message).toContain('enable the `files` or `json` format');
  });

  it('reports a directory without a snapshot as NOT_FOUND', async () => {
    await expect(readSecretsDir(join(out, 'missing'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(readSecretsDir(out)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('rejects a ..data link that leaves the directory', async () => {
    await symlink('/etc', join(out, '..data'));
    await expect(readSecretsDir(out)).rejects.toMatchObject({ code: 'CONFIG' });
  });

  it('never puts a value in an error, even for a broken secrets.json', async () => {
    const name = await publish({ values: { A: CANARY }, formats: ['json'] });
    await writeFile(join(out, name, 'secrets.json'), `{"A": "${CANARY}" oops`);
    const error = await readSecretsDir(out).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CONFIG' });
    expect(String((error as Error).message)).not.toContain(CANARY);
    expect((error as Error).cause).toBeUndefined();
  });

  it('gives up with CONFLICT when files keep vanishing, instead of looping', async () => {
    const name = await publish({ values: { A: '1' }, formats: ['files'] });
    await rm(join(out, name, 'A'));
    await expect(readSecretsDir(out)).rejects.toMatchObject({ code: 'CONFLICT' });
  });

  it('honours an aborted signal', async () => {
    await publish({ values: { A: '1' } });
    await expect(readSecretsDir(out, { signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: 'ABORTED',
    });
  });
});

describe('watchSecretsDir', () => {
  it('yields the current snapshot first, then each new version, with change events naming keys', async () => {
    await publish({ values: { A: '1', B: '2', GONE: 'x' } });
    const controller = new AbortController();
    const watcher = watchSecretsDir(out, { signal: controller.signal, pollIntervalMs: 5000 });
    const changes: SecretsDirChange[] = [];
    watcher.on('change', (change) => changes.push(change));

    const seen: SecretsDirSnapshot[] = [];
    for await (const snapshot of watcher) {
      seen.push(snapshot);
      if (seen.length === 1) await publish({ values: { A: '1', B: CANARY, NEW: 'n' } });
      else controller.abort();
    }

    expect(seen.map((snapshot) => ({ ...snapshot.secrets }))).toEqual([
      { A: '1', B: '2', GONE: 'x' },
      { A: '1', B: CANARY, NEW: 'n' },
    ]);
    expect(changes).toEqual([
      { version: seen[1]!.version, added: ['NEW'], removed: ['GONE'], changed: ['B'] },
    ]);
    expect(JSON.stringify(changes)).not.toContain(CANARY);
    expect(watcher.closed).toBe(true);
  });

  it('picks up a change through the poll alone', async () => {
    await publish({ values: { A: '1' } });
    const watcher = watchSecretsDir(out, { pollIntervalMs: 20, debounceMs: 60_000 });
    const iterator = watcher[Symbol.asyncIterator]();
    expect((await iterator.next()).value?.secrets['A']).toBe('1');
    await publish({ values: { A: '2' } });
    expect((await iterator.next()).value?.secrets['A']).toBe('2');
    await iterator.return?.();
    expect(watcher.closed).toBe(true);
  });

  it('reports a missing snapshot once and yields it when it appears', async () => {
    const errors: PhaseError[] = [];
    const watcher = watchSecretsDir(out, { pollIntervalMs: 20 });
    watcher.on('error', (error) => errors.push(error));
    const first = watcher[Symbol.asyncIterator]().next();
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(errors.map((error) => error.code)).toEqual(['NOT_FOUND']);

    await publish({ values: { A: 'late' } });
    expect((await first).value?.secrets['A']).toBe('late');
    watcher.close();
  });

  it('gives the latest version to a slow consumer instead of a backlog', async () => {
    await publish({ values: { A: '1' } });
    const watcher = watchSecretsDir(out, { pollIntervalMs: 20, debounceMs: 5 });
    const iterator = watcher[Symbol.asyncIterator]();
    await iterator.next();
    await publish({ values: { A: '2' } });
    await publish({ values: { A: '3' } });
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect((await iterator.next()).value?.secrets['A']).toBe('3');
    watcher.close();
    expect(await iterator.next()).toEqual({ value: undefined, done: true });
  });

  it('ends at once when the signal is already aborted', async () => {
    const watcher = watchSecretsDir(out, { signal: AbortSignal.abort() });
    expect(await watcher[Symbol.asyncIterator]().next()).toEqual({ value: undefined, done: true });
  });
});
