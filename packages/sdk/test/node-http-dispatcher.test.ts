import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { startEmulator, type Emulator } from '@phasekit/emulator';
import type { Dispatcher } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NodeHttpDispatcher, PhaseClient } from '../src/index.js';

// The dispatcher against real servers: the emulator for the client's reads, and a plain node:http server for the
// HTTP edge cases (the fault matrix in faults.test.ts runs through it too).

interface Outcome {
  status?: number;
  headers?: Record<string, string | string[] | undefined>;
  body: string;
  ended: boolean;
  errors: Error[];
}

/** Dispatches one request and resolves when the handler has heard its end or its error. */
function send(
  dispatcher: Dispatcher,
  options: Partial<Dispatcher.DispatchOptions> & { path: string },
  onStart?: (controller: Dispatcher.DispatchController) => void,
): Promise<Outcome> {
  return new Promise((resolve) => {
    const outcome: Outcome = { body: '', ended: false, errors: [] };
    const chunks: Buffer[] = [];
    dispatcher.dispatch(
      { origin: server.url, method: 'GET', ...options },
      {
        onRequestStart(controller) {
          onStart?.(controller);
        },
        onResponseStart(_controller, status, headers) {
          outcome.status = status;
          outcome.headers = headers;
        },
        onResponseData(_controller, chunk) {
          chunks.push(chunk);
        },
        onResponseEnd() {
          outcome.ended = true;
          outcome.body = Buffer.concat(chunks).toString('utf8');
          resolve(outcome);
        },
        onResponseError(_controller, error) {
          outcome.errors.push(error);
          outcome.body = Buffer.concat(chunks).toString('utf8');
          // A second report would land here after the resolve: the test reads `errors` again to catch it.
          setTimeout(() => resolve(outcome), 50);
        },
      },
    );
  });
}

let server: { url: string; connections: number; sockets: Set<Socket>; close: () => Promise<void> };
let routes: Record<string, (req: IncomingMessage, res: ServerResponse, body: string) => void>;

beforeAll(async () => {
  const http: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => (routes[req.url ?? ''] ?? ((_q, r) => r.writeHead(404).end()))(req, res, body));
  });
  const sockets = new Set<Socket>();
  const state = { connections: 0 };
  http.on('connection', (socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  server = {
    url: `http://127.0.0.1:${port}`,
    get connections() {
      return state.connections;
    },
    sockets,
    close: () =>
      new Promise((resolve) => {
        http.closeAllConnections();
        http.close(() => resolve());
      }),
  };
});

afterAll(async () => {
  await server.close();
});

const dispatchers: NodeHttpDispatcher[] = [];
function dispatcher(options?: ConstructorParameters<typeof NodeHttpDispatcher>[0]): NodeHttpDispatcher {
  const d = new NodeHttpDispatcher(options);
  dispatchers.push(d);
  return d;
}
afterEach(async () => {
  await Promise.all(dispatchers.splice(0).map((d) => d.destroy()));
  routes = {};
});

