import { startEmulator, type Emulator, type EmulatorState } from '@phasekit/emulator';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PhaseClient, type PhaseClientOptions, type PhaseError } from '../src/index.js';
import { kClock, type Clock } from '../src/internal/http.js';

// Every fault ends in its documented code, within the configured deadline, with no unhandled rejection. (A caller's
// own dispatcher is exercised by client.test.ts.) Back-off waits go through a recording clock, so a test asserts
// the waits the client asked for instead of spending them; deadline tests keep the real clock.

const seed = {
  apps: [{ name: 'shop', environments: [{ name: 'Production', secrets: [{ key: 'A', value: 'alpha' }] }] }],
};

let emulator: Emulator;
const clients: PhaseClient[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

/** A clock whose sleeps return at once (on the next turn of the event loop) and are recorded; jitter is fixed. */
function recordingClock(random = 0.5): Clock & { slept: number[] } {
  const slept: number[] = [];
  return {
    slept,
    random: () => random,
    sleep: (ms, signal) => {
      slept.push(ms);
      signal.throwIfAborted();
      return new Promise((resolve) => setImmediate(resolve));
    },
  };
}

function client(url = emulator.url, options: Partial<PhaseClientOptions> = {}, clock?: Clock) {
  const c = new PhaseClient({
    token: emulator.tokens.serviceAccount,
    host: url,
    env: {},
    retries: 2,
    timeoutMs: 500,
    totalTimeoutMs: 5_000,
    ...options,
    ...(clock === undefined ? {} : { [kClock]: clock }),
  });
  clients.push(c);
  return c;
}

async function outcome(promise: Promise<unknown>): Promise<{ error: PhaseError; ms: number }> {
  const start = performance.now();
  try {
    await promise;
  } catch (error) {
    return { error: error as PhaseError, ms: performance.now() - start };
  }
  throw new Error('expected the call to fail');
}

const read = (c: PhaseClient) => c.getSecrets({ app: 'shop', env: 'Production' });

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  emulator = await startEmulator({ seed });
});
afterEach(() => {
  emulator.clearFaults();
  emulator.clearRequests();
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await emulator.close();
  process.off('unhandledRejection', onUnhandled);
  expect(unhandled).toEqual([]);
});

