// The agent's configuration: one pure loader from (command, argv, env, an optional YAML file) to a frozen,
// typed AgentConfig. Nothing here reads process.env or process.argv; only cli.ts does.
//
// Every setting is described once, in SETTINGS below: its flag, env var, YAML key, the commands that use it,
// its help line and its parser. The table is typed from the Settings interface, so a setting cannot be added to
// one without the other, and USAGE and the docs' tables are generated from the same rows.
//
// Error messages name the flag, the env var or the YAML key and say what was expected. They never quote a
// value: a token pasted into the wrong setting must not reach a terminal, a log or a CI transcript.
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { ErrorCode, OUTPUT_FORMATS, PhaseError } from '@phasekit/sdk';
import type { OutputFormat, SecretsQuery } from '@phasekit/sdk';
import type { parseDocument } from 'yaml';
import {
  formatDuration,
  splitList,
  suggest,
  tryParseBoolean,
  tryParseChoice,
  tryParseCommand,
  tryParseDuration,
  tryParseFileMode,
  tryParseFraction,
  tryParseHttpUrl,
  tryParseId,
  tryParseListenAddress,
  tryParseOnChange,
  tryParseSignal,
} from './parse.js';
import type { HttpUrl, ListenAddress, OnChange, Parsed } from './parse.js';

export type { ListenAddress, OnChange } from './parse.js';

// ---------------------------------------------------------------------------------------------------------------
// Vocabulary

/** The commands this loader configures. `k8s sync` and `operator` will join this list. */
export const COMMANDS = ['once', 'sidecar', 'run', 'export'] as const;
/** A `phasekit` command. */
export type Command = (typeof COMMANDS)[number];

/** True when `value` names a {@link Command}. */
export function isCommand(value: string): value is Command {
  return (COMMANDS as readonly string[]).includes(value);
}

/** What a snapshot directory can hold: one file per key (`files`) or a rendered format. */
export type SnapshotFormat = 'files' | OutputFormat;
/** Every {@link SnapshotFormat}, in the order the docs list them. */
export const SNAPSHOT_FORMATS = ['files', ...OUTPUT_FORMATS] as const satisfies readonly SnapshotFormat[];

