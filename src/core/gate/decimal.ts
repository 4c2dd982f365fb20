/**
 * Numbers as Cedar `decimal` values. Cedar has no floating point: its `decimal` extension type is a
 * signed 64-bit integer scaled by 10^4, so it holds four decimal places in
 * [-922337203685477.5808, 922337203685477.5807] (Cedar language reference, "decimal" extension).
 *
 * Rounding is never to nearest: every value is rounded in the direction that makes the gate
 * stricter (a metric toward the failing side of its threshold, a threshold toward the stricter
 * side), so that rounding can turn a pass into a fail at the fourth decimal but never a fail into
 * a pass. See docs/gates.md, "Numbers".
 */

/** Which way a value may move when it is cut to four decimal places. */
export type Rounding = 'down' | 'up' | 'away-from-one';

/** The JSON form of a Cedar extension value, as Cedar's JSON entity/context format expects. */
export interface CedarDecimalJson {
  __extn: { fn: 'decimal'; arg: string };
}

const SCALE = 10_000n;
const MAX_SCALED = 9_223_372_036_854_775_807n;
const MIN_SCALED = -9_223_372_036_854_775_808n;

/**
 * The Cedar decimal literal (e.g. "0.8000") for a finite number, rounded as `rounding` says and
 * clamped into Cedar's range; `null` for NaN and ±Infinity, which the gate treats as undefined.
 */
export function toDecimalString(value: number, rounding: Rounding): string | null {
  if (!Number.isFinite(value)) return null;
  const scaled = value * 10_000;
  const nearest = Math.round(scaled);
  // x * 10^4 carries binary noise (0.8 * 10^4 = 8000.000000000001): a value within a few ulps of a
  // whole number of ten-thousandths IS that number, and must not be pushed one step further.
  const exact = Math.abs(scaled - nearest) <= Number.EPSILON * Math.max(1, Math.abs(scaled)) * 8;
  let direction: 'down' | 'up';
  if (rounding === 'away-from-one') direction = value < 1 ? 'down' : 'up';
  else direction = rounding;
  let units: bigint;
  if (exact) units = BigInt(nearest);
  else if (Math.abs(scaled) >= 2 ** 63) units = scaled < 0 ? MIN_SCALED : MAX_SCALED;
  else units = BigInt(direction === 'down' ? Math.floor(scaled) : Math.ceil(scaled));
  if (units > MAX_SCALED) units = MAX_SCALED;
  if (units < MIN_SCALED) units = MIN_SCALED;
  const negative = units < 0n;
  const abs = negative ? -units : units;
  const whole = abs / SCALE;
  const frac = (abs % SCALE).toString().padStart(4, '0');
  return `${negative ? '-' : ''}${whole.toString()}.${frac}`;
}

/** `toDecimalString` wrapped as a Cedar extension value, or `null` when the number is not finite. */
export function toCedarDecimal(value: number, rounding: Rounding): CedarDecimalJson | null {
  const arg = toDecimalString(value, rounding);
  return arg === null ? null : { __extn: { fn: 'decimal', arg } };
}

/** Renders a Cedar decimal literal for people: trailing zeros dropped down to two places ("0.80"). */
export function formatDecimal(literal: string): string {
  const m = /^(-?\d+)\.(\d{2,4})$/.exec(literal);
  if (m === null) return literal;
  const frac = (m[2] as string).replace(/0+$/, '').padEnd(2, '0');
  return `${m[1] as string}.${frac}`;
}
