import { ErrorCode, PhaseError } from '../errors.js';
import type { AppInfo, EnvironmentInfo } from '../types.js';
import { decryptAsymmetric, envKeyPair, fromHex, toHex, type KxKeyPair } from './crypto.js';

/** One environment as the tokens endpoint describes it, with its still-wrapped keys. */
export interface EnvRecord extends EnvironmentInfo {
  readonly appId: string;
  readonly appName: string;
  readonly identityKey: string;
  readonly wrappedSeed: string;
  readonly wrappedSalt: string;
}

export interface AppRecord extends AppInfo {
  readonly environments: readonly EnvRecord[];
}

/** Unwrapped keys of one environment. */
export interface EnvKeys {
  readonly keyPair: KxKeyPair;
  /** The salt as its 64-character hex text, which is what the digest uses. */
  readonly salt: string;
}

function malformed(what: string): PhaseError {
  return new PhaseError(ErrorCode.NETWORK, `Phase sent a malformed tokens response (${what})`);
}

function str(value: unknown, what: string): string {
  if (typeof value !== 'string') throw malformed(what);
  return value;
}

/** Parses the snake_case body of `GET /service/secrets/tokens/` (protocol 3.2). */
export function parseTokensResponse(body: unknown): { wrappedKeyShare: string; apps: AppRecord[] } {
  if (typeof body !== 'object' || body === null) throw malformed('not an object');
  const raw = body as { wrapped_key_share?: unknown; apps?: unknown };
  const wrappedKeyShare = str(raw.wrapped_key_share, 'wrapped_key_share');
  if (!Array.isArray(raw.apps)) throw malformed('apps');
  const apps = raw.apps.map((app: unknown): AppRecord => {
    const a = app as { id?: unknown; name?: unknown; encryption?: unknown; environment_keys?: unknown };
    const appId = str(a.id, 'app id');
    const appName = str(a.name, 'app name');
    if (!Array.isArray(a.environment_keys)) throw malformed('environment_keys');
    const environments = a.environment_keys.map((k: unknown): EnvRecord => {
      const key = k as {
        environment?: { id?: unknown; name?: unknown; env_type?: unknown; updated_at?: unknown };
        identity_key?: unknown;
        wrapped_seed?: unknown;
        wrapped_salt?: unknown;
      };
      const env = key.environment ?? {};
      return {
        id: str(env.id, 'environment id'),
        name: str(env.name, 'environment name'),
        envType: typeof env.env_type === 'string' ? env.env_type.toLowerCase() : 'custom',
        updatedAt: typeof env.updated_at === 'string' ? env.updated_at : '',
        appId,
        appName,
        identityKey: str(key.identity_key, 'identity_key'),
        wrappedSeed: str(key.wrapped_seed, 'wrapped_seed'),
        wrappedSalt: str(key.wrapped_salt, 'wrapped_salt'),
      };
    });
    return {
      id: appId,
      name: appName,
      encryption: typeof a.encryption === 'string' ? a.encryption : 'E2E',
      environments,
    };
  });
  return { wrappedKeyShare, apps };
}

/**
 * What one tokens response tells us, plus the environment keys unwrapped so far. Unwrapping is lazy:
 * only environments actually read cost the two asymmetric decryptions.
 */
export class Session {
  apps: AppRecord[];
  readonly #principal: KxKeyPair;
  readonly #envKeys = new Map<string, { wrappedSeed: string; keys: EnvKeys }>();

  constructor(apps: AppRecord[], principal: KxKeyPair) {
    this.apps = apps;
    this.#principal = principal;
  }

  /** Takes the newest environment list (from a later probe) without losing unwrapped keys. */
  update(apps: AppRecord[]): void {
    this.apps = apps;
  }

  env(envId: string): EnvRecord | undefined {
    for (const app of this.apps) for (const env of app.environments) if (env.id === envId) return env;
    return undefined;
  }

  keys(env: EnvRecord): EnvKeys {
    const cached = this.#envKeys.get(env.id);
    // A re-keyed environment has new wrapped material; anything else reuses the unwrapped keys.
    if (cached && cached.wrappedSeed === env.wrappedSeed) return cached.keys;
    const what = `environment ${env.name} of app ${env.appName}`;
    const seed = decryptAsymmetric(env.wrappedSeed, this.#principal, `the seed of ${what}`);
    const salt = decryptAsymmetric(env.wrappedSalt, this.#principal, `the salt of ${what}`);
    if (!/^[0-9a-fA-F]{64}$/.test(seed) || !/^[0-9a-fA-F]{64}$/.test(salt)) {
      throw new PhaseError(ErrorCode.DECRYPT, `the keys of ${what} are malformed`);
    }
    const keyPair = envKeyPair(seed);
    // identity_key is the env public key; a mismatch means tampering or a wrong token key.
    if (env.identityKey && toHex(keyPair.publicKey) !== env.identityKey.toLowerCase()) {
      fromHex(env.identityKey, 'identity_key');
      throw new PhaseError(ErrorCode.DECRYPT, `the public key of ${what} does not match its seed`);
    }
    const keys = { keyPair, salt };
    this.#envKeys.set(env.id, { wrappedSeed: env.wrappedSeed, keys });
    return keys;
  }
}
