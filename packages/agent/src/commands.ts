import type { Logger } from './logger.js';
import { PhaseClient, type PhaseClientOptions } from '@phasekit/sdk';
import { type AgentConfig, type ExportConfig, type OnceConfig, type OperatorConfig } from './config/index.js';
import { AgentError, AgentErrorCode } from './errors.js';
import { lockOutputs } from './snapshot/lock.js';
import { render, whyRefused } from './snapshot/writer.js';
import { applySecrets, guardReason, prepareOutputs, toEntries, writerFor } from './sync.js';

/** A client for a loaded configuration. */
export function clientFor(
  config: Pick<Exclude<AgentConfig, OperatorConfig>, 'auth' | 'host' | 'timeoutMs'>,
  logger: Logger,
  extra: Partial<PhaseClientOptions> = {},
): PhaseClient {
  return new PhaseClient({
    token: config.auth.token,
    host: config.host,
    env: {},
    totalTimeoutMs: config.timeoutMs,
    logger: logger.child({ component: 'sdk' }),
    ...extra,
  });
}

/**
 * `phasekit once`: fetch every output within `--timeout` and write its snapshot. Throws on the first
 * failure (the CLI maps it to an exit code); a snapshot already on disk is never harmed.
 */
export async function runOnce(
  config: OnceConfig,
  deps: { logger: Logger; signal: AbortSignal; clientOptions?: Partial<PhaseClientOptions> },
): Promise<void> {
  const deadline = AbortSignal.any([deps.signal, AbortSignal.timeout(config.timeoutMs)]);
  // One writer per directory: refused at once, before anything is fetched, when another phasekit holds one.
  const locks = await lockOutputs(config.outputs.map((output) => output.out));
  const client = clientFor(config, deps.logger, deps.clientOptions);
  try {
    const writers = config.outputs.map((output) => writerFor(output, config.host, deps.logger));
    await prepareOutputs(writers);
    for (const [i, output] of config.outputs.entries()) {
      const log = deps.logger.child({ component: 'once', output: output.name });
      const secrets = await client.getSecrets(output.source, { signal: deadline });
      const result = await applySecrets(writers[i]!, secrets, config);
      log.info(
        {
          version: result.version,
          keys: toEntries(secrets).length,
          changed: result.changed,
          out: output.out,
        },
        result.changed ? 'snapshot written' : 'snapshot up to date',
      );
    }
  } finally {
    await client.close();
    await Promise.all(locks.map((lock) => lock.release()));
  }
}

/** `phasekit export`: the secrets rendered in one format, for stdout. */
export async function runExport(
  config: ExportConfig,
  deps: { logger: Logger; signal: AbortSignal; clientOptions?: Partial<PhaseClientOptions> },
): Promise<string> {
  const client = clientFor(config, deps.logger, deps.clientOptions);
  try {
    const signal = AbortSignal.any([deps.signal, AbortSignal.timeout(config.timeoutMs)]);
    const entries = toEntries(await client.getSecrets(config.source, { signal }));
    // An empty document piped into a config file wipes it as surely as an empty snapshot would.
    const reason = guardReason(entries.length, undefined, {
      allowEmpty: config.allowEmpty,
      shrinkThreshold: 0,
    });
    if (reason !== undefined) throw new AgentError(AgentErrorCode.GUARD_REFUSED, reason);
    const { text, refused } = render(entries, config.format);
    if (refused.length > 0 && !config.skipInvalidKeys) {
      const list = refused.map((r) => JSON.stringify(r.key)).join(', ');
      throw new AgentError(
        AgentErrorCode.GUARD_REFUSED,
        `the ${config.format} format cannot hold ${refused.length === 1 ? 'key' : 'keys'} ${list}: ${whyRefused(refused[0]!)} (use --skip-invalid-keys to leave such keys out)`,
      );
    }
    const log = deps.logger.child({ component: 'export' });
    for (const r of refused) log.warn({ key: r.key, format: r.format }, r.reason);
    return text;
  } finally {
    await client.close();
  }
}