/** pino's levels, plus `silent`. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** `json`: one JSON object per line (the default). `text`: one readable line per entry, for terminals. */
export const LOG_FORMATS = ['json', 'text'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Defaults, in milliseconds where they are durations. */
export const DEFAULTS = Object.freeze({
  host: 'https://console.phase.dev',
  path: '/',
  snapshotFormats: Object.freeze(['files', 'dotenv'] as const),
  exportFormat: 'dotenv',
  fileMode: 0o400,
  intervalMs: 30_000,
  timeoutMs: 60_000,
  shrinkThreshold: 0.5,
  notifyDebounceMs: 1000,
  logLevel: 'info',
  logFormat: 'json',
  onChange: Object.freeze({ action: 'none' } as const),
} as const);

/** The shortest poll interval and timeout accepted. Below one second is meant for tests. */
export const MIN_INTERVAL_MS = 100;

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

/** The loaded configuration, one shape per command; narrow on `command`. */
export type AgentConfig = OnceConfig | SidecarConfig | RunConfig | ExportConfig;
/** The configuration of one command. */
export type ConfigFor<C extends Command> = Extract<AgentConfig, { readonly command: C }>;

// ---------------------------------------------------------------------------------------------------------------
// The settings table

/** Every setting a flag, env var or config file key can give, parsed. */
interface Settings {
  config: string;
  tokenFile: string;
  host: HttpUrl;
  insecureHttp: boolean;
  app: string;
  appId: string;
  env: string;
  path: string;
  recursive: boolean;
  tags: readonly string[];
  keys: readonly string[];
  out: string;
  format: readonly SnapshotFormat[];
  fileMode: number;
  uid: number;
  gid: number;
  interval: number;
  timeout: number;
  staleAfter: number;
  allowEmpty: boolean;
  skipInvalidKeys: boolean;
  shrinkThreshold: number;
  notifySignal: NodeJS.Signals;
  notifyPidfile: string;
  notifyProcess: string;
  notifyHttp: HttpUrl;
  notifyExec: readonly string[];
  notifyOnStart: boolean;
  notifyDebounce: number;
  healthAddr: ListenAddress;
  cleanup: boolean;
  logLevel: LogLevel;
  logFormat: LogFormat;
  onChange: OnChange;
}

type SettingKey = keyof Settings;
/** A raw value: a string from a flag, env var or YAML scalar, or a YAML list (and repeated list flags). */
type Raw = string | readonly string[];

/** One row of the settings table. */
export interface SettingSpec<T> {
  /** `value`: takes a value; `boolean`: `--x` / `--no-x`; `list`: comma list, repeatable. */
  readonly kind: 'value' | 'boolean' | 'list';
  readonly flag: `--${string}`;
  readonly env?: `PHASE_${string}`;
  /** Key in the YAML file (`notify.signal` for nested keys); absent when the file cannot set it. */
  readonly file?: string;
  /** The commands that use it. */
  readonly commands: readonly Command[];
  /** May differ per entry of the config file's `outputs` (`once` and `sidecar`). */
  readonly perOutput?: boolean;
  /** Placeholder in USAGE, for example `<duration>`. */
  readonly placeholder?: string | Partial<Record<Command, string>>;
  readonly help: string | Partial<Record<Command, string>>;
  /** The default as the docs show it. */
  readonly default?: string | Partial<Record<Command, string>>;
  readonly parse: (raw: Raw) => Parsed<T>;
}

type SettingTable = { readonly [K in SettingKey]-?: SettingSpec<Settings[K]> };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = <T = never>(expected: string): Parsed<T> => ({ ok: false, expected });

function scalar<T>(parse: (text: string) => Parsed<T>): (raw: Raw) => Parsed<T> {
  return (raw) => (typeof raw === 'string' ? parse(raw) : bad('a single value, not a list'));
}

function list<T>(parseItem: (item: string) => Parsed<T>, options: { nonEmpty?: boolean } = {}) {
  return (raw: Raw): Parsed<readonly T[]> => {
    const items = (typeof raw === 'string' ? [raw] : raw).flatMap(splitList);
    const values: T[] = [];
    for (const item of items) {
      const parsed = parseItem(item);
      if (!parsed.ok) return parsed;
      if (!values.includes(parsed.value)) values.push(parsed.value);
    }
    if (options.nonEmpty === true && values.length === 0) return bad('a comma list with at least one item');
    return ok(values);
  };
}

const text = (what: string) =>
  scalar((input) => {
    const value = input.trim();
    return value === '' || value.includes('\0') ? bad(what) : ok(value);
  });

const duration = (minMs: number) =>
  scalar((input) => {
    const parsed = tryParseDuration(input);
    if (!parsed.ok) return parsed;
    return parsed.value >= minMs
      ? parsed
      : bad(`a duration of at least ${formatDuration(minMs)}, such as 10s`);
  });

const boolean = scalar(tryParseBoolean);

/** A Phase folder: `/`, `/backend`, `/backend/cache`. */
function tryParseFolder(input: string): Parsed<string> {
  const value = input.trim();
  const segments = value.split('/').slice(1);
  const valid =
    value.startsWith('/') &&
    !value.includes('\0') &&
    (value === '/' || segments.every((segment) => segment !== '' && segment !== '.' && segment !== '..'));
  return valid ? ok(value) : bad('a folder path starting with / such as / or /backend/cache');
}

function tryParseOutDir(input: string): Parsed<string> {
  const value = input.trim();
  if (value === '' || value.includes('\0')) return bad('a directory path');
  const normal = posix.normalize(value);
  return normal === '/' || normal === '.' ? bad('a dedicated directory, not / or .') : ok(value);
}

const ALL = COMMANDS;
const SNAPSHOT: readonly Command[] = ['once', 'sidecar'];
const SIDECAR: readonly Command[] = ['sidecar'];

/**
 * Every setting: flag, env var, YAML key, commands, help and parser. USAGE and docs/reference/configuration.md
 * follow this table.
 */
export const SETTINGS: SettingTable = Object.freeze({
  config: {
    kind: 'value',
    flag: '--config',
    env: 'PHASE_CONFIG',
    commands: ALL,
    placeholder: '<file>',
    help: 'YAML file with settings and, for once and sidecar, several outputs',
    parse: text('a file path'),
  },
  tokenFile: {
    kind: 'value',
    flag: '--token-file',
    env: 'PHASE_TOKEN_FILE',
    file: 'tokenFile',
    commands: ALL,
    placeholder: '<file>',
    help: 'read the service token from this file (re-read when it changes) instead of PHASE_SERVICE_TOKEN',
    parse: text('a file path'),
  },
  host: {
    kind: 'value',
    flag: '--host',
    env: 'PHASE_HOST',
    file: 'host',
    commands: ALL,
    placeholder: '<url>',
    help: 'Phase console origin; http:// only for loopback hosts unless --insecure-http',
    default: DEFAULTS.host,
    parse: scalar((input) => tryParseHttpUrl(input, { origin: true })),
  },
  insecureHttp: {
    kind: 'boolean',
    flag: '--insecure-http',
    file: 'insecureHttp',
    commands: ALL,
    help: 'allow http:// to hosts other than loopback (for --host and --notify-http)',
    default: 'false',
    parse: boolean,
  },
  app: {
    kind: 'value',
    flag: '--app',
    env: 'PHASE_APP',
    file: 'app',
    commands: ALL,
    perOutput: true,
    placeholder: '<name>',
    help: 'app by exact name (this or --app-id is required)',
    parse: text('an app name'),
  },
  appId: {
    kind: 'value',
    flag: '--app-id',
    env: 'PHASE_APP_ID',
    file: 'appId',
    commands: ALL,
    perOutput: true,
    placeholder: '<id>',
    help: 'app by id',
    parse: text('an app id'),
  },
  env: {
    kind: 'value',
    flag: '--env',
    env: 'PHASE_ENV',
    file: 'env',
    commands: ALL,
    perOutput: true,
    placeholder: '<name>',
    help: 'environment by exact name, case-insensitive (required)',
    parse: text('an environment name'),
  },
  path: {
    kind: 'value',
    flag: '--path',
    env: 'PHASE_PATH',
    file: 'path',
    commands: ALL,
    perOutput: true,
    placeholder: '<folder>',
    help: 'folder to read',
    default: DEFAULTS.path,
    parse: scalar(tryParseFolder),
  },
  recursive: {
    kind: 'boolean',
    flag: '--recursive',
    file: 'recursive',
    commands: ALL,
    perOutput: true,
    help: 'include the sub-folders of --path',
    default: 'false',
    parse: boolean,
  },
  tags: {
    kind: 'list',
    flag: '--tags',
    env: 'PHASE_TAGS',
    file: 'tags',
    commands: ALL,
    perOutput: true,
    placeholder: '<list>',
    help: 'only secrets with at least one of these tags (comma list)',
    parse: list((item) => ok(item)),
  },
  keys: {
    kind: 'list',
    flag: '--keys',
    file: 'keys',
    commands: ALL,
    perOutput: true,
    placeholder: '<list>',
    help: 'only these keys (comma list, case-insensitive)',
    parse: list((item) => ok(item)),
  },
  out: {
    kind: 'value',
    flag: '--out',
    env: 'PHASE_OUT',
    file: 'out',
    commands: SNAPSHOT,
    perOutput: true,
    placeholder: '<dir>',
    help: 'snapshot directory (required)',
    parse: scalar(tryParseOutDir),
  },
  format: {
    kind: 'list',
    flag: '--format',
    env: 'PHASE_FORMAT',
    file: 'format',
    commands: ['once', 'sidecar', 'export'],
    perOutput: true,
    placeholder: { once: '<list>', sidecar: '<list>', export: '<format>' },
    help: {
      once: `what to write: comma list of ${SNAPSHOT_FORMATS.join(', ')}`,
      sidecar: `what to write: comma list of ${SNAPSHOT_FORMATS.join(', ')}`,
      export: `output format: one of ${OUTPUT_FORMATS.join(', ')}`,
    },
    default: { once: 'files,dotenv', sidecar: 'files,dotenv', export: 'dotenv' },
    parse: list((item) => tryParseChoice(item, SNAPSHOT_FORMATS), { nonEmpty: true }),
  },
  fileMode: {
    kind: 'value',
    flag: '--file-mode',
    file: 'fileMode',
    commands: SNAPSHOT,
    perOutput: true,
    placeholder: '<octal>',
    help: 'permission bits of written files',
    default: '0400',
    parse: scalar(tryParseFileMode),
  },
  uid: {
    kind: 'value',
    flag: '--uid',
    file: 'uid',
    commands: SNAPSHOT,
    perOutput: true,
    placeholder: '<id>',
    help: 'owner of written files (needs the privilege to chown)',
    parse: scalar(tryParseId),
  },
  gid: {
    kind: 'value',
    flag: '--gid',
    file: 'gid',
    commands: SNAPSHOT,
    perOutput: true,
    placeholder: '<id>',
    help: 'group of written files',
    parse: scalar(tryParseId),
  },
  interval: {
    kind: 'value',
    flag: '--interval',
    env: 'PHASE_POLL_INTERVAL',
    file: 'interval',
    commands: ['sidecar', 'run'],
    placeholder: '<duration>',
    help: 'how often to poll Phase for changes',
    default: formatDuration(DEFAULTS.intervalMs),
    parse: duration(MIN_INTERVAL_MS),
  },
  timeout: {
    kind: 'value',
    flag: '--timeout',
    env: 'PHASE_TIMEOUT',
    file: 'timeout',
    commands: ALL,
    placeholder: '<duration>',
    help: 'deadline for fetching, retries included (all of once; each sync of sidecar and run)',
    default: formatDuration(DEFAULTS.timeoutMs),
    parse: duration(MIN_INTERVAL_MS),
  },
  staleAfter: {
    kind: 'value',
    flag: '--stale-after',
    file: 'staleAfter',
    commands: SIDECAR,
    placeholder: '<duration>',
    help: '/readyz fails when the last successful sync is older than this; must exceed --interval',
    default: 'max(3 × interval, interval + timeout)',
    parse: duration(MIN_INTERVAL_MS),
  },
  allowEmpty: {
    kind: 'boolean',
    flag: '--allow-empty',
    file: 'allowEmpty',
    commands: ALL,
    help: 'accept an empty secret set instead of refusing it (exit 7)',
    default: 'false',
    parse: boolean,
  },
  skipInvalidKeys: {
    kind: 'boolean',
    flag: '--skip-invalid-keys',
    file: 'skipInvalidKeys',
    commands: ['once', 'sidecar', 'export'],
    help: 'leave a key that a format cannot hold (an unsafe file name, a name dotenv cannot write) out of that format instead of refusing the set (exit 7)',
    default: 'false',
    parse: boolean,
  },
  shrinkThreshold: {
    kind: 'value',
    flag: '--shrink-threshold',
    file: 'shrinkThreshold',
    commands: ['once', 'sidecar', 'run'],
    placeholder: '<fraction>',
    help: 'refuse a set with fewer than this fraction of the previous keys (0 turns the guard off)',
    default: String(DEFAULTS.shrinkThreshold),
    parse: scalar(tryParseFraction),
  },
  notifySignal: {
    kind: 'value',
    flag: '--notify-signal',
    file: 'notify.signal',
    commands: SIDECAR,
    placeholder: '<signal>',
    help: 'signal to send to the app after a change (needs --notify-pidfile or --notify-process)',
    default: 'SIGHUP',
    parse: scalar(tryParseSignal),
  },
  notifyPidfile: {
    kind: 'value',
    flag: '--notify-pidfile',
    file: 'notify.pidfile',
    commands: SIDECAR,
    placeholder: '<file>',
    help: 'signal the process whose pid this file holds',
    parse: text('a file path'),
  },
  notifyProcess: {
    kind: 'value',
    flag: '--notify-process',
    file: 'notify.process',
    commands: SIDECAR,
    placeholder: '<name>',
    help: 'signal the processes with this name',
    parse: text('a process name'),
  },
  notifyHttp: {
    kind: 'value',
    flag: '--notify-http',
    file: 'notify.http',
    commands: SIDECAR,
    placeholder: '<url>',
    help: 'POST {version, added, removed, changed} (key names only) to this URL after a change',
    parse: scalar((input) => tryParseHttpUrl(input)),
  },
  notifyExec: {
    kind: 'value',
    flag: '--notify-exec',
    file: 'notify.exec',
    commands: SIDECAR,
    placeholder: '<command>',
    help: 'run this command (no shell; a JSON array or quoted words) after a change',
    parse: tryParseCommand,
  },
  notifyOnStart: {
    kind: 'boolean',
    flag: '--notify-on-start',
    file: 'notify.onStart',
    commands: SIDECAR,
    help: 'notify after the first snapshot too',
    default: 'false',
    parse: boolean,
  },
  notifyDebounce: {
    kind: 'value',
    flag: '--notify-debounce',
    file: 'notify.debounce',
    commands: SIDECAR,
    placeholder: '<duration>',
    help: 'merge changes within this window into one notification',
    default: formatDuration(DEFAULTS.notifyDebounceMs),
    parse: duration(0),
  },
  healthAddr: {
    kind: 'value',
    flag: '--health-addr',
    env: 'PHASE_HEALTH_ADDR',
    file: 'healthAddr',
    commands: SIDECAR,
    placeholder: '<host:port>',
    help: 'serve /healthz, /readyz and /metrics here (:8080 means all interfaces); off when unset',
    parse: scalar(tryParseListenAddress),
  },
  cleanup: {
    kind: 'boolean',
    flag: '--cleanup',
    file: 'cleanup',
    commands: SIDECAR,
    help: 'remove the snapshot directories when the sidecar stops cleanly',
    default: 'false',
    parse: boolean,
  },
  logLevel: {
    kind: 'value',
    flag: '--log-level',
    env: 'PHASE_LOG_LEVEL',
    file: 'logLevel',
    commands: ALL,
    placeholder: '<level>',
    help: `one of ${LOG_LEVELS.join(', ')}`,
    default: DEFAULTS.logLevel,
    parse: scalar((input) => tryParseChoice(input, LOG_LEVELS)),
  },
  logFormat: {
    kind: 'value',
    flag: '--log-format',
    file: 'logFormat',
    commands: ALL,
    placeholder: '<format>',
    help: 'json (one object per line) or text',
    default: DEFAULTS.logFormat,
    parse: scalar((input) => tryParseChoice(input, LOG_FORMATS)),
  },
  onChange: {
    kind: 'value',
    flag: '--on-change',
    file: 'onChange',
    commands: ['run'],
    placeholder: '<action>',
    help: 'when the secrets change: none, restart (the child), or signal:NAME (send it to the child)',
    default: 'none',
    parse: scalar(tryParseOnChange),
  },
});

// ---------------------------------------------------------------------------------------------------------------
// Usage

const COMMAND_SUMMARY: Record<Command, { usage: string; summary: string }> = {
  once: {
    usage: 'phasekit once [options]',
    summary: 'Fetch the secrets, write the snapshot directory and exit (an init container).',
  },
  sidecar: {
    usage: 'phasekit sidecar [options]',
    summary:
      'Write the snapshot directory, keep it current, notify the app after a change, serve health and metrics.',
  },
  run: {
    usage: 'phasekit run [options] -- COMMAND [ARGS...]',
    summary:
      'Start COMMAND with the secrets in its environment (no shell), passing signals and the exit code.',
  },
  export: {
    usage: 'phasekit export [options]',
    summary: 'Print the secrets to stdout in one format.',
  },
};

function forCommand(value: string | Partial<Record<Command, string>> | undefined, command: Command) {
  return typeof value === 'object' ? value[command] : value;
}

function usageFor(command: Command): string {
  const rows = settingKeys()
    .filter((key) => SETTINGS[key].commands.includes(command))
    .map((key) => {
      const spec: SettingSpec<unknown> = SETTINGS[key];
      const placeholder = forCommand(spec.placeholder, command) ?? '<value>';
      const flag = spec.kind === 'boolean' ? spec.flag : `${spec.flag} ${placeholder}`;
      const fallback = forCommand(spec.default, command);
      const notes = [
        fallback === undefined || spec.kind === 'boolean' ? undefined : `default ${fallback}`,
        spec.env === undefined ? undefined : `env ${spec.env}`,
      ].filter((note) => note !== undefined);
      const help = forCommand(spec.help, command) ?? '';
      return [flag, notes.length === 0 ? help : `${help} [${notes.join('; ')}]`] as const;
    })
    .concat([['--help', 'show this help']]);
  const width = Math.max(...rows.map(([flag]) => flag.length)) + 2;
  const { usage, summary } = COMMAND_SUMMARY[command];
  return [
    `Usage: ${usage}`,
    '',
    summary,
    '',
    'Options:',
    ...rows.map(([flag, help]) => `  ${flag.padEnd(width)}${help}`),
    '',
    'The token comes from PHASE_SERVICE_TOKEN or --token-file; it is never accepted as a flag value.',
    'Precedence: flag, then environment variable, then --config file, then default.',
    'Durations: 250ms, 10s, 5m, 1h (a bare number means seconds). Booleans: --x or --no-x.',
    '',
  ].join('\n');
}

/** Help text per command, generated from {@link SETTINGS} when first read (not at every start-up). */
export const USAGE: Readonly<Record<Command, string>> = Object.freeze(
  Object.defineProperties(
    {},
    Object.fromEntries(
      COMMANDS.map((command) => {
        let text: string | undefined;
        return [command, { enumerable: true, get: () => (text ??= usageFor(command)) }];
      }),
    ),
  ) as Record<Command, string>,
);

/** True when argv (before any `--`) asks for help: the CLI prints {@link USAGE} instead of loading config. */
export function wantsHelp(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).some((arg) => arg === '--help' || arg === '-h');
}

