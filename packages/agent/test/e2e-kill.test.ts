// Process-level acceptance test (issue 3): `kill -9` of the sidecar at random moments while changes are being
// applied always leaves a complete, consistent snapshot, and the next sidecar takes the same directory over with
// the version numbering continuing.
import { watch } from 'node:fs';
import { readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { type CliProcess, type LogLine } from './helpers/cli.js';
import { consistentSnapshot, itLeaksNothing, setMarker, useSeededEmulator } from './helpers/fixture.js';
import { snapshotAbove, startSidecar } from './helpers/sidecar.js';

const ROUNDS = 10;
const VERSION_DIR = /^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d{9}$/;

const fixture = useSeededEmulator('kill');

/** The watcher's first verdict on the snapshot it found: written, updated or up to date, with its version. */
const firstVerdict = (line: LogLine) =>
  line.component === 'watcher' &&
  typeof line.version === 'number' &&
  ['snapshot written', 'snapshot updated', 'snapshot up to date'].includes(line.msg);

/** Resolves when inotify reports the moment of a write in `out` (bounded). */
async function writeMoment(
  out: string,
  moment: 'new version dir' | '..data_tmp' | 'flip',
  version: number,
): Promise<void> {
  const current = await readlink(join(out, '..data'));
  const matches = (name: string) =>
    moment === 'new version dir'
      ? VERSION_DIR.test(name) && name !== current
      : moment === '..data_tmp'
        ? name === '..data_tmp'
        : name === '..data';
  const watcher = watch(out);
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(
        () => reject(new Error(`timed out waiting for the ${moment} of the write after version ${version}`)),
        5_000,
      );
      watcher.on('change', (_event, name) => {
        if (typeof name === 'string' && matches(name)) resolve();
      });
      watcher.on('error', reject);
    });
  } finally {
    clearTimeout(timer);
    watcher.close();
  }
}

it(
  `kill -9 at ${ROUNDS} random moments during changes leaves a consistent snapshot that the next start takes over`,
  { timeout: 60_000 },
  async () => {
    const out = join(fixture.work.path, 'out');
    let marker = 0;
    let churning = true;
    // Changes keep coming faster than the sidecar polls, so most kills land while one is being applied.
    const churn = (async () => {
      while (churning) {
        setMarker(fixture.emu, `M${++marker}`);
        await sleep(30 + Math.random() * 60);
      }
    })();

    let diskVersion = 0;
    let kills = 0;
    try {
      for (let round = 1; round <= ROUNDS; round++) {
        const sidecar: CliProcess = startSidecar(fixture.emu, out);
        const verdict = await sidecar.waitForLog(firstVerdict, `round ${round}: the first snapshot`);
        // Takeover: the same directory, the numbering continues from what is on disk.
        if (verdict.msg === 'snapshot up to date')
          expect(verdict.version, `round ${round}`).toBe(diskVersion);
        else expect(verdict.version, `round ${round}: ${verdict.msg}`).toBe(diskVersion + 1);

        // Kill at a random moment: odd rounds anywhere within the next polls; the others while a write is under
        // way, as seen by inotify: a new version directory being filled, or the `..data_tmp` link before the flip,
        // or just after a flip (old versions being removed).
        const moment =
          round % 2 === 1 ? 'random' : (['new version dir', '..data_tmp', 'flip'] as const)[(round / 2) % 3]!;
        if (moment === 'random') await sleep(Math.random() * 400);
        else await writeMoment(out, moment, verdict.version as number);
        await sleep(Math.random() * 2);
        await sidecar.kill9();
        kills++;

        const snapshot = await consistentSnapshot(out).catch((error: Error) => {
          throw new Error(`round ${round}: the snapshot left by kill -9 is not consistent: ${error.message}`);
        });
        expect(snapshot.version, `round ${round}: the version went backwards`).toBeGreaterThanOrEqual(
          diskVersion,
        );
        diskVersion = snapshot.version;
      }
    } finally {
      churning = false;
      await churn;
    }
    expect(kills).toBeGreaterThanOrEqual(8);

    // A last start takes over, applies the newest values, and on a clean stop leaves one version and no leftovers.
    const last = startSidecar(fixture.emu, out);
    const verdict = await last.waitForLog(firstVerdict, 'the final takeover');
    expect(verdict.version).toBe(verdict.msg === 'snapshot up to date' ? diskVersion : diskVersion + 1);
    setMarker(fixture.emu, `M${++marker}`);
    await last.waitForLog(snapshotAbove(verdict.version as number), 'the newest values after the takeover');
    expect((await consistentSnapshot(out)).marker).toBe(`M${marker}`);
    expect((await last.stop()).code).toBe(0);
    const entries = await readdir(out);
    expect(
      entries.filter((name) => VERSION_DIR.test(name)),
      'old versions left behind',
    ).toHaveLength(1);
    expect(
      entries.filter((name) => name.startsWith('..') && name !== '..data' && !VERSION_DIR.test(name)),
    ).toEqual([]);
  },
);

itLeaksNothing(() => fixture.needles);
