// The agent's voice: pino, one JSON object per line on stderr (stdout belongs to `phasekit export`), one child
// logger per component. The first defence is never logging a value; the redact paths below are a backstop.
import { pino } from 'pino';
import type { DestinationStream, Logger as PinoLogger } from 'pino';
import type { Logger as SdkLogger } from '@phasekit/sdk';
import type { LogFormat, LogLevel } from './config/index.js';

/**
 * The agent's logger: the SDK's {@link SdkLogger} plus `child`, which is all the agent's modules use, so that only
 * this file knows the logger is pino.
 */
export interface Logger extends SdkLogger {
  /** A logger whose lines carry `bindings` as well (one per component, output or process). */
  child(bindings: Record<string, unknown>): Logger;
}

/** Field paths replaced by `[redacted]` whatever a caller logs (a backstop, not a licence to log them). */
export const REDACT_PATHS: readonly string[] = Object.freeze([
  'token',
  '*.token',
  'serviceToken',
  '*.serviceToken',
  'value',
  '*.value',
  'secrets',
  '*.secrets',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'headers.cookie',
  '*.headers.cookie',
]);

export interface CreateLoggerOptions {
  /** @default 'info' */
  readonly level?: LogLevel;
  /** `json` (one object per line) or `text` (one readable line per entry). @default 'json' */
  readonly format?: LogFormat;
  /** Where lines go. @default stderr, written synchronously so nothing is lost on exit */
  readonly destination?: DestinationStream;
}

/**
 * Creates the agent's root logger: base field `name: "phasekit"`, ISO time, level labels, the error serialiser
 * below on `err` and `error`, and {@link REDACT_PATHS}. Derive one child per component:
 *
 * @example
 * const log = createLogger({ level: config.log.level, format: config.log.format });
 * const watcherLog = log.child({ component: 'watcher' });
 * watcherLog.info({ added: ['DATABASE_URL'], version: 3 }, 'secrets changed');
 */
export function createLogger(options: CreateLoggerOptions = {}): PinoLogger {
  const destination = options.destination ?? pino.destination({ dest: 2, sync: true });
  const level = options.level ?? 'info';
  // Stack traces are for whoever debugs phasekit itself: at the default level a warning is one readable line.
  const stack = level === 'debug' || level === 'trace';
  const serialize = (error: unknown) => serializeError(error, { stack });
  return pino(
    {
      level,
      base: { name: 'phasekit' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: serialize, error: serialize },
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    },
    options.format === 'text' ? textStream(destination) : destination,
  );
}

/** What the error serialiser keeps of an error. */
export interface SerializedError {
  /** Constructor name, or `typeof` for a thrown non-error. */
  readonly type: string;
  readonly message?: string;
  readonly code?: string | number;
  readonly status?: number;
  readonly retryAfterMs?: number;
  readonly stack?: string;
  readonly cause?: SerializedError;
  /** The errors of an AggregateError. */
  readonly errors?: readonly SerializedError[];
}

const MAX_DEPTH = 8;

/**
 * Serialises an error for a log line, keeping only what is safe and useful: type, message, `code`, `status`,
 * `retryAfterMs`, stack, and the `cause` chain (and an AggregateError's `errors`), each serialised the same way.
 * Everything else an error carries (request options, headers, bodies, config) is dropped. A thrown non-error is
 * reduced to its type, since it could be anything.
 */
export function serializeError(error: unknown, options: { stack?: boolean } = {}): SerializedError {
  return serialize(error, 0, new Set(), options.stack ?? true);
}

function serialize(error: unknown, depth: number, seen: Set<unknown>, stack: boolean): SerializedError {
  if (!(error instanceof Error)) return { type: error === null ? 'null' : typeof error };
  const type = typeof error.name === 'string' && error.name !== '' ? error.name : 'Error';
  if (seen.has(error) || depth >= MAX_DEPTH) return { type, message: '[cause chain cut]' };
  seen.add(error);
  const fields = error as Error & { code?: unknown; status?: unknown; retryAfterMs?: unknown };
  const errors = error instanceof AggregateError && Array.isArray(error.errors) ? error.errors : undefined;
  return {
    type,
    message: error.message,
    ...(typeof fields.code === 'string' || typeof fields.code === 'number' ? { code: fields.code } : {}),
    ...(typeof fields.status === 'number' ? { status: fields.status } : {}),
    ...(typeof fields.retryAfterMs === 'number' ? { retryAfterMs: fields.retryAfterMs } : {}),
    ...(error.stack === undefined || !stack ? {} : { stack: error.stack }),
    ...(error.cause === undefined ? {} : { cause: serialize(error.cause, depth + 1, seen, stack) }),
    ...(errors === undefined
      ? {}
      : { errors: errors.slice(0, 10).map((item: unknown) => serialize(item, depth + 1, seen, stack)) }),
  };
}

// Fields the text format prints in the line's head rather than as key=value.
const HEAD_FIELDS = new Set(['time', 'level', 'msg', 'name', 'component', 'err', 'error']);

/** Reformats pino's JSON lines as `TIME LEVEL [component] message key=value ... (err: Type: message)`. */
function textStream(destination: DestinationStream): DestinationStream {
  return {
    write(line: string): void {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        destination.write(line);
        return;
      }
      const { time, level, msg, component } = entry;
      const head = [
        typeof time === 'string' ? time : '',
        String(level).toUpperCase().padEnd(5),
        typeof component === 'string' ? `[${component}]` : undefined,
        typeof msg === 'string' ? msg : '',
      ].filter((part) => part !== undefined && part !== '');
      const fields = Object.entries(entry)
        .filter(([key]) => !HEAD_FIELDS.has(key))
        .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
      const err = (entry['err'] ?? entry['error']) as SerializedError | undefined;
      const errText = err === undefined ? [] : [`(${describeError(err)})`];
      destination.write(`${[...head, ...fields, ...errText].join(' ')}\n`);
    },
  };
}

function describeError(error: SerializedError): string {
  const code = error.code === undefined ? '' : ` [${error.code}]`;
  const self = `${error.type}${code}${error.message === undefined ? '' : `: ${error.message}`}`;
  return error.cause === undefined ? self : `${self}; caused by ${describeError(error.cause)}`;
}
