// Process-level acceptance test of the sidecar through outages (issue 3): Phase stopped and restarted on the same
// port, a 500 storm, a 429 storm with Retry-After, and malformed bodies. The snapshot stays byte-identical while
// Phase misbehaves, /readyz turns not-ready with a `stale` reason after --stale-after, and after recovery the newest
// values are picked up and readiness returns.
import { startEmulator, type Emulator } from '@phasekit/emulator';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { killAll, recordText, waitFor, type CliProcess } from './helpers/cli.js';
import {
  CANARY,
  consistentSnapshot,
  fingerprint,
  itLeaksNothing,
  setMarker,
  startSeeded,
  tempDir,
  tokenNeedles,
} from './helpers/fixture.js';
import { snapshotAbove, startSidecar } from './helpers/sidecar.js';

let emu: Emulator;
let work: { path: string; remove: () => Promise<void> };
const needles: string[] = [CANARY];

beforeAll(async () => {
  emu = await startSeeded();
  needles.push(...tokenNeedles(emu));
  work = await tempDir('outage');
});
afterEach(() => killAll());
afterAll(async () => {
  await emu.close();
  await work.remove();
});

const STALE_AFTER_MS = 1_000;

async function readyz(base: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2_000) });
  return { status: res.status, body: await res.text() };
}

async function waitReady(base: string, what: string): Promise<void> {
  await waitFor(async () => (await readyz(base)).status === 200, `/readyz 200 ${what}`, 8_000, 50);
}

/** Waits past --stale-after and checks that /readyz says not ready because the snapshot is stale. */
async function expectStale(base: string, what: string): Promise<void> {
  const state = await waitFor(
    async () => {
      const r = await readyz(base);
      return r.status === 503 ? r : undefined;
    },
    `/readyz 503 ${what}`,
    STALE_AFTER_MS + 5_000,
    50,
  );
  expect(state.body, what).toMatch(/stale/);
}

it('keeps the snapshot byte-identical through outages, turns stale, and recovers with the newest values', async () => {
  const out = join(work.path, 'out');
  const sidecar: CliProcess = startSidecar(emu, out, [
    '--health-addr',
    '127.0.0.1:0',
    '--stale-after',
    '1s',
    '--timeout',
    '2s',
  ]);
  const listening = await sidecar.waitForMsg('health server listening');
  const base = String(listening.url).replace(/\/$/, '');
  expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  await sidecar.waitForMsg('ready');
  await waitReady(base, 'after the first snapshot');
  let version = (await consistentSnapshot(out)).version;

  /** Runs an outage: the snapshot must not move, /readyz must go stale; then recovery brings `marker`. */
  const outage = async (
    name: string,
    marker: string,
    during: () => Promise<void>,
    recover: () => Promise<void>,
  ) => {
    const before = await fingerprint(out);
    await during();
    await expectStale(base, `during ${name}`);
    expect(await fingerprint(out), `snapshot changed during ${name}`).toBe(before);
    await recover();
    const line = await sidecar.waitForLog(snapshotAbove(version), `the newest values after ${name}`, {
      timeoutMs: 10_000,
    });
    version = line.version as number;
    expect((await consistentSnapshot(out)).marker, `values after ${name}`).toBe(marker);
    await waitReady(base, `after ${name}`);
  };

  // 1. Phase is gone (connection refused), then comes back on the same port with a change made meanwhile.
  const port = emu.port;
  const state = emu.snapshot();
  await outage(
    'Phase stopped',
    'M1',
    () => emu.close(),
    async () => {
      emu = await startEmulator({ state, port });
      setMarker(emu, 'M1');
    },
  );

  // 2. A 500 storm over many polls; a change waits behind it.
  await outage(
    '500 storm',
    'M2',
    async () => {
      emu.clearRequests();
      emu.fault({ route: 'any', status: 500 });
      setMarker(emu, 'M2');
      await waitFor(() => emu.requests().filter((r) => r.faulted).length >= 5, 'five failed polls', 8_000);
    },
    () => Promise.resolve(emu.clearFaults()),
  );

  // 3. A 429 storm with Retry-After: 1 s; the sidecar must wait at least that long between attempts.
  await outage(
    '429 storm',
    'M3',
    async () => {
      emu.clearRequests();
      emu.fault({ route: 'any', status: 429, retryAfter: 1 });
      setMarker(emu, 'M3');
      await waitFor(
        () => emu.requests().filter((r) => r.faulted).length >= 3,
        'three throttled polls',
        8_000,
      );
      const times = emu
        .requests()
        .filter((r) => r.faulted)
        .map((r) => Date.parse(r.time));
      for (let i = 1; i < times.length; i++) {
        expect(times[i]! - times[i - 1]!, 'retried before Retry-After passed').toBeGreaterThanOrEqual(950);
      }
    },
    () => Promise.resolve(emu.clearFaults()),
  );

  // 4. Malformed bodies: on the probe, and then on the fetch after a change was seen (the dangerous case).
  await outage(
    'malformed bodies',
    'M4',
    async () => {
      emu.clearRequests();
      emu.fault({ route: 'tokens', malformed: true });
      await waitFor(
        () => emu.requests().filter((r) => r.faulted).length >= 4,
        'four malformed probes',
        8_000,
      );
      emu.clearFaults();
      emu.fault({ route: 'secrets', malformed: true });
      setMarker(emu, 'M4');
      await waitFor(
        () => emu.requests().filter((r) => r.faulted && r.route === 'secrets').length >= 4,
        'four malformed fetches',
        8_000,
      );
    },
    () => Promise.resolve(emu.clearFaults()),
  );

  // Unchanged polls after recovery rewrite nothing.
  const settled = await fingerprint(out);
  await sleep(400);
  expect(await fingerprint(out)).toBe(settled);

  const metrics = await (await fetch(`${base}/metrics`)).text();
  recordText('/metrics', metrics);
  expect(metrics).toMatch(/phasekit_sync_total\{[^}]*result="failure"[^}]*\} [1-9]/);
  expect(metrics).toMatch(/phasekit_http_requests_total\{[^}]*status="500"[^}]*\} [1-9]/);
  expect(metrics).toMatch(/phasekit_http_requests_total\{[^}]*status="429"[^}]*\} [1-9]/);
  expect(metrics).toMatch(/phasekit_secrets \d+/);
  expect((await sidecar.stop()).code).toBe(0);
});

itLeaksNothing(() => needles);