describe('NodeHttpDispatcher', () => {
  it('reads the same secrets for a PhaseClient as undici does', async () => {
    const emulator: Emulator = await startEmulator({
      seed: {
        apps: [
          {
            name: 'shop',
            environments: [
              {
                name: 'Production',
                secrets: [
                  { key: 'A', value: 'alpha', comment: 'first' },
                  { key: 'B', value: 'ünïcødé ✓ "quoted"\nsecond line' },
                  { key: 'BIG', value: 'x'.repeat(300_000) },
                ],
              },
            ],
          },
        ],
      },
    });
    const viaNode = new PhaseClient({
      token: emulator.tokens.serviceAccount,
      host: emulator.url,
      env: {},
      dispatcher: dispatcher(),
    });
    const viaUndici = new PhaseClient({ token: emulator.tokens.serviceAccount, host: emulator.url, env: {} });
    try {
      const query = { app: 'shop', env: 'Production' };
      const [mine, theirs] = [await viaNode.getSecrets(query), await viaUndici.getSecrets(query)];
      expect(mine).toEqual(theirs);
      expect(mine.map((s) => s.key).sort()).toEqual(['A', 'B', 'BIG']);
      expect(mine.find((s) => s.key === 'BIG')?.value).toHaveLength(300_000);
    } finally {
      await Promise.all([viaNode.close(), viaUndici.close()]);
      await emulator.close();
    }
  });

  it('keeps one connection alive across requests', async () => {
    routes = { '/ok': (_req, res) => res.end('ok') };
    const d = dispatcher();
    const before = server.connections;
    for (let i = 0; i < 3; i++)
      expect(await send(d, { path: '/ok' })).toMatchObject({ status: 200, body: 'ok' });
    expect(server.connections - before).toBe(1);
  });

  it('sends a string body with headers given as an object or as a flat array', async () => {
    routes = {
      '/echo': (req, res, body) =>
        res.end(
          JSON.stringify({
            method: req.method,
            type: req.headers['content-type'],
            x: req.headers['x-a'],
            body,
          }),
        ),
    };
    const d = dispatcher();
    const asObject = await send(d, {
      path: '/echo',
      method: 'POST',
      headers: { 'content-type': 'application/json', 'X-A': 'one' },
      body: '{"k":1}',
    });
    expect(JSON.parse(asObject.body)).toEqual({
      method: 'POST',
      type: 'application/json',
      x: 'one',
      body: '{"k":1}',
    });
    const asArray = await send(d, {
      path: '/echo',
      method: 'PUT',
      headers: ['content-type', 'text/plain', 'x-a', 'two'],
      body: Buffer.from('bytes'),
    });
    expect(JSON.parse(asArray.body)).toEqual({ method: 'PUT', type: 'text/plain', x: 'two', body: 'bytes' });
  });

  it('reports a connection lost mid-body as an error, never as a short body', async () => {
    routes = {
      '/cut': (_req, res) => {
        res.writeHead(200, { 'content-length': '100' });
        res.write('only ten..');
        setTimeout(() => res.socket?.destroy(), 20);
      },
    };
    const outcome = await send(dispatcher(), { path: '/cut' });
    expect(outcome.ended).toBe(false);
    expect(outcome.errors).toHaveLength(1);
    expect(outcome.errors[0]).toMatchObject({ code: 'ECONNRESET' });
  });

  it('abort ends the request at once, tells the handler once, and drops the connection', async () => {
    routes = { '/never': () => {} };
    const before = server.sockets.size;
    const started = performance.now();
    const outcome = await send(dispatcher(), { path: '/never' }, (controller) => {
      setTimeout(() => controller.abort(new Error('stop')), 50);
    });
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(outcome.errors.map((e) => e.message)).toEqual(['stop']);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.sockets.size).toBe(before);
  });

  it('close lets requests in flight finish, then refuses new ones and closes its connections', async () => {
    routes = { '/slow': (_req, res) => setTimeout(() => res.end('late'), 150) };
    const d = dispatcher();
    const inFlight = send(d, { path: '/slow' });
    await new Promise((resolve) => setTimeout(resolve, 20));
    await d.close();
    expect(await inFlight).toMatchObject({ status: 200, body: 'late', ended: true });
    const refused = await send(d, { path: '/slow' });
    expect(refused.errors[0]).toMatchObject({ code: 'UND_ERR_DESTROYED' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.sockets.size).toBe(0);
  });

  it('destroy ends every request at once, one still waiting for a connection included', async () => {
    routes = { '/never': () => {} };
    const d = dispatcher({ connections: 1 });
    const both = [send(d, { path: '/never' }), send(d, { path: '/never' })];
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = performance.now();
    await d.destroy();
    for (const outcome of await Promise.all(both)) {
      expect(outcome.ended).toBe(false);
      expect(outcome.errors).toHaveLength(1);
      expect(outcome.errors[0]).toMatchObject({ code: 'UND_ERR_DESTROYED' });
    }
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('speaks HTTPS and verifies the server, trusting a private CA only when NODE_EXTRA_CA_CERTS names it', async () => {
    const cert = fileURLToPath(new URL('./fixtures/tls-cert.pem', import.meta.url));
    const key = fileURLToPath(new URL('./fixtures/tls-key.pem', import.meta.url));
    const tls = createHttpsServer({ cert: readFileSync(cert), key: readFileSync(key) }, (_req, res) =>
      res.end('over tls'),
    );
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    const { port } = tls.address() as AddressInfo;
    // A fresh process, because Node reads NODE_EXTRA_CA_CERTS at start-up; it uses the built SDK.
    const sdk = new URL('../dist/index.js', import.meta.url).href;
    const script = `
      const { NodeHttpDispatcher } = await import(${JSON.stringify(sdk)});
      const d = new NodeHttpDispatcher();
      const chunks = [];
      d.dispatch({ origin: 'https://127.0.0.1:${port}', path: '/', method: 'GET' }, {
        onRequestStart() {},
        onResponseStart(_c, status) { chunks.push(status + ' '); },
        onResponseData(_c, chunk) { chunks.push(chunk.toString()); },
        onResponseEnd() { console.log(chunks.join('')); d.close(); },
        onResponseError(_c, error) { console.log('error ' + error.code); d.close(); },
      });`;
    const run = (env: Record<string, string | undefined>) =>
      new Promise<string>((resolve, reject) =>
        execFile(
          process.execPath,
          ['--input-type=module', '-e', script],
          { env: { ...process.env, NODE_EXTRA_CA_CERTS: undefined, ...env }, timeout: 20_000 },
          (error, stdout) =>
            error ? reject(new Error('the HTTPS child failed', { cause: error })) : resolve(stdout.trim()),
        ),
      );
    try {
      expect(await run({ NODE_EXTRA_CA_CERTS: cert })).toBe('200 over tls');
      expect(await run({})).toMatch(/^error [A-Z_]*(CERT|SIGNATURE)[A-Z_]*$/);
    } finally {
      tls.closeAllConnections();
      await new Promise((resolve) => tls.close(resolve));
    }
  });

  it("serves handlers of undici's older callback API", async () => {
    routes = { '/ok': (_req, res) => res.end('legacy') };
    const d = dispatcher();
    const result = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      let status = 0;
      let body = '';
      d.dispatch(
        { origin: server.url, path: '/ok', method: 'GET' },
        {
          onConnect() {},
          onHeaders(statusCode: number) {
            status = statusCode;
            return true;
          },
          onData(chunk: Buffer) {
            body += chunk.toString();
            return true;
          },
          onComplete() {
            resolve({ status, body });
          },
          onError: reject,
        },
      );
    });
    expect(result).toEqual({ status: 200, body: 'legacy' });
  });

  it('refuses a streamed request body with an error that says so', async () => {
    const outcome = await send(dispatcher(), {
      path: '/echo',
      method: 'POST',
      body: Readable.from(['a']),
    });
    expect(outcome.errors[0]?.message).toBe('this dispatcher sends string or byte bodies only');
  });
});
