/** A model report's evidence built from the attestation fixtures: no pipeline run needed. */
import type { FairnessPredicate } from '../../src/core/attest/predicates.js';
import { digestOf } from '../../src/core/digest.js';
import type { ReportEvidence } from '../../src/core/report/facts.js';
import type { RunRecord } from '../../src/ports.js';
import { runStatements } from '../unit/attest/fixtures.js';

const d = (s: string) => digestOf(s);

export function reportEvidence(over: Partial<ReportEvidence> = {}): ReportEvidence {
  const s = runStatements();
  const run: RunRecord = {
    runId: 'run-2026-01-02-abc',
    pipeline: 'credit-scoring',
    pipelineDigest: d('pipeline'),
    status: 'REJECTED',
    trigger: 'operator',
    idempotencyKey: d('idem'),
    dataset: { uri: 'file:///data/a.csv', digest: d('raw') },
    createdAt: '2026-01-02T10:00:00.000Z',
    updatedAt: '2026-01-02T10:03:00.000Z',
    steps: [
      {
        name: 'HashDataset',
        status: 'SUCCEEDED',
        startedAt: '2026-01-02T10:00:01.000Z',
        endedAt: '2026-01-02T10:00:02.000Z',
        digests: { raw: d('raw') },
      },
      {
        name: 'Train',
        status: 'SUCCEEDED',
        startedAt: '2026-01-02T10:01:00.000Z',
        endedAt: '2026-01-02T10:02:00.000Z',
      },
    ],
    facts: {
      rawDigest: d('raw'),
      rawSize: 100,
      rawFiles: 1,
      processedDigest: d('processed'),
      trainRows: 80,
      validationRows: 20,
      modelDigest: d('model'),
      codeDigest: d('code'),
      fairnessWarnings: ['group "x" is small'],
      finishedAt: '2026-01-02T10:03:00.000Z',
    },
  };
  return {
    run,
    pipeline: {
      name: 'credit-scoring',
      description: 'Consumer credit approval.',
      dataset: {
        label: { column: 'default', positive: '1' },
        protected: [{ column: 'sex', privileged: 'M' }],
        features: ['income'],
        validationFraction: 0.2,
      },
      hyperparameters: { epochs: 300, rate: '0.5' },
      trainer: { command: ['node', 'train.mjs'] },
      gate: { thresholds: { minGroupSize: 30 } },
    },
    mode: 'local',
    fairness: s.fairness.predicate as FairnessPredicate,
    gateDecision: {
      digest: d('decision'),
      doc: {
        decision: 'deny',
        reasons: ['accuracy 0.61 is below the minimum 0.7'],
        policies: ['accuracy-below-minimum'],
        policy: { name: 'default', text: 'forbid(...)', digest: d('policy') },
      },
    },
    statements: [
      { name: 'fairness', digest: d('fairness-payload'), predicateType: s.fairness.predicateType },
    ],
    files: [
      { name: 'model.tar.gz', digest: d('model') },
      { name: 'gate-decision.json', digest: d('decision') },
    ],
    status: 'REJECTED',
    now: new Date('2026-01-02T10:03:00.000Z'),
    ...over,
  };
}
