/**
 * The emulator's data model (phase-protocol.md 8.1) and the operations tests use on it. Secrets are held only as
 * ciphertext; the emulator is also the KMS, so it keeps environment seeds and salts in plaintext.
 */
import { randomUUID } from 'node:crypto';
import { Clock } from './clock.js';
import {
  decryptAsymmetric,
  encryptAsymmetric,
  envKeypair,
  keyDigest,
  newKxKeypair,
  randomHex,
  splitPrivateKey,
  type HexKeypair,
} from './crypto.js';
import type {
  DeleteSecretInput,
  EmulatorApp,
  EmulatorTokens,
  EnvType,
  PlainSecret,
  Seed,
  SetOverrideInput,
  SetSecretInput,
  SetSecretResult,
  TokenKind,
} from './types.js';

/** Bearer type word per token kind. */
export type BearerType = 'ServiceAccount' | 'Service' | 'User';

export interface AppRow {
  id: string;
  name: string;
  sse_enabled: boolean;
  created_at: string;
}

export interface EnvironmentRow {
  id: string;
  app_id: string;
  name: string;
  env_type: EnvType;
  index: number;
  created_at: string;
  updated_at: string;
  /** 64 hex characters. */
  seed: string;
  /** 64 hex characters; used as TEXT to key the digest. */
  salt: string;
}

export interface PrincipalRow {
  id: string;
  kind: 'user' | 'service_account' | 'service_token';
  name: string;
  public_key: string;
  private_key: string;
}

export interface EnvironmentKeyRow {
  id: string;
  principal_id: string;
  environment_id: string;
  wrapped_seed: string;
  wrapped_salt: string;
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
}

export interface TokenRow {
  kind: TokenKind;
  type: BearerType;
  /** The full `pss_…` string handed to tests. */
  token: string;
  /** The bearer secret the server looks up. */
  token_value: string;
  principal_id: string;
  wrapped_key_share: string;
  created_at: string;
  revoked_at: string | null;
}

export interface FolderRow {
  id: string;
  environment_id: string;
  path: string;
}

export interface SecretRow {
  id: string;
  environment_id: string;
  path: string;
  folder_id: string | null;
  key: string;
  key_digest: string;
  value: string;
  comment: string;
  tags: string[];
  type: string;
  lifecycle: 'static' | 'rotating';
  version: number;
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
}

export interface PersonalSecretRow {
  id: string;
  secret_id: string;
  principal_id: string;
  value: string;
  is_active: boolean;
  created_at: string;
  updated_at: string;
}

/**
 * The complete, JSON-serialisable emulator state, including keys and tokens. Treat it as opaque: pass it back to
 * `startEmulator({ state })` to restart with the same tokens.
 */
export interface EmulatorState {
  format: 'phasekit-emulator-state/1';
  organisation: { id: string; name: string; plan: string };
  apps: AppRow[];
  environments: EnvironmentRow[];
  principals: PrincipalRow[];
  environmentKeys: EnvironmentKeyRow[];
  tokens: TokenRow[];
  folders: FolderRow[];
  secrets: SecretRow[];
  personalSecrets: PersonalSecretRow[];
  clockMicros: number;
}

const TOKEN_SPECS: Record<TokenKind, { prefix: string; type: BearerType; principal: PrincipalRow['kind'] }> =
  {
    serviceAccount: { prefix: 'pss_service:v2', type: 'ServiceAccount', principal: 'service_account' },
    service: { prefix: 'pss_service:v1', type: 'Service', principal: 'service_token' },
    user: { prefix: 'pss_user:v1', type: 'User', principal: 'user' },
  };

const ENV_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

/** Collapses `//`, adds the leading `/` and drops a trailing one, as the server does. */
export function normalizePath(path: string): string {
  const collapsed = `/${path}`.replace(/\/+/g, '/');
  return collapsed.length > 1 ? collapsed.replace(/\/$/, '') : '/';
}

function inferEnvType(name: string): EnvType {
  const lower = name.toLowerCase();
  if (lower.startsWith('dev')) return 'dev';
  if (lower.startsWith('stag')) return 'staging';
  if (lower.startsWith('prod')) return 'prod';
  return 'custom';
}

/** Holds an {@link EmulatorState} and implements every operation on it. */
export class Store {
  readonly state: EmulatorState;
  readonly clock: Clock;
  readonly #envKeys = new Map<string, HexKeypair>();

  private constructor(state: EmulatorState) {
    this.state = state;
    this.clock = new Clock(state.clockMicros);
  }

