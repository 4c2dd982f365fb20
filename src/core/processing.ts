/**
 * Preprocess as a SageMaker Processing job (docs/scale-cost-model.md, "Preprocess above the
 * processing threshold"): what the control plane hands the job, what the job hands back, and how a
 * failure travels through the container's exit message. The job runs veritrail's own transform
 * (src/steps/preprocess-transform.ts); nothing it says is signed before the control plane has
 * re-hashed the files it wrote.
 */
import { z } from 'zod';
import { type ErrorCode, ErrorCodes, VeritrailError } from './errors.js';
import { parsePipelineDefinition } from './pipeline.js';

const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/);

/** The container's paths (SageMaker Processing: inputs and outputs under /opt/ml/processing). */
export const PROCESSING_ROOT = '/opt/ml/processing';
/** Where a processing container writes why it failed: DescribeProcessingJob's ExitMessage (first 1 KB). */
export const PROCESSING_EXIT_MESSAGE = '/opt/ml/output/message';
/** Input and output names, relative to the root: `input/<name>`, `output/<name>`. */
export const PROCESSING_PATHS = {
  /** The job config: one file, named after its content address. */
  config: 'input/config',
  code: 'input/code',
  raw: 'input/raw',
  /** Processed files, each named by its own SHA-256 hex: uploaded to the artifacts bucket's `sha256/`. */
  processed: 'output/processed',
  /** result.json (PreprocessJobOutput). */
  result: 'output/result',
} as const;
/** The job program's file: next to the Preprocess function's bundle, and in the job's code input. */
export const PROCESSING_PROGRAM = 'processing.mjs';
/** Deployments preprocess datasets above this many bytes with a job (VERITRAIL_PROCESSING_THRESHOLD_BYTES). */
export const DEFAULT_PROCESSING_THRESHOLD_BYTES = 8 * 1024 ** 3;
/** The prefix of every job name (the stacks grant CreateProcessingJob on it). */
export const PREPROCESS_JOB_NAME_PREFIX = 'veritrail-pre-';
/** Evaluate's two jobs: the shard job cuts the test features for scoring, the count job counts. */
export const EVALUATE_SHARD_JOB_NAME_PREFIX = 'veritrail-evs-';
export const EVALUATE_COUNT_JOB_NAME_PREFIX = 'veritrail-evc-';
/** Evaluate's job program's file: next to the Evaluate function's bundle, and in its jobs' code input. */
export const EVALUATE_PROCESSING_PROGRAM = 'evaluation.mjs';
export const PROCESSING_RESULT_FILE = 'result.json';

/** The raw file as the job finds it: its path under input/raw, and the digest HashDataset recorded. */
const jobFile = z.object({ path: z.string().min(1), size: z.number().int().nonnegative(), digest });

/** The one file of input/config: everything the transform needs, stored content-addressed by the control plane. */
export const PreprocessJobConfigSchema = z.object({
  kind: z.literal('veritrail/preprocess-job@1'),
  runId: z.string().min(1),
  /** The pipeline definition and its digest (the job checks one against the other). */
  pipelineDigest: digest,
  pipeline: z.unknown(),
  /** The raw dataset digest: the split seed, as in the Lambda. */
  rawDigest: digest,
  files: z.array(jobFile).min(1),
});
export type PreprocessJobConfig = z.infer<typeof PreprocessJobConfigSchema>;

const fileClaim = z.object({
  digest,
  size: z.number().int().nonnegative(),
  rows: z.number().int().nonnegative(),
});

/** output/result/result.json: what the job claims it wrote; every claim is re-checked before signing. */
export const PreprocessJobOutputSchema = z.object({
  kind: z.literal('veritrail/preprocess-result@1'),
  runId: z.string().min(1),
  rows: z.object({
    train: z.number().int().nonnegative(),
    validation: z.number().int().nonnegative(),
    test: z.number().int().nonnegative(),
    dropped: z.number().int().nonnegative(),
  }),
  files: z.object({
    train: fileClaim,
    validation: fileClaim,
    test: fileClaim,
    testFeatures: fileClaim,
    testGroups: fileClaim,
  }),
});
export type PreprocessJobOutput = z.infer<typeof PreprocessJobOutputSchema>;

/** The job config's definition, parsed (the digest check is the caller's: it needs the JCS digest). */
export function jobPipeline(config: PreprocessJobConfig) {
  return parsePipelineDefinition(config.pipeline, 'processing job config');
}

/**
 * VERITRAIL_PROCESSING_VERIFY_BYTES: the most bytes Preprocess re-hashes of a job's output per
 * invocation before it saves its progress and is invoked again (on AWS as well as its 12-minute time
 * budget). The tests set it to carry a re-hash across invocations; unset, no byte limit.
 */
export function verifyBytesSetting(raw: string | undefined): number | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < 1)
    throw new VeritrailError(
      'USAGE',
      `VERITRAIL_PROCESSING_VERIFY_BYTES must be a whole number of bytes (got ${JSON.stringify(raw)}); unset it to re-hash a job's output without a byte limit`,
    );
  return Number(raw);
}

