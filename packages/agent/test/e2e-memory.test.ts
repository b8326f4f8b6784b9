// Process-level tests of the sidecar's memory settings (docs/benchmarks.md, item 5): the image's ENTRYPOINT gives
// node the V8 flags for a long-running process; the program sets none itself.
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { imageNodeFlags, recordText, spawnCli, type CliProcess } from './helpers/cli.js';
import { APP, ENV, itLeaksNothing, setMarker, useSeededEmulator } from './helpers/fixture.js';
import { snapshotAbove } from './helpers/sidecar.js';

const MiB = 1024 * 1024;
/** Enough secrets that applying a change allocates several megabytes. */
const BULK = Array.from({ length: 600 }, (_, i) => ({
  key: `BULK_${String(i).padStart(4, '0')}`,
  value: `bulk-value-${i}-${'x'.repeat(120)}`,
}));

const fixture = useSeededEmulator('memory', BULK);

function sidecar(name: string, nodeArgs: readonly string[]): CliProcess {
  return spawnCli(
    [
      'sidecar',
      ...['--host', fixture.emu.url, '--app', APP, '--env', ENV, '--out', join(fixture.work.path, name)],
      ...['--interval', '100ms', '--health-addr', '127.0.0.1:0'],
    ],
    { token: fixture.emu.tokens.serviceAccount, nodeArgs },
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
    setMarker(fixture.emu, `${tag}${round}`);
    await process.waitForLog(snapshotAbove(round), `snapshot ${round + 1}`, { from, timeoutMs: 10_000 });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    recordText('/metrics', metrics);
    const m = /^phasekit_nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)/m.exec(metrics);
    expect(m, 'the new-space size in /metrics').not.toBeNull();
    largest = Math.max(largest, Number(m![1]));
  }
  return largest;
}

it("keeps V8's young generation at 1 MB semi-spaces with the image's ENTRYPOINT flags", async () => {
  expect(imageNodeFlags()).toContain('--max-semi-space-size=1');
  const process = sidecar('image-flags', imageNodeFlags());
  expect(await newSpaceAfterChanges(process, 'T')).toBeLessThanOrEqual(2 * MiB);
  expect((await process.stop()).code).toBe(0);
});

it('sets no V8 flags itself: without them, the young generation grows under the same changes', async () => {
  const process = sidecar('node-defaults', []);
  // V8 grows the young generation only under allocation pressure: more rounds than above, so that it surely has.
  expect(await newSpaceAfterChanges(process, 'D', 12)).toBeGreaterThan(2 * MiB);
  expect((await process.stop()).code).toBe(0);
});

itLeaksNothing(() => fixture.needles);