// ---------------------------------------------------------------------------------------------------------------
// Problems

type Origin =
  | { readonly layer: 'flag' }
  | { readonly layer: 'env'; readonly name: string }
  | { readonly layer: 'file'; readonly at: string };

/** Precedence rank of a layer: a higher rank wins. */
const RANK = { flag: 3, env: 2, file: 1 } as const;

interface RawSetting {
  readonly raw: Raw;
  readonly origin: Origin;
}

class Problems {
  readonly lines: string[] = [];

  add(subject: string, text: string, origin?: Origin): void {
    const line = `${subject}${origin === undefined ? '' : ` (${describeOrigin(origin)})`}: ${text}`;
    if (!this.lines.includes(line)) this.lines.push(line); // Outputs inheriting one bad value report it once.
  }

  setting(key: SettingKey, text: string, origin?: Origin): void {
    this.add(label(key), text, origin);
  }

  throwIfAny(command: string): void {
    if (this.lines.length === 0) return;
    const count = this.lines.length === 1 ? '1 problem' : `${this.lines.length} problems`;
    const where = isCommand(command) ? `phasekit ${command}` : 'phasekit';
    throw new PhaseError(
      ErrorCode.CONFIG,
      [`Invalid configuration for ${where} (${count}):`, ...this.lines.map((line) => `  - ${line}`)].join(
        '\n',
      ),
    );
  }
}

