import { z } from 'zod';
import type { Digest } from '../digest.js';
import {
  buildStatement,
  type ResourceDescriptor,
  resource,
  Sha256ResourceSchema,
  type Statement,
} from './statement.js';

/**
 * veritrail's own predicates. Each URI carries its major version (in-toto spec/v1/README.md
 * "Versioning"); the JSON Schema of each lives in schemas/<name>-v1.schema.json and the zod
 * schemas below say the same thing (test/unit/attest/schemas.test.ts holds them to it).
 * Unknown fields are ignored, as in-toto's parsing rules require of consumers.
 */
export const TRANSFORM_PREDICATE_TYPE = 'https://veritrail.dev/attestation/transform/v1';
export const FAIRNESS_PREDICATE_TYPE = 'https://veritrail.dev/attestation/fairness/v1';
export const GATE_PREDICATE_TYPE = 'https://veritrail.dev/attestation/gate/v1';
export const RETRAIN_SKIP_PREDICATE_TYPE = 'https://veritrail.dev/attestation/retrain-skip/v1';

/** Names of the resources that the chain checker follows. */
export const RESOURCE_NAMES = {
  raw: 'raw-data',
  processed: 'processed-data',
  transformCode: 'transform-code',
  fairness: 'fairness-statement',
  policy: 'gate-policy',
} as const;

/** A ResourceDescriptor with a sha256 digest: `{name, digest: {sha256}, uri?, mediaType?, annotations?}`. */
export type Sha256Resource = ResourceDescriptor & { digest: { sha256: string } };

const datetime = z.iso.datetime({ offset: true });
const json = z.record(z.string(), z.unknown());

function ts(t: Date | string): string {
  return typeof t === 'string' ? t : t.toISOString();
}

// ───────────────────────────── transform/v1 ─────────────────────────────

/** Subject: the processed dataset. Says which raw data, code and parameters produced it. */
export interface TransformPredicate {
  runId: string;
  /** The raw dataset(s) read; the first is named `raw-data`. */
  inputs: Sha256Resource[];
  transform: {
    /** The preprocessing code, named `transform-code`. */
    code: Sha256Resource;
    /** Every parameter that changes the output (schema, split seed, validation fraction…). */
    parameters: Record<string, unknown>;
  };
  startedOn: string;
  finishedOn: string;
}

export const TransformPredicateSchema = z.looseObject({
  runId: z.string().min(1),
  inputs: z.array(Sha256ResourceSchema).min(1),
  transform: z.looseObject({ code: Sha256ResourceSchema, parameters: json }),
  startedOn: datetime,
  finishedOn: datetime,
});

export function buildTransformStatement(input: {
  runId: string;
  processed: { digest: Digest; mediaType?: string; uri?: string };
  raw: { digest: Digest; mediaType?: string; uri?: string };
  code: { digest: Digest; uri?: string };
  parameters: Record<string, unknown>;
  startedOn: Date | string;
  finishedOn: Date | string;
}): Statement<TransformPredicate, typeof TRANSFORM_PREDICATE_TYPE> {
  const { digest: processed, ...processedExtra } = input.processed;
  const { digest: raw, ...rawExtra } = input.raw;
  const { digest: code, ...codeExtra } = input.code;
  return buildStatement(
    [resource(RESOURCE_NAMES.processed, processed, processedExtra)],
    TRANSFORM_PREDICATE_TYPE,
    {
      runId: input.runId,
      inputs: [resource(RESOURCE_NAMES.raw, raw, rawExtra)],
      transform: {
        code: resource(RESOURCE_NAMES.transformCode, code, codeExtra),
        parameters: input.parameters,
      },
      startedOn: ts(input.startedOn),
      finishedOn: ts(input.finishedOn),
    },
  );
}

// ───────────────────────────── fairness/v1 ─────────────────────────────

export interface FairnessGroup {
  attribute: string;
  value: string;
  /** Confusion counts on the held-out set. */
  tp: number;
  fp: number;
  tn: number;
  fn: number;
  /** True when the group is smaller than the pipeline's minimum group size: its metrics are not trusted. */
  small?: boolean;
}

export interface FairnessMetric {
  /** e.g. `accuracy`, `disparate_impact`, `equalized_odds_difference`, `demographic_parity_difference`. */
  name: string;
  /** The protected attribute, absent for overall metrics. */
  attribute?: string;
  /** null when undefined (e.g. a ratio over an empty group). */
  value: number | null;
  /** Confidence interval at `confidenceLevel`. */
  interval?: { lower: number; upper: number };
  threshold?: { min?: number; max?: number };
  passed?: boolean;
}

