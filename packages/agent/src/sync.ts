import { isPhaseError, type PhaseClient, type Secret, type SecretEntry } from '@phasekit/sdk';
import { AgentError, AgentErrorCode, type OutputConfig } from './config.js';
import type { Logger } from 'pino';
import { createSnapshotWriter, type SnapshotWriter, type WriteResult } from './snapshot/writer.js';

/** The guard against wiping an app's configuration by accident (product.md, failure rules). */
export interface GuardOptions {
  readonly allowEmpty: boolean;
  /** Refuse a set smaller than this fraction of the previous one; 0 turns the check off. */
  readonly shrinkThreshold: number;
}

/** Why a new set of `next` keys must not replace `previous` keys, or undefined when it may. */
export function guardReason(
  next: number,
  previous: number | undefined,
  guard: GuardOptions,
): string | undefined {
  if (guard.allowEmpty) return undefined;
  if (next === 0) {
    return previous
      ? `Phase returned no secrets; refusing to replace the ${previous} keys of the current snapshot (use --allow-empty to accept an empty set)`
      : 'Phase returned no secrets; refusing to write an empty snapshot (use --allow-empty to accept an empty set)';
  }
  if (previous !== undefined && guard.shrinkThreshold > 0 && next < previous * guard.shrinkThreshold) {
    return `the secret set shrank from ${previous} to ${next} keys, below the shrink threshold of ${guard.shrinkThreshold}; refusing it (use --allow-empty, or lower --shrink-threshold)`;
  }
  return undefined;
}

/** Secrets as the entries the writer and formatters take. A key found in two folders keeps the deepest. */
export function toEntries(secrets: readonly Secret[]): SecretEntry[] {
  const byKey = new Map<string, SecretEntry>();
  for (const s of secrets) byKey.set(s.key, { key: s.key, value: s.value });
  return [...byKey.values()];
}

/** The last `updatedAt` among the secrets, for the manifest. */
export function newestUpdate(secrets: readonly Secret[]): string | undefined {
  let newest: string | undefined;
  for (const s of secrets)
    if (s.updatedAt && (newest === undefined || s.updatedAt > newest)) newest = s.updatedAt;
  return newest;
}

/** A writer for one output, recording where its secrets come from. */
export function writerFor(output: OutputConfig, host: string, logger: Logger): SnapshotWriter {
  return createSnapshotWriter({
    dir: output.out,
    formats: output.formats,
    fileMode: output.fileMode,
    ...(output.uid === undefined ? {} : { uid: output.uid }),
    ...(output.gid === undefined ? {} : { gid: output.gid }),
    source: {
      host,
      app: output.source.app ?? output.source.appId ?? '',
      env: output.source.env,
      path: output.source.path,
    },
    logger: logger.child({ component: 'sink.file', output: output.name }),
  });
}

/**
 * Checks the guard and writes one snapshot. Throws AgentError GUARD_REFUSED without touching the disk when
 * the set is refused. Keys a format cannot hold are left out of it (the writer logs them); the rest is written.
 */
export async function applySecrets(
  writer: SnapshotWriter,
  secrets: readonly Secret[],
  guard: GuardOptions,
): Promise<WriteResult> {
  const entries = toEntries(secrets);
  const previous = (await writer.current())?.keys.length;
  const reason = guardReason(entries.length, previous, guard);
  if (reason !== undefined) throw new AgentError(AgentErrorCode.GUARD_REFUSED, reason);
  const updatedAt = newestUpdate(secrets);
  let result: WriteResult;
  try {
    result = await writer.write(entries, updatedAt === undefined ? {} : { updatedAt });
  } catch (error) {
    if (isPhaseError(error)) throw error;
    throw new AgentError(AgentErrorCode.WRITE, `could not write the snapshot: ${(error as Error).message}`, {
      cause: error,
    });
  }
  // The writer logs each refused key (as an error naming it and the format).
  return result;
}

/** Reads one output's secrets within the deadline. */
export function fetchOutput(
  client: PhaseClient,
  output: OutputConfig,
  signal: AbortSignal,
): Promise<Secret[]> {
  return client.getSecrets(output.source, { signal });
}
