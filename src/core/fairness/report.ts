/**
 * `fairnessReport`: per-group rates, every aggregate of docs/fairness-metrics.md, and seeded bootstrap
 * confidence intervals, all from confusion counts.
 */
import { VeritrailError } from '../errors.js';
import type { Cells, FairnessCounts } from './counts.js';
import {
  addCells,
  clarifyPostTraining,
  clarifyPreTraining,
  conditionalDemographicDisparity,
  explainGroupNulls,
  fairlearnAggregates,
  type GroupMetrics,
  generalizedEntropy,
  groupMetrics,
  type Metric,
  POST_TRAINING_FACET_METRICS,
  PRE_TRAINING_METRICS,
  type Stratum,
  total,
  type Warn,
  ZERO,
} from './metrics.js';
import { resampleCells, Xoshiro128 } from './random.js';

interface BootstrapOptions {
  /** Number of bootstrap replicates; 0 disables intervals. */
  samples: number;
  seed: number;
  /** Lower and upper quantile of the replicate distribution; default [0.025, 0.975] (a 95% interval). */
  quantiles?: [number, number];
}

export interface FairnessReportOptions {
  /** Protected attributes, a subset of the counts' attributes; several give intersections. */
  attributes: readonly string[];
  /** Privileged value per protected attribute: facet a of the Clarify metrics. */
  privileged?: Readonly<Record<string, string>>;
  /** Stratifying attribute of the counts for CDDL / CDDPL (Clarify's "group variable"). */
  groupBy?: string;
  /** The positive class the counts were binarized with; informational, counts are already binary. */
  positive?: string;
  bootstrap?: BootstrapOptions;
  /** Groups with fewer rows are named in `warnings`. */
  minGroupSize: number;
}

interface Interval {
  low: number | null;
  high: number | null;
  /** Replicates in which the aggregate was defined (not null). */
  samples: number;
}

export interface FairnessReport {
  groups: Record<string, GroupMetrics>;
  aggregates: Record<string, number | null>;
  intervals: Record<string, Interval>;
  warnings: string[];
}

interface Cell {
  values: string[];
  cells: Cells;
}

const MAX_BOOTSTRAP = 100_000;

/** Computes the whole report. Throws VeritrailError('USAGE') on inconsistent options. */
export function fairnessReport(counts: FairnessCounts, options: FairnessReportOptions): FairnessReport {
  const dims = validate(counts, options);
  const finest = project(
    counts.cells.map((c) => ({ values: c.values, cells: { tp: c.tp, fp: c.fp, tn: c.tn, fn: c.fn } })),
    dims.map((a) => counts.attributes.indexOf(a)),
  );
  const warnings: string[] = [];
  const seen = new Set<string>();
  const warn: Warn = (w) => {
    if (!seen.has(w)) {
      seen.add(w);
      warnings.push(w);
    }
  };

  const groups: Record<string, GroupMetrics> = {};
  const nAttr = options.attributes.length;
  const addGroups = (indices: number[], name: (values: string[]) => string): void => {
    for (const g of project(finest, indices)) {
      const key = name(g.values);
      groups[key] = groupMetrics(g.cells);
      explainGroupNulls(JSON.stringify(key), g.cells, warn);
      const n = total(g.cells);
      if (n < options.minGroupSize) {
        warn(
          `group ${JSON.stringify(key)} has ${n} rows, fewer than the minimum of ${options.minGroupSize}; its metrics are not reliable`,
        );
      }
    }
  };
  const protectedIdx = options.attributes.map((_, i) => i);
  addGroups(protectedIdx, (v) => (nAttr === 1 ? (v[0] as string) : intersectionKey(v)));
  if (nAttr > 1) {
    options.attributes.forEach((attr, i) => {
      addGroups([i], (v) => `${attr}=${v[0] as string}`);
    });
  }

  const aggregates = evaluate(finest, options, warn);

  const intervals: Record<string, Interval> = {};
  const b = options.bootstrap;
  if (b !== undefined && b.samples > 0) {
    const [qLow, qHigh] = b.quantiles ?? [0.025, 0.975];
    const rng = new Xoshiro128(b.seed);
    const draws = new Map<string, number[]>(Object.keys(aggregates).map((k) => [k, []]));
    const silent: Warn = () => {};
    for (let s = 0; s < b.samples; s++) {
      const replicate = finest.map((c) => {
        const [tp, fp, tn, fn] = resampleCells([c.cells.tp, c.cells.fp, c.cells.tn, c.cells.fn], rng);
        return { values: c.values, cells: { tp, fp, tn, fn } };
      });
      const r = evaluate(replicate, options, silent);
      for (const [k, list] of draws) {
        const v = r[k];
        if (v !== null && v !== undefined) list.push(v);
      }
    }
    for (const [k, list] of draws) {
      list.sort((x, y) => x - y);
      intervals[k] = { low: quantile(list, qLow), high: quantile(list, qHigh), samples: list.length };
      if (list.length < b.samples && aggregates[k] !== null) {
        warn(
          `interval of ${k}: the metric was undefined in ${b.samples - list.length} of ${b.samples} bootstrap samples`,
        );
      }
    }
  }
  return { groups, aggregates, intervals, warnings };
}

