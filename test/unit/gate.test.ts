import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isVeritrailError, type VeritrailError } from '../../src/core/errors.js';
import {
  DEFAULT_POLICY_TEXT,
  evaluateGate,
  type GateDecision,
  type GateFacts,
  gateFactsFrom,
  loadPolicy,
  parseGateFacts,
  toCedarContext,
} from '../../src/core/gate/index.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/gate');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');
const allowFacts = (): GateFacts => parseGateFacts(JSON.parse(fixture('facts-allow.json')));

const THRESHOLDS = {
  minAccuracy: 0.7,
  disparateImpact: { min: 0.8, max: 1.25 },
  maxEqualizedOddsDifference: 0.1,
};
const good = { disparateImpact: 0.91, demographicParityDifference: 0.04, equalizedOddsDifference: 0.06 };

function facts(overrides: Partial<Parameters<typeof gateFactsFrom>[0]> = {}): GateFacts {
  return gateFactsFrom({
    accuracy: 0.84,
    attributes: { age_group: good, sex: { ...good, disparateImpact: 1.08 } },
    thresholds: THRESHOLDS,
    provenanceVerified: true,
    codeChecksPassed: true,
    minGroupSizeMet: true,
    ...overrides,
  });
}

const gate = (f: GateFacts, policyText = DEFAULT_POLICY_TEXT): GateDecision =>
  evaluateGate({ policyText, facts: f, pipeline: 'credit-scoring', model: `sha256:${'ab'.repeat(32)}` });

function thrown(f: () => unknown): VeritrailError {
  try {
    f();
  } catch (e) {
    if (isVeritrailError(e)) return e;
    throw e;
  }
  throw new Error('expected a VeritrailError');
}