  /** Restores a snapshot (deep-copied, so the caller's object is never mutated). */
  static fromState(state: EmulatorState): Store {
    if (state.format !== 'phasekit-emulator-state/1') throw new Error('unsupported emulator state format');
    return new Store(structuredClone(state));
  }

  /** Builds a fresh organisation, principals, tokens and encrypted secrets from a seed. */
  static fromSeed(seed: Seed): Store {
    const store = new Store({
      format: 'phasekit-emulator-state/1',
      organisation: { id: randomUUID(), name: seed.organisation ?? 'phasekit', plan: 'FR' },
      apps: [],
      environments: [],
      principals: [],
      environmentKeys: [],
      tokens: [],
      folders: [],
      secrets: [],
      personalSecrets: [],
      clockMicros: 0,
    });
    for (const kind of Object.keys(TOKEN_SPECS) as TokenKind[]) store.#mintToken(kind);
    for (const app of seed.apps) {
      // Two seed apps may share a name, as Phase allows; address each by its id.
      const row = store.#createApp(app.name);
      for (const env of app.environments) {
        store.addEnvironment(row.id, env.name, env.envType);
        for (const secret of env.secrets ?? []) store.setSecret({ ...secret, app: row.id, env: env.name });
      }
    }
    return store;
  }

  /** A deep copy of the full state. */
  snapshot(): EmulatorState {
    this.state.clockMicros = this.clock.lastMicros;
    return structuredClone(this.state);
  }

  /** Full token strings by kind. */
  tokens(): EmulatorTokens {
    const find = (kind: TokenKind): string => this.state.tokens.find((t) => t.kind === kind)?.token ?? '';
    return { serviceAccount: find('serviceAccount'), service: find('service'), user: find('user') };
  }

  /** Apps with their environments, in creation order. */
  apps(): EmulatorApp[] {
    return this.state.apps.map((app) => ({
      id: app.id,
      name: app.name,
      environments: this.state.environments
        .filter((e) => e.app_id === app.id)
        .map((e) => ({ id: e.id, name: e.name })),
    }));
  }

  /** The live (not revoked) token with this bearer type and value. */
  findToken(type: string, value: string): TokenRow | undefined {
    return this.state.tokens.find((t) => t.type === type && t.token_value === value && t.revoked_at === null);
  }

  principal(id: string): PrincipalRow | undefined {
    return this.state.principals.find((p) => p.id === id);
  }

  /** The env's keypair, derived from its seed (cached). */
  envKeypair(env: EnvironmentRow): HexKeypair {
    let kp = this.#envKeys.get(env.id);
    if (!kp) {
      kp = envKeypair(env.seed);
      this.#envKeys.set(env.id, kp);
    }
    return kp;
  }

  /** Non-deleted EnvironmentKeys of a principal. */
  environmentKeysOf(principalId: string): EnvironmentKeyRow[] {
    return this.state.environmentKeys.filter((k) => k.principal_id === principalId && k.deleted_at === null);
  }

  hasEnvironmentKey(principalId: string, environmentId: string): boolean {
    return this.environmentKeysOf(principalId).some((k) => k.environment_id === environmentId);
  }

  environmentById(id: string): EnvironmentRow | undefined {
    return this.state.environments.find((e) => e.id === id);
  }

  appById(id: string): AppRow | undefined {
    return this.state.apps.find((a) => a.id === id);
  }

  /** An app by id or exact name. */
  findApp(ref: string): AppRow | undefined {
    return this.state.apps.find((a) => a.id === ref) ?? this.state.apps.find((a) => a.name === ref);
  }

  /** An environment of the app by id or case-insensitive name. */
  findEnvironment(app: AppRow, ref: string): EnvironmentRow | undefined {
    const envs = this.state.environments.filter((e) => e.app_id === app.id);
    return envs.find((e) => e.id === ref) ?? envs.find((e) => e.name.toLowerCase() === ref.toLowerCase());
  }

  /** Live secrets of an environment, in creation order. */
  liveSecrets(environmentId: string): SecretRow[] {
    return this.state.secrets.filter((s) => s.environment_id === environmentId && s.deleted_at === null);
  }

  /** The user principal's override for a secret, if any. */
  overrideFor(secretId: string, principalId: string): PersonalSecretRow | undefined {
    return this.state.personalSecrets.find((p) => p.secret_id === secretId && p.principal_id === principalId);
  }

