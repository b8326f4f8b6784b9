/** The HTTP layer: real sockets, request log, fault injection, control routes, and `startEmulator`. */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { handleApi, type ApiResponse } from './api.js';
import { CONTROL_PREFIX, handleControl, type EmulatorCore } from './control.js';
import { initCrypto } from './crypto.js';
import { FaultRegistry, faultBody, faultStatus, malformedBody, validateFaultSpec } from './faults.js';
import { Store, type EmulatorState } from './state.js';
import { generateCertificate, type TlsCredentials } from './tls.js';
import type {
  DeleteSecretInput,
  EmulatorApp,
  EmulatorLogger,
  EmulatorTokens,
  FaultHandle,
  FaultSpec,
  PlainSecret,
  RequestRecord,
  RouteName,
  Seed,
  SetOverrideInput,
  SetSecretInput,
  SetSecretResult,
  TokenKind,
} from './types.js';

const MAX_BODY_BYTES = 16 * 1024 * 1024;

/** Options of {@link startEmulator}. */
export interface StartEmulatorOptions {
  /** Apps, environments and secrets to start with. Ignored when `state` is given. @default { apps: [] } */
  seed?: Seed;
  /** A `snapshot()` to restore: same organisation, keys, tokens and secrets. */
  state?: EmulatorState;
  /** `0` picks a free port. @default 0 */
  port?: number;
  /** @default "127.0.0.1" */
  host?: string;
  /**
   * Decrypt submitted ciphertexts on POST/PUT and reject those that do not decrypt with the environment key, and
   * reject a `keyDigest` that is not blake2b(UPPER(key), salt). @default false
   */
  strict?: boolean;
  /** Receives one entry per Phase API request (method, path, status, ms). */
  logger?: EmulatorLogger;
  /**
   * Serve HTTPS: `true` generates a self-signed certificate for localhost and the loopback addresses (needs the
   * `openssl` command); or give your own. Clients trust it by `ca` (NODE_EXTRA_CA_CERTS, a dispatcher's `connect.ca`).
   * @default false (plain HTTP)
   */
  tls?: boolean | TlsCredentials;
}

/** A running emulator. All test controls are synchronous; only `close()` is async. */
export interface Emulator {
  /** Base URL to pass to clients as the Phase host, e.g. `http://127.0.0.1:41234` (`https://` with `tls`). */
  readonly url: string;
  /** With `tls`: the certificate in PEM, which clients must trust (it is its own CA). */
  readonly ca?: string;
  readonly port: number;
  readonly tokens: EmulatorTokens;
  /** Current apps and environments (reflects `addEnvironment`). */
  readonly apps: EmulatorApp[];
  /** Encrypts and upserts a secret; bumps the environment's `updated_at`. */
  setSecret(input: SetSecretInput): SetSecretResult;
  /** Soft-deletes a secret by plaintext key; bumps `updated_at`. Returns whether it existed. */
  deleteSecret(input: DeleteSecretInput): boolean;
  /** Sets the user principal's personal override (does not bump `updated_at`, like the Console). */
  setOverride(input: SetOverrideInput): void;
  /** Injects a fault into matching Phase API responses. */
  fault(spec: FaultSpec): FaultHandle;
  clearFaults(): void;
  /** Logged Phase API requests, oldest first (control routes are not logged). */
  requests(): RequestRecord[];
  clearRequests(): void;
  /** The token answers 403 on the tokens route and 401 on the secrets route from now on. */
  revokeToken(kind: TokenKind): void;
  /** Adds an environment (and the app if needed) and gives every token a key for it. */
  addEnvironment(app: string, env: string): { id: string; name: string };
  /** Decrypts the stored live secrets of an environment. */
  readPlain(app: string, env: string): PlainSecret[];
  /** The full state, JSON-serialisable, for `startEmulator({ state })`. */
  snapshot(): EmulatorState;
  /** Stops listening and destroys every open connection, keep-alive ones included. */
  close(): Promise<void>;
}

function classify(pathname: string): RouteName {
  // `/service/X` and `/X` are the same route; trailing slashes are optional.
  const path = pathname.replace(/^\/service(?=\/|$)/, '').replace(/\/+$/, '');
  switch (path) {
    case '/secrets/tokens':
      return 'tokens';
    case '/secrets':
      return 'secrets';
    case '/health':
      return 'health';
    default:
      return 'other';
  }
}

/** Keeps the scheme and the type word of `Authorization` (`Bearer ServiceAccount [redacted]`), never the token. */
export function redactAuthorization(value: string): string {
  const parts = value.split(' ');
  const kept = parts.length >= 3 ? parts.slice(0, 2) : parts.slice(0, 1);
  return [...kept, '[redacted]'].join(' ');
}

function recordHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const text = Array.isArray(value) ? value.join(', ') : value;
    out[name] = name === 'authorization' ? redactAuthorization(text) : text;
  }
  return out;
}

function parseForLog(raw: string): unknown {
  if (raw === '') return null;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', () => resolve(size > MAX_BODY_BYTES ? undefined : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, response: ApiResponse): void {
  if (res.destroyed || res.headersSent) return;
  const text = response.body === undefined ? '' : JSON.stringify(response.body);
  const headers: Record<string, string | number> = {
    'Content-Length': Buffer.byteLength(text),
    ...response.headers,
  };
  if (response.body !== undefined) headers['Content-Type'] = 'application/json';
  res.writeHead(response.status, headers);
  res.end(text);
}

