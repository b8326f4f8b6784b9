import { setTimeout as sleep } from 'node:timers/promises';
import { startEmulator, type Emulator } from '@phasekit/emulator';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  PhaseClient,
  type ChangeSet,
  type PhaseError,
  type SecretsWatch,
  type WatchSnapshot,
} from '../src/index.js';

const seed = {
  apps: [
    {
      name: 'shop',
      environments: [
        {
          name: 'Production',
          secrets: [
            { key: 'A', value: 'one' },
            { key: 'B', value: 'two' },
            { key: 'REF', value: '${Staging.S}' },
          ],
        },
        { name: 'Staging', secrets: [{ key: 'S', value: 'staging-1' }] },
        { name: 'Development', secrets: [{ key: 'D', value: 'dev' }] },
      ],
    },
  ],
};

let emulator: Emulator;
let client: PhaseClient;
const watches: SecretsWatch[] = [];

async function until(check: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(20);
  }
}

function watch(options = {}) {
  const w = client.watch({ app: 'shop', env: 'Production' }, { intervalMs: 100, jitter: 0, ...options });
  watches.push(w);
  return w;
}

beforeAll(async () => {
  emulator = await startEmulator({ seed });
  client = new PhaseClient({
    token: emulator.tokens.serviceAccount,
    host: emulator.url,
    env: {},
    retries: 0,
  });
});
afterEach(async () => {
  await Promise.all(watches.splice(0).map((w) => w.close()));
  emulator.clearFaults();
});
afterAll(async () => {
  await client.close();
  await emulator.close();
});

describe('watch', () => {
  it('yields the current secrets, then one snapshot per change with the names of what changed', async () => {
    const w = watch();
    const changes: ChangeSet[] = [];
    w.on('change', (c) => changes.push(c));
    const it = w[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.value.secrets.map((s: { key: string }) => s.key)).toEqual(['A', 'B', 'REF']);
    emulator.setSecret({ app: 'shop', env: 'Production', key: 'A', value: 'uno' });
    emulator.setSecret({ app: 'shop', env: 'Production', key: 'C', value: 'three' });
    emulator.deleteSecret({ app: 'shop', env: 'Production', key: 'B' });
    const next = await it.next();
    expect(next.value.changes).toEqual({ added: ['C'], removed: ['B'], changed: ['A'] });
    expect(changes.at(-1)).toEqual({ added: ['C'], removed: ['B'], changed: ['A'] });
  });

  it('an unchanged poll costs one request and no decryption', async () => {
    const w = watch();
    await w[Symbol.asyncIterator]().next();
    const decryptions = client.decryptions;
    emulator.clearRequests();
    await sleep(550);
    const routes = emulator.requests().map((r) => r.route);
    expect(routes.length).toBeGreaterThanOrEqual(3);
    expect(new Set(routes)).toEqual(new Set(['tokens']));
    expect(client.decryptions).toBe(decryptions);
  });

  it('a change in an environment that a reference reaches triggers a fetch', async () => {
    const w = watch();
    const it = w[Symbol.asyncIterator]();
    await it.next();
    emulator.setSecret({ app: 'shop', env: 'Staging', key: 'S', value: 'staging-2' });
    const next = await it.next();
    expect(next.value.changes.changed).toEqual(['REF']);
    expect(next.value.secrets.find((s: { key: string }) => s.key === 'REF').value).toBe('staging-2');
  });

  it('a write to an unrelated environment fetches nothing', async () => {
    const w = watch();
    await w[Symbol.asyncIterator]().next();
    emulator.clearRequests();
    emulator.setSecret({ app: 'shop', env: 'Development', key: 'D', value: 'dev-2' });
    await sleep(350);
    expect(emulator.requests().filter((r) => r.route === 'secrets')).toHaveLength(0);
  });

  it('keeps the last good secrets through errors, reports stale, then recovers', async () => {
    const w = watch({ staleAfterMs: 300 });
    const errors: PhaseError[] = [];
    let stale = 0;
    let recovered = 0;
    w.on('error', (e) => errors.push(e));
    w.on('stale', () => stale++);
    w.on('recovered', () => recovered++);
    await w[Symbol.asyncIterator]().next();
    const before = w.current;
    emulator.fault({ route: 'tokens', status: 503 });
    await until(() => stale === 1);
    expect(errors.every((e) => e.code === 'NETWORK')).toBe(true);
    expect(w.current).toBe(before);
    expect(w.stale).toBe(true);
    emulator.clearFaults();
    await until(() => recovered === 1);
    expect(w.stale).toBe(false);
  });

  it('stops when its signal aborts', async () => {
    const controller = new AbortController();
    const w = watch({ signal: controller.signal });
    const collected: unknown[] = [];
    const done = (async () => {
      for await (const snapshot of w) collected.push(snapshot);
    })();
    await until(() => collected.length === 1);
    controller.abort();
    await done;
    emulator.clearRequests();
    await sleep(250);
    expect(emulator.requests()).toHaveLength(0);
  });

  it('rejects its iterator at once when the first read fails for good (a misspelled app), with no listener', async () => {
    const w = client.watch({ app: 'misspelled', env: 'Production' }, { intervalMs: 100, jitter: 0 });
    watches.push(w);
    const started = Date.now();
    let error: PhaseError | undefined;
    try {
      const { done } = await w[Symbol.asyncIterator]().next();
      if (!done) throw new Error('yielded a snapshot of an app that does not exist');
    } catch (e) {
      error = e as PhaseError;
    }
    expect(error?.code).toBe('NOT_FOUND');
    expect(Date.now() - started).toBeLessThan(2_000);
    // The watch is over: it polls no more.
    emulator.clearRequests();
    await sleep(250);
    expect(emulator.requests()).toHaveLength(0);
  });

  it('rejects its iterator with UNAUTHORIZED for a revoked token, before any snapshot', async () => {
    const other = new PhaseClient({
      token: emulator.tokens.service,
      host: emulator.url,
      env: {},
      retries: 0,
    });
    emulator.fault({ route: 'tokens', status: 401 });
    const w = other.watch({ app: 'shop', env: 'Production' }, { intervalMs: 100, jitter: 0 });
    watches.push(w);
    await expect(w[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
    await other.close();
  });

  it('keeps retrying transient errors before the first snapshot and reports stale by the same rule', async () => {
    emulator.fault({ route: 'tokens', status: 503 });
    const w = watch({ staleAfterMs: 300 });
    const codes: string[] = [];
    let stale = 0;
    w.on('error', (e) => codes.push(e.code));
    w.on('stale', () => stale++);
    const first = w[Symbol.asyncIterator]().next();
    await until(() => stale === 1);
    expect(codes.length).toBeGreaterThan(1);
    expect(new Set(codes)).toEqual(new Set(['NETWORK']));
    emulator.clearFaults();
    const value = (await first).value as WatchSnapshot | undefined;
    // Earlier tests changed B and C; A and REF stay.
    const keys: string[] = value ? value.secrets.map((s) => s.key) : [];
    expect(keys).toEqual(expect.arrayContaining(['A', 'REF']));
  });
});
