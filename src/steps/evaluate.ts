import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { loadPipeline, putBytesCas, putJsonCas, readObject } from '../cas.js';
import { casKey, type Digest, digestOf, digestsEqual } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import {
  type EvaluateResult,
  type ExecState,
  HashResultSchema,
  type PreprocessResult,
  PreprocessResultSchema,
  resultOf,
  type TrainResult,
  TrainResultSchema,
} from '../core/exec-state.js';
import { FairnessAccumulator, type FairnessCounts, fairnessReport } from '../core/fairness/index.js';
import { SCORING_PREFIX } from '../core/layout.js';
import type { PipelineDefinition } from '../core/pipeline.js';
import {
  EVALUATE_COUNT_JOB_NAME_PREFIX,
  EVALUATE_SHARD_JOB_NAME_PREFIX,
  type EvaluateCountJobConfig,
  EvaluateCountJobOutputSchema,
  type EvaluateShardJobConfig,
  EvaluateShardJobOutputSchema,
  processingJobName,
} from '../core/processing.js';
import { SCORING_JOB_NAME_PREFIX } from '../core/rules.js';
import type { ProcessingJobResult, Processor } from '../ports.js';
import type { Runtime } from '../runtime.js';
import { readTarMember } from '../tarball.js';
import { countPredictions, selfReportedCounts, shardFeatures } from './evaluate-transform.js';
import { readJobResult } from './job-result.js';
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
  const processor = rt.processor;
  // Above the processing threshold (the one Preprocess applies to the same dataset) the data work
  // runs as processing jobs; below it, here, in constant memory.
  const byJob =
    processor !== undefined && resultOf(state, 'hash', HashResultSchema).size > processor.thresholdBytes
      ? processor
      : undefined;
  const shardBytes = rt.trainer.scoreShardBytes ?? Number.POSITIVE_INFINITY;
  const shards = byJob
    ? await shardByJob(rt, byJob, state, pre, shardBytes)
    : await shardHere(rt, pre, shardBytes);
  const n = pre.test.rows;
  if (shards.reduce((a, s) => a + s.rows, 0) !== n) {
    throw new VeritrailError(
      'DIGEST_MISMATCH',
      `the test features hold ${shards.reduce((a, s) => a + s.rows, 0)} rows, but Preprocess recorded ${n} test rows; re-run Preprocess`,
    );
  }

  const scored = await scoreModel(rt, state, def, pre, train, shards);
  const claimed = await trainerPredictions(rt, train);
  const attributes = def.dataset.protected.map((p) => p.column);
  const counted = byJob
    ? await countByJob(rt, byJob, state, pre, def, attributes, scored, claimed)
    : await countHere(rt, pre, def, attributes, scored, claimed);
  const predictions = await storePredictions(rt, scored, counted, n);

  const thresholds = def.gate.thresholds;
  const privileged = Object.fromEntries(def.dataset.protected.map((p) => [p.column, p.privileged]));
  const report = fairnessReport(counted.counts, {
    attributes,
    privileged,
    positive: def.dataset.label.positive,
    bootstrap: EVALUATION_BOOTSTRAP,
    minGroupSize: thresholds.minGroupSize,
  });
  const accuracy = report.aggregates.accuracy ?? null;
  const selfReported = selfReportedVerdict(counted.selfReported, accuracy, n);
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
      predictions: predictions.digest,
    },
    scoring: {
      by: 'control-plane',
      contract: 'veritrail.dev/inference/v1',
      ...(scored.isolation ? { isolation: scored.isolation } : {}),
      ...(shards.length > 1 ? { shards: shards.map((s) => ({ features: s.digest, rows: s.rows })) } : {}),
      ...(counted.executor ? { countedBy: counted.executor } : {}),
    },
    ...(selfReported ? { selfReported } : {}),
    attributes,
    privileged,
    label: def.dataset.label,
    bootstrap: EVALUATION_BOOTSTRAP,
    counts: counted.counts,
    report: { ...report, warnings },
  };
  const stored = await putJsonCas(rt.objects, document);
  return {
    output: {
      reportKey: stored.key,
      reportDigest: stored.digest,
      predictions: { key: predictions.key, digest: predictions.digest },
      headline,
      warnings,
    },
    digests: { model: train.model.digest, fairnessReport: stored.digest, predictions: predictions.digest },
    facts: {
      fairness: headline,
      fairnessWarnings: warnings,
      fairnessReportKey: stored.key,
      predictionsDigest: predictions.digest,
      ...(selfReported
        ? { selfReported: { accuracy: selfReported.accuracy, flagged: selfReported.flagged } }
        : {}),
    },
    detail: {
      headline,
      scoredRows: n,
      ...(shards.length > 1 ? { shards: shards.length } : {}),
      ...(counted.executor ? { executor: counted.executor } : {}),
    },
  };
}

