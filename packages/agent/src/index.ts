// The public surface of @phasekit/agent: the building blocks of the `phasekit` CLI, for embedding and tests.
export { Sidecar } from './agent.js';
export type { SidecarDeps, SidecarEvents } from './agent.js';
export { clientFor, runExport, runOnce } from './commands.js';
export { COMMANDS, USAGE } from './config/index.js';
export { AgentError, AgentErrorCode, EXIT_CODES, exitCodeFor, isAgentError } from './errors.js';
export { loadConfig } from './load-config.js';
export type {
  AgentConfig,
  AuthConfig,
  Command,
  ExportConfig,
  LoadConfigOptions,
  YamlParser,
  NotifyConfig,
  OnceConfig,
  OutputConfig,
  RunConfig,
  SidecarConfig,
  SnapshotFormat,
  SourceQuery,
} from './config/index.js';
export { startHealthServer } from './health.js';
export type { HealthServer, HealthServerOptions, Readiness } from './health.js';
export { createLogger } from './logger.js';
export type { CreateLoggerOptions, Logger } from './logger.js';
export { createMetrics } from './metrics.js';
export type { Metrics, MetricsOptions, RuntimeStats } from './metrics.js';
export { createNotifier } from './notify.js';
export type { ChangeEvent, Notifier, NotifierOptions, NotifyReport } from './notify.js';
export { RELAYED_SIGNALS, runCommand } from './run.js';
export type { RunDeps, SignalSource } from './run.js';
export { SNAPSHOT_FORMATS, isSnapshotFormat } from './snapshot/layout.js';
export { createSnapshotWriter, SnapshotWriter } from './snapshot/writer.js';
export type {
  RefusedKey,
  SnapshotInfo,
  SnapshotManifest,
  SnapshotSource,
  SnapshotWriterOptions,
  WriteOptions,
  WriteResult,
} from './snapshot/writer.js';
export { guardReason } from './sync.js';
export { VERSION } from './version.js';
