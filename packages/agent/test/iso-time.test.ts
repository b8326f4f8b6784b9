import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isoTime } from '../src/iso-time.js';

// 0000-01-01T00:00:00.000Z and 10000-01-01T00:00:00.000Z (Date.UTC maps years 0-99 to 1900-1999).
const YEAR_0 = -62_167_219_200_000;
const YEAR_10000 = 253_402_300_800_000;

describe('isoTime', () => {
  it('writes what Date#toISOString writes, for any instant of years 0 to 9999', () => {
    fc.assert(
      fc.property(fc.integer({ min: YEAR_0, max: YEAR_10000 - 1 }), (ms) => {
        const date = new Date(ms);
        expect(isoTime(date)).toBe(date.toISOString());
      }),
      { numRuns: 2_000 },
    );
  });

  it('pads every field', () => {
    expect(isoTime(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6)))).toBe('2026-01-02T03:04:05.006Z');
  });
});
