/** Public types of `@phasekit/emulator`. */

/** The three tokens every emulator mints. */
export type TokenKind = 'serviceAccount' | 'service' | 'user';

/** Secret `type` values the Phase server knows. */
export type SecretType = 'secret' | 'sealed' | 'config';

/** Environment types of the Phase data model. */
export type EnvType = 'dev' | 'staging' | 'prod' | 'custom';

/** Full `pss_…` token strings, one per kind. Each can read every environment. */
export interface EmulatorTokens {
  /** `pss_service:v2:…`, bearer type `ServiceAccount`. */
  serviceAccount: string;
  /** Legacy `pss_service:v1:…`, bearer type `Service`. */
  service: string;
  /** Personal access token `pss_user:v1:…`, bearer type `User`; the only one that sees overrides. */
  user: string;
}

/** An app as shown to tests and printed by the CLI. */
export interface EmulatorApp {
  id: string;
  name: string;
  environments: { id: string; name: string }[];
}

/** What the CLI prints first and `GET /__phasekit/info` returns. */
export interface EmulatorInfo {
  url: string;
  tokens: EmulatorTokens;
  apps: EmulatorApp[];
}

/** One secret of a seed file; `key` is uppercased on storage, as every Phase client does. */
export interface SeedSecret {
  key: string;
  value: string;
  /** @default "/" */
  path?: string;
  tags?: string[];
  /** @default "" */
  comment?: string;
  /** @default "secret" */
  type?: SecretType;
}

/** One environment of a seed file. */
export interface SeedEnvironment {
  /** 1-64 characters of `[a-zA-Z0-9_-]`. */
  name: string;
  /** Inferred from the name (dev/staging/prod) when absent, else `custom`. */
  envType?: EnvType;
  secrets?: SeedSecret[];
}

/** One app of a seed file. */
export interface SeedApp {
  name: string;
  environments: SeedEnvironment[];
}

/** The seed: what the emulator starts with (YAML or JSON on disk, see `loadSeed`). */
export interface Seed {
  /** Organisation name. @default "phasekit" */
  organisation?: string;
  apps: SeedApp[];
}

/** Upsert of one secret by (app, env, path, UPPER(key)). `app` and `env` accept a name or an id. */
export interface SetSecretInput {
  app: string;
  env: string;
  key: string;
  value: string;
  /** @default "/" */
  path?: string;
  /** @default "" */
  comment?: string;
  /** @default [] */
  tags?: string[];
  /** @default "secret" */
  type?: SecretType;
}

/** Identifies one live secret by its plaintext key. */
export interface DeleteSecretInput {
  app: string;
  env: string;
  key: string;
  /** @default "/" */
  path?: string;
}

/** A personal override of the user token's principal. */
export interface SetOverrideInput extends DeleteSecretInput {
  value: string;
  isActive: boolean;
}

/** Result of `setSecret`. */
export interface SetSecretResult {
  id: string;
  version: number;
  created: boolean;
}

/** A stored secret, decrypted with the environment key (for assertions). */
export interface PlainSecret {
  id: string;
  key: string;
  value: string;
  comment: string;
  path: string;
  tags: string[];
  type: string;
  version: number;
  /** The digest the writer sent. */
  keyDigest: string;
  /** Whether `keyDigest` equals blake2b(UPPER(key), salt), the canonical digest. */
  keyDigestMatches: boolean;
  override: { value: string; isActive: boolean } | null;
  createdAt: string;
  updatedAt: string;
}

/** Which Phase API route a fault or request belongs to. */
export type RouteName = 'tokens' | 'secrets' | 'health' | 'other';

/**
 * A fault to inject into Phase API responses (never into `/__phasekit` control routes).
 * The first registered fault that matches a request is applied and one of its `count` is used up.
 */
export interface FaultSpec {
  /** @default "any" */
  route?: 'tokens' | 'secrets' | 'any';
  /** HTTP method to match, case-insensitive. @default every method */
  method?: string;
  /** Answer with this status and a JSON `{"error"}` body. Defaults to 429 when only `retryAfter` is given. */
  status?: number;
  /** Sets `Retry-After`. @unit seconds */
  retryAfter?: number;
  /** Wait before answering (or before the other effects). @unit milliseconds */
  delayMs?: number;
  /** Destroy the socket without answering. */
  reset?: boolean;
  /** Answer 200 with a truncated, non-JSON body. */
  malformed?: boolean;
  /** How many matching requests to affect. @default unlimited */
  count?: number;
}

/** Handle for one injected fault. */
export interface FaultHandle {
  /** Removes this fault (idempotent). */
  clear(): void;
}

/** One logged Phase API request. Credentials never appear: the authorization token value is redacted. */
export interface RequestRecord {
  method: string;
  /** The URL path as sent, e.g. `/service/secrets/`. */
  path: string;
  route: RouteName;
  query: Record<string, string>;
  /** Lowercased header names; `authorization` keeps its scheme and type word only. */
  headers: Record<string, string>;
  /** The body parsed as JSON, the raw text when it is not JSON, or null when empty. */
  body: unknown;
  /** Response status; 0 when the connection was reset by a fault. */
  status: number;
  /** Whether an injected fault shaped the response. */
  faulted: boolean;
  /** ISO 8601 time the request arrived. */
  time: string;
  durationMs: number;
}

/** One line of the per-request log (never a header or token). */
export interface RequestLogEntry {
  method: string;
  path: string;
  status: number;
  ms: number;
}

/** Receives one entry per Phase API request. */
export interface EmulatorLogger {
  info(entry: RequestLogEntry): void;
}