/** Subject: the model. Fairness metrics of its predictions on the held-out data. */
export interface FairnessPredicate {
  runId: string;
  /** The held-out evaluation data (digest of the test split the trainer never received). */
  evaluationData: Sha256Resource;
  /** The control plane's own predictions on it (inference contract), content-addressed. */
  predictions?: Sha256Resource;
  label: { column: string; positive: string };
  /** e.g. 0.95 */
  confidenceLevel: number;
  /** How intervals were computed, e.g. `wilson`, `bootstrap-percentile/1000`. */
  intervalMethod: string;
  groups: FairnessGroup[];
  metrics: FairnessMetric[];
  evaluatedOn: string;
}

const count = z.number().int().min(0);
export const FairnessPredicateSchema = z.looseObject({
  runId: z.string().min(1),
  evaluationData: Sha256ResourceSchema,
  predictions: Sha256ResourceSchema.optional(),
  label: z.looseObject({ column: z.string().min(1), positive: z.string() }),
  confidenceLevel: z.number().gt(0).lt(1),
  intervalMethod: z.string().min(1),
  groups: z.array(
    z.looseObject({
      attribute: z.string().min(1),
      value: z.string(),
      tp: count,
      fp: count,
      tn: count,
      fn: count,
      small: z.boolean().optional(),
    }),
  ),
  metrics: z
    .array(
      z.looseObject({
        name: z.string().min(1),
        attribute: z.string().min(1).optional(),
        value: z.number().nullable(),
        interval: z.looseObject({ lower: z.number(), upper: z.number() }).optional(),
        threshold: z.looseObject({ min: z.number().optional(), max: z.number().optional() }).optional(),
        passed: z.boolean().optional(),
      }),
    )
    .min(1),
  evaluatedOn: datetime,
});

export function buildFairnessStatement(input: {
  model: { name: string; digest: Digest };
  predicate: Omit<FairnessPredicate, 'evaluatedOn'> & { evaluatedOn: Date | string };
}): Statement<FairnessPredicate, typeof FAIRNESS_PREDICATE_TYPE> {
  return buildStatement([resource(input.model.name, input.model.digest)], FAIRNESS_PREDICATE_TYPE, {
    ...input.predicate,
    evaluatedOn: ts(input.predicate.evaluatedOn),
  });
}

// ───────────────────────────── gate/v1 ─────────────────────────────

/** Subject: the model. The policy decision and the evidence it was taken on. */
export interface GatePredicate {
  runId: string;
  decision: 'allow' | 'deny';
  /** Why: every policy that denied (or the allow rule), each with a stable code. */
  reasons: { code: string; message: string }[];
  /** The policy evaluated, named `gate-policy`, by digest of its text. */
  policy: Sha256Resource;
  /**
   * What the decision read. The fairness statement is named `fairness-statement`, its digest
   * is sha256 of the DSSE payload (the RFC 8785 canonical statement).
   */
  evidence: Sha256Resource[];
  decidedOn: string;
}

export const GatePredicateSchema = z.looseObject({
  runId: z.string().min(1),
  decision: z.enum(['allow', 'deny']),
  reasons: z.array(z.looseObject({ code: z.string().min(1), message: z.string() })),
  policy: Sha256ResourceSchema,
  evidence: z.array(Sha256ResourceSchema),
  decidedOn: datetime,
});

export function buildGateStatement(input: {
  model: { name: string; digest: Digest };
  runId: string;
  decision: 'allow' | 'deny';
  reasons: { code: string; message: string }[];
  policy: { name?: string; digest: Digest; uri?: string };
  /** Digest of the fairness statement's DSSE payload ({@link statementPayload}). */
  fairnessStatement: Digest;
  extraEvidence?: Sha256Resource[];
  decidedOn: Date | string;
}): Statement<GatePredicate, typeof GATE_PREDICATE_TYPE> {
  const { digest: policyDigest, name: policyFile, ...policyExtra } = input.policy;
  return buildStatement([resource(input.model.name, input.model.digest)], GATE_PREDICATE_TYPE, {
    runId: input.runId,
    decision: input.decision,
    reasons: input.reasons,
    policy: resource(RESOURCE_NAMES.policy, policyDigest, {
      ...policyExtra,
      ...(policyFile === undefined ? {} : { annotations: { file: policyFile } }),
    }),
    evidence: [
      resource(RESOURCE_NAMES.fairness, input.fairnessStatement, {
        mediaType: 'application/vnd.in-toto+json',
      }),
      ...(input.extraEvidence ?? []),
    ],
    decidedOn: ts(input.decidedOn),
  });
}

