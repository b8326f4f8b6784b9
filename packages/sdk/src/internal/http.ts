import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
// A deep import of the one part we use: undici's index also builds fetch, WebSocket, caches and mocks, which
// cost a sidecar about 40 ms of start-up and 9 MB of memory it never uses. Any Dispatcher still works.
import Agent from 'undici/lib/dispatcher/agent.js';
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
/** Stands in for a caller's signal when there is none: never aborts. */
const NEVER_ABORTED = new AbortController().signal;
const EMPTY = Buffer.alloc(0);
/** Bodies announced between these sizes are received into one buffer (smaller ones arrive in one chunk anyway). */
const PRESIZE_FROM = 64 * 1024;
const PRESIZE_UP_TO = 64 * 1024 * 1024;

const defaultSleep = (ms: number, signal: AbortSignal): Promise<void> => sleep(ms, undefined, { signal });
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * The HTTP layer: one keep-alive pool, per-attempt and total deadlines, bounded jittered retries for
 * idempotent reads, and the mapping from HTTP outcomes to PhaseError codes.
 */
export class Transport {
  readonly #options: TransportOptions;
  /**
   * The caller's dispatcher, or our Agent, made with the first request: a client given its own dispatcher never
   * makes one (the phasekit CLI's bundle leaves undici's Agent out). The caller's own dispatcher is theirs to close.
   */
  #dispatcher: Dispatcher | undefined;
  readonly #origin: string;
  /**
   * A response ended and the event loop has not turned since. undici hands a kept-alive connection back to
   * its pool one turn after a response (a setImmediate): a request sent sooner, like the secrets read right
   * after the tokens probe, would open a second connection, so it waits for that turn first.
   */
  #turnPending = false;
  readonly #turned = (): void => {
    this.#turnPending = false;
  };
  /**
   * The exchanges in flight for each caller's signal, with one abort listener per signal however many
   * requests it covers: adding and removing a listener per request costs a poll tens of microseconds.
   */
  readonly #bySignal = new WeakMap<AbortSignal, Set<Exchange>>();
  /**
   * Deadlines: one timer for every exchange in flight, set for the earliest deadline and left running (unref'd)
   * when nothing is in flight, so a poll every few seconds does not create and clear a timer each time.
   */
  readonly #inFlight = new Set<Exchange>();
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;
  readonly #sweep = (): void => {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const exchange of this.#inFlight) {
      // Timers may fire a fraction of a millisecond before the deadline they were set for.
      if (exchange.deadline <= now + 1) exchange.expire();
      else next = Math.min(next, exchange.deadline);
    }
    if (next !== Infinity) this.#arm(next, now);
  };

  constructor(options: TransportOptions) {
    this.#options = options;
    this.#dispatcher = options.dispatcher;
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
    // No AbortController, AbortSignal.timeout/any, timer or abort listener per attempt (see #inFlight and
    // #bySignal): those cost CPU on every poll and can retain memory in a process that polls for days
    // (nodejs/node#55351).
    const deadline = Date.now() + this.#options.totalTimeoutMs;
    const dispatcher = (this.#dispatcher ??= new Agent({
      keepAliveTimeout: 10_000,
      keepAliveMaxTimeout: 60_000,
      connections: 8,
    }));
    if (this.#turnPending) await nextTurn();
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
        attempt < this.#options.retries &&
        spec.signal?.aborted !== true &&
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
        await (this.#options.sleep ?? defaultSleep)(delay, spec.signal ?? NEVER_ABORTED);
      } catch {
        throw this.#abortError(spec.route, spec.signal?.reason);
      }
    }
  }

  /** Closes the pool if we created it. */
  async close(): Promise<void> {
    // Requests still in flight keep their deadlines.
    if (this.#inFlight.size === 0) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Infinity;
    }
    if (this.#options.dispatcher === undefined) await this.#dispatcher?.close();
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

  /** One HTTP exchange, bounded by the per-attempt timeout or what is left of the total deadline. */
  #attempt(dispatcher: Dispatcher, spec: RequestSpec, deadline: number): Promise<Buffer> {
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
    const at = performance.now() + Math.max(0, Math.min(this.#options.timeoutMs, left));
    return new Promise<Buffer>((resolve, reject) => {
      const exchange = new Exchange(this, spec, at, left <= this.#options.timeoutMs, resolve, reject);
      // Fresh options each time: some dispatchers (ProxyAgent) rewrite them.
      exchange.start(dispatcher, {
        origin: this.#origin,
        path: PATHS[spec.route],
        method: spec.method,
        headers,
        ...(body === undefined ? {} : { body }),
      });
    });
  }

  /** Tracks an exchange until its deadline or release(). */
  track(exchange: Exchange): void {
    this.#inFlight.add(exchange);
    if (exchange.deadline < this.#timerAt) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#arm(exchange.deadline, performance.now());
    } else {
      this.#timer?.ref();
    }
  }

  release(exchange: Exchange): void {
    this.#inFlight.delete(exchange);
    if (this.#inFlight.size === 0) this.#timer?.unref();
  }

  #arm(at: number, now: number): void {
    this.#timerAt = at;
    this.#timer = setTimeout(this.#sweep, Math.max(0, Math.ceil(at - now)));
  }

  /** The set of exchanges in flight for a caller's signal, listening to it the first time it is seen. */
  watchers(signal: AbortSignal): Set<Exchange> {
    let set = this.#bySignal.get(signal);
    if (set === undefined) {
      const inFlight = new Set<Exchange>();
      signal.addEventListener(
        'abort',
        () => {
          for (const exchange of inFlight) exchange.abort();
        },
        { once: true },
      );
      this.#bySignal.set(signal, inFlight);
      set = inFlight;
    }
    return set;
  }

  /** Called by an exchange when its response has ended (see #turnPending). */
  ended(): void {
    if (this.#turnPending) return;
    this.#turnPending = true;
    // Runs in the same check phase as undici's own: no extra turn of the loop.
    setImmediate(this.#turned);
  }

  /** The error of an exchange that failed before a response: a deadline, a caller's abort or the network. */
  failure(route: Route, why: Failure, cause: unknown): PhaseError {
    if (why === 'attempt') {
      return new PhaseError(
        ErrorCode.TIMEOUT,
        `Phase did not answer ${route} within ${this.#options.timeoutMs} ms`,
      );
    }
    if (why === 'total') {
      return new PhaseError(
        ErrorCode.TIMEOUT,
        `Phase ${route} request did not complete within the total deadline of ${this.#options.totalTimeoutMs} ms`,
      );
    }
    if (why === 'caller') return this.#abortError(route, cause);
    return new PhaseError(
      ErrorCode.NETWORK,
      `could not reach Phase at ${this.#origin}: ${describeNetworkError(cause)}`,
      { cause: this.#scrub(cause) },
    );
  }

  /** Reports one attempt to the onResponse hook. */
  observe(route: Route, status: number | 'error'): void {
    this.#options.onResponse?.(route, status);
  }

  /** The error of a non-2xx answer. */
  statusError(route: Route, status: number, body: Buffer, retryAfter: string | undefined): PhaseError {
    return this.#statusError(route, status, decode(body), retryAfter);
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

/** Why an exchange ended without a response. */
type Failure = 'attempt' | 'total' | 'caller' | 'network';

/** Why a deadline or an abort stopped the request in flight, given to undici's abort. */
const STOPPED = new Error('stopped by the Phase transport');

/**
 * One HTTP attempt as an undici dispatch handler (undici 7's controller API): the body is collected into one
 * Buffer, with no stream, no promise per chunk and no AbortController. It settles once: by the response, by a
 * network error, by its timer (per-attempt or total deadline) or by the caller's signal, whichever comes first.
 */
class Exchange implements Dispatcher.DispatchHandler {
  readonly #transport: Transport;
  readonly #spec: RequestSpec;
  /** The timer stands for the total deadline rather than the per-attempt one. */
  readonly #total: boolean;
  readonly #resolve: (body: Buffer) => void;
  readonly #reject: (error: unknown) => void;
  /** When the deadline of this attempt passes (performance.now()). */
  readonly deadline: number;
  /** The exchanges in flight under the same caller's signal, this one included. */
  #peers: Set<Exchange> | undefined;
  #controller: Dispatcher.DispatchController | undefined;
  #settled = false;
  #status = 0;
  #retryAfter: string | undefined;
  #chunks: Buffer[] = [];
  /** The body, when the response announced its length: filled as it arrives, so no chunk outlives its copy. */
  #body: Buffer | undefined;
  #size = 0;

  constructor(
    transport: Transport,
    spec: RequestSpec,
    deadline: number,
    total: boolean,
    resolve: (body: Buffer) => void,
    reject: (error: unknown) => void,
  ) {
    this.#transport = transport;
    this.#spec = spec;
    this.deadline = deadline;
    this.#total = total;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  start(dispatcher: Dispatcher, options: Dispatcher.DispatchOptions): void {
    const signal = this.#spec.signal;
    if (signal?.aborted) {
      this.#fail('caller', signal.reason);
      return;
    }
    this.#transport.track(this);
    if (signal !== undefined) {
      this.#peers = this.#transport.watchers(signal);
      this.#peers.add(this);
    }
    try {
      dispatcher.dispatch(options, this);
    } catch (error) {
      this.#fail('network', error);
    }
  }

  /** The caller's signal aborted. */
  abort(): void {
    this.#fail('caller', this.#spec.signal?.reason);
  }

  /** The deadline passed. */
  expire(): void {
    this.#fail(this.#total ? 'total' : 'attempt', undefined);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    // Already given up (a deadline or an abort while the request waited for a connection).
    if (this.#settled) {
      controller.abort(STOPPED);
      return;
    }
    this.#controller = controller;
    // undici may start a request again after a pipelining failure: start afresh.
    this.#status = 0;
    this.#chunks = [];
    this.#body = undefined;
    this.#size = 0;
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    // 1xx informational answers come before the real one.
    if (statusCode < 200) return;
    this.#status = statusCode;
    const ra = headers['retry-after'];
    this.#retryAfter = Array.isArray(ra) ? ra[0] : ra;
    // A large body announced by Content-Length goes straight into one buffer of that size: gathering the chunks
    // and then concatenating them held the response twice (1.4 MB for 1,000 secrets) at a sidecar's peak.
    const length = Number(headers['content-length']);
    if (Number.isSafeInteger(length) && length > PRESIZE_FROM && length <= PRESIZE_UP_TO) {
      this.#body = Buffer.allocUnsafeSlow(length);
    }
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#settled) return;
    const body = this.#body;
    if (body !== undefined) {
      if (this.#size + chunk.length <= body.length) {
        chunk.copy(body, this.#size);
        this.#size += chunk.length;
        return;
      }
      // More than announced (undici normally refuses that): carry on with chunks.
      this.#chunks.push(body.subarray(0, this.#size));
      this.#body = undefined;
    }
    this.#chunks.push(chunk);
    this.#size += chunk.length;
  }

  onResponseEnd(): void {
    if (this.#settled) return;
    this.#finish();
    this.#transport.ended();
    const route = this.#spec.route;
    const chunks = this.#chunks;
    const body =
      this.#body !== undefined
        ? this.#body.subarray(0, this.#size)
        : chunks.length === 1
          ? chunks[0]!
          : chunks.length === 0
            ? EMPTY
            : Buffer.concat(chunks, this.#size);
    this.#chunks = [];
    this.#body = undefined;
    const status = this.#status;
    try {
      this.#transport.observe(route, status);
    } catch (error) {
      this.#reject(error);
      return;
    }
    if (status >= 200 && status < 300) this.#resolve(body);
    else this.#reject(this.#transport.statusError(route, status, body, this.#retryAfter));
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.#fail('network', error);
  }

  #fail(why: Failure, cause: unknown): void {
    if (this.#settled) return;
    this.#finish();
    this.#chunks = [];
    this.#body = undefined;
    // Stop what is in flight; a request still waiting for a connection is stopped in onRequestStart.
    if (why !== 'network') this.#controller?.abort(STOPPED);
    const route = this.#spec.route;
    try {
      this.#transport.observe(route, 'error');
    } catch (error) {
      this.#reject(error);
      return;
    }
    this.#reject(this.#transport.failure(route, why, cause));
  }

  #finish(): void {
    this.#settled = true;
    this.#transport.release(this);
    this.#peers?.delete(this);
  }
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
