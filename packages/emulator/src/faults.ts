/** Fault injection (phase-protocol.md 8.3): status codes, 429 + Retry-After, delays, resets, malformed bodies. */
import type { FaultSpec, RouteName } from './types.js';

/** A registered fault with its remaining budget. */
export interface ActiveFault {
  id: string;
  spec: FaultSpec;
  remaining: number;
}

/** Checks a fault spec from an untrusted source (the control API) and returns a clean copy. */
export function validateFaultSpec(raw: unknown): FaultSpec {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new Error('fault: expected an object');
  const input = raw as Record<string, unknown>;
  const allowed = new Set([
    'route',
    'method',
    'status',
    'retryAfter',
    'delayMs',
    'reset',
    'malformed',
    'count',
  ]);
  for (const name of Object.keys(input)) {
    if (!allowed.has(name)) throw new Error(`fault: unknown option "${name}"`);
  }
  const spec: FaultSpec = {};
  const route = input['route'];
  if (route !== undefined) {
    if (route !== 'tokens' && route !== 'secrets' && route !== 'any') {
      throw new Error('fault: "route" must be one of tokens, secrets, any');
    }
    spec.route = route;
  }
  if (input['method'] !== undefined) {
    if (typeof input['method'] !== 'string') throw new Error('fault: "method" must be a string');
    spec.method = input['method'];
  }
  const integer = (name: 'status' | 'retryAfter' | 'delayMs' | 'count', min: number, max: number): void => {
    const value = input[name];
    if (value === undefined) return;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new Error(
        `fault: "${name}" must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}`,
      );
    }
    spec[name] = value;
  };
  integer('status', 100, 599);
  integer('retryAfter', 0, 86_400);
  integer('delayMs', 0, 3_600_000);
  integer('count', 1, Number.MAX_SAFE_INTEGER);
  for (const name of ['reset', 'malformed'] as const) {
    const value = input[name];
    if (value === undefined) continue;
    if (typeof value !== 'boolean') throw new Error(`fault: "${name}" must be a boolean`);
    spec[name] = value;
  }
  return spec;
}

/** Ordered set of faults; the first match wins and uses up one of its `count`. */
export class FaultRegistry {
  #faults: ActiveFault[] = [];
  #nextId = 1;

  add(spec: FaultSpec): string {
    const id = String(this.#nextId++);
    this.#faults.push({ id, spec: { ...spec }, remaining: spec.count ?? Number.POSITIVE_INFINITY });
    return id;
  }

  remove(id: string): void {
    this.#faults = this.#faults.filter((f) => f.id !== id);
  }

  clear(): void {
    this.#faults = [];
  }

  /** Finds and consumes the first fault matching this request. */
  take(route: RouteName, method: string): FaultSpec | undefined {
    const fault = this.#faults.find((f) => {
      const wanted = f.spec.route ?? 'any';
      if (wanted !== 'any' && wanted !== route) return false;
      return f.spec.method === undefined || f.spec.method.toUpperCase() === method.toUpperCase();
    });
    if (!fault) return undefined;
    fault.remaining -= 1;
    if (fault.remaining <= 0) this.remove(fault.id);
    return fault.spec;
  }
}

/** The status an injected fault answers with, if any (429 when only `retryAfter` is set). */
export function faultStatus(spec: FaultSpec): number | undefined {
  return spec.status ?? (spec.retryAfter !== undefined ? 429 : undefined);
}

/** The JSON error body for an injected status, in the server's wording where one exists. */
export function faultBody(status: number, retryAfter: number | undefined): { error: string } {
  if (status === 429) {
    return { error: `Request was throttled. Expected available in ${retryAfter ?? 1} seconds.` };
  }
  if (status >= 500) return { error: 'Internal server error.' };
  return { error: `Injected fault (HTTP ${status})` };
}

/** A 200 body that starts like the real one and stops mid-string. */
export function malformedBody(route: RouteName): string {
  return route === 'tokens' ? '{"wrapped_key_share": "4f2a' : '[{"id": "0b6e';
}