/** Escapes `\` and `|` so that intersection keys split back unambiguously. */
function intersectionKey(values: readonly string[]): string {
  return values.map((v) => v.replaceAll('\\', '\\\\').replaceAll('|', '\\|')).join('|');
}

/** Quantile by linear interpolation between order statistics (Hyndman & Fan type 7, numpy's default). */
export function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  const x = sorted[lo] as number;
  return x + (h - lo) * ((sorted[hi] as number) - x);
}

function validate(counts: FairnessCounts, o: FairnessReportOptions): string[] {
  const bad = (msg: string): never => {
    throw new VeritrailError('USAGE', msg);
  };
  if (o.attributes.length === 0) bad('name at least one protected attribute');
  for (const a of o.attributes) {
    if (!counts.attributes.includes(a))
      bad(`protected attribute "${a}" is not among the counted attributes (${counts.attributes.join(', ')})`);
  }
  if (new Set(o.attributes).size !== o.attributes.length) bad('protected attributes must be distinct');
  for (const a of Object.keys(o.privileged ?? {})) {
    if (!o.attributes.includes(a))
      bad(`a privileged value is given for "${a}", which is not a protected attribute`);
  }
  if (o.groupBy !== undefined) {
    if (!counts.attributes.includes(o.groupBy))
      bad(`group variable "${o.groupBy}" is not among the counted attributes`);
    if (o.attributes.includes(o.groupBy))
      bad(`group variable "${o.groupBy}" cannot also be a protected attribute`);
  }
  if (!Number.isSafeInteger(o.minGroupSize) || o.minGroupSize < 0)
    bad('minGroupSize must be a non-negative integer');
  const b = o.bootstrap;
  if (b !== undefined) {
    if (!Number.isSafeInteger(b.samples) || b.samples < 0 || b.samples > MAX_BOOTSTRAP) {
      bad(`bootstrap samples must be an integer from 0 to ${MAX_BOOTSTRAP}`);
    }
    if (!Number.isSafeInteger(b.seed)) bad('bootstrap seed must be an integer');
    const q = b.quantiles;
    if (q !== undefined && !(q[0] >= 0 && q[0] < q[1] && q[1] <= 1))
      bad('bootstrap quantiles must satisfy 0 ≤ low < high ≤ 1');
  }
  return o.groupBy === undefined ? [...o.attributes] : [...o.attributes, o.groupBy];
}

/** Sums cells onto the given value positions; output sorted by values for determinism. */
function project(cells: readonly Cell[], indices: readonly number[]): Cell[] {
  const map = new Map<string, Cell>();
  for (const c of cells) {
    const values = indices.map((i) => c.values[i] as string);
    const key = intersectionKey(values);
    const prev = map.get(key);
    map.set(key, { values, cells: prev === undefined ? c.cells : addCells(prev.cells, c.cells) });
  }
  return [...map.values()].sort((x, y) => {
    for (let i = 0; i < x.values.length; i++) {
      const a = x.values[i] as string;
      const b = y.values[i] as string;
      if (a !== b) return a < b ? -1 : 1;
    }
    return 0;
  });
}

