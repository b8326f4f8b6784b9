/**
 * The test-control API under `/__phasekit/…` (server side) and `connectEmulator`, its typed client, so tests in
 * another process (an agent under test, a CLI run) can drive the same emulator.
 */
import type { ApiResponse } from './api.js';
import { validateFaultSpec } from './faults.js';
import type { EmulatorState } from './state.js';
import type {
  DeleteSecretInput,
  EmulatorInfo,
  FaultSpec,
  PlainSecret,
  RequestRecord,
  SecretType,
  SetOverrideInput,
  SetSecretInput,
  SetSecretResult,
  TokenKind,
} from './types.js';

/** URL prefix of every control route. */
export const CONTROL_PREFIX = '/__phasekit';

/** What the control routes drive; implemented by the running emulator. */
export interface EmulatorCore {
  info: () => EmulatorInfo;
  setSecret: (input: SetSecretInput) => SetSecretResult;
  deleteSecret: (input: DeleteSecretInput) => boolean;
  setOverride: (input: SetOverrideInput) => void;
  addFault: (spec: FaultSpec) => string;
  removeFault: (id: string) => void;
  clearFaults: () => void;
  requests: () => RequestRecord[];
  clearRequests: () => void;
  revokeToken: (kind: TokenKind) => void;
  addEnvironment: (app: string, env: string) => { id: string; name: string };
  readPlain: (app: string, env: string) => PlainSecret[];
  snapshot: () => EmulatorState;
}

class BadInput extends Error {}

function object(raw: string): Record<string, unknown> {
  let data: unknown;
  try {
    data = raw.trim() === '' ? {} : JSON.parse(raw);
  } catch {
    throw new BadInput('body must be JSON');
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    throw new BadInput('body must be an object');
  return data as Record<string, unknown>;
}

function str(o: Record<string, unknown>, name: string): string {
  const value = o[name];
  if (typeof value !== 'string') throw new BadInput(`"${name}" must be a string`);
  return value;
}

function optStr(o: Record<string, unknown>, name: string): string | undefined {
  return o[name] === undefined ? undefined : str(o, name);
}

function secretRef(o: Record<string, unknown>): DeleteSecretInput {
  const ref: DeleteSecretInput = { app: str(o, 'app'), env: str(o, 'env'), key: str(o, 'key') };
  const path = optStr(o, 'path');
  if (path !== undefined) ref.path = path;
  return ref;
}

function setSecretInput(o: Record<string, unknown>): SetSecretInput {
  const input: SetSecretInput = { ...secretRef(o), value: str(o, 'value') };
  const comment = optStr(o, 'comment');
  if (comment !== undefined) input.comment = comment;
  const type = optStr(o, 'type');
  if (type !== undefined) input.type = type as SecretType;
  const tags = o['tags'];
  if (tags !== undefined) {
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) {
      throw new BadInput('"tags" must be a list of strings');
    }
    input.tags = tags;
  }
  return input;
}

/** Answers one control request; `route` is the path after {@link CONTROL_PREFIX}, without trailing slash. */
export function handleControl(
  core: EmulatorCore,
  method: string,
  route: string,
  query: URLSearchParams,
  rawBody: string,
): ApiResponse {
  const ok = (body: unknown = {}): ApiResponse => ({ status: 200, body });
  try {
    switch (`${method} ${route}`) {
      case 'GET /info':
        return ok(core.info());
      case 'GET /snapshot':
        return ok(core.snapshot());
      case 'POST /secrets':
        return ok(core.setSecret(setSecretInput(object(rawBody))));
      case 'DELETE /secrets':
        return ok({ deleted: core.deleteSecret(secretRef(object(rawBody))) });
      case 'POST /overrides': {
        const o = object(rawBody);
        if (typeof o['isActive'] !== 'boolean') throw new BadInput('"isActive" must be a boolean');
        core.setOverride({ ...secretRef(o), value: str(o, 'value'), isActive: o['isActive'] });
        return ok();
      }
      case 'POST /faults':
        return ok({ id: core.addFault(validateFaultSpec(object(rawBody))) });
      case 'DELETE /faults':
        core.clearFaults();
        return ok();
      case 'GET /requests':
        return ok(core.requests());
      case 'DELETE /requests':
        core.clearRequests();
        return ok();
      case 'POST /tokens/revoke':
        core.revokeToken(str(object(rawBody), 'kind') as TokenKind);
        return ok();
      case 'POST /environments': {
        const o = object(rawBody);
        return ok(core.addEnvironment(str(o, 'app'), str(o, 'env')));
      }
      case 'GET /plain':
        return ok(core.readPlain(query.get('app') ?? '', query.get('env') ?? ''));
    }
    const faultId = /^\/faults\/([^/]+)$/.exec(route)?.[1];
    if (method === 'DELETE' && faultId !== undefined) {
      core.removeFault(decodeURIComponent(faultId));
      return ok();
    }
    return { status: 404, body: { error: `unknown control route ${method} ${CONTROL_PREFIX}${route}` } };
  } catch (error) {
    return { status: 400, body: { error: error instanceof Error ? error.message : String(error) } };
  }
}

