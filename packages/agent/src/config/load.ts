// loadConfig: (command, argv, env, an optional YAML file) to a frozen AgentConfig. Nothing here reads process.
import { COMMANDS, DEFAULTS, commandName, isCommand } from './types.js';
import type { AgentConfig, Command, ConfigFor, SidecarConfig } from './types.js';
import { SETTINGS } from './settings.js';
import type { SettingKey } from './settings.js';
import { Problems } from './problems.js';
import type { RawSetting } from './problems.js';
import { parseArgv } from './argv.js';
import { loadFile } from './file.js';
import type { YamlParser } from './file.js';
import { readEnv } from '@phasekit/sdk';
import type { EnvSource } from '@phasekit/sdk';
import { Resolver, buildAuth, buildNotify, buildOutputs, buildSource, checkUrl } from './resolve.js';
import { readFileSync } from 'node:fs';
import { ErrorCode, OUTPUT_FORMATS, PhaseError, defaultStaleAfterMs } from '@phasekit/sdk';
import type { OutputFormat } from '@phasekit/sdk';
import { suggest } from '../parse.js';

// ---------------------------------------------------------------------------------------------------------------
// loadConfig

export interface LoadConfigOptions<C extends string = Command> {
  /** The command: `once`, `sidecar`, `run` or `export`. */
  readonly command: C;
  /** The arguments after the command. For `run`, everything after `--` is the child's argv. */
  readonly argv: readonly string[];
  /** Environment variables (pass `process.env`); values are trimmed and empty means unset. */
  readonly env: EnvSource;
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
export function configFileNamed(command: string, argv: readonly string[], env: EnvSource): boolean {
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

  // The operator reads each PhaseSecret's token from its Secret; every other command needs one token.
  const auth = command === 'operator' ? undefined : buildAuth(resolver, readFile);
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
        staleAfterMs: staleAfter ?? defaultStaleAfterMs(intervalMs, timeoutMs),
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
    case 'k8s-sync': {
      const source = buildSource(resolver);
      const name = resolver.get('secret');
      if (name === undefined) problems.add('--secret', 'required: the name of the Secret to write');
      const secret =
        name === undefined
          ? undefined
          : {
              name,
              namespace: resolver.get('namespace'),
              type: resolver.get('secretType') ?? 'Opaque',
              labels: Object.fromEntries(resolver.get('labels') ?? []),
              annotations: Object.fromEntries(resolver.get('annotations') ?? []),
              nameTransformer: resolver.get('nameTransformer') ?? 'upper_snake',
            };
      if (auth !== undefined && source !== undefined && secret !== undefined) {
        config = {
          command,
          auth,
          ...base,
          source,
          kubeconfig: resolver.get('kubeconfig'),
          secret,
          adopt: resolver.get('adopt') ?? false,
          watch: resolver.get('watch') ?? false,
          intervalMs: resolver.get('interval') ?? DEFAULTS.intervalMs,
        };
      }
      break;
    }
    case 'operator': {
      config = {
        command,
        kubeconfig: resolver.get('kubeconfig'),
        namespace: resolver.get('namespace'),
        allowNamespaces: resolver.get('allowNamespaces') ?? [],
        leaderElect: resolver.get('leaderElect') ?? false,
        leaseDurationMs: resolver.get('leaseDuration') ?? 15_000,
        operatorNamespace: resolver.get('operatorNamespace'),
        healthAddr: resolver.get('healthAddr'),
        insecureHttp,
        timeoutMs,
        log: base.log,
        configFile,
      };
      break;
    }
  }
  problems.throwIfAny(command);
  if (config === undefined)
    throw new PhaseError(ErrorCode.CONFIG, `Invalid configuration for phasekit ${commandName(command)}`);
  return deepFreeze(config);
}

function envSetting(env: EnvSource, key: SettingKey): RawSetting | undefined {
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
