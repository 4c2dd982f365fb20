import { type Digest, hexOf } from './digest.js';

export type SplitSide = 'train' | 'validation' | 'test';

/**
 * Deterministic train/validation/test split seeded by the raw data digest: the same bytes always split
 * the same way, on any machine, and different data gets an independent split. The generator is
 * xoshiro128** (Blackman & Vigna, https://prng.di.unimi.it/xoshiro128starstar.c), seeded with the
 * first 128 bits of the digest.
 */
export function makeSplitter(seed: Digest, validationFraction: number, testFraction = 0): () => SplitSide {
  const hex = hexOf(seed);
  const s = new Uint32Array(4);
  for (let i = 0; i < 4; i++) s[i] = Number.parseInt(hex.slice(i * 8, i * 8 + 8), 16);
  // An all-zero state would stay zero forever; it cannot come from SHA-256 in practice, but guard anyway.
  if (s[0] === 0 && s[1] === 0 && s[2] === 0 && s[3] === 0) s[0] = 1;
  const next = (): number => {
    const s0 = s[0] as number;
    const s1 = s[1] as number;
    const s2 = s[2] as number;
    const s3 = s[3] as number;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    const n2 = (s2 ^ s0) >>> 0;
    const n3 = (s3 ^ s1) >>> 0;
    s[1] = (s1 ^ n2) >>> 0;
    s[0] = (s0 ^ n3) >>> 0;
    s[2] = (n2 ^ t) >>> 0;
    s[3] = rotl(n3, 11);
    return result;
  };
  // One draw per row: [0, v) validation, [v, v + t) test, the rest train. The test split comes
  // from the same seeded stream, so it is as reproducible as the others and never overlaps them.
  const v = Math.floor(validationFraction * 2 ** 32);
  const t = Math.floor((validationFraction + testFraction) * 2 ** 32);
  return () => {
    const x = next();
    return x < v ? 'validation' : x < t ? 'test' : 'train';
  };
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
