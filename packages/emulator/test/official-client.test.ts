/**
 * Acceptance test: the unmodified official `@phase.dev/phase-node@3.1.1` against the emulator.
 *
 * The official client never settles its promise on an HTTP error (protocol section 10.1), so nothing here provokes
 * one through it, and every call is wrapped in `within()`.
 */
import { createRequire } from 'node:module';
import type PhaseModule from '@phase.dev/phase-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator, type Seed, type TokenKind } from '../src/index.js';
import { call, within } from './helpers.js';

type PhaseClass = typeof PhaseModule.default;
type PhaseSecret = { id: string; key: string; value: string; comment: string; path: string; tags: string[] };
const require = createRequire(import.meta.url);
// The package is CommonJS (`module.exports = Phase`) while its typings declare a default export.
const Phase = require('@phase.dev/phase-node') as PhaseClass;

const SEED: Seed = {
  apps: [
    {
      name: 'shop',
      environments: [
        {
          name: 'Production',
          secrets: [
            {
              key: 'DATABASE_URL',
              value: 'postgres://prod.internal:5432/shop',
              tags: ['db'],
              comment: 'primary',
            },
            { key: 'API_HOST', value: 'api.shop.example' },
            { key: 'API_URL', value: 'https://${API_HOST}/v1' },
            { key: 'CACHE_URL', value: 'redis://${/backend/cache/REDIS_HOST}:6379' },
            { key: 'STAGING_DB', value: '${Staging.DATABASE_URL}' },
            { key: 'MULTILINE', value: 'line one\nline two\n', comment: 'has newlines' },
            { key: 'EMPTY', value: '' },
            { key: 'lower_case', value: 'stored uppercased' },
            { key: 'REDIS_HOST', value: 'cache.internal', path: '/backend/cache', tags: ['cache'] },
            { key: 'UNICODE', value: 'héllo wörld ✓ 🔐', path: '/backend', type: 'config' },
          ],
        },
        { name: 'Staging', secrets: [{ key: 'DATABASE_URL', value: 'postgres://staging.internal/shop' }] },
      ],
    },
    {
      name: 'billing',
      environments: [{ name: 'Development', secrets: [{ key: 'STRIPE_KEY', value: 'sk_test_1' }] }],
    },
  ],
};

/** What the official client should return for Production, references resolved, keyed by `path KEY`. */
const PRODUCTION: Record<string, string> = {
  '/ DATABASE_URL': 'postgres://prod.internal:5432/shop',
  '/ API_HOST': 'api.shop.example',
  '/ API_URL': 'https://api.shop.example/v1',
  '/ CACHE_URL': 'redis://cache.internal:6379',
  '/ STAGING_DB': 'postgres://staging.internal/shop',
  '/ MULTILINE': 'line one\nline two\n',
  '/ EMPTY': '',
  '/ LOWER_CASE': 'stored uppercased',
  '/backend/cache REDIS_HOST': 'cache.internal',
  '/backend UNICODE': 'héllo wörld ✓ 🔐',
};

function plainMap(secrets: PhaseSecret[]): Record<string, string> {
  return Object.fromEntries(secrets.map((s) => [`${s.path} ${s.key}`, s.value]));
}

function only(expected: Record<string, string>, path: string): Record<string, string> {
  return Object.fromEntries(Object.entries(expected).filter(([k]) => k.startsWith(`${path} `)));
}

async function connect(emu: Emulator, kind: TokenKind): Promise<InstanceType<PhaseClass>> {
  const phase = new Phase(emu.tokens[kind], emu.url);
  await within(phase.init(), 10_000, 'init');
  return phase;
}

function appId(emu: Emulator, name: string): string {
  const app = emu.apps.find((a) => a.name === name);
  if (!app) throw new Error(`no app ${name}`);
  return app.id;
}

