import { inspect } from 'node:util';
import { startEmulator, type Emulator, type EmulatorState } from '@phasekit/emulator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PhaseClient, formatSecrets, type PhaseError } from '../src/index.js';

// Plants a value and drives every error path; neither the value nor any secret part of the token may
// appear in an error (message, stack, inspect, cause chain), a log line or an event.

const CANARY = 'CANARY-7f3b9e-do-not-leak';
const seed = {
  apps: [
    {
      name: 'shop',
      environments: [
        {
          name: 'Production',
          secrets: [
            { key: 'PLANTED', value: CANARY, comment: CANARY },
            { key: 'BROKEN_REF', value: `${CANARY} \${MISSING}` },
            { key: 'LOOP_A', value: `${CANARY}\${LOOP_B}` },
            { key: 'LOOP_B', value: `${CANARY}\${LOOP_A}` },
          ],
        },
      ],
    },
  ],
};

let emulator: Emulator;
const seen: string[] = [];
const logger = {
  debug: (obj: object, msg?: string) => seen.push(JSON.stringify(obj), msg ?? ''),
  info: (obj: object, msg?: string) => seen.push(JSON.stringify(obj), msg ?? ''),
  warn: (obj: object, msg?: string) => seen.push(JSON.stringify(obj), msg ?? ''),
  error: (obj: object, msg?: string) => seen.push(JSON.stringify(obj), msg ?? ''),
};
const clients: PhaseClient[] = [];

function client(url = emulator.url) {
  const c = new PhaseClient({
    token: emulator.tokens.serviceAccount,
    host: url,
    env: {},
    retries: 1,
    timeoutMs: 300,
    totalTimeoutMs: 3_000,
    logger,
  });
  clients.push(c);
  return c;
}

function record(error: unknown): void {
  let current: unknown = error;
  for (let depth = 0; current !== undefined && depth < 10; depth++) {
    seen.push(
      // eslint-disable-next-line @typescript-eslint/no-base-to-string -- errors and odd values alike
      String(current),
      (current as Error).stack ?? '',
      inspect(current, { depth: 10, showHidden: true }),
    );
    try {
      seen.push(JSON.stringify(current));
    } catch {
      // circular structures are covered by inspect
    }
    current = (current as { cause?: unknown }).cause;
  }
}

async function fails(promise: Promise<unknown>, code: string): Promise<void> {
  try {
    await promise;
  } catch (error) {
    record(error);
    expect((error as PhaseError).code).toBe(code);
    return;
  }
  throw new Error(`expected ${code}`);
}

const query = { app: 'shop', env: 'Production' };

beforeAll(async () => {
  emulator = await startEmulator({ seed });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await emulator.close();
});

describe('canary: no value or token in any error, log line or event', () => {
  it('drives every error path and finds the planted value and token nowhere', async () => {
    const token = emulator.tokens.serviceAccount;
    const c = client();

    // A successful read first, so values are in the decrypt cache while errors happen.
    const ok = await c.getSecrets({ ...query, keys: ['PLANTED'], comments: true });
    expect(ok[0]!.value).toBe(CANARY);

    try {
      new PhaseClient({ token: `${token}x`, env: {} });
    } catch (error) {
      record(error);
    }
    try {
      new PhaseClient({ env: { PHASE_SERVICE_TOKEN: token.replace('pss_service', 'pss_other') } });
    } catch (error) {
      record(error);
    }

    await fails(c.getSecrets(query), 'REFERENCE');
    await fails(c.getSecrets({ ...query, keys: ['LOOP_A'] }), 'REFERENCE');
    await fails(c.getSecrets({ ...query, env: 'nope' }), 'NOT_FOUND');
    await fails(c.getSecret({ ...query, key: 'ABSENT' }), 'NOT_FOUND');
    await fails(c.createSecrets({ ...query, secrets: [{ key: 'PLANTED', value: CANARY }] }), 'CONFLICT');
    await fails(c.updateSecrets({ ...query, secrets: [{ key: 'ABSENT', value: CANARY }] }), 'NOT_FOUND');

    for (const [fault, code] of [
      [{ status: 429, retryAfter: 0 }, 'RATE_LIMITED'],
      [{ status: 500 }, 'NETWORK'],
      [{ status: 503 }, 'NETWORK'],
      [{ status: 400 }, 'NETWORK'],
      [{ status: 401 }, 'UNAUTHORIZED'],
      [{ status: 403 }, 'FORBIDDEN'],
      [{ status: 404 }, 'NOT_FOUND'],
      [{ reset: true }, 'NETWORK'],
      [{ malformed: true }, 'NETWORK'],
      [{ delayMs: 1_000 }, 'TIMEOUT'],
    ] as const) {
      const handle = emulator.fault({ route: 'secrets', ...fault });
      await fails(c.getSecrets({ ...query, keys: ['PLANTED'] }), code);
      await fails(c.createSecrets({ ...query, secrets: [{ key: 'NEW', value: CANARY }] }), code);
      handle.clear();
    }

    const controller = new AbortController();
    controller.abort(new Error('stop'));
    await fails(c.getSecrets(query, { signal: controller.signal }), 'ABORTED');

    // Tampered ciphertext of the planted value.
    const state: EmulatorState = structuredClone(emulator.snapshot());
    for (const row of state.secrets) {
      const parts = row.value.split(':');
      const body = Buffer.from(parts[3]!, 'base64');
      body[0] = body[0]! ^ 1;
      row.value = [...parts.slice(0, 3), body.toString('base64')].join(':');
    }
    const tampered = await startEmulator({ state });
    await fails(client(tampered.url).getSecrets({ ...query, keys: ['PLANTED'] }), 'DECRYPT');
    tampered.revokeToken('serviceAccount');
    await fails(client(tampered.url).getSecrets(query), 'UNAUTHORIZED');
    await tampered.close();

    // Watch events through failures and changes.
    const w = c.watch({ ...query, keys: ['PLANTED'] }, { intervalMs: 50, staleAfterMs: 100 });
    w.on('change', (e) => seen.push(JSON.stringify(e)));
    w.on('error', (e) => record(e));
    w.on('stale', (e) => seen.push(JSON.stringify(e)));
    await w[Symbol.asyncIterator]().next();
    emulator.setSecret({ app: 'shop', env: 'Production', key: 'PLANTED', value: `${CANARY}-2` });
    await new Promise((r) => setTimeout(r, 200));
    const fault = emulator.fault({ route: 'tokens', status: 502 });
    await new Promise((r) => setTimeout(r, 400));
    fault.clear();
    await w.close();

    // Formatter refusals.
    for (const format of ['shell', 'dotenv'] as const) {
      try {
        formatSecrets([{ key: 'BAD KEY', value: `${CANARY}\0'"\`\n` }], format);
      } catch (error) {
        record(error);
      }
    }

    const haystack = seen.join('\n');
    expect(seen.length).toBeGreaterThan(50);
    expect(haystack).not.toContain(CANARY);
    for (const part of token.split(':').slice(2)) expect(haystack).not.toContain(part);
  });
});
