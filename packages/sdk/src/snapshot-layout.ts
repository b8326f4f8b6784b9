// The snapshot directory that `phasekit once` and `sidecar` write and readSecretsDir reads (product.md): defined
// here once, for the agent's writer and the SDK's reader alike.
//
//   OUT/..data          -> ..2026_11_22_18_00_00.123456789   (replaced by one rename: the atomic flip)
//   OUT/..2026_.../     one immutable version: a file per key, the rendered formats, .phasekit.json
//   OUT/KEY, OUT/.env   -> ..data/KEY, ..data/.env
import { ErrorCode, PhaseError } from './errors.js';
import { OUTPUT_FORMATS, type OutputFormat } from './format.js';

/** A snapshot format: `files` (one file per key, named as the key) or a rendered {@link OutputFormat}. */
export type SnapshotFormat = 'files' | OutputFormat;

/** Every {@link SnapshotFormat}, in canonical order (the order the manifest lists them). */
export const SNAPSHOT_FORMATS: readonly SnapshotFormat[] = Object.freeze(['files', ...OUTPUT_FORMATS]);

/** The symlink that names the current version directory; replaced by one `rename`. */
export const DATA_LINK = '..data';
/** The temporary symlink renamed over {@link DATA_LINK}. */
export const DATA_TMP_LINK = '..data_tmp';
/** The manifest inside every version directory (names, never values). */
export const MANIFEST_NAME = '.phasekit.json';
/** `..YYYY_MM_DD_HH_MM_SS.<9 digits>`, as the kubelet's AtomicWriter names its version directories. */
export const VERSION_DIR_PATTERN = /^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d{9}$/;

/** True when `value` names a {@link SnapshotFormat}. */
export function isSnapshotFormat(value: unknown): value is SnapshotFormat {
  return typeof value === 'string' && (SNAPSHOT_FORMATS as readonly string[]).includes(value);
}

/** A version directory name for `date` (UTC) and a 9-digit suffix. */
export function versionDirName(date: Date, suffix: number): string {
  // 2026-11-22T18:00:00.123Z -> 2026_11_22_18_00_00
  const stamp = date.toISOString().slice(0, 19).replace(/[-T:]/g, '_');
  return `..${stamp}.${String(suffix).padStart(9, '0').slice(-9)}`;
}

/** Where the agent fetched the secrets from, as recorded in the snapshot's manifest. */
export interface SecretsDirSource {
  /** Phase console origin. */
  readonly host: string;
  /** App name (or id). */
  readonly app: string;
  /** Environment name. */
  readonly env: string;
  /** Folder path, `/` for the root. */
  readonly path: string;
}

/** The content of `.phasekit.json`: names and metadata, never values. */
export interface SnapshotManifest {
  /** Increases by one with every change the agent applies. */
  readonly version: number;
  /** SHA-256 (hex) of the snapshot's canonical content: a write with the same fingerprint changes nothing. */
  readonly sha256: string;
  /** ISO 8601 time of the secrets' last change in Phase. */
  readonly updatedAt: string;
  readonly source: SecretsDirSource;
  /** Every key, sorted, in whichever formats can hold it. */
  readonly keys: readonly string[];
  readonly formats: readonly SnapshotFormat[];
  /** Keys in `keys` that have no file of their own (unsafe names); only with the `files` format. */
  readonly refusedKeys: readonly string[];
  /** Every key left out of a format, with that format (`--skip-invalid-keys`). */
  readonly leftOut: readonly { readonly key: string; readonly format: SnapshotFormat }[];
}

/**
 * Parses and checks a manifest's text.
 * @throws {PhaseError} `CONFIG` naming `where` and the field that is wrong (never a value).
 */
export function parseSnapshotManifest(text: string, where: string): SnapshotManifest {
  const invalid = (why: string): PhaseError =>
    new PhaseError(ErrorCode.CONFIG, `${where} is not a valid phasekit manifest: ${why}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new PhaseError(ErrorCode.CONFIG, `${where} is not valid JSON`, { cause: error });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid('not an object');
  const m = raw as Record<string, unknown>;
  const version = m['version'];
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    throw invalid('`version` is not a positive integer');
  }
  const sha256 = m['sha256'];
  if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256))
    throw invalid('`sha256` is not a SHA-256');
  const updatedAt = m['updatedAt'];
  if (typeof updatedAt !== 'string') throw invalid('`updatedAt` is not a string');
  const keys = stringArray(m['keys']);
  if (!keys) throw invalid('`keys` is not a list of names');
  const formats = stringArray(m['formats']);
  if (!formats?.every(isSnapshotFormat)) throw invalid('`formats` is not a list of formats');
  const refusedKeys = m['refusedKeys'] === undefined ? [] : stringArray(m['refusedKeys']);
  if (!refusedKeys) throw invalid('`refusedKeys` is not a list of names');
  const leftOutRaw = m['leftOut'] ?? [];
  if (!Array.isArray(leftOutRaw)) throw invalid('`leftOut` is not a list');
  const leftOut = leftOutRaw.map((item: unknown) => {
    const entry = item as { key?: unknown; format?: unknown } | null;
    if (typeof entry?.key !== 'string' || !isSnapshotFormat(entry.format)) {
      throw invalid('`leftOut` holds something other than {key, format}');
    }
    return { key: entry.key, format: entry.format };
  });
  const source = m['source'];
  if (typeof source !== 'object' || source === null) throw invalid('`source` is not an object');
  const field = (name: string): string => {
    const value = (source as Record<string, unknown>)[name];
    return typeof value === 'string' ? value : '';
  };
  return {
    version,
    sha256,
    updatedAt,
    source: { host: field('host'), app: field('app'), env: field('env'), path: field('path') },
    keys,
    formats,
    refusedKeys,
    leftOut,
  };
}

function stringArray(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((item) => typeof item === 'string') ? value : undefined;
}
