import {
  isPhaseError,
  type PhaseClient,
  type Secret,
  type SecretEntry,
  type SecretsWatch,
} from '@phasekit/sdk';
import { type OutputConfig } from './config/index.js';
import { AgentError, AgentErrorCode } from './errors.js';
import type { Logger } from './logger.js';
import { createSnapshotWriter, type SnapshotWriter, type WriteResult } from './snapshot/writer.js';

/**
 * A watch's first secrets, for commands whose first read must succeed: rejects with the first error that comes
 * before them (the watch itself would retry a transient one), and with STOPPED when the watch ends first.
 */
export async function firstSecrets(watch: SecretsWatch): Promise<readonly Secret[]> {
  const first = await Promise.race([
    watch[Symbol.asyncIterator]().next(),
    new Promise<never>((_, reject) => watch.once('error', (e) => (watch.current ? undefined : reject(e)))),
  ]);
  if (first.done === true)
    throw new AgentError(AgentErrorCode.STOPPED, 'stopped before the secrets were read');
  return first.value.secrets;
}

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

/**
 * Secrets as the entries the writer and formatters take.
 * @throws {AgentError} `GUARD_REFUSED` when a recursive read found the same key in two folders: one would silently
 *   shadow the other, so the set is refused, naming the key and both paths.
 */
export function toEntries(secrets: readonly Secret[]): SecretEntry[] {
  const byKey = new Map<string, Secret>();
  for (const s of secrets) {
    const other = byKey.get(s.key);
    if (other !== undefined) {
      throw new AgentError(
        AgentErrorCode.GUARD_REFUSED,
        `key ${s.key} is at two paths, ${other.path} and ${s.path}; phasekit does not choose one (narrow --path, or rename one of them)`,
      );
    }
    byKey.set(s.key, s);
  }
  return secrets.map((s) => ({ key: s.key, value: s.value }));
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
 * Checks the guards and writes one snapshot. Throws AgentError GUARD_REFUSED without touching the disk when the set
 * is refused: empty or shrunken, or (without `skipInvalidKeys`) holding a key that a requested format cannot hold.
 * With `skipInvalidKeys` such keys are left out of that format (the manifest lists them) and the rest is written.
 */
export async function applySecrets(
  writer: SnapshotWriter,
  secrets: readonly Secret[],
  guard: GuardOptions & { readonly skipInvalidKeys?: boolean },
): Promise<WriteResult> {
  const entries = toEntries(secrets);
  const updatedAt = newestUpdate(secrets);
  let result: WriteResult;
  try {
    const previous = (await writer.current())?.keys.length;
    const reason = guardReason(entries.length, previous, guard);
    if (reason !== undefined) throw new AgentError(AgentErrorCode.GUARD_REFUSED, reason);
    result = await writer.write(entries, {
      ...(updatedAt === undefined ? {} : { updatedAt }),
      refuseInvalidKeys: guard.skipInvalidKeys !== true,
    });
  } catch (error) {
    throw asWriteError(error);
  }
  return result;
}

/** Takes over each output's directory at start (see SnapshotWriter.prepare); a failure is exit 8. */
export async function prepareOutputs(writers: readonly SnapshotWriter[]): Promise<void> {
  try {
    for (const writer of writers) await writer.prepare();
  } catch (error) {
    throw asWriteError(error);
  }
}

/** A file system failure as AgentError `WRITE` (exit 8); phasekit's own errors pass through. */
function asWriteError(error: unknown): unknown {
  if (isPhaseError(error) || error instanceof AgentError) return error;
  return new AgentError(AgentErrorCode.WRITE, `could not write the snapshot: ${describeFsError(error)}`, {
    cause: error,
  });
}

/** A file system error in a line: its code and message (which names the path, never a value). */
function describeFsError(error: unknown): string {
  if (!(error instanceof Error)) return 'unknown error';
  const code = (error as { code?: unknown }).code;
  const hint =
    code === 'EROFS'
      ? ' (the file system is read-only)'
      : code === 'ENOSPC'
        ? ' (the file system is full)'
        : code === 'EACCES' || code === 'EPERM'
          ? ' (permission denied)'
          : '';
  return `${error.message}${hint}`;
}

/** Reads one output's secrets within the deadline. */
export function fetchOutput(
  client: PhaseClient,
  output: OutputConfig,
  signal: AbortSignal,
): Promise<Secret[]> {
  return client.getSecrets(output.source, { signal });
}
