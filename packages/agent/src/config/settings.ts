// Every setting described once: flag, env var, YAML key, commands, help line and parser; USAGE is generated from it.
import { MIN_POLL_INTERVAL_MS } from '@phasekit/sdk';
import { COMMANDS, DEFAULTS, LOG_FORMATS, LOG_LEVELS, MIN_DURATION_MS, SNAPSHOT_FORMATS } from './types.js';
import type { Command, LogFormat, LogLevel, SnapshotFormat } from './types.js';
import { settingKeys } from './problems.js';
import { posix } from 'node:path';
import { OUTPUT_FORMATS } from '@phasekit/sdk';
import {
  formatDuration,
  splitList,
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
} from '../parse.js';
import type { HttpUrl, ListenAddress, OnChange, Parsed } from '../parse.js';
import { NAME_TRANSFORMERS } from '../k8s/transform.js';
import type { NameTransformer } from '../k8s/transform.js';

// ---------------------------------------------------------------------------------------------------------------
// The settings table

/** Every setting a flag, env var or config file key can give, parsed. */
export interface Settings {
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
  kubeconfig: string;
  secret: string;
  namespace: string;
  secretType: string;
  labels: readonly (readonly [string, string])[];
  annotations: readonly (readonly [string, string])[];
  nameTransformer: NameTransformer;
  adopt: boolean;
  watch: boolean;
  allowNamespaces: readonly string[];
  leaderElect: boolean;
  leaseDuration: number;
  operatorNamespace: string;
}

export type SettingKey = keyof Settings;
/** A raw value: a string from a flag, env var or YAML scalar, or a YAML list (and repeated list flags). */
export type Raw = string | readonly string[];

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

