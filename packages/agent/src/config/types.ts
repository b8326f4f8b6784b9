// The vocabulary and the shape of a loaded configuration: commands, defaults and the typed AgentConfig.
import { DEFAULT_HOST, DEFAULT_POLL_INTERVAL_MS } from '@phasekit/sdk';
import type { OutputFormat, SecretsQuery, SnapshotFormat } from '@phasekit/sdk';
import type { ListenAddress, OnChange } from '../parse.js';

export type { ListenAddress, OnChange } from '../parse.js';

// ---------------------------------------------------------------------------------------------------------------
// Vocabulary

/** The commands this loader configures; `k8s-sync` is `phasekit k8s sync` on the command line. */
export const COMMANDS = ['once', 'sidecar', 'run', 'export', 'k8s-sync', 'operator'] as const;
/** A `phasekit` command. */
export type Command = (typeof COMMANDS)[number];

/** How a command is typed: `k8s sync` for `k8s-sync`. */
export function commandName(command: Command): string {
  return command === 'k8s-sync' ? 'k8s sync' : command;
}

/** True when `value` names a {@link Command}. */
export function isCommand(value: string): value is Command {
  return (COMMANDS as readonly string[]).includes(value);
}

// Snapshot formats are the SDK's (the layout is defined once, there).
export { SNAPSHOT_FORMATS } from '@phasekit/sdk';
export type { SnapshotFormat } from '@phasekit/sdk';

