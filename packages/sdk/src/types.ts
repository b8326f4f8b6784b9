/** A decrypted secret. */
export interface Secret {
  /** Key name, as stored (uppercase). */
  readonly key: string;
  /** Plaintext value, with references resolved unless `references: 'keep'`; a personal override wins. */
  readonly value: string;
  /** Plaintext comment; empty unless `comments: true` was asked for. */
  readonly comment: string;
  /** Folder path, `/` for the root. */
  readonly path: string;
  /** Tag names. */
  readonly tags: readonly string[];
  readonly version: number;
  /** ISO 8601 time of the secret's last change. */
  readonly updatedAt: string;
  readonly id: string;
  /** `secret`, `sealed` or `config`. */
  readonly type: string;
  /** True when an active personal override (user tokens only) supplied the value. */
  readonly overridden: boolean;
}

/** An environment the token can reach. */
export interface EnvironmentInfo {
  readonly id: string;
  readonly name: string;
  /** `dev`, `staging`, `prod` or `custom`. */
  readonly envType: string;
  /** Changes on every secret write in the environment: the cheap change probe. */
  readonly updatedAt: string;
}

/** An app and the environments of it that the token can reach. */
export interface AppInfo {
  readonly id: string;
  readonly name: string;
  /** `E2E` or `SSE`. */
  readonly encryption: string;
  readonly environments: readonly EnvironmentInfo[];
}

/** Which secrets to read. Give `app` (exact name) or `appId`. */
export interface SecretsQuery {
  /** App by exact name (ambiguous names are an error that lists the ids). */
  readonly app?: string;
  /** App by id. Wins over `app`. */
  readonly appId?: string;
  /** Environment by exact name, case-insensitive. */
  readonly env: string;
  /**
   * Folder to read.
   * @default '/'
   */
  readonly path?: string;
  /**
   * Include sub-folders of `path`.
   * @default false
   */
  readonly recursive?: boolean;
  /** Only secrets carrying at least one of these tag names. */
  readonly tags?: readonly string[];
  /** Only these keys (case-insensitive; stored keys are uppercase). */
  readonly keys?: readonly string[];
  /**
   * `resolve` replaces `${...}` references with their values, and a reference to a key that does not exist (or an
   * app or environment the token cannot reach) is a `REFERENCE` error. `available` resolves what it can and leaves
   * such references literally, as Phase's operator does with `onSecretReferenceError: Warn`. `keep` leaves every
   * reference literally. A cycle is an error in both resolving modes.
   * @default 'resolve'
   */
  readonly references?: 'resolve' | 'available' | 'keep';
  /**
   * Decrypt comments too (they are skipped by default to save work).
   * @default false
   */
  readonly comments?: boolean;
}

/** Names of keys that changed between two snapshots. Never values. */
export interface ChangeSet {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly changed: readonly string[];
}

/** Minimal logger. Called pino-style (object first, then message), so a pino child works unchanged. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/**
 * Options of one call, as openai-node's RequestOptions: every async SDK call takes them, and `timeoutMs` and
 * `retries` override the client's own for that call only.
 */
export interface CallOptions {
  /** Cancels the call (`ABORTED`; an `AbortSignal.timeout()` gives `TIMEOUT`). */
  readonly signal?: AbortSignal | undefined;
  /**
   * Deadline of one HTTP attempt of this call.
   * @unit milliseconds
   * @default the client's `timeoutMs`
   */
  readonly timeoutMs?: number | undefined;
  /** Retries of this call's reads. @default the client's `retries` */
  readonly retries?: number | undefined;
}
