/**
 * Per-attribute gate facts (issue 11 item 7; docs/gates.md "Per-attribute thresholds and
 * intervals"): each protected attribute's metrics with their 95% intervals, its smallest group and
 * its own thresholds, as the Cedar context record `byAttribute.<attribute>`. Cedar cannot iterate
 * a set, so the record is keyed by attribute name and the schema is extended per pipeline
 * ({@link gateSchemaFor}); the default rules over it are generated per pipeline too
 * ({@link attributePolicyFor}): below `intervalGroupSize` rows in a group, a metric is judged by the
 * bound of its interval nearest to failing, at or above it by its point value.
 */
import type { PipelineDefinition } from '../pipeline.js';
import { type CedarDecimalJson, toCedarDecimal } from './decimal.js';
import { GATE_SCHEMA_TEXT } from './default-policy.js';

export interface AttributeEvidence {
  name: string;
  /** Rows in the attribute's smallest group of the test split. */
  smallestGroup: number;
  value: {
    disparateImpact: number | null;
    equalizedOddsDifference: number | null;
    demographicParityDifference: number | null;
  };
  interval: {
    disparateImpact?: { lower: number; upper: number };
    equalizedOddsDifference?: { lower: number; upper: number };
    demographicParityDifference?: { lower: number; upper: number };
  };
  thresholds: {
    disparateImpactMin: number;
    disparateImpactMax: number;
    maxEqualizedOddsDifference: number;
    maxDemographicParityDifference?: number;
  };
}

/** The effective thresholds of one attribute: its own where the definition gives them, else the pipeline's. */
export function thresholdsFor(def: PipelineDefinition, attribute: string): AttributeEvidence['thresholds'] {
  const t = def.gate.thresholds;
  const own = t.attributes[attribute];
  const dpd = own?.maxDemographicParityDifference ?? t.maxDemographicParityDifference;
  return {
    disparateImpactMin: own?.disparateImpact?.min ?? t.disparateImpact.min,
    disparateImpactMax: own?.disparateImpact?.max ?? t.disparateImpact.max,
    maxEqualizedOddsDifference: own?.maxEqualizedOddsDifference ?? t.maxEqualizedOddsDifference,
    ...(dpd === undefined ? {} : { maxDemographicParityDifference: dpd }),
  };
}

const quote = (name: string) => JSON.stringify(name);

/** The gate schema with `byAttribute` for these attributes (policies/veritrail.cedarschema plus one record). */
export function gateSchemaFor(attributes: readonly string[]): string {
  const decl = `
  type AttributeThresholds = {
    disparateImpactMin: decimal,
    disparateImpactMax: decimal,
    maxEqualizedOddsDifference: decimal,
    maxDemographicParityDifference?: decimal,
  };
  // One protected attribute: point values, 95% interval bounds, smallest group, own thresholds.
  type AttributeFacts = {
    smallestGroup: Long,
    disparateImpact?: decimal,
    disparateImpactLower?: decimal,
    disparateImpactUpper?: decimal,
    equalizedOddsDifference?: decimal,
    equalizedOddsDifferenceUpper?: decimal,
    demographicParityDifference?: decimal,
    demographicParityDifferenceUpper?: decimal,
    thresholds: AttributeThresholds,
  };
`;
  const record = `byAttribute: { ${attributes.map((a) => `${quote(a)}: AttributeFacts`).join(', ')} },`;
  return GATE_SCHEMA_TEXT.replace('namespace Veritrail {', `namespace Veritrail {${decl}`).replace(
    'thresholds: Thresholds,\n    },',
    `thresholds: Thresholds,\n      ${record}\n    },`,
  );
}

/** The `byAttribute` Cedar context record (undefined values and intervals left out: test with `has`). */
export function byAttributeContext(evidence: readonly AttributeEvidence[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const e of evidence) {
    const rec: Record<string, CedarDecimalJson | number | Record<string, CedarDecimalJson>> = {
      smallestGroup: e.smallestGroup,
    };
    const put = (key: string, v: number | null | undefined, rounding: 'down' | 'up' | 'away-from-one') => {
      const d = v === null || v === undefined || !Number.isFinite(v) ? null : toCedarDecimal(v, rounding);
      if (d !== null) rec[key] = d;
    };
    put('disparateImpact', e.value.disparateImpact, 'away-from-one');
    put('disparateImpactLower', e.interval.disparateImpact?.lower, 'down');
    put('disparateImpactUpper', e.interval.disparateImpact?.upper, 'up');
    put('equalizedOddsDifference', e.value.equalizedOddsDifference, 'up');
    put('equalizedOddsDifferenceUpper', e.interval.equalizedOddsDifference?.upper, 'up');
    put('demographicParityDifference', e.value.demographicParityDifference, 'up');
    put('demographicParityDifferenceUpper', e.interval.demographicParityDifference?.upper, 'up');
    const t: Record<string, CedarDecimalJson> = {};
    for (const [k, v] of Object.entries(e.thresholds)) {
      const d = typeof v === 'number' ? toCedarDecimal(v, 'down') : null;
      if (d !== null) t[k] = d;
    }
    rec.thresholds = t;
    out[e.name] = rec;
  }
  return out;
}

