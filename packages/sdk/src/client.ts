import { inspect } from 'node:util';
import type { Dispatcher } from 'undici';
import { ErrorCode, PhaseError } from './errors.js';
import { readEnv } from './env.js';
import type { EnvSource } from './env.js';
import {
  cryptoBackend,
  cryptoReady,
  decryptAsymmetric,
  encryptAsymmetric,
  keyDigest,
  reconstructPrivateKey,
  toHex,
} from './internal/crypto.js';
import { Transport, kClock, parseBody, type Clock, type RequestSpec, type Route } from './internal/http.js';
import {
  folderId,
  normalisePath,
  resolveReferences,
  type RawValue,
  type ResolverHost,
} from './internal/references.js';
import {
  Session,
  parseTokensResponse,
  type AppRecord,
  type EnvKeys,
  type EnvRecord,
} from './internal/session.js';
import { parseToken, type ParsedToken } from './internal/token.js';
import { SecretsWatch, type WatchOptions, type WatchSource } from './watch.js';
import type { AppInfo, CallOptions, Logger, Secret, SecretsQuery } from './types.js';

const VERSION = '0.1.0';
/** Phase Cloud's console origin: the host when neither the `host` option nor PHASE_HOST names one. */
export const DEFAULT_HOST = 'https://console.phase.dev';

/** Options of {@link PhaseClient}. Every field is optional. */
export interface PhaseClientOptions {
  /**
   * A `pss_service:v1`, `pss_service:v2` or `pss_user:v1` token.
   * @default env PHASE_SERVICE_TOKEN
   */
  token?: string;
  /**
   * Phase console origin.
   * @default env PHASE_HOST, else 'https://console.phase.dev'
   */
  host?: string;
  /**
   * Deadline of one HTTP attempt.
   * @unit milliseconds
   * @default 10000
   */
  timeoutMs?: number;
  /**
   * Deadline of one call, retries and waits included.
   * @unit milliseconds
   * @default 60000
   */
  totalTimeoutMs?: number;
  /**
   * Retries of a read after a network error, a timeout, 429 (honouring Retry-After) or any 5xx.
   * Writes are never retried.
   * @default 3
   */
  retries?: number;
  /**
   * An undici Dispatcher for every request: a ProxyAgent, an Agent with a custom CA, a MockAgent in tests.
   * @default a keep-alive Agent owned by the client
   */
  dispatcher?: Dispatcher;
  /** Receives debug lines (retries) and warnings, pino-style. Never given a value or token. */
  logger?: Partial<Logger>;
  /** @default 'phasekit-sdk/<version> node/<version>' */
  userAgent?: string;
  /**
   * Where `token` and `host` defaults are read from.
   * @default process.env
   */
  env?: EnvSource;
  /** Called after every HTTP attempt with its route and status (or 'error'), for metrics. */
  onResponse?: (route: Route, status: number | 'error') => void;
}

/** One secret to create. */
export interface NewSecret {
  key: string;
  value: string;
  comment?: string;
  /** @default '/' */
  path?: string;
  tags?: readonly string[];
  /** `secret`, `sealed` or `config`. @default 'secret' */
  type?: 'secret' | 'sealed' | 'config';
}

/** One secret to update, found by key and path. Fields left out keep their stored value. */
export interface SecretUpdate {
  key: string;
  /** @default '/' */
  path?: string;
  value?: string;
  comment?: string;
  /** Replaces the tags; left out, the current tags are kept. */
  tags?: readonly string[];
  /** Renames the key. */
  newKey?: string;
}

/** App and environment for writes. */
export interface EnvTarget {
  app?: string;
  appId?: string;
  env: string;
}

const KNOWN_OPTIONS = new Set([
  'token',
  'host',
  'timeoutMs',
  'totalTimeoutMs',
  'retries',
  'dispatcher',
  'logger',
  'userAgent',
  'env',
  'onResponse',
]);

function positiveInteger(name: string, value: unknown, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new PhaseError(
      ErrorCode.CONFIG,
      `option ${name} must be an integer >= ${min} (got a ${typeof value})`,
    );
  }
  return value;
}

