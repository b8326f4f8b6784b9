/**
 * The Phase API itself: `/secrets/tokens/`, `/secrets/` CRUD and `/health/`, with the status codes, error bodies and
 * quirks of phase-protocol.md sections 3 and 8. Pure functions of (store, request): no sockets here.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { CIPHERTEXT_PATTERN, decryptAsymmetric, keyDigest } from './crypto.js';
import { normalizePath, type EnvironmentRow, type SecretRow, type Store, type TokenRow } from './state.js';
import type { RouteName } from './types.js';
import { VERSION } from './version.js';

/** What the HTTP layer needs to answer. `body: undefined` means an empty body. */
export interface ApiResponse {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** A parsed request as the API handlers see it. */
export interface ApiRequest {
  method: string;
  route: RouteName;
  headers: IncomingHttpHeaders;
  query: URLSearchParams;
  rawBody: string;
}

/** Options that change server behaviour. */
export interface ApiOptions {
  strict: boolean;
}

const INTERNAL_ERROR: ApiResponse = { status: 500, body: { error: 'Internal server error.' } };
const BEARER_TYPES = new Set(['User', 'Service', 'ServiceAccount']);
const MAX_TAG_LENGTH = 64;

/** Mirrors a Python KeyError/DoesNotExist in the real view: it surfaces as a bare 500. */
class ServerCrash extends Error {}

/** Thrown to short-circuit validation with a ready response. */
class Reject extends Error {
  constructor(readonly response: ApiResponse) {
    super('rejected');
  }
}

const fail = (status: number, error: string): Reject => new Reject({ status, body: { error } });

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Routes one Phase API request. Never throws: unexpected errors become the server's generic 500. */
export function handleApi(store: Store, req: ApiRequest, options: ApiOptions): ApiResponse {
  try {
    switch (req.route) {
      case 'tokens':
        return handleTokens(store, req);
      case 'secrets':
        return handleSecrets(store, req, options);
      case 'health':
        return { status: 200, body: { status: 'alive', version: VERSION } };
      case 'other':
        return { status: 404, body: { error: 'Not found.' } };
    }
  } catch (error) {
    if (error instanceof Reject) return error.response;
    return INTERNAL_ERROR;
  }
}

function handleTokens(store: Store, req: ApiRequest): ApiResponse {
  if (req.method !== 'GET') return { status: 405, body: { error: `Method "${req.method}" not allowed.` } };
  const auth = header(req.headers, 'authorization');
  // The real view indexes the header directly, so a missing one is a KeyError (500), not a 401.
  if (auth === undefined) return INTERNAL_ERROR;
  const [scheme, type, value] = auth.split(' ');
  const token =
    scheme?.toLowerCase() === 'bearer' && type && value ? store.findToken(type, value) : undefined;
  if (!token) return { status: 403, body: { error: 'Token expired or deleted' } };
  return { status: 200, body: tokensBody(store, token) };
}

function tokensBody(store: Store, token: TokenRow): Record<string, unknown> {
  const principal = store.principal(token.principal_id);
  const keys = principal ? store.environmentKeysOf(principal.id) : [];
  const apps = store.state.apps
    .map((app) => {
      const environmentKeys = keys
        .map((key) => ({ key, env: store.environmentById(key.environment_id) }))
        .filter((k): k is { key: (typeof keys)[number]; env: EnvironmentRow } => k.env?.app_id === app.id)
        .sort((a, b) => a.env.index - b.env.index)
        .map(({ key, env }) => ({
          id: key.id,
          environment: {
            id: env.id,
            name: env.name,
            env_type: env.env_type,
            index: env.index,
            created_at: env.created_at,
            updated_at: env.updated_at,
          },
          paths: null,
          identity_key: store.envKeypair(env).publicKey,
          wrapped_seed: key.wrapped_seed,
          wrapped_salt: key.wrapped_salt,
          created_at: key.created_at,
          updated_at: key.updated_at,
          deleted_at: key.deleted_at,
          user: principal?.kind === 'user' ? principal.id : null,
          service_account: principal?.kind === 'service_account' ? principal.id : null,
        }));
      return { id: app.id, name: app.name, encryption: 'E2E', environment_keys: environmentKeys };
    })
    .filter((app) => app.environment_keys.length > 0);
  return {
    wrapped_key_share: token.wrapped_key_share,
    ...(token.type === 'User' ? { user_id: token.principal_id } : {}),
    ...(token.type === 'ServiceAccount' ? { account_id: token.principal_id } : {}),
    ...(token.type === 'Service' ? {} : { offline_enabled: false }),
    organisation: { id: store.state.organisation.id, name: store.state.organisation.name },
    apps,
  };
}

function unauthorized(error: string): Reject {
  return new Reject({ status: 401, body: { error }, headers: { 'WWW-Authenticate': 'Bearer' } });
}

function authenticate(store: Store, req: ApiRequest): TokenRow {
  const auth = header(req.headers, 'authorization');
  if (!auth) throw unauthorized('Authentication credentials were not provided.');
  const [scheme, type, ...rest] = auth.split(' ');
  if (scheme?.toLowerCase() !== 'bearer') throw unauthorized('Authentication credentials were not provided.');
  if (type === undefined || !BEARER_TYPES.has(type)) throw unauthorized('Invalid token');
  const token = store.findToken(type, rest.join(' '));
  if (!token) throw unauthorized('Token expired or deleted');
  return token;
}

function resolveEnvironment(store: Store, req: ApiRequest, token: TokenRow): EnvironmentRow {
  const secretId =
    header(req.headers, 'secret-id') ?? header(req.headers, 'secret_id') ?? req.query.get('secret_id') ?? '';
  if (secretId) {
    const row = store.state.secrets.find((s) => s.id === secretId);
    const env = row && store.environmentById(row.environment_id);
    if (!env) throw fail(404, 'Secret not found');
    return env;
  }
  const envId = header(req.headers, 'environment');
  if (envId) {
    const env = store.environmentById(envId);
    if (!env) throw unauthorized('Environment not found');
    return env;
  }
  const appId = req.query.get('app_id');
  const envName = req.query.get('env');
  if (appId && envName) {
    const app = store.appById(appId);
    if (!app) throw fail(404, `App with ID ${appId} not found`);
    const env = store.state.environments.find(
      (e) => e.app_id === app.id && e.name.toLowerCase() === envName.toLowerCase(),
    );
    if (!env) throw fail(404, `Environment '${envName}' not found in App ${app.name}`);
    return env;
  }
  if (token.type === 'Service') throw unauthorized('Service tokens require an environment context');
  throw fail(403, 'Environment context required. Supply `app_id` and `env` as query parameters.');
}

function checkAccess(store: Store, token: TokenRow, env: EnvironmentRow): void {
  if (store.hasEnvironmentKey(token.principal_id, env.id)) return;
  switch (token.type) {
    case 'Service':
      throw unauthorized('Service token cannot access this environment');
    case 'ServiceAccount':
      throw unauthorized('Service account cannot access this environment');
    case 'User':
      throw fail(403, 'User cannot access this environment');
  }
}

function handleSecrets(store: Store, req: ApiRequest, options: ApiOptions): ApiResponse {
  const token = authenticate(store, req);
  const env = resolveEnvironment(store, req, token);
  checkAccess(store, token, env);
  try {
    switch (req.method) {
      case 'GET':
        return listSecrets(store, req, token, env);
      case 'POST':
        return createSecrets(store, parseBody(req.rawBody), token, env, options);
      case 'PUT':
        return updateSecrets(store, parseBody(req.rawBody), token, env, options);
      case 'DELETE':
        return deleteSecrets(store, parseBody(req.rawBody), env);
      default:
        return { status: 403, body: { error: `Unsupported HTTP method: ${req.method}` } };
    }
  } catch (error) {
    if (error instanceof ServerCrash) return INTERNAL_ERROR;
    throw error;
  }
}

function listSecrets(store: Store, req: ApiRequest, token: TokenRow, env: EnvironmentRow): ApiResponse {
  let rows = store.liveSecrets(env.id);
  const digest = header(req.headers, 'keydigest');
  if (digest) rows = rows.filter((s) => s.key_digest === digest);
  const path = header(req.headers, 'path');
  if (path) rows = rows.filter((s) => s.path === normalizePath(path));
  const tags = header(req.headers, 'tags');
  if (tags) {
    const wanted = tags.split(',').map((t) => t.trim());
    // The server joins on tags without distinct(): a row matching two tags is returned twice.
    rows = rows.flatMap((s) => s.tags.filter((t) => wanted.includes(t)).map(() => s));
  }
  const body = rows.map((s) => serialiseSecret(store, s, token));
  const camel = header(req.headers, 'x-use-camel-case') === 'true';
  return { status: 200, body: camel ? toCamelCase(body) : body };
}

function serialiseSecret(store: Store, s: SecretRow, token: TokenRow): Record<string, unknown> {
  const own = token.type === 'User' ? store.overrideFor(s.id, token.principal_id) : undefined;
  return {
    id: s.id,
    key: s.key,
    value: s.value,
    comment: s.comment,
    tags: [...s.tags],
    override: own
      ? {
          id: own.id,
          value: own.value,
          is_active: own.is_active,
          created_at: own.created_at,
          updated_at: own.updated_at,
        }
      : null,
    type: s.type,
    lifecycle: s.lifecycle,
    environment: s.environment_id,
    folder: s.folder_id,
    path: s.path,
    key_digest: s.key_digest,
    version: s.version,
    created_at: s.created_at,
    updated_at: s.updated_at,
  };
}

function snakeToCamel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/** Renames object keys snake_case to camelCase, recursively; values are left alone. */
export function toCamelCase(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toCamelCase);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [snakeToCamel(k), toCamelCase(v)]));
  }
  return value;
}