describe('fault matrix', () => {
  it('429 with Retry-After: waits as told (plus jitter), then RATE_LIMITED with retryAfterMs', async () => {
    emulator.fault({ route: 'tokens', status: 429, retryAfter: 1 });
    const clock = recordingClock(0.5);
    const { error } = await outcome(read(client(emulator.url, {}, clock)));
    expect(error).toMatchObject({ code: 'RATE_LIMITED', status: 429, retryAfterMs: 1000 });
    expect(emulator.requests()).toHaveLength(3);
    // Retry-After's 1000 ms plus up to 250 ms of jitter (here half of it), before each of the two retries.
    expect(clock.slept).toEqual([1125, 1125]);
  });

  it('a real Retry-After wait is taken on the real clock', async () => {
    emulator.fault({ route: 'tokens', status: 429, retryAfter: 1, count: 1 });
    const start = performance.now();
    expect(await read(client())).toHaveLength(1);
    expect(performance.now() - start).toBeGreaterThanOrEqual(1000);
  });

  it('429 whose Retry-After exceeds the deadline fails at once instead of sleeping past it', async () => {
    emulator.fault({ route: 'tokens', status: 429, retryAfter: 120 });
    const { error, ms } = await outcome(read(client()));
    expect(error).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 120_000 });
    expect(emulator.requests()).toHaveLength(1);
    expect(ms).toBeLessThan(1_000);
  });

  it('a passing 429 or 503 is retried and the read succeeds', async () => {
    emulator.fault({ route: 'secrets', status: 503, count: 1 });
    emulator.fault({ route: 'tokens', status: 429, retryAfter: 0, count: 1 });
    expect(await read(client(emulator.url, {}, recordingClock()))).toHaveLength(1);
  });

  it.each([500, 501, 505, 520])('a single %i is retried and the read succeeds', async (status) => {
    emulator.fault({ route: 'tokens', status, count: 1 });
    expect(await read(client(emulator.url, {}, recordingClock()))).toHaveLength(1);
    expect(emulator.requests().map((r) => r.status)).toEqual([status, 200, 200]);
  });

  it('a 500 that persists ends NETWORK with the status after the retries', async () => {
    emulator.fault({ route: 'tokens', status: 500 });
    const { error } = await outcome(read(client(emulator.url, {}, recordingClock())));
    expect(error).toMatchObject({ code: 'NETWORK', status: 500 });
    expect(error.message).toBe('Phase is unavailable (500): Internal server error.');
    // retries: 2
    expect(emulator.requests()).toHaveLength(3);
  });

  it('a 400 is final: one request', async () => {
    emulator.fault({ route: 'tokens', status: 400 });
    const { error } = await outcome(read(client()));
    expect(error).toMatchObject({ code: 'NETWORK', status: 400 });
    expect(emulator.requests()).toHaveLength(1);
  });

  it.each([502, 503])('%i is retried with exponential backoff and ends NETWORK', async (status) => {
    emulator.fault({ route: 'secrets', status });
    const clock = recordingClock(0.999);
    const { error } = await outcome(read(client(emulator.url, {}, clock)));
    expect(error).toMatchObject({ code: 'NETWORK', status });
    expect(emulator.requests().filter((r) => r.route === 'secrets')).toHaveLength(3);
    // 500 ms, then 1,000 ms: each step doubles, jitter takes it down to no less than 75%.
    expect(clock.slept).toEqual([499, 999]);
  });

  it('back-off jitter stays between 75% and 100% of each step', async () => {
    emulator.fault({ route: 'secrets', status: 503 });
    const clock = recordingClock(0);
    await outcome(read(client(emulator.url, { retries: 5, totalTimeoutMs: 60_000 }, clock)));
    expect(clock.slept).toEqual([375, 750, 1500, 3000, 6000]);
  });

  it('a connection reset ends NETWORK after the retries', async () => {
    emulator.fault({ route: 'tokens', reset: true });
    const clock = recordingClock();
    const { error } = await outcome(read(client(emulator.url, {}, clock)));
    expect(clock.slept).toHaveLength(2);
    expect(error.code).toBe('NETWORK');
    expect(error.message).toMatch(/^could not reach Phase at http:\/\/127\.0\.0\.1:\d+: /);
  });

  it('a delay past the per-attempt timeout ends TIMEOUT within the deadline', async () => {
    emulator.fault({ route: 'tokens', delayMs: 3_000 });
    const { error, ms } = await outcome(read(client(emulator.url, { retries: 1, timeoutMs: 300 })));
    expect(error).toMatchObject({ code: 'TIMEOUT', message: 'Phase did not answer tokens within 300 ms' });
    expect(ms).toBeLessThan(2_000);
  });

  it('requests in flight together each end TIMEOUT at their own deadline', async () => {
    emulator.fault({ route: 'tokens', delayMs: 3_000 });
    const c = client(emulator.url, { retries: 0, timeoutMs: 400 });
    const first = outcome(read(c));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const second = outcome(c.apps());
    for (const { error, ms } of await Promise.all([first, second])) {
      expect(error).toMatchObject({ code: 'TIMEOUT', message: 'Phase did not answer tokens within 400 ms' });
      expect(ms).toBeGreaterThanOrEqual(390);
      expect(ms).toBeLessThan(1_000);
    }
  });

  it('the total deadline bounds every retry and wait', async () => {
    emulator.fault({ route: 'tokens', delayMs: 5_000 });
    const c = client(emulator.url, { retries: 10, timeoutMs: 400, totalTimeoutMs: 1_000 });
    const { error, ms } = await outcome(read(c));
    expect(error.code).toBe('TIMEOUT');
    expect(ms).toBeLessThan(1_600);
  });

  it('a malformed JSON body ends NETWORK', async () => {
    emulator.fault({ route: 'secrets', malformed: true });
    const { error } = await outcome(read(client(emulator.url, {}, recordingClock())));
    expect(error).toMatchObject({
      code: 'NETWORK',
      message: 'Phase answered secrets with a malformed body (not JSON)',
    });
  });

  it('a caller abort ends ABORTED at once', async () => {
    emulator.fault({ route: 'tokens', delayMs: 3_000 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('shutting down')), 100);
    const { error, ms } = await outcome(
      client(emulator.url, { timeoutMs: 5_000 }).getSecrets(
        { app: 'shop', env: 'Production' },
        { signal: controller.signal },
      ),
    );
    expect(error.code).toBe('ABORTED');
    expect(ms).toBeLessThan(1_000);
  });

  it("a caller's AbortSignal.timeout ends TIMEOUT, not ABORTED", async () => {
    emulator.fault({ route: 'tokens', delayMs: 3_000 });
    const { error, ms } = await outcome(
      client(emulator.url, { timeoutMs: 5_000 }).getSecrets(
        { app: 'shop', env: 'Production' },
        { signal: AbortSignal.timeout(200) },
      ),
    );
    expect(error.code).toBe('TIMEOUT');
    expect(ms).toBeLessThan(1_000);
  });

  it('a revoked token ends UNAUTHORIZED', async () => {
    const other = await startEmulator({ state: emulator.snapshot() });
    try {
      other.revokeToken('serviceAccount');
      const { error } = await outcome(read(client(other.url)));
      expect(error).toMatchObject({ code: 'UNAUTHORIZED', status: 403 });
      expect(error.message).toBe('Phase rejected the token (403): Token expired or deleted');
    } finally {
      await other.close();
    }
  });

  it('a tampered ciphertext ends DECRYPT naming the key, not the data', async () => {
    const state: EmulatorState = structuredClone(emulator.snapshot());
    const row = state.secrets[0]!;
    const parts = row.value.split(':');
    const body = Buffer.from(parts[3]!, 'base64');
    body[3] = body[3]! ^ 0x40;
    row.value = [...parts.slice(0, 3), body.toString('base64')].join(':');
    const other = await startEmulator({ state });
    try {
      const { error } = await outcome(read(client(other.url)));
      expect(error).toMatchObject({
        code: 'DECRYPT',
        message: 'could not decrypt the value of A in shop/Production',
      });
    } finally {
      await other.close();
    }
  });

  it('Phase being down ends NETWORK', async () => {
    const other = await startEmulator({ state: emulator.snapshot() });
    const url = other.url;
    await other.close();
    const { error } = await outcome(read(client(url, { retries: 1 }, recordingClock())));
    expect(error.code).toBe('NETWORK');
    expect(error.message).toContain('ECONNREFUSED');
  });
});

describe('per-call options', () => {
  it('retries and timeoutMs of one call override the client', async () => {
    const c = client();
    emulator.fault({ route: 'tokens', status: 503 });
    const { error } = await outcome(c.getSecrets({ app: 'shop', env: 'Production' }, { retries: 0 }));
    expect(error).toMatchObject({ code: 'NETWORK', status: 503 });
    expect(emulator.requests()).toHaveLength(1);
    emulator.clearFaults();
    emulator.clearRequests();
    emulator.fault({ route: 'tokens', delayMs: 400, count: 1 });
    const slow = await outcome(
      c.getSecrets({ app: 'shop', env: 'Production' }, { timeoutMs: 50, retries: 0 }),
    );
    expect(slow.error).toMatchObject({
      code: 'TIMEOUT',
      message: 'Phase did not answer tokens within 50 ms',
    });
    expect(slow.ms).toBeLessThan(300);
  });

  it('refuses a malformed per-call option with CONFIG', async () => {
    const { error } = await outcome(client().getSecrets({ app: 'shop', env: 'Production' }, { retries: -1 }));
    expect(error.code).toBe('CONFIG');
  });
});
