import { inspect } from 'node:util';
import { startEmulator, type Emulator, type EmulatorState, type Seed } from '@phasekit/emulator';
import { Agent } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PhaseClient, PhaseError } from '../src/index.js';

const seed: Seed = {
  apps: [
    {
      name: 'shop',
      environments: [
        {
          name: 'Production',
          secrets: [
            { key: 'DATABASE_URL', value: 'postgres://db/prod', tags: ['db'], comment: 'primary' },
            { key: 'API_KEY', value: 'pa$$word$&$`end' },
            { key: 'DSN', value: 'user=${API_KEY} url=${DATABASE_URL}' },
            { key: 'NESTED', value: 'cache-prod', path: '/backend/cache' },
            { key: 'FROM_PATH', value: '[${/backend/cache/NESTED}]' },
            { key: 'FROM_STAGING', value: '${Staging.ONLY_STAGING}' },
            { key: 'FROM_OTHER_APP', value: '${billing::Development.INVOICE_KEY}' },
            { key: 'FROM_STAGING_PATH', value: '${staging./deep/DEEP}' },
            { key: 'BACKEND', value: 'b', path: '/backend' },
          ],
        },
        {
          name: 'Staging',
          secrets: [
            { key: 'ONLY_STAGING', value: 'from-staging' },
            { key: 'DEEP', value: 'deep-staging', path: '/deep' },
          ],
        },
        { name: 'Production-Old', secrets: [{ key: 'X', value: 'old' }] },
      ],
    },
    {
      name: 'billing',
      environments: [{ name: 'Development', secrets: [{ key: 'INVOICE_KEY', value: 'inv-123' }] }],
    },
    { name: 'twin', environments: [{ name: 'Development' }] },
    { name: 'twin', environments: [{ name: 'Development' }] },
    {
      name: 'refs',
      environments: [
        {
          name: 'Development',
          secrets: [
            { key: 'A', value: 'a-${B}' },
            { key: 'B', value: 'b-${A}' },
            { key: 'MISSING', value: 'x ${NOPE} y' },
            { key: 'PLAIN', value: 'plain' },
            { key: 'MIXED', value: '${PLAIN} and ${NOPE} and ${Nowhere.KEY}' },
          ],
        },
      ],
    },
  ],
};

let emulator: Emulator;
const clients: PhaseClient[] = [];

function client(kind: 'serviceAccount' | 'service' | 'user' = 'serviceAccount', extra = {}): PhaseClient {
  const c = new PhaseClient({
    token: emulator.tokens[kind],
    host: emulator.url,
    env: {},
    retries: 0,
    ...extra,
  });
  clients.push(c);
  return c;
}

const plain = (secrets: { key: string; value: string }[]) =>
  Object.fromEntries(secrets.map((s) => [s.key, s.value]));

beforeAll(async () => {
  emulator = await startEmulator({ seed, strict: true });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await emulator.close();
});
beforeEach(() => emulator.clearRequests());

