import { describe, expect, it } from 'vitest';
import { isVeritrailError } from '../../src/core/errors.js';
import {
  binomial,
  type Cells,
  FairnessAccumulator,
  type FairnessCounts,
  fairnessReport,
  mergeCounts,
  quantile,
  Xoshiro128,
} from '../../src/core/fairness/index.js';

/** Counts over one attribute "g" from per-group confusion cells. */
function countsOf(groups: Record<string, Cells>): FairnessCounts {
  return {
    version: 1,
    attributes: ['g'],
    cells: Object.entries(groups).map(([v, c]) => ({ values: [v], ...c })),
  };
}

/** Facet a = group "a" (privileged), facet d = group "d". */
function facets(a: Cells, d: Cells) {
  return fairnessReport(countsOf({ a, d }), { attributes: ['g'], privileged: { g: 'a' }, minGroupSize: 0 });
}

describe('Fairlearn user guide example (docs/user_guide/assessment/common_fairness_metrics.rst)', () => {
  // Typed in from the doctest arrays; the published outputs are 0.25, 0.66666..., 1.0 and 0.0.
  const yTrue = [0, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1];
  const yPred = [0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0];
  const sf = ['b', 'b', 'a', 'b', 'b', 'c', 'c', 'c', 'a', 'a', 'c', 'a', 'b', 'c', 'c', 'b', 'c', 'c'];
  const acc = new FairnessAccumulator(['sf']);
  sf.forEach((g, i) => {
    acc.add([g], yTrue[i] === 1, yPred[i] === 1);
  });
  const r = fairnessReport(acc.toCounts(), { attributes: ['sf'], minGroupSize: 0 });

  it('reproduces demographic_parity_difference and _ratio', () => {
    expect(r.aggregates.demographicParityDifference).toBe(0.25);
    expect(r.aggregates.demographicParityRatio).toBeCloseTo(2 / 3, 15);
  });

  it('reproduces equalized_odds_difference and _ratio', () => {
    expect(r.aggregates.equalizedOddsDifference).toBe(1);
    expect(r.aggregates.equalizedOddsRatio).toBe(0);
  });

  it('gives the per-group rates of the MetricFrame', () => {
    expect(r.groups.a).toMatchObject({ count: 4, selectionRate: 0.75, tpr: 0.5, fpr: 1 });
    expect(r.groups.b).toMatchObject({ count: 6, selectionRate: 0.5, tpr: 0.6, fpr: 0 });
    expect(r.groups.c).toMatchObject({ count: 8, selectionRate: 0.5, tpr: 0.4 });
    expect(r.groups.c?.fpr).toBeCloseTo(2 / 3, 15);
    expect(r.aggregates.equalOpportunityDifference).toBeCloseTo(0.2, 15);
    expect(r.aggregates.equalOpportunityRatio).toBeCloseTo(0.4 / 0.6, 15);
  });

  it('leaves facet metrics null with a reason when no privileged value is given', () => {
    expect(r.aggregates.disparateImpact).toBeNull();
    expect(r.warnings.some((w) => w.includes('no privileged value for sf'))).toBe(true);
  });
});

