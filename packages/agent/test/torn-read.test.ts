import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { lstat, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { readSecretsDir } from '@phasekit/sdk';
import type { SecretEntry } from '@phasekit/sdk';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { createSnapshotWriter } from '../src/snapshot/writer.js';

// A reader that resolves `..data` once must never see a half-written file or a mix of two versions, neither while
// the writer flips hundreds of times, nor after the writer is killed with SIGKILL at a random moment.

const AGENT_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
const SOURCE = { host: 'https://phase.example', app: 'shop', env: 'Production', path: '/' };
const FORMATS = ['files', 'dotenv', 'json'] as const;
const RENDERED = ['.phasekit.json', '.env', 'secrets.json'];
const VERSION_DIR = /^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d{9}$/;

let work: string;
let out: string;
const children = new Set<ChildProcess>();

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'phasekit-torn-'));
  out = join(work, 'out');
});

afterEach(async () => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
  await rm(work, { recursive: true, force: true });
});

/**
 * Every value ends with `:<marker>`; one change gives every key the same new marker and sometimes adds or drops
 * keys, so a torn read shows up as two markers or a key set that disagrees with the manifest.
 */
function generation(marker: string, seed: number): SecretEntry[] {
  const entries: SecretEntry[] = [];
  for (let i = 0; i < 20; i++) {
    // Every third generation drops a few keys; values vary in length so files differ in size.
    if (seed % 3 === 0 && i % 7 === seed % 7) continue;
    entries.push({
      key: `KEY_${String(i).padStart(2, '0')}`,
      value: `v${i}-${'x'.repeat((seed * 7 + i) % 50)}:${marker}`,
    });
  }
  for (let i = 0; i < seed % 4; i++) entries.push({ key: `EXTRA_${i}`, value: `extra ${i}:${marker}` });
  return entries;
}

function markerOf(value: string): string {
  return value.slice(value.lastIndexOf(':') + 1);
}

// Uses only node:fs, as a third-party reader of the directory would.
const READER_SCRIPT = String.raw`
import fs from 'node:fs';
import path from 'node:path';
const out = process.argv[2];
const rendered = new Set(['.phasekit.json', '.env', 'secrets.json']);
const summary = { reads: 0, torn: 0, retries: 0, errors: 0, backwards: 0, problems: [] };
let lastMarker = -1;
let stop = false;
process.on('SIGTERM', () => { stop = true; });
const markerOf = (v) => v.slice(v.lastIndexOf(':') + 1);
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
function readOnce() {
  const target = fs.readlinkSync(path.join(out, '..data'));
  const dir = path.join(out, target);
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, '.phasekit.json'), 'utf8'));
  const keys = [...manifest.keys].sort();
  const problems = [];
  const files = fs.readdirSync(dir).filter((name) => !rendered.has(name)).sort();
  if (!same(files, keys)) problems.push('files differ from manifest keys');
  const markers = new Set();
  for (const key of keys) markers.add(markerOf(fs.readFileSync(path.join(dir, key), 'utf8')));
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'secrets.json'), 'utf8'));
  if (!same(Object.keys(json).sort(), keys)) problems.push('secrets.json keys differ from manifest keys');
  for (const value of Object.values(json)) markers.add(markerOf(value));
  const env = fs.readFileSync(path.join(dir, '.env'), 'utf8').split('\n').filter(Boolean);
  if (env.length !== keys.length) problems.push('.env has ' + env.length + ' lines for ' + keys.length + ' keys');
  for (const line of env) markers.add(markerOf(line).replace(/'$/, ''));
  if (markers.size !== 1) problems.push('markers ' + [...markers].join(','));
  const marker = Number([...markers][0]);
  if (marker < lastMarker) summary.backwards++;
  lastMarker = Math.max(lastMarker, marker);
  return problems;
}
async function main() {
  while (!stop) {
    try {
      const problems = readOnce();
      summary.reads++;
      if (summary.reads === 1) process.stdout.write('ready\n');
      if (problems.length > 0) {
        summary.torn++;
        if (summary.problems.length < 5) summary.problems.push(problems.join('; '));
      }
    } catch (error) {
      // The version was pruned after we resolved ..data: start over, as a kubelet volume reader would.
      if (error.code === 'ENOENT') summary.retries++;
      else { summary.errors++; if (summary.problems.length < 5) summary.problems.push(String(error)); }
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  process.stdout.write(JSON.stringify(summary) + '\n');
}
main();
`;

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function firstLine(child: ChildProcess): Promise<string> {
  const lines = createInterface({ input: child.stdout! });
  const [line] = (await once(lines, 'line')) as [string];
  lines.close();
  return line;
}

