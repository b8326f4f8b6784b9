// Process-level tests of the sidecar's memory settings (docs/benchmarks.md, item 5): the CLI tunes V8 for a
// long-running process by itself, and leaves alone whatever the operator set through node flags or NODE_OPTIONS.
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Emulator } from '@phasekit/emulator';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { killAll, recordText, spawnCli, type CliProcess } from './helpers/cli.js';
import {
  APP,
  CANARY,
  ENV,
  itLeaksNothing,
  setMarker,
  startSeeded,
  tempDir,
  tokenNeedles,
} from './helpers/fixture.js';
import { snapshotAbove } from './helpers/sidecar.js';

const MiB = 1024 * 1024;
/** Enough secrets that applying a change allocates several megabytes. */
const BULK = Array.from({ length: 600 }, (_, i) => ({
  key: `BULK_${String(i).padStart(4, '0')}`,
  value: `bulk-value-${i}-${'x'.repeat(120)}`,
}));

let emu: Emulator;
let work: { path: string; remove: () => Promise<void> };
const needles: string[] = [CANARY];

beforeAll(async () => {
  emu = await startSeeded(BULK);
  needles.push(...tokenNeedles(emu));
  work = await tempDir('memory');
});
afterEach(() => killAll());
afterAll(async () => {
  await emu.close();
  await work.remove();
});

function sidecar(name: string, env: Record<string, string> = {}): CliProcess {
  return spawnCli(
    [
      'sidecar',
      ...['--host', emu.url, '--app', APP, '--env', ENV, '--out', join(work.path, name)],
      ...['--interval', '100ms', '--health-addr', '127.0.0.1:0'],
    ],
    { token: emu.tokens.serviceAccount, env },
  );
}

/**
 * Applies changes through the sidecar and returns the largest size of V8's young generation that /metrics showed after
 * any of them (the memory reducer shrinks it again once the process is quiet, so one reading at the end can miss it).
 */
async function newSpaceAfterChanges(process: CliProcess, tag: string, rounds = 4): Promise<number> {
  const base = String((await process.waitForMsg('health server listening')).url).replace(/\/$/, '');
  await process.waitForMsg('ready');
  let largest = 0;
  for (let round = 1; round <= rounds; round++) {
    const from = process.logs.length;
    setMarker(emu, `${tag}${round}`);
    await process.waitForLog(snapshotAbove(round), `snapshot ${round + 1}`, { from, timeoutMs: 10_000 });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    recordText('/metrics', metrics);
    const m = /^phasekit_nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)/m.exec(metrics);
    expect(m, 'the new-space size in /metrics').not.toBeNull();
    largest = Math.max(largest, Number(m![1]));
  }
  return largest;
}

it('keeps V8 young generation at its initial size while it applies changes', async () => {
  const process = sidecar('tuned');
  expect(await newSpaceAfterChanges(process, 'T')).toBeLessThanOrEqual(2 * MiB);
  expect((await process.stop()).code).toBe(0);
});

it('leaves the young generation to the operator who sized it in NODE_OPTIONS', async () => {
  const process = sidecar('operator', { NODE_OPTIONS: '--max-semi-space-size=8' });
  // V8 grows the young generation only under allocation pressure: more rounds than above, so that it surely has.
  expect(await newSpaceAfterChanges(process, 'O', 12)).toBeGreaterThan(2 * MiB);
  expect((await process.stop()).code).toBe(0);
});

it("loads no TLS, compression or node:crypto module graph, nor undici's WebAssembly parser, into a sidecar", async () => {
  // A preload that records, at exit, every built-in module the process loaded.
  const preload = join(work.path, 'record-modules.cjs');
  const list = join(work.path, 'modules.txt');
  await writeFile(
    preload,
    `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(list)}, process.moduleLoadList.join('\\n')));\n`,
  );
  // ...and the exports of every WebAssembly module it compiles (undici's parser exports llhttp_alloc).
  const wasmPreload = join(work.path, 'record-wasm.cjs');
  const wasmList = join(work.path, 'wasm.txt');
  await writeFile(
    wasmPreload,
    [
      "const fs = require('node:fs');",
      'const seen = [];',
      'const record = (m) => seen.push(WebAssembly.Module.exports(m).map((e) => e.name).join(","));',
      'const Module = WebAssembly.Module;',
      'WebAssembly.Module = function (bytes) { const m = new Module(bytes); record(m); return m; };',
      'WebAssembly.Module.exports = Module.exports;',
      'const instantiate = WebAssembly.instantiate;',
      'WebAssembly.instantiate = async (source, imports) => { const r = await instantiate(source, imports); record(r.module ?? source); return r; };',
      'const compile = WebAssembly.compile;',
      'WebAssembly.compile = async (bytes) => { const m = await compile(bytes); record(m); return m; };',
      `process.on('exit', () => fs.writeFileSync(${JSON.stringify(wasmList)}, seen.join('\\n')));`,
      '',
    ].join('\n'),
  );
  const process = sidecar('modules', { NODE_OPTIONS: `--require ${preload} --require ${wasmPreload}` });
  await process.waitForMsg('ready');
  const from = process.logs.length;
  setMarker(emu, 'M1');
  await process.waitForLog(snapshotAbove(1), 'snapshot 2', { from, timeoutMs: 10_000 });
  expect((await process.stop()).code).toBe(0);
  const names = (text: string) => new Set(text.split('\n').map((line) => line.replace(/^NativeModule /, '')));
  const loaded = names(await readFile(list, 'utf8'));
  // What this Node loads for any ES module that imports node:http, before code of ours runs (Node 24's ESM facade
  // of node:http already loads tls, zlib and crypto; Node 20's does not).
  const baseline = join(work.path, 'baseline.mjs');
  await writeFile(
    baseline,
    "import 'node:http';\nimport 'node:net';\nprocess.stdout.write(process.moduleLoadList.join('\\n'));\n",
  );
  const idle = names(execFileSync(globalThis.process.execPath, [baseline], { encoding: 'utf8' }));
  // The sidecar did its work: HTTP client and server, file writes.
  expect(loaded).toContain('http');
  expect(loaded).toContain('net');
  // prom-client's index would bring https/tls and zlib (Pushgateway); node:crypto fifteen modules of its own.
  // (This copy of the bundle has no sodium-native beside it, so libsodium's WASM build runs, and it draws its
  // randomness from the Web Crypto global: that part of crypto is expected.)
  const unwanted = ['https', 'tls', 'zlib', 'crypto', 'internal/crypto/keygen', 'internal/crypto/x509'];
  expect(unwanted.filter((name) => loaded.has(name) && !idle.has(name))).toEqual([]);
  // Its HTTP goes through node:http (the SDK's NodeHttpDispatcher), not undici's WebAssembly parser, whose
  // TurboFan-compiled call wrappers cost a Node 20 sidecar ~3 MB of resident memory.
  const wasm = await readFile(wasmList, 'utf8');
  expect(wasm.split('\n').filter((exports) => exports.includes('llhttp'))).toEqual([]);
  // On Node 20 the check has teeth: such a module loads none of them.
  if (globalThis.process.versions.node.startsWith('20.'))
    expect(idle.has('tls') || idle.has('zlib')).toBe(false);
});

itLeaksNothing(() => needles);
