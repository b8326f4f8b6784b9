import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
// Deep imports of the two parts we use: undici's index also builds fetch, WebSocket, caches and mocks, which
// cost a sidecar about 40 ms of start-up and 9 MB of memory it never uses. Any Dispatcher still works.
import Agent from 'undici/lib/dispatcher/agent.js';
import request from 'undici/lib/api/api-request.js';
import { ErrorCode, PhaseError } from '../errors.js';
import type { Logger } from '../types.js';

/** Settings of the transport; see PhaseClientOptions for the documented defaults. */
export interface TransportOptions {
  readonly host: string;
  readonly authorization: string;
  readonly userAgent: string;
  readonly timeoutMs: number;
  readonly totalTimeoutMs: number;
  readonly retries: number;
  readonly logger: Logger;
  readonly dispatcher?: Dispatcher | undefined;
  /** Strings that must never appear in an error message (the token's secret parts). */
  readonly secrets: readonly string[];
  /** Observer of every HTTP attempt, for metrics. */
  readonly onResponse?: ((route: Route, status: number | 'error') => void) | undefined;
  /** Replaceable for tests; resolves after `ms` or rejects when `signal` aborts. */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly random?: () => number;
}

export type Route = 'tokens' | 'secrets';

export interface RequestSpec {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  readonly route: Route;
  readonly headers?: Record<string, string>;
  readonly body?: unknown;
  readonly signal?: AbortSignal | undefined;
}

const PATHS: Record<Route, string> = { tokens: '/service/secrets/tokens/', secrets: '/service/secrets/' };
const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);
const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 8_000;
/** A server that asks us to wait longer than this is treated as unavailable for this call. */
const MAX_RETRY_AFTER_MS = 60_000;
const MAX_ERROR_TEXT = 200;
/** Abort reasons of our own deadlines, told apart from a caller's abort by identity. */
const TOTAL_DEADLINE = new Error('total deadline');
const ATTEMPT_DEADLINE = new Error('attempt deadline');

const defaultSleep = (ms: number, signal: AbortSignal): Promise<void> => sleep(ms, undefined, { signal });

/**
 * The HTTP layer: one keep-alive pool, per-attempt and total deadlines, bounded jittered retries for
 * idempotent reads, and the mapping from HTTP outcomes to PhaseError codes.
 */
export class Transport {
  readonly #options: TransportOptions;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;

  constructor(options: TransportOptions) {
    this.#options = options;
    this.#ownsDispatcher = options.dispatcher === undefined;
    this.#dispatcher =
      options.dispatcher ??
      new Agent({ keepAliveTimeout: 10_000, keepAliveMaxTimeout: 60_000, connections: 8 });
  }