/** SageMaker job names: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}. */
export function processingJobName(prefix: string, runId: string): string {
  const id = runId
    .replace(/[^a-zA-Z0-9-]/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-|-$/g, '');
  return `${prefix}${id}`.slice(0, 63).replace(/-+$/, '');
}

export function preprocessJobName(runId: string): string {
  return processingJobName(PREPROCESS_JOB_NAME_PREFIX, runId);
}

// ───────────────────────── Evaluate's jobs ─────────────────────────

/** Evaluate's job inputs, each `input/<name>/` (one object, or the scoring output folder). */
export const EVALUATE_INPUTS = {
  features: 'input/features',
  test: 'input/test',
  groups: 'input/groups',
  predictions: 'input/predictions',
  validation: 'input/validation',
  claimed: 'input/claimed',
} as const;

const shardClaim = z.object({
  digest,
  size: z.number().int().nonnegative(),
  rows: z.number().int().positive(),
});

/** The shard job: cut test-features.csv into complete CSVs (the header, then rows) of at most `shardBytes`. */
export const EvaluateShardJobConfigSchema = z.object({
  kind: z.literal('veritrail/evaluate-shard-job@1'),
  runId: z.string().min(1),
  features: z.object({ digest, size: z.number().int().nonnegative() }),
  shardBytes: z.number().int().positive(),
});
export type EvaluateShardJobConfig = z.infer<typeof EvaluateShardJobConfigSchema>;

export const EvaluateShardJobOutputSchema = z.object({
  kind: z.literal('veritrail/evaluate-shard-result@1'),
  runId: z.string().min(1),
  features: z.object({ digest, size: z.number().int().nonnegative(), rows: z.number().int().nonnegative() }),
  shards: z.array(shardClaim).min(1),
});
export type EvaluateShardJobOutput = z.infer<typeof EvaluateShardJobOutputSchema>;

/**
 * The count job: the fairness counts of the predictions against test.csv's labels and
 * test-groups.csv's attributes, each input checked against its digest as it is read.
 */
export const EvaluateCountJobConfigSchema = z.object({
  kind: z.literal('veritrail/evaluate-count-job@1'),
  runId: z.string().min(1),
  label: z.string().min(1),
  attributes: z.array(z.string().min(1)).min(1),
  test: z.object({ digest }),
  groups: z.object({ digest }),
  /** Each shard's predictions, in order: its path under input/predictions and the rows it must hold. */
  predictions: z.array(z.object({ path: z.string().min(1), rows: z.number().int().positive() })).min(1),
  /** The trainer's own validation predictions (its predictions.csv), when it wrote any. */
  selfReported: z.object({ validation: z.object({ digest }), claimed: z.object({ digest }) }).optional(),
});
export type EvaluateCountJobConfig = z.infer<typeof EvaluateCountJobConfigSchema>;

export const EvaluateCountJobOutputSchema = z.object({
  kind: z.literal('veritrail/evaluate-count-result@1'),
  runId: z.string().min(1),
  rows: z.number().int().nonnegative(),
  counts: z.unknown(),
  /** With more than one shard: the predictions of all shards under one header, at its content address. */
  predictions: z
    .object({ digest, size: z.number().int().nonnegative(), rows: z.number().int().nonnegative() })
    .optional(),
  selfReported: z
    .union([
      z.object({ rows: z.number().int().nonnegative(), correct: z.number().int().nonnegative() }),
      z.object({ unusable: z.string() }),
    ])
    .optional(),
});
export type EvaluateCountJobOutput = z.infer<typeof EvaluateCountJobOutputSchema>;

/**
 * The exit message a failing job writes: `<CODE>: <message>` (UTF-8, cut to the 1 KB SageMaker
 * keeps). Messages are the transform's own, which never echo a cell's content (invariant 7).
 */
export function exitMessageOf(code: ErrorCode, message: string): string {
  const text = `${code}: ${message}`;
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= 1024) return text;
  return `${new TextDecoder().decode(bytes.slice(0, 1020)).replace(/\uFFFD$/, '')}...`;
}

/**
 * The error a failed job reports: its own code and message when the exit message carries one, else
 * PROCESSING_FAILED with SageMaker's failure reason.
 */
export function errorOfFailedJob(job: {
  name: string;
  status: string;
  exitMessage?: string;
  failureReason?: string;
}): VeritrailError {
  const m = /^([A-Z_]+): ([\s\S]*)$/.exec(job.exitMessage?.trim() ?? '');
  const code = m?.[1] as ErrorCode | undefined;
  if (m && code && (ErrorCodes as readonly string[]).includes(code) && code !== 'INTERNAL')
    return new VeritrailError(code, m[2] ?? '', { details: { processingJob: job.name } });
  return new VeritrailError(
    'PROCESSING_FAILED',
    `processing job ${job.name} ${job.status.toLowerCase()}: ${job.failureReason ?? job.exitMessage ?? 'no reason given'}; its log is in CloudWatch Logs under /aws/sagemaker/ProcessingJobs`,
    { details: { processingJob: job.name, status: job.status } },
  );
}
