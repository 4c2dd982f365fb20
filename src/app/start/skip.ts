/**
 * A skipped retrain, recorded: nothing changed since run X, so instead of a run there is a signed
 * retrain-skip/v1 statement (subject: the model in effect), an audit entry, and a skip record under
 * `retrain-skips/<runId>.json` that answers a redelivered trigger (src/core/layout.ts).
 */

import { putBytesCas, readObject } from '../../cas.js';
import {
  buildRetrainSkipStatement,
  parseBundle,
  serializeBundle,
  signStatement,
} from '../../core/attest/index.js';
import { digestOf } from '../../core/digest.js';
import { VeritrailError } from '../../core/errors.js';
import { SKIP_RECORD_PREFIX } from '../../core/layout.js';
import { factsOf } from '../../core/run-facts.js';
import type { RetrainDecision, RunInputs, StartOutcome, StartPlan } from '../../core/start.js';
import type { AuditLog, ObjectStore, RunRecord, Signer } from '../../ports.js';
import { noteSigningKey } from '../../steps/attest.js';
import { signedOutcomeOfRun } from '../signed-truth.js';
import type { StartRequest } from './routing.js';

/** Where skip statements and records are stored, and the clock that dates them. */
export interface SkipDeps {
  objects: ObjectStore;
  now(): Date;
}

/** The skip a run id already produced, if any. */
export async function readSkipRecord(
  objects: ObjectStore,
  runId: string,
): Promise<{ bundleKey: string; sinceRunId: string } | undefined> {
  const key = `${SKIP_RECORD_PREFIX}${runId}.json`;
  if ((await objects.head('artifacts', key)) === undefined) return undefined;
  return JSON.parse(new TextDecoder().decode(await readObject(objects, 'artifacts', key))) as {
    bundleKey: string;
    sinceRunId: string;
  };
}

/**
 * Nothing changed since run X: a signed retrain-skip/v1 statement (subject: the model in
 * effect) and an audit entry instead of a run. The audit entry's eventId makes the decision
 * idempotent: concurrent deliveries may each sign, but the log keeps the first, whose bundle key
 * every caller returns. `undefined` when the earlier run lacks the evidence to name (train then).
 * `unit`: the audit log and signer of the pipeline's business unit.
 */
export async function recordSkip(
  deps: SkipDeps,
  unit: { audit: AuditLog; signer: Signer },
  req: StartRequest,
  plan: StartPlan,
  decision: RetrainDecision & { action: 'skip' },
  inputs: RunInputs,
  last: RunRecord,
): Promise<StartOutcome | undefined> {
  const { modelDigest: model, bundles } = factsOf(last);
  const provenanceKey = bundles?.provenance;
  if (model === undefined || provenanceKey === undefined) return undefined;
  // Signed truth: "no change since run X" names X's model only if X's signed gate decision says
  // it shipped; a run record edited to SUCCEEDED is refused as STATE_TAMPERED, never signed over.
  await signedOutcomeOfRun(deps.objects, await unit.signer.publicKeyPem(), last);
  const provenance = parseBundle(await readObject(deps.objects, 'artifacts', provenanceKey));
  const name = req.pipeline.def.name;
  const now = deps.now();
  const statement = buildRetrainSkipStatement({
    model: { name: `${name}/model.tar.gz`, digest: model },
    runId: plan.runId,
    previousRunId: last.runId,
    reason: decision.reason,
    unchanged: [
      { name: 'raw-data', digest: inputs.data },
      { name: 'training-code', digest: inputs.code },
      { name: 'pipeline-definition', digest: inputs.definition },
      ...(inputs.policy ? [{ name: 'gate-policy', digest: inputs.policy }] : []),
      ...(inputs.environment ? [{ name: 'trainer-environment', digest: inputs.environment }] : []),
    ],
    previousProvenance: digestOf(provenance.envelope.payload),
    decidedOn: now,
  });
  const key = await noteSigningKey(unit);
  const signed = await signStatement(statement, unit.signer);
  const bytes = new TextEncoder().encode(serializeBundle(signed.bundle));
  const stored = await putBytesCas(deps.objects, bytes, digestOf(bytes));
  const entry = await unit.audit.append({
    eventId: `${plan.runId}/Start/retrain.skipped`,
    pipeline: name,
    runId: plan.runId,
    step: 'Start',
    type: 'retrain.skipped',
    outcome: 'info',
    actor: req.actor,
    subjects: {
      model,
      raw: inputs.data,
      code: inputs.code,
      pipeline: inputs.definition,
      statement: signed.payloadDigest,
    },
    detail: {
      sinceRunId: last.runId,
      reason: decision.reason,
      bundleKey: stored.key,
      key,
      trigger: req.trigger.kind,
      idempotencyKey: plan.idempotencyKey,
    },
  });
  const bundleKey = typeof entry.detail?.bundleKey === 'string' ? entry.detail.bundleKey : stored.key;
  const record = { runId: plan.runId, sinceRunId: last.runId, bundleKey, auditSeq: entry.seq };
  try {
    await deps.objects.put(
      'artifacts',
      `${SKIP_RECORD_PREFIX}${plan.runId}.json`,
      new TextEncoder().encode(`${JSON.stringify(record)}\n`),
      { ifAbsent: true, contentType: 'application/json' },
    );
  } catch (e) {
    if (!(e instanceof VeritrailError && e.code === 'OBJECT_EXISTS')) throw e;
  }
  return {
    status: 'skipped',
    runId: plan.runId,
    pipeline: name,
    sinceRunId: last.runId,
    reason: decision.reason,
    bundleKey,
  };
}
