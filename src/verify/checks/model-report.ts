/**
 * `report.statement`: the run's model report statement is signed by a trusted key, is about this
 * model, says the run's status and gate decision, and names every evidence file by its digest.
 */
import {
  isAttestationError,
  MODEL_REPORT_PREDICATE_TYPE,
  type ModelReportPredicate,
  type Statement,
  statementCovers,
  verifyBundle,
} from '../../core/attest/index.js';
import { type Digest, digestOf, digestsEqual } from '../../core/digest.js';
import { altered, type FailCode, type VerifyContext } from './context.js';
import type { GateClaim } from './gate-decision.js';
import { readCas } from './read.js';
import { BUNDLE_SLOTS } from './slots.js';

/** The signed report: its statement's digest and the trusted key (id) that verified it. */
export interface SignedReport {
  statement: Digest;
  key: string;
}

/**
 * Checked when the run record names a report (`facts.reportKey`). Returns the signed report when
 * its signature holds, even if its bytes left their address: the audit checks still compare it.
 */
export async function checkModelReport(
  ctx: VerifyContext,
  model: { recorded: Digest | undefined; actual: Digest },
  gate: GateClaim | undefined,
): Promise<SignedReport | undefined> {
  const c = ctx.checks;
  const r = await readCas(ctx, ctx.facts.reportKey, 'report statement');
  if (!r.ok) {
    c.fail('report.statement', r.code, r.detail);
    return undefined;
  }
  ctx.evidence.reportBundle = r.bytes;
  let st: Statement | undefined;
  let signed: SignedReport | undefined;
  let why = 'no trusted signing key';
  let code: FailCode = 'SIGNATURE_INVALID';
  for (const key of ctx.keys.signing) {
    try {
      const verified = verifyBundle(r.bytes, key.pem, { predicateType: MODEL_REPORT_PREDICATE_TYPE });
      st = verified.statement;
      signed = { statement: verified.payloadDigest, key: key.id };
      break;
    } catch (e) {
      if (!isAttestationError(e)) throw e;
      why = e.message;
      code = e.code;
    }
  }
  if (st === undefined) c.fail('report.statement', code, `the report statement: ${why}`);
  else if (!r.addressed) c.fail('report.statement', 'DIGEST_MISMATCH', altered('report statement'));
  else {
    const wrong = reportDisagreements(ctx, st, model, gate);
    if (wrong.length > 0)
      c.fail('report.statement', 'REPORT_MISMATCH', `the signed report: ${wrong.join('; ')}`);
    else
      c.pass(
        'report.statement',
        `model-report/v1 names ${(st.predicate as ModelReportPredicate).files.length} evidence file(s), each as it is`,
      );
  }
  return signed;
}

/** Where the verified report statement and the evidence differ, in words; empty when they agree. */
function reportDisagreements(
  ctx: VerifyContext,
  st: Statement,
  model: { recorded: Digest | undefined; actual: Digest },
  gate: GateClaim | undefined,
): string[] {
  const p = st.predicate as ModelReportPredicate;
  const evidence = ctx.evidence;
  const actual: Record<string, Uint8Array | Digest | undefined> = {
    'model.tar.gz': model.recorded === undefined ? undefined : model.actual,
    'manifests/raw.manifest.json': evidence.rawManifest,
    'manifests/raw.pins.json': evidence.rawPins,
    'manifests/processed.manifest.json': evidence.processedManifest,
    'fairness-report.json': evidence.fairnessReport,
    'gate-decision.json': evidence.gateDecision,
    ...Object.fromEntries(BUNDLE_SLOTS.map((b) => [`${b.file}.sigstore.json`, evidence.bundles[b.slot]])),
  };
  const wrong: string[] = [];
  for (const f of p.files) {
    const a = actual[f.name ?? ''];
    const d = a === undefined ? undefined : typeof a === 'string' ? a : digestOf(a);
    if (d === undefined) wrong.push(`it names ${f.name}, which the evidence lacks`);
    else if (!digestsEqual(d, `sha256:${f.digest.sha256}`)) wrong.push(`${f.name} is not the file it names`);
  }
  if (model.recorded !== undefined && !statementCovers(st, model.actual))
    wrong.push('its subject is not this model');
  if (p.status !== ctx.run.status) wrong.push(`it says ${p.status}, the run is ${ctx.run.status}`);
  if (gate !== undefined && p.gate?.decision !== gate.decision)
    wrong.push(`it says ${String(p.gate?.decision)}, the signed gate ${gate.decision}`);
  return wrong;
}