export function list<T>(parseItem: (item: string) => Parsed<T>, options: { nonEmpty?: boolean } = {}) {
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

export const text = (what: string) =>
  scalar((input) => {
    const value = input.trim();
    return value === '' || value.includes('\0') ? bad(what) : ok(value);
  });

export const duration = (minMs: number) =>
  scalar((input) => {
    const parsed = tryParseDuration(input);
    if (!parsed.ok) return parsed;
    return parsed.value >= minMs
      ? parsed
      : bad(`a duration of at least ${formatDuration(minMs)}, such as 10s`);
  });

export const boolean = scalar(tryParseBoolean);

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

/** A DNS-1123 label: a namespace name. */
function tryParseDnsLabel(input: string): Parsed<string> {
  const value = input.trim();
  return /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(value)
    ? ok(value)
    : bad('a lower-case DNS label such as my-namespace');
}

/** A DNS-1123 subdomain: a Secret name. */
function tryParseDnsName(input: string): Parsed<string> {
  const value = input.trim();
  return value.length <= 253 &&
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(value)
    ? ok(value)
    : bad('a lower-case DNS name such as app-secrets');
}

/** `key=value` of a label or annotation; the key as Kubernetes qualifies it (an optional prefix/ and a name). */
function tryParseMetadataPair(input: string): Parsed<readonly [string, string]> {
  const equals = input.indexOf('=');
  const key = equals === -1 ? '' : input.slice(0, equals).trim();
  const value = equals === -1 ? '' : input.slice(equals + 1).trim();
  const name = key.includes('/') ? key.slice(key.indexOf('/') + 1) : key;
  const prefix = key.includes('/') ? key.slice(0, key.indexOf('/')) : undefined;
  const validName = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(name);
  const validPrefix = prefix === undefined || tryParseDnsName(prefix).ok;
  return equals > 0 && validName && validPrefix
    ? ok([key, value] as const)
    : bad('key=value, such as team=payments');
}

const ALL = COMMANDS;
/** The commands that read one Phase environment named on the command line (the operator reads PhaseSecrets). */
const SOURCE: readonly Command[] = ['once', 'sidecar', 'run', 'export', 'k8s-sync'];
const K8S: readonly Command[] = ['k8s-sync', 'operator'];
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
    commands: SOURCE,
    placeholder: '<file>',
    help: 'read the service token from this file (re-read when it changes) instead of PHASE_SERVICE_TOKEN',
    parse: text('a file path'),
  },
  host: {
    kind: 'value',
    flag: '--host',
    env: 'PHASE_HOST',
    file: 'host',
    commands: SOURCE,
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
    commands: SOURCE,
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
    commands: SOURCE,
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
    commands: SOURCE,
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
    commands: SOURCE,
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
    commands: SOURCE,
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
    commands: SOURCE,
    perOutput: true,
    placeholder: '<list>',
    help: 'only secrets with at least one of these tags (comma list)',
    parse: list((item) => ok(item)),
  },
  keys: {
    kind: 'list',
    flag: '--keys',
    file: 'keys',
    commands: SOURCE,
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
    commands: ['sidecar', 'run', 'k8s-sync'],
    placeholder: '<duration>',
    help: 'how often to poll Phase for changes',
    default: formatDuration(DEFAULTS.intervalMs),
    parse: duration(MIN_POLL_INTERVAL_MS),
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
    parse: duration(MIN_DURATION_MS),
  },
  staleAfter: {
    kind: 'value',
    flag: '--stale-after',
    file: 'staleAfter',
    commands: SIDECAR,
    placeholder: '<duration>',
    help: '/readyz fails when the last successful sync is older than this; must exceed --interval',
    default: 'max(3 × interval, interval + timeout)',
    parse: duration(MIN_DURATION_MS),
  },
  allowEmpty: {
    kind: 'boolean',
    flag: '--allow-empty',
    file: 'allowEmpty',
    commands: SOURCE,
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
    commands: ['sidecar', 'operator'],
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
  kubeconfig: {
    kind: 'value',
    flag: '--kubeconfig',
    file: 'kubeconfig',
    commands: K8S,
    placeholder: '<file>',
    help: 'kubeconfig to use; default KUBECONFIG, ~/.kube/config, then the pod service account',
    parse: text('a file path'),
  },
  secret: {
    kind: 'value',
    flag: '--secret',
    env: 'PHASE_K8S_SECRET',
    file: 'secret',
    commands: ['k8s-sync'],
    placeholder: '<name>',
    help: 'name of the managed Secret to write (required)',
    parse: scalar(tryParseDnsName),
  },
  namespace: {
    kind: 'value',
    flag: '--namespace',
    env: 'PHASE_K8S_NAMESPACE',
    file: 'namespace',
    commands: K8S,
    placeholder: '<name>',
    help: {
      'k8s-sync': "namespace of the Secret; default the kubeconfig context's namespace, else default",
      operator:
        'watch PhaseSecrets in this namespace only (namespaced mode, with a Role); default all namespaces',
    },
    parse: scalar(tryParseDnsLabel),
  },
  secretType: {
    kind: 'value',
    flag: '--type',
    file: 'type',
    commands: ['k8s-sync'],
    placeholder: '<type>',
    help: 'type of the Secret, such as Opaque or kubernetes.io/tls',
    default: 'Opaque',
    parse: text('a Secret type'),
  },
  labels: {
    kind: 'list',
    flag: '--label',
    file: 'labels',
    commands: ['k8s-sync'],
    placeholder: '<key=value>',
    help: 'a label for the Secret (repeatable, or a comma list)',
    parse: list(tryParseMetadataPair),
  },
  annotations: {
    kind: 'list',
    flag: '--annotation',
    file: 'annotations',
    commands: ['k8s-sync'],
    placeholder: '<key=value>',
    help: 'an annotation for the Secret (repeatable, or a comma list)',
    parse: list(tryParseMetadataPair),
  },
  nameTransformer: {
    kind: 'value',
    flag: '--name-transformer',
    file: 'nameTransformer',
    commands: ['k8s-sync'],
    placeholder: '<name>',
    help: `how Phase keys become Secret keys, as in Phase's operator: ${NAME_TRANSFORMERS.join(', ')}`,
    default: 'upper_snake',
    parse: scalar((input) => tryParseChoice(input, NAME_TRANSFORMERS)),
  },
  adopt: {
    kind: 'boolean',
    flag: '--adopt',
    file: 'adopt',
    commands: ['k8s-sync'],
    help: 'take over an existing Secret of that name that phasekit does not manage (refused otherwise, exit 7)',
    default: 'false',
    parse: boolean,
  },
  watch: {
    kind: 'boolean',
    flag: '--watch',
    file: 'watch',
    commands: ['k8s-sync'],
    help: 'keep the Secret current, polling every --interval, instead of writing it once',
    default: 'false',
    parse: boolean,
  },
  allowNamespaces: {
    kind: 'list',
    flag: '--allow-namespaces',
    file: 'allowNamespaces',
    commands: ['operator'],
    placeholder: '<list>',
    help: 'namespaces a PhaseSecret may read its token from or write Secrets into besides its own (default: only its own)',
    parse: list(tryParseDnsLabel),
  },
  leaderElect: {
    kind: 'boolean',
    flag: '--leader-elect',
    env: 'PHASE_LEADER_ELECT',
    file: 'leaderElect',
    commands: ['operator'],
    help: 'hold a coordination.k8s.io Lease so that only one replica writes (needed with more than one replica)',
    default: 'false',
    parse: boolean,
  },
  leaseDuration: {
    kind: 'value',
    flag: '--lease-duration',
    file: 'leaseDuration',
    commands: ['operator'],
    placeholder: '<duration>',
    help: 'with --leader-elect: how long a Lease not renewed stays held (renewed every third of it)',
    default: '15s',
    parse: duration(3_000),
  },
  operatorNamespace: {
    kind: 'value',
    flag: '--operator-namespace',
    env: 'PHASE_OPERATOR_NAMESPACE',
    file: 'operatorNamespace',
    commands: ['operator'],
    placeholder: '<name>',
    help: "where the operator keeps its Lease and HMAC key; default the pod's own namespace, else default",
    parse: scalar(tryParseDnsLabel),
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
  'k8s-sync': {
    usage: 'phasekit k8s sync [options]',
    summary: 'Write one managed Kubernetes Secret from a Phase environment, once or with --watch.',
  },
  operator: {
    usage: 'phasekit operator [options]',
    summary:
      "Reconcile PhaseSecret resources (secrets.phase.dev/v1alpha1, the spec of Phase's operator) into managed Secrets.",
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
