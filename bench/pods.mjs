// Item 8: phasekit in real pods. Builds the image (`pnpm image`), brings up the test node (or uses the one
// `pnpm k8s:up --node` started) and runs bench/pods-child.mjs inside its network namespace: pod start latency with
// and without the phasekit init container and with a native sidecar, and the sidecar's memory as the kubelet sees
// it, idle and after 1,000 changes. Needs Linux and root, like `pnpm test:e2e`.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildImage } from '../packages/agent/scripts/build-image.mjs';
import { down, exec, useNode } from '../packages/agent/test/k8s/node.mjs';

const CHILD = fileURLToPath(new URL('pods-child.mjs', import.meta.url));

export async function podsItem({ log }) {
  log('item 8: pods on a real node (image build, node up)');
  const image = await buildImage();
  const { state, started } = await useNode(image.path);
  const dir = mkdtempSync(join(tmpdir(), 'phasekit-bench-pods-'));
  try {
    const out = join(dir, 'result.json');
    const code = await exec([process.execPath, CHILD, out], state);
    if (code !== 0) throw new Error(`bench/pods-child.mjs exited ${code}`);
    const result = JSON.parse(readFileSync(out, 'utf8'));
    // The image: the archive as shipped (gzipped layer) and what it unpacks to.
    result.image = { archiveMiB: image.size / 2 ** 20, digest: image.digest };
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
    if (started) await down();
  }
}