  /** Sets `updated_at` of each environment to a fresh, strictly later timestamp. */
  bump(...environmentIds: string[]): void {
    for (const id of new Set(environmentIds)) {
      const env = this.environmentById(id);
      if (env) env.updated_at = this.clock.now();
    }
  }

  /** Creates the folder chain for a normalised path and returns the deepest folder id (null for `/`). */
  ensureFolder(environmentId: string, path: string): string | null {
    if (path === '/') return null;
    let id: string | null = null;
    let current = '';
    for (const segment of path.split('/').filter(Boolean)) {
      current += `/${segment}`;
      let folder = this.state.folders.find((f) => f.environment_id === environmentId && f.path === current);
      if (!folder) {
        folder = { id: randomUUID(), environment_id: environmentId, path: current };
        this.state.folders.push(folder);
      }
      id = folder.id;
    }
    return id;
  }

  /** Adds an environment (and the app when missing) and gives every principal a key for it. */
  addEnvironment(appRef: string, envName: string, envType?: EnvType): { id: string; name: string } {
    if (!ENV_NAME.test(envName)) {
      throw new Error(`environment name must be 1-64 characters of [a-zA-Z0-9_-], got "${envName}"`);
    }
    const app = this.findApp(appRef) ?? this.#ensureApp(appRef);
    if (this.findEnvironment(app, envName)) {
      throw new Error(`environment "${envName}" already exists in app "${app.name}"`);
    }
    const now = this.clock.now();
    const env: EnvironmentRow = {
      id: randomUUID(),
      app_id: app.id,
      name: envName,
      env_type: envType ?? inferEnvType(envName),
      index: this.state.environments.filter((e) => e.app_id === app.id).length,
      created_at: now,
      updated_at: now,
      seed: randomHex(32),
      salt: randomHex(32),
    };
    this.state.environments.push(env);
    for (const principal of this.state.principals) {
      this.state.environmentKeys.push({
        id: randomUUID(),
        principal_id: principal.id,
        environment_id: env.id,
        // Seed and salt are wrapped as their 64-character hex TEXT (protocol 4.5).
        wrapped_seed: encryptAsymmetric(env.seed, principal.public_key),
        wrapped_salt: encryptAsymmetric(env.salt, principal.public_key),
        created_at: now,
        updated_at: now,
        deleted_at: null,
      });
    }
    return { id: env.id, name: env.name };
  }

  /** Encrypts and upserts one secret by (path, UPPER(key)); bumps the environment. */
  setSecret(input: SetSecretInput): SetSecretResult {
    const env = this.#resolve(input.app, input.env);
    const kp = this.envKeypair(env);
    const key = input.key.trim().toUpperCase();
    if (key === '') throw new Error('secret key must not be blank');
    const path = normalizePath(input.path ?? '/');
    const digest = keyDigest(key, env.salt);
    const now = this.clock.now();
    const existing = this.#findByKey(env, key, path);
    const fields = {
      key: encryptAsymmetric(key, kp.publicKey),
      key_digest: digest,
      value: encryptAsymmetric(input.value, kp.publicKey),
      comment: encryptAsymmetric(input.comment ?? '', kp.publicKey),
      tags: [...(input.tags ?? [])],
      type: input.type ?? 'secret',
      updated_at: now,
    };
    let result: SetSecretResult;
    if (existing) {
      Object.assign(existing, fields, { version: existing.version + 1 });
      result = { id: existing.id, version: existing.version, created: false };
    } else {
      const row: SecretRow = {
        id: randomUUID(),
        environment_id: env.id,
        path,
        folder_id: this.ensureFolder(env.id, path),
        lifecycle: 'static',
        version: 1,
        created_at: now,
        deleted_at: null,
        ...fields,
      };
      this.state.secrets.push(row);
      result = { id: row.id, version: 1, created: true };
    }
    this.bump(env.id);
    return result;
  }

  /** Soft-deletes one secret by plaintext key; returns whether it existed. Bumps the environment either way. */
  deleteSecret(input: DeleteSecretInput): boolean {
    const env = this.#resolve(input.app, input.env);
    const row = this.#findByKey(env, input.key.trim().toUpperCase(), normalizePath(input.path ?? '/'));
    if (row) row.deleted_at = this.clock.now();
    this.bump(env.id);
    return row !== undefined;
  }

