// Shared fixtures of the process-level tests: a seeded emulator whose secrets include a canary value, temporary
// directories, and a reader of the snapshot directory that checks its consistency the way an app would.
import { lstat, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmulator, type Emulator } from '@phasekit/emulator';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { allTranscripts, assertNoLeaks, killAll } from './cli.js';

/** A value that must never show up in a log, an error, /metrics or a notification. */
export const CANARY = 'CANARY-9c1d-5e7f-a4b2-leak-me-not';
export const APP = 'shop';
export const ENV = 'Production';
/** A value every format has to escape: quotes of both kinds, `$`, a backslash, a newline and unicode. */
export const TRICKY = `it's "quoted" $HOME $(id) back\\slash\nsecond line ünïcødé ✓`;

export function baseSecrets(marker = 'M0', count = 10): { key: string; value: string }[] {
  const secrets = [{ key: 'CANARY_SECRET', value: CANARY }];
  for (let i = 0; i < count; i++) secrets.push({ key: keyName(i), value: `value-${i}:${marker}` });
  return secrets;
}

export function keyName(i: number): string {
  return `K${String(i).padStart(2, '0')}`;
}

/** An emulator with app `shop`: `Production` (the canary, TRICKY and K00..K09) and an empty `Staging`. */
export function startSeeded(extra: { key: string; value: string }[] = []): Promise<Emulator> {
  return startEmulator({
    seed: {
      apps: [
        {
          name: APP,
          environments: [
            { name: ENV, secrets: [...baseSecrets(), { key: 'TRICKY', value: TRICKY }, ...extra] },
            { name: 'Staging', secrets: [] },
          ],
        },
      ],
    },
  });
}

/** Rewrites K00..K(count-1) with `marker` in one synchronous burst (no request can see half of it). */
export function setMarker(emu: Emulator, marker: string, count = 10): void {
  for (let i = 0; i < count; i++)
    emu.setSecret({ app: APP, env: ENV, key: keyName(i), value: `value-${i}:${marker}` });
}

/** The token and its long segments: none may appear in any output. */
export function tokenNeedles(emu: Emulator): string[] {
  const needles = new Set<string>();
  for (const token of Object.values(emu.tokens)) {
    needles.add(token);
    for (const part of token.split(':')) if (part.length >= 16) needles.add(part);
  }
  return [...needles];
}

export async function tempDir(prefix: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `phasekit-e2e-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

export interface Manifest {
  version: number;
  sha256: string;
  updatedAt: string;
  keys: string[];
  [field: string]: unknown;
}

/** The manifest `..data` points to, or undefined when there is none yet. */
export async function readManifest(out: string): Promise<Manifest | undefined> {
  try {
    return JSON.parse(await readFile(join(out, '.phasekit.json'), 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
}

/** Every regular file of the current version directory, by name, as bytes (for byte-identical comparisons). */
export async function readVersionFiles(out: string): Promise<{ target: string; files: Map<string, Buffer> }> {
  const target = await readlink(join(out, '..data'));
  const dir = join(out, target);
  const files = new Map<string, Buffer>();
  for (const name of (await readdir(dir)).sort()) files.set(name, await readFile(join(dir, name)));
  return { target, files };
}

/** A byte-exact picture of the whole snapshot directory: every entry, link target and file content. */
export async function fingerprint(out: string): Promise<string> {
  const parts: string[] = [];
  const walk = async (dir: string, prefix: string) => {
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name);
      const st = await lstat(path);
      if (st.isSymbolicLink()) parts.push(`L ${prefix}${name} -> ${await readlink(path)}`);
      else if (st.isDirectory()) {
        parts.push(`D ${prefix}${name} ${(st.mode & 0o7777).toString(8)}`);
        await walk(path, `${prefix}${name}/`);
      } else {
        const content = await readFile(path);
        parts.push(
          `F ${prefix}${name} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${content.toString('base64')}`,
        );
      }
    }
  };
  await walk(out, '');
  return parts.join('\n');
}

/**
 * Reads the snapshot as one version (through `..data` once) and checks it: key files == manifest keys (minus the
 * refused ones), and every K.. value carries the same marker. Returns the marker and version.
 */
export async function consistentSnapshot(
  out: string,
): Promise<{ marker: string; version: number; keys: string[]; target: string }> {
  const { target, files } = await readVersionFiles(out);
  const manifestBytes = files.get('.phasekit.json');
  if (manifestBytes === undefined) throw new Error(`no manifest in ${target}`);
  const manifest = JSON.parse(manifestBytes.toString('utf8')) as Manifest;
  const keyFiles = [...files.keys()]
    .filter((name) => !name.startsWith('.') && !name.startsWith('secrets.'))
    .sort();
  const expected = [...manifest.keys].sort();
  if (JSON.stringify(keyFiles) !== JSON.stringify(expected)) {
    throw new Error(
      `key files ${JSON.stringify(keyFiles)} differ from the manifest's ${JSON.stringify(expected)}`,
    );
  }
  const markers = new Set<string>();
  for (const [name, content] of files) {
    if (/^K\d+$/.test(name)) markers.add(content.toString('utf8').split(':').pop() ?? '');
  }
  const env = files.get('.env')?.toString('utf8') ?? '';
  for (const match of env.matchAll(/value-\d+:(M\d+)/g)) markers.add(match[1] ?? '');
  if (markers.size !== 1) throw new Error(`mixed markers in ${target}: ${[...markers].join(', ')}`);
  return { marker: [...markers][0] ?? '', version: manifest.version, keys: expected, target };
}

/**
 * The last test of a file: nothing this file's processes printed (except `export`'s stdout and a `run` child's own
 * output) contains the canary or a token, nor anything recorded with recordText (/metrics, hook bodies).
 */
export function itLeaksNothing(needles: () => string[]): void {
  it('never prints the canary value or the token (stdout, stderr, /metrics, hooks, errors)', () => {
    expect(allTranscripts().length).toBeGreaterThan(0);
    const list = needles();
    expect(list).toContain(CANARY);
    expect(list.length).toBeGreaterThan(1);
    assertNoLeaks(list);
  });
}

/** A seeded emulator, a temporary directory and the leak needles, shared by the tests of one file. */
export interface SeededFixture {
  readonly emu: Emulator;
  readonly work: { path: string; remove: () => Promise<void> };
  /** What must never be printed: the canary and the token's parts (add more as a file starts other emulators). */
  readonly needles: string[];
}

/**
 * The set-up every process-level test file repeats: before the file, a seeded emulator (see startSeeded) and a
 * temporary directory; after each test, every process killed and every fault cleared; after the file, both removed.
 */
export function useSeededEmulator(
  prefix: string,
  extra: { key: string; value: string }[] = [],
): SeededFixture {
  let emu: Emulator | undefined;
  let work: SeededFixture['work'] | undefined;
  const needles = [CANARY];
  beforeAll(async () => {
    emu = await startSeeded(extra);
    needles.push(...tokenNeedles(emu));
    work = await tempDir(prefix);
  });
  afterEach(async () => {
    emu?.clearFaults();
    await killAll();
  });
  afterAll(async () => {
    await emu?.close();
    await work?.remove();
  });
  return {
    get emu() {
      if (emu === undefined) throw new Error('the emulator starts in beforeAll');
      return emu;
    },
    get work() {
      if (work === undefined) throw new Error('the work directory is made in beforeAll');
      return work;
    },
    needles,
  };
}
