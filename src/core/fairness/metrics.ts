/**
 * Fairness metrics as pure functions of confusion counts. Every formula, its source and its null
 * conditions are listed in docs/fairness-metrics.md; the comments here only name the source section.
 * A division by zero (or a logarithm of zero where the formula needs it) gives `null` and a reason
 * through `warn`, never NaN or Infinity.
 */
import type { Cells } from './counts.js';

export type Metric = number | null;
export type Warn = (reason: string) => void;

export interface GroupMetrics {
  count: number;
  tp: number;
  fp: number;
  tn: number;
  fn: number;
  baseRate: Metric;
  selectionRate: Metric;
  tpr: Metric;
  fpr: Metric;
  tnr: Metric;
  fnr: Metric;
  ppv: Metric;
  npv: Metric;
  accuracy: Metric;
}

export const total = (c: Cells): number => c.tp + c.fp + c.tn + c.fn;
const pos = (c: Cells): number => c.tp + c.fn; // observed label 1: n(1)
const neg = (c: Cells): number => c.fp + c.tn; // observed label 0: n(0)
const predPos = (c: Cells): number => c.tp + c.fp; // predicted 1: n'(1)
const predNeg = (c: Cells): number => c.tn + c.fn; // predicted 0: n'(0)

export function addCells(a: Cells, b: Cells): Cells {
  return { tp: a.tp + b.tp, fp: a.fp + b.fp, tn: a.tn + b.tn, fn: a.fn + b.fn };
}

export const ZERO: Readonly<Cells> = Object.freeze({ tp: 0, fp: 0, tn: 0, fn: 0 });

function div(num: number, den: number): Metric {
  return den === 0 ? null : num / den;
}

function sub(x: Metric, y: Metric): Metric {
  return x === null || y === null ? null : x - y;
}

/** Per-group rates (Fairlearn's MetricFrame "by_group" quantities; sklearn confusion-matrix definitions). */
export function groupMetrics(c: Cells): GroupMetrics {
  const n = total(c);
  return {
    count: n,
    tp: c.tp,
    fp: c.fp,
    tn: c.tn,
    fn: c.fn,
    baseRate: div(pos(c), n),
    selectionRate: div(predPos(c), n),
    tpr: div(c.tp, pos(c)),
    fpr: div(c.fp, neg(c)),
    tnr: div(c.tn, neg(c)),
    fnr: div(c.fn, pos(c)),
    ppv: div(c.tp, predPos(c)),
    npv: div(c.tn, predNeg(c)),
    accuracy: div(c.tp + c.tn, n),
  };
}

/** Says why a group's rates are null, once per cause. */
export function explainGroupNulls(name: string, c: Cells, warn: Warn): void {
  const n = total(c);
  if (n === 0) {
    warn(`group ${name}: no rows; all its rates are null`);
    return;
  }
  if (pos(c) === 0) warn(`group ${name}: no positive labels, so tpr and fnr are null`);
  if (neg(c) === 0) warn(`group ${name}: no negative labels, so fpr and tnr are null`);
  if (predPos(c) === 0) warn(`group ${name}: no positive predictions, so ppv is null`);
  if (predNeg(c) === 0) warn(`group ${name}: no negative predictions, so npv is null`);
}

/** A binary label distribution [P(y=1), P(y=0)]. */
function dist(c: Cells): [number, number] {
  const n = total(c);
  return [pos(c) / n, neg(c) / n];
}

/** KL(P‖Q) in nats with 0·log(0/q) = 0; null when some P(y) > 0 has Q(y) = 0 (the divergence is infinite). */
function kl(p: readonly number[], q: readonly number[]): Metric {
  let s = 0;
  for (let i = 0; i < p.length; i++) {
    const pi = p[i] as number;
    const qi = q[i] as number;
    if (pi === 0) continue;
    if (qi === 0) return null;
    s += pi * Math.log(pi / qi);
  }
  return s;
}

/**
 * SageMaker Clarify pre-training metrics on observed labels, facet a vs facet d
 * (https://docs.aws.amazon.com/sagemaker/latest/dg/clarify-measure-data-bias.html).
 */
