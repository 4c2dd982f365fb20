import { z } from 'zod';
import { VeritrailError } from './errors.js';
import { unitName } from './unit.js';

/**
 * A pipeline definition: what data it takes, how it trains, and what a model must show before it
 * ships. One per business unit (credit scoring, fraud, diagnosis…). Unknown keys are refused so a
 * typo never silently turns a check off.
 */

const columnName = z
  .string()
  .min(1, 'must not be empty')
  .max(128)
  .regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, 'must start with a letter or _ and use only letters, digits, _ . -');

const digestPinnedImage = z
  .string()
  .regex(
    /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\.[a-z0-9-]+)*(?::[0-9]+)?(?:\/[a-z0-9._-]+)+@sha256:[0-9a-f]{64}$/,
    'must be pinned by digest: <registry>/<repository>@sha256:<64 hex> (tags such as :latest can move)',
  );

const protectedAttribute = z.strictObject({
  column: columnName,
  /** The value(s) of the privileged group, for ratios such as disparate impact. */
  privileged: z.string().min(1),
});

/** Thresholds of one protected attribute, overriding the pipeline-wide ones for it (docs/gates.md). */
const attributeThresholds = z.strictObject({
  disparateImpact: z.strictObject({ min: z.number().positive(), max: z.number().positive() }).optional(),
  maxEqualizedOddsDifference: z.number().min(0).max(1).optional(),
  maxDemographicParityDifference: z.number().min(0).max(1).optional(),
});

/**
 * Below this many rows in a group, the default policy judges a metric by the bound of its 95%
 * interval nearest to failing instead of its point value (docs/gates.md).
 */
const DEFAULT_INTERVAL_GROUP_SIZE = 200;

const gateThresholds = z.strictObject({
  minAccuracy: z.number().min(0).max(1).default(0.7),
  disparateImpact: z
    .strictObject({ min: z.number().positive().default(0.8), max: z.number().positive().default(1.25) })
    .default({ min: 0.8, max: 1.25 }),
  maxEqualizedOddsDifference: z.number().min(0).max(1).default(0.1),
  maxDemographicParityDifference: z.number().min(0).max(1).optional(),
  /** Groups smaller than this are flagged and not trusted. */
  minGroupSize: z.number().int().positive().default(30),
  /** Below this group size the default policy uses interval bounds, not point values. */
  intervalGroupSize: z.number().int().positive().default(DEFAULT_INTERVAL_GROUP_SIZE),
  /** Per protected attribute (its column name): thresholds that replace the pipeline-wide ones. */
  attributes: z.record(columnName, attributeThresholds).default({}),
});

const awsTrainer = z.strictObject({
  /**
   * The training image: a plain runtime following the SageMaker training container contract
   * (docs/trainers.md). On AWS veritrail hands it the training code as the `code` input channel.
   */
  image: digestPinnedImage,
  /**
   * The image SageMaker serves the model with (the inference container contract: GET /ping and
   * POST /invocations on port 8080), recorded in the model package's InferenceSpecification. The
   * training image is never assumed to serve. Absent: the registry entry records the model
   * artifact only (SourceUri), and an inference container must be added before deployment.
   */
  inferenceImage: digestPinnedImage.optional(),
  instanceType: z
    .string()
    .regex(/^ml\.[a-z0-9]+\.[a-z0-9]+$/, 'must be a SageMaker instance type such as ml.m5.large'),
  instanceCount: z.number().int().min(1).max(100).default(1),
  volumeSizeGb: z.number().int().min(1).max(16384).default(30),
  maxRuntimeSeconds: z.number().int().min(60).max(2_419_200).default(3600),
  networkIsolation: z.boolean().default(true),
  vpc: z
    .strictObject({
      subnets: z.array(z.string().regex(/^subnet-[0-9a-f]+$/)).min(1),
      securityGroups: z.array(z.string().regex(/^sg-[0-9a-f]+$/)).min(1),
    })
    .optional(),
});

