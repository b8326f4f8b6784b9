/** `/service/secrets/`: case negotiation, filters, CRUD semantics and the status-code matrix (protocol 3.1-3.6). */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../src/index.js';
import { BASIC_SEED, call, encryptedItem, envMaterial, secretsOf, type EnvMaterial } from './helpers.js';

let emu: Emulator;
let prod: EnvMaterial;

beforeEach(async () => {
  emu = await startEmulator({ seed: BASIC_SEED });
  prod = await envMaterial(emu.url, emu.tokens.serviceAccount, 'shop', 'Production');
});
afterEach(async () => {
  await emu.close();
});

const list = (
  headers: Record<string, string> = {},
  token = emu.tokens.serviceAccount,
  path = '/service/secrets/',
) => call(emu.url, path, { token, headers: { environment: prod.id, ...headers } });

const write = (
  method: string,
  body: unknown,
  headers: Record<string, string> = {},
  token = emu.tokens.serviceAccount,
) =>
  call(emu.url, '/service/secrets/', { method, token, headers: { environment: prod.id, ...headers }, body });

describe('GET /service/secrets/', () => {
  it('answers snake_case by default and camelCase only for X-Use-Camel-Case: true exactly', async () => {
    const snake = await list();
    expect(snake.status).toBe(200);
    expect(Object.keys(snake.json[0]).sort()).toEqual(
      [
        'comment',
        'created_at',
        'environment',
        'folder',
        'id',
        'key',
        'key_digest',
        'lifecycle',
        'override',
        'path',
        'tags',
        'type',
        'updated_at',
        'value',
        'version',
      ].sort(),
    );
    expect(snake.json[0]).toMatchObject({
      type: 'secret',
      lifecycle: 'static',
      version: 1,
      folder: null,
      override: null,
    });
    const camel = await list({ 'X-Use-Camel-Case': 'true' });
    expect(camel.json[0]).toHaveProperty('keyDigest');
    expect(camel.json[0]).toHaveProperty('createdAt');
    expect(camel.json[0]).not.toHaveProperty('key_digest');
    const notExactly = await list({ 'X-Use-Camel-Case': 'True' });
    expect(notExactly.json[0]).toHaveProperty('key_digest');
  });

  it('stores and returns only ciphertext', async () => {
    const res = await list();
    for (const s of res.json) {
      for (const field of ['key', 'value']) expect(s[field]).toMatch(/^ph:v1:[0-9a-f]{64}:.+$/);
      expect(JSON.stringify(s)).not.toContain('postgres://');
    }
  });

  it('returns the override, recursively cased, to the user token only', async () => {
    emu.setOverride({ app: 'shop', env: 'Production', key: 'API_KEY', value: 'mine', isActive: true });
    const user = await list({ 'X-Use-Camel-Case': 'true' }, emu.tokens.user);
    const mine = secretsOf(user).find((s) => s.override !== null)!;
    expect(Object.keys(mine.override ?? {}).sort()).toEqual([
      'createdAt',
      'id',
      'isActive',
      'updatedAt',
      'value',
    ]);
    expect(mine.override?.['isActive']).toBe(true);
    const userSnake = await list({}, emu.tokens.user);
    expect(secretsOf(userSnake).find((s) => s.override !== null)?.override?.['is_active']).toBe(true);
    for (const token of [emu.tokens.serviceAccount, emu.tokens.service]) {
      const other = await list({}, token);
      expect(secretsOf(other).every((s) => s.override === null)).toBe(true);
    }
  });

  it('works for all three token types', async () => {
    for (const token of Object.values(emu.tokens)) {
      const res = await list({}, token);
      expect(res.status).toBe(200);
      expect(res.json).toHaveLength(3);
    }
  });

  it('also resolves the environment from app_id + env query parameters (env name case-insensitive)', async () => {
    const appId = emu.apps[0]!.id;
    const res = await call(emu.url, `/service/secrets/?app_id=${appId}&env=production`, {
      token: emu.tokens.user,
    });
    expect(res.status).toBe(200);
    expect(res.json).toHaveLength(3);
  });

  it('filters by KeyDigest, normalised Path, and Tags (ANY, duplicates kept as the server does)', async () => {
    const db = secretsOf(await list()).find((s) => s.tags.includes('db'))!;
    expect(secretsOf(await list({ KeyDigest: db.key_digest })).map((s) => s.id)).toEqual([db.id]);
    expect((await list({ KeyDigest: '' })).json).toHaveLength(3);
    const cache = await list({ Path: '//backend//cache/' });
    expect(secretsOf(cache).map((s) => s.path)).toEqual(['/backend/cache']);
    expect(cache.json[0].folder).toMatch(/^[0-9a-f-]{36}$/);
    expect((await list({ Path: 'backend' })).json).toHaveLength(0);
    expect((await list({ Path: '/' })).json).toHaveLength(2);
    expect(secretsOf(await list({ Tags: 'cache' })).map((s) => s.path)).toEqual(['/backend/cache']);
    expect(secretsOf(await list({ Tags: 'db,primary' })).map((s) => s.id)).toEqual([db.id, db.id]);
    expect((await list({ Tags: 'nope' })).json).toEqual([]);
  });

  it.each(['/service/secrets/', '/service/secrets', '/secrets/', '/secrets'])(
    'is served at %s',
    async (path) => {
      expect((await list({}, emu.tokens.serviceAccount, path)).status).toBe(200);
    },
  );

  it('serves GET /service/health/', async () => {
    const res = await call(emu.url, '/service/health/');
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ status: 'alive', version: expect.any(String) });
  });
});

