// Small, pure parsers for the agent's settings. Each `tryParseX` returns a result that says what was expected
// when the input is bad; each `parseX` throws a PhaseError `CONFIG` that names the setting. Neither ever quotes
// the input: a misplaced token must not end up in an error message or a log line.
import { isIP, isIPv4 } from 'node:net';
import { constants as osConstants } from 'node:os';
import { ErrorCode, PhaseError } from '@phasekit/sdk';

/** The outcome of a `tryParseX` call: the value, or what was expected instead (never the input). */
export type Parsed<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly expected: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = <T = never>(expected: string): Parsed<T> => ({ ok: false, expected });

function unwrap<T>(result: Parsed<T>, setting: string): T {
  if (result.ok) return result.value;
  throw new PhaseError(ErrorCode.CONFIG, `${setting}: expected ${result.expected}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Durations

/** The longest duration accepted: Node's timers overflow (and fire at once) beyond 2^31 - 1 ms. */
export const MAX_DURATION_MS = 2_147_483_647;

const DURATION_EXPECTED = 'a duration such as 250ms, 10s, 5m or 1h (a bare number means seconds)';
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const BARE_NUMBER = /^\d+(?:\.\d+)?$/;
const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/;
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;

/** Parses `250ms`, `10s`, `5m`, `1h`, `1m30s` or a bare number of seconds into whole milliseconds. */
export function tryParseDuration(input: string): Parsed<number> {
  const text = input.trim();
  let ms: number;
  if (BARE_NUMBER.test(text)) {
    ms = Number(text) * 1000;
  } else if (DURATION.test(text)) {
    ms = 0;
    for (const [, amount, unit] of text.matchAll(DURATION_PART)) {
      ms += Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS];
    }
  } else {
    return bad(DURATION_EXPECTED);
  }
  ms = Math.round(ms);
  if (!Number.isFinite(ms) || ms > MAX_DURATION_MS) return bad(`${DURATION_EXPECTED}, at most 596h`);
  return ok(ms);
}

/**
 * Parses a duration (`250ms`, `10s`, `5m`, `1h`, `1m30s`; a bare number means seconds) into milliseconds.
 *
 * @param setting Names the setting in the error, for example `--interval`.
 * @throws {PhaseError} `CONFIG`, naming the setting and never the input.
 * @example parseDuration('5m') // 300000
 */
export function parseDuration(input: string, setting = 'duration'): number {
  return unwrap(tryParseDuration(input), setting);
}

/** Formats milliseconds the way a user would write them: `250ms`, `10s`, `5m`, `1h`, `1m30s`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms % 1000 !== 0) return `${ms}ms`;
  let seconds = ms / 1000;
  let text = '';
  for (const [unit, size] of [
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    const amount = Math.floor(seconds / size);
    if (amount > 0) text += `${amount}${unit}`;
    seconds -= amount * size;
  }
  return text;
}

// ---------------------------------------------------------------------------------------------------------------
// Signals

const SIGNAL_NAMES: ReadonlySet<string> = new Set(Object.keys(osConstants.signals));

/** Accepts `SIGHUP` or `HUP` (upper case, as `kill -l` prints them) and returns the canonical `SIGHUP`. */
export function tryParseSignal(input: string): Parsed<NodeJS.Signals> {
  const text = input.trim();
  const expected = 'a signal name such as SIGHUP or HUP';
  if (/^\d+$/.test(text)) return bad(`${expected}, not a number`);
  for (const name of [text, `SIG${text}`]) {
    if (SIGNAL_NAMES.has(name)) return ok(name as NodeJS.Signals);
  }
  const upper = text.toUpperCase();
  const canonical = upper.startsWith('SIG') ? upper : `SIG${upper}`;
  if (SIGNAL_NAMES.has(canonical)) return bad(`${expected} in upper case; did you mean ${canonical}?`);
  const near = suggest(canonical, [...SIGNAL_NAMES]);
  return bad(near === undefined ? expected : `${expected}; did you mean ${near}?`);
}

/**
 * Validates a signal name against `os.constants.signals`.
 *
 * @returns The canonical name: `parseSignal('HUP')` is `'SIGHUP'`.
 * @throws {PhaseError} `CONFIG`, with a suggestion for a wrong case or a near miss.
 */
export function parseSignal(input: string, setting = 'signal'): NodeJS.Signals {
  return unwrap(tryParseSignal(input), setting);
}

// ---------------------------------------------------------------------------------------------------------------
// File modes and ids

const FILE_MODE = /^(?:0[oO]?)?([0-7]{3})$/;

/** Parses an octal permission mode, `0400`, `0o440` or `440`, at most `0777`. */
export function tryParseFileMode(input: string): Parsed<number> {
  const match = FILE_MODE.exec(input.trim());
  if (match?.[1] === undefined) return bad('an octal file mode such as 0400, 0440 or 0o600');
  return ok(Number.parseInt(match[1], 8));
}

/**
 * Parses an octal file mode: `0400`, `0o440` or `440` (always octal, as `chmod` reads it).
 *
 * @throws {PhaseError} `CONFIG` for anything else, or a mode with setuid, setgid or sticky bits.
 */
export function parseFileMode(input: string, setting = 'file mode'): number {
  return unwrap(tryParseFileMode(input), setting);
}

/** Parses a numeric user or group id. */
export function tryParseId(input: string): Parsed<number> {
  const text = input.trim();
  const value = /^\d{1,10}$/.test(text) ? Number(text) : Number.NaN;
  // 2^32 - 1 is (uid_t)-1, which chown reads as "leave unchanged".
  return value <= 4_294_967_294 ? ok(value) : bad('a numeric id from 0 to 4294967294');
}

// ---------------------------------------------------------------------------------------------------------------
// Addresses and URLs

/**
 * True for hosts that can only mean this machine: `localhost`, `127.0.0.0/8`, `::1` (with or without brackets)
 * and IPv4-mapped loopback. Other names are not resolved: a name that merely resolves to 127.0.0.1 today is not
 * trusted with plain HTTP.
 */
export function isLoopbackHost(host: string): boolean {
  let name = host.trim().toLowerCase();
  if (name.startsWith('[') && name.endsWith(']')) name = name.slice(1, -1);
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name === 'localhost') return true;
  if (isIPv4(name)) return name.startsWith('127.');
  if (isIP(name) === 6) {
    if (name === '::1' || /^(?:0{1,4}:){7}0{0,3}1$/.test(name)) return true;
    const mapped = /^(?:0{0,4}:){0,5}:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(name)?.[1];
    return mapped !== undefined && mapped.startsWith('127.');
  }
  return false;
}

/** Where a server listens. */
export interface ListenAddress {
  /** Interface address or name; `0.0.0.0` when the address was written `:PORT`. */
  readonly host: string;
  /** TCP port; `0` picks a free one. */
  readonly port: number;
}

const HOST_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** Parses `host:port`, `:port` (all IPv4 interfaces) or `[ipv6]:port`. */
export function tryParseListenAddress(input: string): Parsed<ListenAddress> {
  const expected = 'host:port such as 127.0.0.1:8080, [::1]:8080 or :8080 (all interfaces)';
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(input.trim());
  if (match === null) return bad(expected);
  const [, v6, name = '', portText = ''] = match;
  const port = Number(portText);
  if (port > 65_535) return bad(`${expected}, with a port from 0 to 65535`);
  if (v6 !== undefined) return isIP(v6) === 6 ? ok({ host: v6, port }) : bad(expected);
  if (name === '') return ok({ host: '0.0.0.0', port });
  return isIPv4(name) || HOST_NAME.test(name) ? ok({ host: name, port }) : bad(expected);
}

/**
 * Parses a listen address: `127.0.0.1:8080`, `[::1]:8080`, `localhost:8080`, or `:8080` for all interfaces.
 *
 * @throws {PhaseError} `CONFIG` naming the setting.
 */
export function parseListenAddress(input: string, setting = 'address'): ListenAddress {
  return unwrap(tryParseListenAddress(input), setting);
}

/** A parsed http(s) URL, with whether it may be used without `--insecure-http`. */
export interface HttpUrl {
  /** Normalised URL text. */
  readonly href: string;
  readonly protocol: 'http:' | 'https:';
  readonly hostname: string;
  /** `https:`, or `http:` to a loopback host. */
  readonly isSecure: boolean;
}

/**
 * Parses an http(s) URL without credentials or fragment. With `origin: true` (the Phase host) the query is
 * refused too and a trailing slash is dropped.
 */
export function tryParseHttpUrl(input: string, options: { readonly origin?: boolean } = {}): Parsed<HttpUrl> {
  const what =
    options.origin === true ? 'an http(s) URL such as https://console.phase.dev' : 'an http(s) URL';
  let url: URL;
  try {
    url = new URL(input.trim());
  } catch {
    return bad(what);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return bad(what);
  if (url.username !== '' || url.password !== '') return bad(`${what} without user or password`);
  if (url.hash !== '' || (options.origin === true && url.search !== '')) {
    return bad(`${what} without ${options.origin === true ? 'query or ' : ''}fragment`);
  }
  const href = options.origin === true ? url.href.replace(/\/+$/, '') : url.href;
  return ok({
    href,
    protocol: url.protocol,
    hostname: url.hostname,
    isSecure: url.protocol === 'https:' || isLoopbackHost(url.hostname),
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Scalars and lists

/** `true`/`false`, also `1`/`0` and `yes`/`no` (any case), as YAML and env files write them. */
export function tryParseBoolean(input: string): Parsed<boolean> {
  const text = input.trim().toLowerCase();
  if (text === 'true' || text === '1' || text === 'yes') return ok(true);
  if (text === 'false' || text === '0' || text === 'no') return ok(false);
  return bad('true or false');
}

/** A fraction from 0 to 1, written `0.5` or `50%`. */
export function tryParseFraction(input: string): Parsed<number> {
  const text = input.trim();
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(text)?.[1];
  const value = percent === undefined ? (BARE_NUMBER.test(text) ? Number(text) : NaN) : Number(percent) / 100;
  return value >= 0 && value <= 1 ? ok(value) : bad('a fraction from 0 to 1, such as 0.5 or 50%');
}

/** One of a fixed set of words, with a did-you-mean for near misses. */
export function tryParseChoice<const T extends string>(input: string, choices: readonly T[]): Parsed<T> {
  const text = input.trim();
  if ((choices as readonly string[]).includes(text)) return ok(text as T);
  const near = suggest(text.toLowerCase(), choices);
  return bad(`one of ${choices.join(', ')}${near === undefined ? '' : `; did you mean ${near}?`}`);
}

/** Splits a comma list, trimming items and dropping empty ones: `a, b,,c` is `['a', 'b', 'c']`. */
export function splitList(input: string): string[] {
  return input
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** What `phasekit run --on-change` does when the secrets change. */
export type OnChange =
  | { readonly action: 'none' }
  | { readonly action: 'restart' }
  | { readonly action: 'signal'; readonly signal: NodeJS.Signals };

/** Parses `none`, `restart` or `signal:NAME` (`signal:HUP`, `signal:SIGUSR1`). */
export function tryParseOnChange(input: string): Parsed<OnChange> {
  const text = input.trim();
  const expected = 'none, restart or signal:NAME (for example signal:SIGHUP)';
  if (text === 'none' || text === 'restart') return ok({ action: text });
  if (!text.startsWith('signal:')) {
    const near = suggest(text.toLowerCase(), ['none', 'restart', 'signal:SIGHUP']);
    return bad(near === undefined ? expected : `${expected}; did you mean ${near}?`);
  }
  const signal = tryParseSignal(text.slice('signal:'.length));
  return signal.ok
    ? ok({ action: 'signal', signal: signal.value })
    : bad(`signal:NAME with ${signal.expected}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Commands (argv without a shell)

const SHELL_ONLY = new Set(['|', '&', ';', '<', '>', '(', ')', '$', '`']);

/**
 * Turns a command into argv without a shell: a JSON array of strings (`["kill","-HUP","1"]`), or words split on
 * whitespace where single quotes keep text literally, double quotes allow `\"` and `\\`, and a backslash outside
 * quotes escapes the next character. Unquoted shell syntax (`|`, `;`, `$`, redirections, ...) is refused rather
 * than silently passed on as text; wrap the command in `["sh","-c","..."]` to get a shell.
 */
export function tryParseCommand(input: string | readonly string[]): Parsed<readonly string[]> {
  const expected =
    'a command such as `kill -HUP 1` or a JSON array of strings; it runs without a shell, so unquoted ' +
    '| & ; < > ( ) $ ` are refused (use ["sh","-c","..."] for a shell)';
  if (typeof input !== 'string') {
    return input.length > 0 && input[0] !== '' ? ok([...input]) : bad(expected);
  }
  const text = input.trim();
  if (text.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return bad(expected);
    }
    const isArgv = Array.isArray(parsed) && parsed.every((item) => typeof item === 'string');
    return isArgv ? tryParseCommand(parsed as string[]) : bad(expected);
  }
  const words: string[] = [];
  let word: string | undefined;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i] ?? '';
    if (quote === "'") {
      if (char === "'") quote = undefined;
      else word += char;
    } else if (quote === '"') {
      if (char === '"') quote = undefined;
      else if (char === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\')) word += text[++i] ?? '';
      else word += char;
    } else if (/\s/.test(char)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (char === "'" || char === '"') {
      quote = char;
      word ??= '';
    } else if (char === '\\') {
      if (i + 1 >= text.length) return bad(expected);
      word = (word ?? '') + (text[++i] ?? '');
    } else if (SHELL_ONLY.has(char)) {
      return bad(expected);
    } else {
      word = (word ?? '') + char;
    }
  }
  if (quote !== undefined) return bad(`${expected} (a quote is not closed)`);
  if (word !== undefined) words.push(word);
  return words.length > 0 ? ok(words) : bad(expected);
}

// ---------------------------------------------------------------------------------------------------------------
// Suggestions

/** The candidate closest to `input` by edit distance, when it is close enough to be a likely typo. */
export function suggest(input: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const distance = editDistance(input, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const limit = Math.max(1, Math.min(3, Math.floor((best?.length ?? 0) / 3)));
  return bestDistance <= limit ? best : undefined;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return Number.POSITIVE_INFINITY;
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
    }
    previous = current;
  }
  return previous[b.length] ?? Number.POSITIVE_INFINITY;
}
