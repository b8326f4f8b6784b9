/** Strict mode: what the real server cannot verify under E2EE, the emulator checks on POST and PUT. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encryptAsymmetric, initCrypto, newKxKeypair } from '../src/crypto.js';
import { startEmulator, type Emulator } from '../src/index.js';
import { BASIC_SEED, call, encryptedItem, envMaterial, type EnvMaterial } from './helpers.js';

let strict: Emulator;
let lenient: Emulator;
let env: EnvMaterial;

beforeAll(async () => {
  await initCrypto();
  strict = await startEmulator({ seed: BASIC_SEED, strict: true });
  // Same keys, not strict: proves the same payloads are accepted when strict mode is off.
  lenient = await startEmulator({ state: strict.snapshot() });
  env = await envMaterial(strict.url, strict.tokens.serviceAccount, 'shop', 'Production');
});
afterAll(async () => {
  await strict.close();
  await lenient.close();
});

const post = (emu: Emulator, items: unknown[]) =>
  call(emu.url, '/service/secrets/', {
    method: 'POST',
    token: emu.tokens.serviceAccount,
    headers: { environment: env.id },
    body: { secrets: items },
  });

describe('strict mode', () => {
  it('rejects a digest of the lowercase key with 400', async () => {
    const item = encryptedItem(env, { key: 'lower_key', value: 'v', digestOf: 'lower_key' });
    const res = await post(strict, [item]);
    expect([res.status, res.json]).toEqual([400, { error: 'keyDigest does not match the uppercase key' }]);
    expect((await post(lenient, [item])).status).toBe(200);
    expect(lenient.readPlain('shop', 'Production').find((s) => s.key === 'LOWER_KEY')?.keyDigestMatches).toBe(
      false,
    );
  });

  it('accepts the canonical uppercase digest', async () => {
    expect(
      (await post(strict, [encryptedItem(env, { key: 'good_key', value: 'v', comment: 'c' })])).status,
    ).toBe(200);
    expect(strict.readPlain('shop', 'Production').find((s) => s.key === 'GOOD_KEY')?.keyDigestMatches).toBe(
      true,
    );
  });

  it('rejects well-formed ciphertexts that do not decrypt with the environment key', async () => {
    const stranger = newKxKeypair();
    const item = {
      ...encryptedItem(env, { key: 'K2', value: 'v' }),
      value: encryptAsymmetric('v', stranger.publicKey),
    };
    const res = await post(strict, [item]);
    expect([res.status, res.json]).toEqual([
      400,
      { error: 'Ciphertext does not decrypt with the environment key' },
    ]);
    expect((await post(lenient, [item])).status).toBe(200);
  });

  it('checks PUT payloads too', async () => {
    const target = strict.readPlain('shop', 'Production').find((s) => s.key === 'API_KEY')!;
    const bad = encryptedItem(env, { key: 'renamed', value: 'v', digestOf: 'renamed' });
    const res = await call(strict.url, '/service/secrets/', {
      method: 'PUT',
      token: strict.tokens.serviceAccount,
      headers: { environment: env.id },
      body: { secrets: [{ id: target.id, key: bad['key'], keyDigest: bad['keyDigest'] }] },
    });
    expect(res.status).toBe(400);
    expect(strict.readPlain('shop', 'Production').find((s) => s.id === target.id)?.key).toBe('API_KEY');
  });
});