function makeLogger(logger: Partial<Logger> | undefined): Logger {
  const noop = () => {};
  return {
    debug: logger?.debug?.bind(logger) ?? noop,
    info: logger?.info?.bind(logger) ?? noop,
    // eslint-disable-next-line no-console -- allowed: the documented default for warnings without a logger
    warn: logger?.warn?.bind(logger) ?? ((obj, msg) => console.warn(msg ?? '', obj)), // -- allowed
    // eslint-disable-next-line no-console -- allowed: the documented default for errors without a logger
    error: logger?.error?.bind(logger) ?? ((obj, msg) => console.error(msg ?? '', obj)), // -- allowed
  };
}

interface RawRow {
  id: string;
  key: string;
  value: string;
  comment: string;
  tags: string[];
  path: string;
  version: number;
  updatedAt: string;
  type: string;
  override: { value: string; isActive: boolean } | undefined;
  keyDigest?: string;
}

interface Decrypted {
  row: RawRow;
  key: string;
  value: string;
  overridden: boolean;
}

/** Decrypted plaintexts kept per client, keyed by ciphertext: an unchanged secret is decrypted once. */
const DECRYPT_CACHE_LIMIT = 50_000;

/** A tokens body byte for byte the same as the one the session was built from: nothing to parse. */
const SAME_BODY = Symbol('same tokens body');

interface TokensAnswer {
  readonly body: Buffer;
  readonly json: unknown;
}

/**
 * A client for one Phase token. Reads, writes and watches secrets, decrypting them locally: Phase only
 * ever sees ciphertext. Environment keys are unwrapped lazily, only for environments actually used.
 *
 * @example
 * const phase = new PhaseClient(); // token from PHASE_SERVICE_TOKEN
 * const secrets = await phase.getSecrets({ app: 'shop', env: 'production' });
 */
export class PhaseClient {
  /** The Phase origin this client talks to. */
  readonly host: string;
  readonly #token: ParsedToken;
  readonly #transport: Transport;
  readonly #totalTimeoutMs: number;
  readonly #logger: Logger;
  #session: Session | undefined;
  #sessionPromise: Promise<Session> | undefined;
  /** The tokens body the session was last built from or updated with. */
  #tokensBody: Buffer | undefined;
  readonly #cache = new Map<string, string>();
  #decryptions = 0;

  constructor(options: PhaseClientOptions = {}) {
    for (const name of Object.keys(options)) {
      if (!KNOWN_OPTIONS.has(name))
        throw new PhaseError(ErrorCode.CONFIG, `unknown PhaseClient option ${name}`);
    }
    const env = options.env ?? process.env;
    this.#token = parseToken(options.token ?? readEnv(env, 'PHASE_SERVICE_TOKEN'));
    const host = options.host ?? readEnv(env, 'PHASE_HOST') ?? DEFAULT_HOST;
    let url: URL;
    try {
      url = new URL(host);
    } catch {
      throw new PhaseError(ErrorCode.CONFIG, 'option host (PHASE_HOST) is not a valid URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new PhaseError(ErrorCode.CONFIG, 'option host (PHASE_HOST) must be an http(s) URL');
    }
    this.host = url.origin;
    this.#logger = makeLogger(options.logger);
    this.#totalTimeoutMs = positiveInteger('totalTimeoutMs', options.totalTimeoutMs, 60_000);
    this.#transport = new Transport({
      host: this.host,
      authorization: `Bearer ${this.#token.type} ${this.#token.tokenValue}`,
      userAgent: options.userAgent ?? `phasekit-sdk/${VERSION} node/${process.version}`,
      timeoutMs: positiveInteger('timeoutMs', options.timeoutMs, 10_000),
      totalTimeoutMs: this.#totalTimeoutMs,
      retries: positiveInteger('retries', options.retries, 3, 0),
      logger: this.#logger,
      dispatcher: options.dispatcher,
      secrets: [this.#token.tokenValue, toHex(this.#token.shareA), toHex(this.#token.wrapKey)],
      onResponse: options.onResponse,
      clock: (options as { [kClock]?: Clock })[kClock],
    });
  }

  /** The apps and environments this token can reach, with each environment's `updatedAt`. Always asks Phase. */
  async apps(options: CallOptions = {}): Promise<AppInfo[]> {
    const session = await this.#probe(options);
    return session.apps.map((app) => ({
      id: app.id,
      name: app.name,
      encryption: app.encryption,
      environments: app.environments.map((e) => ({
        id: e.id,
        name: e.name,
        envType: e.envType,
        updatedAt: e.updatedAt,
      })),
    }));
  }

