// The `phasekit` command. This is the only module that touches `process`: argv, env, signals, stdout and
// the exit code. Everything it runs lives in modules that take those as arguments.
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import type { Logger } from 'pino';
import type { RuntimeStats } from './metrics.js';
import { isPhaseError, type PhaseClientOptions } from '@phasekit/sdk';
import {
  COMMANDS,
  USAGE,
  exitCodeFor,
  isAgentError,
  configFileNamed,
  isCommand,
  loadConfig,
  wantsHelp,
  type AgentConfig,
  type YamlParser,
} from './config.js';
import { createLogger } from './logger.js';
import { VERSION } from './version.js';

/** The first SIGTERM stops gracefully; if that takes longer than this, we exit anyway. */
const STOP_DEADLINE_MS = 4_000;

const HELP = `phasekit ${VERSION}: deliver Phase secrets, decrypted only where they are used

Usage: phasekit <command> [options]

Commands:
  once       fetch once and write the snapshot directory (init container)
  sidecar    keep the snapshot current, notify the app, serve health and metrics
  run        run a command with the secrets in its environment: phasekit run [options] -- CMD ARGS...
  export     print the secrets in a format: phasekit export --format dotenv

Run 'phasekit <command> --help' for its options. Docs: docs/reference/configuration.md
`;

/**
 * V8 re-compiles hot WebAssembly functions with its optimising compiler (TurboFan) on a background thread, and a
 * process cannot exit before such jobs finish: that was ~80 ms of every `phasekit once` when undici's WebAssembly
 * parser did our HTTP, plus the compiler's memory in a sidecar. The CLI now speaks HTTP through node:http
 * (the SDK's NodeHttpDispatcher); the WebAssembly left is libsodium's, where sodium-native is not installed (the
 * container image), and Liftoff, V8's baseline WebAssembly compiler, keeps it to the same bounded cost.
 */
function tuneRuntime(): void {
  // An operator's own WebAssembly compiler flags win.
  if (!/--(?:no-)?(?:liftoff|wasm[-_]tier[-_]up)/.test(givenNodeFlags()))
    setFlagsFromString('--liftoff-only');
}

/** The node flags the operator gave: on the command line and in NODE_OPTIONS. */
function givenNodeFlags(): string {
  return `${process.execArgv.join(' ')} ${process.env['NODE_OPTIONS'] ?? ''}`;
}

/** The `yaml` package's parser, loaded on demand (in the CLI bundle the CommonJS package is a default export). */
async function loadYamlParser(): Promise<YamlParser> {
  const yaml = (await import('yaml')) as {
    parseDocument?: YamlParser;
    default?: { parseDocument: YamlParser };
  };
  const parse = yaml.parseDocument ?? yaml.default?.parseDocument;
  if (parse === undefined) throw new Error('the yaml package has no parseDocument');
  return parse;
}

/**
 * V8 settings for the long-running sidecar, applied from inside because it is started as `node phasekit.js
 * sidecar`. These can be changed at run time (unlike heap sizes), and each is left alone when the operator set
 * something about it in the node flags or NODE_OPTIONS.
 *
 * - The young generation stays at its initial 1 MB semi-space instead of growing to 16 MB under the burst of a
 *   1,000-secret change: the sidecar's allocation is tiny between changes, so the headroom was 30 MB of resident
 *   memory doing nothing (docs/benchmarks.md, item 5).
 * - Old-generation limits grown in small steps (2 MB rather than 8 MB above the live heap).
 * - No optimising compiler and no baseline compiler: a sidecar runs a little code once a second, which V8's
 *   interpreter runs well enough; TurboFan's and Sparkplug's code and compile memory cost it more than the speed
 *   gains (Sparkplug alone: ~1.3 MB of resident memory for ~10% more CPU, docs/benchmarks.md, item 5).
 */
const SIDECAR_V8_FLAGS: readonly { readonly flag: string; readonly unlessSet: RegExp }[] = [
  {
    flag: '--semi-space-growth-factor=1',
    unlessSet: /--(?:max-|min-)?semi[-_]space|--semi[-_]space[-_]growth/,
  },
  { flag: '--optimize-for-size', unlessSet: /--(?:no-)?optimize[-_]for[-_]size/ },
  { flag: '--no-opt', unlessSet: /--(?:no-)?(?:opt|turbofan)\b/ },
  { flag: '--no-sparkplug', unlessSet: /--(?:no-)?sparkplug\b/ },
];

function tuneV8ForSidecar(): void {
  const given = givenNodeFlags();
  for (const { flag, unlessSet } of SIDECAR_V8_FLAGS) if (!unlessSet.test(given)) setFlagsFromString(flag);
}

/** The process figures of the sidecar's /metrics, read at scrape time. */
function runtimeStats(): RuntimeStats {
  const memory = process.memoryUsage();
  const cpu = process.cpuUsage();
  return {
    residentBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    heapTotalBytes: memory.heapTotal,
    externalBytes: memory.external,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    startTimeSeconds: (Date.now() - process.uptime() * 1000) / 1000,
  };
}

function write(stream: NodeJS.WriteStream, text: string): void {
  stream.write(text.endsWith('\n') ? text : `${text}\n`);
}

