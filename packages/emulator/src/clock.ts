/**
 * Timestamps in the server's format (`2025-09-25T07:48:21.865291Z`) that strictly increase, even for writes in the
 * same millisecond: pollers compare `environment.updated_at` strings, so two writes must never share one.
 */
export class Clock {
  #lastMicros: number;

  constructor(lastMicros = 0) {
    this.#lastMicros = lastMicros;
  }

  /** The last value handed out, in microseconds since the epoch (kept in snapshots). */
  get lastMicros(): number {
    return this.#lastMicros;
  }

  /** A new timestamp, strictly later than every previous one. */
  now(): string {
    const micros = Math.max(Date.now() * 1000, this.#lastMicros + 1);
    this.#lastMicros = micros;
    return formatMicros(micros);
  }
}

/** Formats epoch microseconds as ISO 8601 with six fractional digits and `Z`. */
export function formatMicros(micros: number): string {
  const ms = Math.floor(micros / 1000);
  const extra = String(micros % 1000).padStart(3, '0');
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, `.$1${extra}Z`);
}
