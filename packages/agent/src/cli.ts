// The `phasekit` command. This is the only module that touches `process`: argv, env, signals, stdout and
// the exit code. Everything it runs lives in modules that take those as arguments.
import { readFileSync } from 'node:fs';
import type { Logger } from './logger.js';
import type { RuntimeStats } from './metrics.js';
import { isPhaseError, type PhaseClientOptions } from '@phasekit/sdk';
import {
  COMMANDS,
  commandName,
  USAGE,
  configFileNamed,
  isCommand,
  loadConfig,
  wantsHelp,
  type AgentConfig,
  type YamlParser,
} from './config/index.js';
import { exitCodeFor, isAgentError } from './errors.js';
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
  k8s sync   write one managed Kubernetes Secret from a Phase environment, once or with --watch
  operator   reconcile PhaseSecret resources into managed Secrets (a drop-in for Phase's operator)

Run 'phasekit <command> --help' for its options. Docs: docs/reference/configuration.md
`;

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
    case 'k8s-sync': {
      const { runK8sSync } = await import('./k8s/sync.js');
      await runK8sSync(config, { logger, signal: controller.signal, clientOptions });
      return 0;
    }
    case 'operator': {
      const { runOperatorCommand } = await import('./k8s/operator-command.js');
      await runOperatorCommand(config, {
        logger,
        signal: controller.signal,
        clientOptions,
        runtime: runtimeStats,
      });
      logger.info({}, 'stopped');
      return 0;
    }
    case 'sidecar': {
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
  // `phasekit k8s sync` is the command `k8s-sync`.
  const [command, ...rest] = argv[0] === 'k8s' && argv[1] === 'sync' ? ['k8s-sync', ...argv.slice(2)] : argv;
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
      `phasekit: unknown command '${command}' (commands: ${COMMANDS.map(commandName).join(', ')}); see phasekit --help`,
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
    write(process.stderr, `phasekit ${commandName(command)}: ${message}`);
    return code === 'INTERNAL' ? 1 : exitCodeFor(error);
  }

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
