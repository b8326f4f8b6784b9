import { ErrorCode, PhaseError } from '@phasekit/sdk';
import { describe, expect, it } from 'vitest';
import { AgentError } from '../src/errors.js';
import { createLogger, serializeError } from '../src/logger.js';
import type { CreateLoggerOptions } from '../src/logger.js';

const CANARY = 'zq-canary-secret-41d7';

function capture(options: Omit<CreateLoggerOptions, 'destination'> = {}) {
  const lines: string[] = [];
  const log = createLogger({
    level: 'trace',
    ...options,
    destination: { write: (line: string) => lines.push(line) },
  });
  return { log, lines, entries: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

/** An error carrying the canary everywhere except its message, as careless libraries do. */
function leakyError(): Error {
  const inner = Object.assign(new Error('connect ECONNRESET'), {
    code: 'ECONNRESET',
    value: CANARY,
    config: { headers: { authorization: `Bearer ${CANARY}` } },
  });
  const middle = new PhaseError(ErrorCode.NETWORK, 'Phase could not be reached', {
    cause: inner,
    status: 503,
  });
  Object.assign(middle, { response: { body: CANARY }, token: CANARY });
  return new AgentError('WRITE', 'sync failed', { cause: middle });
}

describe('createLogger', () => {
  it('writes JSON lines with name, ISO time, level label and component children', () => {
    const { log, entries } = capture();
    log.child({ component: 'watcher' }).info({ added: ['DATABASE_URL'], version: 3 }, 'secrets changed');
    const [entry] = entries();
    expect(entry).toMatchObject({
      name: 'phasekit',
      level: 'info',
      component: 'watcher',
      added: ['DATABASE_URL'],
      version: 3,
      msg: 'secrets changed',
    });
    expect(entry?.['time']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(entry).not.toHaveProperty('pid');
  });

  it('honours the level', () => {
    const { log, lines } = capture({ level: 'warn' });
    log.info('hidden');
    log.warn('shown');
    expect(lines).toHaveLength(1);
    const silent = capture({ level: 'silent' });
    silent.log.fatal('hidden');
    expect(silent.lines).toHaveLength(0);
  });

  it.each(['json', 'text'] as const)(
    'never writes a canary logged at any level or nested in errors (%s)',
    (format) => {
      const { log, lines } = capture({ format });
      const child = log.child({ component: 'sink.file' });
      for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const) {
        child[level]({ token: CANARY }, 'token');
        child[level]({ value: CANARY, key: 'DATABASE_URL' }, 'value');
        child[level]({ secret: { key: 'A', value: CANARY } }, 'nested value');
        child[level]({ secrets: [{ key: 'A', value: CANARY }] }, 'secrets');
        child[level]({ auth: { token: CANARY } }, 'nested token');
        child[level]({ headers: { authorization: `Bearer ${CANARY}` } }, 'headers');
        child[level]({ request: { headers: { authorization: `Bearer ${CANARY}` } } }, 'nested headers');
        child[level]({ err: leakyError() }, 'err');
        child[level]({ error: leakyError() }, 'error');
        child[level](leakyError(), 'error as the first argument');
      }
      expect(lines).toHaveLength(60);
      expect(lines.join('')).not.toContain(CANARY);
    },
  );

  it('keeps code, status and the cause chain of errors', () => {
    const { log, entries, lines } = capture();
    log.error({ err: leakyError() }, 'sync failed');
    expect(entries()[0]?.['err']).toMatchObject({
      type: 'AgentError',
      message: 'sync failed',
      code: 'WRITE',
      cause: {
        type: 'PhaseError',
        message: 'Phase could not be reached',
        code: 'NETWORK',
        status: 503,
        cause: { type: 'Error', message: 'connect ECONNRESET', code: 'ECONNRESET' },
      },
    });
    expect(lines[0]).not.toContain('response');
  });

  it('formats text lines for terminals', () => {
    const { log, lines } = capture({ format: 'text' });
    log.child({ component: 'watcher' }).warn({ err: leakyError(), attempt: 2 }, 'retrying');
    expect(lines[0]).toMatch(
      /^\S+Z WARN {2}\[watcher\] retrying attempt=2 \(AgentError \[WRITE\]: sync failed; caused by PhaseError \[NETWORK\]: .*ECONNRESET\)\n$/,
    );
  });
});

describe('serializeError', () => {
  it('survives cycles, non-errors and aggregates', () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    Object.assign(a, { cause: b });
    expect(serializeError(b).cause?.cause).toMatchObject({ message: '[cause chain cut]' });
    expect(serializeError(CANARY)).toEqual({ type: 'string' });
    expect(serializeError(new Error('x', { cause: { value: CANARY } })).cause).toEqual({ type: 'object' });
    const aggregate = serializeError(new AggregateError([new Error('one'), CANARY], 'many'));
    expect(aggregate.errors).toEqual([expect.objectContaining({ message: 'one' }), { type: 'string' }]);
    expect(JSON.stringify(aggregate)).not.toContain(CANARY);
  });
});