describe('evaluateGate with the default policy', () => {
  describe('when every check passes', () => {
    it('allows, determined by the permit policy, with its reason', () => {
      const d = gate(allowFacts());
      expect(d.decision).toBe('allow');
      expect(d.policies).toEqual(['ship-when-provenance-and-code-checks-pass']);
      expect(d.reasons).toEqual([
        'provenance is verified, the code checks passed and every fairness and accuracy threshold is met',
      ]);
      expect(d.diagnostics).toBeUndefined();
    });
  });

  describe('when one check fails', () => {
    it.each<[string, Partial<Parameters<typeof gateFactsFrom>[0]>, string, string]>([
      [
        'provenance is not verified',
        { provenanceVerified: false },
        'provenance-not-verified',
        'the provenance of the data, code and model is not verified',
      ],
      [
        'the code checks failed',
        { codeChecksPassed: false },
        'code-checks-failed',
        'the code checks did not pass (hard-coded secrets, unpinned image or vulnerability findings)',
      ],
      [
        'a group is too small',
        { minGroupSizeMet: false },
        'groups-too-small',
        'some groups have fewer rows than the minimum group size, so their metrics are not reliable',
      ],
      [
        'accuracy is too low',
        { accuracy: 0.65 },
        'accuracy-below-minimum',
        'accuracy 0.65 is below the minimum 0.70',
      ],
      [
        'disparate impact is below 0.8',
        { attributes: { age_group: { ...good, disparateImpact: 0.72 }, sex: good } },
        'disparate-impact-below-minimum',
        'disparate impact 0.72 for age_group is below the minimum 0.80 (four-fifths rule)',
      ],
      [
        'disparate impact is above 1.25',
        { attributes: { age_group: good, sex: { ...good, disparateImpact: 1.31 } } },
        'disparate-impact-above-maximum',
        'disparate impact 1.31 for sex is above the maximum 1.25 (four-fifths rule, inverted)',
      ],
      [
        'equalized odds difference is above 0.1',
        { attributes: { age_group: good, sex: { ...good, equalizedOddsDifference: 0.153 } } },
        'equalized-odds-difference-above-maximum',
        'equalized odds difference 0.153 for sex is above the maximum 0.10',
      ],
      [
        'demographic parity difference is above its configured maximum',
        {
          thresholds: { ...THRESHOLDS, maxDemographicParityDifference: 0.05 },
          attributes: { age_group: { ...good, demographicParityDifference: 0.0712 }, sex: good },
        },
        'demographic-parity-difference-above-maximum',
        'demographic parity difference 0.0712 for age_group is above the maximum 0.05',
      ],
    ])('denies when %s, naming the forbid policy and why', (_name, overrides, policy, reason) => {
      const d = gate(facts(overrides));
      expect(d).toEqual({ decision: 'deny', policies: [policy], reasons: [reason] });
    });

    it('does not bound demographic parity when no maximum is configured', () => {
      const d = gate(facts({ attributes: { age_group: { ...good, demographicParityDifference: 0.4 } } }));
      expect(d.decision).toBe('allow');
    });
  });

  describe('when several checks fail', () => {
    it('gives every reason, in the order of the policy file', () => {
      const d = gate(
        facts({
          accuracy: 0.5,
          codeChecksPassed: false,
          attributes: { age_group: { ...good, disparateImpact: 0.5, equalizedOddsDifference: 0.3 } },
        }),
      );
      expect(d.decision).toBe('deny');
      expect(d.policies).toEqual([
        'code-checks-failed',
        'accuracy-below-minimum',
        'disparate-impact-below-minimum',
        'equalized-odds-difference-above-maximum',
      ]);
      expect(d.reasons).toHaveLength(4);
    });
  });

  describe('when a metric is undefined', () => {
    it('denies on a null accuracy', () => {
      const d = gate(facts({ accuracy: null }));
      expect(d.decision).toBe('deny');
      expect(d.policies).toEqual(['metric-undefined']);
      expect(d.reasons).toEqual([
        'some metrics are undefined, so the model cannot be shown to be fair: accuracy',
      ]);
    });

    it('denies on a null fairness metric and names it', () => {
      const d = gate(facts({ attributes: { age_group: good, sex: { ...good, disparateImpact: null } } }));
      expect(d).toEqual({
        decision: 'deny',
        policies: ['metric-undefined'],
        reasons: ['some metrics are undefined, so the model cannot be shown to be fair: sex.disparateImpact'],
      });
    });

    it('denies on NaN or Infinity, which JSON cannot carry and Cedar cannot compare', () => {
      expect(gate(facts({ accuracy: Number.NaN })).policies).toEqual(['metric-undefined']);
      const inf = facts({ attributes: { a: { ...good, disparateImpact: Number.POSITIVE_INFINITY } } });
      expect(gate(inf).policies).toEqual(['metric-undefined']);
    });

    it('denies when no protected attribute was evaluated at all', () => {
      const d = gate(facts({ attributes: {} }));
      expect(d.decision).toBe('deny');
      expect(d.reasons[0]).toContain('no protected attribute was evaluated');
    });

    it('denies when facts carry a null worst value even if the attributes look fine', () => {
      const f = allowFacts();
      f.worst.equalizedOddsDifference = null;
      const d = gate(f);
      expect(d.policies).toEqual(['metric-undefined']);
      expect(d.reasons[0]).toContain('worst.equalizedOddsDifference');
    });
  });

  describe('at the thresholds themselves', () => {
    it('allows values exactly at the bounds (the rules are strict inequalities)', () => {
      const d = gate(
        facts({
          accuracy: 0.7,
          attributes: {
            a: { disparateImpact: 0.8, demographicParityDifference: 0, equalizedOddsDifference: 0.1 },
            b: { disparateImpact: 1.25, demographicParityDifference: 0, equalizedOddsDifference: 0.1 },
          },
        }),
      );
      expect(d.decision).toBe('allow');
    });

    it('denies values a hair past a bound: rounding to four places only ever tightens the gate', () => {
      expect(gate(facts({ accuracy: 0.69999 })).policies).toEqual(['accuracy-below-minimum']);
      expect(gate(facts({ attributes: { a: { ...good, disparateImpact: 0.79999 } } })).reasons).toEqual([
        'disparate impact 0.7999 for a is below the minimum 0.80 (four-fifths rule)',
      ]);
      expect(gate(facts({ attributes: { a: { ...good, disparateImpact: 1.25001 } } })).policies).toEqual([
        'disparate-impact-above-maximum',
      ]);
      expect(
        gate(facts({ attributes: { a: { ...good, equalizedOddsDifference: 0.100001 } } })).reasons,
      ).toEqual(['equalized odds difference 0.1001 for a is above the maximum 0.10']);
    });
  });
});

