// The container image (deploy/Containerfile) ships one directory: the .js files of packages/agent/dist/cli (the
// entry phasekit.js and the chunks each command loads), with no node_modules. No container engine runs in CI, so
// this test proves the same thing without one: the bundle, copied alone into a directory with no node_modules
// anywhere above it, runs `--version` and a real `once` against the emulator. Needs `pnpm build` first (the root `pnpm test` builds before it runs vitest).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, readdir, readlink, rm, stat } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, parse } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startEmulator, type Emulator } from '@phasekit/emulator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const BUNDLE = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'phasekit.js');
/** Generous: the bundle is about 2.3 MB today (undici, pino, prom-client, libsodium's WASM inlined). */
const MAX_BUNDLE_BYTES = 5 * 1024 * 1024;
const VALUE = 'bundle-test-value-42';
// Built-ins that only newer Node versions have and that the bundle loads lazily, never on our code paths
// (undici's optional SQLite cache store).
const LAZY_NEWER_BUILTINS = new Set(['sqlite']);
// Optional native speed-ups that `ws` (pulled in by @kubernetes/client-node for exec and attach, which phasekit
// never uses) requires inside try/catch and does without.
const OPTIONAL_ADDONS = new Set(['bufferutil', 'utf-8-validate']);

let emu: Emulator;
let dir: string;
let cli: string;

/** Every ancestor of `path`, itself included, up to the root. */
function ancestors(path: string): string[] {
  const out = [path];
  while (dirname(out[out.length - 1]!) !== out[out.length - 1]) out.push(dirname(out[out.length - 1]!));
  return out;
}

function bundleEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  // Only what a container would have: no NODE_PATH, no NODE_OPTIONS, nothing from the test runner's PHASE_*.
  return { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, ...extra };
}

beforeAll(async () => {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run \`pnpm build\` first`);
  dir = await mkdtemp(join(tmpdir(), 'phasekit-bundle-'));
  cli = join(dir, 'phasekit.js');
  // The entry loads per-command chunks beside it: the image ships the directory's .js files and its package.json.
  for (const name of await readdir(dirname(BUNDLE))) {
    if (name.endsWith('.js') || name === 'package.json') {
      await copyFile(join(dirname(BUNDLE), name), join(dir, name));
    }
  }
  emu = await startEmulator({
    seed: {
      apps: [
        {
          name: 'A',
          environments: [
            {
              name: 'E',
              secrets: [
                { key: 'PLAIN', value: VALUE },
                { key: 'REF', value: 'x-${PLAIN}-y' },
              ],
            },
          ],
        },
      ],
    },
  });
});

