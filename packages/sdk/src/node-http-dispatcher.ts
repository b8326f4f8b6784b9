import { createRequire } from 'node:module';
import type * as Http from 'node:http';
import type * as Https from 'node:https';
import type { Dispatcher as UndiciDispatcher } from 'undici';
// By path, like the SDK's Agent: undici's index would build fetch, WebSocket and the rest.
import Dispatcher from 'undici/lib/dispatcher/dispatcher.js';
import WrapHandler from 'undici/lib/handler/wrap-handler.js';

// node:http and node:https by require, when first needed: an ES import of node:http on Node 22+ reads every export,
// lazy ones included, which loads tls, zlib and crypto; node:https loads tls itself, which a plain-HTTP host never
// needs. tsup's shims give the CommonJS build an import.meta.url.
const load = createRequire(import.meta.url);

/** Options of {@link NodeHttpDispatcher}. */
export interface NodeHttpDispatcherOptions {
  /** Connections kept per origin, at most. Default 8. */
  readonly connections?: number;
  /**
   * How long an idle kept-alive connection stays open, in ms (a shorter `Keep-Alive: timeout` from the server wins).
   * Default 10,000.
   */
  readonly keepAliveTimeoutMs?: number;
}

type Handler = UndiciDispatcher.DispatchHandler;
type Controller = UndiciDispatcher.DispatchController;

/**
 * An undici Dispatcher that speaks HTTP/1.1 through Node's own `node:http`/`node:https` client, for long-running
 * processes that count their resident memory. The phasekit CLI uses it for every command.
 *
 * Why: undici parses HTTP with llhttp compiled to WebAssembly. On Node 20 (V8 11.3) a WebAssembly module's calls
 * into JavaScript go through wrappers that V8 compiles with TurboFan, so undici's first request pages in V8's
 * optimising compiler and WebAssembly compiler: about 3 MB of resident memory that a sidecar keeps for its whole
 * life (docs/benchmarks.md, item 5). node:http parses with the same llhttp, compiled into the node binary. The
 * client's default stays undici's Agent.
 *
 * What it does: HTTP/1.1 with keep-alive per origin (at most `connections`, idle ones closed after
 * `keepAliveTimeoutMs` or the server's shorter `Keep-Alive: timeout`), bodies given as a string or bytes, abort,
 * pause and resume, and handlers of both undici 7's controller API and the older callback API. Not: upgrades,
 * CONNECT, pipelining, HTTP/2, streamed or iterable request bodies (dispatched as an error to the handler).
 *
 * @example
 * const client = new PhaseClient({ token, dispatcher: new NodeHttpDispatcher() });
 */
export class NodeHttpDispatcher extends Dispatcher {
  readonly #connections: number;
  readonly #keepAliveTimeoutMs: number;
  #http: Http.Agent | undefined;
  #https: Https.Agent | undefined;
  #closed = false;
  /** Exchanges not yet settled, and who waits for them to end (close()). */
  readonly #inFlight = new Set<NodeExchange>();
  #drained: (() => void)[] = [];

  constructor(options: NodeHttpDispatcherOptions = {}) {
    super();
    this.#connections = options.connections ?? 8;
    this.#keepAliveTimeoutMs = options.keepAliveTimeoutMs ?? 10_000;
  }