function describe(error: unknown): { code: string; message: string } {
  if (isPhaseError(error) || isAgentError(error)) return { code: error.code, message: error.message };
  return { code: 'INTERNAL', message: error instanceof Error ? error.message : 'unexpected failure' };
}

/** Stops on SIGTERM/SIGINT: the first aborts `controller`, a second (or the deadline) exits at once. */
function handleStopSignals(controller: AbortController, logger: Logger, relay: boolean): () => void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (relay) return; // `run` relays signals to its child and exits with the child
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    controller.abort(new Error(`received ${signal}`));
    setTimeout(() => {
      logger.error({ deadlineMs: STOP_DEADLINE_MS }, 'did not stop in time: exiting');
      process.exit(1);
    }, STOP_DEADLINE_MS).unref();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  };
}

async function execute(
  config: AgentConfig,
  logger: Logger,
  controller: AbortController,
  clientOptions: Partial<PhaseClientOptions>,
): Promise<number> {
  switch (config.command) {
    // Each command loads only its own modules: an init container should not pay to compile the sidecar.
    case 'once': {
      const { runOnce } = await import('./commands.js');
      await runOnce(config, { logger, signal: controller.signal, clientOptions });
      return 0;
    }
    case 'export': {
      const { runExport } = await import('./commands.js');
      process.stdout.write(await runExport(config, { logger, signal: controller.signal, clientOptions }));
      return 0;
    }
    case 'run': {
      const { RELAYED_SIGNALS, runCommand } = await import('./run.js');
      return runCommand(
        config,
        {
          logger,
          clientOptions,
          env: process.env,
          signals: (handler) => {
            for (const s of RELAYED_SIGNALS) process.on(s, handler);
            return () => {
              for (const s of RELAYED_SIGNALS) process.off(s, handler);
            };
          },
        },
        controller.signal,
      );
    }
    case 'sidecar': {
      tuneV8ForSidecar();
      // The notifier (and node:child_process with it) is loaded only when there is someone to notify.
      const [{ Sidecar }, { startHealthServer }, { createMetrics }, notify] = await Promise.all([
        import('./agent.js'),
        import('./health.js'),
        import('./metrics.js'),
        config.notify ? import('./notify.js') : undefined,
      ]);
      const metrics = createMetrics({ runtime: runtimeStats });
      const notifier =
        config.notify && notify
          ? notify.createNotifier({
              ...(config.notify.signal ? { signal: config.notify.signal } : {}),
              ...(config.notify.pidfile ? { pidfile: config.notify.pidfile } : {}),
              ...(config.notify.process ? { processName: config.notify.process } : {}),
              ...(config.notify.http ? { http: config.notify.http } : {}),
              ...(config.notify.exec ? { exec: config.notify.exec } : {}),
              // The hook needs neither the token nor where it lives.
              env: { ...process.env, PHASE_SERVICE_TOKEN: undefined, PHASE_TOKEN_FILE: undefined },
              debounceMs: config.notify.debounceMs,
              logger: logger.child({ component: 'notify' }),
              metrics: (method, result) => metrics.notification(method, result),
            })
          : undefined;
      const sidecar = new Sidecar(config, { logger, metrics, notifier, clientOptions });
      const health = config.healthAddr
        ? await startHealthServer({
            host: config.healthAddr.host,
            port: config.healthAddr.port,
            metrics,
            readiness: () => sidecar.readiness(),
            logger: logger.child({ component: 'health' }),
            signal: controller.signal,
          })
        : undefined;
      try {
        await sidecar.run(controller.signal);
      } finally {
        await health?.close();
      }
      logger.info({}, 'stopped');
      return 0;
    }
  }
}

/** Runs the CLI with these arguments; resolves with the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    write(process.stdout, HELP);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === '-v') {
    write(process.stdout, VERSION);
    return 0;
  }
  if (!isCommand(command)) {
    write(
      process.stderr,
      `phasekit: unknown command '${command}' (commands: ${COMMANDS.join(', ')}); see phasekit --help`,
    );
    return 2;
  }
  if (wantsHelp(rest)) {
    write(process.stdout, USAGE[command]);
    return 0;
  }

  let config: AgentConfig;
  try {
    // The YAML parser is a large module: loaded only when there is a file to parse.
    const parseYaml = configFileNamed(command, rest, process.env) ? await loadYamlParser() : undefined;
    config = loadConfig({
      command,
      argv: rest,
      env: process.env,
      readFile: (p) => readFileSync(p, 'utf8'),
      ...(parseYaml ? { parseYaml } : {}),
    });
  } catch (error) {
    const { code, message } = describe(error);
    write(process.stderr, `phasekit ${command}: ${message}`);
    return code === 'INTERNAL' ? 1 : exitCodeFor(error);
  }

  tuneRuntime();
  const logger = createLogger({ level: config.log.level, format: config.log.format });
  const controller = new AbortController();
  const stopHandling = handleStopSignals(controller, logger, command === 'run');
  try {
    // Each client makes its own undici pool (honouring HTTPS_PROXY and NO_PROXY) and closes it when done.
    return await execute(config, logger, controller, {});
  } catch (error) {
    const { code, message } = describe(error);
    const exitCode = exitCodeFor(error);
    logger.error({ code, exitCode }, message);
    return exitCode;
  } finally {
    stopHandling();
  }
}