type Shard = { key: string; digest: Digest; rows: number };

/** The test features as the shards the scorer takes, cut here (one shard, the file itself, when it fits). */
async function shardHere(rt: Runtime, pre: PreprocessResult, shardBytes: number): Promise<Shard[]> {
  const cut = await shardFeatures(
    await rt.objects.open('artifacts', casKey(pre.testFeatures.digest)),
    shardBytes,
    async (bytes) => {
      await putBytesCas(rt.objects, bytes, digestOf(bytes));
    },
  );
  if (!digestsEqual(cut.digest, pre.testFeatures.digest)) {
    throw new VeritrailError(
      'DIGEST_MISMATCH',
      `test-features.csv: stored bytes hash to ${cut.digest}, recorded ${pre.testFeatures.digest}`,
    );
  }
  return cut.shards.map((s) => ({ key: casKey(s.digest), digest: s.digest, rows: s.rows }));
}

/**
 * The shard job: veritrail's own program cuts the test features (checking them against their
 * digest as it reads) and writes each shard at its content address. Its claims are checked here:
 * the file it cut is the one Preprocess recorded, every shard is where it says, rows add up.
 */
async function shardByJob(
  rt: Runtime,
  processor: Processor,
  state: ExecState,
  pre: PreprocessResult,
  shardBytes: number,
): Promise<Shard[]> {
  const features = await rt.objects.head('artifacts', casKey(pre.testFeatures.digest));
  if (!features) {
    throw new VeritrailError(
      'OBJECT_NOT_FOUND',
      `test-features.csv (${pre.testFeatures.digest}) is not stored; re-run Preprocess`,
    );
  }
  const config: EvaluateShardJobConfig = {
    kind: 'veritrail/evaluate-shard-job@1',
    runId: state.runId,
    features: { digest: pre.testFeatures.digest, size: features.size },
    shardBytes: Number.isFinite(shardBytes) ? shardBytes : Number.MAX_SAFE_INTEGER,
  };
  const job = await runEvaluateJob(
    rt,
    processor,
    state,
    EVALUATE_SHARD_JOB_NAME_PREFIX,
    config,
    [{ name: 'features', keys: [casKey(pre.testFeatures.digest)] }],
    features.size,
  );
  const claim = await readJobResult(
    rt.objects,
    job.resultKey,
    EvaluateShardJobOutputSchema,
    state.runId,
    'a shard result',
  );
  if (
    !digestsEqual(claim.features.digest, pre.testFeatures.digest) ||
    claim.features.rows !== pre.test.rows
  ) {
    throw new VeritrailError(
      'DIGEST_MISMATCH',
      `processing job ${job.executor.jobName} cut ${claim.features.digest} (${claim.features.rows} rows), not test-features.csv ${pre.testFeatures.digest} (${pre.test.rows} rows); start a new run`,
    );
  }
  const shards: Shard[] = [];
  for (const s of claim.shards) {
    const key = casKey(s.digest as Digest);
    const head = await rt.objects.head('artifacts', key);
    if (head?.size !== s.size) {
      throw new VeritrailError(
        'PROCESSING_FAILED',
        `processing job ${job.executor.jobName} did not store the shard ${s.digest} (${s.size} bytes) it claims; start a new run`,
      );
    }
    shards.push({ key, digest: s.digest as Digest, rows: s.rows });
  }
  return shards;
}