describe('reading secrets', () => {
  it.each(['serviceAccount', 'service', 'user'] as const)(
    'reads the root folder with a %s token',
    async (kind) => {
      const secrets = await client(kind).getSecrets({ app: 'shop', env: 'production' });
      expect(plain(secrets)).toEqual({
        API_KEY: 'pa$$word$&$`end',
        DATABASE_URL: 'postgres://db/prod',
        DSN: 'user=pa$$word$&$`end url=postgres://db/prod',
        FROM_PATH: '[cache-prod]',
        FROM_STAGING: 'from-staging',
        FROM_OTHER_APP: 'inv-123',
        FROM_STAGING_PATH: 'deep-staging',
      });
      const auth = emulator.requests()[0]!.headers['authorization'];
      expect(auth).toBe(
        `Bearer ${{ serviceAccount: 'ServiceAccount', service: 'Service', user: 'User' }[kind]} [redacted]`,
      );
    },
  );

  it('returns the documented fields, comments only when asked', async () => {
    const c = client();
    const [db] = await c.getSecrets({ app: 'shop', env: 'Production', keys: ['database_url'] });
    expect(db).toMatchObject({
      key: 'DATABASE_URL',
      comment: '',
      path: '/',
      tags: ['db'],
      version: 1,
      type: 'secret',
    });
    expect(db!.id).toMatch(/[0-9a-f-]{36}/);
    expect(db!.updatedAt).toMatch(/Z$/);
    const [withComment] = await c.getSecrets({
      app: 'shop',
      env: 'Production',
      keys: ['DATABASE_URL'],
      comments: true,
    });
    expect(withComment!.comment).toBe('primary');
  });

  it('finds the app by id and the environment by exact case-insensitive name, never by substring', async () => {
    const c = client();
    const shop = emulator.apps.find((a) => a.name === 'shop')!;
    expect(await c.getSecrets({ appId: shop.id, env: 'PRODUCTION-old' })).toHaveLength(1);
    const error = await c.getSecrets({ app: 'shop', env: 'prod' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PhaseError);
    expect(error).toMatchObject({ code: 'NOT_FOUND' });
    expect((error as Error).message).toBe(
      'environment prod not found in app shop (environments this token can reach: Production, Staging, Production-Old)',
    );
  });

  it('matches app names exactly, naming a near miss in case', async () => {
    await expect(client().getSecrets({ app: 'SHOP', env: 'Production' })).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: 'app SHOP is not reachable with this token (app names are exact: did you mean shop?)',
    });
  });

  it('names every id when an app name is ambiguous', async () => {
    const ids = emulator.apps.filter((a) => a.name === 'twin').map((a) => a.id);
    await expect(client().getSecrets({ app: 'twin', env: 'Development' })).rejects.toThrow(
      `app twin is ambiguous: 2 apps have that name (ids ${ids.join(', ')}); use appId`,
    );
  });

  it('reads one folder by default and sub-folders with recursive', async () => {
    const c = client();
    expect(plain(await c.getSecrets({ app: 'shop', env: 'Production', path: '/backend/' }))).toEqual({
      BACKEND: 'b',
    });
    const all = await c.getSecrets({ app: 'shop', env: 'Production', path: '/backend', recursive: true });
    expect(all.map((s) => `${s.path}:${s.key}`)).toEqual(['/backend:BACKEND', '/backend/cache:NESTED']);
    const everything = await c.getSecrets({ app: 'shop', env: 'Production', recursive: true });
    expect(everything).toHaveLength(9);
  });

  it('sends a KeyDigest for a single key and filters by tags', async () => {
    const c = client();
    await c.getSecret({ app: 'shop', env: 'Production', key: 'api_key' });
    const get = emulator.requests().filter((r) => r.route === 'secrets');
    expect(get.at(-1)!.headers['keydigest']).toMatch(/^[0-9a-f]{64}$/);
    expect(plain(await c.getSecrets({ app: 'shop', env: 'Production', tags: ['db'] }))).toEqual({
      DATABASE_URL: 'postgres://db/prod',
    });
    await expect(c.getSecret({ app: 'shop', env: 'Production', key: 'NOPE' })).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: 'secret NOPE not found in shop/Production at path /',
    });
  });

  it('applies personal overrides for user tokens only', async () => {
    emulator.setOverride({
      app: 'billing',
      env: 'Development',
      key: 'INVOICE_KEY',
      value: 'mine',
      isActive: true,
    });
    try {
      const [user] = await client('user').getSecrets({ app: 'billing', env: 'Development' });
      expect(user).toMatchObject({ value: 'mine', overridden: true });
      const [sa] = await client().getSecrets({ app: 'billing', env: 'Development' });
      expect(sa).toMatchObject({ value: 'inv-123', overridden: false });
    } finally {
      emulator.setOverride({
        app: 'billing',
        env: 'Development',
        key: 'INVOICE_KEY',
        value: 'mine',
        isActive: false,
      });
    }
  });

  it('decrypts an unchanged secret only once per client, and fetches the session once', async () => {
    const c = client();
    await c.getSecrets({ app: 'billing', env: 'Development' });
    const after = c.decryptions;
    expect(after).toBe(2);
    await c.getSecrets({ app: 'billing', env: 'Development' });
    expect(c.decryptions).toBe(after);
    expect(emulator.requests().filter((r) => r.route === 'tokens')).toHaveLength(1);
  });

  it('decrypts comments only when asked for', async () => {
    const c = client();
    await c.getSecrets({ app: 'shop', env: 'Production', keys: ['DATABASE_URL'] });
    expect(c.decryptions).toBe(2);
    await c.getSecrets({ app: 'shop', env: 'Production', keys: ['DATABASE_URL'], comments: true });
    expect(c.decryptions).toBe(3);
  });

  it('unwraps only the environments it reads: a broken key elsewhere does not matter', async () => {
    const state: EmulatorState = structuredClone(emulator.snapshot());
    const staging = state.environments.find((e) => e.name === 'Staging')!;
    for (const key of state.environmentKeys.filter((k) => k.environment_id === staging.id)) {
      key.wrapped_seed = key.wrapped_seed.slice(0, -8) + 'AAAAAAA=';
    }
    const other = await startEmulator({ state });
    try {
      const c = new PhaseClient({ token: other.tokens.serviceAccount, host: other.url, env: {} });
      clients.push(c);
      expect(await c.getSecrets({ app: 'billing', env: 'Development' })).toHaveLength(1);
      await expect(c.getSecrets({ app: 'shop', env: 'Staging' })).rejects.toMatchObject({
        code: 'DECRYPT',
        message: 'could not decrypt the seed of environment Staging of app shop',
      });
    } finally {
      await other.close();
    }
  });

  it('sends every request through an injected dispatcher, reusing keep-alive connections', async () => {
    const dispatcher = new Agent({ keepAliveTimeout: 10_000 });
    let connections = 0;
    dispatcher.on('connect', () => connections++);
    const c = client('serviceAccount', { dispatcher });
    for (let i = 0; i < 6; i++) await c.getSecrets({ app: 'billing', env: 'Development' });
    await c.apps();
    expect(emulator.requests()).toHaveLength(8);
    expect(connections).toBe(1);
    await dispatcher.close();
  });

  it("sends a cold read's secrets request over the connection of its tokens request", async () => {
    const dispatcher = new Agent({ keepAliveTimeout: 10_000 });
    let connections = 0;
    dispatcher.on('connect', () => connections++);
    await client('serviceAccount', { dispatcher }).getSecrets({ app: 'billing', env: 'Development' });
    expect(emulator.requests().map((r) => r.route)).toEqual(['tokens', 'secrets']);
    expect(connections).toBe(1);
    await dispatcher.close();
  });

  it('works through a dispatcher composed with undici interceptors', async () => {
    const agent = new Agent();
    const seen: string[] = [];
    const dispatcher = agent.compose((dispatch) => (opts, handler) => {
      seen.push(`${opts.method} ${opts.path}`);
      return dispatch(opts, handler);
    });
    const secrets = await client('serviceAccount', { dispatcher }).getSecrets({
      app: 'billing',
      env: 'Development',
    });
    expect(plain(secrets)).toEqual({ INVOICE_KEY: 'inv-123' });
    expect(seen).toEqual(['GET /service/secrets/tokens/', 'GET /service/secrets/']);
    await agent.close();
  });

  it('sees a changed tokens answer after unchanged ones, and again after refresh()', async () => {
    const c = client();
    const stamp = (apps: Awaited<ReturnType<PhaseClient['apps']>>) =>
      apps.find((a) => a.name === 'shop')!.environments.find((e) => e.name === 'Production-Old')!.updatedAt;
    const before = await c.apps();
    expect(await c.apps()).toEqual(before);
    emulator.setSecret({ app: 'shop', env: 'Production-Old', key: 'Y', value: 'new' });
    const after = await c.apps();
    expect(stamp(after)).not.toBe(stamp(before));
    c.refresh();
    expect(await c.apps()).toEqual(after);
    expect(plain(await c.getSecrets({ app: 'shop', env: 'Production-Old' }))).toEqual({ X: 'old', Y: 'new' });
    expect(emulator.requests().filter((r) => r.route === 'tokens')).toHaveLength(4);
  });

  it('finds an environment created after the session started', async () => {
    const c = client();
    await c.getSecrets({ app: 'billing', env: 'Development' });
    emulator.addEnvironment('billing', 'Preview');
    emulator.setSecret({ app: 'billing', env: 'Preview', key: 'P', value: 'p' });
    expect(plain(await c.getSecrets({ app: 'billing', env: 'preview' }))).toEqual({ P: 'p' });
  });
});

