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

describe('the held-out test split', () => {
  const three = (seed: string, n: number) => {
    const next = makeSplitter(digestOf(seed), 0.2, 0.2);
    return Array.from({ length: n }, next);
  };

  it('holds out the test fraction, disjoint from validation, seeded by the raw digest', () => {
    const a = three('data-d', 20_000);
    expect(a).toEqual(three('data-d', 20_000));
    const test = a.filter((s) => s === 'test').length / 20_000;
    expect(test).toBeGreaterThan(0.185);
    expect(test).toBeLessThan(0.215);
    expect(a.filter((s) => s === 'validation').length / 20_000).toBeGreaterThan(0.185);
  });

  it('leaves the validation rows of a two-way split where they were', () => {
    const two = draw('data-e', 5000, 0.2);
    const next = makeSplitter(digestOf('data-e'), 0.2, 0.2);
    const withTest = Array.from({ length: 5000 }, next);
    two.forEach((s, i) => {
      if (s === 'validation') expect(withTest[i]).toBe('validation');
    });
  });
});
