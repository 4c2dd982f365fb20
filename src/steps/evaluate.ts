import { Readable } from 'node:stream';
import { loadPipeline, putJsonCas, readCasVerified, readObject } from '../cas.js';
import { CsvParser } from '../core/csv.js';
import { type Digest, digestOf, digestsEqual } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { FairnessAccumulator, fairnessReport } from '../core/fairness/index.js';
import type { PipelineDefinition } from '../core/pipeline.js';
import type { Runtime } from '../runtime.js';
import { readTarMember } from '../tarball.js';
import {
  type EvaluateResult,
  type ExecState,
  PreprocessResultSchema,
  resultOf,
  TrainResultSchema,
} from './state.js';
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

/**
 * Evaluate: fairness metrics of the model's held-out predictions. Labels and protected attributes
 * come from the processed validation set (re-verified against their digests), predictions from the
 * training job's output; all metrics derive from per-group confusion counts.
 */
export async function evaluate(rt: Runtime, state: ExecState): Promise<StepOutcome<EvaluateResult>> {
  const def = await loadPipeline(rt.objects, state.pipeline.digest);
  const pre = resultOf(state, 'preprocess', PreprocessResultSchema);
  const train = resultOf(state, 'train', TrainResultSchema);
  const validation = rows(
    await readCasVerified(rt.objects, pre.validation.digest, 'validation.csv'),
    'validation.csv',
  );
  const groups = rows(
    await readCasVerified(rt.objects, pre.groups.digest, 'validation-groups.csv'),
    'validation-groups.csv',
  );
  const predictionsBytes = await readTarMember(
    Readable.from([await readTrainingOutput(rt, train.output)]),
    'predictions.csv',
  );
  if (!predictionsBytes) {
    throw new VeritrailError(
      'TRAINING_FAILED',
      'the trainer wrote no predictions.csv to SM_OUTPUT_DATA_DIR; it must predict the validation channel',
    );
  }
  const predictions = rows(new Uint8Array(predictionsBytes), 'predictions.csv');
  const n = validation.length - 1;
  if (groups.length - 1 !== n || predictions.length - 1 !== n) {
    throw new VeritrailError(
      'TRAINING_FAILED',
      `predictions.csv has ${predictions.length - 1} rows for ${n} validation rows; the trainer must predict every validation row in order`,
    );
  }
  const labelIdx = validation[0]?.indexOf(def.dataset.label.column) ?? -1;
  const predIdx = predictions[0]?.indexOf('prediction') ?? -1;
  if (labelIdx < 0 || predIdx < 0) {
    throw new VeritrailError(
      'TRAINING_FAILED',
      'predictions.csv needs a "prediction" column (0 or 1) per validation row',
    );
  }
  const attributes = def.dataset.protected.map((p) => p.column);
  const acc = new FairnessAccumulator(attributes);
  for (let i = 1; i <= n; i++) {
    const p = predictions[i]?.[predIdx];
    if (p !== '0' && p !== '1') {
      throw new VeritrailError(
        'TRAINING_FAILED',
        `predictions.csv row ${i}: prediction "${p}" is not 0 or 1`,
      );
    }
    acc.add(groups[i] ?? [], validation[i]?.[labelIdx] === '1', p === '1');
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
  const headline: Record<string, number | null | string> = {
    accuracy: report.aggregates.accuracy ?? null,
    rows: n,
  };
  for (const attr of attributes) {
    for (const m of HEADLINE_METRICS)
      headline[`${attr}.${m}`] = report.aggregates[aggregateKey(def, attr, m)] ?? null;
  }
  const document = {
    runId: state.runId,
    model: train.model.digest,
    evaluationData: {
      validation: pre.validation.digest,
      groups: pre.groups.digest,
      predictions: train.output.digest,
    },
    attributes,
    privileged,
    label: def.dataset.label,
    bootstrap: EVALUATION_BOOTSTRAP,
    counts: acc.toCounts(),
    report,
  };
  const stored = await putJsonCas(rt.objects, document);
  return {
    output: { reportKey: stored.key, reportDigest: stored.digest, headline, warnings: report.warnings },
    digests: { model: train.model.digest, fairnessReport: stored.digest },
    facts: { fairness: headline, fairnessWarnings: report.warnings, fairnessReportKey: stored.key },
    detail: { headline },
  };
}

/**
 * The training job's output.tar.gz where the trainer really put it, checked against the digest the
 * Train step recorded when the job ended (trust but verify: hash what is read, compare). Locally
 * the key is content-addressed (`sha256/<hex>`); on AWS it is SageMaker's own
 * `<S3OutputPath>/<job>/output/output.tar.gz`, which nothing else addresses by content.
 */
export async function readTrainingOutput(
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
  const p = new CsvParser();
  const text = new TextDecoder().decode(bytes);
  const out = [...p.push(text), ...p.end()].map((r) => r.fields);
  if (out.length === 0) throw new VeritrailError('DATASET_EMPTY', `${what} is empty`);
  return out;
}