function parseBody(raw: string): Record<string, unknown> {
  if (raw.trim() === '') throw fail(400, 'Request body is required.');
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    throw fail(400, 'Request body must be valid JSON.');
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw fail(400, 'Request body must be a JSON object.');
  }
  return data as Record<string, unknown>;
}

function items(body: Record<string, unknown>): unknown[] {
  const list = body['secrets'];
  if (!Array.isArray(list)) throw new ServerCrash();
  return list;
}

function record(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ServerCrash();
  return value as Record<string, unknown>;
}

function required(item: Record<string, unknown>, name: string): unknown {
  if (!(name in item)) throw new ServerCrash();
  return item[name];
}

function ciphertext(value: unknown): string {
  if (typeof value !== 'string') throw fail(400, 'Invalid ciphertext format');
  if (value !== '' && !CIPHERTEXT_PATTERN.test(value)) throw fail(400, 'Invalid ciphertext format');
  return value;
}

function tagList(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((t) => typeof t === 'string')) throw fail(400, 'Invalid tags');
  for (const tag of value) {
    if (tag.length > MAX_TAG_LENGTH) throw fail(400, `Tag name too long (max ${MAX_TAG_LENGTH} characters).`);
  }
  return [...new Set(value)];
}

/** Strict mode: what the real server cannot check under E2EE, the emulator can. */
function strictCheck(
  store: Store,
  env: EnvironmentRow,
  fields: (string | undefined)[],
  key?: [string, string],
): void {
  const kp = store.envKeypair(env);
  const open = (ct: string): string => {
    try {
      return decryptAsymmetric(ct, kp);
    } catch {
      throw fail(400, 'Ciphertext does not decrypt with the environment key');
    }
  };
  for (const ct of fields) if (ct) open(ct);
  if (key) {
    const [keyCt, digest] = key;
    if (keyCt === '') throw fail(400, 'Ciphertext does not decrypt with the environment key');
    if (digest !== keyDigest(open(keyCt).toUpperCase(), env.salt)) {
      throw fail(400, 'keyDigest does not match the uppercase key');
    }
  }
}

