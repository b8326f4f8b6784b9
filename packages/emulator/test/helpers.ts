/** Shared test helpers: raw HTTP calls against a running emulator, bearer headers, timeouts. */
import sodium from 'libsodium-wrappers';
import {
  decryptAsymmetric,
  decryptRaw,
  encryptAsymmetric,
  envKeypair,
  initCrypto,
  keyDigest,
} from '../src/crypto.js';
import type { Seed } from '../src/index.js';

/** `Bearer <Type> <value>` for a full `pss_…` token string, typed the way the official clients do it. */
export function bearer(token: string): string {
  const [prefix, version, value] = token.split(':');
  const type = prefix === 'pss_user' ? 'User' : version === 'v1' ? 'Service' : 'ServiceAccount';
  return `Bearer ${type} ${value ?? ''}`;
}

export interface CallResult {
  status: number;
  headers: Headers;
  text: string;
  // Tests assert response shapes structurally; a loose type keeps them readable.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

/** One item of a GET /secrets/ response (snake_case). */
export interface WireSecret {
  id: string;
  key: string;
  value: string;
  key_digest: string;
  path: string;
  folder: string | null;
  tags: string[];
  override: Record<string, unknown> | null;
  [field: string]: unknown;
}

/** The secrets array of a GET /secrets/ response. */
export function secretsOf(res: CallResult): WireSecret[] {
  return res.json as WireSecret[];
}

interface TokensJson {
  wrapped_key_share: string;
  apps: {
    name: string;
    environment_keys: {
      wrapped_seed: string;
      wrapped_salt: string;
      environment: { id: string; name: string; updated_at: string };
    }[];
  }[];
}

/** One raw HTTP request; `body` objects are JSON-encoded, strings sent as they are. */
export async function call(
  url: string,
  path: string,
  init: { method?: string; token?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<CallResult> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.token !== undefined) headers['authorization'] = bearer(init.token);
  const body =
    init.body === undefined
      ? undefined
      : typeof init.body === 'string'
        ? init.body
        : JSON.stringify(init.body);
  const res = await fetch(`${url}${path}`, {
    method: init.method ?? 'GET',
    headers,
    ...(body === undefined ? {} : { body }),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Rejects after `ms` instead of hanging (the official client never settles on HTTP errors). */
export function within<T>(promise: Promise<T>, ms = 10_000, label = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A small seed used by most tests. */
export const BASIC_SEED: Seed = {
  apps: [
    {
      name: 'shop',
      environments: [
        {
          name: 'Production',
          secrets: [
            { key: 'DATABASE_URL', value: 'postgres://prod', tags: ['db', 'primary'], comment: 'main db' },
            { key: 'API_KEY', value: 'k-123' },
            { key: 'REDIS_URL', value: 'redis://cache', path: '/backend/cache', tags: ['cache'] },
          ],
        },
        { name: 'Staging', secrets: [{ key: 'DATABASE_URL', value: 'postgres://staging' }] },
      ],
    },
  ],
};

/** Client-side key material of one environment, unwrapped through the tokens endpoint like a real client. */
export interface EnvMaterial {
  id: string;
  publicKey: string;
  salt: string;
  updatedAt: string;
}

/** Fetches tokens with `token` and unwraps the named environment of the named app. */
export async function envMaterial(
  url: string,
  token: string,
  app: string,
  env: string,
): Promise<EnvMaterial> {
  await initCrypto();
  const json = (await call(url, '/service/secrets/tokens/', { token })).json as TokensJson;
  const [, , , publicKey = '', shareA = '', wrapKey = ''] = token.split(':');
  const shareB = sodium.from_hex(
    sodium.to_string(decryptRaw(sodium.from_hex(json.wrapped_key_share), sodium.from_hex(wrapKey))),
  );
  const a = sodium.from_hex(shareA);
  const kp = { publicKey, privateKey: sodium.to_hex(shareB.map((b, i) => b ^ (a[i] ?? 0))) };
  const key = json.apps.find((x) => x.name === app)?.environment_keys.find((k) => k.environment.name === env);
  if (!key) throw new Error(`no key for ${app}/${env}`);
  const seed = decryptAsymmetric(key.wrapped_seed, kp);
  return {
    id: key.environment.id,
    publicKey: envKeypair(seed).publicKey,
    salt: decryptAsymmetric(key.wrapped_salt, kp),
    updatedAt: key.environment.updated_at,
  };
}

/** A POST/PUT item encrypted for the environment, with the canonical uppercase digest unless overridden. */
export function encryptedItem(
  env: EnvMaterial,
  secret: { key: string; value: string; comment?: string; path?: string; tags?: string[]; digestOf?: string },
): Record<string, unknown> {
  const item: Record<string, unknown> = {
    key: encryptAsymmetric(secret.key.toUpperCase(), env.publicKey),
    keyDigest: keyDigest(secret.digestOf ?? secret.key.toUpperCase(), env.salt),
    value: encryptAsymmetric(secret.value, env.publicKey),
    comment: secret.comment === undefined ? '' : encryptAsymmetric(secret.comment, env.publicKey),
  };
  if (secret.path !== undefined) item['path'] = secret.path;
  if (secret.tags !== undefined) item['tags'] = secret.tags;
  return item;
}
