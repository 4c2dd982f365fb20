/**
 * The model report's facts (predicate model-report/v1), gathered from a run's evidence. Pure: the
 * caller reads the run record, the pipeline definition, the signed statements and the stored
 * documents; this module only assembles them, adds per-group rates with Wilson intervals, and
 * never invents a figure the evidence does not hold.
 */

import type {
  FairnessMetric,
  FairnessPredicate,
  ModelReportPredicate,
  ReportGroup,
  ReportRate,
  Sha256Resource,
} from '../attest/predicates.js';
import { type Digest, hexOf, isDigest } from '../digest.js';
import type { RunRecord } from '../run.js';
import { factsOf } from '../run-facts.js';

/** z for a two-sided interval at `level` (only the levels veritrail uses; 0.95 by default). */
const Z: Readonly<Record<string, number>> = {
  '0.9': 1.6448536269514722,
  '0.95': 1.959963984540054,
  '0.99': 2.5758293035489004,
};

/**
 * Wilson score interval for k successes in n trials (Wilson 1927; Brown, Cai & DasGupta 2001
 * recommend it over the Wald interval for small n, which is where groups fall).
 */
export function wilson(k: number, n: number, level = 0.95): ReportRate {
  if (n <= 0) return { value: null };
  const z = Z[String(level)] ?? 1.959963984540054;
  const p = k / n;
  const z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / (1 + z2 / n);
  return { value: p, interval: { lower: Math.max(0, centre - half), upper: Math.min(1, centre + half) } };
}

/** The pipeline definition fields the report reads (a subset of PipelineDefinition). */
export interface ReportPipeline {
  name: string;
  description?: string;
  dataset: {
    label: { column: string; positive: string };
    protected: { column: string; privileged: string }[];
    features?: string[];
    validationFraction?: number;
  };
  hyperparameters?: Record<string, string | number | boolean>;
  trainer: {
    command?: string[];
    aws?: { image?: string; networkIsolation?: boolean };
  };
  gate: { thresholds: { minGroupSize: number } };
}

export interface ReportEvidence {
  run: RunRecord;
  /** Undefined when the definition could not be read (the report says less, never guesses). */
  pipeline?: ReportPipeline;
  mode: 'local' | 'aws';
  /** The signed fairness statement's predicate. */
  fairness?: FairnessPredicate;
  /** The stored gate decision document and its digest. */
  gateDecision?: {
    digest: Digest;
    doc: {
      decision?: unknown;
      reasons?: unknown;
      policies?: unknown;
      policy?: { name?: unknown; text?: unknown; digest?: unknown };
    };
  };
  /** The run's signed statements: name (transform, provenance…), payload digest, predicate type. */
  statements: { name: string; digest: Digest; predicateType: string }[];
  /** Files of the evidence kit, by their path in `veritrail export`. */
  files: { name: string; digest: Digest }[];
  /** The status the report is made for (the run's status may still read RUNNING while it ends). */
  status: string;
  error?: { code: string; message: string };
  now: Date;
}

