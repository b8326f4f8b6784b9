/**
 * `date.toISOString()` (`2026-11-23T01:06:17.042Z`) from the UTC fields. On Node 20, V8's own toISOString is the
 * first thing in a process to set up its time-zone cache, which pages in about 1 MB of ICU's data and code that
 * the sidecar otherwise never touches (docs/benchmarks.md, item 5). Years 0 to 9999, as toISOString writes them.
 */
export function isoTime(date: Date): string {
  const [year, month, day, hours, minutes, seconds, ms] = utcFields(date);
  return `${year}-${month}-${day}T${hours}:${minutes}:${seconds}.${ms}Z`;
}

/**
 * The UTC fields of `date`, zero-padded as toISOString writes them: year (4 digits), month, day, hours, minutes,
 * seconds (2 each) and milliseconds (3). Without Date#toISOString: see {@link isoTime}.
 */
export function utcFields(date: Date): [string, string, string, string, string, string, string] {
  return [
    pad(date.getUTCFullYear(), 4),
    pad(date.getUTCMonth() + 1, 2),
    pad(date.getUTCDate(), 2),
    pad(date.getUTCHours(), 2),
    pad(date.getUTCMinutes(), 2),
    pad(date.getUTCSeconds(), 2),
    pad(date.getUTCMilliseconds(), 3),
  ];
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}