describe('SageMaker Clarify documented examples (docs.aws.amazon.com/sagemaker/latest/dg/clarify-*)', () => {
  it('RD and SD: confusion matrices of clarify-post-training-bias-metric-rd / -sd', () => {
    // facet a: TN 20, FN 5, FP 10, TP 65; facet d: TN 18, FN 7, FP 5, TP 20
    const r = facets({ tp: 65, fp: 10, tn: 20, fn: 5 }, { tp: 20, fp: 5, tn: 18, fn: 7 });
    expect(r.aggregates.recallDifference).toBeCloseTo(65 / 70 - 20 / 27, 15);
    expect(r.aggregates.recallDifference).toBeCloseTo(0.19, 2);
    expect(r.aggregates.specificityDifference).toBeCloseTo(0.1159, 4);
  });

  it('TE with equal accuracy (clarify-post-training-bias-metric-te): 2.5 − 1.33 = 1.167, AD = 0', () => {
    const r = facets({ tp: 40, fp: 6, tn: 46, fn: 8 }, { tp: 20, fp: 2, tn: 23, fn: 5 });
    expect(r.aggregates.treatmentEquality).toBeCloseTo(2.5 - 8 / 6, 15);
    expect(r.aggregates.treatmentEquality).toBeCloseTo(1.167, 3);
    expect(r.aggregates.accuracyDifference).toBeCloseTo(0, 15);
  });

  it('AD (clarify-post-training-bias-metric-ad): 0.7 − 0.5 = 0.2', () => {
    const r = facets({ tp: 60, fp: 10, tn: 10, fn: 20 }, { tp: 40, fp: 10, tn: 10, fn: 40 });
    expect(r.aggregates.accuracyDifference).toBeCloseTo(0.2, 15);
  });

  it('DCAcc example 1 (clarify-post-training-bias-metric-dca): 70/60 − 20/30 = 1/2', () => {
    // a: 100 rows, 60 predicted and 70 observed acceptances; d: 50 rows, 30 predicted, 20 observed
    const r = facets({ tp: 50, fp: 10, tn: 20, fn: 20 }, { tp: 15, fp: 15, tn: 15, fn: 5 });
    expect(r.aggregates.differenceInConditionalAcceptance).toBeCloseTo(0.5, 15);
    expect(r.aggregates.differenceInPositiveProportionsInPredictedLabels).toBeCloseTo(0, 15);
  });

  it('DCR example 1 (clarify-post-training-bias-metric-dcr): 40/30 − 50/60 = 1/2', () => {
    // a: 60 predicted and 50 observed rejections of 100; d: 30 predicted and 40 observed of 50
    const r = facets({ tp: 30, fp: 10, tn: 40, fn: 20 }, { tp: 5, fp: 15, tn: 25, fn: 5 });
    expect(r.aggregates.differenceInConditionalRejection).toBeCloseTo(0.5, 15);
  });

  it('DAR (clarify-post-training-bias-metric-dar): 35/70 − 40/100 = 0.10', () => {
    const r = facets({ tp: 35, fp: 35, tn: 10, fn: 5 }, { tp: 40, fp: 60, tn: 10, fn: 5 });
    expect(r.aggregates.differenceInAcceptanceRates).toBeCloseTo(0.1, 15);
  });

  it('DRR (clarify-post-training-bias-metric-drr): 40/50 − 80/100 = 0', () => {
    const r = facets({ tp: 5, fp: 5, tn: 80, fn: 20 }, { tp: 5, fp: 5, tn: 40, fn: 10 });
    expect(r.aggregates.differenceInRejectionRates).toBeCloseTo(0, 15);
  });

  it('KL (clarify-data-bias-metric-kl-divergence): approval 0.8 vs 0.3 gives 0.53', () => {
    const r = facets({ tp: 80, fp: 0, tn: 20, fn: 0 }, { tp: 30, fp: 0, tn: 70, fn: 0 });
    const kl = 0.8 * Math.log(0.8 / 0.3) + 0.2 * Math.log(0.2 / 0.7);
    expect(r.aggregates.klDivergence).toBeCloseTo(kl, 15);
    expect(r.aggregates.klDivergence).toBeCloseTo(0.53, 2);
  });

  it('DI and DPPL (clarify-post-training-bias-metric-di): 60% vs 50% predicted positive', () => {
    const r = facets({ tp: 60, fp: 0, tn: 40, fn: 0 }, { tp: 50, fp: 0, tn: 50, fn: 0 });
    expect(r.aggregates.disparateImpact).toBeCloseTo(0.5 / 0.6, 15);
    expect(r.aggregates.differenceInPositiveProportionsInPredictedLabels).toBeCloseTo(0.1, 15);
  });
});