  /** Reads and decrypts the secrets of one environment folder; see {@link SecretsQuery}. */
  async getSecrets(query: SecretsQuery, options: CallOptions = {}): Promise<Secret[]> {
    return (await this.#read(query, options)).secrets;
  }

  /** Reads one secret by key; `NOT_FOUND` when it does not exist at that path. */
  async getSecret(
    query: Omit<SecretsQuery, 'keys'> & { key: string },
    options: CallOptions = {},
  ): Promise<Secret> {
    const { key, ...rest } = query;
    const [secret] = await this.getSecrets({ ...rest, keys: [key] }, options);
    if (!secret) {
      const { app, env } = await this.#target(rest, options);
      throw new PhaseError(
        ErrorCode.NOT_FOUND,
        `secret ${key.toUpperCase()} not found in ${app.name}/${env.name} at path ${normalisePath(query.path ?? '/')}`,
      );
    }
    return secret;
  }

  /** Creates secrets. Keys are uppercased and digested as uppercase, as the server expects. */
  async createSecrets(
    target: EnvTarget & { secrets: readonly NewSecret[] },
    options: CallOptions = {},
  ): Promise<void> {
    if (target.secrets.length === 0) return;
    const { app, env } = await this.#target(target, options);
    const keys = this.#session!.keys(env);
    const seen = new Set<string>();
    const payload = target.secrets.map((s) => {
      const key = s.key.trim().toUpperCase();
      if (key.length === 0) throw new PhaseError(ErrorCode.CONFIG, 'a secret to create has an empty key');
      const path = normalisePath(s.path ?? '/');
      if (seen.has(`${path}#${key}`)) {
        throw new PhaseError(ErrorCode.CONFLICT, `secret ${key} is given twice for path ${path}`);
      }
      seen.add(`${path}#${key}`);
      return {
        key: encryptAsymmetric(key, keys.keyPair.publicKey),
        keyDigest: keyDigest(key, keys.salt),
        value: encryptAsymmetric(s.value, keys.keyPair.publicKey),
        comment: s.comment ? encryptAsymmetric(s.comment, keys.keyPair.publicKey) : '',
        path,
        tags: [...(s.tags ?? [])],
        type: s.type ?? 'secret',
      };
    });
    await this.#write(
      'POST',
      env,
      { secrets: payload },
      options,
      () => `creating ${[...seen].map((k) => k.split('#')[1]).join(', ')} in ${app.name}/${env.name}`,
    );
  }

