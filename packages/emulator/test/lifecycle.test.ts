/** Test controls: snapshot/restart, environments added later, upserts, the request log, logger, control API. */
import { createRequire } from 'node:module';
import type PhaseModule from '@phase.dev/phase-node';
import { describe, expect, it } from 'vitest';
import { connectEmulator, startEmulator, type RequestLogEntry } from '../src/index.js';
import { BASIC_SEED, call, envMaterial, within } from './helpers.js';

type PhaseClass = typeof PhaseModule.default;
const Phase = createRequire(import.meta.url)('@phase.dev/phase-node') as PhaseClass;

describe('snapshot and restart', () => {
  it('restarting from a snapshot on the same port keeps tokens, keys and secrets valid', async () => {
    const first = await startEmulator({ seed: BASIC_SEED });
    first.setSecret({ app: 'shop', env: 'Production', key: 'ADDED', value: 'after seed' });
    const state = JSON.parse(JSON.stringify(first.snapshot())) as ReturnType<typeof first.snapshot>;
    const { port, tokens } = first;
    const before = await envMaterial(first.url, tokens.serviceAccount, 'shop', 'Production');
    await first.close();

    // Outage: nothing listens on the port any more.
    await expect(fetch(`${first.url}/service/health/`)).rejects.toThrow();

    const second = await startEmulator({ state, port });
    try {
      expect(second.url).toBe(first.url);
      expect(second.tokens).toEqual(tokens);
      const after = await envMaterial(second.url, tokens.serviceAccount, 'shop', 'Production');
      expect(after).toEqual(before);
      const phase = new Phase(tokens.serviceAccount, second.url);
      await within(phase.init());
      const secrets = await within(phase.get({ appId: second.apps[0]!.id, envName: 'Production' }));
      expect(secrets.map((s) => s.key).sort()).toEqual(['ADDED', 'API_KEY', 'DATABASE_URL', 'REDIS_URL']);
      // Timestamps keep increasing across the restart.
      second.setSecret({ app: 'shop', env: 'Production', key: 'ADDED', value: 'again' });
      const bumped = await envMaterial(second.url, tokens.serviceAccount, 'shop', 'Production');
      expect(bumped.updatedAt > before.updatedAt).toBe(true);
    } finally {
      await second.close();
    }
  });
});

describe('in-process controls', () => {
  it('addEnvironment gives every token keys for the new environment', async () => {
    const emu = await startEmulator({ seed: BASIC_SEED });
    try {
      const created = emu.addEnvironment('shop', 'qa-2');
      emu.setSecret({ app: 'shop', env: 'qa-2', key: 'QA', value: 'yes', path: '/x' });
      expect(emu.apps[0]!.environments.map((e) => e.name)).toEqual(['Production', 'Staging', 'qa-2']);
      for (const token of Object.values(emu.tokens)) {
        const material = await envMaterial(emu.url, token, 'shop', 'qa-2');
        expect(material.id).toBe(created.id);
      }
      const brandNew = emu.addEnvironment('newapp', 'Development');
      expect(emu.apps.find((a) => a.name === 'newapp')?.environments).toEqual([brandNew]);
      expect(() => emu.addEnvironment('shop', 'qa-2')).toThrow(/already exists/);
      expect(() => emu.addEnvironment('shop', 'bad name')).toThrow(/\[a-zA-Z0-9_-\]/);
    } finally {
      await emu.close();
    }
  });

  it('setSecret upserts by path and uppercase key; deleteSecret soft-deletes', async () => {
    const emu = await startEmulator({ seed: BASIC_SEED });
    try {
      const created = emu.setSecret({ app: 'shop', env: 'Staging', key: 'flag', value: 'on', tags: ['t'] });
      expect(created).toMatchObject({ created: true, version: 1 });
      const updated = emu.setSecret({
        app: 'shop',
        env: 'Staging',
        key: 'FLAG',
        value: 'off',
        comment: 'why',
      });
      expect(updated).toEqual({ id: created.id, created: false, version: 2 });
      expect(emu.readPlain('shop', 'Staging').find((s) => s.key === 'FLAG')).toMatchObject({
        value: 'off',
        comment: 'why',
        tags: [],
        keyDigestMatches: true,
      });
      expect(emu.deleteSecret({ app: 'shop', env: 'Staging', key: 'flag' })).toBe(true);
      expect(emu.deleteSecret({ app: 'shop', env: 'Staging', key: 'flag' })).toBe(false);
      expect(emu.readPlain('shop', 'Staging').map((s) => s.key)).toEqual(['DATABASE_URL']);
      expect(() => emu.setSecret({ app: 'nope', env: 'x', key: 'K', value: '' })).toThrow(/unknown app/);
    } finally {
      await emu.close();
    }
  });

  it('logs requests with the authorization type word but never the token value', async () => {
    const lines: RequestLogEntry[] = [];
    const emu = await startEmulator({ seed: BASIC_SEED, logger: { info: (entry) => lines.push(entry) } });
    try {
      const env = emu.apps[0]!.environments[0]!.id;
      await call(emu.url, '/service/secrets/?x=1', {
        token: emu.tokens.service,
        headers: { environment: env, 'X-Use-Camel-Case': 'true' },
      });
      const [record] = emu.requests();
      expect(record).toMatchObject({
        method: 'GET',
        path: '/service/secrets/',
        route: 'secrets',
        query: { x: '1' },
        status: 200,
        body: null,
        faulted: false,
      });
      expect(record!.headers['authorization']).toBe('Bearer Service [redacted]');
      expect(record!.headers['environment']).toBe(env);
      const value = emu.tokens.service.split(':')[2]!;
      expect(JSON.stringify(emu.requests())).not.toContain(value);
      expect(lines).toEqual([
        { method: 'GET', path: '/service/secrets/', status: 200, ms: expect.any(Number) },
      ]);
      emu.clearRequests();
      expect(emu.requests()).toEqual([]);
    } finally {
      await emu.close();
    }
  });
});

