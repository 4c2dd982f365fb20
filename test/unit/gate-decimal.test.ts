import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatDecimal, toDecimalString } from '../../src/core/gate/decimal.js';

/** Exact value of a Cedar decimal literal in ten-thousandths. */
const units = (literal: string | null): bigint => {
  if (literal === null) throw new Error('null');
  const [whole, frac] = literal.split('.') as [string, string];
  const sign = whole.startsWith('-') ? -1n : 1n;
  return sign * (BigInt(whole.replace('-', '')) * 10_000n + BigInt(frac));
};

describe('toDecimalString', () => {
  it('writes four decimal places and keeps values that already fit exactly', () => {
    expect(toDecimalString(0.8, 'up')).toBe('0.8000');
    expect(toDecimalString(0.8, 'down')).toBe('0.8000');
    expect(toDecimalString(1.25, 'down')).toBe('1.2500');
    expect(toDecimalString(0.1, 'up')).toBe('0.1000');
    expect(toDecimalString(0.7, 'up')).toBe('0.7000');
    expect(toDecimalString(-0.05, 'down')).toBe('-0.0500');
    expect(toDecimalString(0, 'up')).toBe('0.0000');
  });

  it('rounds in the direction asked', () => {
    expect(toDecimalString(0.79996, 'down')).toBe('0.7999');
    expect(toDecimalString(0.79996, 'up')).toBe('0.8000');
    expect(toDecimalString(-0.00001, 'down')).toBe('-0.0001');
    expect(toDecimalString(0.33333, 'away-from-one')).toBe('0.3333');
    expect(toDecimalString(1.00001, 'away-from-one')).toBe('1.0001');
  });

  it('clamps to the Cedar decimal range and gives null for non-finite numbers', () => {
    expect(toDecimalString(1e300, 'up')).toBe('922337203685477.5807');
    expect(toDecimalString(-1e300, 'down')).toBe('-922337203685477.5808');
    expect(toDecimalString(Number.NaN, 'up')).toBeNull();
    expect(toDecimalString(Number.POSITIVE_INFINITY, 'up')).toBeNull();
  });

  it('never turns a failing comparison into a passing one (property)', () => {
    const value = fc.double({ min: -1000, max: 1000, noNaN: true });
    // Values within binary noise of a ten-thousandth (|x·10⁴ − n| of a few ulps) count as exactly n,
    // so the property speaks of metric and threshold that differ by more than that noise.
    const apart = (a: number, b: number): boolean => Math.abs(a - b) > 1e-9;
    fc.assert(
      fc.property(value, value, (x, t) => {
        if (!apart(x, t)) return;
        // metric below a minimum stays below: down(x) <= x < t <= up(t)
        if (x < t) expect(units(toDecimalString(x, 'down')) < units(toDecimalString(t, 'up'))).toBe(true);
        // metric above a maximum stays above: up(x) >= x > t >= down(t)
        if (x > t) expect(units(toDecimalString(x, 'up')) > units(toDecimalString(t, 'down'))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('moves a value by less than one ten-thousandth (property)', () => {
    fc.assert(
      fc.property(fc.double({ min: -1e6, max: 1e6, noNaN: true }), (x) => {
        for (const r of ['up', 'down'] as const) {
          const d = Number(units(toDecimalString(x, r))) / 10_000;
          expect(Math.abs(d - x)).toBeLessThan(1e-4 + 1e-9 * Math.abs(x));
        }
      }),
    );
  });
});

describe('formatDecimal', () => {
  it('drops trailing zeros down to two places', () => {
    expect(formatDecimal('0.8000')).toBe('0.80');
    expect(formatDecimal('0.7200')).toBe('0.72');
    expect(formatDecimal('0.1530')).toBe('0.153');
    expect(formatDecimal('0.0712')).toBe('0.0712');
    expect(formatDecimal('-12.0000')).toBe('-12.00');
  });
});
