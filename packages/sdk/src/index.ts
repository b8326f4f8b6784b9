// The public surface of @phasekit/sdk. Everything not listed here is internal and may change.
export { DEFAULT_HOST, PhaseClient } from './client.js';
export type { EnvTarget, NewSecret, PhaseClientOptions, SecretUpdate } from './client.js';
export { readEnv } from './env.js';
export type { EnvSource } from './env.js';
export { ErrorCode, PhaseError, isPhaseError } from './errors.js';
export { cryptoBackend } from './internal/crypto.js';
export type { PhaseErrorOptions, ReferenceFailure } from './errors.js';
export { FORMAT_FILE_NAMES, OUTPUT_FORMATS, formatSecrets, isOutputFormat } from './format.js';
export type { OutputFormat, SecretEntry } from './format.js';
export { SecretsDirWatcher, readSecretsDir, watchSecretsDir } from './secrets-dir.js';
export {
  DATA_LINK,
  DATA_TMP_LINK,
  MANIFEST_NAME,
  SNAPSHOT_FORMATS,
  VERSION_DIR_PATTERN,
  isSnapshotFormat,
  parseSnapshotManifest,
  versionDirName,
} from './snapshot-layout.js';
export type { SnapshotFormat, SnapshotManifest } from './snapshot-layout.js';
export type {
  SecretsDirChange,
  SecretsDirSnapshot,
  SecretsDirSource,
  SecretsDirWatcherEvents,
  WatchSecretsDirOptions,
} from './secrets-dir.js';
export { DEFAULT_POLL_INTERVAL_MS, MIN_POLL_INTERVAL_MS, defaultStaleAfterMs, diffSecrets } from './watch.js';
export type { SecretsWatch } from './watch.js';
export type { WatchEvents, WatchOptions, WatchSnapshot } from './watch.js';
export type {
  AppInfo,
  CallOptions,
  ChangeSet,
  EnvironmentInfo,
  Logger,
  Secret,
  SecretsQuery,
} from './types.js';
