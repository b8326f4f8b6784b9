// The helper thread that shares large reads (internal/parallel.ts): same results as this thread, in order, the same
// refusals, and the same errors through PhaseClient, against the emulator over HTTP.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startEmulator, type Emulator, type EmulatorState } from '@phasekit/emulator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cryptoReady,
  decryptAsymmetric,
  encryptAsymmetric,
  envKeyPair,
  useCryptoBackend,
} from '../src/internal/crypto.js';
import { PARALLEL_MIN_BATCH, decryptBatch, helperChunkCount } from '../src/internal/parallel.js';
import { PhaseClient } from '../src/index.js';

const SEED = '9d1bd6f6d1a5b54de7e3a0a5dbb0e1b8b8cfd3a1d2a7f1c4b4d5e6f708192a3b';

beforeAll(async () => {
  await cryptoReady();
  await useCryptoBackend('native');
});

function tamper(ciphertext: string): string {
  const parts = ciphertext.split(':');
  const body = Buffer.from(parts[3]!, 'base64');
  body[5] = body[5]! ^ 0x01;
  return [...parts.slice(0, 3), body.toString('base64')].join(':');
}

describe('decryptBatch', () => {
  const keys = () => envKeyPair(SEED);
  const batch = () => {
    const list = Array.from({ length: PARALLEL_MIN_BATCH + 100 }, (_, i) =>
      encryptAsymmetric(`value ${i} ✓ ${'x'.repeat(i % 50)}`, keys().publicKey),
    );
    // What this thread refuses, the helper must refuse too: tampered, malformed, not UTF-8, wrong prefix.
    list[3] = tamper(list[3]!);
    list[70] = list[70]!.replace('ph:v1:', 'ph:v2:');
    list[200] = `${list[200]!}:extra`;
    list[500] = list[500]!.slice(0, 80);
    list[900] = encryptAsymmetric('', keys().publicKey);
    return list;
  };
  const expected = (list: readonly string[]) =>
    list.map((ciphertext) => {
      try {
        return decryptAsymmetric(ciphertext, keys(), 'x');
      } catch {
        return undefined;
      }
    });

  it('the helper alone gives exactly what this thread gives, refusing the same ciphertexts', async () => {
    const list = batch();
    const before = helperChunkCount();
    const results = await decryptBatch(list, keys(), { share: false });
    expect(helperChunkCount() - before).toBe(Math.ceil(list.length / 64));
    expect(results).toEqual(expected(list));
    expect(results[3]).toBeUndefined();
    expect(results[70]).toBeUndefined();
    expect(results[200]).toBeUndefined();
    expect(results[500]).toBeUndefined();
    expect(results[900]).toBe('');
  });

  it('shared between both threads, keeps the order and the results', async () => {
    const list = batch();
    const results = await decryptBatch(list, keys());
    expect(results).toEqual(expected(list));
  });

  it('decrypts a batch below the threshold on this thread alone', async () => {
    const list = batch().slice(0, 100);
    const before = helperChunkCount();
    expect(await decryptBatch(list, keys())).toEqual(expected(list));
    expect(helperChunkCount()).toBe(before);
  });
});

describe('PhaseClient with a large environment', () => {
  let emulator: Emulator;
  // 2,800 keys, values and comments: 8,400 ciphertexts, enough for a helper thread on a cold read.
  const secrets = Array.from({ length: 2800 }, (_, i) => ({
    key: `KEY_${String(i).padStart(4, '0')}`,
    value: `value-${i}-${'v'.repeat(i % 40)}`,
    comment: `comment ${i}`,
  }));

  beforeAll(async () => {
    emulator = await startEmulator({
      seed: { apps: [{ name: 'big', environments: [{ name: 'Production', secrets }] }] },
    });
  });
  afterAll(async () => {
    await emulator.close();
  });

  const read = async (parallelDecrypt: boolean, url = emulator.url) => {
    const client = new PhaseClient({ token: emulator.tokens.serviceAccount, host: url, parallelDecrypt });
    try {
      return await client.getSecrets({ app: 'big', env: 'Production', comments: true });
    } finally {
      await client.close();
    }
  };

  it('reads the same secrets, comments included, with and without the helper thread', async () => {
    const shared = await read(true);
    const alone = await read(false);
    expect(shared).toEqual(alone);
    expect(shared.map((s) => [s.key, s.value, s.comment])).toEqual(
      secrets.map((s) => [s.key, s.value, s.comment]),
    );
  });

  it('still ends DECRYPT naming the key when one ciphertext of a large read is tampered with', async () => {
    const state: EmulatorState = structuredClone(emulator.snapshot());
    const row = state.secrets.find((s) => s.value.startsWith('ph:v1:'))!;
    row.value = tamper(row.value);
    const other = await startEmulator({ state });
    try {
      await expect(read(true, other.url)).rejects.toMatchObject({
        code: 'DECRYPT',
        message: expect.stringMatching(/^could not decrypt the value of KEY_\d{4} in big\/Production$/),
      });
    } finally {
      await other.close();
    }
  });

  it('does not keep a process alive: a script that reads and returns exits by itself', async () => {
    const script = `
      const { PhaseClient } = await import(${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)});
      const client = new PhaseClient({ token: process.env.T, host: process.env.H });
      const list = await client.getSecrets({ app: 'big', env: 'Production', comments: true });
      await client.close();
      console.log(list.length);
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, T: emulator.tokens.serviceAccount, H: emulator.url },
      timeout: 30_000,
    });
    expect(stdout.trim()).toBe('2800');
  });
});
