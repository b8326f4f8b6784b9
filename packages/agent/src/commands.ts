import type { Logger } from 'pino';
import { PhaseClient, formatSecrets, type PhaseClientOptions } from '@phasekit/sdk';
import {
  AgentError,
  AgentErrorCode,
  type AgentConfig,
  type ExportConfig,
  type OnceConfig,
} from './config.js';
import { applySecrets, guardReason, toEntries, writerFor } from './sync.js';

/** A client for a loaded configuration. */
export function clientFor(
  config: Pick<AgentConfig, 'auth' | 'host' | 'timeoutMs'>,
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
  const client = clientFor(config, deps.logger, deps.clientOptions);
  try {
    for (const output of config.outputs) {
      const log = deps.logger.child({ component: 'once', output: output.name });
      const secrets = await client.getSecrets(output.source, { signal: deadline });
      const result = await applySecrets(writerFor(output, config.host, deps.logger), secrets, config);
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
    return formatSecrets(entries, config.format);
  } finally {
    await client.close();
  }
}