interface Override {
  value: string;
  isActive: boolean;
}

function parseOverride(raw: unknown, isActiveRequired: boolean): Override | undefined {
  if (raw === undefined || raw === null) return undefined;
  const o = record(raw);
  const value = ciphertext(required(o, 'value'));
  const isActive = isActiveRequired ? required(o, 'isActive') : (o['isActive'] ?? true);
  return { value, isActive: Boolean(isActive) };
}

function createSecrets(
  store: Store,
  body: Record<string, unknown>,
  token: TokenRow,
  env: EnvironmentRow,
  options: ApiOptions,
): ApiResponse {
  const planned = items(body).map((raw) => {
    const item = record(raw);
    const key = ciphertext(required(item, 'key'));
    const digest = required(item, 'keyDigest');
    if (typeof digest !== 'string') throw fail(400, 'Invalid keyDigest');
    const value = ciphertext(required(item, 'value'));
    const comment = ciphertext(required(item, 'comment'));
    const override = parseOverride(item['override'], false);
    const path = normalizePath(typeof item['path'] === 'string' ? item['path'] : '/');
    const type = typeof item['type'] === 'string' ? item['type'] : 'secret';
    return { key, digest, value, comment, override, path, type, tags: tagList(item['tags']) };
  });
  if (options.strict) {
    for (const p of planned)
      strictCheck(store, env, [p.value, p.comment, p.override?.value], [p.key, p.digest]);
  }
  const taken = new Set(store.liveSecrets(env.id).map((s) => `${s.path}\u0000${s.key_digest}`));
  for (const p of planned) {
    const slot = `${p.path}\u0000${p.digest}`;
    if (taken.has(slot)) return { status: 409, body: { error: 'Duplicate secret found' } };
    taken.add(slot);
  }
  for (const p of planned) {
    const now = store.clock.now();
    const row: SecretRow = {
      id: randomUUID(),
      environment_id: env.id,
      path: p.path,
      folder_id: store.ensureFolder(env.id, p.path),
      key: p.key,
      key_digest: p.digest,
      value: p.value,
      comment: p.comment,
      tags: p.tags,
      type: p.type,
      lifecycle: 'static',
      version: 1,
      created_at: now,
      updated_at: now,
      deleted_at: null,
    };
    store.state.secrets.push(row);
    // Overrides are stored only for PAT callers and silently ignored otherwise.
    if (p.override && token.type === 'User') {
      store.upsertOverride(row.id, token.principal_id, p.override.value, p.override.isActive);
    }
  }
  store.bump(env.id);
  return { status: 200 };
}