/** pino's levels, plus `silent`. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** `json`: one JSON object per line (the default). `text`: one readable line per entry, for terminals. */
export const LOG_FORMATS = ['json', 'text'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Defaults, in milliseconds where they are durations. */
export const DEFAULTS = Object.freeze({
  host: DEFAULT_HOST,
  path: '/',
  snapshotFormats: Object.freeze(['files', 'dotenv'] as const),
  exportFormat: 'dotenv',
  fileMode: 0o400,
  intervalMs: DEFAULT_POLL_INTERVAL_MS,
  timeoutMs: 60_000,
  shrinkThreshold: 0.5,
  notifyDebounceMs: 1000,
  logLevel: 'info',
  logFormat: 'json',
  onChange: Object.freeze({ action: 'none' } as const),
} as const);

/** The shortest --timeout and --stale-after accepted (the poll interval has the SDK's MIN_POLL_INTERVAL_MS). */
export const MIN_DURATION_MS = 100;

// ---------------------------------------------------------------------------------------------------------------
// The configuration

/** Where the Phase token comes from. The token itself is a non-enumerable property: JSON and loggers skip it. */
export type AuthConfig =
  | { readonly source: 'env'; readonly token: string }
  | {
      readonly source: 'file';
      /** `--token-file` / `PHASE_TOKEN_FILE`; watch it and re-read the token when it changes. */
      readonly tokenFile: string;
      /** The file's content when the config was loaded, trimmed. */
      readonly token: string;
    };

/** Which secrets to read: an SDK `SecretsQuery` with the defaults filled in. */
export interface SourceQuery extends SecretsQuery {
  readonly path: string;
  readonly recursive: boolean;
}

/** One snapshot directory and the query that fills it. */
export interface OutputConfig {
  /** The `name` given in the config file's `outputs`, else `outputs[N]`; `default` without `outputs`. */
  readonly name: string;
  readonly source: SourceQuery;
  /** The snapshot directory. */
  readonly out: string;
  readonly formats: readonly SnapshotFormat[];
  /** Permission bits of written files. @default 0o400 */
  readonly fileMode: number;
  readonly uid: number | undefined;
  readonly gid: number | undefined;
}

/** How the sidecar tells the app that the secrets changed. */
export interface NotifyConfig {
  /** Set exactly when `pidfile` or `process` is; `SIGHUP` unless `--notify-signal` says otherwise. */
  readonly signal: NodeJS.Signals | undefined;
  readonly pidfile: string | undefined;
  /** Process name to signal (needs a shared process namespace in Kubernetes). */
  readonly process: string | undefined;
  /** URL to POST `{version, added, removed, changed}` to. */
  readonly http: string | undefined;
  /** argv to run, without a shell. */
  readonly exec: readonly string[] | undefined;
  /** Also notify after the first snapshot. @default false */
  readonly onStart: boolean;
  /** Bursts of changes within this window cause one notification. @default 1000 @unit ms */
  readonly debounceMs: number;
}

export interface LogConfig {
  readonly level: LogLevel;
  readonly format: LogFormat;
}

interface BaseConfig {
  readonly command: Command;
  readonly auth: AuthConfig;
  /** Phase origin, without a trailing slash. */
  readonly host: string;
  readonly insecureHttp: boolean;
  /** Deadline for `once` and for each sync, retries included. @unit ms */
  readonly timeoutMs: number;
  /** Accept an empty secret set instead of refusing it (exit 7). */
  readonly allowEmpty: boolean;
  /** Leave a key a requested format cannot hold out of that format, instead of refusing the set (exit 7). */
  readonly skipInvalidKeys: boolean;
  readonly log: LogConfig;
  /** The YAML file that was read, if any. */
  readonly configFile: string | undefined;
}

/** `phasekit once`: write each output once and exit. */
export interface OnceConfig extends BaseConfig {
  readonly command: 'once';
  readonly outputs: readonly OutputConfig[];
  /** Refuse a set with fewer than this fraction of the previous snapshot's keys; 0 turns the guard off. */
  readonly shrinkThreshold: number;
}

/** `phasekit sidecar`: keep each output current, notify the app, serve health and metrics. */
export interface SidecarConfig extends BaseConfig {
  readonly command: 'sidecar';
  readonly outputs: readonly OutputConfig[];
  readonly shrinkThreshold: number;
  /** @unit ms */
  readonly intervalMs: number;
  /** `/readyz` fails once the last success is older than this. @unit ms */
  readonly staleAfterMs: number;
  /** Undefined when no notification target is configured. */
  readonly notify: NotifyConfig | undefined;
  /** Undefined when `--health-addr` is not set: no health or metrics server. */
  readonly healthAddr: ListenAddress | undefined;
  /** Remove the snapshot directories when the sidecar stops cleanly. */
  readonly cleanup: boolean;
}

/** `phasekit run -- CMD ARGS...`. */
export interface RunConfig extends BaseConfig {
  readonly command: 'run';
  readonly source: SourceQuery;
  readonly shrinkThreshold: number;
  /** @unit ms */
  readonly intervalMs: number;
  readonly run: {
    /** Everything after `--`, exactly as given. */
    readonly command: readonly string[];
    readonly onChange: OnChange;
  };
}

/** `phasekit export --format F`. */
export interface ExportConfig extends BaseConfig {
  readonly command: 'export';
  readonly source: SourceQuery;
  readonly format: OutputFormat;
}

/** `phasekit k8s sync`: one managed Secret from one Phase environment. */
export interface K8sSyncConfig extends BaseConfig {
  readonly command: 'k8s-sync';
  readonly source: SourceQuery;
  /** The kubeconfig file; undefined means KUBECONFIG, ~/.kube/config, then in-cluster. */
  readonly kubeconfig: string | undefined;
  readonly secret: {
    readonly name: string;
    /** Undefined means the kubeconfig context's namespace, else `default`. */
    readonly namespace: string | undefined;
    readonly type: string;
    readonly labels: Readonly<Record<string, string>>;
    readonly annotations: Readonly<Record<string, string>>;
    readonly nameTransformer: string;
  };
  /** Take over an existing Secret of that name that phasekit does not manage. */
  readonly adopt: boolean;
  /** Keep the Secret current instead of writing it once. */
  readonly watch: boolean;
  /** @unit ms */
  readonly intervalMs: number;
}

/** `phasekit operator`: reconcile PhaseSecrets. */
export interface OperatorConfig {
  readonly command: 'operator';
  readonly kubeconfig: string | undefined;
  /** Watch this namespace only (namespaced mode); undefined means every namespace. */
  readonly namespace: string | undefined;
  /** Namespaces a PhaseSecret may use for its token or its Secrets besides its own. */
  readonly allowNamespaces: readonly string[];
  readonly leaderElect: boolean;
  /** @unit ms */
  readonly leaseDurationMs: number;
  /** Where the Lease and the HMAC key live; undefined means the pod's namespace, else `default`. */
  readonly operatorNamespace: string | undefined;
  readonly healthAddr: ListenAddress | undefined;
  readonly insecureHttp: boolean;
  /** Deadline of each Phase sync, retries included. @unit ms */
  readonly timeoutMs: number;
  readonly log: LogConfig;
  readonly configFile: string | undefined;
}

/** The loaded configuration, one shape per command; narrow on `command`. */
export type AgentConfig =
  OnceConfig | SidecarConfig | RunConfig | ExportConfig | K8sSyncConfig | OperatorConfig;
/** The configuration of one command. */
export type ConfigFor<C extends Command> = Extract<AgentConfig, { readonly command: C }>;