  /** Updates secrets found by key and path. Comments and tags not given are kept. */
  async updateSecrets(
    target: EnvTarget & { secrets: readonly SecretUpdate[] },
    options: CallOptions = {},
  ): Promise<void> {
    if (target.secrets.length === 0) return;
    const { app, env } = await this.#target(target, options);
    const keys = this.#session!.keys(env);
    const found = await this.#locate(env, keys, target.secrets, options);
    const payload = target.secrets.map((s, i) => {
      const row = found[i]!;
      const item: Record<string, unknown> = {
        id: row.id,
        path: row.path,
        // The server clears tags that are not sent, so always send them (protocol 3.5).
        tags: [...(s.tags ?? row.tags)],
      };
      if (s.value !== undefined) item['value'] = encryptAsymmetric(s.value, keys.keyPair.publicKey);
      if (s.comment !== undefined) {
        item['comment'] = s.comment ? encryptAsymmetric(s.comment, keys.keyPair.publicKey) : '';
      }
      if (s.newKey !== undefined) {
        const key = s.newKey.trim().toUpperCase();
        if (key.length === 0) throw new PhaseError(ErrorCode.CONFIG, 'a secret update has an empty newKey');
        item['key'] = encryptAsymmetric(key, keys.keyPair.publicKey);
        item['keyDigest'] = keyDigest(key, keys.salt);
      }
      return item;
    });
    await this.#write(
      'PUT',
      env,
      { secrets: payload },
      options,
      () =>
        `updating ${target.secrets.map((s) => s.key.toUpperCase()).join(', ')} in ${app.name}/${env.name}`,
    );
  }

  /** Deletes secrets by key at one path. Returns the keys that did not exist. */
  async deleteSecrets(
    target: EnvTarget & { keys: readonly string[]; path?: string },
    options: CallOptions = {},
  ): Promise<{ notFound: string[] }> {
    if (target.keys.length === 0) return { notFound: [] };
    const { app, env } = await this.#target(target, options);
    const keys = this.#session!.keys(env);
    const wanted = target.keys.map((key) => ({ key, path: target.path ?? '/' }));
    const found = await this.#locate(env, keys, wanted, options, true);
    const ids = found.flatMap((row) => (row ? [row.id] : []));
    const notFound = target.keys.filter((_, i) => !found[i]).map((k) => k.toUpperCase());
    if (ids.length > 0) {
      await this.#write(
        'DELETE',
        env,
        { secrets: ids },
        options,
        () => `deleting secrets in ${app.name}/${env.name}`,
      );
    }
    return { notFound };
  }

  /**
   * Follows a query: yields the secrets now, then again after every change. Each interval costs one cheap
   * request (the environments' `updatedAt`, including every environment a reference reaches); secrets
   * are fetched only when something changed.
   */
  watch(query: SecretsQuery, options: WatchOptions = {}): SecretsWatch {
    let apps: readonly AppRecord[] | undefined;
    let stamps = new Map<string, string>();
    const source: WatchSource = {
      read: (signal) => this.#read(query, { signal }),
      probe: async (signal) => {
        const session = await this.#probe({ signal });
        // An unchanged tokens body leaves the session's apps as they were: so are the stamps.
        if (session.apps !== apps) {
          apps = session.apps;
          stamps = new Map();
          for (const app of apps) for (const env of app.environments) stamps.set(env.id, env.updatedAt);
        }
        return stamps;
      },
    };
    return new SecretsWatch(source, options, this.#logger, this.#totalTimeoutMs);
  }

  /** Forgets the cached session so the next call fetches the environments and their keys anew. */
  refresh(): void {
    this.#session = undefined;
    this.#sessionPromise = undefined;
    this.#tokensBody = undefined;
  }

  /** How many decryptions this client has performed (for tests and benchmarks). */
  get decryptions(): number {
    return this.#decryptions;
  }

  /** Closes the connection pool the client created (a given dispatcher is left alone). */
  async close(): Promise<void> {
    await this.#transport.close();
  }

  /** Never shows the token. */
  [inspect.custom](): string {
    return `PhaseClient { host: '${this.host}' }`;
  }

  toJSON(): { host: string } {
    return { host: this.host };
  }

  async #ensureSession(call: CallOptions): Promise<Session> {
    if (this.#session) return this.#session;
    this.#sessionPromise ??= this.#probe(call).finally(() => {
      this.#sessionPromise = undefined;
    });
    return this.#sessionPromise;
  }

  /** Fetches the tokens endpoint and merges it into the session (creating it the first time). */
  async #probe(call: CallOptions): Promise<Session> {
    const spec: RequestSpec = { method: 'GET', route: 'tokens', ...call };
    // Only the first probe needs the crypto backend; later ones skip the extra promises.
    const answer = this.#session
      ? await this.#transport.send(spec, this.#readTokens)
      : (await Promise.all([this.#transport.send(spec, this.#readTokens), cryptoReady()]))[0];
    let json = answer.json;
    if (json === SAME_BODY) {
      if (this.#session) return this.#session;
      // refresh() ran meanwhile; the bytes parsed before, so they parse now.
      json = parseBody('tokens', answer.body);
    }
    const parsed = parseTokensResponse(json);
    if (this.#session) {
      this.#session.update(parsed.apps);
      this.#tokensBody = answer.body;
      return this.#session;
    }
    const privateKey = reconstructPrivateKey(parsed.wrappedKeyShare, this.#token.shareA, this.#token.wrapKey);
    this.#logger.debug({ backend: cryptoBackend() }, 'crypto backend in use');
    this.#session = new Session(parsed.apps, { publicKey: this.#token.publicKey, privateKey });
    this.#tokensBody = answer.body;
    return this.#session;
  }

  /** Reads a tokens body: parsed, unless it is the very body the session already holds (a poll with no change). */
  readonly #readTokens = (route: Route, body: Buffer): TokensAnswer => ({
    body,
    json:
      this.#session !== undefined && this.#tokensBody !== undefined && body.equals(this.#tokensBody)
        ? SAME_BODY
        : parseBody(route, body),
  });

  async #target(
    query: { app?: string | undefined; appId?: string | undefined; env: string },
    call: CallOptions,
  ): Promise<{ app: AppRecord; env: EnvRecord }> {
    let session = await this.#ensureSession(call);
    let found = findTarget(session, query);
    if (!found.ok && found.retry) {
      // An environment or app created after our session started: look once more.
      session = await this.#probe(call);
      found = findTarget(session, query);
    }
    if (!found.ok) throw found.error;
    return found;
  }

  #decrypt(ciphertext: string, keys: EnvKeys, what: () => string): string {
    const cached = this.#cache.get(ciphertext);
    if (cached !== undefined) return cached;
    let plain: string;
    try {
      plain = decryptAsymmetric(ciphertext, keys.keyPair, 'secret');
    } catch (error) {
      throw new PhaseError(ErrorCode.DECRYPT, `could not decrypt ${what()}`, { cause: error });
    }
    this.#decryptions++;
    if (this.#cache.size >= DECRYPT_CACHE_LIMIT) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(ciphertext, plain);
    return plain;
  }

  async #fetchRows(
    env: EnvRecord,
    filter: {
      path?: string | undefined;
      keyDigest?: string | undefined;
      tags?: readonly string[] | undefined;
    },
    call: CallOptions,
  ): Promise<RawRow[]> {
    const headers: Record<string, string> = { environment: env.id };
    if (filter.path !== undefined) headers['path'] = filter.path;
    if (filter.keyDigest !== undefined) headers['keydigest'] = filter.keyDigest;
    if (filter.tags !== undefined && filter.tags.length > 0) headers['tags'] = filter.tags.join(',');
    const body = await this.#transport.send({ method: 'GET', route: 'secrets', headers, ...call });
    if (!Array.isArray(body)) {
      throw new PhaseError(
        ErrorCode.NETWORK,
        `Phase sent a malformed secrets response for ${env.appName}/${env.name}`,
      );
    }
    const seen = new Set<string>();
    const rows: RawRow[] = [];
    for (const item of body) {
      const row = parseRow(item, env);
      // The Tags filter can return one secret once per matching tag (protocol 10.16).
      if (seen.has(row.id)) continue;
      seen.add(row.id);
      rows.push(row);
    }
    return rows;
  }

  #decryptRows(rows: readonly RawRow[], env: EnvRecord, keys: EnvKeys): Decrypted[] {
    const where = `${env.appName}/${env.name}`;
    return rows.map((row) => {
      const key = this.#decrypt(row.key, keys, () => `a key name in ${where} (secret id ${row.id})`);
      const override = this.#token.type === 'User' && row.override?.isActive ? row.override : undefined;
      const value = override
        ? this.#decrypt(override.value, keys, () => `the personal override of ${key} in ${where}`)
        : this.#decrypt(row.value, keys, () => `the value of ${key} in ${where}`);
      return { row, key, value, overridden: override !== undefined };
    });
  }

  async #read(
    query: SecretsQuery,
    call: CallOptions,
  ): Promise<{ secrets: Secret[]; dependencies: Set<string> }> {
    const { app, env } = await this.#target(query, call);
    const keys = this.#session!.keys(env);
    const path = normalisePath(query.path ?? '/');
    const recursive = query.recursive ?? false;
    const wantedKeys = query.keys ? new Set(query.keys.map((k) => k.trim().toUpperCase())) : undefined;
    const onlyKey = wantedKeys?.size === 1 ? [...wantedKeys][0]! : undefined;
    const tags = query.tags && query.tags.length > 0 ? query.tags : undefined;
    const rows = await this.#fetchRows(
      env,
      {
        path: recursive ? undefined : path,
        keyDigest: onlyKey === undefined ? undefined : keyDigest(onlyKey, keys.salt),
        tags,
      },
      call,
    );
    const inScope = rows.filter(
      (row) =>
        (recursive ? isUnder(row.path, path) : row.path === path) &&
        (tags === undefined || row.tags.some((t) => tags.includes(t))),
    );
    let decrypted = this.#decryptRows(inScope, env, keys);
    if (wantedKeys) decrypted = decrypted.filter((d) => wantedKeys.has(d.key));
    decrypted.sort((a, b) => (a.row.path === b.row.path ? cmp(a.key, b.key) : cmp(a.row.path, b.row.path)));

    let values = decrypted.map((d) => d.value);
    let dependencies = new Set<string>([env.id]);
    const mode = query.references ?? 'resolve';
    if (mode !== 'keep' && values.some((v) => v.includes('${'))) {
      // What we fetched whole can answer references without another request.
      const known = new Map<string, RawValue[]>();
      if (!wantedKeys && !tags) {
        for (const d of this.#decryptRows(rows, env, keys)) {
          const id = folderId(app.id, env.id, d.row.path);
          const list = known.get(id) ?? [];
          list.push({ key: d.key, value: d.value });
          known.set(id, list);
        }
      }
      const result = await resolveReferences(
        decrypted.map((d) => ({ key: d.key, value: d.value, path: d.row.path })),
        { appId: app.id, envId: env.id, path },
        this.#resolverHost(call),
        known,
        mode === 'available' ? 'keep' : 'fail',
      );
      values = result.values;
      dependencies = result.dependencies;
    }
    const secrets = decrypted.map((d, i): Secret => ({
      key: d.key,
      value: values[i]!,
      comment:
        query.comments && d.row.comment
          ? this.#decrypt(d.row.comment, keys, () => `the comment of ${d.key} in ${app.name}/${env.name}`)
          : '',
      path: d.row.path,
      tags: d.row.tags,
      version: d.row.version,
      updatedAt: d.row.updatedAt,
      id: d.row.id,
      type: d.row.type,
      overridden: d.overridden,
    }));
    return { secrets, dependencies };
  }

  #resolverHost(call: CallOptions): ResolverHost {
    const session = this.#session!;
    return {
      envByName: (appId, name) =>
        session.apps
          .find((a) => a.id === appId)
          ?.environments.find((e) => e.name.toLowerCase() === name.toLowerCase())?.id,
      appsByName: (name) =>
        session.apps.filter((a) => a.name.toLowerCase() === name.toLowerCase()).map((a) => a.id),
      describe: (_appId, envId) => {
        const env = session.env(envId);
        return env ? `${env.appName}/${env.name}` : 'an unknown environment';
      },
      fetchFolder: async (_appId, envId, path) => {
        const env = session.env(envId)!;
        const keys = session.keys(env);
        const rows = await this.#fetchRows(env, { path }, call);
        return this.#decryptRows(
          rows.filter((r) => r.path === path),
          env,
          keys,
        ).map((d) => ({ key: d.key, value: d.value }));
      },
    };
  }

  /** Finds the stored rows for (key, path) pairs, by digest. */
  async #locate(
    env: EnvRecord,
    keys: EnvKeys,
    wanted: readonly { key: string; path?: string | undefined }[],
    call: CallOptions,
    allowMissing = false,
  ): Promise<(RawRow | undefined)[]> {
    const rows = await this.#fetchRows(env, {}, call);
    return wanted.map((w) => {
      const key = w.key.trim().toUpperCase();
      const path = normalisePath(w.path ?? '/');
      const digest = keyDigest(key, keys.salt);
      const row = rows.find(
        (r) =>
          r.path === path &&
          (r.keyDigest === digest ||
            (r.keyDigest === undefined &&
              this.#decrypt(r.key, keys, () => `a key name in ${env.name}`) === key)),
      );
      if (!row && !allowMissing) {
        throw new PhaseError(
          ErrorCode.NOT_FOUND,
          `secret ${key} not found in ${env.appName}/${env.name} at path ${path}`,
        );
      }
      return row;
    });
  }

  async #write(
    method: 'POST' | 'PUT' | 'DELETE',
    env: EnvRecord,
    body: unknown,
    call: CallOptions,
    what: () => string,
  ): Promise<void> {
    try {
      await this.#transport.send({
        method,
        route: 'secrets',
        headers: { environment: env.id },
        body,
        ...call,
      });
    } catch (error) {
      if (error instanceof PhaseError && error.code === ErrorCode.CONFLICT) {
        throw new PhaseError(
          ErrorCode.CONFLICT,
          `${what()}: a secret with that key already exists at that path`,
          {
            cause: error,
            status: 409,
          },
        );
      }
      throw error;
    }
  }
}