// ───────────────────────────── retrain-skip/v1 ─────────────────────────────

/**
 * Subject: the model of the earlier run, which stays in effect. Records that run `runId` did not
 * retrain because every input named in `unchanged` has the same digest as in `previousRunId`.
 */
export interface RetrainSkipPredicate {
  runId: string;
  previousRunId: string;
  reason: string;
  unchanged: Sha256Resource[];
  /** Digest of the earlier run's provenance DSSE payload, named `previous-provenance`. */
  previousProvenance: Sha256Resource;
  decidedOn: string;
}

export const RetrainSkipPredicateSchema = z.looseObject({
  runId: z.string().min(1),
  previousRunId: z.string().min(1),
  reason: z.string().min(1),
  unchanged: z.array(Sha256ResourceSchema).min(1),
  previousProvenance: Sha256ResourceSchema,
  decidedOn: datetime,
});

export function buildRetrainSkipStatement(input: {
  model: { name: string; digest: Digest };
  runId: string;
  previousRunId: string;
  reason: string;
  unchanged: { name: string; digest: Digest }[];
  previousProvenance: Digest;
  decidedOn: Date | string;
}): Statement<RetrainSkipPredicate, typeof RETRAIN_SKIP_PREDICATE_TYPE> {
  return buildStatement([resource(input.model.name, input.model.digest)], RETRAIN_SKIP_PREDICATE_TYPE, {
    runId: input.runId,
    previousRunId: input.previousRunId,
    reason: input.reason,
    unchanged: input.unchanged.map((u) => resource(u.name, u.digest)),
    previousProvenance: resource('previous-provenance', input.previousProvenance, {
      mediaType: 'application/vnd.in-toto+json',
    }),
    decidedOn: ts(input.decidedOn),
  });
}

// ───────────────────────────── model-report/v1 ─────────────────────────────

export const MODEL_REPORT_PREDICATE_TYPE = 'https://veritrail.dev/attestation/model-report/v1';

/** A rate with its Wilson score interval (null when the denominator is zero). */
export interface ReportRate {
  value: number | null;
  interval?: { lower: number; upper: number };
}

/** One group of one protected attribute, on the held-out set. */
export interface ReportGroup {
  attribute: string;
  value: string;
  privileged: boolean;
  tp: number;
  fp: number;
  tn: number;
  fn: number;
  /** Fewer rows than the pipeline's minimum group size: its figures are not reliable. */
  small: boolean;
  selectionRate: ReportRate;
  tpr: ReportRate;
  fpr: ReportRate;
}

/**
 * Subject: the model (or, for a run that FAILED before training, the raw data). Every fact the
 * human-readable model report shows, gathered from the run's signed evidence, and the sha256 of
 * every file of the evidence kit (`files`, named by their path in `veritrail export`), so that one
 * signature covers the report and lets `verify.sh` check each file. Sections follow a model card
 * and the EU AI Act Annex IV (2: data, training, evaluation, decision; 3: monitoring is out of scope).
 */
export interface ModelReportPredicate {
  runId: string;
  status: string;
  pipeline: { name: string; digest: { sha256: string }; description?: string };
  createdOn: string;
  finishedOn?: string;
  error?: { code: string; message: string };
  data: {
    raw?: Sha256Resource & { files?: number; bytes?: number };
    processed?: Sha256Resource & { trainRows?: number; validationRows?: number };
    transform?: { digest: { sha256: string }; codeDigest?: { sha256: string } };
    label?: { column: string; positive: string };
    features: string[];
    protected: { column: string; privileged: string }[];
    validationFraction?: number;
  };
  training?: {
    code?: Sha256Resource;
    image?: string;
    command?: string[];
    hyperparameters: Record<string, string>;
    runtime: string;
    /** How the trainer was isolated from the network and the host. */
    isolation: string;
    job?: string;
    startedOn?: string;
    finishedOn?: string;
  };
  evaluation?: {
    evaluationData: Sha256Resource;
    rows: number;
    confidenceLevel: number;
    intervalMethod: string;
    accuracy: ReportRate;
    confusion: { tp: number; fp: number; tn: number; fn: number };
    groups: ReportGroup[];
    /** The fairness statement's metrics, each with the threshold it is held to. */
    metrics: FairnessMetric[];
    minGroupSize?: number;
    warnings: string[];
  };
  gate?: {
    decision: 'allow' | 'deny';
    reasons: { code: string; message: string }[];
    policy: Sha256Resource & { text?: string };
  };
  /** The run's other signed statements, by sha256 of their DSSE payload. */
  statements: (Sha256Resource & { predicateType: string })[];
  /** Every file of the evidence kit this report vouches for, by path in the kit. */
  files: Sha256Resource[];
  /** The steps as the run record has them. */
  trail: {
    step: string;
    status: string;
    startedOn: string;
    endedOn?: string;
    digests?: Record<string, string>;
  }[];
  reportedOn: string;
}