afterAll(async () => {
  await emu?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the CLI bundle (what the container image ships)', () => {
  it('sits in a directory with no node_modules in it or above it, so no package can be resolved', async () => {
    const files = await readdir(dir);
    expect(files).toContain('phasekit.js');
    expect(files.every((f) => f.endsWith('.js') || f === 'package.json')).toBe(true);
    // ES modules by declaration, not by Node's syntax detection (which compiles each file twice).
    expect(JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'))).toEqual({ type: 'module' });
    const found = ancestors(dir).filter((d) => existsSync(join(d, 'node_modules')));
    expect(found, `node_modules found above the temp dir; set TMPDIR elsewhere`).toEqual([]);
    expect(parse(dir).root).toBe(ancestors(dir).at(-1));
  });

  it(`is smaller than ${MAX_BUNDLE_BYTES / 1024 / 1024} MB`, async () => {
    let size = 0;
    for (const name of await readdir(dir)) size += (await stat(join(dir, name))).size;
    expect(size).toBeGreaterThan(100_000);
    expect(size).toBeLessThan(MAX_BUNDLE_BYTES);
  });

  it('requires nothing but Node built-ins', async () => {
    let text = '';
    for (const name of await readdir(dir)) text += `${await readFile(join(dir, name), 'utf8')}\n`;
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    const required = new Set(
      // Bundled CommonJS calls esbuild's `__require("x")`; match that and plain `require("x")`.
      [...text.matchAll(/require\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]!),
    );
    // Static and dynamic imports, minified or not: `import{a}from"x"`, `import "x"`, `import("x")`.
    const imported = new Set(
      [
        ...text.matchAll(/\bimport\s*[\w$*{}\s,]*?\s*\bfrom\s*["']([\w@./:-]+)["']/g),
        ...text.matchAll(/\bimport\s*\(?\s*["']([\w@./:-]+)["']/g),
      ].map((m) => m[1]!),
    );
    expect(required.size).toBeGreaterThan(10);
    expect(imported.size).toBeGreaterThan(5);
    const foreign = [...required, ...imported].filter(
      (name) =>
        !builtins.has(name) &&
        !LAZY_NEWER_BUILTINS.has(name.replace(/^node:/, '')) &&
        !OPTIONAL_ADDONS.has(name) &&
        // Chunks of the bundle itself.
        !/^\.\/[\w-]+\.js$/.test(name),
    );
    expect(foreign).toEqual([]);
  });

  it('prints its version', async () => {
    const { stdout } = await run(process.execPath, [cli, '--version'], { cwd: dir, env: bundleEnv() });
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('runs `once` against the emulator and writes the snapshot', async () => {
    const out = join(dir, 'out');
    const result = await run(
      process.execPath,
      [
        cli,
        'once',
        '--host',
        emu.url,
        '--app',
        'A',
        '--env',
        'E',
        '--out',
        out,
        '--format',
        'files,dotenv,json',
      ],
      { cwd: dir, env: bundleEnv({ PHASE_SERVICE_TOKEN: emu.tokens.serviceAccount }), timeout: 30_000 },
    ).catch((error: { code?: number; stderr?: string }) => {
      throw new Error(`phasekit once failed (exit ${error.code}): ${error.stderr}`);
    });
    expect(result.stdout).toBe('');

    expect(await readlink(join(out, '..data'))).toMatch(/^\.\.\d{4}_/);
    expect(await readFile(join(out, 'PLAIN'), 'utf8')).toBe(VALUE);
    expect(await readFile(join(out, 'REF'), 'utf8')).toBe(`x-${VALUE}-y`);
    expect(JSON.parse(await readFile(join(out, 'secrets.json'), 'utf8'))).toEqual({
      PLAIN: VALUE,
      REF: `x-${VALUE}-y`,
    });
    expect(await readFile(join(out, '.env'), 'utf8')).toContain(`PLAIN='${VALUE}'`);
    const manifest = JSON.parse(await readFile(join(out, '.phasekit.json'), 'utf8')) as {
      version: number;
      keys: string[];
    };
    expect(manifest.version).toBe(1);
    expect(manifest.keys).toEqual(['PLAIN', 'REF']);
    expect((await stat(join(out, 'PLAIN'))).mode & 0o777).toBe(0o400);

    // The logs (stderr) name keys and counts, never the value or the token.
    expect(result.stderr).toContain('snapshot written');
    expect(result.stderr).not.toContain(VALUE);
    for (const part of emu.tokens.serviceAccount.split(':').slice(2))
      expect(result.stderr).not.toContain(part);
  });

  it('maps a failure to its exit code (4: unknown environment), still without node_modules', async () => {
    const failure = await run(
      process.execPath,
      [cli, 'once', '--host', emu.url, '--app', 'A', '--env', 'Nope', '--out', join(dir, 'out2')],
      { cwd: dir, env: bundleEnv({ PHASE_SERVICE_TOKEN: emu.tokens.serviceAccount }), timeout: 30_000 },
    ).then(
      () => undefined,
      (error: { code?: number; stderr?: string }) => error,
    );
    expect(failure?.code).toBe(4);
    expect(failure?.stderr).toContain('NOT_FOUND');
  });
});
