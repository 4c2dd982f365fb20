/**
 * The facts a gate decides on, and their encoding as the Cedar request context. GateFacts are plain
 * JSON (they are what `veritrail gate --input` reads and what the Gate step records); Cedar sees them
 * through `toCedarContext`, which turns numbers into `decimal`s and leaves undefined metrics out.
 */
import { z } from 'zod';
import { VeritrailError } from '../errors.js';
import { describeIssues } from '../pipeline.js';
import { type CedarDecimalJson, type Rounding, toCedarDecimal } from './decimal.js';

/** Between-group fairness metrics of one protected attribute; `null` = undefined (division by zero…). */
interface AttributeMetrics {
  disparateImpact: number | null;
  demographicParityDifference: number | null;
  equalizedOddsDifference: number | null;
}

interface GateThresholds {
  minAccuracy: number;
  disparateImpactMin: number;
  disparateImpactMax: number;
  maxEqualizedOddsDifference: number;
  maxDemographicParityDifference?: number | undefined;
}

/** The worst value of each metric over all protected attributes; `null` when any is undefined. */
interface WorstMetrics {
  disparateImpactMin: number | null;
  disparateImpactMax: number | null;
  equalizedOddsDifference: number | null;
  demographicParityDifference: number | null;
}

export interface GateFacts {
  /** Overall accuracy on the held-out set; `null` when undefined. */
  accuracy: number | null;
  provenanceVerified: boolean;
  codeChecksPassed: boolean;
  /** Every group has at least the configured minimum number of rows. */
  minGroupSizeMet: boolean;
  attributes: Record<string, AttributeMetrics>;
  worst: WorstMetrics;
  thresholds: GateThresholds;
}

const metric = z.number().nullable();
const attributeMetrics = z.strictObject({
  disparateImpact: metric,
  demographicParityDifference: metric,
  equalizedOddsDifference: metric,
});

/** Schema of GateFacts as JSON; unknown keys are refused so that a misspelt fact is never ignored. */
const GateFactsSchema = z.strictObject({
  accuracy: metric,
  provenanceVerified: z.boolean(),
  codeChecksPassed: z.boolean(),
  minGroupSizeMet: z.boolean(),
  attributes: z.record(z.string().min(1), attributeMetrics),
  worst: z.strictObject({
    disparateImpactMin: metric,
    disparateImpactMax: metric,
    equalizedOddsDifference: metric,
    demographicParityDifference: metric,
  }),
  thresholds: z.strictObject({
    minAccuracy: z.number(),
    disparateImpactMin: z.number(),
    disparateImpactMax: z.number(),
    maxEqualizedOddsDifference: z.number(),
    maxDemographicParityDifference: z.number().optional(),
  }),
});

/** Validates parsed JSON as GateFacts; POLICY_INVALID names each bad field. */
export function parseGateFacts(value: unknown, source = 'gate facts'): GateFacts {
  const r = GateFactsSchema.safeParse(value);
  if (!r.success) {
    throw new VeritrailError(
      'POLICY_INVALID',
      `${source} are invalid: ${describeIssues(r.error)}. Fix the field(s) named; see docs/gates.md for the facts model.`,
      { cause: r.error },
    );
  }
  return r.data;
}

/** Thresholds as a pipeline definition spells them (`gate.thresholds` of src/core/pipeline.ts). */
interface PipelineGateThresholds {
  minAccuracy: number;
  disparateImpact: { min: number; max: number };
  maxEqualizedOddsDifference: number;
  maxDemographicParityDifference?: number | undefined;
}

export interface GateFactsInput {
  accuracy: number | null;
  /** Per protected attribute; a metric absent or `null` counts as undefined and denies. */
  attributes: Record<string, Partial<AttributeMetrics>>;
  thresholds: GateThresholds | PipelineGateThresholds;
  provenanceVerified: boolean;
  codeChecksPassed: boolean;
  minGroupSizeMet: boolean;
}

