import { loadPipeline, putJsonCas, readObject } from '../cas.js';
import { isAttestationError, statementCovers, verifyBundle } from '../core/attest/index.js';
import { digestOf } from '../core/digest.js';
import { type ErrorCode, isVeritrailError, toErrorInfo } from '../core/errors.js';
import { evaluateGate, gateFactsFrom } from '../core/gate/index.js';
import type { Runtime } from '../runtime.js';
import { readGatePolicy } from './gate-policy.js';
import {
  CodeResultSchema,
  EvaluateResultSchema,
  type ExecState,
  type GateResult,
  PreprocessResultSchema,
  resultOf,
} from './state.js';
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
  const facts = gateFactsFrom({
    accuracy: num(ev.headline.accuracy),
    attributes: Object.fromEntries(
      def.dataset.protected.map((p) => [
        p.column,
        {
          disparateImpact: num(ev.headline[`${p.column}.disparateImpact`]),
          demographicParityDifference: num(ev.headline[`${p.column}.demographicParityDifference`]),
          equalizedOddsDifference: num(ev.headline[`${p.column}.equalizedOddsDifference`]),
        },
      ]),
    ),
    thresholds: def.gate.thresholds,
    provenanceVerified,
    codeChecksPassed: true,
    minGroupSizeMet: !ev.warnings.some((w) => w.includes('fewer than the minimum')),
  });
  const train = state.results?.train as { model?: { digest?: string } } | undefined;
  const decision = evaluateGate({
    policyText,
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
      // Part of the retrain identity: a changed policy file is a changed pipeline (src/app/start.ts).
      policyDigest,
    },
    detail: { decision: decision.decision, reasons, policies: decision.policies },
  };
}