function updateSecrets(
  store: Store,
  body: Record<string, unknown>,
  token: TokenRow,
  env: EnvironmentRow,
  options: ApiOptions,
): ApiResponse {
  const planned = items(body).map((raw) => {
    const item = record(raw);
    const id = required(item, 'id');
    // The real view does Secret.objects.get(id=…) unscoped; an unknown id is an unmapped DoesNotExist (500).
    const row = store.state.secrets.find((s) => s.id === id && s.deleted_at === null);
    if (!row) throw new ServerCrash();
    const rowEnv = store.environmentById(row.environment_id);
    if (!rowEnv) throw new ServerCrash();
    let key: [string, string] | undefined;
    if ('key' in item) {
      const digest = required(item, 'keyDigest');
      if (typeof digest !== 'string') throw fail(400, 'Invalid keyDigest');
      key = [ciphertext(item['key']), digest];
    }
    const value = 'value' in item ? ciphertext(item['value']) : undefined;
    const comment = 'comment' in item ? ciphertext(item['comment']) : undefined;
    const type = typeof item['type'] === 'string' ? item['type'] : undefined;
    if (row.lifecycle === 'rotating') throw fail(400, 'Rotating secrets cannot be modified directly.');
    if (row.type === 'sealed' && type !== undefined && type !== 'sealed') {
      throw fail(400, 'Sealed secrets cannot be unsealed.');
    }
    const override = parseOverride(item['override'], true);
    const path = typeof item['path'] === 'string' ? normalizePath(item['path']) : row.path;
    return { row, rowEnv, key, value, comment, type, override, path, tags: tagList(item['tags']) };
  });
  if (options.strict) {
    for (const p of planned) strictCheck(store, p.rowEnv, [p.value, p.comment, p.override?.value], p.key);
  }
  const updating = new Set(planned.map((p) => p.row.id));
  const batch = new Set<string>();
  for (const p of planned) {
    const slot = `${p.rowEnv.id}\u0000${p.path}\u0000${p.key?.[1] ?? p.row.key_digest}`;
    const clash = store
      .liveSecrets(p.rowEnv.id)
      .some((s) => !updating.has(s.id) && `${s.environment_id}\u0000${s.path}\u0000${s.key_digest}` === slot);
    if (clash || batch.has(slot)) return { status: 409, body: { error: 'Duplicate secret found' } };
    batch.add(slot);
  }
  for (const p of planned) {
    const { row } = p;
    if (p.key) [row.key, row.key_digest] = p.key;
    // A sealed secret's value cannot be changed on this route; the server ignores it silently.
    if (p.value !== undefined && row.type !== 'sealed') row.value = p.value;
    if (p.comment !== undefined) row.comment = p.comment;
    if (p.type !== undefined) row.type = p.type;
    if (p.path !== row.path) {
      row.path = p.path;
      row.folder_id = store.ensureFolder(row.environment_id, p.path);
    }
    // Quirk mirrored on purpose: absent or empty tags clear all tags.
    row.tags = p.tags;
    row.version += 1;
    row.updated_at = store.clock.now();
    if (p.override && token.type === 'User') {
      store.upsertOverride(row.id, token.principal_id, p.override.value, p.override.isActive);
    }
  }
  store.bump(env.id, ...planned.map((p) => p.rowEnv.id));
  return { status: 200 };
}

function deleteSecrets(store: Store, body: Record<string, unknown>, env: EnvironmentRow): ApiResponse {
  const ids = new Set(items(body).filter((id): id is string => typeof id === 'string'));
  const touched = [env.id];
  for (const row of store.state.secrets) {
    // Unscoped like the real server: ids from any environment are deleted; unknown ids are ignored.
    if (ids.has(row.id) && row.deleted_at === null) {
      row.deleted_at = store.clock.now();
      touched.push(row.environment_id);
    }
  }
  store.bump(...touched);
  return { status: 200 };
}