export function clarifyPreTraining(a: Cells, d: Cells, warn: Warn, scope: string): Record<string, Metric> {
  const na = total(a);
  const nd = total(d);
  const out: Record<string, Metric> = {};
  out.classImbalance = div(na - nd, na + nd);
  if (na === 0 || nd === 0) {
    warn(
      `${scope}facet ${na === 0 ? 'a (privileged)' : 'd (unprivileged)'} has no rows, so label-distribution metrics are null`,
    );
    for (const k of [
      'differenceInProportionsOfLabels',
      'klDivergence',
      'jsDivergence',
      'lpNorm',
      'totalVariationDistance',
      'kolmogorovSmirnov',
    ]) {
      out[k] = null;
    }
    return out;
  }
  const pa = dist(a);
  const pd = dist(d);
  out.differenceInProportionsOfLabels = pa[0] - pd[0];
  out.klDivergence = kl(pa, pd);
  if (out.klDivergence === null) {
    warn(
      `${scope}klDivergence is null: a label value occurs in facet a but never in facet d (KL is infinite)`,
    );
  }
  const mid = [(pa[0] + pd[0]) / 2, (pa[1] + pd[1]) / 2];
  const jsA = kl(pa, mid);
  const jsD = kl(pd, mid);
  out.jsDivergence = jsA === null || jsD === null ? null : 0.5 * (jsA + jsD);
  const d0 = Math.abs(pa[0] - pd[0]);
  const d1 = Math.abs(pa[1] - pd[1]);
  out.lpNorm = Math.sqrt(d0 * d0 + d1 * d1);
  out.totalVariationDistance = 0.5 * (d0 + d1);
  out.kolmogorovSmirnov = Math.max(d0, d1);
  return out;
}

/**
 * SageMaker Clarify post-training metrics, facet a vs facet d
 * (https://docs.aws.amazon.com/sagemaker/latest/dg/clarify-measure-post-training-bias.html), plus
 * AIF360's average odds difference (unprivileged = d, privileged = a).
 */
export function clarifyPostTraining(a: Cells, d: Cells, warn: Warn, scope: string): Record<string, Metric> {
  const out: Record<string, Metric> = {};
  const na = total(a);
  const nd = total(d);
  const need = (name: string, value: Metric, why: string): void => {
    out[name] = value;
    if (value === null) warn(`${scope}${name} is null: ${why}`);
  };
  if (na === 0 || nd === 0) {
    const why = `facet ${na === 0 ? 'a (privileged)' : 'd (unprivileged)'} has no rows`;
    for (const k of POST_TRAINING_FACET_METRICS) need(k, null, why);
    return out;
  }
  const qa = predPos(a) / na;
  const qd = predPos(d) / nd;
  need('differenceInPositiveProportionsInPredictedLabels', qa - qd, '');
  need('disparateImpact', div(qd, qa), 'facet a has no positive predictions (q′a = 0)');
  const ca = div(pos(a), predPos(a));
  const cd = div(pos(d), predPos(d));
  need('differenceInConditionalAcceptance', sub(ca, cd), 'a facet has no positive predictions (n′(1) = 0)');
  const ra = div(neg(a), predNeg(a));
  const rd = div(neg(d), predNeg(d));
  need('differenceInConditionalRejection', sub(rd, ra), 'a facet has no negative predictions (n′(0) = 0)');
  const tprA = div(a.tp, pos(a));
  const tprD = div(d.tp, pos(d));
  need('recallDifference', sub(tprA, tprD), 'a facet has no positive labels (TP + FN = 0)');
  const tnrA = div(a.tn, neg(a));
  const tnrD = div(d.tn, neg(d));
  need('specificityDifference', sub(tnrD, tnrA), 'a facet has no negative labels (TN + FP = 0)');
  need(
    'differenceInAcceptanceRates',
    sub(div(a.tp, predPos(a)), div(d.tp, predPos(d))),
    'a facet has no positive predictions (TP + FP = 0)',
  );
  need(
    'differenceInRejectionRates',
    sub(div(d.tn, predNeg(d)), div(a.tn, predNeg(a))),
    'a facet has no negative predictions (TN + FN = 0)',
  );
  need('accuracyDifference', (a.tp + a.tn) / na - (d.tp + d.tn) / nd, '');
  need('treatmentEquality', sub(div(d.fn, d.fp), div(a.fn, a.fp)), 'a facet has no false positives (FP = 0)');
  const fprA = div(a.fp, neg(a));
  const fprD = div(d.fp, neg(d));
  const dFpr = sub(fprD, fprA);
  const dTpr = sub(tprD, tprA);
  need(
    'averageOddsDifference',
    dFpr === null || dTpr === null ? null : 0.5 * (dFpr + dTpr),
    'a facet has no positive or no negative labels',
  );
  return out;
}

export const PRE_TRAINING_METRICS = [
  'classImbalance',
  'differenceInProportionsOfLabels',
  'klDivergence',
  'jsDivergence',
  'lpNorm',
  'totalVariationDistance',
  'kolmogorovSmirnov',
] as const;

export const POST_TRAINING_FACET_METRICS = [
  'differenceInPositiveProportionsInPredictedLabels',
  'disparateImpact',
  'differenceInConditionalAcceptance',
  'differenceInConditionalRejection',
  'recallDifference',
  'specificityDifference',
  'differenceInAcceptanceRates',
  'differenceInRejectionRates',
  'accuracyDifference',
  'treatmentEquality',
  'averageOddsDifference',
] as const;