describe('evaluateGate with a custom policy', () => {
  it('applies the policy file and its own reasons', () => {
    const d = gate(
      facts({ accuracy: 0.86, attributes: { sex: { ...good, demographicParityDifference: 0.08 } } }),
      fixture('strict-medical.cedar'),
    );
    expect(d).toEqual({
      decision: 'deny',
      policies: ['medical-accuracy', 'medical-parity'],
      reasons: [
        'accuracy 0.86 is below 0.90, the floor for diagnostic models',
        'demographic parity difference 0.08 for sex exceeds 0.05',
      ],
    });
    expect(gate(facts({ accuracy: 0.93 }), fixture('strict-medical.cedar'))).toEqual({
      decision: 'allow',
      policies: ['ship'],
      reasons: ['all checks passed'],
    });
  });

  it('denies by default when no permit applies', () => {
    const d = gate(
      facts(),
      '@id("only-forbid")\nforbid (principal, action, resource) when { !context.provenanceVerified };',
    );
    expect(d).toEqual({
      decision: 'deny',
      policies: [],
      reasons: ['no policy permits shipping this model (Cedar denies unless a permit policy applies)'],
    });
  });

  it('scopes policies to the pipeline principal', () => {
    const text = [
      'permit (principal, action, resource);',
      '@id("fraud-frozen") @reason("the fraud pipeline may not ship this quarter")',
      'forbid (principal == Veritrail::Pipeline::"fraud", action, resource);',
    ].join('\n');
    const f = facts();
    expect(evaluateGate({ policyText: text, facts: f, pipeline: 'fraud' }).reasons).toEqual([
      'the fraud pipeline may not ship this quarter',
    ]);
    expect(evaluateGate({ policyText: text, facts: f, pipeline: 'credit-scoring' }).decision).toBe('allow');
  });

  it('names policies without @id by their position, with a generic reason', () => {
    const d = gate(
      facts(),
      'permit (principal, action, resource);\nforbid (principal, action, resource) unless { context.provenanceVerified && false };',
    );
    expect(d).toEqual({
      decision: 'deny',
      policies: ['policy1'],
      reasons: ['forbidden by policy "policy1"'],
    });
  });

  describe('when a forbid policy fails to evaluate', () => {
    it('denies (fail closed) instead of letting Cedar skip it, and says why', () => {
      // Unvalidated on purpose: strict validation would refuse this unguarded optional access at load.
      const text = [
        'permit (principal, action, resource);',
        '@id("unguarded") @reason("accuracy {accuracy} too low")',
        'forbid (principal, action, resource) when { context.accuracy.lessThan(decimal("0.9")) };',
      ].join('\n');
      const d = evaluateGate({ policyText: text, facts: facts({ accuracy: null }), schemaText: null });
      expect(d.decision).toBe('deny');
      expect(d.policies).toEqual(['unguarded']);
      expect(d.reasons[0]).toContain('could not be evaluated');
      expect(d.diagnostics?.[0]).toContain('accuracy');
    });
  });

  it('reports a reason placeholder that names no fact', () => {
    const d = gate(facts(), '@id("p") @reason("ok {nosuch.fact}")\npermit (principal, action, resource);');
    expect(d.reasons).toEqual(['ok (undefined)']);
    expect(d.diagnostics).toEqual([
      'policy "p": reason placeholder {nosuch.fact} names no fact that is defined',
    ]);
  });
});

describe('loadPolicy', () => {
  it('loads the default policy, validated against the gate schema', () => {
    const p = loadPolicy(DEFAULT_POLICY_TEXT);
    expect(p.policies.map((x) => [x.id, x.effect])).toEqual([
      ['ship-when-provenance-and-code-checks-pass', 'permit'],
      ['provenance-not-verified', 'forbid'],
      ['code-checks-failed', 'forbid'],
      ['metric-undefined', 'forbid'],
      ['groups-too-small', 'forbid'],
      ['accuracy-below-minimum', 'forbid'],
      ['disparate-impact-below-minimum', 'forbid'],
      ['disparate-impact-above-maximum', 'forbid'],
      ['equalized-odds-difference-above-maximum', 'forbid'],
      ['demographic-parity-difference-above-maximum', 'forbid'],
    ]);
    expect(p.policies.every((x) => typeof x.annotations.reason === 'string')).toBe(true);
    expect(p.policies[0]?.line).toBe(8);
  });

  describe('when the policy is malformed', () => {
    it('reports POLICY_INVALID with the file, line and column of the syntax error', () => {
      const e = thrown(() => loadPolicy(fixture('malformed.cedar'), { file: 'malformed.cedar' }));
      expect(e.code).toBe('POLICY_INVALID');
      expect(e.details).toMatchObject({ file: 'malformed.cedar', line: 6, column: 72 });
      expect(e.message).toMatch(/^malformed\.cedar:6:72: /);
    });

    it('counts columns in characters when the text before the error is not ASCII', () => {
      const e = thrown(() =>
        loadPolicy('// données: é ü\npermit (principal, action, resource) when { context.x < };'),
      );
      expect(e.details).toMatchObject({ line: 2, column: 57 });
    });

    it('reports a misspelt fact at its line, from strict schema validation', () => {
      const text =
        '@id("ship")\npermit (principal, action, resource);\n@id("x")\nforbid (principal, action, resource)\nwhen { context.acuracy };';
      const e = thrown(() => loadPolicy(text, { file: 'p.cedar' }));
      expect(e.code).toBe('POLICY_INVALID');
      expect(e.details).toMatchObject({ line: 5, column: 8 });
      expect(e.message).toContain('did you mean `accuracy`');
    });

    it('refuses a policy that can never apply, such as a forbid guarded by a misspelt "has"', () => {
      const e = thrown(() => loadPolicy(fixture('typo.cedar'), { file: 'typo.cedar' }));
      expect(e.code).toBe('POLICY_INVALID');
      // The span Cedar reports is the whole policy, which starts at its @id annotation.
      expect(e.details).toMatchObject({ line: 5 });
      expect(e.message).toContain('impossible');
    });

    it('refuses an unguarded access to an optional metric', () => {
      const e = thrown(() =>
        loadPolicy(
          'permit (principal, action, resource)\nwhen { context.accuracy.greaterThan(decimal("0.5")) };',
        ),
      );
      expect(e.code).toBe('POLICY_INVALID');
      expect(e.details).toMatchObject({ line: 2 });
    });

    it('refuses duplicate ids, an empty policy and templates', () => {
      const dup =
        '@id("a")\npermit (principal, action, resource);\n@id("a")\nforbid (principal, action, resource);';
      expect(thrown(() => loadPolicy(dup)).details).toMatchObject({ line: 3, policy: 'a' });
      expect(thrown(() => loadPolicy('// nothing here\n')).code).toBe('POLICY_INVALID');
      expect(thrown(() => loadPolicy('permit (principal == ?principal, action, resource);')).code).toBe(
        'POLICY_INVALID',
      );
    });

    it('makes evaluateGate throw the same error rather than decide', () => {
      const e = thrown(() =>
        evaluateGate({ policyText: fixture('malformed.cedar'), policyFile: 'p.cedar', facts: facts() }),
      );
      expect(e.code).toBe('POLICY_INVALID');
      expect(e.details).toMatchObject({ file: 'p.cedar', line: 6 });
    });
  });
});

