/**
 * The run verifier: re-derives a run's chain of custody from what is stored and checks every link,
 * in chain order (raw → processed → model → statements → links → run record → audit log), so the
 * first failing check names the first broken link (docs/design.md, invariant 3). It only reads: no
 * checkpoint is made, no key is created, and only public keys are needed. Each link is a function
 * of src/verify/checks/; this file composes them, in the order docs/verify.md lists them.
 */

import { type Digest, digestOf } from '../core/digest.js';
import { checkAuditReport, checkAuditSigningKey, checkAuditSubjects } from './checks/audit-claims.js';
import {
  checkAuditCheckpoint,
  checkAuditEntries,
  checkAuditInclusion,
  checkAuditWitnessed,
  openTrustedAudit,
} from './checks/audit-log.js';
import { checkChainLinks, checkEvaluationData } from './checks/chain.js';
import {
  createContext,
  digestFact,
  type Evidence,
  NO_DIGEST,
  type TrustedKeys,
  type VerifyContext,
  type VerifyDeps,
} from './checks/context.js';
import { checkFairnessReport } from './checks/fairness-report.js';
import { checkGateDecision, gateClaimOf } from './checks/gate-decision.js';
import { checkModelData } from './checks/model.js';
import { checkModelReport, type SignedReport } from './checks/model-report.js';
import { checkProcessedData, checkProcessedManifest } from './checks/processed.js';
import { checkRawData, checkRawManifest, readRawPins } from './checks/raw.js';
import {
  checkRecordDataset,
  checkRecordGate,
  checkRecordRegistry,
  checkRecordSigningKey,
  checkRecordStatus,
} from './checks/record.js';
import { checkSignatures } from './checks/signatures.js';
import type { BundleSlot } from './checks/slots.js';
import { type VerifyCheckName, VerifyError, type VerifyReport } from './codes.js';

// What verifying takes and gives, defined with the context every check shares.
export type { Evidence, TrustedKey, TrustedKeys, VerifyDeps } from './checks/context.js';
export { BUNDLE_SLOTS } from './checks/slots.js';

/**
 * Verifies one run against the trusted keys. Throws VerifyError RUN_NOT_FOUND for an unknown run;
 * every other problem is a failing check in the report.
 */
export async function verifyRunWith(
  deps: VerifyDeps,
  keys: TrustedKeys,
  runId: string,
): Promise<{ report: VerifyReport<VerifyCheckName>; evidence: Evidence }> {
  const run = await deps.runs.get(runId);
  if (run === undefined) {
    throw new VerifyError(
      'RUN_NOT_FOUND',
      `no run ${runId} is recorded in this state dir; list runs with: veritrail runs list`,
    );
  }
  const ctx = createContext(deps, keys, run);
  const { evidence, facts } = ctx;

  // ───── raw data ─────
  const rawDigest = digestFact(ctx, 'rawDigest', 'raw.manifest', 'raw data');
  let actualRaw = NO_DIGEST;
  if (rawDigest !== undefined) {
    await checkRawManifest(ctx, rawDigest);
    await readRawPins(ctx);
    actualRaw = await checkRawData(ctx, rawDigest);
  }

  // ───── processed data ─────
  const processedDigest = digestFact(ctx, 'processedDigest', 'processed.manifest', 'processed data');
  const processed =
    processedDigest === undefined ? undefined : await checkProcessedManifest(ctx, processedDigest);
  const actualProcessed =
    processed === undefined ? (processedDigest ?? NO_DIGEST) : await checkProcessedData(ctx, processed);

  // ───── model ─────
  const modelDigest = digestFact(ctx, 'modelDigest', 'model.data', 'model');
  const actualModel = modelDigest === undefined ? NO_DIGEST : await checkModelData(ctx, modelDigest);

  // ───── signatures ─────
  const { statements, verifiedBy } = await checkSignatures(ctx);

  // ───── links: raw → processed → model → fairness → gate ─────
  checkChainLinks(ctx, statements, { raw: actualRaw, processed: actualProcessed, model: actualModel });
  if (statements.fairness !== undefined && processed !== undefined)
    checkEvaluationData(ctx, statements.fairness, processed);
  await checkFairnessReport(ctx, statements.fairness, actualModel);
  const gate = gateClaimOf(statements.gate);
  await checkGateDecision(ctx, gate);

  // ───── the model report: signed by a trusted key, about this model, naming these very files ─────
  const reportSigned =
    facts.reportKey === undefined
      ? undefined
      : await checkModelReport(ctx, { recorded: modelDigest, actual: actualModel }, gate);

  // ───── the run record ─────
  if (run.dataset.digest !== undefined && rawDigest !== undefined)
    checkRecordDataset(ctx, run.dataset.digest, rawDigest);
  if (gate !== undefined) checkRecordGate(ctx, gate);
  checkRecordStatus(ctx, gate);
  await checkRecordRegistry(ctx, gate);
  if (typeof facts.signingKey === 'string') checkRecordSigningKey(ctx, facts.signingKey, verifiedBy);

  // ───── audit log ─────
  const firstSigning = Object.values(verifiedBy)[0];
  const signingKey = keys.signing.find((k) => k.id === firstSigning);
  if (signingKey) evidence.signingKey = signingKey;
  await checkAuditLog(ctx, verifiedBy, reportSigned, {
    raw: actualRaw,
    processed: actualProcessed,
    model: actualModel,
    ...(evidence.gateDecision ? { gateDecision: digestOf(evidence.gateDecision) } : {}),
    ...(evidence.fairnessReport ? { fairnessReport: digestOf(evidence.fairnessReport) } : {}),
    ...(evidence.rawManifest ? { rawManifest: digestOf(evidence.rawManifest) } : {}),
    ...(reportSigned ? { report: reportSigned.statement } : {}),
  });

  const checks = ctx.checks.list;
  return {
    report: { ok: checks.every((x) => x.ok), runId: run.runId, status: run.status, checks },
    evidence,
  };
}

/**
 * The audit log links, in order. A log that cannot be read, a checkpoint that does not verify, or
 * an entry not proven by it ends them: what the log says cannot be trusted then.
 */
async function checkAuditLog(
  ctx: VerifyContext,
  verifiedBy: Partial<Record<BundleSlot, string>>,
  reportSigned: SignedReport | undefined,
  actual: Readonly<Record<string, Digest>>,
): Promise<void> {
  const audit = await openTrustedAudit(ctx);
  const entries = await checkAuditEntries(ctx, audit.log);
  if (entries === undefined) return;
  const checkpoint = await checkAuditCheckpoint(ctx, audit.log);
  if (checkpoint === undefined) return;
  if (!(await checkAuditInclusion(ctx, audit, entries, checkpoint))) return;
  await checkAuditWitnessed(ctx, audit, entries);
  checkAuditSubjects(ctx, entries, actual);
  if (reportSigned !== undefined) checkAuditReport(ctx, entries, reportSigned);
  checkAuditSigningKey(ctx, entries, verifiedBy, reportSigned);
}
