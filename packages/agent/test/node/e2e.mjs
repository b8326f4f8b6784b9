#!/usr/bin/env node
// `pnpm test:e2e`: the pod tests on a real node (issue 16). Builds the phasekit image, brings the node up (or uses
// the one `pnpm k8s:up --node` started, importing the fresh image into it), runs vitest with vitest.e2e.config.ts
// inside the node's network namespace, and takes down the node it started. Extra arguments go to vitest.
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildImage } from '../../scripts/build-image.mjs';
import { down, exec, requireRootOnLinux, useNode } from '../k8s/node.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const vitest = join(
  dirname(createRequire(join(REPO, 'package.json')).resolve('vitest/package.json')),
  'vitest.mjs',
);

const started = Date.now();
mkdirSync(join(REPO, '.tmp'), { recursive: true });
// Root and Linux are checked before the image is built, so a machine that cannot run the node says so at once.
try {
  requireRootOnLinux();
} catch (error) {
  process.stderr.write(`pnpm test:e2e: ${error.message}\n`);
  process.exit(1);
}
const image = await buildImage();
process.stderr.write(`image: ${image.path} (${image.digest})\n`);
// For image.e2e.ts: the archive the pods run, and its digest.
process.env.PHASEKIT_IMAGE_ARCHIVE = image.path;
process.env.PHASEKIT_IMAGE_DIGEST = image.digest;
const { state, started: ours } = await useNode(image.path);
process.stderr.write(`node up after ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
let code = 1;
try {
  code = await exec(
    [
      process.execPath,
      vitest,
      'run',
      '--config',
      join(REPO, 'vitest.e2e.config.ts'),
      '--reporter=default',
      '--reporter=json',
      `--outputFile.json=${join(REPO, '.tmp', 'vitest-e2e.json')}`,
      ...process.argv.slice(2),
    ],
    state,
  );
} finally {
  if (ours) await down();
}
process.stderr.write(`test:e2e took ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
process.exitCode = code;
