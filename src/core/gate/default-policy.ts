/**
 * The shipped default gate policy and the Cedar schema of gate requests, embedded so that src/core
 * stays free of I/O. They must stay byte-identical to policies/default.cedar and
 * policies/veritrail.cedarschema (test/unit/gate-default-policy.test.ts checks it).
 */

/** policies/default.cedar */
export const DEFAULT_POLICY_TEXT = `// veritrail default gate policy (docs/gates.md).
//
// A model ships only when its provenance is verified, its code checks passed, every metric is
// defined, every group is large enough, its accuracy reaches the minimum, and its fairness metrics
// are within the pipeline's thresholds. Any forbid that applies overrides the permit (Cedar:
// "forbid overrides permit"); @reason is the text veritrail reports, with {context.path} filled in.

@id("ship-when-provenance-and-code-checks-pass")
@reason("provenance is verified, the code checks passed and every fairness and accuracy threshold is met")
permit (principal, action == Veritrail::Action::"ship", resource)
when { context.provenanceVerified && context.codeChecksPassed };

@id("provenance-not-verified")
@reason("the provenance of the data, code and model is not verified")
forbid (principal, action == Veritrail::Action::"ship", resource)
unless { context.provenanceVerified };

@id("code-checks-failed")
@reason("the code checks did not pass (hard-coded secrets, unpinned image or vulnerability findings)")
forbid (principal, action == Veritrail::Action::"ship", resource)
unless { context.codeChecksPassed };

@id("metric-undefined")
@reason("some metrics are undefined, so the model cannot be shown to be fair: {undefinedMetrics}")
forbid (principal, action == Veritrail::Action::"ship", resource)
unless { context.allMetricsDefined };

@id("groups-too-small")
@reason("some groups have fewer rows than the minimum group size, so their metrics are not reliable")
forbid (principal, action == Veritrail::Action::"ship", resource)
unless { context.minGroupSizeMet };

@id("accuracy-below-minimum")
@reason("accuracy {accuracy} is below the minimum {thresholds.minAccuracy}")
forbid (principal, action == Veritrail::Action::"ship", resource)
when {
  context has accuracy &&
  context.accuracy.lessThan(context.thresholds.minAccuracy)
};

// The four-fifths rule (29 CFR 1607.4(D)): a selection rate below 80% of the highest one is
// evidence of adverse impact; the upper bound 1.25 = 1/0.8 applies the same rule the other way.
@id("disparate-impact-below-minimum")
@reason("disparate impact {worst.disparateImpactMin} for {worst.disparateImpactMinAttribute} is below the minimum {thresholds.disparateImpactMin} (four-fifths rule)")
forbid (principal, action == Veritrail::Action::"ship", resource)
when {
  context.worst has disparateImpactMin &&
  context.worst.disparateImpactMin.lessThan(context.thresholds.disparateImpactMin)
};

@id("disparate-impact-above-maximum")
@reason("disparate impact {worst.disparateImpactMax} for {worst.disparateImpactMaxAttribute} is above the maximum {thresholds.disparateImpactMax} (four-fifths rule, inverted)")
forbid (principal, action == Veritrail::Action::"ship", resource)
when {
  context.worst has disparateImpactMax &&
  context.worst.disparateImpactMax.greaterThan(context.thresholds.disparateImpactMax)
};

@id("equalized-odds-difference-above-maximum")
@reason("equalized odds difference {worst.equalizedOddsDifference} for {worst.equalizedOddsDifferenceAttribute} is above the maximum {thresholds.maxEqualizedOddsDifference}")
forbid (principal, action == Veritrail::Action::"ship", resource)
when {
  context.worst has equalizedOddsDifference &&
  context.worst.equalizedOddsDifference.greaterThan(context.thresholds.maxEqualizedOddsDifference)
};

@id("demographic-parity-difference-above-maximum")
@reason("demographic parity difference {worst.demographicParityDifference} for {worst.demographicParityDifferenceAttribute} is above the maximum {thresholds.maxDemographicParityDifference}")
forbid (principal, action == Veritrail::Action::"ship", resource)
when {
  context.thresholds has maxDemographicParityDifference &&
  context.worst has demographicParityDifference &&
  context.worst.demographicParityDifference.greaterThan(context.thresholds.maxDemographicParityDifference)
};
`;

/** policies/veritrail.cedarschema */
export const GATE_SCHEMA_TEXT = `// The shape of a veritrail gate request (docs/gates.md). Policies are validated against it in
// strict mode, so a misspelt fact or an unguarded optional metric is refused when the policy loads.
namespace Veritrail {
  // principal: the pipeline, e.g. Veritrail::Pipeline::"credit-scoring"
  entity Pipeline;
  // resource: the trained model, by digest, e.g. Veritrail::Model::"sha256:…"
  entity Model;

  // A metric that is undefined (a division by zero, no data) is absent: test it with "has".
  type AttributeMetrics = {
    name: String,
    disparateImpact?: decimal,
    demographicParityDifference?: decimal,
    equalizedOddsDifference?: decimal,
  };

  type WorstMetrics = {
    disparateImpactMin?: decimal,
    disparateImpactMinAttribute?: String,
    disparateImpactMax?: decimal,
    disparateImpactMaxAttribute?: String,
    equalizedOddsDifference?: decimal,
    equalizedOddsDifferenceAttribute?: String,
    demographicParityDifference?: decimal,
    demographicParityDifferenceAttribute?: String,
  };

  type Thresholds = {
    minAccuracy: decimal,
    disparateImpactMin: decimal,
    disparateImpactMax: decimal,
    maxEqualizedOddsDifference: decimal,
    maxDemographicParityDifference?: decimal,
  };

  action ship appliesTo {
    principal: Pipeline,
    resource: Model,
    context: {
      accuracy?: decimal,
      provenanceVerified: Bool,
      codeChecksPassed: Bool,
      minGroupSizeMet: Bool,
      allMetricsDefined: Bool,
      undefinedMetrics: Set<String>,
      attributes: Set<AttributeMetrics>,
      worst: WorstMetrics,
      thresholds: Thresholds,
    },
  };
}
`;
