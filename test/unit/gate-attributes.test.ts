import { describe, expect, it } from 'vitest';
import {
  type AttributeEvidence,
  attributePolicyFor,
  byAttributeContext,
  gateSchemaFor,
} from '../../src/core/gate/attributes.js';
import { DEFAULT_POLICY_TEXT, evaluateGate, gateFactsFrom } from '../../src/core/gate/index.js';

/** The case: race disparate impact 0.8006 whose 95% interval is [0.757, 0.850]. */
const race = (smallestGroup: number, min = 0.8): AttributeEvidence => ({
  name: 'race',
  smallestGroup,
  value: { disparateImpact: 0.8006, equalizedOddsDifference: 0.05, demographicParityDifference: 0.04 },
  interval: {
    disparateImpact: { lower: 0.757, upper: 0.85 },
    equalizedOddsDifference: { lower: 0.01, upper: 0.09 },
  },
  thresholds: { disparateImpactMin: min, disparateImpactMax: 1.25, maxEqualizedOddsDifference: 0.1 },
});

const decide = (evidence: AttributeEvidence) =>
  evaluateGate({
    policyText: `${DEFAULT_POLICY_TEXT}${attributePolicyFor(['race'], 200)}`,
    schemaText: gateSchemaFor(['race']),
    extraContext: { byAttribute: byAttributeContext([evidence]) },
    facts: gateFactsFrom({
      accuracy: 0.8,
      attributes: { race: evidence.value },
      thresholds: {
        minAccuracy: 0.7,
        disparateImpact: { min: 0.8, max: 1.25 },
        maxEqualizedOddsDifference: 0.1,
      },
      provenanceVerified: true,
      codeChecksPassed: true,
      minGroupSizeMet: true,
    }),
  });

describe('per-attribute gates that see uncertainty (issue 11 item 7)', () => {
  it('denies a small group whose disparate impact interval reaches below the minimum, naming the bound', () => {
    const d = decide(race(150));
    expect(d.decision).toBe('deny');
    expect(d.policies).toContain('attribute-1-disparate-impact-interval-below-minimum');
    expect(d.reasons.join('\n')).toMatch(
      /race: the smallest group has 150 rows \(under 200\), and the lower bound 0\.757/,
    );
  });

  it('judges a large group by its point value', () => {
    expect(decide(race(500)).decision).toBe('allow');
  });

  it('applies an attribute its own thresholds', () => {
    const d = decide(race(500, 0.85));
    expect(d.decision).toBe('deny');
    expect(d.policies).toEqual(['attribute-1-disparate-impact-below-minimum']);
    expect(d.reasons[0]).toMatch(/race: disparate impact 0\.8006 is below its minimum 0\.85/);
  });

  it('lets a custom policy require the lower bound of the interval directly', () => {
    const d = evaluateGate({
      policyText: `@id("ship") permit (principal, action, resource);
@id("di-lower-bound") @reason("lower bound {byAttribute.race.disparateImpactLower}")
forbid (principal, action, resource) when {
  context.byAttribute["race"] has disparateImpactLower &&
  context.byAttribute["race"].disparateImpactLower.lessThan(decimal("0.8"))
};`,
      schemaText: gateSchemaFor(['race']),
      extraContext: { byAttribute: byAttributeContext([race(5000)]) },
      facts: gateFactsFrom({
        accuracy: 0.8,
        attributes: { race: race(5000).value },
        thresholds: {
          minAccuracy: 0.7,
          disparateImpact: { min: 0.8, max: 1.25 },
          maxEqualizedOddsDifference: 0.1,
        },
        provenanceVerified: true,
        codeChecksPassed: true,
        minGroupSizeMet: true,
      }),
    });
    expect(d.decision).toBe('deny');
    expect(d.policies).toEqual(['di-lower-bound']);
  });
});

describe('a custom policy over byAttribute', () => {
  it('passes the pre-run check (validated against the pipeline schema with byAttribute)', async () => {
    const { makeWorkspace } = await import('../helpers/workspace.js');
    const { loadPipelineFile, preflightPipeline } = await import('../../src/local/start-run.js');
    const { writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const ws = makeWorkspace({
      rows: 10,
      pipeline: (d) => ((d.gate as Record<string, unknown>).policy = 'p.cedar'),
    });
    try {
      writeFileSync(
        join(ws.dir, 'p.cedar'),
        `@id("ship") permit (principal, action, resource);
@id("sex-lower") forbid (principal, action, resource) when {
  context.byAttribute["sex"] has disparateImpactLower && context.byAttribute["sex"].disparateImpactLower.lessThan(decimal("0.8"))
};`,
      );
      await expect(preflightPipeline(await loadPipelineFile(ws.pipeline, ws.dir))).resolves.toBeUndefined();
    } finally {
      ws.cleanup();
    }
  });
});
