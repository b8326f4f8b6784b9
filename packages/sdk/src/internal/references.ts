import { ErrorCode, PhaseError, type ReferenceFailure } from '../errors.js';

/** A secret before its references are resolved. */
export interface RawValue {
  readonly key: string;
  readonly value: string;
  /** The folder holding it, when it differs from the query's. */
  readonly path?: string;
}

/** Where a reference points. */
export interface RefTarget {
  readonly appId: string;
  readonly envId: string;
  readonly path: string;
  readonly key: string;
}

/** Names for messages, and lookups the resolver needs from the client. */
export interface ResolverHost {
  /** The environment's id by name (case-insensitive) inside an app; undefined when unknown or unreachable. */
  envByName(appId: string, name: string): string | undefined;
  /** The ids of apps with this name (case-insensitive). */
  appsByName(name: string): readonly string[];
  /** Human-readable `app/env` for messages. */
  describe(appId: string, envId: string): string;
  /** All secrets (unresolved) of one folder. Called at most once per (app, env, path) per resolution. */
  fetchFolder(appId: string, envId: string, path: string): Promise<readonly RawValue[]>;
}

const REF_RE = /\$\{(?!\{)([^{}]+)\}/g;
const MAX_DEPTH = 25;

/** Normalises a folder path as the server does: collapse `//`, leading `/`, no trailing `/`. */
export function normalisePath(path: string): string {
  const parts = path.split('/').filter((p) => p.length > 0);
  return `/${parts.join('/')}`;
}

/** Parses the inside of `${...}` (phase-protocol.md 5.2) relative to the secret that holds it. */
export function parseReference(
  inner: string,
  origin: { appId: string; envId: string },
  host: ResolverHost,
  holder: string,
): RefTarget {
  let appId = origin.appId;
  let envId = origin.envId;
  let rest = inner;
  const fail = (why: string, reason: ReferenceFailure = 'unreachable') =>
    new PhaseError(ErrorCode.REFERENCE, `secret ${holder} references \${${inner}}, ${why}`, { reason });
  const appSep = rest.indexOf('::');
  if (appSep !== -1) {
    const appName = rest.slice(0, appSep);
    rest = rest.slice(appSep + 2);
    const ids = host.appsByName(appName);
    if (ids.length === 0) throw fail(`but app ${appName} is not reachable with this token`);
    if (ids.length > 1) throw fail(`but the app name ${appName} is ambiguous (ids ${ids.join(', ')})`);
    appId = ids[0]!;
    if (!rest.includes('.'))
      throw fail('but a cross-app reference needs an environment (app::env.KEY)', 'malformed');
  }
  const dot = rest.indexOf('.');
  if (!rest.startsWith('/') && dot !== -1) {
    const envName = rest.slice(0, dot);
    rest = rest.slice(dot + 1);
    const found = host.envByName(appId, envName);
    if (found === undefined) throw fail(`but environment ${envName} is not reachable with this token`);
    envId = found;
  }
  const slash = rest.lastIndexOf('/');
  const path = slash === -1 ? '/' : normalisePath(rest.slice(0, slash));
  const key = slash === -1 ? rest : rest.slice(slash + 1);
  if (key.length === 0) throw fail('which names no key', 'malformed');
  return { appId, envId, path, key };
}

/**
 * Resolves `${...}` references in every value. Substitution is literal (a value with `$$` or `$&` is
 * kept as is), cycles are detected, each referenced folder is fetched once, and a missing reference is
 * a REFERENCE error naming the reference, never a value.
 */
export async function resolveReferences(
  secrets: readonly RawValue[],
  origin: { appId: string; envId: string; path: string },
  host: ResolverHost,
  known: ReadonlyMap<string, readonly RawValue[]>,
  /** `keep`: a reference to a missing or unreachable key stays literally in the value instead of failing. */
  onMissing: 'fail' | 'keep' = 'fail',
): Promise<{ values: string[]; dependencies: Set<string> }> {
  const folders = new Map<string, Promise<Map<string, string>>>();
  for (const [id, list] of known) folders.set(id, Promise.resolve(toMap(list)));
  // Only finished results are shared: sharing in-flight promises could deadlock on a cycle.
  const resolved = new Map<string, string>();
  const dependencies = new Set<string>([origin.envId]);

  const folder = (t: { appId: string; envId: string; path: string }): Promise<Map<string, string>> => {
    const id = folderId(t.appId, t.envId, t.path);
    let entry = folders.get(id);
    if (!entry) {
      entry = host.fetchFolder(t.appId, t.envId, t.path).then(toMap);
      folders.set(id, entry);
    }
    return entry;
  };

  const resolveValue = async (
    value: string,
    at: { appId: string; envId: string },
    holder: string,
    chain: readonly string[],
  ): Promise<string> => {
    const refs = [...value.matchAll(REF_RE)].map((m) => m[1]!);
    if (refs.length === 0) return value;
    const replacements = new Map<string, string>();
    for (const inner of new Set(refs)) {
      let target: RefTarget;
      try {
        target = parseReference(inner, at, host, holder);
      } catch (error) {
        if (onMissing === 'keep' && error instanceof PhaseError && error.reason === 'unreachable') continue;
        throw error;
      }
      dependencies.add(target.envId);
      const targetId = `${folderId(target.appId, target.envId, target.path)}#${target.key}`;
      if (chain.includes(targetId) || chain.length >= MAX_DEPTH) {
        throw new PhaseError(
          ErrorCode.REFERENCE,
          `secret ${holder} references \${${inner}}, which leads back to itself (reference cycle)`,
          { reason: 'cycle' },
        );
      }
      const values = await folder(target);
      const raw = values.get(target.key) ?? values.get(target.key.toUpperCase());
      if (raw === undefined) {
        if (onMissing === 'keep') continue;
        throw new PhaseError(
          ErrorCode.REFERENCE,
          `secret ${holder} references \${${inner}}, but ${target.key} does not exist in ${host.describe(target.appId, target.envId)} at path ${target.path}`,
          { reason: 'missing' },
        );
      }
      let done = resolved.get(targetId);
      if (done === undefined) {
        done = await resolveValue(raw, target, target.key, [...chain, targetId]);
        resolved.set(targetId, done);
      }
      replacements.set(inner, done);
    }
    // A replacer function keeps `$&`, `$$` and friends in values literal.
    return value.replace(REF_RE, (whole, inner: string) => replacements.get(inner) ?? whole);
  };

  const values = await Promise.all(
    secrets.map((s) =>
      resolveValue(s.value, origin, s.key, [
        `${folderId(origin.appId, origin.envId, s.path ?? origin.path)}#${s.key}`,
      ]),
    ),
  );
  return { values, dependencies };
}

export function folderId(appId: string, envId: string, path: string): string {
  return `${appId}|${envId}|${path}`;
}

function toMap(list: readonly RawValue[]): Map<string, string> {
  return new Map(list.map((s) => [s.key, s.value]));
}