/**
 * The default per-attribute rules for a pipeline: each attribute's metrics against its own
 * thresholds, by point value when its smallest group has at least `intervalGroupSize` rows and by
 * the interval bound nearest to failing when it has fewer.
 */
export function attributePolicyFor(attributes: readonly string[], intervalGroupSize: number): string {
  const rules: string[] = [];
  attributes.forEach((name, i) => {
    const a = `context.byAttribute[${quote(name)}]`;
    const p = `{byAttribute.${name}`;
    const id = `attribute-${i + 1}`;
    const small = `${a}.smallestGroup < ${intervalGroupSize}`;
    const large = `${a}.smallestGroup >= ${intervalGroupSize}`;
    const rule = (suffix: string, reason: string, when: string) =>
      rules.push(
        `@id("${id}-${suffix}")\n@reason("${name}: ${reason}")\nforbid (principal, action == Veritrail::Action::"ship", resource)\nwhen { ${when} };\n`,
      );
    rule(
      'disparate-impact-below-minimum',
      `disparate impact ${p}.disparateImpact} is below its minimum ${p}.thresholds.disparateImpactMin}`,
      `${large} && ${a} has disparateImpact && ${a}.disparateImpact.lessThan(${a}.thresholds.disparateImpactMin)`,
    );
    rule(
      'disparate-impact-above-maximum',
      `disparate impact ${p}.disparateImpact} is above its maximum ${p}.thresholds.disparateImpactMax}`,
      `${large} && ${a} has disparateImpact && ${a}.disparateImpact.greaterThan(${a}.thresholds.disparateImpactMax)`,
    );
    rule(
      'disparate-impact-interval-below-minimum',
      `the smallest group has ${p}.smallestGroup} rows (under ${intervalGroupSize}), and the lower bound ${p}.disparateImpactLower} of the disparate impact interval is below the minimum ${p}.thresholds.disparateImpactMin}`,
      `${small} && ${a} has disparateImpactLower && ${a}.disparateImpactLower.lessThan(${a}.thresholds.disparateImpactMin)`,
    );
    rule(
      'disparate-impact-interval-above-maximum',
      `the smallest group has ${p}.smallestGroup} rows (under ${intervalGroupSize}), and the upper bound ${p}.disparateImpactUpper} of the disparate impact interval is above the maximum ${p}.thresholds.disparateImpactMax}`,
      `${small} && ${a} has disparateImpactUpper && ${a}.disparateImpactUpper.greaterThan(${a}.thresholds.disparateImpactMax)`,
    );
    rule(
      'equalized-odds-difference-above-maximum',
      `equalized odds difference ${p}.equalizedOddsDifference} is above its maximum ${p}.thresholds.maxEqualizedOddsDifference}`,
      `${large} && ${a} has equalizedOddsDifference && ${a}.equalizedOddsDifference.greaterThan(${a}.thresholds.maxEqualizedOddsDifference)`,
    );
    rule(
      'equalized-odds-difference-interval-above-maximum',
      `the smallest group has ${p}.smallestGroup} rows (under ${intervalGroupSize}), and the upper bound ${p}.equalizedOddsDifferenceUpper} of the equalized odds difference interval is above the maximum ${p}.thresholds.maxEqualizedOddsDifference}`,
      `${small} && ${a} has equalizedOddsDifferenceUpper && ${a}.equalizedOddsDifferenceUpper.greaterThan(${a}.thresholds.maxEqualizedOddsDifference)`,
    );
    rule(
      'demographic-parity-difference-above-maximum',
      `demographic parity difference ${p}.demographicParityDifference} is above its maximum ${p}.thresholds.maxDemographicParityDifference}`,
      `${a}.thresholds has maxDemographicParityDifference && ${a} has demographicParityDifference && (${large} || !(${a} has demographicParityDifferenceUpper)) && ${a}.demographicParityDifference.greaterThan(${a}.thresholds.maxDemographicParityDifference)`,
    );
    rule(
      'demographic-parity-difference-interval-above-maximum',
      `the upper bound ${p}.demographicParityDifferenceUpper} of the demographic parity difference interval is above the maximum ${p}.thresholds.maxDemographicParityDifference}`,
      `${small} && ${a}.thresholds has maxDemographicParityDifference && ${a} has demographicParityDifferenceUpper && ${a}.demographicParityDifferenceUpper.greaterThan(${a}.thresholds.maxDemographicParityDifference)`,
    );
  });
  return `\n// Per-attribute rules generated for this pipeline (src/core/gate/attributes.ts, docs/gates.md).\n${rules.join('\n')}`;
}