describe('references', () => {
  it('fetches each referenced folder once, however many references point there', async () => {
    await client().getSecrets({ app: 'shop', env: 'Production' });
    const fetched = emulator
      .requests()
      .filter((r) => r.route === 'secrets')
      .map((r) => `${r.headers['environment']}${r.headers['path'] ?? '*'}`);
    expect(fetched).toHaveLength(new Set(fetched).size);
    expect(fetched).toHaveLength(5); // Production /, /backend/cache, Staging /, Staging /deep, billing /
  });

  it('reports a cycle and a missing reference as REFERENCE errors naming the reference', async () => {
    const c = client();
    const cycle = await c
      .getSecrets({ app: 'refs', env: 'Development', keys: ['A', 'B'] })
      .catch((e: unknown) => e);
    expect(cycle).toMatchObject({ code: 'REFERENCE' });
    expect((cycle as Error).message).toMatch(/reference cycle/);
    const missing = await c
      .getSecrets({ app: 'refs', env: 'Development', keys: ['MISSING'] })
      .catch((e: unknown) => e);
    expect(missing).toMatchObject({
      code: 'REFERENCE',
      message: 'secret MISSING references ${NOPE}, but NOPE does not exist in refs/Development at path /',
    });
  });

  it("with references: 'available', resolves what exists and keeps the rest literally; a cycle still fails", async () => {
    const c = client();
    const secrets = await c.getSecrets({
      app: 'refs',
      env: 'Development',
      keys: ['MISSING', 'MIXED', 'PLAIN'],
      references: 'available',
    });
    expect(plain(secrets)).toEqual({
      MISSING: 'x ${NOPE} y',
      MIXED: 'plain and ${NOPE} and ${Nowhere.KEY}',
      PLAIN: 'plain',
    });
    const cycle = await c
      .getSecrets({ app: 'refs', env: 'Development', keys: ['A', 'B'], references: 'available' })
      .catch((e: unknown) => e);
    expect(cycle).toMatchObject({ code: 'REFERENCE', reason: 'cycle' });
  });

  it("keeps references literally with references: 'keep'", async () => {
    const secrets = await client().getSecrets({ app: 'refs', env: 'Development', references: 'keep' });
    expect(plain(secrets)).toMatchObject({ A: 'a-${B}', MISSING: 'x ${NOPE} y' });
  });
});