describe('each formula on a small hand-computed example', () => {
  // a: tp 3, fp 1, tn 4, fn 2 (n 10); d: tp 1, fp 2, tn 5, fn 2 (n 10)
  const a = { tp: 3, fp: 1, tn: 4, fn: 2 };
  const d = { tp: 1, fp: 2, tn: 5, fn: 2 };
  const r = facets(a, d);
  const g = r.aggregates;

  it('pre-training label metrics', () => {
    // qa = 5/10, qd = 3/10
    expect(g.classImbalance).toBe(0);
    expect(g.differenceInProportionsOfLabels).toBeCloseTo(0.2, 15);
    expect(g.klDivergence).toBeCloseTo(0.5 * Math.log(0.5 / 0.3) + 0.5 * Math.log(0.5 / 0.7), 15);
    const js =
      0.5 *
      (0.5 * Math.log(0.5 / 0.4) +
        0.5 * Math.log(0.5 / 0.6) +
        0.3 * Math.log(0.3 / 0.4) +
        0.7 * Math.log(0.7 / 0.6));
    expect(g.jsDivergence).toBeCloseTo(js, 15);
    expect(g.lpNorm).toBeCloseTo(Math.SQRT2 * 0.2, 15);
    expect(g.totalVariationDistance).toBeCloseTo(0.2, 15);
    expect(g.kolmogorovSmirnov).toBeCloseTo(0.2, 15);
  });

  it('post-training facet metrics', () => {
    expect(g.differenceInPositiveProportionsInPredictedLabels).toBeCloseTo(0.4 - 0.3, 15);
    expect(g.disparateImpact).toBeCloseTo(0.3 / 0.4, 15);
    expect(g.differenceInConditionalAcceptance).toBeCloseTo(5 / 4 - 3 / 3, 15);
    expect(g.differenceInConditionalRejection).toBeCloseTo(7 / 7 - 5 / 6, 15);
    expect(g.recallDifference).toBeCloseTo(3 / 5 - 1 / 3, 15);
    expect(g.specificityDifference).toBeCloseTo(5 / 7 - 4 / 5, 15);
    expect(g.differenceInAcceptanceRates).toBeCloseTo(3 / 4 - 1 / 3, 15);
    expect(g.differenceInRejectionRates).toBeCloseTo(5 / 7 - 4 / 6, 15);
    expect(g.accuracyDifference).toBeCloseTo(0.7 - 0.6, 15);
    expect(g.treatmentEquality).toBeCloseTo(2 / 2 - 2 / 1, 15);
    expect(g.averageOddsDifference).toBeCloseTo(0.5 * (2 / 7 - 1 / 5 + (1 / 3 - 3 / 5)), 15);
  });

  it('per-group rates', () => {
    expect(r.groups.a).toEqual({
      count: 10,
      tp: 3,
      fp: 1,
      tn: 4,
      fn: 2,
      baseRate: 0.5,
      selectionRate: 0.4,
      tpr: 0.6,
      fpr: 0.2,
      tnr: 0.8,
      fnr: 0.4,
      ppv: 0.75,
      npv: 4 / 6,
      accuracy: 0.7,
    });
  });

  it('generalized entropy from counts equals the row-wise definition with α = 2', () => {
    const all = { tp: 4, fp: 3, tn: 9, fn: 4 };
    const benefits = [...Array(all.tp + all.tn).fill(1), ...Array(all.fp).fill(2), ...Array(all.fn).fill(0)];
    const mu = benefits.reduce((s, b) => s + b, 0) / benefits.length;
    const ge = benefits.reduce((s, b) => s + (b / mu) ** 2 - 1, 0) / (benefits.length * 2);
    expect(g.generalizedEntropy).toBeCloseTo(ge, 15);
    // one of each cell: benefits 1, 1, 2, 0, mean 1, GE = (0 + 0 + 3 − 1)/8
    expect(
      facets({ tp: 1, fp: 1, tn: 1, fn: 1 }, { tp: 0, fp: 0, tn: 1, fn: 0 }).aggregates.generalizedEntropy,
    ).not.toBeNull();
    const one = fairnessReport(countsOf({ x: { tp: 1, fp: 1, tn: 1, fn: 1 } }), {
      attributes: ['g'],
      minGroupSize: 0,
    });
    expect(one.aggregates.generalizedEntropy).toBeCloseTo(0.25, 15);
  });
});

