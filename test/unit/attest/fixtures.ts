import { statementDigest } from '../../../src/core/attest/bundle.js';
import type { RunStatements } from '../../../src/core/attest/chain.js';
import { buildSingleFileModelSigningStatement } from '../../../src/core/attest/model-signing.js';
import {
  buildFairnessStatement,
  buildGateStatement,
  buildRetrainSkipStatement,
  buildTransformStatement,
} from '../../../src/core/attest/predicates.js';
import { buildProvenanceStatement } from '../../../src/core/attest/slsa.js';
import { MANIFEST_MEDIA_TYPE } from '../../../src/core/manifest.js';
import { d } from './helpers.js';

/** The digests of one sample run and its five statements, built with the public builders. */
export const run = {
  runId: 'run-2026-01-02-abc',
  raw: d('raw'),
  processed: d('processed'),
  model: d('model.tar.gz'),
  trainingCode: d('train.py'),
  transformCode: d('preprocess'),
  image: d('image'),
} as const;

export function runStatements(): Required<RunStatements> {
  const transform = buildTransformStatement({
    runId: run.runId,
    processed: { digest: run.processed, mediaType: MANIFEST_MEDIA_TYPE },
    raw: { digest: run.raw, uri: 's3://landing/credit/2026-01-02.csv' },
    code: { digest: run.transformCode },
    parameters: { validationFraction: 0.2, seed: 42, label: 'default' },
    startedOn: '2026-01-02T10:00:00Z',
    finishedOn: '2026-01-02T10:00:05Z',
  });
  const provenance = buildProvenanceStatement({
    model: { name: 'model.tar.gz', digest: run.model },
    runId: run.runId,
    builderId: 'https://veritrail.dev/builders/local/v1',
    startedOn: new Date('2026-01-02T10:00:06Z'),
    finishedOn: new Date('2026-01-02T10:02:00Z'),
    externalParameters: {
      pipeline: { name: 'credit-scoring', digest: d('pipeline.json') },
      dataset: { uri: 's3://landing/credit/2026-01-02.csv' },
      hyperparameters: { max_depth: '4' },
    },
    internalParameters: { trainer: 'local', jobName: 'vt-run-2026-01-02-abc' },
    dependencies: {
      raw: { digest: run.raw },
      processed: { digest: run.processed, mediaType: MANIFEST_MEDIA_TYPE },
      code: { digest: run.trainingCode },
      image: { digest: run.image, uri: `123456789012.dkr.ecr.eu-west-1.amazonaws.com/train@${run.image}` },
    },
  });
  const modelSigning = buildSingleFileModelSigningStatement('model.tar.gz', run.model);
  const fairness = buildFairnessStatement({
    model: { name: 'model.tar.gz', digest: run.model },
    predicate: {
      runId: run.runId,
      evaluationData: { name: 'validation', digest: { sha256: d('validation').slice(7) } },
      label: { column: 'default', positive: '1' },
      confidenceLevel: 0.95,
      intervalMethod: 'wilson',
      groups: [
        { attribute: 'sex', value: 'F', tp: 40, fp: 8, tn: 120, fn: 12 },
        { attribute: 'sex', value: 'M', tp: 45, fp: 9, tn: 118, fn: 10 },
      ],
      metrics: [
        {
          name: 'accuracy',
          value: 0.88,
          interval: { lower: 0.85, upper: 0.91 },
          threshold: { min: 0.7 },
          passed: true,
        },
        {
          name: 'disparate_impact',
          attribute: 'sex',
          value: 0.97,
          interval: { lower: 0.86, upper: 1.09 },
          threshold: { min: 0.8, max: 1.25 },
          passed: true,
        },
      ],
      evaluatedOn: '2026-01-02T10:02:30Z',
    },
  });
  const gate = buildGateStatement({
    model: { name: 'model.tar.gz', digest: run.model },
    runId: run.runId,
    decision: 'allow',
    reasons: [{ code: 'ALL_THRESHOLDS_MET', message: 'every fairness and accuracy threshold holds' }],
    policy: { name: 'policies/default.cedar', digest: d('policy') },
    fairnessStatement: statementDigest(fairness),
    decidedOn: '2026-01-02T10:02:31Z',
  });
  return { transform, provenance, modelSigning, fairness, gate };
}

export function retrainSkip() {
  return buildRetrainSkipStatement({
    model: { name: 'model.tar.gz', digest: run.model },
    runId: 'run-2026-01-03-def',
    previousRunId: run.runId,
    reason: 'raw data, training code and pipeline definition unchanged',
    unchanged: [
      { name: 'raw-data', digest: run.raw },
      { name: 'training-code', digest: run.trainingCode },
      { name: 'pipeline-definition', digest: d('pipeline.json') },
    ],
    previousProvenance: statementDigest(runStatements().provenance),
    decidedOn: '2026-01-03T00:00:00Z',
  });
}
