// The PhaseSecret resource (secrets.phase.dev/v1alpha1) as Phase's operator v1 and v2 define it, read with the
// same defaults (phase-operator.md section 1), and the app and environment matching of section 13.
import type { AppInfo, EnvironmentInfo } from '@phasekit/sdk';
import type { KeyProcessor } from './transform.js';

export const GROUP = 'secrets.phase.dev';
export const VERSION = 'v1alpha1';
export const PLURAL = 'phasesecrets';
export const KIND = 'PhaseSecret';

/** Workloads carrying this annotation (any value, as Phase's operator checks only its presence) are restarted. */
export const REDEPLOY_ANNOTATION = 'secrets.phase.dev/redeploy';
/** On a PhaseSecret: `delete` makes its managed Secrets owned by it, so they go when it goes. Default `keep`. */
export const DELETION_POLICY_ANNOTATION = 'secrets.phasekit.dev/deletion-policy';
/** kopf's finalizer, left on PhaseSecrets by Phase's operator v1; removed so deletes do not hang. */
export const KOPF_FINALIZER = 'kopf.zalando.org/KopfFinalizerMarker';

export const DEFAULT_TOKEN_SECRET = 'phase-service-token';
export const DEFAULT_ENV = 'production';
export const DEFAULT_HOST = 'https://console.phase.dev';
export const DEFAULT_INTERVAL_S = 60;
export const MIN_INTERVAL_S = 5;

/** One `managedSecretReferences[]` entry, defaults applied. */
export interface ManagedSecretRef {
  readonly secretName: string;
  readonly secretNamespace: string;
  readonly secretType: string;
  readonly nameTransformer: string | undefined;
  readonly processors: Readonly<Record<string, KeyProcessor>>;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
}

/** A PhaseSecret's spec, defaults applied. */
export interface PhaseSecretSpec {
  readonly phaseApp: string | undefined;
  readonly phaseAppId: string | undefined;
  readonly phaseAppEnv: string;
  readonly phaseAppEnvPath: string;
  readonly phaseAppEnvTag: string | undefined;
  readonly phaseHost: string;
  readonly pollingIntervalS: number;
  readonly redeployLabelSelector: string | undefined;
  readonly onSecretReferenceError: 'Fail' | 'Warn';
  readonly tokenSecret: { readonly name: string; readonly namespace: string };
  readonly managedSecretReferences: readonly ManagedSecretRef[];
}

/** The metadata and spec of a PhaseSecret as the API returns it. */
export interface PhaseSecretObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    annotations?: Record<string, string>;
    finalizers?: string[];
    deletionTimestamp?: Date;
  };
  spec?: unknown;
  status?: unknown;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