describe('conditional demographic disparity with a group variable', () => {
  // two strata (departments); facet a = sex M. Counts are labels only (predictions = labels).
  const counts: FairnessCounts = {
    version: 1,
    attributes: ['sex', 'dept'],
    cells: [
      { values: ['F', 'A'], tp: 8, fp: 0, tn: 2, fn: 0 }, // F in A: 8 accepted, 2 rejected
      { values: ['M', 'A'], tp: 60, fp: 0, tn: 30, fn: 0 },
      { values: ['F', 'B'], tp: 20, fp: 0, tn: 70, fn: 0 },
      { values: ['M', 'B'], tp: 1, fp: 0, tn: 9, fn: 0 },
    ],
  };
  const r = fairnessReport(counts, {
    attributes: ['sex'],
    privileged: { sex: 'M' },
    groupBy: 'dept',
    minGroupSize: 0,
  });

  it('weights each stratum disparity by its size', () => {
    const ddA = 2 / 32 - 8 / 68; // rejected: F 2 of 32; accepted: F 8 of 68 (n = 100)
    const ddB = 70 / 79 - 20 / 21; // n = 100
    const cdd = (100 * ddA + 100 * ddB) / 200;
    expect(r.aggregates.conditionalDemographicDisparityInLabels).toBeCloseTo(cdd, 15);
    expect(r.aggregates.conditionalDemographicDisparityInPredictedLabels).toBeCloseTo(cdd, 15);
  });

  it('does not report the group variable as a protected group', () => {
    expect(Object.keys(r.groups).sort()).toEqual(['F', 'M']);
  });
});

describe('when a division by zero occurs', () => {
  it('gives null and a reason, never NaN or Infinity', () => {
    const r = facets({ tp: 0, fp: 0, tn: 5, fn: 5 }, { tp: 3, fp: 0, tn: 2, fn: 1 });
    expect(r.aggregates.disparateImpact).toBeNull();
    expect(r.aggregates.treatmentEquality).toBeNull();
    expect(r.groups.a?.ppv).toBeNull();
    expect(r.warnings.some((w) => w.startsWith('disparateImpact is null'))).toBe(true);
    expect(r.warnings.some((w) => w.startsWith('treatmentEquality is null'))).toBe(true);
    const json = JSON.stringify(r);
    expect(json).not.toMatch(/NaN|Infinity/);
  });

  it('flags the privileged group when it is absent', () => {
    const r = fairnessReport(countsOf({ x: { tp: 1, fp: 1, tn: 1, fn: 1 } }), {
      attributes: ['g'],
      privileged: { g: 'a' },
      minGroupSize: 0,
    });
    expect(r.aggregates.disparateImpact).toBeNull();
    expect(r.aggregates.classImbalance).toBe(-1);
  });
});

describe('with several protected attributes', () => {
  const acc = new FairnessAccumulator(['sex', 'race']);
  acc.add(['F', 'x|y'], true, true);
  acc.add(['F', 'w'], false, true);
  acc.add(['M', 'w'], true, true);
  acc.add(['M', 'w'], false, false);
  const r = fairnessReport(acc.toCounts(), {
    attributes: ['sex', 'race'],
    privileged: { sex: 'M', race: 'w' },
    minGroupSize: 2,
  });

  it('keys intersections by values joined with | (escaped) and single attributes as attr=value', () => {
    expect(Object.keys(r.groups).sort()).toEqual(
      ['F|w', 'F|x\\|y', 'M|w', 'race=w', 'race=x|y', 'sex=F', 'sex=M'].sort(),
    );
  });

  it('reports intersection aggregates unprefixed and per-attribute ones prefixed', () => {
    // intersection: a = (M, w) with 1 of 2 predicted positive; d = the rest, 2 of 2
    expect(r.aggregates.disparateImpact).toBe(2);
    expect(r.aggregates['sex.disparateImpact']).toBe(2);
    expect(r.aggregates['race.demographicParityDifference']).toBeCloseTo(1 - 2 / 3, 15);
  });

  it('flags groups below the minimum size', () => {
    expect(r.warnings.some((w) => w.includes('"F|w" has 1 rows, fewer than the minimum of 2'))).toBe(true);
  });
});

