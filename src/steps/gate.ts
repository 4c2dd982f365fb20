import { loadPipeline, putJsonCas, readCasVerified, readObject } from '../cas.js';
import { isAttestationError, statementCovers, verifyBundle } from '../core/attest/index.js';
import { type Digest, digestOf } from '../core/digest.js';
import { type ErrorCode, isVeritrailError, toErrorInfo } from '../core/errors.js';
import {
  CodeResultSchema,
  EvaluateResultSchema,
  type ExecState,
  type GateResult,
  PreprocessResultSchema,
  resultOf,
} from '../core/exec-state.js';
import type { FairnessCounts, FairnessReport } from '../core/fairness/index.js';
import {
  type AttributeEvidence,
  attributePolicyFor,
  byAttributeContext,
  gateSchemaFor,
  thresholdsFor,
} from '../core/gate/attributes.js';
import { evaluateGate, gateFactsFrom } from '../core/gate/index.js';
import type { PipelineDefinition } from '../core/pipeline.js';
import type { Runtime } from '../runtime.js';
import { aggregateKey } from './evaluate.js';
import { readGatePolicy } from './gate-policy.js';
import type { StepOutcome } from './step.js';

/** Codes that describe the evidence (what was read), as opposed to the reading of it. */
const EVIDENCE_CODES: ReadonlySet<ErrorCode> = new Set([
  'ATTESTATION_INVALID',
  'SIGNATURE_INVALID',
  'DIGEST_MISMATCH',
  'PROVENANCE_BROKEN',
  'OBJECT_NOT_FOUND',
]);

/**
 * Whether an error met while checking the processed data's statement is a fact about that
 * evidence (missing, malformed, forged, not linked), which the policy may weigh, rather than a
 * failure to read it (ACCESS_DENIED, TRANSIENT, INTERNAL), which must fail the run.
 */
export function isEvidenceProblem(e: unknown): boolean {
  if (isAttestationError(e) || e instanceof SyntaxError) return true;
  if (isVeritrailError(e)) return EVIDENCE_CODES.has(e.code);
  return e instanceof MissingStatement;
}

class MissingStatement extends Error {}

/**
 * Gate: policy as code (Cedar) over the run's evidence. Provenance is re-checked here rather than
 * taken on trust: the processed data's signed statement must verify with our key and link to the
 * raw digest this run hashed. A deny is not an error: the run goes on to sign the evidence of why
 * and ends REJECTED.
 */