interface Counted {
  counts: FairnessCounts;
  /** With several shards: the joined predictions, here in memory or stored by the count job. */
  joined?: { bytes: Buffer } | { digest: Digest; size: number; rows: number };
  selfReported?: { rows: number; correct: number } | { unusable: string };
  executor?: ProcessingJobResult['executor'];
}

/** The counts, here: test.csv, test-groups.csv and validation.csv streamed, each checked against its digest. */
async function countHere(
  rt: Runtime,
  pre: PreprocessResult,
  def: PipelineDefinition,
  attributes: string[],
  scored: Scored,
  claimed: Uint8Array | undefined,
): Promise<Counted> {
  const open = (digest: Digest) => rt.objects.open('artifacts', casKey(digest));
  const counted = await countPredictions({
    test: await open(pre.test.digest),
    groups: await open(pre.testGroups.digest),
    expected: { test: pre.test.digest, groups: pre.testGroups.digest },
    label: def.dataset.label.column,
    attributes,
    shards: scored.shards.map((s) => ({
      rows: s.rows,
      read: () => readObject(rt.objects, 'artifacts', s.predictionsKey),
    })),
    who: 'the predict command',
  });
  const selfReported = claimed
    ? await selfReportedCounts({
        validation: await open(pre.validation.digest),
        expected: pre.validation.digest,
        claimed,
      })
    : undefined;
  return {
    counts: counted.counts,
    ...(counted.joined ? { joined: { bytes: counted.joined } } : {}),
    ...(selfReported ? { selfReported } : {}),
  };
}

/**
 * The count job: veritrail's own program reads test.csv, test-groups.csv and each shard's
 * predictions (and, when the trainer reported any, validation.csv against its predictions.csv),
 * checks each input against its digest as it reads, and writes the counts. The joined predictions
 * it writes are re-hashed and counted here before they are named in anything.
 */
async function countByJob(
  rt: Runtime,
  processor: Processor,
  state: ExecState,
  pre: PreprocessResult,
  def: PipelineDefinition,
  attributes: string[],
  scored: Scored,
  claimed: Uint8Array | undefined,
): Promise<Counted> {
  const predictionKeys = scored.shards.map((s) => s.predictionsKey);
  const folder = commonFolder(predictionKeys);
  const storedClaim = claimed ? await putBytesCas(rt.objects, claimed, digestOf(claimed)) : undefined;
  const config: EvaluateCountJobConfig = {
    kind: 'veritrail/evaluate-count-job@1',
    runId: state.runId,
    label: def.dataset.label.column,
    attributes,
    test: { digest: pre.test.digest },
    groups: { digest: pre.testGroups.digest },
    predictions: scored.shards.map((s) => ({ path: s.predictionsKey.slice(folder.length), rows: s.rows })),
    ...(storedClaim
      ? {
          selfReported: {
            validation: { digest: pre.validation.digest },
            claimed: { digest: storedClaim.digest },
          },
        }
      : {}),
  };
  const inputs = [
    { name: 'test', keys: [casKey(pre.test.digest)] },
    { name: 'groups', keys: [casKey(pre.testGroups.digest)] },
    { name: 'predictions', prefix: folder, keys: predictionKeys },
    ...(storedClaim
      ? [
          { name: 'validation', keys: [casKey(pre.validation.digest)] },
          { name: 'claimed', keys: [storedClaim.key] },
        ]
      : []),
  ];
  let size = 0;
  for (const i of inputs) for (const k of i.keys) size += (await rt.objects.head('artifacts', k))?.size ?? 0;
  const job = await runEvaluateJob(
    rt,
    processor,
    state,
    EVALUATE_COUNT_JOB_NAME_PREFIX,
    config,
    inputs,
    size,
  );
  const claim = await readJobResult(
    rt.objects,
    job.resultKey,
    EvaluateCountJobOutputSchema,
    state.runId,
    'a count result',
  );
  const counts = FairnessAccumulator.fromCounts(claim.counts as FairnessCounts);
  if (
    claim.rows !== pre.test.rows ||
    counts.count !== pre.test.rows ||
    counts.attributes.join('\0') !== attributes.join('\0')
  ) {
    throw new VeritrailError(
      'PROCESSING_FAILED',
      `processing job ${job.executor.jobName} counted ${counts.count} rows of ${counts.attributes.join(', ')}, not the ${pre.test.rows} test rows of ${attributes.join(', ')}; start a new run`,
    );
  }
  if (
    scored.shards.length > 1 !== (claim.predictions !== undefined) ||
    (claimed !== undefined) !== (claim.selfReported !== undefined)
  ) {
    throw new VeritrailError(
      'PROCESSING_FAILED',
      `processing job ${job.executor.jobName} wrote a result of another shape than it was asked for; start a new run`,
    );
  }
  return {
    counts: counts.toCounts(),
    ...(claim.predictions
      ? {
          joined: {
            digest: claim.predictions.digest as Digest,
            size: claim.predictions.size,
            rows: claim.predictions.rows,
          },
        }
      : {}),
    ...(claim.selfReported ? { selfReported: claim.selfReported } : {}),
    executor: job.executor,
  };
}

