import { FORMAT_FILE_NAMES, OUTPUT_FORMATS } from '@phasekit/sdk';
import type { OutputFormat } from '@phasekit/sdk';

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

/** Names a key may not take as a file: the snapshot's own entries and every format file. */
export const RESERVED_NAMES: ReadonlySet<string> = new Set([
  DATA_LINK,
  DATA_TMP_LINK,
  MANIFEST_NAME,
  ...Object.values(FORMAT_FILE_NAMES),
]);

// Most file systems (ext4, xfs, tmpfs, overlayfs) cap a name at 255 bytes.
const MAX_NAME_BYTES = 255;

/** True when `value` names a {@link SnapshotFormat}. */
export function isSnapshotFormat(value: unknown): value is SnapshotFormat {
  return typeof value === 'string' && (SNAPSHOT_FORMATS as readonly string[]).includes(value);
}

/**
 * Why `key` cannot be written as a file in the snapshot's `files` format, or `undefined` when it can.
 * The reason names the key (JSON-quoted, so control characters stay visible) and never a value.
 */
export function unsafeKeyReason(key: string): string | undefined {
  const name = JSON.stringify(key);
  if (key === '') return 'the key is empty and cannot be a file name';
  if (key.includes('\0')) return `key ${name} contains a NUL character and cannot be a file name`;
  if (key.includes('/')) return `key ${name} contains "/" and would escape the snapshot directory`;
  if (key === '.' || key === '..') return `key ${name} is a directory name, not a file name`;
  if (key.startsWith('..'))
    return `key ${name} starts with "..", which is reserved for the snapshot's own entries`;
  if (RESERVED_NAMES.has(key)) return `key ${name} collides with the snapshot's own file of that name`;
  if (Buffer.byteLength(key, 'utf8') > MAX_NAME_BYTES) {
    return `key ${name} is longer than ${MAX_NAME_BYTES} bytes, the file name limit`;
  }
  return undefined;
}

/** A fresh version directory name for `date` (UTC) and a 9-digit suffix. */
export function versionDirName(date: Date, suffix: number): string {
  // 2026-11-22T18:00:00.123Z -> 2026_11_22_18_00_00
  const stamp = date.toISOString().slice(0, 19).replace(/[-T:]/g, '_');
  return `..${stamp}.${String(suffix).padStart(9, '0').slice(-9)}`;
}
