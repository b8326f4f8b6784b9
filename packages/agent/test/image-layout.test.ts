// The image's /app (scripts/stage-image.mjs, which deploy/Containerfile copies): the CLI bundle plus sodium-native
// and its runtime dependencies with Linux prebuilds only. Staged into a temporary directory with no node_modules
// above it, the CLI must decrypt with the native backend, and say so in its debug log.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { startEmulator, type Emulator } from '@phasekit/emulator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/cli.js';

const run = promisify(execFile);
const STAGE = join(REPO_ROOT, 'packages', 'agent', 'scripts', 'stage-image.mjs');

let emu: Emulator;
let root: string;
let app: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'phasekit-image-'));
  app = join(root, 'app');
  await run(process.execPath, [STAGE, app]);
  emu = await startEmulator({
    seed: {
      apps: [{ name: 'A', environments: [{ name: 'E', secrets: [{ key: 'K', value: 'image-value' }] }] }],
    },
  });
});
afterAll(async () => {
  await emu?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

describe("the image's /app layout", () => {
  it('holds the bundle and sodium-native with Linux prebuilds only, and no node_modules above it', async () => {
    expect(existsSync(join(app, 'phasekit.js'))).toBe(true);
    const prebuilds = await readdir(join(app, 'node_modules', 'sodium-native', 'prebuilds'));
    expect(prebuilds.sort()).toEqual(['linux-arm64', 'linux-x64']);
    for (let dir = dirname(app); dirname(dir) !== dir; dir = dirname(dir)) {
      expect(existsSync(join(dir, 'node_modules')), dir).toBe(false);
    }
  });

  it('decrypts with the native backend, as its debug log says', async () => {
    const out = join(root, 'out');
    const { stderr } = await run(
      process.execPath,
      [
        join(app, 'phasekit.js'),
        'once',
        '--host',
        emu.url,
        '--app',
        'A',
        '--env',
        'E',
        '--out',
        out,
        '--log-level',
        'debug',
      ],
      {
        cwd: app,
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', PHASE_SERVICE_TOKEN: emu.tokens.serviceAccount },
      },
    );
    const lines = stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg: string; backend?: string });
    expect(lines.find((line) => line.msg === 'crypto backend in use')?.backend).toBe('native');
    expect(await readFile(join(out, 'K'), 'utf8')).toBe('image-value');
  });
});
