import { loadPipeline, readObject } from '../cas.js';
import {
  buildFairnessStatement,
  buildGateStatement,
  buildProvenanceStatement,
  buildSingleFileModelSigningStatement,
  type FairnessGroup,
  type FairnessMetric,
  statementDigest,
} from '../core/attest/index.js';
import { signingKeyId } from '../core/attest/keys.js';
import {
  CodeResultSchema,
  EvaluateResultSchema,
  type ExecState,
  GateResultSchema,
  HashResultSchema,
  PreprocessResultSchema,
  resultOf,
  type SignResult,
  TrainResultSchema,
} from '../core/exec-state.js';
import type { FairnessCounts, FairnessReport } from '../core/fairness/index.js';
import { imageDigestOf } from '../core/image.js';
import type { Runtime } from '../runtime.js';
import { signAndStore } from './attest.js';
import { aggregateKey, EVALUATION_BOOTSTRAP, HEADLINE_METRICS } from './evaluate.js';
import type { StepOutcome } from './step.js';

const LOCAL_BUILDER_ID = 'https://veritrail.dev/builders/local/v1';

/**
 * Sign: the model's evidence as in-toto statements in DSSE envelopes (Sigstore bundles), signed
 * through the signer port (KMS on AWS, the local P-256 key here): SLSA provenance, an OpenSSF
 * model signature, the fairness result and the gate decision, the last naming the fairness
 * statement by digest so neither can be swapped.
 */
export async function sign(rt: Runtime, state: ExecState): Promise<StepOutcome<SignResult>> {
  const def = await loadPipeline(rt.objects, state.pipeline.digest);
  const hash = resultOf(state, 'hash', HashResultSchema);
  const pre = resultOf(state, 'preprocess', PreprocessResultSchema);
  const code = resultOf(state, 'code', CodeResultSchema);
  const train = resultOf(state, 'train', TrainResultSchema);
  const ev = resultOf(state, 'evaluate', EvaluateResultSchema);
  const decision = resultOf(state, 'gate', GateResultSchema);
  const model = { name: `${def.name}/model.tar.gz`, digest: train.model.digest };

  const image = def.trainer.aws?.image;
  const provenance = buildProvenanceStatement({
    model,
    runId: state.runId,
    builderId: rt.mode === 'local' ? LOCAL_BUILDER_ID : rt.actor,
    builderVersion: {
      isolation: train.isolation?.level ?? (rt.mode === 'aws' ? 'sagemaker' : 'unrecorded'),
    },
    startedOn: train.startedAt,
    finishedOn: train.endedAt,
    externalParameters: {
      pipeline: { name: def.name, digest: state.pipeline.digest },
      dataset: {
        uri: state.dataset.uri,
        ...(state.dataset.versionId ? { versionId: state.dataset.versionId } : {}),
      },
      hyperparameters: def.hyperparameters,
      trigger: state.trigger.type,
    },
    internalParameters: {
      trainingJob: train.jobName,
      transform: pre.transform,
      command: code.command,
      runtime: rt.mode,
      ...(code.environment ? { trainerEnvironment: code.environment } : {}),
      // How the trainer was confined, as it actually ran (src/local/sandbox.ts; SageMaker on AWS).
      isolation: train.isolation ?? (rt.mode === 'aws' ? { level: 'sagemaker' } : { level: 'unrecorded' }),
      ...(train.channelsSealed ? { channelsSealed: true } : {}),
    },
    dependencies: {
      raw: { digest: hash.digest, uri: state.dataset.uri },
      processed: { digest: pre.digest, mediaType: 'application/vnd.veritrail.manifest.v1+json' },
      // On AWS the code reached the job as a content-addressed input channel (CheckCode's bundle).
      code: code.bundle
        ? {
            digest: code.digest,
            annotations: { delivery: 'sagemaker-input-channel', channel: 'code', bundle: code.bundle.digest },
          }
        : { digest: code.digest },
      ...(image && rt.mode === 'aws' ? { image: { digest: imageDigestOf(image), uri: image } } : {}),
    },
    byproducts: [{ name: 'training-output', digest: { sha256: train.output.digest.slice(7) } }],
  });
  const modelSignature = buildSingleFileModelSigningStatement(model.name, model.digest);

  const doc = JSON.parse(
    new TextDecoder().decode(await readObject(rt.objects, 'artifacts', ev.reportKey)),
  ) as {
    counts: FairnessCounts;
    report: FairnessReport;
  };
  const fairness = buildFairnessStatement({
    model,
    predicate: {
      runId: state.runId,
      // The held-out test split the trainer never received, and the control plane's own
      // predictions on it (content-addressed): the figures below derive from these bytes only.
      evaluationData: { name: 'test.csv', digest: { sha256: pre.test.digest.slice(7) } },
      ...(ev.predictions
        ? {
            predictions: {
              name: 'predictions.csv',
              digest: { sha256: ev.predictions.digest.slice(7) },
              annotations: { scoredBy: 'control-plane', input: pre.testFeatures.digest },
            },
          }
        : {}),
      label: def.dataset.label,
      confidenceLevel: 0.95,
      intervalMethod: `bootstrap-percentile/${EVALUATION_BOOTSTRAP.samples}/seed-${EVALUATION_BOOTSTRAP.seed}`,
      groups: groupsOf(doc.counts, def.gate.thresholds.minGroupSize),
      metrics: metricsOf(doc.report, def, ev.headline),
      evaluatedOn: rt.now(),
    },
  });
  const gateStatement = buildGateStatement({
    model,
    runId: state.runId,
    decision: decision.decision,
    reasons:
      decision.reasons.length > 0
        ? decision.reasons.map((message, i) => ({ code: decision.policies[i] ?? 'gate', message }))
        : [{ code: 'allow', message: 'every policy held' }],
    policy: { name: 'gate-policy', digest: decision.decisionDigest },
    fairnessStatement: statementDigest(fairness),
    decidedOn: rt.now(),
  });

  const bundles: Record<string, string> = {};
  if (pre.bundleKey) bundles.transform = pre.bundleKey;
  bundles.provenance = (await signAndStore(rt, provenance)).key;
  bundles.modelSignature = (await signAndStore(rt, modelSignature)).key;
  bundles.fairness = (await signAndStore(rt, fairness)).key;
  bundles.gate = (await signAndStore(rt, gateStatement)).key;
  const key = await signingKeyId(rt.signer);
  return {
    output: { bundles },
    digests: { model: model.digest },
    facts: { bundles, signingKey: key },
    detail: { bundles: Object.keys(bundles), key },
  };
}

