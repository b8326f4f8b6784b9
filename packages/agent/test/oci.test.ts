// scripts/oci.mjs, which `pnpm image` and the test node's pause image use: reproducible archives (same files, same
// digest, whatever the files' times on disk), read back by GNU tar and by our own reader, long names included.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tarEntries, writeOciArchive } from '../scripts/oci.mjs';

const run = promisify(execFile);
const LONG = `app/node_modules/${'deeply-nested-package/'.repeat(5)}index.js`;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'phasekit-oci-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function archive(name: string, mtime: number): Promise<{ path: string; digest: string }> {
  const source = join(dir, `${name}-source.js`);
  await writeFile(source, 'console.log("hello")\n');
  await utimes(source, mtime, mtime);
  const out = join(dir, `${name}.oci.tar`);
  const result = await writeOciArchive({
    out,
    files: [
      { name: 'app', dir: true, mode: 0o755 },
      { name: 'app/phasekit.js', source, mode: 0o644 },
      { name: LONG, data: Buffer.from('long'), mode: 0o644 },
      {
        name: 'etc/passwd',
        data: Buffer.from('nonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n'),
        mode: 0o644,
      },
      { name: 'home/nonroot', dir: true, mode: 0o700, uid: 65532, gid: 65532 },
      { name: 'bin/node', symlink: '/nodejs/bin/node', mode: 0o777 },
    ],
    config: { User: '65532:65532', Entrypoint: ['/app/phasekit.js'] },
    names: ['localhost/test:1', 'localhost/test:dev'],
    architecture: 'amd64',
  });
  return { path: out, digest: result.digest };
}

function layerOf(buf: Buffer): Buffer {
  const outer = new Map([...tarEntries(buf)].map((e) => [e.name, e.data]));
  const index = JSON.parse(outer.get('index.json')!.toString()) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(
    outer.get(`blobs/sha256/${index.manifests[0]!.digest.slice(7)}`)!.toString(),
  ) as {
    layers: { digest: string }[];
  };
  return gunzipSync(outer.get(`blobs/sha256/${manifest.layers[0]!.digest.slice(7)}`)!);
}

describe('OCI archives (scripts/oci.mjs)', () => {
  it('gives the same digest for the same files, whatever their times on disk', async () => {
    const a = await archive('a', 1_000_000);
    const b = await archive('b', 2_000_000);
    expect(a.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(b.digest).toBe(a.digest);
    expect(await readFile(b.path)).toEqual(await readFile(a.path));
  });

  it('writes a layer GNU tar reads, sorted, with long names, numeric owners and a fixed time', async () => {
    const { path } = await archive('c', 3_000_000);
    const layer = join(dir, 'layer.tar');
    await writeFile(layer, layerOf(await readFile(path)));
    const { stdout } = await run('tar', ['--numeric-owner', '--full-time', '-tvf', layer]);
    const lines = stdout.trim().split('\n');
    expect(lines.map((l) => l.split(/\s+/).slice(5).join(' '))).toEqual([
      'app/',
      LONG,
      'app/phasekit.js',
      'bin/node -> /nodejs/bin/node',
      'etc/passwd',
      'home/nonroot/',
    ]);
    expect(lines[0]).toMatch(/^drwxr-xr-x 0\/0 +0 1970-01-01 00:00:00 /);
    expect(lines[5]).toMatch(/^drwx------ 65532\/65532 /);
  });

  it('reads back with tarEntries, PAX paths applied', async () => {
    const { path } = await archive('d', 4_000_000);
    const entries = [...tarEntries(layerOf(await readFile(path)))];
    const long = entries.find((e) => e.name === LONG);
    expect(long?.data.toString()).toBe('long');
    expect(entries.find((e) => e.name === 'bin/node')).toMatchObject({
      type: '2',
      linkname: '/nodejs/bin/node',
    });
  });
});
