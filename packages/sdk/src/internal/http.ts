import { setTimeout as sleep } from 'node:timers/promises';
import type * as UndiciModule from 'undici';
import type { Dispatcher } from 'undici';
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
  /** How back-off waits are taken; tests inject one that records them instead of waiting. */
  readonly clock?: Clock | undefined;
}

/** The transport's back-off timer and jitter source. */
export interface Clock {
  /** Resolves after `ms`, or rejects when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  /** A number in [0, 1) for jitter. */
  random(): number;
}

/**
 * The key under which a test passes a {@link Clock} to `new PhaseClient()`. A symbol, so it is not an option users
 * can set by accident and not part of the documented options.
 */
export const kClock: unique symbol = Symbol('phasekit.clock');

export type Route = 'tokens' | 'secrets';

export interface RequestSpec {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  readonly route: Route;
  readonly headers?: Record<string, string>;
  readonly body?: unknown;
  readonly signal?: AbortSignal | undefined;
  /** This call's attempt deadline and retries, over the transport's defaults. */
  readonly timeoutMs?: number | undefined;
  readonly retries?: number | undefined;
}

const PATHS: Record<Route, string> = { tokens: '/service/secrets/tokens/', secrets: '/service/secrets/' };
const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 8_000;
/** A server that asks us to wait longer than this is treated as unavailable for this call. */
const MAX_RETRY_AFTER_MS = 60_000;
const MAX_ERROR_TEXT = 200;
/** Stands in for a caller's signal when there is none: never aborts. */
const NEVER_ABORTED = new AbortController().signal;

const realClock: Clock = {
  sleep: (ms, signal) => sleep(ms, undefined, { signal }),
  random: Math.random,
};

/**
 * undici, loaded with the first request of a client that was given no dispatcher: a service that passes its own
 * never pays for loading undici's fetch, WebSocket and cache modules.
 */
let undici: Promise<Undici> | undefined;
type Undici = typeof UndiciModule;

/** undici's exports; a bundle that imports the CommonJS package (the phasekit CLI) finds them under `default`. */
async function loadUndici(): Promise<Undici> {
  const loaded = (await import('undici')) as Undici & { default?: Undici };
  return loaded.EnvHttpProxyAgent === undefined && loaded.default !== undefined ? loaded.default : loaded;
}

/**
 * The client's own dispatcher: undici's EnvHttpProxyAgent, a keep-alive Agent that honours `HTTPS_PROXY`,
 * `HTTP_PROXY` and `NO_PROXY` (upper or lower case), as corporate networks need.
 */
async function defaultDispatcher(): Promise<Dispatcher> {
  const { EnvHttpProxyAgent } = await (undici ??= loadUndici());
  return new EnvHttpProxyAgent({ keepAliveTimeout: 10_000, keepAliveMaxTimeout: 60_000, connections: 8 });
}

/**
 * A failure worth another attempt (product.md, failure rules): no answer (a reset, a refused connection, a
 * deadline), 429, any 5xx, or a 2xx whose body is garbled. Other 4xx answers are final.
 */
function isTransient(failure: PhaseError): boolean {
  if (
    failure.code !== ErrorCode.NETWORK &&
    failure.code !== ErrorCode.RATE_LIMITED &&
    failure.code !== ErrorCode.TIMEOUT
  ) {
    return false;
  }
  const status = failure.status;
  return status === undefined || status === 429 || status >= 500 || (status >= 200 && status < 300);
}

/** A call's own `timeoutMs` and `retries` must be whole numbers, as the client's are. */
function checkCallOptions(spec: RequestSpec): void {
  if (spec.timeoutMs !== undefined && !(Number.isInteger(spec.timeoutMs) && spec.timeoutMs >= 1)) {
    throw new PhaseError(
      ErrorCode.CONFIG,
      'call option timeoutMs must be a whole number of milliseconds, at least 1',
    );
  }
  if (spec.retries !== undefined && !(Number.isInteger(spec.retries) && spec.retries >= 0)) {
    throw new PhaseError(ErrorCode.CONFIG, 'call option retries must be a whole number, at least 0');
  }
}

/** Why an attempt ended without a response: its own deadline, the call's total deadline or the network. */
type Failure = 'attempt' | 'total' | 'network';

/**
 * The HTTP layer: undici's `request()` on one keep-alive pool, per-attempt and total deadlines, bounded jittered
 * retries for reads, and the mapping from HTTP outcomes to PhaseError codes.
 */
export class Transport {
  readonly #options: TransportOptions;
  /** The caller's dispatcher (theirs to close), or ours, made with the first request. */
  #dispatcher: Promise<Dispatcher> | undefined;
  readonly #origin: string;

  constructor(options: TransportOptions) {
    this.#options = options;
    if (options.dispatcher !== undefined) this.#dispatcher = Promise.resolve(options.dispatcher);
    this.#origin = new URL(options.host).origin;
  }

