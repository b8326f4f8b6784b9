#!/usr/bin/env node
// Lays out the container image's /app from a built workspace: the CLI bundle (packages/agent/dist/cli, every
// dependency inlined) and, beside it in node_modules/, sodium-native with its runtime dependencies and only its
// Linux prebuilds, so the image decrypts with the native backend. deploy/Containerfile copies this directory;
// packages/agent/test/image-layout.test.ts runs the CLI from it.
//
//   node packages/agent/scripts/stage-image.mjs OUT_DIR
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const AGENT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BUNDLE = join(AGENT, 'dist', 'cli');
/** The platforms our images are built for. */
const PREBUILDS = new Set(['linux-x64', 'linux-arm64']);

/** Where `name` resolves from the directory `from`, by Node's node_modules lookup (exports maps aside). */
function packageDir(name, from) {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name, 'package.json');
    if (existsSync(candidate)) return dirname(realpathSync(candidate));
    if (dirname(dir) === dir) throw new Error(`cannot find ${name} from ${from}`);
  }
}

/**
 * The node flags of the image's ENTRYPOINT in deploy/Containerfile (what the shipped CLI runs with), read from that
 * line so that the bench and the tests cannot drift from it.
 */
export function entrypointFlags() {
  const containerfile = readFileSync(join(AGENT, '..', '..', 'deploy', 'Containerfile'), 'utf8');
  const line = /^ENTRYPOINT (\[.*\])$/m.exec(containerfile);
  if (line === null) throw new Error('deploy/Containerfile has no ENTRYPOINT in exec form');
  const argv = JSON.parse(line[1]);
  return argv.slice(
    1,
    argv.findIndex((arg) => arg.endsWith('phasekit.js')),
  );
}

/** Copies the bundle and sodium-native's runtime closure into `out`; returns the packages copied. */
export function stageImage(out) {
  if (!existsSync(join(BUNDLE, 'phasekit.js')))
    throw new Error(`${BUNDLE} is not built: run pnpm build first`);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  for (const name of readdirSync(BUNDLE)) {
    if (name.endsWith('.js') || name === 'package.json') cpSync(join(BUNDLE, name), join(out, name));
  }
  const copied = new Map();
  const visit = (name, from) => {
    const dir = packageDir(name, from);
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const seen = copied.get(name);
    if (seen !== undefined) {
      // node_modules here is flat: two versions of one package cannot both live in it.
      if (seen !== manifest.version)
        throw new Error(`${name}: both ${seen} and ${manifest.version} are needed`);
      return;
    }
    copied.set(name, manifest.version);
    const target = join(out, 'node_modules', name);
    cpSync(dir, target, {
      recursive: true,
      dereference: true,
      filter: (src) => {
        const rel = src.slice(dir.length + 1).split('/');
        if (rel[0] === 'node_modules') return false;
        if (rel[0] === 'prebuilds' && rel.length > 1) return PREBUILDS.has(rel[1]);
        return true;
      },
    });
    for (const dep of Object.keys(manifest.dependencies ?? {})) visit(dep, dir);
  };
  visit('sodium-native', AGENT);
  return Object.fromEntries(copied);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2];
  if (!out) {
    process.stderr.write('usage: stage-image.mjs OUT_DIR\n');
    process.exit(2);
  }
  const packages = stageImage(resolve(out));
  process.stdout.write(`${JSON.stringify({ out: resolve(out), packages })}\n`);
}
