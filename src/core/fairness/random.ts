/**
 * Seeded randomness for the bootstrap: xoshiro128** (Blackman & Vigna, https://prng.di.unimi.it/)
 * seeded through splitmix32, an exact binomial sampler, and multinomial resampling of one group's
 * confusion cells. Resampling a group's n rows with replacement and counting the cells is exactly a
 * Multinomial(n; tp/n, fp/n, tn/n, fn/n) draw, so the bootstrap never needs the rows themselves.
 */

export class Xoshiro128 {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `seed` is any safe integer; equal seeds give equal streams on every platform. */
  constructor(seed: number) {
    let state = (seed >>> 0) ^ Math.floor(seed / 4294967296) ^ 0x5eed;
    const splitmix32 = (): number => {
      state = (state + 0x9e3779b9) | 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = splitmix32();
    this.s1 = splitmix32();
    this.s2 = splitmix32();
    this.s3 = splitmix32();
  }

  /** Next 32 random bits as an unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** log(k!) for k < 10, exactly enough by summation; used by the Stirling tail below. */
const LOG_FACT: number[] = [0];
for (let k = 1; k < 10; k++) LOG_FACT.push((LOG_FACT[k - 1] as number) + Math.log(k));
const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

/** Stirling remainder: log(k!) − [(k+½)·log(k+1) − (k+1) + ½·log(2π)]. */
function stirlingTail(k: number): number {
  if (k < 10) return (LOG_FACT[k] as number) - ((k + 0.5) * Math.log(k + 1) - (k + 1) + HALF_LOG_2PI);
  const z = k + 1;
  const z2 = z * z;
  return (1 / 12 - (1 / 360 - 1 / 1260 / z2) / z2) / z;
}

/**
 * Exact Binomial(n, p) sample. Small means use inversion; large ones Hörmann's BTRS
 * ("The generation of binomial random variates", J. Statist. Comput. Simul. 46, 1993), which costs O(1)
 * per draw, so a bootstrap over millions of rows costs the same as over hundreds.
 */
export function binomial(n: number, p: number, rng: Xoshiro128): number {
  if (n <= 0 || p <= 0) return 0;
  if (p >= 1) return n;
  if (p > 0.5) return n - binomial(n, 1 - p, rng);
  if (n * p < 10) return binomialInversion(n, p, rng);
  return binomialBtrs(n, p, rng);
}

function binomialInversion(n: number, p: number, rng: Xoshiro128): number {
  const q = 1 - p;
  const s = p / q;
  const a = (n + 1) * s;
  let r = q ** n;
  let u = rng.next();
  let x = 0;
  while (u > r) {
    u -= r;
    x++;
    if (x > n) return n; // rounding left a sliver of mass past n
    r *= a / x - s;
  }
  return x;
}

function binomialBtrs(n: number, p: number, rng: Xoshiro128): number {
  const q = 1 - p;
  const spq = Math.sqrt(n * p * q);
  const b = 1.15 + 2.53 * spq;
  const a = -0.0873 + 0.0248 * b + 0.01 * p;
  const c = n * p + 0.5;
  const vr = 0.92 - 4.2 / b;
  const alpha = (2.83 + 5.1 / b) * spq;
  const lpq = Math.log(p / q);
  const m = Math.floor((n + 1) * p);
  for (;;) {
    const u = rng.next() - 0.5;
    let v = rng.next();
    const us = 0.5 - Math.abs(u);
    const k = Math.floor(((2 * a) / us + b) * u + c);
    if (k < 0 || k > n) continue;
    if (us >= 0.07 && v <= vr) return k;
    v = Math.log((v * alpha) / (a / (us * us) + b));
    // log f(k)/f(m) for the binomial pmf, written with Stirling's formula plus its tail so that no
    // large log-factorials cancel (the linear terms of Stirling's formula cancel exactly).
    const bound =
      (m + 0.5) * Math.log(m + 1) -
      (k + 0.5) * Math.log(k + 1) +
      (n - m + 0.5) * Math.log(n - m + 1) -
      (n - k + 0.5) * Math.log(n - k + 1) +
      (k - m) * lpq +
      stirlingTail(m) +
      stirlingTail(n - m) -
      stirlingTail(k) -
      stirlingTail(n - k);
    if (v <= bound) return k;
  }
}

/**
 * Resamples `n` rows of one group with replacement, as counts: a multinomial draw over the four
 * cells by successive conditional binomials.
 */
export function resampleCells(
  cells: readonly [number, number, number, number],
  rng: Xoshiro128,
): [number, number, number, number] {
  const n = cells[0] + cells[1] + cells[2] + cells[3];
  const out: [number, number, number, number] = [0, 0, 0, 0];
  let left = n;
  let mass = n;
  for (let i = 0; i < 3 && left > 0; i++) {
    const w = cells[i] as number;
    const x = mass > 0 ? binomial(left, Math.min(1, w / mass), rng) : 0;
    out[i] = x;
    left -= x;
    mass -= w;
  }
  out[3] = left;
  return out;
}