function stringMap(v: unknown): Record<string, string> {
  if (!isRecord(v)) return {};
  return Object.fromEntries(Object.entries(v).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

/**
 * Reads a spec the API server accepted (the CRD validates types), applying Phase's defaults. Returns the problems
 * instead when something the CRD cannot express is wrong.
 */
export function parseSpec(
  spec: unknown,
  namespace: string,
): { ok: true; spec: PhaseSecretSpec } | { ok: false; problems: string[] } {
  const problems: string[] = [];
  const s = isRecord(spec) ? spec : {};
  const phaseApp = str(s['phaseApp']);
  const phaseAppId = str(s['phaseAppId']);
  if (phaseApp === undefined && phaseAppId === undefined)
    problems.push('spec.phaseApp or spec.phaseAppId is required');
  const auth = isRecord(s['authentication']) ? s['authentication'] : {};
  const serviceToken = isRecord(auth['serviceToken']) ? auth['serviceToken'] : {};
  const tokenRef = isRecord(serviceToken['serviceTokenSecretReference'])
    ? serviceToken['serviceTokenSecretReference']
    : {};
  const interval =
    typeof s['pollingInterval'] === 'number' ? Math.floor(s['pollingInterval']) : DEFAULT_INTERVAL_S;
  const onError = str(s['onSecretReferenceError']);
  const refs: ManagedSecretRef[] = [];
  const rawRefs = Array.isArray(s['managedSecretReferences']) ? s['managedSecretReferences'] : [];
  if (rawRefs.length === 0) problems.push('spec.managedSecretReferences needs at least one entry');
  rawRefs.forEach((raw: unknown, i) => {
    const r = isRecord(raw) ? raw : {};
    const secretName = str(r['secretName']);
    if (secretName === undefined) {
      problems.push(`spec.managedSecretReferences[${i}].secretName is required`);
      return;
    }
    const processors: Record<string, KeyProcessor> = {};
    if (isRecord(r['processors'])) {
      for (const [key, p] of Object.entries(r['processors'])) {
        if (!isRecord(p)) continue;
        processors[key] = {
          asName: str(p['asName']),
          nameTransformer: str(p['nameTransformer']),
          type: str(p['type']),
        };
      }
    }
    const template = isRecord(r['template']) ? r['template'] : {};
    const meta = isRecord(template['metadata']) ? template['metadata'] : {};
    refs.push({
      secretName,
      secretNamespace: str(r['secretNamespace']) ?? namespace,
      secretType: str(r['secretType']) ?? 'Opaque',
      nameTransformer: str(r['nameTransformer']),
      processors,
      labels: stringMap(meta['labels']),
      annotations: stringMap(meta['annotations']),
    });
  });
  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    spec: {
      phaseApp,
      phaseAppId,
      phaseAppEnv: str(s['phaseAppEnv']) ?? DEFAULT_ENV,
      phaseAppEnvPath: str(s['phaseAppEnvPath']) ?? '/',
      phaseAppEnvTag: str(s['phaseAppEnvTag']),
      phaseHost: (str(s['phaseHost']) ?? DEFAULT_HOST).replace(/\/+$/, ''),
      pollingIntervalS: Math.max(MIN_INTERVAL_S, interval),
      redeployLabelSelector: str(s['redeployLabelSelector']),
      onSecretReferenceError: onError?.toLowerCase() === 'warn' ? 'Warn' : 'Fail',
      tokenSecret: {
        name: str(tokenRef['secretName']) ?? DEFAULT_TOKEN_SECRET,
        namespace: str(tokenRef['secretNamespace']) ?? namespace,
      },
      managedSecretReferences: refs,
    },
  };
}

/** What matching chose, and whether it had to fall back to Phase's operator's substring rule. */
export type Match<T> =
  | { ok: true; value: T; bySubstring: boolean }
  | { ok: false; reason: 'none' | 'ambiguous'; candidates: string[] };

/**
 * Exact (case-insensitive) name first; else a case-insensitive substring, as Phase's operator matches, but only
 * when exactly one name contains it. An ambiguous name is an error listing the candidates.
 */
export function matchByName<T extends { readonly name: string }>(
  items: readonly T[],
  wanted: string,
): Match<T> {
  const lower = wanted.toLowerCase();
  const exact = items.filter((i) => i.name.toLowerCase() === lower);
  if (exact.length === 1) return { ok: true, value: exact[0]!, bySubstring: false };
  if (exact.length > 1) return { ok: false, reason: 'ambiguous', candidates: exact.map((i) => i.name) };
  const partial = items.filter((i) => i.name.toLowerCase().includes(lower));
  if (partial.length === 1) return { ok: true, value: partial[0]!, bySubstring: true };
  return {
    ok: false,
    reason: partial.length === 0 ? 'none' : 'ambiguous',
    candidates: partial.map((i) => i.name),
  };
}

/** The app of a spec: by id when given (exact), else by name. */
export function matchApp(apps: readonly AppInfo[], spec: PhaseSecretSpec): Match<AppInfo> {
  if (spec.phaseAppId !== undefined) {
    const app = apps.find((a) => a.id === spec.phaseAppId);
    return app === undefined
      ? { ok: false, reason: 'none', candidates: [] }
      : { ok: true, value: app, bySubstring: false };
  }
  return matchByName(apps, spec.phaseApp ?? '');
}

export function matchEnv(app: AppInfo, spec: PhaseSecretSpec): Match<EnvironmentInfo> {
  return matchByName(app.environments, spec.phaseAppEnv);
}

/** Phase's tag normalisation: `_` as a space, lower case. */
const normaliseTag = (tag: string) => tag.replaceAll('_', ' ').toLowerCase();

/**
 * `phaseAppEnvTag` as Phase's operator applies it (its SDK's `tag_matches`): a secret matches when one of its tags,
 * normalised, contains the wanted tag, normalised (`prod` matches `Production_DB`).
 */
export function matchesTag(tags: readonly string[], wanted: string): boolean {
  const needle = normaliseTag(wanted);
  return tags.some((tag) => normaliseTag(tag).includes(needle));
}
