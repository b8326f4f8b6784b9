// Process-level acceptance test (issue 3): a reader PROCESS that resolves `..data` once per read never sees a torn
// snapshot (two versions mixed, or key files that disagree with the manifest) while the SIDECAR applies 300 changes.
import type { Emulator } from '@phasekit/emulator';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { killAll } from './helpers/cli.js';
import {
  APP,
  CANARY,
  ENV,
  consistentSnapshot,
  itLeaksNothing,
  setMarker,
  startSeeded,
  tempDir,
  tokenNeedles,
} from './helpers/fixture.js';
import { SnapshotReader } from './helpers/reader.js';
import { snapshotAbove, startSidecar } from './helpers/sidecar.js';

const CHANGES = 300;

let emu: Emulator;
let work: { path: string; remove: () => Promise<void> };
let reader: SnapshotReader | undefined;
const needles: string[] = [CANARY];

beforeAll(async () => {
  emu = await startSeeded();
  needles.push(...tokenNeedles(emu));
  work = await tempDir('torn');
});
afterEach(async () => {
  reader?.kill();
  await killAll();
});
afterAll(async () => {
  await emu.close();
  await work.remove();
});

it(
  `a reader process sees no torn read while the sidecar applies ${CHANGES} changes`,
  { timeout: 120_000 },
  async () => {
    const out = join(work.path, 'out');
    const sidecar = startSidecar(emu, out);
    await sidecar.waitForMsg('ready');
    const start = await consistentSnapshot(out);
    reader = await SnapshotReader.start(work.path, out);

    let version = start.version;
    for (let n = 1; n <= CHANGES; n++) {
      const from = sidecar.logs.length;
      const marker = `M${n}`;
      // One synchronous burst: every value gets the new marker, and the key set changes every few rounds.
      setMarker(emu, marker);
      if (n % 3 === 0) emu.deleteSecret({ app: APP, env: ENV, key: 'K99' });
      else emu.setSecret({ app: APP, env: ENV, key: 'K99', value: `value-99:${marker}` });
      const line = await sidecar.waitForLog(snapshotAbove(version), `the sidecar to apply change ${n}`, {
        from,
        timeoutMs: 5_000,
      });
      expect(line.version, `change ${n} was applied as more than one version`).toBe(version + 1);
      version = line.version as number;
    }
    const summary = await reader.stop();
    expect(summary.problems, JSON.stringify(summary)).toEqual([]);
    expect(summary.torn).toBe(0);
    expect(summary.errors).toBe(0);
    expect(summary.backwards).toBe(0);
    expect(summary.reads).toBeGreaterThan(CHANGES);
    expect(summary.versions, 'the reader saw too few versions to prove anything').toBeGreaterThan(
      CHANGES / 4,
    );

    const end = await consistentSnapshot(out);
    expect(end.marker).toBe(`M${CHANGES}`);
    expect(end.version).toBe(start.version + CHANGES);
    expect((await sidecar.stop()).code).toBe(0);
  },
);

itLeaksNothing(() => needles);