describe('control API over HTTP (connectEmulator)', () => {
  it('drives the same emulator from another client', async () => {
    const emu = await startEmulator({ seed: BASIC_SEED });
    try {
      const remote = connectEmulator(`${emu.url}/`);
      const info = await remote.info();
      expect(info).toEqual({ url: emu.url, tokens: emu.tokens, apps: emu.apps });

      const set = await remote.setSecret({
        app: 'shop',
        env: 'Production',
        key: 'REMOTE',
        value: 'r',
        path: '/p',
      });
      expect(set.created).toBe(true);
      await remote.setOverride({
        app: 'shop',
        env: 'Production',
        key: 'REMOTE',
        path: '/p',
        value: 'o',
        isActive: true,
      });
      const plain = await remote.readPlain('shop', 'Production');
      expect(plain.find((s) => s.key === 'REMOTE')).toMatchObject({
        value: 'r',
        override: { value: 'o', isActive: true },
      });
      expect(await remote.deleteSecret({ app: 'shop', env: 'Production', key: 'REMOTE', path: '/p' })).toBe(
        true,
      );

      const fault = await remote.fault({ route: 'tokens', status: 418 });
      expect((await call(emu.url, '/service/secrets/tokens/', { token: emu.tokens.user })).status).toBe(418);
      await fault.clear();
      expect((await call(emu.url, '/service/secrets/tokens/', { token: emu.tokens.user })).status).toBe(200);
      await remote.fault({ status: 500 });
      await remote.clearFaults();

      const requests = await remote.requests();
      expect(requests.map((r) => r.status)).toEqual([418, 200]);
      await remote.clearRequests();
      expect(await remote.requests()).toEqual([]);

      const env = await remote.addEnvironment('shop', 'Preview');
      expect(emu.apps[0]!.environments.at(-1)).toEqual(env);

      await remote.revokeToken('user');
      expect((await call(emu.url, '/service/secrets/tokens/', { token: emu.tokens.user })).status).toBe(403);

      const snapshot = await remote.snapshot();
      expect(snapshot.tokens.find((t) => t.kind === 'user')?.revoked_at).not.toBeNull();

      await expect(remote.fault({ status: 9 })).rejects.toThrow(/status/);
      await expect(remote.readPlain('nope', 'x')).rejects.toThrow(/unknown app/);
      expect((await call(emu.url, '/__phasekit/nope')).status).toBe(404);
    } finally {
      await emu.close();
    }
  });
});
