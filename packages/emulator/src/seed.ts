/** Seed files: parsing (YAML or JSON), validation with readable messages, and the CLI's demo seed. */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { normalizePath } from './state.js';
import type { EnvType, Seed, SeedApp, SeedEnvironment, SeedSecret, SecretType } from './types.js';

const SECRET_TYPES: readonly SecretType[] = ['secret', 'sealed', 'config'];
const ENV_TYPES: readonly EnvType[] = ['dev', 'staging', 'prod', 'custom'];

/** The seed the CLI uses when no `--seed` is given. */
export const DEMO_SEED: Seed = {
  apps: [
    {
      name: 'demo',
      environments: [
        {
          name: 'Development',
          secrets: [
            {
              key: 'DATABASE_URL',
              value: 'postgres://demo:demo@localhost:5432/demo',
              tags: ['db'],
              comment: 'local db',
            },
            { key: 'API_BASE', value: 'http://localhost:8080' },
            { key: 'API_URL', value: '${API_BASE}/v1' },
            { key: 'REDIS_URL', value: 'redis://localhost:6379', path: '/backend/cache' },
          ],
        },
        { name: 'Staging', secrets: [{ key: 'DATABASE_URL', value: 'postgres://staging.internal/demo' }] },
        { name: 'Production', secrets: [{ key: 'DATABASE_URL', value: 'postgres://prod.internal/demo' }] },
      ],
    },
  ],
};

/** Reads a seed file; `.json` is parsed as JSON, anything else as YAML (which also accepts JSON). */
export async function loadSeed(file: string): Promise<Seed> {
  const text = await readFile(file, 'utf8');
  let data: unknown;
  try {
    data = file.toLowerCase().endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new Error(`seed ${file}: cannot parse: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
  return validateSeed(data, `seed ${file}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  return Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
}

function stringField(
  obj: Record<string, unknown>,
  name: string,
  where: string,
  required: boolean,
): string | undefined {
  const value = obj[name];
  if (value === undefined && !required) return undefined;
  // YAML turns unquoted numbers and booleans into non-strings; accept them as their text.
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value !== 'string')
    throw new Error(`${where}: "${name}" must be a string, got ${describe(value)}`);
  return value;
}

function validateSecret(raw: unknown, where: string): SeedSecret {
  if (!isRecord(raw)) throw new Error(`${where}: expected an object, got ${describe(raw)}`);
  const key = stringField(raw, 'key', where, true) ?? '';
  if (key.trim() === '') throw new Error(`${where}: "key" must not be blank`);
  const secret: SeedSecret = { key, value: stringField(raw, 'value', where, true) ?? '' };
  const path = stringField(raw, 'path', where, false);
  if (path !== undefined) secret.path = path;
  const comment = stringField(raw, 'comment', where, false);
  if (comment !== undefined) secret.comment = comment;
  const type = stringField(raw, 'type', where, false);
  if (type !== undefined) {
    if (!SECRET_TYPES.includes(type as SecretType)) {
      throw new Error(`${where}: "type" must be one of ${SECRET_TYPES.join(', ')}, got "${type}"`);
    }
    secret.type = type as SecretType;
  }
  if (raw['tags'] !== undefined) {
    const tags = raw['tags'];
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) {
      throw new Error(`${where}: "tags" must be a list of strings`);
    }
    secret.tags = tags;
  }
  return secret;
}

function validateEnvironment(raw: unknown, where: string): SeedEnvironment {
  if (!isRecord(raw)) throw new Error(`${where}: expected an object, got ${describe(raw)}`);
  const name = stringField(raw, 'name', where, true) ?? '';
  if (!/^[a-zA-Z0-9_-]{1,64}$/.test(name)) {
    throw new Error(`${where}: "name" must be 1-64 characters of [a-zA-Z0-9_-], got "${name}"`);
  }
  const env: SeedEnvironment = { name };
  const envType = stringField(raw, 'envType', where, false) ?? stringField(raw, 'env_type', where, false);
  if (envType !== undefined) {
    if (!ENV_TYPES.includes(envType as EnvType)) {
      throw new Error(`${where}: "envType" must be one of ${ENV_TYPES.join(', ')}, got "${envType}"`);
    }
    env.envType = envType as EnvType;
  }
  const secrets = raw['secrets'] ?? [];
  if (!Array.isArray(secrets)) throw new Error(`${where}: "secrets" must be a list`);
  env.secrets = secrets.map((s, i) => validateSecret(s, `${where}.secrets[${i}]`));
  const seen = new Set<string>();
  for (const s of env.secrets) {
    const id = `${normalizePath(s.path ?? '/')}\u0000${s.key.trim().toUpperCase()}`;
    if (seen.has(id)) throw new Error(`${where}: duplicate key "${s.key}" at path ${s.path ?? '/'}`);
    seen.add(id);
  }
  return env;
}

/**
 * Checks an already-parsed seed and returns it typed. Error messages name the offending element
 * (`seed.apps[0].environments[1].secrets[2]: …`), never a secret value.
 */
export function validateSeed(data: unknown, where = 'seed'): Seed {
  if (!isRecord(data)) throw new Error(`${where}: expected an object with "apps", got ${describe(data)}`);
  const apps = data['apps'] ?? [];
  if (!Array.isArray(apps)) throw new Error(`${where}: "apps" must be a list`);
  const seed: Seed = {
    apps: apps.map((raw, i): SeedApp => {
      const at = `${where}.apps[${i}]`;
      if (!isRecord(raw)) throw new Error(`${at}: expected an object, got ${describe(raw)}`);
      const name = stringField(raw, 'name', at, true) ?? '';
      if (name.trim() === '') throw new Error(`${at}: "name" must not be blank`);
      const envs = raw['environments'] ?? [];
      if (!Array.isArray(envs)) throw new Error(`${at}: "environments" must be a list`);
      return { name, environments: envs.map((e, j) => validateEnvironment(e, `${at}.environments[${j}]`)) };
    }),
  };
  const organisation = stringField(data, 'organisation', where, false);
  if (organisation !== undefined) seed.organisation = organisation;
  return seed;
}
