import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { loadPipeline, putBytesCas, putJsonCas, readCasVerified, readObject } from '../cas.js';
import { parseCsv } from '../core/csv.js';
import { casKey, type Digest, digestOf, digestsEqual } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import {
  type EvaluateResult,
  type ExecState,
  type PreprocessResult,
  PreprocessResultSchema,
  resultOf,
  type TrainResult,
  TrainResultSchema,
} from '../core/exec-state.js';
import { FairnessAccumulator, fairnessReport } from '../core/fairness/index.js';
import { SCORING_PREFIX } from '../core/layout.js';
import type { PipelineDefinition } from '../core/pipeline.js';
import { SCORING_JOB_NAME_PREFIX } from '../core/rules.js';
import type { Runtime } from '../runtime.js';
import { readTarMember } from '../tarball.js';
import type { StepOutcome } from './step.js';

/** Bootstrap settings for the run's fairness intervals: seeded, so a re-evaluation reproduces them. */
export const EVALUATION_BOOTSTRAP = {
  samples: 500,
  seed: 20_260_101,
  quantiles: [0.025, 0.975] as [number, number],
};

/** The headline metrics per protected attribute, as the gate and the summary read them. */
export const HEADLINE_METRICS = [
  'disparateImpact',
  'demographicParityDifference',
  'demographicParityRatio',
  'equalizedOddsDifference',
] as const;

export function aggregateKey(def: PipelineDefinition, attribute: string, metric: string): string {
  return def.dataset.protected.length > 1 ? `${attribute}.${metric}` : metric;
}

/** SageMaker-style name of the scoring job of a run (1-63 of [a-zA-Z0-9-]). */
function scoringJobName(runId: string): string {
  return `${SCORING_JOB_NAME_PREFIX}${runId.replace(/[^A-Za-z0-9-]/g, '-')}`.slice(0, 63);
}

/**
 * Evaluate: the control plane scores the model itself. The model.tar.gz the Train step hashed is
 * run through the inference contract (rt.trainer.score: a sandboxed predict process locally, a
 * Batch Transform job on AWS) on the features of the held-out test split, which the trainer never
 * received; every metric is computed from those predictions against the labels and protected
 * attributes Preprocess kept (re-verified against their digests). The predictions are stored
 * content-addressed and named in the report. The trainer's own validation predictions, when it
 * wrote any, are only a cross-check: their accuracy is recorded and flagged when it disagrees.
 */
export async function evaluate(rt: Runtime, state: ExecState): Promise<StepOutcome<EvaluateResult>> {
  const def = await loadPipeline(rt.objects, state.pipeline.digest);
  const pre = resultOf(state, 'preprocess', PreprocessResultSchema);
  const train = resultOf(state, 'train', TrainResultSchema);
  const test = rows(await readCasVerified(rt.objects, pre.test.digest, 'test.csv'), 'test.csv');
  const groups = rows(
    await readCasVerified(rt.objects, pre.testGroups.digest, 'test-groups.csv'),
    'test-groups.csv',
  );
  const n = test.length - 1;

  const scored = await scoreModel(rt, state, def, pre, train);
  const predicted = predictionColumn(rows(scored.bytes, 'predictions'), n, 'the predict command');
  const labelIdx = test[0]?.indexOf(def.dataset.label.column) ?? -1;
  if (labelIdx < 0 || groups.length - 1 !== n) {
    throw new VeritrailError(
      'DIGEST_MISMATCH',
      'test.csv and test-groups.csv do not line up; re-run Preprocess',
    );
  }
  const attributes = def.dataset.protected.map((p) => p.column);
  const acc = new FairnessAccumulator(attributes);
  for (let i = 1; i <= n; i++) {
    acc.add(groups[i] ?? [], test[i]?.[labelIdx] === '1', predicted[i - 1] === true);
  }
  const thresholds = def.gate.thresholds;
  const privileged = Object.fromEntries(def.dataset.protected.map((p) => [p.column, p.privileged]));
  const report = fairnessReport(acc.toCounts(), {
    attributes,
    privileged,
    positive: def.dataset.label.positive,
    bootstrap: EVALUATION_BOOTSTRAP,
    minGroupSize: thresholds.minGroupSize,
  });
  const accuracy = report.aggregates.accuracy ?? null;
  const selfReported = await selfReportedCheck(rt, pre, train, accuracy, n);
  const warnings = [...report.warnings, ...(selfReported?.flagged ? [selfReported.message] : [])];
  const headline: Record<string, number | null | string> = { accuracy, rows: n };
  for (const attr of attributes) {
    for (const m of HEADLINE_METRICS)
      headline[`${attr}.${m}`] = report.aggregates[aggregateKey(def, attr, m)] ?? null;
  }
  const document = {
    runId: state.runId,
    model: train.model.digest,
    evaluationData: {
      test: pre.test.digest,
      testFeatures: pre.testFeatures.digest,
      groups: pre.testGroups.digest,
      predictions: scored.digest,
    },
    scoring: {
      by: 'control-plane',
      contract: 'veritrail.dev/inference/v1',
      ...(scored.isolation ? { isolation: scored.isolation } : {}),
    },
    ...(selfReported ? { selfReported } : {}),
    attributes,
    privileged,
    label: def.dataset.label,
    bootstrap: EVALUATION_BOOTSTRAP,
    counts: acc.toCounts(),
    report: { ...report, warnings },
  };
  const stored = await putJsonCas(rt.objects, document);
  return {
    output: {
      reportKey: stored.key,
      reportDigest: stored.digest,
      predictions: { key: scored.key, digest: scored.digest },
      headline,
      warnings,
    },
    digests: { model: train.model.digest, fairnessReport: stored.digest, predictions: scored.digest },
    facts: {
      fairness: headline,
      fairnessWarnings: warnings,
      fairnessReportKey: stored.key,
      predictionsDigest: scored.digest,
      ...(selfReported
        ? { selfReported: { accuracy: selfReported.accuracy, flagged: selfReported.flagged } }
        : {}),
    },
    detail: { headline, scoredRows: n },
  };
}

