// The transport's body handling over a real socket: a large body announced by Content-Length is received into one
// buffer of that size; a chunked body (no length) is gathered and joined; both come out byte for byte.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Transport } from '../src/internal/http.js';

const rows = Array.from({ length: 2_000 }, (_, i) => ({
  id: i,
  key: `KEY_${i}`,
  value: `välue-${i}-${'x'.repeat(90)}`,
}));
const text = JSON.stringify(rows);
const bytes = Buffer.from(text, 'utf8');
let mode: 'length' | 'chunked' = 'length';
let server: Server;
let transport: Transport;

beforeAll(async () => {
  server = createServer((_req, res) => {
    if (mode === 'length') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(bytes.length) });
      res.end(bytes);
      return;
    }
    // No Content-Length: Node sends chunked encoding; write in pieces that split multi-byte characters.
    res.writeHead(200, { 'content-type': 'application/json' });
    for (let at = 0; at < bytes.length; at += 7_777) res.write(bytes.subarray(at, at + 7_777));
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  transport = new Transport({
    host: `http://127.0.0.1:${port}`,
    authorization: 'Bearer test',
    userAgent: 'phasekit-test',
    timeoutMs: 5_000,
    totalTimeoutMs: 10_000,
    retries: 0,
    logger: { debug() {}, info() {}, warn() {}, error() {} },
    secrets: [],
  });
});
afterAll(async () => {
  await transport.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('response bodies', () => {
  it('receives a large body announced by Content-Length whole, byte for byte', async () => {
    mode = 'length';
    expect(bytes.length).toBeGreaterThan(64 * 1024);
    const body = await transport.send({ method: 'GET', route: 'tokens' }, (_route, raw) => Buffer.from(raw));
    expect(body.equals(bytes)).toBe(true);
    expect(await transport.send({ method: 'GET', route: 'tokens' })).toEqual(rows);
  });

  it('joins a chunked body (no Content-Length) whose pieces split multi-byte characters', async () => {
    mode = 'chunked';
    const body = await transport.send({ method: 'GET', route: 'tokens' }, (_route, raw) => Buffer.from(raw));
    expect(body.equals(bytes)).toBe(true);
    expect(await transport.send({ method: 'GET', route: 'tokens' })).toEqual(rows);
  });
});
