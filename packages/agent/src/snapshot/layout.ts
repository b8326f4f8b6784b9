// The snapshot layout is defined once, in the SDK (its snapshot-layout.ts), and shared by the writer and the SDK's
// reader; what is here is the writer's alone: which key names cannot be files.
import { DATA_LINK, DATA_TMP_LINK, FORMAT_FILE_NAMES, MANIFEST_NAME } from '@phasekit/sdk';

export {
  DATA_LINK,
  DATA_TMP_LINK,
  MANIFEST_NAME,
  SNAPSHOT_FORMATS,
  VERSION_DIR_PATTERN,
  isSnapshotFormat,
  versionDirName,
} from '@phasekit/sdk';
export type { SnapshotFormat } from '@phasekit/sdk';

/** Names a key may not take as a file: the snapshot's own entries and every format file. */
export const RESERVED_NAMES: ReadonlySet<string> = new Set([
  DATA_LINK,
  DATA_TMP_LINK,
  MANIFEST_NAME,
  ...Object.values(FORMAT_FILE_NAMES),
]);

// Most file systems (ext4, xfs, tmpfs, overlayfs) cap a name at 255 bytes.
const MAX_NAME_BYTES = 255;

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