  override dispatch(options: UndiciDispatcher.DispatchOptions, handler: Handler): boolean {
    const exchange = new NodeExchange(WrapHandler.wrap(handler), this.#settled);
    this.#inFlight.add(exchange);
    if (this.#closed) {
      exchange.fail(new DispatcherClosedError());
      return false;
    }
    let request: Http.RequestOptions;
    let body: string | Uint8Array | undefined;
    let secure: boolean;
    try {
      const origin = new URL(String(options.origin));
      secure = origin.protocol === 'https:';
      if (!secure && origin.protocol !== 'http:')
        throw new TypeError(`unsupported protocol ${origin.protocol}`);
      body = requestBody(options.body);
      request = {
        protocol: origin.protocol,
        hostname: origin.hostname.startsWith('[') ? origin.hostname.slice(1, -1) : origin.hostname,
        port: origin.port,
        path: options.path,
        method: options.method,
        headers: requestHeaders(options.headers),
        agent: secure ? this.#httpsAgent() : this.#httpAgent(),
      };
    } catch (error) {
      exchange.fail(error);
      return true;
    }
    const client = (secure ? load('node:https') : load('node:http')) as typeof Http;
    exchange.start((o) => client.request(o), request, body);
    return true;
  }

  readonly #settled = (exchange: NodeExchange): void => {
    this.#inFlight.delete(exchange);
    if (this.#inFlight.size > 0) return;
    if (this.#closed) this.#destroyAgents();
    for (const done of this.#drained.splice(0)) done();
  };

  #destroyAgents(): void {
    this.#http?.destroy();
    this.#https?.destroy();
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    this.#closed = true;
    // Requests in flight finish; then every connection is closed.
    const drained =
      this.#inFlight.size === 0
        ? (this.#destroyAgents(), Promise.resolve())
        : new Promise<void>((resolve) => this.#drained.push(resolve));
    if (callback) {
      void drained.then(callback);
      return;
    }
    return drained;
  }

  override destroy(): Promise<void>;
  override destroy(error: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(error: Error | null, callback: () => void): void;
  override destroy(
    errorOrCallback?: Error | null | (() => void),
    callback?: () => void,
  ): Promise<void> | void {
    this.#closed = true;
    // Requests in flight end now, those still waiting for a connection included.
    const reason = errorOrCallback instanceof Error ? errorOrCallback : new DispatcherClosedError();
    for (const exchange of [...this.#inFlight]) exchange.fail(reason);
    this.#destroyAgents();
    const done = typeof errorOrCallback === 'function' ? errorOrCallback : callback;
    if (done) {
      queueMicrotask(done);
      return;
    }
    return Promise.resolve();
  }

  #httpAgent(): Http.Agent {
    return (this.#http ??= new (load('node:http') as typeof Http).Agent(this.#agentOptions()));
  }

  #httpsAgent(): Https.Agent {
    return (this.#https ??= new (load('node:https') as typeof Https).Agent(this.#agentOptions()));
  }

  #agentOptions(): Http.AgentOptions {
    // `timeout` closes a kept-alive connection after that long idle; a server's shorter Keep-Alive hint wins.
    return { keepAlive: true, maxSockets: this.#connections, timeout: this.#keepAliveTimeoutMs };
  }
}

/** Raised to a handler whose dispatcher was closed or destroyed. */
class DispatcherClosedError extends Error {
  readonly code = 'UND_ERR_DESTROYED';
  constructor() {
    super('the HTTP dispatcher is closed');
    this.name = 'ClientDestroyedError';
  }
}

/** One request and its response, reported to an undici handler; it settles once. */
class NodeExchange implements Controller {
  readonly #handler: Handler;
  readonly #onSettled: (exchange: NodeExchange) => void;
  #request: Http.ClientRequest | undefined;
  #response: Http.IncomingMessage | undefined;
  #settled = false;
  #aborted = false;
  #paused = false;
  #reason: Error | null = null;

  constructor(handler: Handler, onSettled: (exchange: NodeExchange) => void) {
    this.#handler = handler;
    this.#onSettled = onSettled;
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  get paused(): boolean {
    return this.#paused;
  }

  get reason(): Error | null {
    return this.#reason;
  }

  start(
    send: (options: Http.RequestOptions) => Http.ClientRequest,
    options: Http.RequestOptions,
    body: string | Uint8Array | undefined,
  ): void {
    try {
      this.#handler.onRequestStart?.(this, {});
    } catch (error) {
      this.fail(error);
      return;
    }
    // The handler gave up before anything was sent.
    if (this.#settled) return;
    let request: Http.ClientRequest;
    try {
      request = send(options);
    } catch (error) {
      this.fail(error);
      return;
    }
    this.#request = request;
    request.on('response', (response) => this.#onResponse(response));
    request.on('error', (error) => this.fail(error));
    request.end(body);
  }

  abort(reason?: Error): void {
    if (this.#settled) return;
    this.#aborted = true;
    this.#reason = reason ?? new Error('request aborted');
    this.fail(this.#reason);
  }

  pause(): void {
    this.#paused = true;
    this.#response?.pause();
  }

  resume(): void {
    this.#paused = false;
    this.#response?.resume();
  }

  /** Ends the exchange with `error`: the connection is dropped and the handler hears of it once. */
  fail(error: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#onSettled(this);
    this.#request?.destroy();
    this.#response?.destroy();
    this.#reportError(error);
  }

  #reportError(error: unknown): void {
    this.#handler.onResponseError?.(this, error instanceof Error ? error : new Error(String(error)));
  }

  #onResponse(response: Http.IncomingMessage): void {
    if (this.#settled) {
      response.destroy();
      return;
    }
    this.#response = response;
    const status = response.statusCode ?? 0;
    response.on('error', (error) => this.fail(error));
    // A connection lost mid-body: node:http emits an error on most versions; 'close' before 'end' catches the rest.
    response.on('close', () => this.fail(connectionLost()));
    try {
      this.#handler.onResponseStart?.(this, status, response.headers, response.statusMessage ?? '');
    } catch (error) {
      this.fail(error);
      return;
    }
    if (this.#settled) return;
    if (this.#paused) response.pause();
    response.on('data', (chunk: Buffer) => {
      if (this.#settled) return;
      try {
        this.#handler.onResponseData?.(this, chunk);
      } catch (error) {
        this.fail(error);
      }
    });
    response.on('end', () => {
      if (this.#settled) return;
      if (!response.complete) {
        this.fail(connectionLost());
        return;
      }
      this.#settled = true;
      this.#onSettled(this);
      try {
        this.#handler.onResponseEnd?.(this, response.trailers);
      } catch (error) {
        // Reported like undici does: to the handler, as an error of the response.
        this.#reportError(error);
      }
    });
  }
}

function connectionLost(): Error {
  return Object.assign(new Error('the connection closed before the response ended'), { code: 'ECONNRESET' });
}

/** undici's header forms (object, flat array, iterable of pairs) as node:http's object. */
function requestHeaders(headers: UndiciDispatcher.DispatchOptions['headers']): Http.OutgoingHttpHeaders {
  const out: Http.OutgoingHttpHeaders = {};
  if (headers == null) return out;
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) add(out, String(headers[i]), headers[i + 1]);
    return out;
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [name, value] of headers as Iterable<[string, string | string[] | undefined]>)
      add(out, name, value);
    return out;
  }
  for (const [name, value] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    add(out, name, value);
  }
  return out;
}

function add(out: Http.OutgoingHttpHeaders, name: string, value: string | string[] | undefined): void {
  if (value === undefined) return;
  const key = name.toLowerCase();
  const prior = out[key];
  if (prior === undefined) out[key] = value;
  else
    out[key] = [
      ...(Array.isArray(prior) ? prior : [String(prior)]),
      ...(Array.isArray(value) ? value : [value]),
    ];
}

function requestBody(body: UndiciDispatcher.DispatchOptions['body']): string | Uint8Array | undefined {
  if (body == null) return undefined;
  if (typeof body === 'string' || body instanceof Uint8Array) return body;
  throw new TypeError('this dispatcher sends string or byte bodies only');
}
