// The agent's one error class and the process exit codes of product.md.
import type { ErrorCode } from '@phasekit/sdk';
import { PhaseError } from '@phasekit/sdk';

/** Codes of {@link AgentError}: failures of the agent itself rather than of Phase or the SDK. */
export const AgentErrorCode = {
  /** The new secret set was empty or shrank past `--shrink-threshold`, and was refused (exit 7). */
  GUARD_REFUSED: 'GUARD_REFUSED',
  /** Writing the snapshot directory failed: read-only, full, or not permitted (exit 8). */
  WRITE: 'WRITE',
  /** Another live phasekit process writes the snapshot directory (exit 8). */
  LOCKED: 'LOCKED',
  /** The command line cannot be carried out: `run` with no command, or one that cannot be started (exit 2). */
  USAGE: 'USAGE',
  /** Stopped by a signal before the work was done (exit 1). */
  STOPPED: 'STOPPED',
  /** Notifying the app failed, or the notifier's options are bad; see the notify module's NotifyErrorCode. */
  NOTIFY_CONFIG: 'NOTIFY_CONFIG',
  NOTIFY_PIDFILE_MISSING: 'NOTIFY_PIDFILE_MISSING',
  NOTIFY_PIDFILE_UNREADABLE: 'NOTIFY_PIDFILE_UNREADABLE',
  NOTIFY_PIDFILE_INVALID: 'NOTIFY_PIDFILE_INVALID',
  NOTIFY_NO_PROCESS: 'NOTIFY_NO_PROCESS',
  NOTIFY_PROCESS_GONE: 'NOTIFY_PROCESS_GONE',
  NOTIFY_NOT_PERMITTED: 'NOTIFY_NOT_PERMITTED',
  NOTIFY_SIGNAL_FAILED: 'NOTIFY_SIGNAL_FAILED',
  NOTIFY_HTTP_STATUS: 'NOTIFY_HTTP_STATUS',
  NOTIFY_HTTP_FAILED: 'NOTIFY_HTTP_FAILED',
  NOTIFY_EXEC_EXIT: 'NOTIFY_EXEC_EXIT',
  NOTIFY_EXEC_FAILED: 'NOTIFY_EXEC_FAILED',
  NOTIFY_EXEC_TIMEOUT: 'NOTIFY_EXEC_TIMEOUT',
  NOTIFY_ABORTED: 'NOTIFY_ABORTED',
  /** A Secret of that name exists and phasekit does not manage it; `--adopt` takes it over (exit 7). */
  KUBE_UNMANAGED: 'KUBE_UNMANAGED',
  /** The Kubernetes API refused the request for lack of permission, or the credentials are not accepted (exit 3). */
  KUBE_FORBIDDEN: 'KUBE_FORBIDDEN',
  /** The Kubernetes API could not be reached or kept failing (exit 5). */
  KUBE_UNAVAILABLE: 'KUBE_UNAVAILABLE',
  /** The Kubernetes API rejected the write: a missing namespace, an invalid or immutable field (exit 8). */
  KUBE_REJECTED: 'KUBE_REJECTED',
  /** No usable kubeconfig or in-cluster configuration (exit 2). */
  KUBE_CONFIG: 'KUBE_CONFIG',
} as const;
export type AgentErrorCode = (typeof AgentErrorCode)[keyof typeof AgentErrorCode];

const AGENT_BRAND = Symbol.for('phasekit.agent-error');

/** An agent failure. Like PhaseError, its message names keys, paths and counts, never a secret value. */
export class AgentError extends Error {
  override readonly name = 'AgentError';
  readonly code: AgentErrorCode;

  constructor(code: AgentErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }

