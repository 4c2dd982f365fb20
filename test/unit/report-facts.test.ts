import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule, { type FormatsPlugin } from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { MODEL_REPORT_PREDICATE_TYPE } from '../../src/core/attest/predicates.js';
import { checkPredicate, KNOWN_PREDICATES } from '../../src/core/attest/verify.js';
import { type Digest, digestOf } from '../../src/core/digest.js';
import { buildReportFacts, wilson } from '../../src/core/report/facts.js';
import { reportEvidence as evidence } from '../helpers/report-fixture.js';

const addFormats = (addFormatsModule as unknown as { default: FormatsPlugin }).default;
const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);
const schema = JSON.parse(
  readFileSync(new URL('../../schemas/model-report-v1.schema.json', import.meta.url), 'utf8'),
) as { $id: string };
const validate = ajv.compile(schema);

const d = (s: string) => digestOf(s);

describe('Wilson score intervals', () => {
  it('match the published values (Brown, Cai & DasGupta 2001, table: x=0..n)', () => {
    // 95% Wilson interval for 0/10 is [0, 0.2775]; for 5/10 [0.2366, 0.7634]; for 10/10 [0.7225, 1].
    expect(wilson(0, 10).interval?.upper).toBeCloseTo(0.2775, 4);
    expect(wilson(5, 10).interval?.lower).toBeCloseTo(0.2366, 4);
    expect(wilson(5, 10).interval?.upper).toBeCloseTo(0.7634, 4);
    expect(wilson(10, 10).interval?.lower).toBeCloseTo(0.7225, 4);
  });
  it('are undefined for an empty group, never 0/0 = NaN', () => {
    expect(wilson(0, 0)).toEqual({ value: null });
  });
});

describe('the report facts', () => {
  it('name the model as subject and carry the run, data, training, evaluation and gate', () => {
    const { subject, predicate } = buildReportFacts(evidence());
    expect(subject).toEqual({ name: 'credit-scoring/model.tar.gz', digest: d('model') });
    expect(predicate.status).toBe('REJECTED');
    expect(predicate.data.processed?.trainRows).toBe(80);
    expect(predicate.training?.hyperparameters).toEqual({ epochs: '300', rate: '0.5' });
    expect(predicate.training?.isolation).toContain('no network isolation');
    expect(predicate.gate?.reasons).toEqual([
      { code: 'accuracy-below-minimum', message: 'accuracy 0.61 is below the minimum 0.7' },
    ]);
    expect(predicate.gate?.policy.digest.sha256).toBe(d('policy').slice(7));
    expect(predicate.evaluation?.warnings).toEqual(['group "x" is small']);
    const g = predicate.evaluation?.groups ?? [];
    expect(g.length).toBeGreaterThan(0);
    for (const x of g) {
      const n = x.tp + x.fp + x.tn + x.fn;
      expect(x.selectionRate.value).toBeCloseTo((x.tp + x.fp) / n, 12);
    }
    expect(predicate.files.map((f) => f.name)).toEqual(['model.tar.gz', 'gate-decision.json']);
  });

  it('fall back to the raw data as subject for a run that FAILED before training, and invent nothing', () => {
    const e = evidence();
    const facts = { ...e.run.facts };
    delete facts.modelDigest;
    delete facts.codeDigest;
    const { fairness: _f, gateDecision: _g, ...rest } = e;
    const { subject, predicate } = buildReportFacts({
      ...rest,
      run: {
        ...e.run,
        status: 'FAILED',
        facts,
        steps: [],
        error: { code: 'TRAINING_FAILED', message: 'exit 3' },
      },
      status: 'FAILED',
    });
    expect(subject).toEqual({ name: 'raw-data', digest: d('raw') as Digest });
    expect(predicate.error).toEqual({ code: 'TRAINING_FAILED', message: 'exit 3' });
    expect(predicate.training).toBeUndefined();
    expect(predicate.evaluation).toBeUndefined();
    expect(predicate.gate).toBeUndefined();
  });

  it('are accepted by the JSON Schema in schemas/ and by the verifier, which both refuse a broken one', () => {
    const { predicate } = buildReportFacts(evidence());
    expect(schema.$id).toBe('https://veritrail.dev/schemas/attestation/model-report/v1.json');
    expect(validate(predicate), JSON.stringify(validate.errors)).toBe(true);
    expect(KNOWN_PREDICATES[MODEL_REPORT_PREDICATE_TYPE]?.safeParse(predicate).success).toBe(true);
    for (const broken of [
      { ...predicate, files: [{ name: 'x', digest: { sha256: 'ABC' } }] },
      { ...predicate, reportedOn: 'yesterday' },
      { ...predicate, gate: { ...predicate.gate, decision: 'maybe' } },
      (({ runId: _r, ...p }) => p)(predicate),
    ]) {
      expect(validate(broken)).toBe(false);
      expect(KNOWN_PREDICATES[MODEL_REPORT_PREDICATE_TYPE]?.safeParse(broken).success).toBe(false);
    }
    expect(() =>
      checkPredicate({
        _type: 'https://in-toto.io/Statement/v1',
        subject: [{ name: 'm', digest: { sha256: d('m').slice(7) } }],
        predicateType: MODEL_REPORT_PREDICATE_TYPE,
        predicate: { ...predicate, status: '' },
      }),
    ).toThrow(/malformed/);
  });
});