  /**
   * Sends a request and returns its 2xx body, parsed as JSON (`undefined` for an empty body) or by `read`,
   * which gets the body's bytes; a PhaseError from `read` counts as a failed attempt (a malformed body is
   * retried like a network error).
   */
  async send<T = unknown>(
    spec: RequestSpec,
    read: (route: Route, body: Buffer) => T = parseBody as (route: Route, body: Buffer) => T,
  ): Promise<T> {
    checkCallOptions(spec);
    const deadline = Date.now() + this.#options.totalTimeoutMs;
    const dispatcher = await (this.#dispatcher ??= defaultDispatcher());
    const idempotent = spec.method === 'GET';
    for (let attempt = 0; ; attempt++) {
      let failure: PhaseError;
      try {
        return read(spec.route, await this.#attempt(dispatcher, spec, deadline));
      } catch (error) {
        if (!(error instanceof PhaseError)) throw error;
        failure = error;
      }
      const retryable =
        idempotent &&
        attempt < (spec.retries ?? this.#options.retries) &&
        spec.signal?.aborted !== true &&
        isTransient(failure);
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
        await (this.#options.clock ?? realClock).sleep(delay, spec.signal ?? NEVER_ABORTED);
      } catch {
        throw this.#abortError(spec.route, spec.signal?.reason);
      }
    }
  }

  /** Closes the pool if we created it; requests in flight finish first. */
  async close(): Promise<void> {
    if (this.#options.dispatcher === undefined && this.#dispatcher !== undefined) {
      await (await this.#dispatcher).close();
    }
  }

  #delay(attempt: number, retryAfterMs: number | undefined): number | undefined {
    if (retryAfterMs !== undefined) {
      if (retryAfterMs > MAX_RETRY_AFTER_MS) return undefined;
      // Spread clients that were all told the same instant.
      return retryAfterMs + Math.floor((this.#options.clock ?? realClock).random() * 250);
    }
    const exp = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** attempt);
    // Jitter between 75% and 100% of the exponential step.
    return Math.floor(exp * (0.75 + 0.25 * (this.#options.clock ?? realClock).random()));
  }

  /** One HTTP exchange, bounded by the per-attempt timeout or what is left of the total deadline. */
  async #attempt(dispatcher: Dispatcher, spec: RequestSpec, deadline: number): Promise<Buffer> {
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
    const left = deadline - Date.now();
    const timeoutMs = spec.timeoutMs ?? this.#options.timeoutMs;
    const limit = AbortSignal.timeout(Math.max(0, Math.min(timeoutMs, left)));
    const signal = spec.signal === undefined ? limit : AbortSignal.any([spec.signal, limit]);
    const route = spec.route;
    let status: number;
    let received: Buffer;
    let retryAfter: string | string[] | undefined;
    try {
      const response = await dispatcher.request({
        origin: this.#origin,
        path: PATHS[route],
        method: spec.method,
        headers,
        signal,
        ...(body === undefined ? {} : { body }),
      });
      status = response.statusCode;
      retryAfter = response.headers['retry-after'];
      received = Buffer.from(await response.body.arrayBuffer());
      // undici returns the connection to its pool a turn after the body ends: a request sent sooner (the secrets
      // read right after the tokens probe) would open a second connection, and over HTTPS a second handshake.
      await new Promise(setImmediate);
    } catch (error) {
      this.#options.onResponse?.(route, 'error');
      if (spec.signal?.aborted === true) throw this.#abortError(route, spec.signal.reason);
      if (limit.aborted)
        throw this.#failure(route, left <= timeoutMs ? 'total' : 'attempt', timeoutMs, error);
      throw this.#failure(route, 'network', timeoutMs, error);
    }
    this.#options.onResponse?.(route, status);
    if (status >= 200 && status < 300) return received;
    throw this.#statusError(
      route,
      status,
      decode(received),
      Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
    );
  }

  /** The error of an attempt that failed before a whole response: a deadline or the network. */
  #failure(route: Route, why: Failure, timeoutMs: number, cause: unknown): PhaseError {
    if (why === 'attempt') {
      return new PhaseError(ErrorCode.TIMEOUT, `Phase did not answer ${route} within ${timeoutMs} ms`);
    }
    if (why === 'total') {
      return new PhaseError(
        ErrorCode.TIMEOUT,
        `Phase ${route} request did not complete within the total deadline of ${this.#options.totalTimeoutMs} ms`,
      );
    }
    return new PhaseError(
      ErrorCode.NETWORK,
      `could not reach Phase at ${this.#origin}: ${describeNetworkError(cause)}`,
      { cause: this.#scrub(cause) },
    );
  }

  /** A caller's abort; its AbortSignal.timeout() is a deadline, not a cancellation, and is reported as one. */
  #abortError(route: Route, reason: unknown): PhaseError {
    if (reason instanceof DOMException && reason.name === 'TimeoutError') {
      return new PhaseError(
        ErrorCode.TIMEOUT,
        `Phase ${route} request did not complete within the caller's deadline`,
        {
          cause: reason,
        },
      );
    }
    return new PhaseError(ErrorCode.ABORTED, `Phase ${route} request was aborted`, { cause: reason });
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

/** Parses a 2xx body as JSON: `undefined` for an empty body, NETWORK for anything else that is not JSON. */
export function parseBody(route: Route, body: Buffer): unknown {
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(decode(body)) as unknown;
  } catch {
    throw new PhaseError(ErrorCode.NETWORK, `Phase answered ${route} with a malformed body (not JSON)`, {
      status: 200,
    });
  }
}

/** UTF-8 text of a body, without a byte order mark. */
function decode(body: Buffer): string {
  const bom = body.length > 2 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf;
  return body.toString('utf8', bom ? 3 : 0);
}

/** `Retry-After` as delta-seconds or an HTTP date, in milliseconds. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