const PipelineDefinitionSchema = z.strictObject({
  apiVersion: z.literal('veritrail.dev/v1'),
  name: z
    .string()
    .regex(
      /^[a-z][a-z0-9-]{1,38}[a-z0-9]$/,
      'must be 3-40 lowercase letters, digits or dashes, starting with a letter',
    ),
  description: z.string().max(1024).optional(),
  /** The business unit the pipeline belongs to (src/core/unit.ts); none: the default unit. */
  unit: unitName.optional(),
  dataset: z.strictObject({
    format: z.literal('csv').default('csv'),
    label: z.strictObject({ column: columnName, positive: z.string().min(1) }),
    protected: z.array(protectedAttribute).min(1, 'name at least one protected attribute'),
    features: z.array(columnName).min(1, 'name at least one feature column'),
    /**
     * Feature columns holding categories, each with its declared values: Preprocess one-hot encodes
     * them as `<column>=<value>` columns (in the declared order) and records the encoding in the
     * transform statement. A value not declared is a DATASET_VALUE error.
     */
    categorical: z
      .record(
        columnName,
        z
          .array(
            z
              .string()
              .min(1)
              .max(64)
              .regex(/^[^,"\r\n=]+$/, 'must not hold , " = or line breaks'),
          )
          .min(2, 'declare at least two values'),
      )
      .default({}),
    /**
     * What Preprocess does with an empty feature cell (or one of `markers`): `refuse` the dataset,
     * `drop-row`, or `impute` the declared `value` (numeric features only). Recorded in the transform.
     */
    missing: z
      .strictObject({
        policy: z.enum(['refuse', 'drop-row', 'impute']).default('refuse'),
        value: z.number().finite().optional(),
        markers: z.array(z.string()).default(['']),
      })
      .default({ policy: 'refuse', markers: [''] }),
    /** Share of rows held out for validation (given to the trainer) and fairness checks of its own. */
    validationFraction: z.number().gt(0).lt(1).default(0.2),
    /**
     * Share of rows held out as the test split: the trainer never receives it; the control plane
     * scores the model on its features through the inference contract and keeps its labels.
     */
    testFraction: z.number().gt(0).lt(1).default(0.2),
  }),
  trainer: z.strictObject({
    /** Folder (relative to the definition file) holding the training code; its digest is recorded. */
    code: z.string().min(1),
    /** Local: the command run as a child process with the SageMaker container contract. */
    command: z.array(z.string().min(1)).min(1),
    /**
     * The inference contract (docs/trainers.md): a command of the same code that reads feature
     * rows (CSV with a header) on stdin, loads the model from SM_MODEL_DIR and writes a CSV with a
     * `prediction` column (0 or 1) on stdout. The control plane runs it on the held-out test split
     * (on AWS the image serves it to a Batch Transform job). Required: without it nothing scores
     * the model but the trainer itself.
     */
    predict: z.array(z.string().min(1)).min(1).optional(),
    aws: awsTrainer.optional(),
    /** A vulnerability scan of the training code or image (Trivy JSON or SARIF 2.1.0), relative to the definition. */
    vulnerabilityReport: z
      .strictObject({
        path: z.string().min(1),
        /** Findings at or above this severity fail CheckCode. */
        failOn: z.enum(['LOW', 'MEDIUM', 'HIGH', 'CRITICAL']).default('HIGH'),
      })
      .optional(),
  }),
  hyperparameters: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
  gate: z
    .strictObject({
      /** Cedar policy file (relative to the definition file); the shipped default applies when absent. */
      policy: z.string().min(1).optional(),
      thresholds: gateThresholds.default(gateThresholds.parse({})),
    })
    .default({ thresholds: gateThresholds.parse({}) }),
  schedule: z
    .strictObject({
      /** Five-field cron expression (UTC), e.g. "0 3 * * 1" for 03:00 every Monday. */
      cron: z.string().min(9),
      /** Retrain even when data, code and definition are unchanged since the last successful run. */
      force: z.boolean().default(false),
    })
    .optional(),
  landing: z
    .strictObject({ prefix: z.string().regex(/^[A-Za-z0-9._/-]*$/, 'must be a plain S3 key prefix') })
    .optional(),
});

export type PipelineDefinition = z.infer<typeof PipelineDefinitionSchema>;

/** Formats zod issues as `field.path: problem` lines, the path naming the bad field. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.length > 0 ? issue.path.map(String).join('.') : '(top level)';
      return `${path}: ${issue.message}`;
    })
    .join('; ');
}

/** Validates a parsed JSON value as a pipeline definition; PIPELINE_INVALID names each bad field. */
export function parsePipelineDefinition(value: unknown, source = 'pipeline definition'): PipelineDefinition {
  const result = PipelineDefinitionSchema.safeParse(value);
  if (!result.success) {
    throw new VeritrailError(
      'PIPELINE_INVALID',
      `${source} is invalid: ${describeIssues(result.error)}. Fix the field(s) named and try again.`,
    );
  }
  const def = result.data;
  const columns = [
    def.dataset.label.column,
    ...def.dataset.protected.map((p) => p.column),
    ...def.dataset.features,
  ];
  const d = def.dataset;
  if (d.validationFraction + d.testFraction >= 0.9) {
    throw new VeritrailError(
      'PIPELINE_INVALID',
      `${source} is invalid: dataset.validationFraction + dataset.testFraction is ${d.validationFraction + d.testFraction}; leave at least 10% of the rows for training`,
    );
  }
  for (const c of Object.keys(d.categorical)) {
    if (!d.features.includes(c)) {
      throw new VeritrailError(
        'PIPELINE_INVALID',
        `${source} is invalid: dataset.categorical.${c} is not one of dataset.features (${d.features.join(', ')}); declare it as a feature too`,
      );
    }
    const values = d.categorical[c] ?? [];
    if (new Set(values).size !== values.length) {
      throw new VeritrailError(
        'PIPELINE_INVALID',
        `${source} is invalid: dataset.categorical.${c} names a value twice`,
      );
    }
  }
  if (d.missing.policy === 'impute' && d.missing.value === undefined) {
    throw new VeritrailError(
      'PIPELINE_INVALID',
      `${source} is invalid: dataset.missing.policy "impute" needs dataset.missing.value, the number written in place of a missing feature`,
    );
  }
  for (const a of Object.keys(def.gate.thresholds.attributes)) {
    if (!d.protected.some((p) => p.column === a)) {
      throw new VeritrailError(
        'PIPELINE_INVALID',
        `${source} is invalid: gate.thresholds.attributes.${a} is not a protected attribute (${d.protected.map((p) => p.column).join(', ')})`,
      );
    }
  }
  const seen = new Set<string>();
  for (const c of columns) {
    if (seen.has(c)) {
      throw new VeritrailError(
        'PIPELINE_INVALID',
        `${source} is invalid: dataset column "${c}" is named twice (label, protected and features must be distinct).`,
      );
    }
    seen.add(c);
  }
  return def;
}

/** Landing prefix of a pipeline: the explicit one, or `<name>/`. */
export function landingPrefixOf(def: PipelineDefinition): string {
  return def.landing?.prefix ?? `${def.name}/`;
}

/**
 * Folder at the root of the check-code Lambda bundle that holds each pipeline's training code on
 * AWS: `code/<pipeline>/`, laid out as next to the definition file, so `trainer.code` and
 * `trainer.vulnerabilityReport.path` resolve there exactly as they do locally.
 */
export const BUNDLED_CODE_DIR = 'code';
/** The input channel that carries the training code to a SageMaker job (`/opt/ml/input/data/code/`). */
export const CODE_CHANNEL = 'code';
/** File name of the code bundle inside the code channel. */
export const CODE_BUNDLE_FILE = 'code.tar.gz';

/** A definition-relative path as plain `a/b` segments; PIPELINE_INVALID when it leaves the folder. */
function insideDefinitionFolder(field: string, path: string): string {
  const segments = path.split('/').filter((s) => s !== '' && s !== '.');
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path) || path.includes('\\') || segments.includes('..')) {
    throw new VeritrailError(
      'PIPELINE_INVALID',
      `${field} "${path}" must be a relative path inside the definition's folder to be bundled for SageMaker training; move the folder next to the definition`,
    );
  }
  return segments.join('/');
}

/**
 * What the deployment copies into the check-code bundle for a pipeline that trains on SageMaker:
 * the training code folder and the vulnerability report, `from` relative to the definition's
 * folder, `to` relative to the bundle root (SST copyFiles). CheckCode scans them there as it does
 * locally and ships the code to the job as a content-addressed input channel.
 */
export function trainerCodeBundle(def: PipelineDefinition): { from: string; to: string }[] {
  if (!def.trainer.aws) return [];
  const root = `${BUNDLED_CODE_DIR}/${def.name}`;
  const code = insideDefinitionFolder('trainer.code', def.trainer.code);
  const out = [{ from: code === '' ? '.' : code, to: code === '' ? root : `${root}/${code}` }];
  const report = def.trainer.vulnerabilityReport?.path;
  if (report !== undefined) {
    const rel = insideDefinitionFolder('trainer.vulnerabilityReport.path', report);
    out.push({ from: rel, to: `${root}/${rel}` });
  }
  return out;
}
