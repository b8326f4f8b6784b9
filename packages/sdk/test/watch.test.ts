import { setTimeout as sleep } from 'node:timers/promises';
import { startEmulator, type Emulator } from '@phasekit/emulator';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PhaseClient, type ChangeSet, type PhaseError, type SecretsWatch } from '../src/index.js';

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
});