  /** Sends a request and returns the parsed JSON body (`undefined` for an empty body). */
  async send(spec: RequestSpec): Promise<unknown> {
    // Plain controllers and timers rather than AbortSignal.timeout/any: those cost about a millisecond of
    // CPU per request and can retain memory in a process that polls for days (nodejs/node#55351).
    const total = new AbortController();
    const timer = setTimeout(() => total.abort(TOTAL_DEADLINE), this.#options.totalTimeoutMs);
    const onCaller = () => total.abort(spec.signal?.reason);
    if (spec.signal?.aborted) onCaller();
    else spec.signal?.addEventListener('abort', onCaller, { once: true });
    try {
      return await this.#send(spec, total.signal);
    } finally {
      clearTimeout(timer);
      spec.signal?.removeEventListener('abort', onCaller);
    }
  }

  async #send(spec: RequestSpec, signal: AbortSignal): Promise<unknown> {
    const deadline = Date.now() + this.#options.totalTimeoutMs;
    const idempotent = spec.method === 'GET';
    const sleepFn = this.#options.sleep ?? defaultSleep;
    for (let attempt = 0; ; attempt++) {
      let failure: PhaseError;
      try {
        return await this.#attempt(spec, signal);
      } catch (error) {
        if (!(error instanceof PhaseError)) throw error;
        failure = error;
      }
      const retryable =
        idempotent &&
        attempt < this.#options.retries &&
        !signal.aborted &&
        (failure.code === ErrorCode.NETWORK ||
          failure.code === ErrorCode.RATE_LIMITED ||
          failure.code === ErrorCode.TIMEOUT) &&
        (failure.status === undefined || RETRYABLE_STATUS.has(failure.status) || failure.status === 200);
      if (!retryable) throw failure;
      const delay = this.#delay(attempt, failure.retryAfterMs);
      // Waiting past the deadline would only turn a clear error into a vague timeout.
      if (delay === undefined || Date.now() + delay >= deadline) throw failure;
      this.#options.logger.debug(
        {
          route: spec.route,
          attempt: attempt + 1,
          code: failure.code,
          status: failure.status,
          delayMs: delay,
        },
        'retrying Phase request',
      );
      try {
        await sleepFn(delay, signal);
      } catch {
        throw this.#abortError(spec, signal, failure);
      }
    }
  }

  /** Closes the pool if we created it. */
  async close(): Promise<void> {
    if (this.#ownsDispatcher) await this.#dispatcher.close();
  }

  #delay(attempt: number, retryAfterMs: number | undefined): number | undefined {
    if (retryAfterMs !== undefined) {
      if (retryAfterMs > MAX_RETRY_AFTER_MS) return undefined;
      // Spread clients that were all told the same instant.
      return retryAfterMs + Math.floor((this.#options.random ?? Math.random)() * 250);
    }
    const exp = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** attempt);
    // Jitter between 75% and 100% of the exponential step.
    return Math.floor(exp * (0.75 + 0.25 * (this.#options.random ?? Math.random)()));
  }

  async #attempt(spec: RequestSpec, signal: AbortSignal): Promise<unknown> {
    const attempt = new AbortController();
    const timer = setTimeout(() => attempt.abort(ATTEMPT_DEADLINE), this.#options.timeoutMs);
    const onAbort = () => attempt.abort(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await this.#exchange(spec, signal, attempt.signal);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  async #exchange(spec: RequestSpec, signal: AbortSignal, attemptSignal: AbortSignal): Promise<unknown> {
    const headers: Record<string, string> = {
      accept: 'application/json',
      authorization: this.#options.authorization,
      'user-agent': this.#options.userAgent,
      ...spec.headers,
    };
    let body: string | undefined;
    if (spec.body !== undefined) {
      body = JSON.stringify(spec.body);
      headers['content-type'] = 'application/json';
    }
    const url = new URL(PATHS[spec.route], this.#options.host);
    let statusCode: number;
    let text: string;
    let retryAfter: string | undefined;
    try {
      const res = await request.call(this.#dispatcher, {
        origin: url.origin,
        path: url.pathname,
        method: spec.method,
        headers,
        ...(body === undefined ? {} : { body }),
        signal: attemptSignal,
      });
      statusCode = res.statusCode;
      const ra = res.headers['retry-after'];
      retryAfter = Array.isArray(ra) ? ra[0] : ra;
      text = await res.body.text();
    } catch (error) {
      this.#options.onResponse?.(spec.route, 'error');
      if (attemptSignal.aborted) {
        if (attemptSignal.reason === ATTEMPT_DEADLINE) {
          return Promise.reject(
            new PhaseError(
              ErrorCode.TIMEOUT,
              `Phase did not answer ${spec.route} within ${this.#options.timeoutMs} ms`,
              {
                cause: error,
              },
            ),
          );
        }
        throw this.#abortError(spec, signal, error);
      }
      throw new PhaseError(
        ErrorCode.NETWORK,
        `could not reach Phase at ${url.origin}: ${describeNetworkError(error)}`,
        {
          cause: this.#scrub(error),
        },
      );
    }
    this.#options.onResponse?.(spec.route, statusCode);
    if (statusCode >= 200 && statusCode < 300) {
      if (text.length === 0) return undefined;
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new PhaseError(
          ErrorCode.NETWORK,
          `Phase answered ${spec.route} with a malformed body (not JSON)`,
          {
            status: 200,
          },
        );
      }
    }
    throw this.#statusError(spec.route, statusCode, text, retryAfter);
  }

  #abortError(spec: RequestSpec, signal: AbortSignal, cause: unknown): PhaseError {
    if (signal.reason === TOTAL_DEADLINE) {
      return new PhaseError(
        ErrorCode.TIMEOUT,
        `Phase ${spec.route} request did not complete within the total deadline of ${this.#options.totalTimeoutMs} ms`,
        { cause: cause instanceof PhaseError ? cause : undefined },
      );
    }
    const reason: unknown = signal.reason;
    // A caller's AbortSignal.timeout() is a deadline, not a cancellation: report it as one.
    if (reason instanceof DOMException && reason.name === 'TimeoutError') {
      return new PhaseError(
        ErrorCode.TIMEOUT,
        `Phase ${spec.route} request did not complete within the caller's deadline`,
        {
          cause: reason,
        },
      );
    }
    return new PhaseError(ErrorCode.ABORTED, `Phase ${spec.route} request was aborted`, { cause: reason });
  }

  #statusError(route: Route, status: number, text: string, retryAfter: string | undefined): PhaseError {
    const detail = this.#serverMessage(text);
    const suffix = detail ? `: ${detail}` : '';
    const opts = { status };
    if (status === 401)
      return new PhaseError(ErrorCode.UNAUTHORIZED, `Phase rejected the token (401)${suffix}`, opts);
    // The tokens route answers 403 for an unknown, expired or revoked token (protocol 3.2).
    if (status === 403 && route === 'tokens') {
      return new PhaseError(ErrorCode.UNAUTHORIZED, `Phase rejected the token (403)${suffix}`, opts);
    }
    if (status === 403)
      return new PhaseError(ErrorCode.FORBIDDEN, `Phase refused access (403)${suffix}`, opts);
    if (status === 404)
      return new PhaseError(ErrorCode.NOT_FOUND, `Phase found no such resource (404)${suffix}`, opts);
    if (status === 409)
      return new PhaseError(ErrorCode.CONFLICT, `Phase reported a conflict (409)${suffix}`, opts);
    if (status === 429) {
      const ms = parseRetryAfter(retryAfter);
      return new PhaseError(
        ErrorCode.RATE_LIMITED,
        `Phase throttled the request (429)${ms === undefined ? '' : `; retry after ${Math.ceil(ms / 1000)} s`}`,
        ms === undefined ? opts : { ...opts, retryAfterMs: ms },
      );
    }
    if (status >= 500)
      return new PhaseError(ErrorCode.NETWORK, `Phase is unavailable (${status})${suffix}`, opts);
    return new PhaseError(
      ErrorCode.NETWORK,
      `Phase rejected the ${route} request (${status})${suffix}`,
      opts,
    );
  }

  /** The server's `{"error": "..."}` text, shortened and scrubbed of anything secret. */
  #serverMessage(text: string): string | undefined {
    let message: unknown;
    try {
      message = (JSON.parse(text) as { error?: unknown }).error;
    } catch {
      return undefined;
    }
    if (typeof message !== 'string' || message.length === 0) return undefined;
    return this.#redact(message.length > MAX_ERROR_TEXT ? `${message.slice(0, MAX_ERROR_TEXT)}…` : message);
  }

  #redact(text: string): string {
    let out = text;
    for (const secret of this.#options.secrets) if (secret) out = out.split(secret).join('[redacted]');
    return out;
  }

  /** Low-level errors can quote request options; keep only what is safe. */
  #scrub(error: unknown): Error {
    if (!(error instanceof Error)) return new Error('unknown transport failure');
    const safe = new Error(this.#redact(error.message));
    safe.name = error.name;
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string') (safe as Error & { code: string }).code = code;
    return safe;
  }
}

function describeNetworkError(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  const cause = (error as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  const name = typeof code === 'string' ? code : typeof cause === 'string' ? cause : undefined;
  return name ?? (error instanceof Error ? error.name : 'unknown error');
}

/** `Retry-After` as delta-seconds or an HTTP date, in milliseconds. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
