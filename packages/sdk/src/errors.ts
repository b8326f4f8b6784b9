/**
 * Stable error codes. Each is documented in docs/reference/errors.md; code that branches on errors should
 * compare `error.code`, never the message.
 */
export const ErrorCode = {
  /** The token string is not a well-formed `pss_service:v1|v2` or `pss_user:v1` token. */
  INVALID_TOKEN: 'INVALID_TOKEN',
  /** Phase rejected the token (unknown, expired, deleted or revoked). */
  UNAUTHORIZED: 'UNAUTHORIZED',
  /** The token is valid but may not do this (role, environment scope, network policy). */
  FORBIDDEN: 'FORBIDDEN',
  /** App, environment, path or key not found, or ambiguous. */
  NOT_FOUND: 'NOT_FOUND',
  /** Phase throttled the request and retries ran out; see `retryAfterMs`. */
  RATE_LIMITED: 'RATE_LIMITED',
  /** Phase could not be reached, reset the connection, answered 5xx, or sent a malformed body. */
  NETWORK: 'NETWORK',
  /** A per-attempt or total deadline passed. */
  TIMEOUT: 'TIMEOUT',
  /** A ciphertext or key share failed to decrypt or authenticate (tampered data or a wrong key). */
  DECRYPT: 'DECRYPT',
  /** A secret reference could not be resolved, or references form a cycle. */
  REFERENCE: 'REFERENCE',
  /** A create or update clashed with an existing secret. */
  CONFLICT: 'CONFLICT',
  /** Bad options or configuration. */
  CONFIG: 'CONFIG',
  /** The caller aborted the operation through its AbortSignal. */
  ABORTED: 'ABORTED',
} as const;

/** Union of every stable error code. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const BRAND = Symbol.for('phasekit.error');

/** Extra, non-secret facts attached to a {@link PhaseError}. */
export interface PhaseErrorOptions {
  /** The lower-level failure, kept for diagnosis. Never carries a secret value or token. */
  cause?: unknown;
  /** HTTP status, when the error came from a Phase response. */
  status?: number;
  /** For `RATE_LIMITED`: how long Phase asked us to wait, in milliseconds. */
  retryAfterMs?: number;
  /** For `REFERENCE`: why the reference failed. */
  reason?: ReferenceFailure;
}

/**
 * Why a `${...}` reference failed: its key does not exist (`missing`), its app or environment is not reachable with
 * the token (`unreachable`), it names no key (`malformed`), or it leads back to itself (`cycle`).
 */
export type ReferenceFailure = 'missing' | 'unreachable' | 'malformed' | 'cycle';

/**
 * The one error class the SDK throws. Branch on {@link PhaseError.code}. Messages name apps, environments,
 * paths, keys and references, never a secret value, ciphertext, key material or token.
 */
export class PhaseError extends Error {
  override readonly name = 'PhaseError';
  /** Stable code; see {@link ErrorCode}. */
  readonly code: ErrorCode;
  /** HTTP status when the error came from a Phase response. */
  readonly status: number | undefined;
  /** For `RATE_LIMITED`: the server's `Retry-After`, in milliseconds. */
  readonly retryAfterMs: number | undefined;
  /** For `REFERENCE`: why the reference failed. */
  readonly reason: ReferenceFailure | undefined;

  constructor(code: ErrorCode, message: string, options: PhaseErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
    this.reason = options.reason;
  }

  /** Matches PhaseErrors from any copy of this package (duplicate installs, other realms). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}
Object.defineProperty(PhaseError.prototype, BRAND, { value: true });

/** True when `value` is a {@link PhaseError}, optionally with the given code. */
export function isPhaseError(value: unknown, code?: ErrorCode): value is PhaseError {
  return value instanceof PhaseError && (code === undefined || value.code === code);
}