/** Runs the inference contract on the test features and stores the predictions content-addressed. */
async function scoreModel(
  rt: Runtime,
  state: ExecState,
  def: PipelineDefinition,
  pre: PreprocessResult,
  train: TrainResult,
): Promise<{ bytes: Uint8Array; key: string; digest: Digest; isolation?: unknown }> {
  if (!rt.trainer.score) {
    throw new VeritrailError(
      'SCORING_FAILED',
      'this trainer adapter cannot run the inference contract, so the control plane cannot score the model itself',
    );
  }
  const base = state.pipeline.base?.startsWith('file:') ? fileURLToPath(state.pipeline.base) : undefined;
  const result = await rt.trainer.score({
    jobName: scoringJobName(state.runId),
    runId: state.runId,
    pipeline: state.pipeline.name,
    model: train.model,
    input: { key: pre.testFeatures.key, digest: pre.testFeatures.digest },
    ...(def.trainer.predict ? { command: def.trainer.predict } : {}),
    ...(base ? { workingDir: base, codeDir: join(base, def.trainer.code) } : {}),
    ...(def.trainer.aws
      ? {
          image: def.trainer.aws.image,
          instanceType: def.trainer.aws.instanceType,
          networkIsolation: def.trainer.aws.networkIsolation,
        }
      : {}),
    outputPrefix: `${SCORING_PREFIX}${state.pipeline.name}/`,
    maxRuntimeSeconds: def.trainer.aws?.maxRuntimeSeconds ?? 3600,
  });
  const bytes = await readObject(rt.objects, 'artifacts', result.predictionsKey);
  const digest = digestOf(bytes);
  // Content-addressed whatever the adapter wrote (Batch Transform names its own output keys).
  const stored =
    result.predictionsKey === casKey(digest)
      ? { key: result.predictionsKey }
      : await putBytesCas(rt.objects, bytes, digest);
  return { bytes, key: stored.key, digest, ...(result.isolation ? { isolation: result.isolation } : {}) };
}

/** The `prediction` column of a predictions CSV as booleans; SCORING_FAILED says what is wrong. */
function predictionColumn(table: string[][], n: number, who: string): boolean[] {
  const idx = table[0]?.map((h) => h.trim()).indexOf('prediction') ?? -1;
  if (idx < 0) {
    throw new VeritrailError(
      'SCORING_FAILED',
      `${who} wrote no "prediction" column (header: ${(table[0] ?? []).join(',').slice(0, 80)})`,
    );
  }
  if (table.length - 1 !== n) {
    throw new VeritrailError(
      'SCORING_FAILED',
      `${who} returned ${table.length - 1} predictions for ${n} rows; it must predict every input row, in order`,
    );
  }
  return table.slice(1).map((r, i) => {
    const p = (r[idx] ?? '').trim();
    if (p !== '0' && p !== '1') {
      throw new VeritrailError(
        'SCORING_FAILED',
        `${who}: prediction ${i + 1} is "${p.slice(0, 20)}", not 0 or 1`,
      );
    }
    return p === '1';
  });
}

