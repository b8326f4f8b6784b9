import { getHeapSpaceStatistics } from 'node:v8';
import { Counter, Gauge, Histogram, Registry, type collectDefaultMetrics } from 'prom-client';

/** Outcome of one sync: written, nothing to write, failed, or refused by a guard (empty or shrunken set). */
export type SyncResult = 'success' | 'unchanged' | 'failure' | 'refused';
/** Which Phase API a request went to. Anything else is counted as `other`. */
export type HttpRoute = 'tokens' | 'secrets' | 'other';
/** How the app was told about a change. */
export type NotifyMethod = 'signal' | 'http' | 'exec';
/** Outcome of one notification. */
export type NotifyResult = 'success' | 'failure';

const SYNC_RESULTS: readonly SyncResult[] = ['success', 'unchanged', 'failure', 'refused'];
const HTTP_ROUTES: readonly HttpRoute[] = ['tokens', 'secrets', 'other'];
const NOTIFY_METHODS: readonly NotifyMethod[] = ['signal', 'http', 'exec'];
const NOTIFY_RESULTS: readonly NotifyResult[] = ['success', 'failure'];

/** Numbers about the running process, read when `/metrics` is scraped (the CLI supplies them from `process`). */
export interface RuntimeStats {
  readonly residentBytes: number;
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  readonly externalBytes: number;
  /** User plus system CPU time since the process started. */
  readonly cpuSeconds: number;
  /** Unix time the process started. */
  readonly startTimeSeconds: number;
}

/** Options for {@link createMetrics}. */
export interface MetricsOptions {
  /**
   * Process metrics computed at scrape time, under prom-client's names with the `phasekit_` prefix: resident memory,
   * CPU seconds, start time, heap used and total, external memory, and the size of each V8 heap space.
   * @default none
   */
  runtime?: () => RuntimeStats;
  /**
   * prom-client's `collectDefaultMetrics`, to also run its default collectors (event-loop lag, GC durations,
   * handles, ...), prefixed `phasekit_`. Off by default: their event-loop monitor wakes a mostly idle process every
   * few milliseconds (docs/benchmarks.md, item 5); {@link MetricsOptions.runtime} covers the process figures.
   * @default undefined (not run)
   */
  collectDefaultMetrics?: typeof collectDefaultMetrics;
  /**
   * Clock for `phasekit_last_success_timestamp_seconds`, in milliseconds since the epoch.
   * @default Date.now
   */
  now?: () => number;
}

/**
 * The agent's Prometheus metrics, on a registry of their own (never prom-client's global one). Every label is
 * drawn from a fixed set: no label ever carries a secret value, a key name or a token.
 */
export interface Metrics {
  /** The registry to scrape; serve `registry.metrics()` with `registry.contentType`. */
  readonly registry: Registry;
  /**
   * Count one sync and observe its duration, in seconds. `success` and `unchanged` (Phase answered, nothing
   * to write) also stamp `phasekit_last_success_timestamp_seconds`.
   */
  syncResult(result: SyncResult, seconds: number): void;
  /** Count one request to Phase; `status` is the HTTP status, or `'error'` when no response came back. */
  httpRequest(route: HttpRoute, status: number | 'error'): void;
  /** Count one notification of the app. */
  notification(method: NotifyMethod, result: NotifyResult): void;
  /** Set how many keys the current snapshot holds. */
  secrets(count: number): void;
}

function oneOf<T extends string>(allowed: readonly T[], value: unknown, fallback: T): T {
  return allowed.includes(value as T) ? (value as T) : fallback;
}

function statusLabel(status: unknown): string {
  return typeof status === 'number' && Number.isInteger(status) && status >= 100 && status <= 599
    ? String(status)
    : 'error';
}

