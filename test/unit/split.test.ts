import { describe, expect, it } from 'vitest';
import { digestOf } from '../../src/core/digest.js';
import { makeSplitter } from '../../src/core/split.js';

const draw = (seed: string, n: number, f = 0.2) => {
  const next = makeSplitter(digestOf(seed), f);
  return Array.from({ length: n }, next);
};

describe('the train/validation split', () => {
  it('is the same for the same raw digest', () => {
    expect(draw('data-a', 1000)).toEqual(draw('data-a', 1000));
  });

  it('differs for different data', () => {
    expect(draw('data-a', 1000)).not.toEqual(draw('data-b', 1000));
  });

  it('holds out close to the configured fraction', () => {
    const v = draw('data-c', 20_000, 0.25).filter((s) => s === 'validation').length / 20_000;
    expect(v).toBeGreaterThan(0.235);
    expect(v).toBeLessThan(0.265);
  });
});