/** Builds GateFacts, computing the worst value of each metric over the attributes. */
export function gateFactsFrom(input: GateFactsInput): GateFacts {
  const attributes: Record<string, AttributeMetrics> = {};
  for (const [name, m] of Object.entries(input.attributes)) {
    attributes[name] = {
      disparateImpact: finiteOrNull(m.disparateImpact),
      demographicParityDifference: finiteOrNull(m.demographicParityDifference),
      equalizedOddsDifference: finiteOrNull(m.equalizedOddsDifference),
    };
  }
  const all = Object.values(attributes);
  const pick = (f: (m: AttributeMetrics) => number | null, agg: (xs: number[]) => number): number | null => {
    const xs = all.map(f);
    if (xs.length === 0 || xs.some((x) => x === null)) return null;
    return agg(xs as number[]);
  };
  const t = input.thresholds;
  const thresholds: GateThresholds =
    'disparateImpact' in t
      ? {
          minAccuracy: t.minAccuracy,
          disparateImpactMin: t.disparateImpact.min,
          disparateImpactMax: t.disparateImpact.max,
          maxEqualizedOddsDifference: t.maxEqualizedOddsDifference,
          ...(t.maxDemographicParityDifference === undefined
            ? {}
            : { maxDemographicParityDifference: t.maxDemographicParityDifference }),
        }
      : { ...t };
  return {
    accuracy: finiteOrNull(input.accuracy),
    provenanceVerified: input.provenanceVerified,
    codeChecksPassed: input.codeChecksPassed,
    minGroupSizeMet: input.minGroupSizeMet,
    attributes,
    worst: {
      disparateImpactMin: pick(
        (m) => m.disparateImpact,
        (xs) => Math.min(...xs),
      ),
      disparateImpactMax: pick(
        (m) => m.disparateImpact,
        (xs) => Math.max(...xs),
      ),
      equalizedOddsDifference: pick(
        (m) => m.equalizedOddsDifference,
        (xs) => Math.max(...xs),
      ),
      demographicParityDifference: pick(
        (m) => m.demographicParityDifference,
        (xs) => Math.max(...xs),
      ),
    },
    thresholds,
  };
}

function finiteOrNull(x: number | null | undefined): number | null {
  return typeof x === 'number' && Number.isFinite(x) ? x : null;
}

/** A Cedar context value in Cedar's JSON format. */
export type CedarJson = boolean | string | CedarDecimalJson | CedarJson[] | { [key: string]: CedarJson };

/**
 * The Cedar context for `facts` (shape: policies/veritrail.cedarschema). Undefined metrics are left
 * out, so a policy must test them with `has`, and each is named in `undefinedMetrics`
 * (`allMetricsDefined` is false). The attribute holding each worst value is named beside it
 * (`worst.disparateImpactMinAttribute`…) so that reasons can say which attribute failed.
 */