/** Create the agent's metrics on a fresh {@link Registry}. */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  const now = options.now ?? Date.now;

  const syncTotal = new Counter({
    name: 'phasekit_sync_total',
    help: 'Syncs with Phase, by result (success, unchanged, failure, refused).',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const syncDuration = new Histogram({
    name: 'phasekit_sync_duration_seconds',
    help: 'Duration of one sync with Phase, retries included.',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const lastSuccess = new Gauge({
    name: 'phasekit_last_success_timestamp_seconds',
    help: 'Unix time of the last successful sync (written or unchanged).',
    registers: [registry],
  });
  const secretCount = new Gauge({
    name: 'phasekit_secrets',
    help: 'Number of keys in the current snapshot.',
    registers: [registry],
  });
  const httpRequests = new Counter({
    name: 'phasekit_http_requests_total',
    help: 'Requests to the Phase API, by route (tokens, secrets, other) and status code (or error).',
    labelNames: ['route', 'status'] as const,
    registers: [registry],
  });
  const notifications = new Counter({
    name: 'phasekit_notifications_total',
    help: 'Notifications of the app after a change, by method (signal, http, exec) and result.',
    labelNames: ['method', 'result'] as const,
    registers: [registry],
  });

  // Start every fixed series at zero so that rate() and alerts work before the first event.
  for (const result of SYNC_RESULTS) syncTotal.inc({ result }, 0);

  if (options.runtime) registerRuntimeMetrics(registry, options.runtime);
  options.collectDefaultMetrics?.({ register: registry, prefix: 'phasekit_' });

  return {
    registry,
    syncResult(result, seconds) {
      const label = oneOf(SYNC_RESULTS, result, 'failure');
      syncTotal.inc({ result: label });
      if (Number.isFinite(seconds) && seconds >= 0) syncDuration.observe(seconds);
      if (label === 'success' || label === 'unchanged') lastSuccess.set(now() / 1000);
    },
    httpRequest(route, status) {
      httpRequests.inc({ route: oneOf(HTTP_ROUTES, route, 'other'), status: statusLabel(status) });
    },
    notification(method, result) {
      if (!NOTIFY_METHODS.includes(method)) return;
      notifications.inc({ method, result: oneOf(NOTIFY_RESULTS, result, 'failure') });
    },
    secrets(count) {
      if (Number.isFinite(count) && count >= 0) secretCount.set(Math.trunc(count));
    },
  };
}

/** Process gauges read at scrape time: nothing runs between scrapes. */
function registerRuntimeMetrics(registry: Registry, read: () => RuntimeStats): void {
  let stats: RuntimeStats | undefined;
  // One reading per scrape, shared by the gauges below (collect() runs for each, in registration order).
  const fresh = (): RuntimeStats => (stats = read());
  const gauge = (name: string, help: string, value: (s: RuntimeStats) => number, first = false) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(value(first || stats === undefined ? fresh() : stats));
      },
    });
  gauge(
    'phasekit_process_resident_memory_bytes',
    'Resident memory size in bytes.',
    (s) => s.residentBytes,
    true,
  );
  gauge(
    'phasekit_process_cpu_seconds_total',
    'Total user and system CPU time spent in seconds.',
    (s) => s.cpuSeconds,
  );
  gauge(
    'phasekit_process_start_time_seconds',
    'Start time of the process since unix epoch in seconds.',
    (s) => Math.round(s.startTimeSeconds),
  );
  gauge(
    'phasekit_nodejs_heap_size_used_bytes',
    'Process heap size used from Node.js in bytes.',
    (s) => s.heapUsedBytes,
  );
  gauge(
    'phasekit_nodejs_heap_size_total_bytes',
    'Process heap size from Node.js in bytes.',
    (s) => s.heapTotalBytes,
  );
  gauge(
    'phasekit_nodejs_external_memory_bytes',
    'Node.js external memory size in bytes.',
    (s) => s.externalBytes,
  );
  new Gauge({
    name: 'phasekit_nodejs_heap_space_size_total_bytes',
    help: 'Process heap space size total from Node.js in bytes.',
    labelNames: ['space'] as const,
    registers: [registry],
    collect() {
      for (const space of getHeapSpaceStatistics()) {
        this.set({ space: space.space_name.replace(/_space$/, '') }, space.space_size);
      }
    },
  });
}
