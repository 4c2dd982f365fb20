import { readObject } from '../cas.js';
import { VeritrailError } from '../core/errors.js';
import { factsOf } from '../core/run-facts.js';
import { assertAgrees, type SignedOutcome, signedOutcomeOf } from '../core/signed-truth.js';
import type { ObjectStore, RunRecord } from '../ports.js';

/**
 * The signed outcome of a finished run, checked against its record: STATE_TAMPERED when the
 * record's status (SUCCEEDED / REJECTED) or model disagrees with the signed gate statement, or
 * when a run that claims an outcome has no gate statement at all. For the retrain-skip decision,
 * `runs show`, the registry and `verify` (src/core/signed-truth.ts).
 */
export async function signedOutcomeOfRun(
  objects: ObjectStore,
  publicKeyPem: string,
  run: RunRecord,
): Promise<SignedOutcome> {
  const facts = factsOf(run);
  const key = facts.bundles?.gate;
  if (key === undefined) {
    throw new VeritrailError(
      'STATE_TAMPERED',
      `run ${run.runId} is recorded ${run.status} but names no signed gate statement: the stored run cannot be trusted`,
      { details: { runId: run.runId } },
    );
  }
  let bundle: unknown;
  try {
    bundle = JSON.parse(new TextDecoder().decode(await readObject(objects, 'artifacts', key)));
  } catch (e) {
    if (e instanceof VeritrailError && e.code !== 'OBJECT_NOT_FOUND') throw e;
    throw new VeritrailError(
      'STATE_TAMPERED',
      `run ${run.runId}: its gate statement ${key} cannot be read (${(e as Error).message})`,
      { cause: e, details: { runId: run.runId } },
    );
  }
  const model = facts.modelDigest;
  const outcome = signedOutcomeOf(bundle, publicKeyPem, { runId: run.runId, ...(model ? { model } : {}) });
  if (run.status === 'SUCCEEDED' || run.status === 'REJECTED')
    assertAgrees(outcome, { status: run.status }, 'the run store');
  return outcome;
}
