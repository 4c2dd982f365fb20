import { describe, expect, it } from 'vitest';
import { digestOf } from '../../src/core/digest.js';
import { factsOf, type RunFactsPatch } from '../../src/core/run-facts.js';

describe('the run facts schema', () => {
  const written: RunFactsPatch = {
    rawDigest: digestOf('raw'),
    rawSize: 10,
    transformBundleKey: `sha256/${'a'.repeat(64)}`,
    training: { jobName: 'vt-r-1', startedAt: '2026-11-30T00:00:00Z', state: { runId: 'r-1' } },
    gate: { decision: 'deny', reasons: ['disparate impact 0.7 < 0.8'], policies: ['p0'] },
    bundles: { provenance: `sha256/${'b'.repeat(64)}` },
    fairness: { accuracy: 0.8, 'sex.disparateImpact': null },
  };

  it('reads back what the steps write, field for field', () => {
    expect(factsOf({ facts: written })).toEqual(written);
  });

  it('reads a field of another shape as absent, and drops fields no step owns', () => {
    const facts = factsOf({
      facts: {
        ...written,
        modelDigest: 'sha256:not-hex',
        rawSize: -1,
        gate: { decision: 'maybe', reasons: [], policies: [] },
        bundles: { provenance: 42 },
        somethingElse: 'x',
      },
    });
    expect(facts.modelDigest).toBeUndefined();
    expect(facts.rawSize).toBeUndefined();
    expect(facts.gate).toBeUndefined();
    expect(facts.bundles).toBeUndefined();
    expect(facts.rawDigest).toBe(written.rawDigest);
    expect(Object.keys(facts)).not.toContain('somethingElse');
  });

  it('gives a record without facts no fields', () => {
    expect(Object.values(factsOf({}))).toEqual(Object.values(factsOf({ facts: {} })));
    expect(Object.values(factsOf({})).every((v) => v === undefined)).toBe(true);
  });
});