interface ReaderSummary {
  reads: number;
  torn: number;
  retries: number;
  errors: number;
  backwards: number;
  problems: string[];
}

describe('torn reads', () => {
  it('a reader process never sees a mix of two versions while the writer applies 300 changes', async () => {
    const writer = createSnapshotWriter({ dir: out, formats: FORMATS, source: SOURCE });
    await writer.write(generation('0', 0));
    const script = join(work, 'reader.mjs');
    await writeFile(script, READER_SCRIPT);
    const reader = track(spawn(process.execPath, [script, out], { stdio: ['ignore', 'pipe', 'inherit'] }));
    const lines = createInterface({ input: reader.stdout! });
    const output: string[] = [];
    lines.on('line', (line) => output.push(line));
    await once(lines, 'line');

    // An in-process reader through the SDK, interleaving with the writer at every await.
    let sdkReads = 0;
    let sdkTorn = 0;
    let sdkConflicts = 0;
    let writing = true;
    const sdkReader = (async () => {
      while (writing) {
        let snapshot;
        try {
          snapshot = await readSecretsDir(out);
        } catch (error) {
          // Under a storm of back-to-back flips a read may give up (CONFLICT): that is a refusal, never a torn read.
          if ((error as { code?: string }).code !== 'CONFLICT') throw error;
          sdkConflicts++;
          continue;
        }
        const markers = new Set(snapshot.keys.map((key) => markerOf(snapshot.secrets[key]!)));
        if (markers.size !== 1) sdkTorn++;
        sdkReads++;
        // Leave the thread pool to the writer most of the time; its fsyncs are what takes long.
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();

    let flips = 0;
    for (let i = 1; i <= 300; i++) {
      const result = await writer.write(generation(String(i), i));
      if (result.changed) flips++;
    }
    writing = false;
    await sdkReader;

    reader.kill('SIGTERM');
    await once(reader, 'exit');
    const summary = JSON.parse(output.at(-1)!) as ReaderSummary;
    expect(flips).toBe(300);
    expect(summary).toMatchObject({ torn: 0, errors: 0, backwards: 0, problems: [] });
    expect(summary.reads).toBeGreaterThan(0);
    expect(sdkTorn).toBe(0);
    expect(sdkReads).toBeGreaterThan(0);
    expect(sdkConflicts).toBeLessThan(sdkReads + 10);
  }, 120_000);
});

// esbuild comes with tsup; the agent does not depend on it directly, so resolve it through tsup.
interface EsbuildPluginBuild {
  onResolve(options: { filter: RegExp }, callback: () => { path: string; namespace: string }): void;
  onLoad(
    options: { filter: RegExp; namespace: string },
    callback: () => { contents: string; loader: string },
  ): void;
}
interface EsbuildModule {
  build(options: Record<string, unknown>): Promise<unknown>;
}

async function bundleRunner(outfile: string): Promise<void> {
  const requireHere = createRequire(import.meta.url);
  const requireFromTsup = createRequire(requireHere.resolve('tsup'));
  const esbuild = (await import(pathToFileURL(requireFromTsup.resolve('esbuild')).href)) as EsbuildModule;
  const runner = `
    import { createSnapshotWriter } from './src/snapshot/writer.ts';
    import { generation } from 'generation';
    const out = process.argv[2];
    const writer = createSnapshotWriter({ dir: out, formats: ${JSON.stringify(FORMATS)}, source: ${JSON.stringify(SOURCE)} });
    let i = Number(process.argv[3]);
    for (;;) {
      const result = await writer.write(generation(String(i), i));
      process.stdout.write(JSON.stringify({ marker: i, version: result.version }) + '\\n');
      i++;
    }
  `;
  await esbuild.build({
    stdin: { contents: runner, resolveDir: AGENT_DIR, loader: 'ts', sourcefile: 'snapshot-runner.ts' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    conditions: ['@phasekit/source'],
    outfile,
    logLevel: 'error',
    plugins: [
      {
        name: 'generation',
        setup(build: EsbuildPluginBuild) {
          build.onResolve({ filter: /^generation$/ }, () => ({
            path: 'generation',
            namespace: 'generation',
          }));
          build.onLoad({ filter: /.*/, namespace: 'generation' }, () => ({
            contents: `export ${generation.toString()}`,
            loader: 'js',
          }));
        },
      },
    ],
  });
}

/** Asserts `out` holds one complete, consistent version; returns its version and marker. */
async function assertConsistent(): Promise<{ version: number; marker: number }> {
  const snapshot = await readSecretsDir(out);
  const target = await readlink(join(out, '..data'));
  const manifest = JSON.parse(await readFile(join(out, target, '.phasekit.json'), 'utf8'));
  expect(manifest.version).toBe(snapshot.version);
  const files = (await readdir(join(out, target))).filter((name) => !RENDERED.includes(name)).sort();
  expect(files).toEqual([...manifest.keys].sort());
  expect(snapshot.keys).toEqual(manifest.keys);
  const markers = new Set(snapshot.keys.map((key) => markerOf(snapshot.secrets[key]!)));
  expect(markers.size).toBe(1);
  return { version: snapshot.version, marker: Number([...markers][0]) };
}

describe('kill -9', () => {
  it('leaves a complete snapshot at any moment, which a new writer takes over and continues', async () => {
    const runner = join(work, 'snapshot-runner.mjs');
    await bundleRunner(runner);

    let lastVersion = 0;
    let marker = 1;
    for (let kill = 0; kill < 12; kill++) {
      const child = track(
        spawn(process.execPath, [runner, out, String(marker)], { stdio: ['ignore', 'pipe', 'inherit'] }),
      );
      // Let it finish at least one write, then kill it at a random moment of a later one.
      await firstLine(child);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 120));
      child.kill('SIGKILL');
      await once(child, 'exit');

      const killed = await assertConsistent();
      expect(killed.version).toBeGreaterThan(lastVersion);

      // A new writer takes over: leftovers gone, every name linked, and it continues the version sequence.
      const writer = createSnapshotWriter({ dir: out, formats: FORMATS, source: SOURCE });
      expect(await writer.current()).toMatchObject({ version: killed.version });
      const after = await readdir(out);
      expect(after).not.toContain('..data_tmp');
      const versionDirs = after.filter((name) => VERSION_DIR.test(name));
      expect(versionDirs).toEqual([await readlink(join(out, '..data'))]);
      for (const name of await readdir(join(out, versionDirs[0]!))) {
        expect(await readlink(join(out, name))).toBe(`..data/${name}`);
      }
      for (const name of after) {
        if ((await lstat(join(out, name))).isSymbolicLink() && name !== '..data') {
          await expect(readFile(join(out, name))).resolves.toBeInstanceOf(Buffer);
        }
      }
      marker = killed.marker + 1;
      const next = await writer.write(generation(String(marker), marker));
      expect(next).toMatchObject({ changed: true, version: killed.version + 1 });
      expect(await assertConsistent()).toEqual({ version: killed.version + 1, marker });
      lastVersion = next.version;
      marker++;
    }
  }, 120_000);
});