function describeOrigin(origin: Origin): string {
  switch (origin.layer) {
    case 'flag':
      return 'from the command line';
    case 'env':
      return `from ${origin.name}`;
    case 'file':
      return `from the config file at ${origin.at}`;
  }
}

function label(key: SettingKey): string {
  const spec: SettingSpec<unknown> = SETTINGS[key];
  return spec.env === undefined ? spec.flag : `${spec.flag} / ${spec.env}`;
}

function settingKeys(): SettingKey[] {
  return Object.keys(SETTINGS) as SettingKey[];
}

// Echo a flag's name only when it looks like one: `--pss_service:v2:...` is not repeated back.
const SAFE_FLAG_NAME = /^[a-z][a-z0-9-]{0,39}$/i;
const SAFE_KEY_NAME = /^[a-z][a-z0-9_.-]{0,39}$/i;

// ---------------------------------------------------------------------------------------------------------------
// argv

interface ParsedArgv {
  readonly flags: Map<SettingKey, RawSetting>;
  readonly rest: readonly string[] | undefined;
}

const FLAG_INDEX: ReadonlyMap<string, SettingKey> = new Map(
  settingKeys().map((key) => [SETTINGS[key].flag.slice(2), key]),
);

function parseArgv(command: Command, argv: readonly string[], problems: Problems): ParsedArgv {
  const flags = new Map<SettingKey, RawSetting>();
  const origin: Origin = { layer: 'flag' };
  const known = [...FLAG_INDEX].filter(([, key]) => SETTINGS[key].commands.includes(command));
  let rest: string[] | undefined;

  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i] ?? '';
    const position = `argument ${i + 1}`;
    if (arg === '--') {
      rest = argv.slice(i + 1);
      break;
    }
    if (!arg.startsWith('--')) {
      if (/^-[a-zA-Z]$/.test(arg)) problems.add(arg, 'unknown option (phasekit has no short options)');
      else if (command === 'run') problems.add(position, 'unexpected; put the command to run after --');
      else problems.add(position, `unexpected; phasekit ${command} takes no positional arguments`);
      continue;
    }
    const equals = arg.indexOf('=');
    const name = equals === -1 ? arg.slice(2) : arg.slice(2, equals);
    const inline = equals === -1 ? undefined : arg.slice(equals + 1);
    const next = argv[i + 1];
    const nextIsValue = next !== undefined && next !== '--' && !(next.startsWith('-') && next.length > 1);

    if (name === 'token' || name === 'service-token') {
      if (inline === undefined && nextIsValue) i += 1; // Skip the token so it is not reported as an argument.
      problems.add(
        `--${name}`,
        'a token is never accepted on the command line, because argv is visible to other processes ' +
          '(ps, /proc); set PHASE_SERVICE_TOKEN or use --token-file / PHASE_TOKEN_FILE',
      );
      continue;
    }

    const negated = name.startsWith('no-') ? FLAG_INDEX.get(name.slice(3)) : undefined;
    const key =
      FLAG_INDEX.get(name) ??
      (negated !== undefined && SETTINGS[negated].kind === 'boolean' ? negated : undefined);
    if (key === undefined) {
      // Name the option only when it is a near miss of a real one: an unknown name could be anything.
      const candidates = known.flatMap(([flag, k]) =>
        SETTINGS[k].kind === 'boolean' ? [flag, `no-${flag}`] : [flag],
      );
      const near = SAFE_FLAG_NAME.test(name) ? suggest(name, candidates) : undefined;
      if (near === undefined) problems.add(position, 'unknown option');
      else problems.add(`--${name}`, `unknown option; did you mean --${near}?`);
      continue;
    }
    const spec: SettingSpec<unknown> = SETTINGS[key];
    if (!spec.commands.includes(command)) {
      if (spec.kind !== 'boolean' && inline === undefined && nextIsValue) i += 1;
      problems.add(`--${name}`, `not used by phasekit ${command}`);
      continue;
    }

    if (spec.kind === 'boolean') {
      if (negated === key && name !== spec.flag.slice(2)) {
        if (inline !== undefined) problems.add(`--${name}`, 'takes no value', origin);
        else flags.set(key, { raw: 'false', origin });
      } else {
        flags.set(key, { raw: inline ?? 'true', origin });
      }
      continue;
    }

    let value = inline;
    if (value === undefined) {
      if (!nextIsValue) {
        problems.add(spec.flag, `expected a value after ${spec.flag}`);
        continue;
      }
      value = next;
      i += 1;
    }
    if (spec.kind === 'list') {
      const previous = flags.get(key)?.raw ?? [];
      flags.set(key, { raw: [...(typeof previous === 'string' ? [previous] : previous), value], origin });
    } else {
      flags.set(key, { raw: value, origin }); // The last occurrence wins, so wrappers can append overrides.
    }
  }
  return { flags, rest };
}

// ---------------------------------------------------------------------------------------------------------------
// The config file

interface FileLayer {
  readonly top: Map<SettingKey, RawSetting>;
  /** Undefined when the file has no `outputs`. */
  readonly outputs: readonly OutputEntry[] | undefined;
}

interface OutputEntry {
  readonly at: string;
  readonly name: string | undefined;
  readonly values: Map<SettingKey, RawSetting>;
}

const FILE_INDEX: ReadonlyMap<string, SettingKey> = new Map(
  settingKeys().flatMap((key) => {
    const file = SETTINGS[key].file;
    return file === undefined ? [] : [[file, key] as const];
  }),
);
const NOTIFY_KEYS = [...FILE_INDEX.keys()]
  .filter((key) => key.startsWith('notify.'))
  .map((key) => key.slice(7));
const TOP_KEYS = [...[...FILE_INDEX.keys()].filter((key) => !key.includes('.')), 'notify', 'outputs'];
const OUTPUT_KEYS = [
  'name',
  ...settingKeys().flatMap((key) => (SETTINGS[key].perOutput === true ? [SETTINGS[key].file ?? ''] : [])),
];

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The `yaml` package's `parseDocument`, passed in so that only a CLI run with a config file loads that package. */
export type YamlParser = typeof parseDocument;