  /** Matches AgentErrors from any copy of this package. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return (
      typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[AGENT_BRAND] === true
    );
  }
}
Object.defineProperty(AgentError.prototype, AGENT_BRAND, { value: true });

/** True when `value` is an {@link AgentError}, optionally with the given code. */
export function isAgentError(value: unknown, code?: AgentErrorCode): value is AgentError {
  return value instanceof AgentError && (code === undefined || value.code === code);
}

/** The process exit codes of product.md. */
export const EXIT_CODES = Object.freeze({
  OK: 0,
  FAILURE: 1,
  CONFIG: 2,
  AUTH: 3,
  NOT_FOUND: 4,
  UNAVAILABLE: 5,
  INTEGRITY: 6,
  GUARD_REFUSED: 7,
  OUTPUT: 8,
} as const);

// A Record over every ErrorCode, so a new SDK code fails to compile until it is given an exit code here.
const PHASE_EXIT_CODES: Readonly<Record<ErrorCode, number>> = {
  CONFIG: EXIT_CODES.CONFIG,
  INVALID_TOKEN: EXIT_CODES.CONFIG,
  UNAUTHORIZED: EXIT_CODES.AUTH,
  FORBIDDEN: EXIT_CODES.AUTH,
  NOT_FOUND: EXIT_CODES.NOT_FOUND,
  NETWORK: EXIT_CODES.UNAVAILABLE,
  TIMEOUT: EXIT_CODES.UNAVAILABLE,
  RATE_LIMITED: EXIT_CODES.UNAVAILABLE,
  DECRYPT: EXIT_CODES.INTEGRITY,
  // A reference to a key, environment or app that is not there is "not found"; a cycle is an integrity failure.
  REFERENCE: EXIT_CODES.NOT_FOUND,
  CONFLICT: EXIT_CODES.FAILURE,
  ABORTED: EXIT_CODES.FAILURE,
};

const AGENT_EXIT_CODES: Readonly<Record<AgentErrorCode, number>> = {
  GUARD_REFUSED: EXIT_CODES.GUARD_REFUSED,
  WRITE: EXIT_CODES.OUTPUT,
  LOCKED: EXIT_CODES.OUTPUT,
  USAGE: EXIT_CODES.CONFIG,
  STOPPED: EXIT_CODES.FAILURE,
  // Notification failures never end a command; bad notifier options are configuration.
  NOTIFY_CONFIG: EXIT_CODES.CONFIG,
  NOTIFY_PIDFILE_MISSING: EXIT_CODES.FAILURE,
  NOTIFY_PIDFILE_UNREADABLE: EXIT_CODES.FAILURE,
  NOTIFY_PIDFILE_INVALID: EXIT_CODES.FAILURE,
  NOTIFY_NO_PROCESS: EXIT_CODES.FAILURE,
  NOTIFY_PROCESS_GONE: EXIT_CODES.FAILURE,
  NOTIFY_NOT_PERMITTED: EXIT_CODES.FAILURE,
  NOTIFY_SIGNAL_FAILED: EXIT_CODES.FAILURE,
  NOTIFY_HTTP_STATUS: EXIT_CODES.FAILURE,
  NOTIFY_HTTP_FAILED: EXIT_CODES.FAILURE,
  NOTIFY_EXEC_EXIT: EXIT_CODES.FAILURE,
  NOTIFY_EXEC_FAILED: EXIT_CODES.FAILURE,
  NOTIFY_EXEC_TIMEOUT: EXIT_CODES.FAILURE,
  NOTIFY_ABORTED: EXIT_CODES.FAILURE,
  KUBE_UNMANAGED: EXIT_CODES.GUARD_REFUSED,
  KUBE_FORBIDDEN: EXIT_CODES.AUTH,
  KUBE_UNAVAILABLE: EXIT_CODES.UNAVAILABLE,
  KUBE_REJECTED: EXIT_CODES.OUTPUT,
  KUBE_CONFIG: EXIT_CODES.CONFIG,
};

/**
 * The exit code for an error, per product.md: 2 usage or configuration (and a malformed token, or an `--out` that
 * is not a directory), 3 authentication or permission, 4 app, environment or key not found (a `${...}` reference to a
 * missing key included), 5 network, timeout or throttling after retries, 6 decryption or a reference cycle, 7 refused
 * by a guard, 8 the output could not be written (read-only, full, or locked by another phasekit), 1 a bug.
 */
export function exitCodeFor(error: unknown): number {
  if (error instanceof AgentError) return AGENT_EXIT_CODES[error.code];
  if (error instanceof PhaseError) {
    return error.code === 'REFERENCE' && error.reason === 'cycle'
      ? EXIT_CODES.INTEGRITY
      : PHASE_EXIT_CODES[error.code];
  }
  return EXIT_CODES.FAILURE;
}
