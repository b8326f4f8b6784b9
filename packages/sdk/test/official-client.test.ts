import { createRequire } from 'node:module';
import { startEmulator, type Emulator } from '@phasekit/emulator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PhaseClient } from '../src/index.js';

// Differential test: Phase's own Node client (@phase.dev/phase-node 3.1.1) and ours, on the same
// emulator state, must agree on keys, values, paths and tags.

interface OfficialSecret {
  key: string;
  value: string;
  path: string;
  tags: readonly string[];
}
interface OfficialPhase {
  init(): Promise<void>;
  apps: { id: string; name: string }[];
  get(options: { appId: string; envName: string; path?: string; key?: string }): Promise<OfficialSecret[]>;
  create(options: {
    appId: string;
    envName: string;
    secrets: { key: string; value: string; comment?: string; path?: string; tags?: string[] }[];
  }): Promise<void>;
}
const Phase = createRequire(import.meta.url)('@phase.dev/phase-node') as new (
  token: string,
  host: string,
) => OfficialPhase;

/** The official client never settles on HTTP errors; bound every call. */
function bounded<T>(promise: Promise<T>, ms = 10_000): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error('official client hung')), ms).unref()),
  ]);
}

const seed = {
  apps: [
    {
      name: 'shop',
      environments: [
        {
          name: 'Production',
          secrets: [
            {
              key: 'DATABASE_URL',
              value: 'postgres://u:p@db:5432/shop',
              tags: ['db', 'core'],
              comment: 'primary',
            },
            { key: 'API_KEY', value: 'k-123' },
            { key: 'DOLLARS', value: 'pa$$word $& $` end' },
            { key: 'UNICODE', value: 'zürich ✓ 日本 🔐' },
            { key: 'MULTILINE', value: 'line1\nline2\n"quoted"\\back' },
            { key: 'EMPTY', value: '' },
            { key: 'DSN', value: 'url=${DATABASE_URL};key=${API_KEY}' },
            { key: 'CROSS_ENV', value: '${Staging.STAGING_ONLY}' },
            { key: 'FROM_FOLDER', value: '${/backend/cache/REDIS}' },
            { key: 'REDIS', value: 'redis://cache', path: '/backend/cache', tags: ['cache'] },
            { key: 'WORKER', value: 'w', path: '/backend' },
          ],
        },
        { name: 'Staging', secrets: [{ key: 'STAGING_ONLY', value: 'from-staging' }] },
      ],
    },
  ],
};

let emulator: Emulator;
let appId: string;
const ours: PhaseClient[] = [];

const normalise = (list: OfficialSecret[]) =>
  list
    .map((s) => ({ key: s.key, value: s.value, path: s.path, tags: [...s.tags].sort() }))
    .sort((a, b) => `${a.path}/${a.key}`.localeCompare(`${b.path}/${b.key}`));

function ourClient(token: string): PhaseClient {
  const c = new PhaseClient({ token, host: emulator.url, env: {} });
  ours.push(c);
  return c;
}

beforeAll(async () => {
  emulator = await startEmulator({ seed });
  appId = emulator.apps[0]!.id;
});
afterAll(async () => {
  await Promise.all(ours.map((c) => c.close()));
  await emulator.close();
});

describe('against @phase.dev/phase-node 3.1.1', () => {
  it.each(['serviceAccount', 'service'] as const)(
    'both clients return the same keys, values, paths and tags with the %s token',
    async (kind) => {
      const official = new Phase(emulator.tokens[kind], emulator.url);
      await bounded(official.init());
      const theirs = await bounded(official.get({ appId, envName: 'Production' }));
      const mine = await ourClient(emulator.tokens[kind]).getSecrets({
        appId,
        env: 'Production',
        recursive: true,
      });
      expect(normalise(theirs)).toEqual(normalise([...mine]));
      // And both equal what the seed holds, references resolved.
      expect(Object.fromEntries(mine.map((s) => [s.key, s.value]))).toMatchObject({
        DSN: 'url=postgres://u:p@db:5432/shop;key=k-123',
        CROSS_ENV: 'from-staging',
        FROM_FOLDER: 'redis://cache',
        DOLLARS: 'pa$$word $& $` end',
      });
      expect(mine).toHaveLength(seed.apps[0]!.environments[0]!.secrets.length);
    },
  );

  it('agrees on a single folder and a single key', async () => {
    const official = new Phase(emulator.tokens.serviceAccount, emulator.url);
    await bounded(official.init());
    const mine = ourClient(emulator.tokens.serviceAccount);
    const folder = await bounded(official.get({ appId, envName: 'production', path: '/backend/cache' }));
    expect(normalise(folder)).toEqual(
      normalise([...(await mine.getSecrets({ appId, env: 'production', path: '/backend/cache' }))]),
    );
    const one = await bounded(official.get({ appId, envName: 'Production', key: 'API_KEY' }));
    expect(normalise(one)).toEqual(
      normalise([await mine.getSecret({ appId, env: 'Production', key: 'API_KEY' })]),
    );
  });

  it('what the official client creates, our SDK reads back (and the reverse)', async () => {
    const official = new Phase(emulator.tokens.serviceAccount, emulator.url);
    await bounded(official.init());
    await bounded(
      official.create({
        appId,
        envName: 'Staging',
        secrets: [
          { key: 'MADE_BY_OFFICIAL', value: 'o$$1 ✓', comment: 'theirs', tags: ['x'] },
          { key: 'IN_FOLDER', value: 'f', path: '/made' },
        ],
      }),
    );
    const mine = ourClient(emulator.tokens.serviceAccount);
    const read = await mine.getSecrets({ appId, env: 'Staging', recursive: true, comments: true });
    expect(read.find((s) => s.key === 'MADE_BY_OFFICIAL')).toMatchObject({
      value: 'o$$1 ✓',
      comment: 'theirs',
      tags: ['x'],
      path: '/',
    });
    expect(read.find((s) => s.key === 'IN_FOLDER')).toMatchObject({ value: 'f', path: '/made' });

    await mine.createSecrets({
      appId,
      env: 'Staging',
      secrets: [{ key: 'made_by_us', value: 'u\n"1"', tags: ['y'] }],
    });
    const theirs = await bounded(official.get({ appId, envName: 'Staging', key: 'MADE_BY_US' }));
    expect(normalise(theirs)).toEqual([{ key: 'MADE_BY_US', value: 'u\n"1"', path: '/', tags: ['y'] }]);
  });
});