export interface Stratum {
  a: Cells;
  d: Cells;
}

/**
 * Conditional demographic disparity (Clarify CDDL on labels, CDDPL on predictions):
 * CDD = (1/n)·Σᵢ nᵢ·DDᵢ with DDᵢ = n_d,ᵢ(0)/nᵢ(0) − n_d,ᵢ(1)/nᵢ(1) within stratum i.
 * Null when a stratum has no rejections or no acceptances (its DDᵢ divides by zero).
 */
export function conditionalDemographicDisparity(
  strata: readonly Stratum[],
  on: 'label' | 'prediction',
  warn: Warn,
  name: string,
): Metric {
  const one = on === 'label' ? pos : predPos;
  const zero = on === 'label' ? neg : predNeg;
  let n = 0;
  let sum = 0;
  for (const s of strata) {
    const ni = total(s.a) + total(s.d);
    if (ni === 0) continue;
    const rejected = zero(s.a) + zero(s.d);
    const accepted = one(s.a) + one(s.d);
    if (rejected === 0 || accepted === 0) {
      warn(
        `${name} is null: a stratum has no ${rejected === 0 ? 'negative' : 'positive'} ${on}s, so its demographic disparity divides by zero`,
      );
      return null;
    }
    sum += ni * (zero(s.d) / rejected - one(s.d) / accepted);
    n += ni;
  }
  if (n === 0) {
    warn(`${name} is null: no rows`);
    return null;
  }
  return sum / n;
}

/**
 * Clarify's generalized entropy index with α = 2 over benefits bᵢ = ŷᵢ − yᵢ + 1 ∈ {0, 1, 2}:
 * FN rows have b = 0, TP and TN rows b = 1, FP rows b = 2, so with n₁ = TP+TN and n₂ = FP,
 * μ = (n₁ + 2n₂)/n and GE = (1/(2n))·Σ[(bᵢ/μ)² − 1] = ½·[(n₁ + 4n₂)/(n·μ²) − 1].
 */
export function generalizedEntropy(c: Cells, warn: Warn): Metric {
  const n = total(c);
  const n1 = c.tp + c.tn;
  const n2 = c.fp;
  if (n === 0 || n1 + 2 * n2 === 0) {
    warn(
      'generalizedEntropy is null: every prediction is a false negative (mean benefit 0) or there are no rows',
    );
    return null;
  }
  const mu = (n1 + 2 * n2) / n;
  return 0.5 * ((n1 + 4 * n2) / (n * mu * mu) - 1);
}

/**
 * Fairlearn's between-groups aggregates: difference = max − min and ratio = min / max of a per-group
 * rate over all groups present; equalized odds takes the worse of TPR and FPR (agg="worst_case").
 */
export function fairlearnAggregates(
  groups: ReadonlyArray<{ name: string; cells: Cells }>,
  warn: Warn,
  scope: string,
): Record<string, Metric> {
  const present = groups.filter((g) => total(g.cells) > 0);
  const rates = (f: (c: Cells) => Metric, label: string): number[] | null => {
    const out: number[] = [];
    for (const g of present) {
      const r = f(g.cells);
      if (r === null) {
        warn(`${scope}${label} of group ${g.name} is undefined, so the aggregates built on it are null`);
        return null;
      }
      out.push(r);
    }
    return out.length === 0 ? null : out;
  };
  const diff = (xs: number[] | null): Metric => (xs === null ? null : Math.max(...xs) - Math.min(...xs));
  const ratio = (xs: number[] | null, name: string): Metric => {
    if (xs === null) return null;
    const max = Math.max(...xs);
    if (max === 0) {
      warn(`${scope}${name} is null: the largest group rate is 0`);
      return null;
    }
    return Math.min(...xs) / max;
  };
  if (present.length < 2)
    warn(`${scope}only one group is present; between-group differences are trivially 0`);
  const sel = rates((c) => div(predPos(c), total(c)), 'selection rate');
  const tpr = rates((c) => div(c.tp, pos(c)), 'true positive rate');
  const fpr = rates((c) => div(c.fp, neg(c)), 'false positive rate');
  const tprDiff = diff(tpr);
  const fprDiff = diff(fpr);
  const tprRatio = ratio(tpr, 'equalOpportunityRatio');
  const fprRatio = ratio(fpr, 'false positive rate ratio');
  return {
    demographicParityDifference: diff(sel),
    demographicParityRatio: ratio(sel, 'demographicParityRatio'),
    equalizedOddsDifference: tprDiff === null || fprDiff === null ? null : Math.max(tprDiff, fprDiff),
    equalizedOddsRatio: tprRatio === null || fprRatio === null ? null : Math.min(tprRatio, fprRatio),
    equalOpportunityDifference: tprDiff,
    equalOpportunityRatio: tprRatio,
  };
}
