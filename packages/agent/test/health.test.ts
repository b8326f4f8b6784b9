import { request } from 'node:http';
import { collectDefaultMetrics, register as globalRegistry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { type HealthServer, type Readiness, startHealthServer } from '../src/health.js';
import { createMetrics } from '../src/metrics.js';

const logger = { debug() {}, info() {}, warn() {}, error() {} };
const PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8';

const servers: HealthServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(readiness: () => Readiness = () => ({ ready: true }), metrics = createMetrics()) {
  const server = await startHealthServer({ host: '127.0.0.1', port: 0, metrics, readiness, logger });
  servers.push(server);
  return { server, metrics };
}

async function get(url: string, init?: RequestInit) {
  const response = await fetch(url, init);
  return { status: response.status, type: response.headers.get('content-type'), body: await response.text() };
}

describe('metrics', () => {
  it('records every documented series on its own registry', async () => {
    const metrics = createMetrics({ now: () => 1_700_000_000_000 });
    metrics.syncResult('success', 0.42);
    metrics.syncResult('refused', 0.1);
    metrics.secrets(12);
    metrics.httpRequest('secrets', 200);
    metrics.httpRequest('tokens', 'error');
    metrics.notification('signal', 'success');
    metrics.notification('http', 'failure');
    const text = await metrics.registry.metrics();

    expect(text).toContain('phasekit_sync_total{result="success"} 1');
    expect(text).toContain('phasekit_sync_total{result="refused"} 1');
    expect(text).toContain('phasekit_sync_total{result="unchanged"} 0');
    expect(text).toContain('phasekit_sync_total{result="failure"} 0');
    expect(text).toContain('phasekit_sync_duration_seconds_count 2');
    expect(text).toContain('phasekit_sync_duration_seconds_bucket{le="0.5"} 2');
    expect(text).toContain('phasekit_last_success_timestamp_seconds 1700000000');
    expect(text).toContain('phasekit_secrets 12');
    expect(text).toContain('phasekit_http_requests_total{route="secrets",status="200"} 1');
    expect(text).toContain('phasekit_http_requests_total{route="tokens",status="error"} 1');
    expect(text).toContain('phasekit_notifications_total{method="signal",result="success"} 1');
    expect(text).toContain('phasekit_notifications_total{method="http",result="failure"} 1');
    // Process figures only when the caller supplies them (runtime metrics, below).
    expect(text).not.toContain('phasekit_process_cpu_seconds_total');

    // Never the global registry, and two instances do not clash.
    expect(await globalRegistry.metrics()).not.toContain('phasekit_');
    expect(() => createMetrics()).not.toThrow();
  });

  it("runs prom-client's default collectors only when the caller hands them in", async () => {
    const without = await createMetrics().registry.metrics();
    expect(without).not.toContain('phasekit_nodejs_eventloop_lag_seconds');
    const metrics = createMetrics({ collectDefaultMetrics });
    const text = await metrics.registry.metrics();
    expect(text).toContain('phasekit_nodejs_eventloop_lag_seconds');
    expect(text).toContain('phasekit_sync_total{result="success"} 0');
    // The collectors stay on the agent's registry, prefixed.
    expect(await globalRegistry.metrics()).not.toContain('phasekit_nodejs_eventloop_lag_seconds');
  });

  it('keeps labels to fixed sets, whatever a caller passes', async () => {
    const metrics = createMetrics();
    const canary = 'canary-value-4f9e1c7d';
    metrics.httpRequest(canary as 'other', canary as unknown as number);
    metrics.notification(canary as 'exec', canary as 'success');
    metrics.syncResult(canary as 'success', 1);
    const text = await metrics.registry.metrics();
    expect(text).not.toContain(canary);
    expect(text).toContain('phasekit_http_requests_total{route="other",status="error"} 1');
    expect(text).toContain('phasekit_sync_total{result="failure"} 1');
    expect(text).not.toContain('phasekit_process_');
  });

  it('stamps the last success for a sync that found nothing to change', async () => {
    let now = 1_000_000;
    const metrics = createMetrics({ now: () => now });
    metrics.syncResult('unchanged', 0.01);
    now = 2_000_000;
    metrics.syncResult('failure', 0.01);
    expect(await metrics.registry.metrics()).toContain('phasekit_last_success_timestamp_seconds 1000');
  });
});

describe('health server', () => {
  it('answers /healthz, /readyz through its transitions, /metrics and 404', async () => {
    let state: Readiness = { ready: false, reason: 'waiting for first snapshot' };
    const { server, metrics } = await start(() => state);
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
    expect(server.port).toBeGreaterThan(0);

    expect(await get(`${server.url}/healthz`)).toMatchObject({ status: 200, body: 'ok' });

    expect(await get(`${server.url}/readyz`)).toEqual({
      status: 503,
      type: 'text/plain; charset=utf-8',
      body: 'waiting for first snapshot',
    });
    state = { ready: true };
    expect(await get(`${server.url}/readyz`)).toMatchObject({ status: 200, body: 'ok' });
    state = { ready: false, reason: 'stale: last success 93s ago' };
    expect(await get(`${server.url}/readyz?verbose`)).toMatchObject({
      status: 503,
      body: 'stale: last success 93s ago',
    });
    state = { ready: false };
    expect(await get(`${server.url}/readyz`)).toMatchObject({ status: 503, body: 'not ready' });

    metrics.syncResult('success', 1.5);
    metrics.notification('exec', 'success');
    const scraped = await get(`${server.url}/metrics`);
    expect(scraped.status).toBe(200);
    expect(scraped.type).toBe(PROMETHEUS_TEXT);
    for (const series of [
      'phasekit_sync_total',
      'phasekit_sync_duration_seconds',
      'phasekit_last_success_timestamp_seconds',
      'phasekit_secrets',
      'phasekit_http_requests_total',
      'phasekit_notifications_total',
    ]) {
      expect(scraped.body).toContain(`# TYPE ${series} `);
    }
    expect(scraped.body).toContain('phasekit_notifications_total{method="exec",result="success"} 1');

    expect(await get(`${server.url}/`)).toMatchObject({ status: 404 });
    expect(await get(`${server.url}/healthz/extra`)).toMatchObject({ status: 404 });
    expect(await get(`${server.url}/healthz`, { method: 'POST' })).toMatchObject({ status: 405 });
    expect(await get(`${server.url}/readyz`, { method: 'HEAD' })).toMatchObject({ status: 503, body: '' });
    expect(await get(`${server.url}/healthz`, { method: 'HEAD' })).toMatchObject({ status: 200, body: '' });
  });

  it('reports a readiness check that throws as not ready', async () => {
    const { server } = await start(() => {
      throw new Error('boom');
    });
    expect(await get(`${server.url}/readyz`)).toMatchObject({ status: 503, body: 'readiness check failed' });
    expect(await get(`${server.url}/healthz`)).toMatchObject({ status: 200 });
  });

  it('closes promptly with a keep-alive connection open, and twice safely', async () => {
    const { server } = await start();
    // Hold a keep-alive connection open with a raw client.
    const agentResponse = await new Promise<number | undefined>((resolve, reject) => {
      const req = request(`${server.url}/healthz`, { headers: { connection: 'keep-alive' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
      req.on('error', reject);
      req.end();
    });
    expect(agentResponse).toBe(200);
    const started = Date.now();
    await server.close();
    await server.close();
    expect(Date.now() - started).toBeLessThan(1000);
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
  });

  it('closes when its signal aborts, and reports a port in use', async () => {
    const controller = new AbortController();
    const server = await startHealthServer({
      host: '127.0.0.1',
      port: 0,
      metrics: createMetrics(),
      readiness: () => ({ ready: true }),
      logger,
      signal: controller.signal,
    });
    servers.push(server);
    await expect(
      startHealthServer({
        host: '127.0.0.1',
        port: server.port,
        metrics: createMetrics(),
        readiness: () => ({ ready: true }),
        logger,
      }),
    ).rejects.toThrow(`Cannot serve health checks on 127.0.0.1:${server.port}: EADDRINUSE`);
    controller.abort();
    await server.close();
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
  });
});

describe('runtime metrics', () => {
  it('serves the process figures under the usual names, read at scrape time, and no default collectors', async () => {
    let reads = 0;
    const metrics = createMetrics({
      runtime: () => {
        reads++;
        return {
          residentBytes: 50_000_000,
          heapUsedBytes: 8_000_000,
          heapTotalBytes: 12_000_000,
          externalBytes: 1_000_000,
          cpuSeconds: 1.5,
          startTimeSeconds: 1_790_000_000.4,
        };
      },
    });
    expect(reads).toBe(0);
    const text = await metrics.registry.metrics();
    expect(reads).toBe(1);
    expect(text).toMatch(/^phasekit_process_resident_memory_bytes 50000000$/m);
    expect(text).toMatch(/^phasekit_process_cpu_seconds_total 1\.5$/m);
    expect(text).toMatch(/^phasekit_process_start_time_seconds 1790000000$/m);
    expect(text).toMatch(/^phasekit_nodejs_heap_size_used_bytes 8000000$/m);
    expect(text).toMatch(/^phasekit_nodejs_heap_size_total_bytes 12000000$/m);
    expect(text).toMatch(/^phasekit_nodejs_external_memory_bytes 1000000$/m);
    expect(text).toMatch(/^phasekit_nodejs_heap_space_size_total_bytes\{space="new"\} \d+$/m);
    // prom-client's collectors (event-loop lag, GC) are not running.
    expect(text).not.toMatch(/eventloop|gc_duration/);
    await metrics.registry.metrics();
    expect(reads).toBe(2);
  });
});