type Found = { ok: true; app: AppRecord; env: EnvRecord } | { ok: false; retry: boolean; error: PhaseError };

function findTarget(
  session: Session,
  query: { app?: string | undefined; appId?: string | undefined; env: string },
): Found {
  if (!query.appId && !query.app) {
    return { ok: false, retry: false, error: new PhaseError(ErrorCode.CONFIG, 'give app (a name) or appId') };
  }
  if (typeof query.env !== 'string' || query.env.length === 0) {
    return {
      ok: false,
      retry: false,
      error: new PhaseError(ErrorCode.CONFIG, 'give env (an environment name)'),
    };
  }
  let candidates: AppRecord[];
  if (query.appId) {
    candidates = session.apps.filter((a) => a.id === query.appId);
  } else {
    // Exact names only (product contract); a near miss in case is named in the error instead.
    candidates = session.apps.filter((a) => a.name === query.app);
  }
  const label = query.appId ? `app id ${query.appId}` : `app ${query.app}`;
  if (candidates.length === 0) {
    const near = query.app
      ? session.apps.find((a) => a.name.toLowerCase() === query.app!.toLowerCase())?.name
      : undefined;
    return {
      ok: false,
      retry: true,
      error: new PhaseError(
        ErrorCode.NOT_FOUND,
        `${label} is not reachable with this token${near === undefined ? '' : ` (app names are exact: did you mean ${near}?)`}`,
      ),
    };
  }
  if (candidates.length > 1) {
    return {
      ok: false,
      retry: false,
      error: new PhaseError(
        ErrorCode.NOT_FOUND,
        `${label} is ambiguous: ${candidates.length} apps have that name (ids ${candidates.map((a) => a.id).join(', ')}); use appId`,
      ),
    };
  }
  const app = candidates[0]!;
  const env = app.environments.find((e) => e.name.toLowerCase() === query.env.toLowerCase());
  if (!env) {
    const names = app.environments.map((e) => e.name).join(', ') || 'none';
    return {
      ok: false,
      retry: true,
      error: new PhaseError(
        ErrorCode.NOT_FOUND,
        `environment ${query.env} not found in app ${app.name} (environments this token can reach: ${names})`,
      ),
    };
  }
  return { ok: true, app, env };
}

