/**
 * The `phasekit-emulator` binary, run from dist (root `pnpm test` builds first; when dist is missing or older than
 * src, this file builds it).
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call } from './helpers.js';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(pkg, 'dist', 'cli.js');
let dir: string;

function distIsStale(): boolean {
  if (!existsSync(cli)) return true;
  const built = statSync(cli).mtimeMs;
  return readdirSync(join(pkg, 'src')).some((f) => statSync(join(pkg, 'src', f)).mtimeMs > built);
}

beforeAll(() => {
  if (distIsStale())
    execFileSync('pnpm', ['--filter', '@phasekit/emulator', 'build'], { cwd: pkg, stdio: 'ignore' });
  dir = mkdtempSync(join(tmpdir(), 'phasekit-cli-'));
}, 120_000);
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Running {
  child: ChildProcessWithoutNullStreams;
  lines: AsyncIterator<string>;
  exit: Promise<{ code: number | null; stderr: string }>;
}

function run(args: string[]): Running {
  const child = spawn(process.execPath, [cli, ...args], { stdio: 'pipe' });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stderr })),
  );
  return { child, lines: createInterface({ input: child.stdout })[Symbol.asyncIterator](), exit };
}

async function nextLine(r: Running): Promise<string> {
  const next = await r.lines.next();
  if (next.done) throw new Error(`stdout ended; stderr: ${(await r.exit).stderr}`);
  return next.value;
}

describe('phasekit-emulator CLI', () => {
  it('prints {url, tokens, apps} first, then one JSON log line per request, and exits 0 on SIGTERM', async () => {
    const seed = join(dir, 'seed.yaml');
    writeFileSync(
      seed,
      'apps:\n  - name: shop\n    environments:\n      - name: Production\n        secrets:\n          - { key: A, value: "1" }\n',
    );
    const r = run(['--seed', seed, '--port', '0']);
    const first = JSON.parse(await nextLine(r));
    expect(Object.keys(first)).toEqual(['url', 'tokens', 'apps']);
    expect(first.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(first.tokens.serviceAccount).toMatch(/^pss_service:v2:/);
    expect(first.tokens.service).toMatch(/^pss_service:v1:/);
    expect(first.tokens.user).toMatch(/^pss_user:v1:/);
    expect(first.apps).toEqual([
      {
        id: expect.any(String),
        name: 'shop',
        environments: [{ id: expect.any(String), name: 'Production' }],
      },
    ]);

    const tokens = await call(first.url, '/service/secrets/tokens/', { token: first.tokens.user });
    expect(tokens.status).toBe(200);
    const line = await nextLine(r);
    expect(JSON.parse(line)).toEqual({
      method: 'GET',
      path: '/service/secrets/tokens/',
      status: 200,
      ms: expect.any(Number),
    });
    expect(line).not.toContain(first.tokens.user.split(':')[2]);

    r.child.kill('SIGTERM');
    expect((await r.exit).code).toBe(0);
  });

  it('uses a built-in demo seed without --seed and honours --strict and SIGINT', async () => {
    const r = run(['--strict']);
    const first = JSON.parse(await nextLine(r));
    expect(first.apps.map((a: { name: string }) => a.name)).toEqual(['demo']);
    r.child.kill('SIGINT');
    expect((await r.exit).code).toBe(0);
  });

  it('--tls serves HTTPS with a generated certificate that clients trust by the caFile it prints', async () => {
    const caFile = join(dir, 'ca.pem');
    const r = run(['--tls', '--ca-file', caFile]);
    const first = JSON.parse(await nextLine(r));
    expect(first.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(first.caFile).toBe(caFile);
    const ca = readFileSync(caFile, 'utf8');
    expect(new X509Certificate(ca).checkIP('127.0.0.1')).toBe('127.0.0.1');
    const status = (options: { ca?: string }) =>
      new Promise<number>((resolve, reject) => {
        const req = httpsRequest(`${first.url}/service/secrets/tokens/`, {
          headers: { authorization: `Bearer ServiceAccount ${first.tokens.serviceAccount.split(':')[2]}` },
          ...options,
        });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    // Not trusted without its certificate; answered with it.
    await expect(status({})).rejects.toMatchObject({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    expect(await status({ ca })).toBeGreaterThan(0);
    r.child.kill('SIGTERM');
    expect((await r.exit).code).toBe(0);
  });

  it.each([
    [['--ca-file', '/tmp/x.pem'], /--ca-file needs --tls/],
    [['--port', 'abc'], /--port must be an integer/],
    [['--port', '70000'], /--port must be an integer/],
    [['--bogus'], /Unknown option '--bogus'/],
    [['--seed'], /argument missing/],
    [['--seed', '/nonexistent/seed.yaml'], /ENOENT|no such file/],
  ])('exits 2 with a message on bad arguments: %j', async (args, message) => {
    const r = run(args);
    const { code, stderr } = await r.exit;
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
  });
});