/** Async twin of the in-process emulator handle, for another process. */
export interface EmulatorClient {
  readonly url: string;
  /** URL, tokens and apps, as the CLI prints them. */
  info(): Promise<EmulatorInfo>;
  setSecret(input: SetSecretInput): Promise<SetSecretResult>;
  deleteSecret(input: DeleteSecretInput): Promise<boolean>;
  setOverride(input: SetOverrideInput): Promise<void>;
  fault(spec: FaultSpec): Promise<{ clear(): Promise<void> }>;
  clearFaults(): Promise<void>;
  requests(): Promise<RequestRecord[]>;
  clearRequests(): Promise<void>;
  revokeToken(kind: TokenKind): Promise<void>;
  addEnvironment(app: string, env: string): Promise<{ id: string; name: string }>;
  readPlain(app: string, env: string): Promise<PlainSecret[]>;
  snapshot(): Promise<EmulatorState>;
}

/**
 * A client for the control API of an emulator running elsewhere (for example one started by the CLI).
 *
 * @example
 * const emu = connectEmulator('http://127.0.0.1:4000');
 * await emu.setSecret({ app: 'shop', env: 'Production', key: 'FLAG', value: 'on' });
 */
export function connectEmulator(url: string): EmulatorClient {
  const base = url.replace(/\/+$/, '');
  const call = async <T>(method: string, route: string, body?: unknown): Promise<T> => {
    const init: RequestInit = { method, headers: { 'content-type': 'application/json' } };
    if (body !== undefined) init.body = JSON.stringify(body);
    const res = await fetch(`${base}${CONTROL_PREFIX}${route}`, init);
    const data: unknown = await res.json();
    if (!res.ok) {
      const message = (data as { error?: unknown } | null)?.error;
      throw new Error(
        `emulator control ${method} ${route}: ${typeof message === 'string' ? message : res.status}`,
      );
    }
    return data as T;
  };
  return {
    url: base,
    info: () => call('GET', '/info'),
    setSecret: (input) => call('POST', '/secrets', input),
    deleteSecret: async (input) => (await call<{ deleted: boolean }>('DELETE', '/secrets', input)).deleted,
    setOverride: async (input) => void (await call('POST', '/overrides', input)),
    fault: async (spec) => {
      const { id } = await call<{ id: string }>('POST', '/faults', spec);
      return { clear: async () => void (await call('DELETE', `/faults/${encodeURIComponent(id)}`)) };
    },
    clearFaults: async () => void (await call('DELETE', '/faults')),
    requests: () => call('GET', '/requests'),
    clearRequests: async () => void (await call('DELETE', '/requests')),
    revokeToken: async (kind) => void (await call('POST', '/tokens/revoke', { kind })),
    addEnvironment: (app, env) => call('POST', '/environments', { app, env }),
    readPlain: (app, env) => call('GET', `/plain?${new URLSearchParams({ app, env }).toString()}`),
    snapshot: () => call('GET', '/snapshot'),
  };
}