/**
 * The trainer's self-reported validation accuracy (its predictions.csv, when it wrote one) against
 * the independent test accuracy: recorded, and flagged when the gap is beyond sampling noise
 * (three standard errors of the difference of two proportions, plus 0.02).
 */
async function selfReportedCheck(
  rt: Runtime,
  pre: PreprocessResult,
  train: TrainResult,
  independent: number | null,
  nTest: number,
): Promise<{ accuracy: number | null; rows: number; flagged: boolean; message: string } | undefined> {
  let bytes: Buffer | undefined;
  try {
    bytes = await readTarMember(
      Readable.from([await readTrainingOutput(rt, train.output)]),
      'predictions.csv',
    );
  } catch (e) {
    if (e instanceof VeritrailError && e.code === 'DIGEST_MISMATCH') throw e;
    return undefined;
  }
  if (!bytes || independent === null) return undefined;
  const validation = rows(
    await readCasVerified(rt.objects, pre.validation.digest, 'validation.csv'),
    'validation.csv',
  );
  const label = validation[0]?.length ? validation[0].length - 1 : -1;
  let claimed: boolean[];
  try {
    claimed = predictionColumn(
      rows(new Uint8Array(bytes), 'predictions.csv'),
      validation.length - 1,
      "the trainer's predictions.csv",
    );
  } catch (e) {
    const message = `the trainer's self-reported predictions.csv is unusable (${(e as Error).message}); only the control plane's scoring counts`;
    return { accuracy: null, rows: 0, flagged: true, message };
  }
  let correct = 0;
  claimed.forEach((p, i) => {
    if ((validation[i + 1]?.[label] === '1') === p) correct++;
  });
  const m = claimed.length;
  const accuracy = m > 0 ? correct / m : 0;
  const pooled = (accuracy * m + independent * nTest) / (m + nTest);
  const se = Math.sqrt(Math.max(pooled * (1 - pooled), 1e-9) * (1 / Math.max(m, 1) + 1 / Math.max(nTest, 1)));
  const flagged = Math.abs(accuracy - independent) > 3 * se + 0.02;
  const message = `the trainer's self-reported validation accuracy ${accuracy.toFixed(3)} disagrees with the control plane's own ${independent.toFixed(3)} on the held-out test split: the trainer's figures are not trusted`;
  return { accuracy: Number(accuracy.toFixed(6)), rows: m, flagged, message };
}

/**
 * The training job's output.tar.gz where the trainer really put it, checked against the digest the
 * Train step recorded when the job ended (trust but verify: hash what is read, compare). Locally
 * the key is content-addressed (`sha256/<hex>`); on AWS it is SageMaker's own
 * `<S3OutputPath>/<job>/output/output.tar.gz`, which nothing else addresses by content.
 */
async function readTrainingOutput(
  rt: Pick<Runtime, 'objects'>,
  output: { key: string; digest: Digest },
): Promise<Uint8Array> {
  // Read whole, so the bytes hashed are the bytes parsed (output.tar.gz holds the predictions only).
  const bytes = await readObject(rt.objects, 'artifacts', output.key);
  const actual = digestOf(bytes);
  if (!digestsEqual(actual, output.digest)) {
    throw new VeritrailError(
      'DIGEST_MISMATCH',
      `training output ${output.key} hashes to ${actual}, but the Train step recorded ${output.digest} when the job ended: it was changed after training; start a new run`,
      { details: { key: output.key, recorded: output.digest, actual } },
    );
  }
  return bytes;
}

function rows(bytes: Uint8Array, what: string): string[][] {
  // as this step always has: bytes that are not UTF-8 become U+FFFD, "a"b reads as ab
  const out = parseCsv(bytes, { fatal: false, afterQuote: 'continue' }).map((r) => r.fields);
  if (out.length === 0) throw new VeritrailError('DATASET_EMPTY', `${what} is empty`);
  return out;
}