const rate = z.looseObject({
  value: z.number().nullable(),
  interval: z.looseObject({ lower: z.number(), upper: z.number() }).optional(),
});
const sha256Only = z.looseObject({ sha256: z.string().regex(/^[0-9a-f]{64}$/) });

export const ModelReportPredicateSchema = z.looseObject({
  runId: z.string().min(1),
  status: z.string().min(1),
  pipeline: z.looseObject({
    name: z.string().min(1),
    digest: sha256Only,
    description: z.string().optional(),
  }),
  createdOn: datetime,
  finishedOn: datetime.optional(),
  error: z.looseObject({ code: z.string().min(1), message: z.string() }).optional(),
  data: z.looseObject({
    raw: Sha256ResourceSchema.optional(),
    processed: Sha256ResourceSchema.optional(),
    transform: z.looseObject({ digest: sha256Only, codeDigest: sha256Only.optional() }).optional(),
    label: z.looseObject({ column: z.string(), positive: z.string() }).optional(),
    features: z.array(z.string()),
    protected: z.array(z.looseObject({ column: z.string(), privileged: z.string() })),
    validationFraction: z.number().optional(),
  }),
  training: z
    .looseObject({
      code: Sha256ResourceSchema.optional(),
      image: z.string().optional(),
      command: z.array(z.string()).optional(),
      hyperparameters: z.record(z.string(), z.string()),
      runtime: z.string().min(1),
      isolation: z.string().min(1),
      job: z.string().optional(),
      startedOn: datetime.optional(),
      finishedOn: datetime.optional(),
    })
    .optional(),
  evaluation: z
    .looseObject({
      evaluationData: Sha256ResourceSchema,
      rows: count,
      confidenceLevel: z.number().gt(0).lt(1),
      intervalMethod: z.string().min(1),
      accuracy: rate,
      confusion: z.looseObject({ tp: count, fp: count, tn: count, fn: count }),
      groups: z.array(
        z.looseObject({
          attribute: z.string().min(1),
          value: z.string(),
          privileged: z.boolean(),
          tp: count,
          fp: count,
          tn: count,
          fn: count,
          small: z.boolean(),
          selectionRate: rate,
          tpr: rate,
          fpr: rate,
        }),
      ),
      metrics: z.array(
        z.looseObject({
          name: z.string().min(1),
          attribute: z.string().optional(),
          value: z.number().nullable(),
          interval: z.looseObject({ lower: z.number(), upper: z.number() }).optional(),
          threshold: z.looseObject({ min: z.number().optional(), max: z.number().optional() }).optional(),
          passed: z.boolean().optional(),
        }),
      ),
      minGroupSize: count.optional(),
      warnings: z.array(z.string()),
    })
    .optional(),
  gate: z
    .looseObject({
      decision: z.enum(['allow', 'deny']),
      reasons: z.array(z.looseObject({ code: z.string().min(1), message: z.string() })),
      policy: Sha256ResourceSchema.and(z.looseObject({ text: z.string().optional() })),
    })
    .optional(),
  statements: z.array(Sha256ResourceSchema.and(z.looseObject({ predicateType: z.string().min(1) }))),
  files: z.array(Sha256ResourceSchema.and(z.looseObject({ name: z.string().min(1) }))),
  trail: z.array(
    z.looseObject({
      step: z.string().min(1),
      status: z.string().min(1),
      startedOn: z.string(),
      endedOn: z.string().optional(),
      digests: z.record(z.string(), z.string()).optional(),
    }),
  ),
  reportedOn: datetime,
});

/** Subject: the model, or the raw data when no model was built; the predicate as gathered. */
export function buildModelReportStatement(input: {
  subject: { name: string; digest: Digest };
  predicate: ModelReportPredicate;
}): Statement<ModelReportPredicate, typeof MODEL_REPORT_PREDICATE_TYPE> {
  return buildStatement(
    [resource(input.subject.name, input.subject.digest)],
    MODEL_REPORT_PREDICATE_TYPE,
    input.predicate,
  );
}