describe('gateFactsFrom', () => {
  it('takes the worst value of each metric over the attributes', () => {
    const f = facts({
      attributes: {
        a: { disparateImpact: 0.85, demographicParityDifference: 0.02, equalizedOddsDifference: 0.07 },
        b: { disparateImpact: 1.2, demographicParityDifference: 0.09, equalizedOddsDifference: 0.01 },
      },
    });
    expect(f.worst).toEqual({
      disparateImpactMin: 0.85,
      disparateImpactMax: 1.2,
      equalizedOddsDifference: 0.07,
      demographicParityDifference: 0.09,
    });
    expect(f.thresholds).toEqual({
      minAccuracy: 0.7,
      disparateImpactMin: 0.8,
      disparateImpactMax: 1.25,
      maxEqualizedOddsDifference: 0.1,
    });
  });

  it('makes a worst value null when any attribute lacks the metric', () => {
    const f = facts({ attributes: { a: good, b: { disparateImpact: 0.9 } } });
    expect(f.worst.equalizedOddsDifference).toBeNull();
    expect(f.attributes.b?.equalizedOddsDifference).toBeNull();
    expect(f.worst.disparateImpactMin).toBe(0.9);
  });

  it('produces facts that round-trip through JSON and parseGateFacts', () => {
    const f = facts();
    expect(parseGateFacts(JSON.parse(JSON.stringify(f)))).toEqual(f);
  });
});

describe('parseGateFacts', () => {
  it('refuses unknown and missing facts, naming them', () => {
    const bad = { ...JSON.parse(fixture('facts-allow.json')), provenanceVerifed: true };
    const e = thrown(() => parseGateFacts(bad));
    expect(e.code).toBe('POLICY_INVALID');
    expect(e.message).toContain('provenanceVerifed');
    const { accuracy: _, ...missing } = JSON.parse(fixture('facts-allow.json'));
    expect(thrown(() => parseGateFacts(missing)).message).toContain('accuracy');
  });
});

describe('toCedarContext', () => {
  it('encodes numbers as Cedar decimals and leaves undefined metrics out', () => {
    const ctx = toCedarContext(
      facts({ accuracy: null, attributes: { a: { ...good, disparateImpact: null } } }),
    );
    expect(ctx).not.toHaveProperty('accuracy');
    expect(ctx.allMetricsDefined).toBe(false);
    expect(ctx.undefinedMetrics).toEqual(['accuracy', 'a.disparateImpact']);
    expect(ctx.attributes).toEqual([
      {
        name: 'a',
        demographicParityDifference: { __extn: { fn: 'decimal', arg: '0.0400' } },
        equalizedOddsDifference: { __extn: { fn: 'decimal', arg: '0.0600' } },
      },
    ]);
    expect(ctx.thresholds).toMatchObject({
      disparateImpactMax: { __extn: { fn: 'decimal', arg: '1.2500' } },
    });
  });

  it('refuses a threshold that is not a finite number', () => {
    const f = facts();
    f.thresholds.minAccuracy = Number.NaN;
    expect(thrown(() => toCedarContext(f)).code).toBe('POLICY_INVALID');
  });
});