function loadFile(
  source: RawSetting,
  readFile: (path: string) => string,
  parseYaml: YamlParser | undefined,
  problems: Problems,
): FileLayer | undefined {
  const path = typeof source.raw === 'string' ? source.raw.trim() : '';
  if (path === '') {
    problems.setting('config', 'expected a file path', source.origin);
    return undefined;
  }
  let content: string;
  try {
    content = readFile(path);
  } catch (error) {
    problems.setting('config', `cannot read the file${errnoSuffix(error)}`, source.origin);
    return undefined;
  }
  if (parseYaml === undefined) {
    problems.setting('config', 'no YAML parser was given to loadConfig (options.parseYaml)', source.origin);
    return undefined;
  }
  // The failsafe schema reads every scalar as a string, so YAML values go through the same parsers as flags and
  // env vars: `fileMode: 0440` stays octal and `interval: 30` means 30 seconds.
  const doc = parseYaml(content, { schema: 'failsafe', prettyErrors: false, uniqueKeys: true });
  const [first] = doc.errors;
  if (first !== undefined) {
    // The parser's own message quotes the offending line, which may hold a secret: report code and position.
    const { line, column } = position(content, first.pos[0]);
    problems.setting(
      'config',
      `not valid YAML (${first.code} at line ${line}, column ${column})`,
      source.origin,
    );
    return undefined;
  }
  const data: unknown = doc.toJS({ maxAliasCount: 100 }) ?? {};
  if (!isRecord(data)) {
    problems.setting('config', 'expected a YAML mapping of settings at the top level', source.origin);
    return undefined;
  }

  const top = new Map<SettingKey, RawSetting>();
  let outputs: OutputEntry[] | undefined;
  for (const [name, value] of Object.entries(data)) {
    if (name === 'outputs') {
      outputs = readOutputs(value, problems);
    } else if (name === 'notify') {
      if (value === null || value === '') continue;
      if (!isRecord(value)) {
        problems.add('config file key notify', 'expected a mapping such as { signal: SIGHUP, pidfile: ... }');
        continue;
      }
      for (const [sub, subValue] of Object.entries(value)) {
        readKey(`notify.${sub}`, subValue, top, problems, {
          candidates: NOTIFY_KEYS.map((key) => `notify.${key}`),
        });
      }
    } else {
      readKey(name, value, top, problems, { candidates: TOP_KEYS });
    }
  }
  return { top, outputs };
}

function readKey(
  name: string,
  value: unknown,
  into: Map<SettingKey, RawSetting>,
  problems: Problems,
  context: { readonly candidates: readonly string[]; readonly prefix?: string },
): void {
  const { candidates, prefix = '' } = context;
  const key = FILE_INDEX.get(name);
  const at = `${prefix}${SAFE_KEY_NAME.test(name) ? name : '(unnamed)'}`;
  const subject = `config file key ${at}`;
  if (key === undefined || !candidates.includes(name)) {
    if (/^(?:.*\.)?(?:token|serviceToken|service_token)$/i.test(name)) {
      problems.add(
        subject,
        'a token is never read from the config file; set PHASE_SERVICE_TOKEN or tokenFile / --token-file',
      );
      return;
    }
    // Name the key only when it is a near miss of a real one: an unknown key could be anything.
    const near = SAFE_KEY_NAME.test(name) ? suggest(name, candidates) : undefined;
    if (near !== undefined) {
      problems.add(subject, `unknown setting; did you mean ${near}?`);
    } else if (name === 'name') {
      problems.add(subject, 'unknown setting (name belongs in an outputs entry)');
    } else {
      const where = prefix === '' ? 'at the top level' : `in ${prefix.slice(0, -1)}`;
      problems.add(`config file`, `unknown setting ${where}; expected one of ${candidates.join(', ')}`);
    }
    return;
  }
  const raw = toRaw(value);
  if (raw === undefined) return;
  if (raw === null) {
    problems.add(subject, 'expected a string or a list of strings');
    return;
  }
  into.set(key, { raw, origin: { layer: 'file', at } });
}

/** A YAML value as a Raw: undefined for null or empty (unset), null when it is a mapping or a nested list. */
function toRaw(value: unknown): Raw | undefined | null {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string') return value.trim() === '' ? undefined : value;
  if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value;
  return null;
}

function readOutputs(value: unknown, problems: Problems): OutputEntry[] | undefined {
  if (!Array.isArray(value)) {
    problems.add(
      'config file key outputs',
      'expected a list of outputs, each a mapping with out, format, ...',
    );
    return undefined;
  }
  return value.flatMap((item: unknown, index): OutputEntry[] => {
    const at = `outputs[${index}]`;
    if (!isRecord(item)) {
      problems.add(`config file key ${at}`, 'expected a mapping with out, format, path, ...');
      return [];
    }
    const values = new Map<SettingKey, RawSetting>();
    let name: string | undefined;
    for (const [key, entryValue] of Object.entries(item)) {
      const entryAt = `${at}.${SAFE_KEY_NAME.test(key) ? key : '(unnamed)'}`;
      if (key === 'name') {
        if (typeof entryValue === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(entryValue)) {
          name = entryValue;
        } else {
          problems.add(`config file key ${entryAt}`, 'expected a name of letters, digits, ".", "_" or "-"');
        }
        continue;
      }
      const settingKey = FILE_INDEX.get(key);
      if (settingKey !== undefined && SETTINGS[settingKey].perOutput !== true) {
        problems.add(`config file key ${entryAt}`, 'not a per-output setting; set it at the top level');
        continue;
      }
      readKey(key, entryValue, values, problems, { candidates: OUTPUT_KEYS, prefix: `${at}.` });
    }
    return [{ at, name, values }];
  });
}

function position(content: string, offset: number): { line: number; column: number } {
  const before = content.slice(0, offset).split('\n');
  return { line: before.length, column: (before.at(-1)?.length ?? 0) + 1 };
}

function errnoSuffix(error: unknown): string {
  const code = isRecord(error) ? error['code'] : undefined;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code) ? ` (${code})` : '';
}

// ---------------------------------------------------------------------------------------------------------------
// Resolution