describe('bootstrap intervals', () => {
  const counts = countsOf({ a: { tp: 40, fp: 10, tn: 35, fn: 15 }, d: { tp: 20, fp: 12, tn: 50, fn: 18 } });
  const opts = { attributes: ['g'], privileged: { g: 'a' }, minGroupSize: 0 };

  it('are identical for the same seed and differ for another', () => {
    const r1 = fairnessReport(counts, { ...opts, bootstrap: { samples: 200, seed: 7 } });
    const r2 = fairnessReport(counts, { ...opts, bootstrap: { samples: 200, seed: 7 } });
    const r3 = fairnessReport(counts, { ...opts, bootstrap: { samples: 200, seed: 8 } });
    expect(r1.intervals).toEqual(r2.intervals);
    expect(r1.intervals.disparateImpact).not.toEqual(r3.intervals.disparateImpact);
  });

  it('cover every aggregate and bracket the estimate', () => {
    const r = fairnessReport(counts, {
      ...opts,
      bootstrap: { samples: 500, seed: 1, quantiles: [0.05, 0.95] },
    });
    expect(Object.keys(r.intervals).sort()).toEqual(Object.keys(r.aggregates).sort());
    const di = r.intervals.disparateImpact;
    expect(di?.samples).toBe(500);
    expect(di?.low).toBeLessThan(r.aggregates.disparateImpact as number);
    expect(di?.high).toBeGreaterThan(r.aggregates.disparateImpact as number);
    // group sizes are fixed by resampling within groups, so class imbalance never moves
    expect(r.intervals.classImbalance).toEqual({ low: 0, high: 0, samples: 500 });
  });

  it('uses type-7 quantiles', () => {
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantile([1, 2, 3, 4], 0)).toBe(1);
    expect(quantile([], 0.5)).toBeNull();
  });

  it('draw binomials with the right mean and variance, large and small', () => {
    const rng = new Xoshiro128(42);
    for (const [n, p] of [
      [1000, 0.3],
      [50, 0.05],
      [1_000_000, 0.999],
    ] as const) {
      const xs = Array.from({ length: 4000 }, () => binomial(n, p, rng));
      const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
      const v = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (xs.length - 1);
      const sd = Math.sqrt(n * p * (1 - p));
      expect(Math.abs(mean - n * p)).toBeLessThan((5 * sd) / Math.sqrt(xs.length));
      expect(v / (sd * sd)).toBeGreaterThan(0.85);
      expect(v / (sd * sd)).toBeLessThan(1.15);
      expect(xs.every((x) => Number.isInteger(x) && x >= 0 && x <= n)).toBe(true);
    }
  });
});

describe('the accumulator', () => {
  it('counts columnar input the same as row by row', () => {
    const values0 = ['F', 'M'];
    const values1 = ['u', 'v', 'w'];
    const c0 = Uint8Array.from([0, 1, 1, 0, 1, 0]);
    const c1 = Uint8Array.from([2, 0, 1, 1, 2, 0]);
    const y = Uint8Array.from([1, 0, 1, 1, 0, 0]);
    const yhat = Uint8Array.from([1, 1, 0, 1, 0, 0]);
    const col = new FairnessAccumulator(['s', 'r']);
    col.addColumns(
      [
        { codes: c0, values: values0 },
        { codes: c1, values: values1 },
      ],
      y,
      yhat,
    );
    const row = new FairnessAccumulator(['s', 'r']);
    for (let i = 0; i < y.length; i++) {
      row.add(
        [values0[c0[i] as number] as string, values1[c1[i] as number] as string],
        y[i] === 1,
        yhat[i] === 1,
      );
    }
    expect(col.toCounts()).toEqual(row.toCounts());
    expect(col.count).toBe(6);
  });

  it('merges shards by addition', () => {
    const a = new FairnessAccumulator(['g']);
    a.add(['x'], true, true);
    const b = new FairnessAccumulator(['g']);
    b.add(['x'], false, true);
    b.add(['y'], true, false);
    expect(mergeCounts(a.toCounts(), b.toCounts()).cells).toEqual([
      { values: ['x'], tp: 1, fp: 1, tn: 0, fn: 0 },
      { values: ['y'], tp: 0, fp: 0, tn: 0, fn: 1 },
    ]);
  });

  it('refuses counts that are not non-negative integers', () => {
    const bad = {
      version: 1,
      attributes: ['g'],
      cells: [{ values: ['x'], tp: -1, fp: 0, tn: 0, fn: 0 }],
    } as FairnessCounts;
    expect(() => FairnessAccumulator.fromCounts(bad)).toThrow(
      expect.objectContaining({ code: 'DATASET_VALUE' }),
    );
  });

  it('refuses to merge counts over other attributes', () => {
    let err: unknown;
    try {
      new FairnessAccumulator(['g']).merge(new FairnessAccumulator(['h']));
    } catch (e) {
      err = e;
    }
    expect(isVeritrailError(err, 'DATASET_VALUE')).toBe(true);
  });

  it('refuses report options naming unknown attributes', () => {
    expect(() => fairnessReport(countsOf({}), { attributes: ['nope'], minGroupSize: 0 })).toThrow(
      expect.objectContaining({ code: 'USAGE' }),
    );
  });
});