function res(name: string, digest: Digest, extra: Record<string, unknown> = {}): Sha256Resource {
  return { name, digest: { sha256: hexOf(digest) }, ...extra };
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** Per-group rates of the fairness statement's confusion counts, with Wilson intervals. */
function reportGroups(
  fairness: FairnessPredicate,
  protectedAttrs: { column: string; privileged: string }[],
): ReportGroup[] {
  const level = fairness.confidenceLevel;
  return fairness.groups.map((g) => ({
    attribute: g.attribute,
    value: g.value,
    privileged: protectedAttrs.some((p) => p.column === g.attribute && p.privileged === g.value),
    tp: g.tp,
    fp: g.fp,
    tn: g.tn,
    fn: g.fn,
    small: g.small === true,
    selectionRate: wilson(g.tp + g.fp, g.tp + g.fp + g.tn + g.fn, level),
    tpr: wilson(g.tp, g.tp + g.fn, level),
    fpr: wilson(g.fp, g.fp + g.tn, level),
  }));
}

/** Builds the report predicate and names its subject: the model, else the raw data, else the pipeline. */
export function buildReportFacts(e: ReportEvidence): {
  subject: { name: string; digest: Digest };
  predicate: ModelReportPredicate;
} {
  const { run } = e;
  const f = factsOf(run);
  const def = e.pipeline;
  const { rawDigest: raw, processedDigest: processed, modelDigest: model, codeDigest: code } = f;
  // The transform's digests are in Preprocess's result, carried in the state saved at the launch.
  const transform = (
    f.training?.state as
      | { results?: { preprocess?: { transform?: { digest?: unknown; codeDigest?: unknown } } } }
      | undefined
  )?.results?.preprocess?.transform;
  const training = f.training;
  const trainStep = run.steps.find((s) => s.name === 'Train');
  const finished = f.finishedAt;

  const predicate: ModelReportPredicate = {
    runId: run.runId,
    status: e.status,
    pipeline: {
      name: run.pipeline,
      digest: { sha256: hexOf(run.pipelineDigest) },
      ...(def?.description ? { description: def.description } : {}),
    },
    createdOn: run.createdAt,
    ...(finished ? { finishedOn: finished } : {}),
    ...(e.error
      ? { error: e.error }
      : run.error
        ? { error: { code: run.error.code, message: run.error.message } }
        : {}),
    data: {
      ...(raw
        ? {
            raw: res('raw-data', raw, {
              uri: run.dataset.uri,
              ...(num(f.rawFiles) !== undefined ? { files: num(f.rawFiles) } : {}),
              ...(num(f.rawSize) !== undefined ? { bytes: num(f.rawSize) } : {}),
            }),
          }
        : {}),
      ...(processed
        ? {
            processed: res('processed-data', processed, {
              ...(num(f.trainRows) !== undefined ? { trainRows: num(f.trainRows) } : {}),
              ...(num(f.validationRows) !== undefined ? { validationRows: num(f.validationRows) } : {}),
            }),
          }
        : {}),
      ...(transform && isDigest(transform.digest)
        ? {
            transform: {
              digest: { sha256: hexOf(transform.digest) },
              ...(isDigest(transform.codeDigest)
                ? { codeDigest: { sha256: hexOf(transform.codeDigest) } }
                : {}),
            },
          }
        : {}),
      ...(def ? { label: def.dataset.label } : {}),
      features: def?.dataset.features ?? [],
      protected: def?.dataset.protected ?? [],
      ...(def?.dataset.validationFraction !== undefined
        ? { validationFraction: def.dataset.validationFraction }
        : {}),
    },
    statements: e.statements.map((s) => ({ ...res(s.name, s.digest), predicateType: s.predicateType })),
    files: e.files.map((x) => res(x.name, x.digest)),
    trail: run.steps.map((s) => ({
      step: s.name,
      status: s.status,
      startedOn: s.startedAt,
      ...(s.endedAt ? { endedOn: s.endedAt } : {}),
      ...(s.digests ? { digests: { ...s.digests } } : {}),
    })),
    reportedOn: e.now.toISOString(),
  };

  if (code || model || trainStep) {
    const image = def?.trainer.aws?.image;
    predicate.training = {
      ...(code ? { code: res('training-code', code) } : {}),
      ...(image && e.mode === 'aws' ? { image } : {}),
      ...(def?.trainer.command ? { command: def.trainer.command } : {}),
      hyperparameters: Object.fromEntries(
        Object.entries(def?.hyperparameters ?? {}).map(([k, v]) => [k, String(v)]),
      ),
      runtime: e.mode,
      isolation:
        e.mode === 'aws'
          ? `SageMaker training job, network isolation ${def?.trainer.aws?.networkIsolation === false ? 'off' : 'on'}`
          : 'local child process with the SageMaker container contract; no network isolation',
      ...(typeof training?.jobName === 'string' ? { job: training.jobName } : {}),
      ...(trainStep ? { startedOn: trainStep.startedAt } : {}),
      ...(trainStep?.endedAt ? { finishedOn: trainStep.endedAt } : {}),
    };
  }

  const fair = e.fairness;
  if (fair) {
    const c = fair.groups
      .filter((g) => g.attribute === fair.groups[0]?.attribute)
      .reduce((a, g) => ({ tp: a.tp + g.tp, fp: a.fp + g.fp, tn: a.tn + g.tn, fn: a.fn + g.fn }), {
        tp: 0,
        fp: 0,
        tn: 0,
        fn: 0,
      });
    const acc = fair.metrics.find((m) => m.name === 'accuracy' && m.attribute === undefined);
    const rows = c.tp + c.fp + c.tn + c.fn;
    const warnings = f.fairnessWarnings ?? [];
    predicate.evaluation = {
      evaluationData: fair.evaluationData,
      rows,
      confidenceLevel: fair.confidenceLevel,
      intervalMethod: fair.intervalMethod,
      accuracy: acc
        ? { value: acc.value, ...(acc.interval ? { interval: acc.interval } : {}) }
        : wilson(c.tp + c.tn, rows, fair.confidenceLevel),
      confusion: c,
      groups: reportGroups(fair, def?.dataset.protected ?? []),
      metrics: fair.metrics.map((m): FairnessMetric => ({ ...m })),
      ...(def ? { minGroupSize: def.gate.thresholds.minGroupSize } : {}),
      warnings,
    };
  }

  const g = e.gateDecision;
  if (g && (g.doc.decision === 'allow' || g.doc.decision === 'deny')) {
    const reasons = Array.isArray(g.doc.reasons) ? g.doc.reasons.map(String) : [];
    const codes = Array.isArray(g.doc.policies) ? g.doc.policies.map(String) : [];
    const policyDigest = isDigest(g.doc.policy?.digest) ? g.doc.policy.digest : undefined;
    predicate.gate = {
      decision: g.doc.decision,
      reasons:
        reasons.length > 0
          ? reasons.map((message, i) => ({ code: codes[i] ?? 'gate', message }))
          : [{ code: 'allow', message: 'every policy held' }],
      policy: {
        // Without the policy's own digest, the decision document (which holds the policy) stands for it.
        ...(policyDigest
          ? res(typeof g.doc.policy?.name === 'string' ? g.doc.policy.name : 'gate-policy', policyDigest)
          : res('gate-decision.json', g.digest)),
        ...(typeof g.doc.policy?.text === 'string' ? { text: g.doc.policy.text } : {}),
      },
    };
  }

  const subject = model
    ? { name: `${run.pipeline}/model.tar.gz`, digest: model }
    : raw
      ? { name: 'raw-data', digest: raw }
      : { name: `${run.pipeline}/pipeline.json`, digest: run.pipelineDigest };
  return { subject, predicate };
}