/** Reads an env var: trimmed, and empty means unset. */
function readEnv(env: Readonly<Record<string, string | undefined>>, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

class Resolver {
  /** The app selector of the flags, env and the file's top level, computed once. */
  baseApp: AppSelector | 'missing' | 'invalid' | undefined;
  readonly #invalid = new Set<string>();
  readonly #cache = new Map<SettingKey, unknown>();

  constructor(
    readonly command: Command,
    readonly flags: ReadonlyMap<SettingKey, RawSetting>,
    readonly env: Readonly<Record<string, string | undefined>>,
    readonly file: FileLayer | undefined,
    readonly problems: Problems,
  ) {}

  /** The raw value with the highest precedence: flag, then env, then the file's top level. */
  pick(key: SettingKey): RawSetting | undefined {
    const spec: SettingSpec<unknown> = SETTINGS[key];
    if (!spec.commands.includes(this.command)) return undefined;
    const flag = this.flags.get(key);
    if (flag !== undefined) return flag;
    const fromEnv = spec.env === undefined ? undefined : readEnv(this.env, spec.env);
    if (fromEnv !== undefined && spec.env !== undefined)
      return { raw: fromEnv, origin: { layer: 'env', name: spec.env } };
    return this.file?.top.get(key);
  }

  /** The parsed value, or undefined when unset or invalid (invalid values are recorded as problems). */
  get<K extends SettingKey>(key: K): Settings[K] | undefined {
    if (this.#cache.has(key)) return this.#cache.get(key) as Settings[K] | undefined;
    const value = this.parse(key, this.pick(key), key);
    this.#cache.set(key, value);
    return value;
  }

  parse<K extends SettingKey>(key: K, source: RawSetting | undefined, id: string): Settings[K] | undefined {
    if (source === undefined) return undefined;
    const spec = SETTINGS[key] as SettingSpec<Settings[K]>;
    const parsed = spec.parse(source.raw);
    if (parsed.ok) return parsed.value;
    this.#invalid.add(id);
    this.problems.setting(key, `expected ${parsed.expected}`, source.origin);
    return undefined;
  }

  isInvalid(id: string): boolean {
    return this.#invalid.has(id);
  }

  /** Reports a required setting that is missing (and not already reported as invalid). */
  require<T>(value: T | undefined, key: SettingKey, what: string, id: string = key): value is T {
    if (value !== undefined) return true;
    if (!this.isInvalid(id)) {
      const file = SETTINGS[key].file;
      this.problems.setting(key, `required; ${what}${file === undefined ? '' : ` (config file: ${file})`}`);
    }
    return false;
  }
}

type AppSelector = { readonly app: string } | { readonly appId: string };

/**
 * The app selector: the layer (flag, env, file) that names an app wins, by name or id; naming it both ways in one
 * layer is an error. `missing` and `invalid` are told apart so an invalid value is not also reported as missing.
 */
function pickApp(
  resolver: Resolver,
  app: RawSetting | undefined,
  appId: RawSetting | undefined,
): AppSelector | 'missing' | 'invalid' {
  if (app !== undefined && appId !== undefined) {
    const rankApp = RANK[app.origin.layer];
    const rankId = RANK[appId.origin.layer];
    if (rankApp === rankId) {
      const subject = `${label('app')} and ${label('appId')}`;
      resolver.problems.add(subject, 'give the app by name or by id, not both', app.origin);
      return 'invalid';
    }
    return rankApp > rankId ? pickApp(resolver, app, undefined) : pickApp(resolver, undefined, appId);
  }
  if (appId !== undefined) {
    const value = resolver.parse('appId', appId, 'appId');
    return value === undefined ? 'invalid' : { appId: value };
  }
  if (app !== undefined) {
    const value = resolver.parse('app', app, 'app');
    return value === undefined ? 'invalid' : { app: value };
  }
  return 'missing';
}

function buildSource(resolver: Resolver, entry?: OutputEntry): SourceQuery | undefined {
  const own = <K extends SettingKey>(key: K): Settings[K] | undefined =>
    entry?.values.has(key) === true
      ? resolver.parse(key, entry.values.get(key), `${entry.at}.${key}`)
      : resolver.get(key);
  const selector =
    entry !== undefined && (entry.values.has('app') || entry.values.has('appId'))
      ? pickApp(resolver, entry.values.get('app'), entry.values.get('appId'))
      : (resolver.baseApp ??= pickApp(resolver, resolver.pick('app'), resolver.pick('appId')));
  const env = own('env');
  const path = own('path') ?? DEFAULTS.path;
  const recursive = own('recursive') ?? false;
  const tags = own('tags') ?? [];
  const keys = own('keys') ?? [];

  if (selector === 'missing') {
    const where = entry === undefined ? 'app or appId' : 'app or appId, at the top level or in each output';
    resolver.problems.add(
      `${label('app')} or ${label('appId')}`,
      `required; name the app (config file: ${where})`,
    );
  }
  const envId = entry?.values.has('env') === true ? `${entry.at}.env` : 'env';
  const hasEnv = resolver.require(env, 'env', 'name the environment', envId);
  if (!hasEnv || env === undefined || typeof selector === 'string') return undefined;
  return {
    ...selector,
    env,
    path,
    recursive,
    ...(tags.length > 0 ? { tags } : {}),
    ...(keys.length > 0 ? { keys } : {}),
  };
}

function buildOutputs(resolver: Resolver): OutputConfig[] {
  const entries: readonly (OutputEntry | undefined)[] = resolver.file?.outputs ?? [undefined];
  if (entries.length === 0) {
    resolver.problems.add('config file key outputs', 'expected at least one output');
    return [];
  }
  const outputs: OutputConfig[] = [];
  entries.forEach((entry, index) => {
    const id = entry?.at ?? 'base';
    const own = <K extends SettingKey>(key: K): Settings[K] | undefined =>
      entry?.values.has(key) === true
        ? resolver.parse(key, entry.values.get(key), `${id}.${key}`)
        : resolver.get(key);
    const source = buildSource(resolver, entry);
    const out = own('out');
    const formats = own('format') ?? DEFAULTS.snapshotFormats;
    const fileMode = own('fileMode') ?? DEFAULTS.fileMode;
    const uid = own('uid');
    const gid = own('gid');
    const outId = entry?.values.has('out') === true ? `${id}.out` : 'out';
    const what =
      entry === undefined ? 'give the snapshot directory' : `give the snapshot directory for ${entry.at}`;
    if (!resolver.require(out, 'out', what, outId) || source === undefined) return;
    outputs.push({
      name: entry === undefined ? 'default' : (entry.name ?? `outputs[${index}]`),
      source,
      out,
      formats,
      fileMode,
      uid,
      gid,
    });
  });

  // Two outputs in one directory (or one inside another) would overwrite each other's ..data link.
  const dirs = outputs.map((output) => posix.normalize(output.out).replace(/\/+$/, ''));
  for (let a = 0; a < dirs.length; a += 1) {
    for (let b = a + 1; b < dirs.length; b += 1) {
      const [x = '', y = ''] = [dirs[a], dirs[b]];
      if (x === y || x.startsWith(`${y}/`) || y.startsWith(`${x}/`)) {
        resolver.problems.add(
          `config file keys ${outputs[a]?.name ?? ''} and ${outputs[b]?.name ?? ''}`,
          'outputs must write to separate directories, neither inside the other',
        );
      }
    }
  }
  const names = outputs.map((output) => output.name);
  if (new Set(names).size !== names.length)
    resolver.problems.add('config file key outputs', 'names must be unique');
  return outputs;
}

function buildAuth(resolver: Resolver, readFile: (path: string) => string): AuthConfig | undefined {
  const { problems } = resolver;
  const envToken = readEnv(resolver.env, 'PHASE_SERVICE_TOKEN');
  // --token-file beats PHASE_SERVICE_TOKEN (flag over env); PHASE_SERVICE_TOKEN beats the file's tokenFile (env
  // over file); the two env vars together are ambiguous.
  const fileSource = resolver.pick('tokenFile');
  if (fileSource?.origin.layer === 'env' && envToken !== undefined) {
    problems.add('PHASE_SERVICE_TOKEN and PHASE_TOKEN_FILE', 'set one of them, not both');
    return undefined;
  }
  const useFile = fileSource !== undefined && (fileSource.origin.layer !== 'file' || envToken === undefined);
  if (!useFile) {
    if (envToken === undefined) {
      problems.add(
        'token',
        'required; set PHASE_SERVICE_TOKEN, or --token-file / PHASE_TOKEN_FILE (config file: tokenFile)',
      );
      return undefined;
    }
    if (/\s/.test(envToken)) {
      problems.add('PHASE_SERVICE_TOKEN', 'expected one token, without spaces or line breaks');
      return undefined;
    }
    return withHiddenToken({ source: 'env' as const }, envToken);
  }
  const tokenFile = resolver.get('tokenFile');
  if (tokenFile === undefined) return undefined;
  let content: string;
  try {
    content = readFile(tokenFile);
  } catch (error) {
    problems.setting('tokenFile', `cannot read the token file${errnoSuffix(error)}`, fileSource.origin);
    return undefined;
  }
  const token = content.trim();
  if (token === '' || /\s/.test(token)) {
    const what =
      token === '' ? 'the token file is empty' : 'expected one token on one line in the token file';
    problems.setting('tokenFile', what, fileSource.origin);
    return undefined;
  }
  return withHiddenToken({ source: 'file' as const, tokenFile }, token);
}

function withHiddenToken<T extends object>(auth: T, token: string): T & { readonly token: string } {
  return Object.defineProperty(auth, 'token', { value: token, enumerable: false }) as T & { token: string };
}

function checkUrl(
  resolver: Resolver,
  key: 'host' | 'notifyHttp',
  url: HttpUrl | undefined,
  insecure: boolean,
) {
  if (url === undefined || url.isSecure || insecure) return;
  resolver.problems.setting(
    key,
    'expected an https:// URL; http:// is allowed only for loopback hosts (127.0.0.0/8, ::1, localhost) ' +
      'unless --insecure-http is set',
    resolver.pick(key)?.origin,
  );
}

function buildNotify(resolver: Resolver): NotifyConfig | undefined {
  const signal = resolver.get('notifySignal');
  const pidfile = resolver.get('notifyPidfile');
  const processName = resolver.get('notifyProcess');
  const http = resolver.get('notifyHttp');
  const exec = resolver.get('notifyExec');
  if (pidfile !== undefined && processName !== undefined) {
    resolver.problems.add(
      '--notify-pidfile / --notify-process',
      'choose one way to find the process, not both',
    );
  }
  if (signal !== undefined && pidfile === undefined && processName === undefined) {
    if (!resolver.isInvalid('notifyPidfile') && !resolver.isInvalid('notifyProcess')) {
      resolver.problems.setting(
        'notifySignal',
        'needs --notify-pidfile or --notify-process to know whom to signal',
      );
    }
  }
  const hasTarget =
    pidfile !== undefined || processName !== undefined || http !== undefined || exec !== undefined;
  if (!hasTarget) return undefined;
  return {
    signal: pidfile !== undefined || processName !== undefined ? (signal ?? 'SIGHUP') : undefined,
    pidfile,
    process: processName,
    http: http?.href,
    exec,
    onStart: resolver.get('notifyOnStart') ?? false,
    debounceMs: resolver.get('notifyDebounce') ?? DEFAULTS.notifyDebounceMs,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// loadConfig

export interface LoadConfigOptions<C extends string = Command> {
  /** The command: `once`, `sidecar`, `run` or `export`. */
  readonly command: C;
  /** The arguments after the command. For `run`, everything after `--` is the child's argv. */
  readonly argv: readonly string[];
  /** Environment variables (pass `process.env`); values are trimmed and empty means unset. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /**
   * Reads `--config` / `PHASE_CONFIG` and the token file, as UTF-8.
   * @default fs.readFileSync(path, 'utf8')
   */
  readonly readFile?: (path: string) => string;
  /**
   * Parses the `--config` file: the `yaml` package's `parseDocument`. Required when a config file is named.
   * @default the `yaml` package's, when loadConfig comes from `@phasekit/agent`; none in the CLI's core, which loads
   *   the package only when {@link configFileNamed} says a file is named.
   */
  readonly parseYaml?: YamlParser;
}

/** Whether argv or env names a `--config` file, i.e. whether {@link loadConfig} will need a YAML parser. */
export function configFileNamed(
  command: string,
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): boolean {
  if (!isCommand(command)) return false;
  // Problems are reported by loadConfig itself; here only the answer matters.
  const { flags } = parseArgv(command, argv, new Problems());
  return (flags.get('config') ?? envSetting(env, 'config')) !== undefined;
}

/**
 * Builds the configuration of one command from argv, env and an optional YAML file (precedence: flag, env, file,
 * default). Pure apart from `readFile`.
 *
 * @returns A deeply frozen config; `auth.token` is non-enumerable so serialising the config leaves it out.
 * @throws {PhaseError} `CONFIG`, one error that lists every problem by flag, env var or file key, never a value.
 * @example
 * const config = loadConfig({ command: 'once', argv: ['--app', 'shop', '--env', 'prod', '--out', '/secrets'], env: process.env });
 */
export function loadConfig<C extends Command>(options: LoadConfigOptions<C>): ConfigFor<C>;
export function loadConfig(options: LoadConfigOptions<string>): AgentConfig;
export function loadConfig(options: LoadConfigOptions<string>): AgentConfig {
  const { command, argv, env } = options;
  const readFile = options.readFile ?? ((path: string) => readFileSync(path, 'utf8'));
  const problems = new Problems();
  if (!isCommand(command)) {
    const near = suggest(String(command), COMMANDS);
    problems.add(
      'command',
      `expected one of ${COMMANDS.join(', ')}${near === undefined ? '' : `; did you mean ${near}?`}`,
    );
    problems.throwIfAny(command);
    throw new Error('unreachable');
  }

  const { flags, rest } = parseArgv(command, argv, problems);
  const configSource = flags.get('config') ?? envSetting(env, 'config');
  const file =
    configSource === undefined ? undefined : loadFile(configSource, readFile, options.parseYaml, problems);
  const resolver = new Resolver(command, flags, env, file, problems);
  const configFile = resolver.get('config');

  const auth = buildAuth(resolver, readFile);
  const hostUrl = resolver.get('host');
  const insecureHttp = resolver.get('insecureHttp') ?? false;
  checkUrl(resolver, 'host', hostUrl, insecureHttp);
  const timeoutMs = resolver.get('timeout') ?? DEFAULTS.timeoutMs;
  const base = {
    host: hostUrl?.href ?? DEFAULTS.host,
    insecureHttp,
    timeoutMs,
    allowEmpty: resolver.get('allowEmpty') ?? false,
    skipInvalidKeys: resolver.get('skipInvalidKeys') ?? false,
    log: {
      level: resolver.get('logLevel') ?? DEFAULTS.logLevel,
      format: resolver.get('logFormat') ?? DEFAULTS.logFormat,
    },
    configFile,
  };

  if (command !== 'run' && rest !== undefined) {
    problems.add('--', `only phasekit run takes a command after --`);
  }

  let config: AgentConfig | undefined;
  switch (command) {
    case 'once': {
      const outputs = buildOutputs(resolver);
      const shrinkThreshold = resolver.get('shrinkThreshold') ?? DEFAULTS.shrinkThreshold;
      if (auth !== undefined) config = { command, auth, ...base, outputs, shrinkThreshold };
      break;
    }
    case 'sidecar': {
      const outputs = buildOutputs(resolver);
      const intervalMs = resolver.get('interval') ?? DEFAULTS.intervalMs;
      const staleAfter = resolver.get('staleAfter');
      if (staleAfter !== undefined && staleAfter <= intervalMs) {
        problems.setting(
          'staleAfter',
          'expected a duration longer than --interval',
          resolver.pick('staleAfter')?.origin,
        );
      }
      const notify = buildNotify(resolver);
      checkUrl(resolver, 'notifyHttp', resolver.get('notifyHttp'), insecureHttp);
      const sidecar: Omit<SidecarConfig, 'auth'> = {
        command,
        ...base,
        outputs,
        shrinkThreshold: resolver.get('shrinkThreshold') ?? DEFAULTS.shrinkThreshold,
        intervalMs,
        staleAfterMs: staleAfter ?? Math.max(3 * intervalMs, intervalMs + timeoutMs),
        notify,
        healthAddr: resolver.get('healthAddr'),
        cleanup: resolver.get('cleanup') ?? false,
      };
      if (auth !== undefined) config = { ...sidecar, auth };
      break;
    }
    case 'run': {
      const source = buildSource(resolver);
      if (rest === undefined || rest.length === 0 || rest[0] === '') {
        problems.add(
          'command',
          'expected the command to run after --, as in: phasekit run [options] -- node server.js',
        );
      }
      const run = { command: [...(rest ?? [])], onChange: resolver.get('onChange') ?? DEFAULTS.onChange };
      const common = {
        ...base,
        shrinkThreshold: resolver.get('shrinkThreshold') ?? DEFAULTS.shrinkThreshold,
        intervalMs: resolver.get('interval') ?? DEFAULTS.intervalMs,
      };
      if (auth !== undefined && source !== undefined) config = { command, auth, source, ...common, run };
      break;
    }
    case 'export': {
      const source = buildSource(resolver);
      const formats = resolver.get('format');
      let format: OutputFormat = DEFAULTS.exportFormat;
      if (formats !== undefined) {
        const [only] = formats;
        if (formats.length !== 1 || only === undefined || only === 'files') {
          problems.setting(
            'format',
            `expected one of ${OUTPUT_FORMATS.join(', ')}`,
            resolver.pick('format')?.origin,
          );
        } else {
          format = only;
        }
      }
      if (auth !== undefined && source !== undefined) config = { command, auth, ...base, source, format };
      break;
    }
  }
  problems.throwIfAny(command);
  if (config === undefined)
    throw new PhaseError(ErrorCode.CONFIG, `Invalid configuration for phasekit ${command}`);
  return deepFreeze(config);
}

function envSetting(
  env: Readonly<Record<string, string | undefined>>,
  key: SettingKey,
): RawSetting | undefined {
  const name = SETTINGS[key].env;
  const value = name === undefined ? undefined : readEnv(env, name);
  return value === undefined || name === undefined
    ? undefined
    : { raw: value, origin: { layer: 'env', name } };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const key of Reflect.ownKeys(value)) deepFreeze((value as Record<PropertyKey, unknown>)[key]);
    Object.freeze(value);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------------------------
// Agent errors and exit codes

/** Codes of {@link AgentError}: failures of the agent itself rather than of Phase or the SDK. */
export const AgentErrorCode = {
  /** The new secret set was empty or shrank past `--shrink-threshold`, and was refused (exit 7). */
  GUARD_REFUSED: 'GUARD_REFUSED',
  /** Writing the snapshot directory failed: read-only, full, or not permitted (exit 8). */
  WRITE: 'WRITE',
  /** Another live phasekit process writes the snapshot directory (exit 8). */
  LOCKED: 'LOCKED',
  /** The command line cannot be carried out: `run` with no command, or one that cannot be started (exit 2). */
  USAGE: 'USAGE',
  /** Stopped by a signal before the work was done (exit 1). */
  STOPPED: 'STOPPED',
  /** Notifying the app failed, or the notifier's options are bad; see the notify module's NotifyErrorCode. */
  NOTIFY_CONFIG: 'NOTIFY_CONFIG',
  NOTIFY_PIDFILE_MISSING: 'NOTIFY_PIDFILE_MISSING',
  NOTIFY_PIDFILE_UNREADABLE: 'NOTIFY_PIDFILE_UNREADABLE',
  NOTIFY_PIDFILE_INVALID: 'NOTIFY_PIDFILE_INVALID',
  NOTIFY_NO_PROCESS: 'NOTIFY_NO_PROCESS',
  NOTIFY_PROCESS_GONE: 'NOTIFY_PROCESS_GONE',
  NOTIFY_NOT_PERMITTED: 'NOTIFY_NOT_PERMITTED',
  NOTIFY_SIGNAL_FAILED: 'NOTIFY_SIGNAL_FAILED',
  NOTIFY_HTTP_STATUS: 'NOTIFY_HTTP_STATUS',
  NOTIFY_HTTP_FAILED: 'NOTIFY_HTTP_FAILED',
  NOTIFY_EXEC_EXIT: 'NOTIFY_EXEC_EXIT',
  NOTIFY_EXEC_FAILED: 'NOTIFY_EXEC_FAILED',
  NOTIFY_EXEC_TIMEOUT: 'NOTIFY_EXEC_TIMEOUT',
  NOTIFY_ABORTED: 'NOTIFY_ABORTED',
} as const;
export type AgentErrorCode = (typeof AgentErrorCode)[keyof typeof AgentErrorCode];

const AGENT_BRAND = Symbol.for('phasekit.agent-error');

/** An agent failure. Like PhaseError, its message names keys, paths and counts, never a secret value. */
export class AgentError extends Error {
  override readonly name = 'AgentError';
  readonly code: AgentErrorCode;

  constructor(code: AgentErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }

  /** Matches AgentErrors from any copy of this package. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return (
      typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[AGENT_BRAND] === true
    );
  }
}
Object.defineProperty(AgentError.prototype, AGENT_BRAND, { value: true });

/** True when `value` is an {@link AgentError}, optionally with the given code. */
export function isAgentError(value: unknown, code?: AgentErrorCode): value is AgentError {
  return value instanceof AgentError && (code === undefined || value.code === code);
}

/** The process exit codes of product.md. */
export const EXIT_CODES = Object.freeze({
  OK: 0,
  FAILURE: 1,
  CONFIG: 2,
  AUTH: 3,
  NOT_FOUND: 4,
  UNAVAILABLE: 5,
  INTEGRITY: 6,
  GUARD_REFUSED: 7,
  OUTPUT: 8,
} as const);

// A Record over every ErrorCode, so a new SDK code fails to compile until it is given an exit code here.
const PHASE_EXIT_CODES: Readonly<Record<ErrorCode, number>> = {
  CONFIG: EXIT_CODES.CONFIG,
  INVALID_TOKEN: EXIT_CODES.CONFIG,
  UNAUTHORIZED: EXIT_CODES.AUTH,
  FORBIDDEN: EXIT_CODES.AUTH,
  NOT_FOUND: EXIT_CODES.NOT_FOUND,
  NETWORK: EXIT_CODES.UNAVAILABLE,
  TIMEOUT: EXIT_CODES.UNAVAILABLE,
  RATE_LIMITED: EXIT_CODES.UNAVAILABLE,
  DECRYPT: EXIT_CODES.INTEGRITY,
  // A reference to a key, environment or app that is not there is "not found"; a cycle is an integrity failure.
  REFERENCE: EXIT_CODES.NOT_FOUND,
  CONFLICT: EXIT_CODES.FAILURE,
  ABORTED: EXIT_CODES.FAILURE,
};

const AGENT_EXIT_CODES: Readonly<Record<AgentErrorCode, number>> = {
  GUARD_REFUSED: EXIT_CODES.GUARD_REFUSED,
  WRITE: EXIT_CODES.OUTPUT,
  LOCKED: EXIT_CODES.OUTPUT,
  USAGE: EXIT_CODES.CONFIG,
  STOPPED: EXIT_CODES.FAILURE,
  // Notification failures never end a command; bad notifier options are configuration.
  NOTIFY_CONFIG: EXIT_CODES.CONFIG,
  NOTIFY_PIDFILE_MISSING: EXIT_CODES.FAILURE,
  NOTIFY_PIDFILE_UNREADABLE: EXIT_CODES.FAILURE,
  NOTIFY_PIDFILE_INVALID: EXIT_CODES.FAILURE,
  NOTIFY_NO_PROCESS: EXIT_CODES.FAILURE,
  NOTIFY_PROCESS_GONE: EXIT_CODES.FAILURE,
  NOTIFY_NOT_PERMITTED: EXIT_CODES.FAILURE,
  NOTIFY_SIGNAL_FAILED: EXIT_CODES.FAILURE,
  NOTIFY_HTTP_STATUS: EXIT_CODES.FAILURE,
  NOTIFY_HTTP_FAILED: EXIT_CODES.FAILURE,
  NOTIFY_EXEC_EXIT: EXIT_CODES.FAILURE,
  NOTIFY_EXEC_FAILED: EXIT_CODES.FAILURE,
  NOTIFY_EXEC_TIMEOUT: EXIT_CODES.FAILURE,
  NOTIFY_ABORTED: EXIT_CODES.FAILURE,
};

/**
 * The exit code for an error, per product.md: 2 usage or configuration (and a malformed token, or an `--out` that
 * is not a directory), 3 authentication or permission, 4 app, environment or key not found (a `${...}` reference to a
 * missing key included), 5 network, timeout or throttling after retries, 6 decryption or a reference cycle, 7 refused
 * by a guard, 8 the output could not be written (read-only, full, or locked by another phasekit), 1 a bug.
 */
export function exitCodeFor(error: unknown): number {
  if (error instanceof AgentError) return AGENT_EXIT_CODES[error.code];
  if (error instanceof PhaseError) {
    return error.code === 'REFERENCE' && error.reason === 'cycle'
      ? EXIT_CODES.INTEGRITY
      : PHASE_EXIT_CODES[error.code];
  }
  return EXIT_CODES.FAILURE;
}