describe('writes', () => {
  it('POST creates version 1 rows with a normalised path and answers 200 with an empty body', async () => {
    const res = await write('POST', {
      secrets: [encryptedItem(prod, { key: 'new', value: 'v', comment: 'c', path: 'a//b/', tags: ['x'] })],
    });
    expect(res.status).toBe(200);
    expect(res.text).toBe('');
    const created = emu.readPlain('shop', 'Production').find((s) => s.key === 'NEW');
    expect(created).toMatchObject({
      value: 'v',
      comment: 'c',
      path: '/a/b',
      tags: ['x'],
      version: 1,
      type: 'secret',
    });
  });

  it('POST parses the body as JSON whatever the Content-Type says', async () => {
    const res = await write(
      'POST',
      { secrets: [encryptedItem(prod, { key: 'FORM', value: 'v' })] },
      { 'content-type': 'application/x-www-form-urlencoded' },
    );
    expect(res.status).toBe(200);
  });

  it('PUT keeps absent ciphertexts, clears tags when absent, and bumps the version', async () => {
    const before = emu.readPlain('shop', 'Production').find((s) => s.key === 'DATABASE_URL')!;
    const item = encryptedItem(prod, { key: 'x', value: 'new value' });
    const res = await write('PUT', { secrets: [{ id: before.id, value: item['value'] }] });
    expect(res.status).toBe(200);
    expect(res.text).toBe('');
    const after = emu.readPlain('shop', 'Production').find((s) => s.id === before.id)!;
    expect(after).toMatchObject({
      key: 'DATABASE_URL',
      value: 'new value',
      comment: 'main db',
      tags: [],
      version: 2,
    });
    expect(after.updatedAt > before.updatedAt).toBe(true);
  });

  it('PUT can move a secret to another path and rename it', async () => {
    const before = emu.readPlain('shop', 'Production').find((s) => s.key === 'API_KEY')!;
    const item = encryptedItem(prod, { key: 'api_token', value: 'ignored' });
    await write('PUT', {
      secrets: [{ id: before.id, key: item['key'], keyDigest: item['keyDigest'], path: '/moved/' }],
    });
    expect(emu.readPlain('shop', 'Production').find((s) => s.id === before.id)).toMatchObject({
      key: 'API_TOKEN',
      value: 'k-123',
      path: '/moved',
    });
  });

  it('DELETE soft-deletes and ignores unknown ids', async () => {
    const target = emu.readPlain('shop', 'Production').find((s) => s.key === 'API_KEY')!;
    const res = await write(
      'DELETE',
      { secrets: [target.id, randomUUID()] },
      { 'content-type': 'text/plain' },
    );
    expect(res.status).toBe(200);
    expect(res.text).toBe('');
    expect(emu.readPlain('shop', 'Production').map((s) => s.key)).not.toContain('API_KEY');
    expect((await list()).json).toHaveLength(2);
  });

  it('stores an override sent on POST only for the user token', async () => {
    const withOverride = (key: string) => ({
      ...encryptedItem(prod, { key, value: 'base' }),
      override: { value: encryptedItem(prod, { key, value: 'over' })['value'], isActive: true },
    });
    await write('POST', { secrets: [withOverride('BY_USER')] }, {}, emu.tokens.user);
    await write('POST', { secrets: [withOverride('BY_SA')] });
    const plain = emu.readPlain('shop', 'Production');
    expect(plain.find((s) => s.key === 'BY_USER')?.override).toEqual({ value: 'over', isActive: true });
    expect(plain.find((s) => s.key === 'BY_SA')?.override).toBeNull();
  });

  it('bumps environment updated_at on every write, strictly, even within one millisecond', async () => {
    const seen: string[] = [(await envMaterial(emu.url, emu.tokens.user, 'shop', 'Production')).updatedAt];
    const stamp = async () =>
      seen.push((await envMaterial(emu.url, emu.tokens.user, 'shop', 'Production')).updatedAt);
    await write('POST', { secrets: [encryptedItem(prod, { key: 'A', value: '1' })] });
    await stamp();
    const a = emu.readPlain('shop', 'Production').find((s) => s.key === 'A')!;
    await write('PUT', { secrets: [{ id: a.id }] });
    await stamp();
    await write('DELETE', { secrets: [a.id] });
    await stamp();
    await write('DELETE', { secrets: [randomUUID()] });
    await stamp();
    for (let i = 0; i < 20; i++)
      emu.setSecret({ app: 'shop', env: 'Production', key: 'TIGHT', value: String(i) });
    await stamp();
    emu.deleteSecret({ app: 'shop', env: 'Production', key: 'TIGHT' });
    await stamp();
    for (const stampText of seen) expect(stampText).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect([...seen].sort()).toEqual(seen);
    expect(new Set(seen).size).toBe(seen.length);
  });
});

