import { addAbortListener } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@phasekit/sdk';

/** The SDK's one Logger type (pino-shaped: facts first, then the message); kept under this name for callers. */
export type HealthLogger = Logger;

/** Whether the sidecar is ready, and if not, a short reason such as `waiting for first snapshot`. */
export interface Readiness {
  ready: boolean;
  /** Shown as the `/readyz` body when not ready. Never a secret value. */
  reason?: string;
}

/** Options for {@link startHealthServer}. */
export interface HealthServerOptions {
  /** Address to listen on, e.g. `0.0.0.0`, `::` or `127.0.0.1`. */
  host: string;
  /** Port to listen on; `0` picks a free one (see {@link HealthServer.port}). */
  port: number;
  /** Metrics served on `/metrics`, usually from `createMetrics()`. */
  metrics: { readonly registry: { metrics(): Promise<string>; readonly contentType: string } };
  /** Called on every `/readyz`. */
  readiness: () => Readiness;
  logger: HealthLogger;
  /** Closes the server when aborted. */
  signal?: AbortSignal;
}

/** A running health server. */
export interface HealthServer {
  /** Base URL, e.g. `http://127.0.0.1:9090`. */
  readonly url: string;
  /** The port actually bound. */
  readonly port: number;
  /** Stop listening and close every connection, keep-alive ones included. Safe to call twice. */
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': String(Buffer.byteLength(body)),
    ...headers,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/**
 * Serve `/healthz` (alive), `/readyz` (200 when ready, else 503 with the reason) and `/metrics` (Prometheus
 * text). Resolves once listening; rejects when the address cannot be bound.
 */
export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const { logger, metrics, readiness } = options;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== '/healthz' && path !== '/readyz' && path !== '/metrics') {
      send(res, 404, 'not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'method not allowed\n', { allow: 'GET, HEAD' });
      return;
    }
    switch (path) {
      case '/healthz':
        send(res, 200, 'ok');
        return;
      case '/readyz': {
        let state: Readiness;
        try {
          state = readiness();
        } catch (error) {
          logger.error({ err: error }, 'readiness check threw');
          state = { ready: false, reason: 'readiness check failed' };
        }
        if (state.ready) send(res, 200, 'ok');
        else send(res, 503, state.reason ?? 'not ready');
        return;
      }
      case '/metrics': {
        const text = await metrics.registry.metrics();
        send(res, 200, text, { 'content-type': metrics.registry.contentType });
        return;
      }
    }
  }

  const server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
    handle(req, res).catch((error: unknown) => {
      logger.error({ err: error, path: (req.url ?? '/').split('?', 1)[0] }, 'health request failed');
      if (!res.headersSent) send(res, 500, 'internal error\n');
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error & { code?: string }) => {
      reject(
        new Error(
          `Cannot serve health checks on ${options.host}:${options.port}: ${error.code ?? error.message}`,
          {
            cause: error,
          },
        ),
      );
    };
    server.once('error', onError);
    server.listen(options.port, options.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (error) => logger.error({ err: error }, 'health server error'));

  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  logger.info({ url }, 'health server listening');

  let closed: Promise<void> | undefined;
  let stopListening: Disposable | undefined;
  const close = (): Promise<void> => {
    closed ??= new Promise<void>((resolve) => {
      stopListening?.[Symbol.dispose]();
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closed;
  };

  // Fires at once when the signal is already aborted.
  if (options.signal) stopListening = addAbortListener(options.signal, () => void close());

  return { url, port: address.port, close };
}