function groupsOf(counts: FairnessCounts, minGroupSize: number): FairnessGroup[] {
  const out: FairnessGroup[] = [];
  counts.attributes.forEach((attribute, i) => {
    const by = new Map<string, FairnessGroup>();
    for (const c of counts.cells) {
      const value = c.values[i] ?? '';
      const g = by.get(value) ?? { attribute, value, tp: 0, fp: 0, tn: 0, fn: 0 };
      g.tp += c.tp;
      g.fp += c.fp;
      g.tn += c.tn;
      g.fn += c.fn;
      by.set(value, g);
    }
    for (const g of [...by.values()].sort((a, b) => (a.value < b.value ? -1 : 1))) {
      if (g.tp + g.fp + g.tn + g.fn < minGroupSize) g.small = true;
      out.push(g);
    }
  });
  return out;
}

function metricsOf(
  report: FairnessReport,
  def: Awaited<ReturnType<typeof loadPipeline>>,
  headline: Record<string, number | string | null>,
): FairnessMetric[] {
  const t = def.gate.thresholds;
  const interval = (key: string) => {
    const i = report.intervals[key];
    return i && i.low !== null && i.high !== null ? { interval: { lower: i.low, upper: i.high } } : {};
  };
  const acc = typeof headline.accuracy === 'number' ? headline.accuracy : null;
  const out: FairnessMetric[] = [
    {
      name: 'accuracy',
      value: acc,
      ...interval('accuracy'),
      threshold: { min: t.minAccuracy },
      passed: acc !== null && acc >= t.minAccuracy,
    },
  ];
  for (const p of def.dataset.protected) {
    for (const m of HEADLINE_METRICS) {
      const key = aggregateKey(def, p.column, m);
      const value = report.aggregates[key] ?? null;
      const threshold =
        m === 'disparateImpact'
          ? { min: t.disparateImpact.min, max: t.disparateImpact.max }
          : m === 'equalizedOddsDifference'
            ? { max: t.maxEqualizedOddsDifference }
            : m === 'demographicParityDifference' && t.maxDemographicParityDifference !== undefined
              ? { max: t.maxDemographicParityDifference }
              : undefined;
      const passed =
        threshold === undefined || value === null
          ? undefined
          : (threshold.min === undefined || value >= threshold.min) &&
            (threshold.max === undefined || value <= threshold.max);
      out.push({
        name: m,
        attribute: p.column,
        value,
        ...interval(key),
        ...(threshold ? { threshold } : {}),
        ...(passed === undefined ? {} : { passed }),
      });
    }
  }
  return out;
}