export function toCedarContext(facts: GateFacts): Record<string, CedarJson> {
  const undefinedMetrics: string[] = [];
  const put = (
    target: Record<string, CedarJson>,
    key: string,
    value: number | null,
    rounding: Rounding,
    label: string,
  ): void => {
    const d = value === null ? null : toCedarDecimal(value, rounding);
    if (d === null) undefinedMetrics.push(label);
    else target[key] = d;
  };
  const ctx: Record<string, CedarJson> = {
    provenanceVerified: facts.provenanceVerified,
    codeChecksPassed: facts.codeChecksPassed,
    minGroupSizeMet: facts.minGroupSizeMet,
  };
  put(ctx, 'accuracy', facts.accuracy, 'down', 'accuracy');

  const names = Object.keys(facts.attributes).sort();
  if (names.length === 0) undefinedMetrics.push('fairness metrics (no protected attribute was evaluated)');
  const attributes: CedarJson[] = [];
  for (const name of names) {
    const m = facts.attributes[name] as AttributeMetrics;
    const rec: Record<string, CedarJson> = { name };
    put(rec, 'disparateImpact', m.disparateImpact, 'away-from-one', `${name}.disparateImpact`);
    put(
      rec,
      'demographicParityDifference',
      m.demographicParityDifference,
      'up',
      `${name}.demographicParityDifference`,
    );
    put(rec, 'equalizedOddsDifference', m.equalizedOddsDifference, 'up', `${name}.equalizedOddsDifference`);
    attributes.push(rec);
  }

  // The worst values are re-derived from the facts' own numbers only to name their attribute; the
  // values themselves come from `facts.worst`, which the caller may have computed differently.
  const worst: Record<string, CedarJson> = {};
  const w = facts.worst;
  const listed = undefinedMetrics.length;
  put(worst, 'disparateImpactMin', w.disparateImpactMin, 'down', 'worst.disparateImpactMin');
  put(worst, 'disparateImpactMax', w.disparateImpactMax, 'up', 'worst.disparateImpactMax');
  put(worst, 'equalizedOddsDifference', w.equalizedOddsDifference, 'up', 'worst.equalizedOddsDifference');
  put(
    worst,
    'demographicParityDifference',
    w.demographicParityDifference,
    'up',
    'worst.demographicParityDifference',
  );
  // A worst value is undefined because some attribute's metric is; when that one is already named,
  // naming the worst value too only adds noise to the reason.
  const attributeLevel = undefinedMetrics.slice(0, listed).filter((m) => m !== 'accuracy');
  if (attributeLevel.length > 0) undefinedMetrics.splice(listed);
  const argWorst = (f: (m: AttributeMetrics) => number | null, better: (a: number, b: number) => boolean) => {
    let best: string | undefined;
    let bestValue = 0;
    for (const name of names) {
      const v = f(facts.attributes[name] as AttributeMetrics);
      if (v === null) continue;
      if (best === undefined || better(v, bestValue)) {
        best = name;
        bestValue = v;
      }
    }
    return best;
  };
  const nameOf = (key: string, name: string | undefined): void => {
    if (name !== undefined) worst[key] = name;
  };
  nameOf(
    'disparateImpactMinAttribute',
    argWorst(
      (m) => m.disparateImpact,
      (a, b) => a < b,
    ),
  );
  nameOf(
    'disparateImpactMaxAttribute',
    argWorst(
      (m) => m.disparateImpact,
      (a, b) => a > b,
    ),
  );
  nameOf(
    'equalizedOddsDifferenceAttribute',
    argWorst(
      (m) => m.equalizedOddsDifference,
      (a, b) => a > b,
    ),
  );
  nameOf(
    'demographicParityDifferenceAttribute',
    argWorst(
      (m) => m.demographicParityDifference,
      (a, b) => a > b,
    ),
  );

  // Thresholds round toward the stricter side: a minimum up, a maximum down.
  const thresholds: Record<string, CedarJson> = {};
  const t = facts.thresholds;
  putThreshold(thresholds, 'minAccuracy', t.minAccuracy, 'up');
  putThreshold(thresholds, 'disparateImpactMin', t.disparateImpactMin, 'up');
  putThreshold(thresholds, 'disparateImpactMax', t.disparateImpactMax, 'down');
  putThreshold(thresholds, 'maxEqualizedOddsDifference', t.maxEqualizedOddsDifference, 'down');
  if (t.maxDemographicParityDifference !== undefined) {
    putThreshold(thresholds, 'maxDemographicParityDifference', t.maxDemographicParityDifference, 'down');
  }

  ctx.allMetricsDefined = undefinedMetrics.length === 0;
  ctx.undefinedMetrics = undefinedMetrics;
  ctx.attributes = attributes;
  ctx.worst = worst;
  ctx.thresholds = thresholds;
  return ctx;
}

function putThreshold(
  target: Record<string, CedarJson>,
  key: string,
  value: number,
  rounding: Rounding,
): void {
  const d = toCedarDecimal(value, rounding);
  if (d === null) {
    throw new VeritrailError(
      'POLICY_INVALID',
      `gate threshold ${key} is ${String(value)}; a threshold must be a finite number. Fix gate.thresholds.`,
      { details: { field: `thresholds.${key}` } },
    );
  }
  target[key] = d;
}
