// Resolution: flag > env > config file > default, and the typed pieces built from the resolved settings.
import { readEnv } from '@phasekit/sdk';
import type { EnvSource } from '@phasekit/sdk';
import { DEFAULTS } from './types.js';
import type { AuthConfig, Command, NotifyConfig, OutputConfig, SourceQuery } from './types.js';
import { SETTINGS } from './settings.js';
import type { SettingKey, SettingSpec, Settings } from './settings.js';
import { RANK, label } from './problems.js';
import type { RawSetting, Problems } from './problems.js';
import { errnoSuffix } from './file.js';
import type { FileLayer, OutputEntry } from './file.js';
import { posix } from 'node:path';
import type { HttpUrl } from '../parse.js';

// ---------------------------------------------------------------------------------------------------------------
// Resolution

export class Resolver {
  /** The app selector of the flags, env and the file's top level, computed once. */
  baseApp: AppSelector | 'missing' | 'invalid' | undefined;
  readonly #invalid = new Set<string>();
  readonly #cache = new Map<SettingKey, unknown>();

  constructor(
    readonly command: Command,
    readonly flags: ReadonlyMap<SettingKey, RawSetting>,
    readonly env: EnvSource,
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

export function buildSource(resolver: Resolver, entry?: OutputEntry): SourceQuery | undefined {
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

export function buildOutputs(resolver: Resolver): OutputConfig[] {
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

export function buildAuth(resolver: Resolver, readFile: (path: string) => string): AuthConfig | undefined {
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

export function checkUrl(
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

export function buildNotify(resolver: Resolver): NotifyConfig | undefined {
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