describe('status codes and error bodies', () => {
  const unauthorized = (res: Awaited<ReturnType<typeof call>>, error: string): void => {
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
    expect(res.json).toEqual({ error });
  };

  it('401 for a missing header, a bad type word, an unknown token and an unknown environment', async () => {
    unauthorized(
      await call(emu.url, '/service/secrets/', { headers: { environment: prod.id } }),
      'Authentication credentials were not provided.',
    );
    unauthorized(
      await call(emu.url, '/service/secrets/', {
        headers: { environment: prod.id, authorization: 'Bearer Robot abc' },
      }),
      'Invalid token',
    );
    unauthorized(
      await call(emu.url, '/service/secrets/', {
        headers: { environment: prod.id, authorization: `Bearer ServiceAccount ${'f'.repeat(64)}` },
      }),
      'Token expired or deleted',
    );
    unauthorized(await list({ environment: randomUUID() }), 'Environment not found');
  });

  it('without an environment: 401 for a Service token, 403 for User and ServiceAccount tokens', async () => {
    const bare = (token: string) => call(emu.url, '/service/secrets/', { token });
    unauthorized(await bare(emu.tokens.service), 'Service tokens require an environment context');
    for (const token of [emu.tokens.user, emu.tokens.serviceAccount]) {
      const res = await bare(token);
      expect(res.status).toBe(403);
      expect(res.json).toEqual({
        error: 'Environment context required. Supply `app_id` and `env` as query parameters.',
      });
    }
  });

  it('scope failures: 401 for Service and ServiceAccount tokens, 403 for User tokens', async () => {
    // Drop every principal's key for Production from a snapshot, then restart from it.
    const state = emu.snapshot();
    state.environmentKeys = state.environmentKeys.filter((k) => k.environment_id !== prod.id);
    await emu.close();
    emu = await startEmulator({ state });
    unauthorized(await list({}, emu.tokens.service), 'Service token cannot access this environment');
    unauthorized(await list({}, emu.tokens.serviceAccount), 'Service account cannot access this environment');
    const user = await list({}, emu.tokens.user);
    expect(user.status).toBe(403);
    expect(user.json).toEqual({ error: 'User cannot access this environment' });
  });

  it('404 for an unknown app, environment name or secret_id', async () => {
    const appId = emu.apps[0]!.id;
    const noApp = await call(emu.url, `/service/secrets/?app_id=${'0'.repeat(8)}&env=Production`, {
      token: emu.tokens.user,
    });
    expect(noApp.status).toBe(404);
    expect(noApp.json).toEqual({ error: `App with ID ${'0'.repeat(8)} not found` });
    const noEnv = await call(emu.url, `/service/secrets/?app_id=${appId}&env=qa`, { token: emu.tokens.user });
    expect(noEnv.status).toBe(404);
    expect(noEnv.json).toEqual({ error: "Environment 'qa' not found in App shop" });
    const noSecret = await call(emu.url, `/service/secrets/?secret_id=${randomUUID()}`, {
      token: emu.tokens.user,
    });
    expect(noSecret.status).toBe(404);
  });

  it('409 for duplicates within a batch or against live rows (POST and PUT)', async () => {
    const dup = { error: 'Duplicate secret found' };
    const twice = await write('POST', {
      secrets: [
        encryptedItem(prod, { key: 'SAME', value: '1' }),
        encryptedItem(prod, { key: 'same', value: '2' }),
      ],
    });
    expect([twice.status, twice.json]).toEqual([409, dup]);
    const live = await write('POST', { secrets: [encryptedItem(prod, { key: 'API_KEY', value: 'again' })] });
    expect([live.status, live.json]).toEqual([409, dup]);
    // Same key at another path is not a duplicate.
    const elsewhere = await write('POST', {
      secrets: [encryptedItem(prod, { key: 'API_KEY', value: 'x', path: '/o' })],
    });
    expect(elsewhere.status).toBe(200);
    const db = emu.readPlain('shop', 'Production').find((s) => s.key === 'DATABASE_URL')!;
    const clash = encryptedItem(prod, { key: 'API_KEY', value: '' });
    const put = await write('PUT', {
      secrets: [{ id: db.id, key: clash['key'], keyDigest: clash['keyDigest'] }],
    });
    expect([put.status, put.json]).toEqual([409, dup]);
    expect(emu.readPlain('shop', 'Production').filter((s) => s.key === 'SAME')).toHaveLength(0);
  });

  it('400 for missing, non-JSON or non-object bodies, bad ciphertext and over-long tags', async () => {
    const cases: [unknown, string][] = [
      ['', 'Request body is required.'],
      ['{nope', 'Request body must be valid JSON.'],
      ['[1,2]', 'Request body must be a JSON object.'],
      [
        { secrets: [{ ...encryptedItem(prod, { key: 'K', value: 'v' }), value: 'plaintext!' }] },
        'Invalid ciphertext format',
      ],
      [
        { secrets: [{ ...encryptedItem(prod, { key: 'K', value: 'v' }), key: 'ph:v1:zz:abc' }] },
        'Invalid ciphertext format',
      ],
    ];
    for (const [body, error] of cases) {
      const res = await write('POST', body);
      expect([res.status, res.json]).toEqual([400, { error }]);
    }
    const longTag = await write('POST', {
      secrets: [encryptedItem(prod, { key: 'K', value: 'v', tags: ['t'.repeat(65)] })],
    });
    expect(longTag.status).toBe(400);
  });

  it('500 for PUT with an unknown id and for POST items missing a required field', async () => {
    const unknown = await write('PUT', { secrets: [{ id: randomUUID(), value: '' }] });
    expect([unknown.status, unknown.json]).toEqual([500, { error: 'Internal server error.' }]);
    const noComment = encryptedItem(prod, { key: 'K', value: 'v' });
    delete noComment['comment'];
    expect((await write('POST', { secrets: [noComment] })).status).toBe(500);
    expect((await write('POST', { notSecrets: [] })).status).toBe(500);
  });

  it('403 "Unsupported HTTP method" for PATCH', async () => {
    const res = await write('PATCH', { secrets: [] });
    expect([res.status, res.json]).toEqual([403, { error: 'Unsupported HTTP method: PATCH' }]);
  });

  it('404 for unknown routes', async () => {
    expect((await call(emu.url, '/service/nope/')).status).toBe(404);
  });
});

describe('revoked tokens', () => {
  let revoked: Emulator;
  beforeAll(async () => {
    revoked = await startEmulator({ seed: BASIC_SEED });
    revoked.revokeToken('service');
  });
  afterAll(async () => {
    await revoked.close();
  });

  it('answer 403 on the tokens route and 401 on the secrets route; other tokens keep working', async () => {
    const tokens = await call(revoked.url, '/service/secrets/tokens/', { token: revoked.tokens.service });
    expect([tokens.status, tokens.json]).toEqual([403, { error: 'Token expired or deleted' }]);
    const env = revoked.apps[0]!.environments[0]!.id;
    const secrets = await call(revoked.url, '/service/secrets/', {
      token: revoked.tokens.service,
      headers: { environment: env },
    });
    expect([secrets.status, secrets.json]).toEqual([401, { error: 'Token expired or deleted' }]);
    expect((await call(revoked.url, '/service/secrets/tokens/', { token: revoked.tokens.user })).status).toBe(
      200,
    );
  });
});