function parseRow(item: unknown, env: EnvRecord): RawRow {
  const r = (item ?? {}) as Record<string, unknown>;
  const pick = (snake: string, camel: string): unknown => r[snake] ?? r[camel];
  if (typeof r['id'] !== 'string' || typeof r['key'] !== 'string' || typeof r['value'] !== 'string') {
    throw new PhaseError(ErrorCode.NETWORK, `Phase sent a malformed secret in ${env.appName}/${env.name}`);
  }
  const override = r['override'] as Record<string, unknown> | null | undefined;
  const digest = pick('key_digest', 'keyDigest');
  const updatedAt = pick('updated_at', 'updatedAt');
  const type =
    typeof r['type'] === 'string' && r['type'] !== 'static' && r['type'] !== '' ? r['type'] : 'secret';
  return {
    id: r['id'],
    key: r['key'],
    value: r['value'],
    comment: typeof r['comment'] === 'string' ? r['comment'] : '',
    tags: Array.isArray(r['tags']) ? r['tags'].filter((t): t is string => typeof t === 'string') : [],
    path: typeof r['path'] === 'string' ? normalisePath(r['path']) : '/',
    version: typeof r['version'] === 'number' ? r['version'] : 1,
    updatedAt: typeof updatedAt === 'string' ? updatedAt : '',
    type,
    override:
      override && typeof override['value'] === 'string'
        ? { value: override['value'], isActive: (override['is_active'] ?? override['isActive']) === true }
        : undefined,
    ...(typeof digest === 'string' ? { keyDigest: digest } : {}),
  };
}

function isUnder(path: string, root: string): boolean {
  return root === '/' || path === root || path.startsWith(`${root}/`);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