describe('writing secrets', () => {
  it('creates with uppercase keys and digests that the strict emulator accepts, and reads them back', async () => {
    const c = client();
    await c.createSecrets({
      app: 'billing',
      env: 'Development',
      secrets: [{ key: 'new_key', value: 'v$$1', comment: 'note', tags: ['t1'], path: '/w/' }],
    });
    const row = emulator.readPlain('billing', 'Development').find((s) => s.key === 'NEW_KEY')!;
    expect(row).toMatchObject({
      value: 'v$$1',
      comment: 'note',
      tags: ['t1'],
      path: '/w',
      keyDigestMatches: true,
    });
    const [back] = await c.getSecrets({ app: 'billing', env: 'Development', path: '/w', comments: true });
    expect(back).toMatchObject({ key: 'NEW_KEY', value: 'v$$1', comment: 'note' });
  });

  it('reports a duplicate create as CONFLICT', async () => {
    const c = client();
    await expect(
      c.createSecrets({
        app: 'billing',
        env: 'Development',
        secrets: [{ key: 'INVOICE_KEY', value: 'dup' }],
      }),
    ).rejects.toMatchObject({ code: 'CONFLICT', status: 409 });
  });

  it('updates a value and keeps the comment and tags it was not given', async () => {
    const c = client();
    await c.createSecrets({
      app: 'billing',
      env: 'Development',
      secrets: [{ key: 'KEEP_ME', value: 'one', comment: 'c', tags: ['a', 'b'] }],
    });
    await c.updateSecrets({
      app: 'billing',
      env: 'Development',
      secrets: [{ key: 'keep_me', value: 'two' }],
    });
    const row = emulator.readPlain('billing', 'Development').find((s) => s.key === 'KEEP_ME')!;
    expect(row).toMatchObject({ value: 'two', comment: 'c', tags: ['a', 'b'], version: 2 });
  });

  it('deletes by key and reports keys that did not exist', async () => {
    const c = client();
    await c.createSecrets({ app: 'billing', env: 'Development', secrets: [{ key: 'GONE', value: 'x' }] });
    const result = await c.deleteSecrets({ app: 'billing', env: 'Development', keys: ['gone', 'never'] });
    expect(result).toEqual({ notFound: ['NEVER'] });
    expect(emulator.readPlain('billing', 'Development').some((s) => s.key === 'GONE')).toBe(false);
    expect(await c.deleteSecrets({ app: 'billing', env: 'Development', keys: [] })).toEqual({ notFound: [] });
  });
});

describe('the token', () => {
  const token = () => emulator.tokens.serviceAccount;

  it('fails at construction with INVALID_TOKEN that never quotes it', () => {
    const bad = token().replace('pss_service:v2', 'pss_service:v9');
    let error: unknown;
    try {
      new PhaseClient({ token: bad, host: emulator.url, env: {} });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'INVALID_TOKEN' });
    const text = `${String(error)} ${(error as Error).stack} ${inspect(error)}`;
    for (const part of bad.split(':').slice(2)) expect(text).not.toContain(part);
  });

  it('is absent from inspect and JSON of the client', () => {
    const c = client();
    const text = `${inspect(c, { showHidden: true, depth: 10 })} ${JSON.stringify(c)}`;
    for (const part of token().split(':').slice(2)) expect(text).not.toContain(part);
  });

  it('reads the token and host from the environment by default', async () => {
    const c = new PhaseClient({ env: { PHASE_SERVICE_TOKEN: token(), PHASE_HOST: emulator.url } });
    clients.push(c);
    expect(c.host).toBe(emulator.url);
    expect((await c.apps()).map((a) => a.name)).toContain('shop');
  });

  it('lists apps with environment ids, names and updatedAt', async () => {
    const apps = await client().apps();
    const shop = apps.find((a) => a.name === 'shop')!;
    expect(shop.environments.map((e) => e.name)).toEqual(['Production', 'Staging', 'Production-Old']);
    expect(shop.environments[0]!.updatedAt).toMatch(/Z$/);
  });
});