async function runEvaluateJob(
  rt: Runtime,
  processor: Processor,
  state: ExecState,
  prefix: string,
  config: EvaluateShardJobConfig | EvaluateCountJobConfig,
  inputs: { name: string; prefix?: string; keys: string[] }[],
  sizeBytes: number,
): Promise<ProcessingJobResult> {
  const storedConfig = await putJsonCas(rt.objects, config);
  return processor.evaluate({
    jobName: processingJobName(prefix, state.runId),
    runId: state.runId,
    pipeline: state.pipeline.name,
    config: storedConfig,
    inputs: inputs.map((i) => ({ name: i.name, prefix: i.prefix ?? (i.keys[0] as string), keys: i.keys })),
    sizeBytes,
    // As Preprocess's job: shorter than the retrier's patience, so a job that runs too long fails with its reason.
    maxRuntimeSeconds: 12 * 3600,
  });
}

/** The longest `…/` folder every key lies in (the scoring job's output folder on AWS). */
function commonFolder(keys: readonly string[]): string {
  let prefix = keys[0] ?? '';
  for (const k of keys) while (!k.startsWith(prefix)) prefix = prefix.slice(0, -1);
  return prefix.slice(0, prefix.lastIndexOf('/') + 1);
}

interface Scored {
  shards: (Shard & { predictionsKey: string })[];
  isolation?: unknown;
}