describe('official @phase.dev/phase-node 3.1.1 against the emulator', () => {
  let emu: Emulator;

  beforeAll(async () => {
    emu = await startEmulator({ seed: SEED });
  });
  afterAll(async () => {
    await emu.close();
  });

  describe.each<TokenKind>(['serviceAccount', 'service', 'user'])('with the %s token', (kind) => {
    it('init() unwraps every app and environment of the seed', async () => {
      const phase = await connect(emu, kind);
      const apps = phase.apps.map((a) => ({
        id: a.id,
        name: a.name,
        envs: a.environments.map((e) => e.name),
      }));
      expect(apps).toEqual(
        emu.apps.map((a) => ({ id: a.id, name: a.name, envs: a.environments.map((e) => e.name) })),
      );
    });

    it('get() returns exactly the seeded plaintexts with references resolved, across all paths', async () => {
      const phase = await connect(emu, kind);
      const all = await within(
        phase.get({ appId: appId(emu, 'shop'), envName: 'Production' }),
        10_000,
        'get',
      );
      expect(plainMap(all)).toEqual(PRODUCTION);
      const db = all.find((s) => s.key === 'DATABASE_URL');
      expect(db).toMatchObject({ comment: 'primary', tags: ['db'], path: '/' });
    });

    it.each(['/', '/backend', '/backend/cache'])(
      'get({ path: "%s" }) returns that path only',
      async (path) => {
        const phase = await connect(emu, kind);
        const secrets = await within(phase.get({ appId: appId(emu, 'shop'), envName: 'production', path }));
        expect(plainMap(secrets)).toEqual(only(PRODUCTION, path));
      },
    );

    it('get({ key }) sends the uppercase digest and finds the one secret', async () => {
      const phase = await connect(emu, kind);
      const secrets = await within(
        phase.get({ appId: appId(emu, 'shop'), envName: 'Production', key: 'api_url' }),
      );
      expect(plainMap(secrets)).toEqual({ '/ API_URL': 'https://api.shop.example/v1' });
    });

    it('reads a second app', async () => {
      const phase = await connect(emu, kind);
      const secrets = await within(phase.get({ appId: appId(emu, 'billing'), envName: 'Development' }));
      expect(plainMap(secrets)).toEqual({ '/ STRIPE_KEY': 'sk_test_1' });
    });
  });

  it('applies an active personal override for the user token only', async () => {
    emu.setOverride({
      app: 'shop',
      env: 'Production',
      key: 'API_HOST',
      value: 'localhost:3000',
      isActive: true,
    });
    try {
      const user = await connect(emu, 'user');
      const mine = plainMap(await within(user.get({ appId: appId(emu, 'shop'), envName: 'Production' })));
      expect(mine['/ API_HOST']).toBe('localhost:3000');
      expect(mine['/ API_URL']).toBe('https://localhost:3000/v1');
      const sa = await connect(emu, 'serviceAccount');
      const theirs = plainMap(await within(sa.get({ appId: appId(emu, 'shop'), envName: 'Production' })));
      expect(theirs['/ API_HOST']).toBe('api.shop.example');
    } finally {
      emu.setOverride({
        app: 'shop',
        env: 'Production',
        key: 'API_HOST',
        value: 'localhost:3000',
        isActive: false,
      });
    }
  });

  it('sends the camelCase header and gets camelCase bodies', async () => {
    emu.clearRequests();
    const phase = await connect(emu, 'serviceAccount');
    await within(phase.get({ appId: appId(emu, 'shop'), envName: 'Staging' }));
    const get = emu.requests().find((r) => r.route === 'secrets');
    expect(get?.headers['x-use-camel-case']).toBe('true');
    expect(get?.headers['authorization']).toBe('Bearer ServiceAccount [redacted]');
    expect(get?.status).toBe(200);
  });

  describe('writes by the official client', () => {
    let staging: { phase: InstanceType<PhaseClass>; appId: string };

    beforeAll(async () => {
      staging = { phase: await connect(emu, 'serviceAccount'), appId: appId(emu, 'shop') };
    });

    it('create() stores ciphertexts the emulator decrypts, and its lowercase-key digest bug is visible', async () => {
      await within(
        staging.phase.create({
          appId: staging.appId,
          envName: 'Staging',
          secrets: [
            { key: 'new_key', value: 'made by phase-node', comment: 'c1', path: '/created', tags: ['t1'] },
            { key: 'UPPER_KEY', value: 'v', comment: '' },
          ],
        }),
        10_000,
        'create',
      );
      const plain = emu.readPlain('shop', 'Staging');
      expect(plain.find((s) => s.key === 'NEW_KEY')).toMatchObject({
        value: 'made by phase-node',
        comment: 'c1',
        path: '/created',
        tags: ['t1'],
        version: 1,
        keyDigestMatches: false, // protocol 10.2: digest(key) instead of digest(key.toUpperCase())
      });
      expect(plain.find((s) => s.key === 'UPPER_KEY')).toMatchObject({ value: 'v', keyDigestMatches: true });
      const back = await within(
        staging.phase.get({ appId: staging.appId, envName: 'Staging', path: '/created' }),
      );
      expect(plainMap(back)).toEqual({ '/created NEW_KEY': 'made by phase-node' });
    });

    it('update() bumps the version and, as documented, wipes the comment and tags it was not given', async () => {
      const target = emu.readPlain('shop', 'Staging').find((s) => s.key === 'NEW_KEY');
      await within(
        staging.phase.update({
          appId: staging.appId,
          envName: 'Staging',
          secrets: [{ id: target!.id, value: 'v2' }],
        }),
        10_000,
        'update',
      );
      expect(emu.readPlain('shop', 'Staging').find((s) => s.id === target!.id)).toMatchObject({
        value: 'v2',
        comment: '',
        tags: [],
        path: '/created',
        version: 2,
      });
    });

    it('delete() soft-deletes by id', async () => {
      const target = emu.readPlain('shop', 'Staging').find((s) => s.key === 'UPPER_KEY');
      await within(
        staging.phase.delete({ appId: staging.appId, envName: 'Staging', secretIds: [target!.id] }),
        10_000,
        'delete',
      );
      expect(emu.readPlain('shop', 'Staging').map((s) => s.key)).not.toContain('UPPER_KEY');
    });

    it('strict mode rejects the exact create payload the official client sends for a lowercase key', async () => {
      const post = emu.requests().find((r) => r.route === 'secrets' && r.method === 'POST');
      expect(post).toBeDefined();
      // Same keys and tokens, strict this time; replay the captured body rather than provoking the client to hang.
      const strict = await startEmulator({ state: emu.snapshot(), strict: true });
      try {
        const env = strict.apps
          .find((a) => a.name === 'shop')!
          .environments.find((e) => e.name === 'Staging')!;
        const res = await call(strict.url, '/service/secrets/', {
          method: 'POST',
          token: strict.tokens.serviceAccount,
          headers: { environment: env.id },
          body: {
            secrets: (post!.body as { secrets: object[] }).secrets.map((s) => ({ ...s, path: '/replayed' })),
          },
        });
        expect(res.status).toBe(400);
        expect(res.json).toEqual({ error: 'keyDigest does not match the uppercase key' });

        // With an uppercase key its digest is right, so the strict emulator accepts its writes.
        const phase = await connect(strict, 'serviceAccount');
        await within(
          phase.create({
            appId: appId(strict, 'shop'),
            envName: 'Staging',
            secrets: [{ key: 'OK_KEY', value: 'ok', comment: '' }],
          }),
          10_000,
          'strict create',
        );
        expect(strict.readPlain('shop', 'Staging').find((s) => s.key === 'OK_KEY')?.value).toBe('ok');
      } finally {
        await strict.close();
      }
    });
  });
});
