/** Fault injection: status, Retry-After, delay, connection reset, malformed body, count, and matching rules. */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../src/index.js';
import { BASIC_SEED, call } from './helpers.js';

let emu: Emulator;
let envId: string;

beforeAll(async () => {
  emu = await startEmulator({ seed: BASIC_SEED });
  envId = emu.apps[0]!.environments[0]!.id;
});
afterAll(async () => {
  await emu.close();
});
beforeEach(() => {
  emu.clearFaults();
  emu.clearRequests();
});

const tokens = () => call(emu.url, '/service/secrets/tokens/', { token: emu.tokens.serviceAccount });
const secrets = (method = 'GET') =>
  call(emu.url, '/service/secrets/', {
    method,
    token: emu.tokens.serviceAccount,
    headers: { environment: envId },
    ...(method === 'GET' ? {} : { body: { secrets: [] } }),
  });

describe('fault injection', () => {
  it('answers a fixed status with a JSON error body', async () => {
    emu.fault({ route: 'secrets', status: 503 });
    const res = await secrets();
    expect([res.status, res.json]).toEqual([503, { error: 'Internal server error.' }]);
    expect((await tokens()).status).toBe(200);
    expect(emu.requests().map((r) => [r.route, r.status, r.faulted])).toEqual([
      ['secrets', 503, true],
      ['tokens', 200, false],
    ]);
  });

  it('answers 429 with Retry-After when only retryAfter is given', async () => {
    emu.fault({ retryAfter: 7 });
    const res = await tokens();
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('7');
    expect(res.json).toEqual({ error: 'Request was throttled. Expected available in 7 seconds.' });
  });

  it('delays the real answer by delayMs', async () => {
    emu.fault({ route: 'tokens', delayMs: 300 });
    const started = performance.now();
    const res = await tokens();
    expect(res.status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
  });

  it('resets the connection', async () => {
    emu.fault({ route: 'tokens', reset: true });
    await expect(tokens()).rejects.toThrow();
    expect(emu.requests()[0]?.status).toBe(0);
    emu.clearFaults();
    expect((await tokens()).status).toBe(200);
  });

  it('sends a truncated non-JSON 200 body', async () => {
    emu.fault({ route: 'secrets', malformed: true });
    const res = await secrets();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(() => JSON.parse(res.text) as unknown).toThrow();
  });

  it('affects only `count` matching requests, first registered fault first', async () => {
    emu.fault({ route: 'tokens', status: 502, count: 2 });
    emu.fault({ route: 'tokens', status: 504, count: 1 });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await tokens()).status);
    expect(statuses).toEqual([502, 502, 504, 200]);
  });

  it('matches on method, case-insensitively', async () => {
    emu.fault({ route: 'secrets', method: 'post', status: 500 });
    expect((await secrets('GET')).status).toBe(200);
    expect((await secrets('POST')).status).toBe(500);
  });

  it('clear() removes one fault and clearFaults() all of them', async () => {
    const first = emu.fault({ status: 500 });
    first.clear();
    expect((await tokens()).status).toBe(200);
    emu.fault({ status: 500 });
    emu.fault({ status: 501 });
    emu.clearFaults();
    expect((await tokens()).status).toBe(200);
  });

  it('rejects an invalid spec with a message naming the option', () => {
    expect(() => emu.fault({ route: 'everything' } as never)).toThrow(/route/);
    expect(() => emu.fault({ status: 42 })).toThrow(/status/);
  });

  it('never touches the control API', async () => {
    emu.fault({ status: 500 });
    expect((await call(emu.url, '/__phasekit/info')).status).toBe(200);
  });

  it('a pending delay does not keep close() waiting', async () => {
    const slow = await startEmulator({ seed: BASIC_SEED });
    slow.fault({ delayMs: 60_000 });
    const pending = call(slow.url, '/service/health/').catch((error: unknown) => error);
    await new Promise((r) => setTimeout(r, 50));
    const started = performance.now();
    await slow.close();
    expect(performance.now() - started).toBeLessThan(1000);
    expect(await pending).toBeInstanceOf(Error);
  });
});