/** Runs the inference contract on the test features' shards; each shard's predictions key, in order. */
async function scoreModel(
  rt: Runtime,
  state: ExecState,
  def: PipelineDefinition,
  pre: PreprocessResult,
  train: TrainResult,
  shards: readonly Shard[],
): Promise<Scored> {
  if (!rt.trainer.score) {
    throw new VeritrailError(
      'SCORING_FAILED',
      'this trainer adapter cannot run the inference contract, so the control plane cannot score the model itself',
    );
  }
  const base = state.pipeline.base?.startsWith('file:') ? fileURLToPath(state.pipeline.base) : undefined;
  const one = shards.length === 1 && digestsEqual((shards[0] as Shard).digest, pre.testFeatures.digest);
  const result = await rt.trainer.score({
    jobName: scoringJobName(state.runId),
    runId: state.runId,
    pipeline: state.pipeline.name,
    model: train.model,
    input: { key: pre.testFeatures.key, digest: pre.testFeatures.digest },
    ...(one ? {} : { shards }),
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
  const keys = one ? [result.predictionsKey] : (result.shardPredictionKeys ?? []);
  if (keys.length !== shards.length) {
    throw new VeritrailError(
      'SCORING_FAILED',
      `the scoring adapter returned ${keys.length} prediction files for ${shards.length} shards of the test features`,
    );
  }
  return {
    shards: shards.map((s, i) => ({ ...s, predictionsKey: keys[i] as string })),
    ...(result.isolation ? { isolation: result.isolation } : {}),
  };
}

/**
 * The predictions the report names, content-addressed: with one shard the file the inference
 * contract wrote; with several, the `prediction` column of each joined under one header (here, or
 * by the count job, whose file is re-hashed and counted before it is named).
 */
async function storePredictions(
  rt: Runtime,
  scored: Scored,
  counted: Counted,
  n: number,
): Promise<{ key: string; digest: Digest }> {
  const joined = counted.joined;
  if (joined === undefined) {
    const only = scored.shards[0] as Scored['shards'][number];
    const bytes = await readObject(rt.objects, 'artifacts', only.predictionsKey);
    const digest = digestOf(bytes);
    // Content-addressed whatever the adapter wrote (Batch Transform names its own output keys).
    if (only.predictionsKey === casKey(digest)) return { key: only.predictionsKey, digest };
    return putBytesCas(rt.objects, bytes, digest);
  }
  if ('bytes' in joined) return putBytesCas(rt.objects, joined.bytes, digestOf(joined.bytes));
  const key = casKey(joined.digest);
  const bytes = await readObject(rt.objects, 'artifacts', key).catch(() => new Uint8Array());
  const actual = digestOf(bytes);
  const lines = bytes.reduce((a, b) => a + (b === 0x0a ? 1 : 0), 0);
  if (
    !digestsEqual(actual, joined.digest) ||
    bytes.length !== joined.size ||
    lines - 1 !== n ||
    joined.rows !== n
  ) {
    throw new VeritrailError(
      'DIGEST_MISMATCH',
      `the count job claimed its joined predictions are ${joined.digest} (${joined.size} bytes, ${joined.rows} rows); the stored object is ${actual} (${bytes.length} bytes, ${Math.max(0, lines - 1)} rows); start a new run`,
    );
  }
  return { key, digest: actual };
}

/**
 * The trainer's self-reported validation accuracy (its predictions.csv, when it wrote one) against
 * the independent test accuracy: recorded, and flagged when the gap is beyond sampling noise
 * (three standard errors of the difference of two proportions, plus 0.02).
 */
function selfReportedVerdict(
  counted: Counted['selfReported'],
  independent: number | null,
  nTest: number,
): { accuracy: number | null; rows: number; flagged: boolean; message: string } | undefined {
  if (!counted || independent === null) return undefined;
  if ('unusable' in counted) {
    const message = `the trainer's self-reported predictions.csv is unusable (${counted.unusable}); only the control plane's scoring counts`;
    return { accuracy: null, rows: 0, flagged: true, message };
  }
  const m = counted.rows;
  const accuracy = m > 0 ? counted.correct / m : 0;
  const pooled = (accuracy * m + independent * nTest) / (m + nTest);
  const se = Math.sqrt(Math.max(pooled * (1 - pooled), 1e-9) * (1 / Math.max(m, 1) + 1 / Math.max(nTest, 1)));
  const flagged = Math.abs(accuracy - independent) > 3 * se + 0.02;
  const message = `the trainer's self-reported validation accuracy ${accuracy.toFixed(3)} disagrees with the control plane's own ${independent.toFixed(3)} on the held-out test split: the trainer's figures are not trusted`;
  return { accuracy: Number(accuracy.toFixed(6)), rows: m, flagged, message };
}

/** The trainer's own predictions.csv from its output.tar.gz (verified), when it wrote one. */
async function trainerPredictions(rt: Runtime, train: TrainResult): Promise<Uint8Array | undefined> {
  try {
    const bytes = await readTarMember(
      Readable.from([await readTrainingOutput(rt, train.output)]),
      'predictions.csv',
    );
    return bytes ? new Uint8Array(bytes) : undefined;
  } catch (e) {
    if (e instanceof VeritrailError && e.code === 'DIGEST_MISMATCH') throw e;
    return undefined;
  }
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