/**
 * Starts an emulator on a real socket.
 *
 * @example
 * const emu = await startEmulator({ seed: { apps: [{ name: 'shop', environments: [{ name: 'Production' }] }] } });
 * const phase = new Phase(emu.tokens.serviceAccount, emu.url);
 * await emu.close();
 */
export async function startEmulator(options: StartEmulatorOptions = {}): Promise<Emulator> {
  await initCrypto();
  const store = options.state ? Store.fromState(options.state) : Store.fromSeed(options.seed ?? { apps: [] });
  const faults = new FaultRegistry();
  const log: RequestRecord[] = [];
  const closing = new AbortController();
  const strict = options.strict ?? false;
  const host = options.host ?? '127.0.0.1';
  let url = '';

  const core: EmulatorCore = {
    info: () => ({ url, tokens: store.tokens(), apps: store.apps() }),
    setSecret: (input) => store.setSecret(input),
    deleteSecret: (input) => store.deleteSecret(input),
    setOverride: (input) => store.setOverride(input),
    addFault: (spec) => faults.add(spec),
    removeFault: (id) => faults.remove(id),
    clearFaults: () => faults.clear(),
    requests: () => structuredClone(log),
    clearRequests: () => void log.splice(0),
    revokeToken: (kind) => store.revokeToken(kind),
    addEnvironment: (app, env) => store.addEnvironment(app, env),
    readPlain: (app, env) => store.readPlain(app, env),
    snapshot: () => store.snapshot(),
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = performance.now();
    const time = new Date().toISOString();
    const method = req.method ?? 'GET';
    const parsed = new URL(req.url ?? '/', 'http://emulator.invalid');
    const raw = await readBody(req);
    if (raw === undefined) return send(res, { status: 413, body: { error: 'Request body too large.' } });

    if (parsed.pathname === CONTROL_PREFIX || parsed.pathname.startsWith(`${CONTROL_PREFIX}/`)) {
      const route = parsed.pathname.slice(CONTROL_PREFIX.length).replace(/\/+$/, '');
      return send(res, handleControl(core, method, route, parsed.searchParams, raw));
    }

    const route = classify(parsed.pathname);
    const record: RequestRecord = {
      method,
      path: parsed.pathname,
      route,
      query: Object.fromEntries(parsed.searchParams),
      headers: recordHeaders(req.headers),
      body: parseForLog(raw),
      status: 0,
      faulted: false,
      time,
      durationMs: 0,
    };
    log.push(record);
    const finish = (status: number): void => {
      record.status = status;
      record.durationMs = Math.round((performance.now() - started) * 1000) / 1000;
      options.logger?.info({ method, path: parsed.pathname, status, ms: Math.round(record.durationMs) });
    };

    const fault = faults.take(route, method);
    if (fault) {
      record.faulted = true;
      if (fault.delayMs) {
        try {
          await sleep(fault.delayMs, undefined, { signal: closing.signal });
        } catch {
          return; // The emulator is closing; its sockets are being destroyed.
        }
      }
      if (fault.reset) {
        req.socket.destroy();
        return finish(0);
      }
      if (fault.malformed) {
        const text = malformedBody(route);
        if (!res.destroyed) {
          res.writeHead(200, {
            'Content-Type': 'application/json',
            'Content-Length': Buffer.byteLength(text),
          });
          res.end(text);
        }
        return finish(200);
      }
      const status = faultStatus(fault);
      if (status !== undefined) {
        const headers: Record<string, string> = {};
        if (fault.retryAfter !== undefined) headers['Retry-After'] = String(fault.retryAfter);
        send(res, { status, body: faultBody(status, fault.retryAfter), headers });
        return finish(status);
      }
    }

    const response = handleApi(
      store,
      { method, route, headers: req.headers, query: parsed.searchParams, rawBody: raw },
      { strict },
    );
    send(res, response);
    finish(response.status);
  };

  const credentials = options.tls === true ? await generateCertificate() : options.tls || undefined;
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch(() => send(res, { status: 500, body: { error: 'Internal server error.' } }));
  };
  const server = credentials
    ? createHttpsServer({ cert: credentials.cert, key: credentials.key }, listener)
    : createServer(listener);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  url = `${credentials ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;

  let closed: Promise<void> | undefined;
  const emulator: Emulator = {
    url,
    port,
    ...(credentials ? { ca: credentials.cert } : {}),
    tokens: store.tokens(),
    get apps() {
      return store.apps();
    },
    setSecret: core.setSecret,
    deleteSecret: core.deleteSecret,
    setOverride: core.setOverride,
    fault: (spec) => {
      const id = faults.add(validateFaultSpec(spec));
      return { clear: () => faults.remove(id) };
    },
    clearFaults: core.clearFaults,
    requests: core.requests,
    clearRequests: core.clearRequests,
    revokeToken: core.revokeToken,
    addEnvironment: core.addEnvironment,
    readPlain: core.readPlain,
    snapshot: core.snapshot,
    close: () => {
      closed ??= new Promise<void>((resolve) => {
        closing.abort();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
  return emulator;
}
