#!/usr/bin/env node
// `pnpm image`: builds the phasekit container image as an OCI archive, with no daemon and no registry (issue 16).
//
// The layout is deploy/Containerfile's, read from that file so the two cannot drift (image-build.test.ts checks it):
//   /nodejs/bin/node      the Node release the Containerfile pins, from the npm registry's node-linux-<arch> package
//   /app/                 scripts/stage-image.mjs: the CLI bundle and sodium-native with its Linux prebuilds
//   /lib*, /usr/lib*      the C libraries node and sodium-native load (as `ldd` lists them), from this machine
//   /etc/ssl/certs/ca-certificates.crt, /etc/passwd, /etc/group (nonroot = 65532), /tmp; no shell
// and the config: USER, WORKDIR, ENTRYPOINT, CMD and LABELs of the Containerfile, with the version (the agent's) and
// the revision (git HEAD) filled in.
//
//   node packages/agent/scripts/build-image.mjs [--out FILE]
//
// Prints the archive's path, size and digest, the path last. Needs Linux (ldd) and a built workspace (pnpm build).
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ociArch, writeOciArchive } from './oci.mjs';
import { stageImage } from './stage-image.mjs';

const AGENT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const REPO = resolve(AGENT, '..', '..');
const CONTAINERFILE = join(REPO, 'deploy', 'Containerfile');
const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/**
 * What deploy/Containerfile's runtime stage says: the pinned Node version, the user, working directory, entrypoint,
 * command, labels and where node and the app are copied.
 */
export function containerfileSpec(text = readFileSync(CONTAINERFILE, 'utf8')) {
  const lines = text.replace(/\\\n\s*/g, ' ').split('\n');
  const stages = [];
  for (const line of lines) {
    const from = /^FROM (\S+)/.exec(line);
    if (from) stages.push({ from: from[1], lines: [] });
    else if (stages.length > 0 && /^[A-Z]/.test(line)) stages.at(-1).lines.push(line);
  }
  const build = stages[0];
  const runtime = stages.at(-1);
  const node = /node:(\d+\.\d+\.\d+)/.exec(build.from)?.[1];
  if (node === undefined) throw new Error(`deploy/Containerfile: no pinned node:X.Y.Z in "${build.from}"`);
  const one = (instruction) => {
    const found = runtime.lines.filter((l) => l.startsWith(`${instruction} `));
    if (found.length !== 1)
      throw new Error(`deploy/Containerfile: expected one ${instruction} in the last stage`);
    return found[0].slice(instruction.length + 1).trim();
  };
  const labels = {};
  for (const line of runtime.lines.filter((l) => l.startsWith('LABEL '))) {
    for (const [, key, value] of line.matchAll(/([\w.-]+)="([^"]*)"/g)) labels[key] = value;
  }
  const copies = runtime.lines.filter((l) => l.startsWith('COPY ')).map((l) => l.split(/\s+/).at(-1));
  return {
    node,
    user: one('USER'),
    workdir: one('WORKDIR'),
    entrypoint: JSON.parse(one('ENTRYPOINT')),
    cmd: JSON.parse(one('CMD')),
    labels,
    copies,
  };
}

/** The node binary of `version` for `arch`, from the npm registry (verified by npm), cached by version. */
function nodeBinary(version, arch) {
  const dir = join(homedir(), '.cache', 'phasekit', 'node', `${version}-linux-${arch}`);
  const bin = join(dir, 'package', 'bin', 'node');
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    const pkg = `node-linux-${arch}@${version}`;
    const [packed] = JSON.parse(
      execFileSync('npm', ['pack', pkg, '--json', '--pack-destination', dir], { encoding: 'utf8' }),
    );
    execFileSync('tar', ['-xzf', join(dir, packed.filename), '-C', dir]);
    rmSync(join(dir, packed.filename));
  }
  return bin;
}

/** The shared libraries `file` loads, as `ldd` resolves them on this machine: [path in the image, real file]. */
function libraries(file) {
  const out = execFileSync('ldd', [file], { encoding: 'utf8' });
  const found = [];
  for (const line of out.split('\n')) {
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (match) found.push([match[1], realpathSync(match[1])]);
  }
  return found;
}

const file = (name, source, mode) => ({ name, source, mode: mode ?? statSync(source).mode & 0o777 });
const text = (name, content, mode = 0o644) => ({ name, data: Buffer.from(content), mode });
const dir = (name, mode = 0o755, owner = 0) => ({ name, dir: true, mode, uid: owner, gid: owner });

