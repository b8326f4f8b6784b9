/** `GET /service/secrets/tokens/`: shape, key material, and its own error codes (protocol 3.2). */
import sodium from 'libsodium-wrappers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptAsymmetric, decryptRaw, envKeypair, initCrypto } from '../src/crypto.js';
import { startEmulator, type Emulator, type TokenKind } from '../src/index.js';
import { BASIC_SEED, bearer, call } from './helpers.js';

let emu: Emulator;

beforeAll(async () => {
  await initCrypto();
  emu = await startEmulator({ seed: BASIC_SEED });
});
afterAll(async () => {
  await emu.close();
});

/** Rebuilds the principal keypair from a token and its wrapped share, as a client would. */
function principalKeypair(token: string, wrappedKeyShare: string): { publicKey: string; privateKey: string } {
  const [, , , publicKey = '', shareA = '', wrapKey = ''] = token.split(':');
  const shareB = sodium.from_hex(
    sodium.to_string(decryptRaw(sodium.from_hex(wrappedKeyShare), sodium.from_hex(wrapKey))),
  );
  const a = sodium.from_hex(shareA);
  return { publicKey, privateKey: sodium.to_hex(shareB.map((b, i) => b ^ (a[i] ?? 0))) };
}

describe('GET /service/secrets/tokens/', () => {
  it('answers snake_case with the documented shape, even when camelCase is requested', async () => {
    const res = await call(emu.url, '/service/secrets/tokens/', {
      token: emu.tokens.serviceAccount,
      headers: { 'X-Use-Camel-Case': 'true', accept: 'application/json' },
    });
    expect(res.status).toBe(200);
    const body = res.json;
    expect(Object.keys(body).sort()).toEqual(
      ['account_id', 'apps', 'offline_enabled', 'organisation', 'wrapped_key_share'].sort(),
    );
    expect(body.wrapped_key_share).toMatch(/^[0-9a-f]{208}$/);
    expect(body.offline_enabled).toBe(false);
    expect(Object.keys(body.organisation).sort()).toEqual(['id', 'name']);
    expect(body.apps).toHaveLength(1);
    const app = body.apps[0];
    expect(Object.keys(app).sort()).toEqual(['encryption', 'environment_keys', 'id', 'name']);
    expect(app.encryption).toBe('E2E');
    const key = app.environment_keys[0];
    expect(Object.keys(key).sort()).toEqual(
      [
        'created_at',
        'deleted_at',
        'environment',
        'id',
        'identity_key',
        'paths',
        'service_account',
        'updated_at',
        'user',
        'wrapped_salt',
        'wrapped_seed',
      ].sort(),
    );
    expect(key).toMatchObject({
      paths: null,
      deleted_at: null,
      user: null,
      service_account: body.account_id,
    });
    expect(Object.keys(key.environment).sort()).toEqual(
      ['created_at', 'env_type', 'id', 'index', 'name', 'updated_at'].sort(),
    );
    expect(key.environment).toMatchObject({ name: 'Production', env_type: 'prod', index: 0 });
    expect(key.environment.updated_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  });

  it.each<[TokenKind, string[]]>([
    ['serviceAccount', ['account_id', 'offline_enabled']],
    ['service', []],
    ['user', ['user_id', 'offline_enabled']],
  ])('gives the %s token its own identity fields', async (kind, extra) => {
    const res = await call(emu.url, '/service/secrets/tokens/', { token: emu.tokens[kind] });
    expect(res.status).toBe(200);
    expect(Object.keys(res.json).sort()).toEqual(
      ['apps', 'organisation', 'wrapped_key_share', ...extra].sort(),
    );
    const key = res.json.apps[0].environment_keys[0];
    if (kind === 'user') expect(key).toMatchObject({ user: res.json.user_id, service_account: null });
    if (kind === 'service') expect(key).toMatchObject({ user: null, service_account: null });
  });

  it.each<TokenKind>(['serviceAccount', 'service', 'user'])(
    'wraps every environment seed and salt for the %s principal, and identity_key is the env public key',
    async (kind) => {
      const res = await call(emu.url, '/service/secrets/tokens/', { token: emu.tokens[kind] });
      const kp = principalKeypair(emu.tokens[kind], res.json.wrapped_key_share);
      const names: string[] = [];
      for (const key of res.json.apps[0].environment_keys) {
        const seed = decryptAsymmetric(key.wrapped_seed, kp);
        const salt = decryptAsymmetric(key.wrapped_salt, kp);
        expect(seed).toMatch(/^[0-9a-f]{64}$/);
        expect(salt).toMatch(/^[0-9a-f]{64}$/);
        expect(envKeypair(seed).publicKey).toBe(key.identity_key);
        names.push(key.environment.name);
      }
      expect(names).toEqual(['Production', 'Staging']);
    },
  );

  it('answers 403 "Token expired or deleted" for an unknown token or a wrong type word', async () => {
    const unknown = await call(emu.url, '/service/secrets/tokens/', {
      headers: { authorization: `Bearer ServiceAccount ${'0'.repeat(64)}` },
    });
    expect(unknown.status).toBe(403);
    expect(unknown.json).toEqual({ error: 'Token expired or deleted' });
    const wrongType = await call(emu.url, '/service/secrets/tokens/', {
      headers: { authorization: bearer(emu.tokens.serviceAccount).replace('ServiceAccount', 'User') },
    });
    expect(wrongType.status).toBe(403);
  });

  it('answers 500 when the Authorization header is missing', async () => {
    const res = await call(emu.url, '/service/secrets/tokens/');
    expect(res.status).toBe(500);
    expect(res.json).toEqual({ error: 'Internal server error.' });
  });

  it('is served at /secrets/tokens and without the trailing slash too', async () => {
    for (const path of ['/secrets/tokens/', '/secrets/tokens', '/service/secrets/tokens']) {
      expect((await call(emu.url, path, { token: emu.tokens.user })).status).toBe(200);
    }
  });
});
