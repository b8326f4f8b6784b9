/** A process environment, or any map of the same shape (tests pass plain objects). */
export type EnvSource = Readonly<Record<string, string | undefined>>;

/**
 * Reads one environment variable the way every part of phasekit does: the value trimmed, and empty (or only
 * whitespace) meaning unset, so `PHASE_HOST=` in a pod spec falls back to the default instead of failing.
 *
 * @example
 * const host = readEnv(process.env, 'PHASE_HOST') ?? DEFAULT_HOST;
 */
export function readEnv(env: EnvSource, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}