/**
 * All aggregates from the finest cells (values = protected attributes then the group variable).
 * Unprefixed names are over the intersection of all protected attributes; with several attributes,
 * `<attribute>.<name>` repeats the group metrics for each attribute alone.
 */
function evaluate(finest: readonly Cell[], o: FairnessReportOptions, warn: Warn): Record<string, Metric> {
  const out: Record<string, Metric> = {};
  let all: Cells = ZERO;
  for (const c of finest) all = addCells(all, c.cells);
  const n = total(all);
  out.count = n;
  out.accuracy = n === 0 ? null : (all.tp + all.tn) / n;
  out.selectionRate = n === 0 ? null : (all.tp + all.fp) / n;
  out.baseRate = n === 0 ? null : (all.tp + all.fn) / n;
  out.generalizedEntropy = generalizedEntropy(all, warn);

  const scopes: Array<{ prefix: string; idx: number[] }> = [
    { prefix: '', idx: o.attributes.map((_, i) => i) },
  ];
  if (o.attributes.length > 1) {
    o.attributes.forEach((a, i) => {
      scopes.push({ prefix: `${a}.`, idx: [i] });
    });
  }
  const strataIdx = o.groupBy === undefined ? -1 : o.attributes.length;

  for (const { prefix, idx } of scopes) {
    const groups = project(finest, idx);
    const fl = fairlearnAggregates(
      groups.map((g) => ({ name: JSON.stringify(intersectionKey(g.values)), cells: g.cells })),
      warn,
      prefix === '' ? '' : `${prefix.slice(0, -1)}: `,
    );
    for (const [k, v] of Object.entries(fl)) out[prefix + k] = v;

    const scope = prefix === '' ? '' : `${prefix.slice(0, -1)}: `;
    const scopeAttrs = idx.map((i) => o.attributes[i] as string);
    const missing = scopeAttrs.filter((a) => o.privileged?.[a] === undefined);
    const facetNames = [
      ...PRE_TRAINING_METRICS,
      ...POST_TRAINING_FACET_METRICS,
      ...(o.groupBy === undefined
        ? []
        : ['conditionalDemographicDisparityInLabels', 'conditionalDemographicDisparityInPredictedLabels']),
    ];
    if (missing.length > 0) {
      warn(`${scope}facet metrics (Clarify, AIF360) are null: no privileged value for ${missing.join(', ')}`);
      for (const k of facetNames) out[prefix + k] = null;
      continue;
    }
    const privKey = intersectionKey(scopeAttrs.map((a) => o.privileged?.[a] as string));
    const isA = (c: Cell): boolean => intersectionKey(idx.map((i) => c.values[i] as string)) === privKey;
    let a: Cells = ZERO;
    let d: Cells = ZERO;
    for (const c of finest) {
      if (isA(c)) a = addCells(a, c.cells);
      else d = addCells(d, c.cells);
    }
    for (const [k, v] of Object.entries(clarifyPreTraining(a, d, warn, scope))) out[prefix + k] = v;
    for (const [k, v] of Object.entries(clarifyPostTraining(a, d, warn, scope))) out[prefix + k] = v;
    if (strataIdx >= 0) {
      const strata = new Map<string, Stratum>();
      for (const c of finest) {
        const s = c.values[strataIdx] as string;
        const st = strata.get(s) ?? { a: ZERO, d: ZERO };
        if (isA(c)) st.a = addCells(st.a, c.cells);
        else st.d = addCells(st.d, c.cells);
        strata.set(s, st);
      }
      const list = [...strata.values()];
      out[`${prefix}conditionalDemographicDisparityInLabels`] = conditionalDemographicDisparity(
        list,
        'label',
        warn,
        `${scope}conditionalDemographicDisparityInLabels`,
      );
      out[`${prefix}conditionalDemographicDisparityInPredictedLabels`] = conditionalDemographicDisparity(
        list,
        'prediction',
        warn,
        `${scope}conditionalDemographicDisparityInPredictedLabels`,
      );
    }
  }
  return out;
}