  /**
   * Upserts the user principal's personal override. Like the Console, this does not bump the environment's
   * `updated_at` (protocol 3.7).
   */
  setOverride(input: SetOverrideInput): void {
    const env = this.#resolve(input.app, input.env);
    const row = this.#findByKey(env, input.key.trim().toUpperCase(), normalizePath(input.path ?? '/'));
    if (!row) throw new Error(`no secret "${input.key}" at path ${input.path ?? '/'} in ${env.name}`);
    const user = this.state.principals.find((p) => p.kind === 'user');
    if (!user) throw new Error('no user principal');
    this.upsertOverride(
      row.id,
      user.id,
      encryptAsymmetric(input.value, this.envKeypair(env).publicKey),
      input.isActive,
    );
  }

  /** Stores an override ciphertext for (secret, principal). */
  upsertOverride(secretId: string, principalId: string, value: string, isActive: boolean): void {
    const now = this.clock.now();
    const existing = this.overrideFor(secretId, principalId);
    if (existing) {
      Object.assign(existing, { value, is_active: isActive, updated_at: now });
      return;
    }
    this.state.personalSecrets.push({
      id: randomUUID(),
      secret_id: secretId,
      principal_id: principalId,
      value,
      is_active: isActive,
      created_at: now,
      updated_at: now,
    });
  }

  /** Decrypts every live secret of an environment; throws if a stored ciphertext does not decrypt. */
  readPlain(appRef: string, envRef: string): PlainSecret[] {
    const env = this.#resolve(appRef, envRef);
    const kp = this.envKeypair(env);
    const open = (ct: string, what: string, id: string): string => {
      if (ct === '') return '';
      try {
        return decryptAsymmetric(ct, kp);
      } catch {
        throw new Error(`stored ${what} of secret ${id} does not decrypt with the environment key`);
      }
    };
    const user = this.state.principals.find((p) => p.kind === 'user');
    return this.liveSecrets(env.id).map((s) => {
      const key = open(s.key, 'key', s.id);
      const override = user ? this.overrideFor(s.id, user.id) : undefined;
      return {
        id: s.id,
        key,
        value: open(s.value, 'value', s.id),
        comment: open(s.comment, 'comment', s.id),
        path: s.path,
        tags: [...s.tags],
        type: s.type,
        version: s.version,
        keyDigest: s.key_digest,
        keyDigestMatches: s.key_digest === keyDigest(key.toUpperCase(), env.salt),
        override: override
          ? { value: open(override.value, 'override', s.id), isActive: override.is_active }
          : null,
        createdAt: s.created_at,
        updatedAt: s.updated_at,
      };
    });
  }

  /** Revokes a token: 403 on the tokens route, 401 on the secrets route from now on. */
  revokeToken(kind: TokenKind): void {
    if (!(kind in TOKEN_SPECS)) throw new Error(`unknown token kind "${String(kind)}"`);
    for (const token of this.state.tokens) {
      if (token.kind === kind && token.revoked_at === null) token.revoked_at = this.clock.now();
    }
  }

  #resolve(appRef: string, envRef: string): EnvironmentRow {
    const app = this.findApp(appRef);
    if (!app) throw new Error(`unknown app "${appRef}"`);
    const env = this.findEnvironment(app, envRef);
    if (!env) throw new Error(`unknown environment "${envRef}" in app "${app.name}"`);
    return env;
  }

  #findByKey(env: EnvironmentRow, upperKey: string, path: string): SecretRow | undefined {
    const digest = keyDigest(upperKey, env.salt);
    return this.liveSecrets(env.id).find((s) => s.path === path && s.key_digest === digest);
  }

  #ensureApp(name: string): AppRow {
    return this.state.apps.find((a) => a.name === name) ?? this.#createApp(name);
  }

  #createApp(name: string): AppRow {
    const app: AppRow = { id: randomUUID(), name, sse_enabled: false, created_at: this.clock.now() };
    this.state.apps.push(app);
    return app;
  }

  #mintToken(kind: TokenKind): void {
    const spec = TOKEN_SPECS[kind];
    const keypair = newKxKeypair();
    const principal: PrincipalRow = {
      id: randomUUID(),
      kind: spec.principal,
      name: `phasekit-${kind}`,
      public_key: keypair.publicKey,
      private_key: keypair.privateKey,
    };
    this.state.principals.push(principal);
    const shares = splitPrivateKey(keypair.privateKey);
    const tokenValue = randomHex(32);
    this.state.tokens.push({
      kind,
      type: spec.type,
      token: `${spec.prefix}:${tokenValue}:${keypair.publicKey}:${shares.shareA}:${shares.wrapKey}`,
      token_value: tokenValue,
      principal_id: principal.id,
      wrapped_key_share: shares.wrappedKeyShare,
      created_at: this.clock.now(),
      revoked_at: null,
    });
  }
}