/** Every file under `root` as image entries under `prefix`, directories included. */
function tree(root, prefix) {
  const entries = [dir(prefix)];
  for (const name of readdirSync(root, { recursive: true })) {
    const path = join(root, name);
    const st = statSync(path);
    const target = `${prefix}/${name}`;
    entries.push(st.isDirectory() ? dir(target) : file(target, path, st.mode & 0o111 ? 0o755 : 0o644));
  }
  return entries;
}

/** Builds the archive; resolves `{ path, size, digest, version }`. */
export async function buildImage({ out } = {}) {
  const spec = containerfileSpec();
  const { version } = JSON.parse(readFileSync(join(AGENT, 'package.json'), 'utf8'));
  const arch = process.arch;
  const nodeAt = spec.copies.find((c) => c.endsWith('/bin/node'));
  const appAt = spec.copies.find((c) => c !== nodeAt)?.replace(/\/$/, '');
  if (nodeAt === undefined || appAt === undefined)
    throw new Error('deploy/Containerfile: expected COPY lines for the node binary and the app');
  if (!existsSync(CA_BUNDLE)) throw new Error(`${CA_BUNDLE} is missing: install the ca-certificates package`);
  const [uid, gid] = spec.user.split(':').map(Number);

  const work = mkdtempSync(join(tmpdir(), 'phasekit-image-'));
  try {
    const app = join(work, 'app');
    stageImage(app);
    const node = nodeBinary(spec.node, arch === 'x64' ? 'x64' : 'arm64');
    const addon = readdirSync(join(app, 'node_modules', 'sodium-native', 'prebuilds', `linux-${arch}`))
      .filter((n) => n.endsWith('.node'))
      .map((n) => join(app, 'node_modules', 'sodium-native', 'prebuilds', `linux-${arch}`, n));
    const libs = new Map();
    for (const binary of [node, ...addon]) for (const [at, real] of libraries(binary)) libs.set(at, real);

    const entries = new Map();
    const add = (entry) => {
      const name = entry.name.replace(/^\//, '');
      // Parent directories first, root-owned and 0755, unless listed explicitly.
      const parts = name.split('/');
      for (let i = 1; i < parts.length; i++) {
        const parent = parts.slice(0, i).join('/');
        if (!entries.has(parent)) entries.set(parent, dir(parent));
      }
      entries.set(name, { ...entry, name });
    };
    add(file(nodeAt, node, 0o755));
    for (const entry of tree(app, appAt)) add(entry);
    for (const [at, real] of libs) add(file(at, real, 0o755));
    add(file(CA_BUNDLE, CA_BUNDLE, 0o644));
    add(
      text(
        '/etc/passwd',
        `root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:${uid}:${gid}:nonroot:/home/nonroot:/sbin/nologin\n`,
      ),
    );
    add(text('/etc/group', `root:x:0:\nnonroot:x:${gid}:\n`));
    add(text('/etc/nsswitch.conf', 'passwd: files\ngroup: files\nhosts: files dns\n'));
    add(dir('/home/nonroot', 0o700, uid));
    add(dir('/tmp', 0o1777));
    add(dir('/root', 0o700));

    let revision;
    try {
      revision = execFileSync('git', ['rev-parse', 'HEAD'], {
        cwd: REPO,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
    } catch {
      revision = undefined;
    }
    const labels = {
      ...spec.labels,
      'org.opencontainers.image.version': version,
      ...(revision ? { 'org.opencontainers.image.revision': revision } : {}),
    };
    const target = resolve(
      out ?? join(AGENT, 'dist', 'image', `phasekit-${version}-linux-${ociArch(arch)}.oci.tar`),
    );
    mkdirSync(dirname(target), { recursive: true });
    const result = await writeOciArchive({
      out: target,
      files: [...entries.values()],
      config: {
        User: spec.user,
        Env: [`PATH=${dirname(nodeAt)}:/usr/local/bin:/usr/bin:/bin`],
        Entrypoint: spec.entrypoint,
        Cmd: spec.cmd,
        WorkingDir: spec.workdir,
        Labels: labels,
      },
      names: [`localhost/phasekit:${version}`, 'localhost/phasekit:dev'],
    });
    return { ...result, version, relative: relative(process.cwd(), result.path) };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--out');
  const image = await buildImage({ out: at > 0 ? process.argv[at + 1] : undefined });
  const mb = (image.size / 1024 / 1024).toFixed(1);
  process.stdout.write(`phasekit ${image.version}: ${mb} MiB, ${image.digest}\n${image.path}\n`);
}