export async function gate(rt: Runtime, state: ExecState): Promise<StepOutcome<GateResult>> {
  const def = await loadPipeline(rt.objects, state.pipeline.digest);
  const pre = resultOf(state, 'preprocess', PreprocessResultSchema);
  const ev = resultOf(state, 'evaluate', EvaluateResultSchema);
  resultOf(state, 'code', CodeResultSchema);
  const hash = state.results?.hash as { digest?: string } | undefined;

  let provenanceVerified = false;
  let provenanceProblem: string | undefined;
  try {
    if (!pre.bundleKey) throw new MissingStatement('the processed data has no signed statement');
    const bundle = JSON.parse(
      new TextDecoder().decode(await readObject(rt.objects, 'artifacts', pre.bundleKey)),
    ) as unknown;
    const verified = verifyBundle(bundle, await rt.signer.publicKeyPem());
    const raw = hash?.digest;
    const inputs =
      (verified.statement.predicate as { inputs?: { digest?: { sha256?: string } }[] }).inputs ?? [];
    provenanceVerified =
      statementCovers(verified.statement, pre.digest) &&
      typeof raw === 'string' &&
      inputs.some((i) => `sha256:${i.digest?.sha256}` === raw);
    if (!provenanceVerified)
      provenanceProblem = 'the processed data statement does not link this run raw and processed digests';
  } catch (e) {
    // Only a problem with the evidence itself is a verdict. A refused or failed call (a missing
    // grant, a throttled key) says nothing about the model: the run fails with that reason instead
    // of ending REJECTED for "provenance not verified".
    if (!isEvidenceProblem(e)) throw e;
    provenanceProblem = toErrorInfo(e).message;
  }

  const { text: policyText, name: policyName } = await readGatePolicy(def, state.pipeline.base);
  const num = (v: unknown) => (typeof v === 'number' ? v : null);
  const metricsOf = (column: string) => ({
    disparateImpact: num(ev.headline[`${column}.disparateImpact`]),
    demographicParityDifference: num(ev.headline[`${column}.demographicParityDifference`]),
    equalizedOddsDifference: num(ev.headline[`${column}.equalizedOddsDifference`]),
  });
  const all = Object.fromEntries(def.dataset.protected.map((p) => [p.column, metricsOf(p.column)]));
  const factsInput = {
    accuracy: num(ev.headline.accuracy),
    attributes: all,
    thresholds: def.gate.thresholds,
    provenanceVerified,
    codeChecksPassed: true,
    minGroupSizeMet: !ev.warnings.some((w) => w.includes('fewer than the minimum')),
  };
  const facts = gateFactsFrom(factsInput);
  // An attribute with thresholds of its own is judged only by them (the per-attribute rules): the
  // pipeline-wide "worst" values are taken over the other attributes.
  const own = new Set(Object.keys(def.gate.thresholds.attributes));
  if (own.size > 0) {
    const rest = Object.fromEntries(Object.entries(all).filter(([k]) => !own.has(k)));
    facts.worst =
      Object.keys(rest).length > 0
        ? gateFactsFrom({ ...factsInput, attributes: rest }).worst
        : {
            disparateImpactMin: 1,
            disparateImpactMax: 1,
            equalizedOddsDifference: 0,
            demographicParityDifference: 0,
          };
  }
  const evidence = await attributeEvidence(rt, def, ev);
  const names = def.dataset.protected.map((p) => p.column);
  const train = state.results?.train as { model?: { digest?: string } } | undefined;
  const decision = evaluateGate({
    // The default policy gains this pipeline's per-attribute rules; a custom policy is the author's.
    policyText: def.gate.policy
      ? policyText
      : `${policyText}${attributePolicyFor(names, def.gate.thresholds.intervalGroupSize)}`,
    schemaText: gateSchemaFor(names),
    extraContext: { byAttribute: byAttributeContext(evidence) },
    policyFile: policyName,
    facts,
    pipeline: def.name,
    model: train?.model?.digest,
  });
  const reasons = [...decision.reasons];
  if (provenanceProblem) reasons.push(`provenance not verified: ${provenanceProblem}`);
  const policyDigest = digestOf(policyText);
  const stored = await putJsonCas(rt.objects, {
    runId: state.runId,
    decision: decision.decision,
    reasons,
    policies: decision.policies,
    policy: { name: policyName, digest: policyDigest, text: policyText },
    facts,
    byAttribute: evidence,
  });
  return {
    output: {
      decision: decision.decision,
      reasons,
      policies: decision.policies,
      decisionKey: stored.key,
      decisionDigest: stored.digest,
    },
    digests: { policy: policyDigest, gateDecision: stored.digest },
    facts: {
      gate: { decision: decision.decision, reasons, policies: decision.policies },
      gateDecisionKey: stored.key,
      // Part of the retrain identity: a changed policy file is a changed pipeline (src/app/start/retrain.ts).
      policyDigest,
    },
    detail: { decision: decision.decision, reasons, policies: decision.policies },
  };
}

/** Each protected attribute's metrics, 95% intervals, smallest group and own thresholds, from the report. */
async function attributeEvidence(
  rt: Runtime,
  def: PipelineDefinition,
  ev: { reportKey: string; reportDigest: string; headline: Record<string, number | string | null> },
): Promise<AttributeEvidence[]> {
  const doc = JSON.parse(
    new TextDecoder().decode(await readCasVerified(rt.objects, ev.reportDigest as Digest, 'fairness report')),
  ) as { counts: FairnessCounts; report: FairnessReport };
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  return def.dataset.protected.map((p) => {
    const i = doc.counts.attributes.indexOf(p.column);
    const sizes = new Map<string, number>();
    for (const c of doc.counts.cells) {
      const v = c.values[i] ?? '';
      sizes.set(v, (sizes.get(v) ?? 0) + c.tp + c.fp + c.tn + c.fn);
    }
    const interval = (m: string) => {
      const x = doc.report.intervals[aggregateKey(def, p.column, m)];
      return x && x.low !== null && x.high !== null ? { lower: x.low, upper: x.high } : undefined;
    };
    const di = interval('disparateImpact');
    const eod = interval('equalizedOddsDifference');
    const dpd = interval('demographicParityDifference');
    return {
      name: p.column,
      smallestGroup: sizes.size > 0 ? Math.min(...sizes.values()) : 0,
      value: {
        disparateImpact: num(ev.headline[`${p.column}.disparateImpact`]),
        equalizedOddsDifference: num(ev.headline[`${p.column}.equalizedOddsDifference`]),
        demographicParityDifference: num(ev.headline[`${p.column}.demographicParityDifference`]),
      },
      interval: {
        ...(di ? { disparateImpact: di } : {}),
        ...(eod ? { equalizedOddsDifference: eod } : {}),
        ...(dpd ? { demographicParityDifference: dpd } : {}),
      },
      thresholds: thresholdsFor(def, p.column),
    };
  });
}
