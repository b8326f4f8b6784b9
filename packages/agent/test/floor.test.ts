// The oldest Node that `engines.node` admits must run the built CLI. This test reads the floor from package.json,
// installs exactly that version from the npm registry's `node` package (once, under .ci-node/, where .ci/run keeps
// its own), and runs the bundle under it: `--version`, then a real `once` against the emulator.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startEmulator, type Emulator } from '@phasekit/emulator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, REPO_ROOT } from './helpers/cli.js';

const run = promisify(execFile);

/** `>=22.22` in every package.json becomes `22.22.0`. */
function floorVersion(): string {
  const engines = new Set(
    [
      'package.json',
      'packages/sdk/package.json',
      'packages/agent/package.json',
      'packages/emulator/package.json',
    ].map(
      (file) =>
        (JSON.parse(readFileSync(join(REPO_ROOT, file), 'utf8')) as { engines: { node: string } }).engines
          .node,
    ),
  );
  expect([...engines]).toHaveLength(1);
  const match = /^>=(\d+)\.(\d+)(?:\.(\d+))?$/.exec([...engines][0]!);
  if (match === null) throw new Error(`engines.node is not of the form >=X.Y: ${[...engines][0]}`);
  return `${match[1]}.${match[2]}.${match[3] ?? 0}`;
}

/** The floor's node binary, installed from the npm registry when it is not there yet. */
async function floorNode(version: string): Promise<string> {
  const prefix = join(REPO_ROOT, '.ci-node', version);
  const bin = join(prefix, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(bin)) {
    await run(
      'npm',
      ['install', '--prefix', prefix, '--no-save', '--no-audit', '--no-fund', `node@${version}`],
      {
        timeout: 240_000,
      },
    );
  }
  return bin;
}

let emu: Emulator;
let node: string;
let version: string;
let dir: string;

beforeAll(async () => {
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run pnpm build first`);
  version = floorVersion();
  node = await floorNode(version);
  dir = await mkdtemp(join(tmpdir(), 'phasekit-floor-'));
  emu = await startEmulator({
    seed: {
      apps: [{ name: 'A', environments: [{ name: 'E', secrets: [{ key: 'K', value: 'floor-value' }] }] }],
    },
  });
}, 300_000);

afterAll(async () => {
  await emu?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the oldest Node that engines.node admits', () => {
  it('is the Node this test runs the CLI under', async () => {
    const { stdout } = await run(node, ['--version']);
    expect(stdout.trim()).toBe(`v${version}`);
  });

  it('runs the built CLI: --version', async () => {
    const { stdout } = await run(node, [CLI_PATH, '--version']);
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('runs the built CLI: once against the emulator', async () => {
    const out = join(dir, 'out');
    await run(node, [CLI_PATH, 'once', '--host', emu.url, '--app', 'A', '--env', 'E', '--out', out], {
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', PHASE_SERVICE_TOKEN: emu.tokens.serviceAccount },
    });
    expect(await readFile(join(out, 'K'), 'utf8')).toBe('floor-value');
  });
});
