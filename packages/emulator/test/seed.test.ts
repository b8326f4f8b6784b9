/** Seed files: YAML and JSON, and validation messages that point at the offending element. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSeed, startEmulator, validateSeed } from '../src/index.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'phasekit-seed-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const YAML_SEED = `apps:
  - name: shop
    environments:
      - name: Production
        secrets:
          - { key: DATABASE_URL, value: "postgres://...", path: /, tags: [db], comment: primary }
          - { key: NESTED, value: x, path: /backend/cache }
          - { key: PORT, value: 8080 }
      - name: Staging
        secrets: []
`;

describe('loadSeed', () => {
  it('parses the YAML seed of the product docs', async () => {
    const file = join(dir, 'seed.yaml');
    await writeFile(file, YAML_SEED);
    const seed = await loadSeed(file);
    expect(seed.apps[0]?.environments.map((e) => e.name)).toEqual(['Production', 'Staging']);
    expect(seed.apps[0]?.environments[0]?.secrets?.[2]).toEqual({ key: 'PORT', value: '8080' });
    const emu = await startEmulator({ seed });
    try {
      expect(emu.readPlain('shop', 'Production').map((s) => [s.path, s.key, s.value])).toEqual([
        ['/', 'DATABASE_URL', 'postgres://...'],
        ['/backend/cache', 'NESTED', 'x'],
        ['/', 'PORT', '8080'],
      ]);
    } finally {
      await emu.close();
    }
  });

  it('parses JSON', async () => {
    const file = join(dir, 'seed.json');
    await writeFile(file, JSON.stringify({ apps: [{ name: 'a', environments: [{ name: 'dev' }] }] }));
    expect(await loadSeed(file)).toEqual({
      apps: [{ name: 'a', environments: [{ name: 'dev', secrets: [] }] }],
    });
  });

  it('names the offending element without echoing values', () => {
    expect(() => validateSeed({ apps: [{ name: 'a', environments: [{ name: 'bad name' }] }] })).toThrow(
      'seed.apps[0].environments[0]: "name" must be 1-64 characters',
    );
    expect(() =>
      validateSeed({ apps: [{ name: 'a', environments: [{ name: 'e', secrets: [{ key: 'K' }] }] }] }),
    ).toThrow('seed.apps[0].environments[0].secrets[0]: "value" must be a string');
    expect(() =>
      validateSeed({
        apps: [
          {
            name: 'a',
            environments: [
              {
                name: 'e',
                secrets: [
                  { key: 'k', value: 's3cret' },
                  { key: 'K', value: 's3cret' },
                ],
              },
            ],
          },
        ],
      }),
    ).toThrow(/duplicate key "K"/);
    expect(() => validateSeed([])).toThrow(/expected an object/);
  });
});
