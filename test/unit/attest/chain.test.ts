import { describe, expect, it } from 'vitest';
import { type ActualDigests, checkChain, firstFailure } from '../../../src/core/attest/chain.js';
import type { Statement } from '../../../src/core/attest/statement.js';
import { run, runStatements } from './fixtures.js';
import { clone, d } from './helpers.js';

const actual: ActualDigests = { ...run };

describe('when every link holds', () => {
  it('passes every check, in chain order', () => {
    const checks = checkChain(runStatements(), actual);
    expect(checks.filter((c) => !c.ok)).toEqual([]);
    const names = checks.map((c) => c.name);
    for (const n of [
      'transform.subject',
      'transform.raw',
      'provenance.subject',
      'link.processed',
      'model-signing.subject',
      'link.model-signing',
      'fairness.subject',
      'link.fairness',
      'gate.subject',
      'link.gate',
      'run.id',
    ]) {
      expect(names).toContain(n);
    }
    expect(names.indexOf('transform.subject')).toBeLessThan(names.indexOf('provenance.subject'));
    expect(names.indexOf('provenance.subject')).toBeLessThan(names.indexOf('gate.subject'));
    expect(checks.every((c) => c.code === 'OK')).toBe(true);
  });
});

function subjectTo(s: Statement, hex: string): Statement {
  const c = clone(s);
  const sub = c.subject[0];
  if (sub) sub.digest.sha256 = hex;
  return c;
}

describe('when one byte changes', () => {
  const cases: [string, (s: ReturnType<typeof runStatements>, a: ActualDigests) => void, string, string][] = [
    ['the raw data', (_, a) => (a.raw = d('raw!')), 'transform.raw', 'DEPENDENCY_MISMATCH'],
    [
      'the processed data',
      (_, a) => (a.processed = d('processed!')),
      'transform.subject',
      'SUBJECT_MISMATCH',
    ],
    ['the model', (_, a) => (a.model = d('model!')), 'provenance.subject', 'SUBJECT_MISMATCH'],
    ['the training code', (_, a) => (a.trainingCode = d('train!')), 'provenance.code', 'DEPENDENCY_MISMATCH'],
    ['the transform code', (_, a) => (a.transformCode = d('pre!')), 'transform.code', 'DEPENDENCY_MISMATCH'],
    ['the image', (_, a) => (a.image = d('image!')), 'provenance.image', 'DEPENDENCY_MISMATCH'],
    [
      'the processed digest the provenance consumed',
      (s) => {
        const deps = (
          s.provenance.predicate as {
            buildDefinition: { resolvedDependencies: { name: string; digest: { sha256: string } }[] };
          }
        ).buildDefinition.resolvedDependencies;
        const p = deps.find((r) => r.name === 'processed-data');
        if (p) p.digest.sha256 = d('other').slice(7);
      },
      'provenance.processed',
      'DEPENDENCY_MISMATCH',
    ],
    [
      'the fairness statement the gate names',
      (s) => {
        const fairness = s.fairness.predicate as { metrics: { value: number }[] };
        const m = fairness.metrics[0];
        if (m) m.value = 0.89;
      },
      'link.gate',
      'LINK_BROKEN',
    ],
    [
      'the gate subject',
      (s) => Object.assign(s, { gate: subjectTo(s.gate, d('x').slice(7)) }),
      'gate.subject',
      'SUBJECT_MISMATCH',
    ],
    [
      'the fairness subject',
      (s) => Object.assign(s, { fairness: subjectTo(s.fairness, d('x').slice(7)) }),
      'fairness.subject',
      'SUBJECT_MISMATCH',
    ],
    [
      'the model signature resource',
      (s) => {
        const r = (s.modelSigning.predicate as { resources: { digest: string }[] }).resources[0];
        if (r) r.digest = d('x').slice(7);
      },
      'model-signing.predicate',
      'PREDICATE_MALFORMED',
    ],
    [
      'the run id of the gate',
      (s) => Object.assign(s.gate.predicate as object, { runId: 'run-other' }),
      'run.id',
      'RUN_MISMATCH',
    ],
  ];

  it.each(cases)('%s → the first failure names it', (_, mutate, name, code) => {
    const s = clone(runStatements());
    const a = { ...actual };
    mutate(s, a);
    const first = firstFailure(checkChain(s, a));
    expect(first).toMatchObject({ name, ok: false, code });
  });

  it('two statements that disagree with each other (transform vs provenance) → LINK_BROKEN', () => {
    const s = clone(runStatements());
    // The transform now claims another output; actual processed bytes match the provenance.
    s.transform = subjectTo(s.transform, d('elsewhere').slice(7));
    const checks = checkChain(s, actual);
    expect(checks.find((c) => c.name === 'link.processed')).toMatchObject({ ok: false, code: 'LINK_BROKEN' });
  });
});

describe('when a statement is missing or misplaced', () => {
  it('names the missing statement', () => {
    const { gate: _gate, ...rest } = runStatements();
    expect(firstFailure(checkChain(rest, actual))).toMatchObject({
      name: 'gate.present',
      code: 'STATEMENT_MISSING',
    });
  });

  it('names a statement in the wrong slot', () => {
    const s = runStatements();
    const checks = checkChain({ ...s, fairness: s.gate }, actual);
    expect(firstFailure(checks)).toMatchObject({ name: 'fairness.predicate', code: 'PREDICATE_TYPE' });
  });

  it('names a malformed predicate', () => {
    const s = clone(runStatements());
    Object.assign(s.provenance.predicate as object, { runDetails: {} });
    expect(firstFailure(checkChain(s, actual))).toMatchObject({
      name: 'provenance.predicate',
      code: 'PREDICATE_MALFORMED',
    });
  });
});
