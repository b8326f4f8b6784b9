// A third-party reader of the snapshot directory, run as its own process: it uses only node:fs, resolves `..data`
// once per read, reads every file of that version directory, and checks that the read is one version: every `K..`
// value (and every value in .env) carries the same `:M<n>` marker, and the key files equal the manifest's keys.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { waitFor } from './cli.js';

export interface ReaderSummary {
  reads: number;
  torn: number;
  retries: number;
  errors: number;
  /** The manifest version went down between two reads. */
  backwards: number;
  versions: number;
  problems: string[];
}

const READER = String.raw`
import fs from 'node:fs';
import path from 'node:path';
const out = process.argv[2];
const summary = { reads: 0, torn: 0, retries: 0, errors: 0, backwards: 0, versions: 0, problems: [] };
let lastVersion = 0;
let stop = false;
process.on('SIGTERM', () => { stop = true; });
const problem = (text) => { if (summary.problems.length < 20) summary.problems.push(text); };

function readOnce() {
  const target = fs.readlinkSync(path.join(out, '..data'));
  const dir = path.join(out, target);
  const names = fs.readdirSync(dir);
  const files = new Map();
  for (const name of names) files.set(name, fs.readFileSync(path.join(dir, name), 'utf8'));
  // An old version is removed file by file after a flip: a read that raced that removal saw a version that is
  // no longer current, and is retried. Only a version that ..data still names has to be whole.
  const stillCurrent = () => fs.readlinkSync(path.join(out, '..data')) === target;
  if (!files.has('.phasekit.json')) {
    if (!stillCurrent()) return { retry: true };
    return { torn: true, version: 0, detail: target + ' has no manifest' };
  }
  const manifest = JSON.parse(files.get('.phasekit.json'));
  const keyFiles = names.filter((n) => !n.startsWith('.') && !n.startsWith('secrets.')).sort();
  const keys = [...manifest.keys].sort();
  const markers = new Set();
  for (const [name, value] of files) if (/^K\d+$/.test(name)) markers.add(value.slice(value.lastIndexOf(':') + 1));
  for (const m of (files.get('.env') ?? '').matchAll(/value-\d+:(M\d+)/g)) markers.add(m[1]);
  const torn = markers.size !== 1 || JSON.stringify(keyFiles) !== JSON.stringify(keys);
  if (torn && !stillCurrent()) return { retry: true };
  return { torn, version: manifest.version, detail: target + ' markers=' + [...markers].join(',') + ' files=' + keyFiles.length + ' keys=' + keys.length };
}

function tick() {
  for (let i = 0; i < 20 && !stop; i++) {
    try {
      const r = readOnce();
      if (r.retry) { summary.retries++; continue; }
      summary.reads++;
      if (r.torn) { summary.torn++; problem(r.detail); }
      if (r.version < lastVersion) { summary.backwards++; problem('version ' + r.version + ' after ' + lastVersion); }
      if (r.version !== lastVersion) summary.versions++;
      lastVersion = r.version;
    } catch (e) {
      // The version directory was removed after a flip between readlink and a read: read again.
      if (e.code === 'ENOENT') summary.retries++;
      else { summary.errors++; problem(String(e.code ?? e.message)); }
    }
  }
  if (stop) {
    process.stdout.write(JSON.stringify(summary) + '\n', () => process.exit(0));
    return;
  }
  setImmediate(tick);
}
process.stdout.write('reading\n');
tick();
`;

/** A running reader process; `stop()` sends SIGTERM and returns its summary. */
export class SnapshotReader {
  readonly child: ChildProcess;
  #stdout = '';
  private constructor(child: ChildProcess) {
    this.child = child;
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (this.#stdout += chunk));
  }

  static async start(workDir: string, out: string): Promise<SnapshotReader> {
    const script = join(workDir, 'reader.mjs');
    await writeFile(script, READER);
    const reader = new SnapshotReader(
      spawn(process.execPath, [script, out], { stdio: ['ignore', 'pipe', 'inherit'] }),
    );
    await waitFor(() => reader.#stdout.includes('reading\n'), 'the reader to start', 5_000);
    return reader;
  }

  async stop(): Promise<ReaderSummary> {
    this.child.kill('SIGTERM');
    const line = await waitFor(
      () => this.#stdout.split('\n').find((l) => l.startsWith('{')),
      'the reader summary',
      5_000,
    );
    return JSON.parse(line) as ReaderSummary;
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}
