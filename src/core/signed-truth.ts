import { GATE_PREDICATE_TYPE, verifyBundle } from './attest/index.js';
import type { Digest } from './digest.js';
import { digestsEqual } from './digest.js';
import { VeritrailError } from './errors.js';

/**
 * Signed truth over stored state (issue 11 item 6): a run's outcome and a model's approval are
 * what the signed gate statement says, never what an unsigned record says. The run store and the
 * registry are caches of it; where one disagrees, that is tampering (STATE_TAMPERED), and nothing
 * is decided or signed on top of it.
 */

/** What the signed gate statement of a run establishes. */
export interface SignedOutcome {
  runId: string;
  model: Digest;
  decision: 'allow' | 'deny';
  /** The run status the decision implies, and the registry approval. */
  status: 'SUCCEEDED' | 'REJECTED';
  approval: 'Approved' | 'Rejected';
}

/**
 * Reads the outcome from a gate bundle, verified with `publicKeyPem` (the signer's key); throws
 * STATE_TAMPERED when the bundle does not verify, names another run, or another model.
 */
export function signedOutcomeOf(
  bundleJson: unknown,
  publicKeyPem: string,
  expect: { runId: string; model?: Digest },
): SignedOutcome {
  let predicate: { runId?: unknown; decision?: unknown };
  let subjects: { digest: Record<string, string> }[];
  try {
    const verified = verifyBundle(bundleJson, publicKeyPem, { predicateType: GATE_PREDICATE_TYPE });
    predicate = verified.statement.predicate as typeof predicate;
    subjects = verified.statement.subject as typeof subjects;
  } catch (e) {
    throw new VeritrailError(
      'STATE_TAMPERED',
      `run ${expect.runId}: its gate statement does not verify with the signing key (${(e as Error).message}); the stored run cannot be trusted: run veritrail verify ${expect.runId}`,
      { cause: e, details: { runId: expect.runId } },
    );
  }
  const decision = predicate.decision;
  const model = subjects[0]?.digest.sha256;
  if (
    predicate.runId !== expect.runId ||
    (decision !== 'allow' && decision !== 'deny') ||
    model === undefined
  ) {
    throw new VeritrailError(
      'STATE_TAMPERED',
      `run ${expect.runId}: the gate statement stored for it belongs to run ${String(predicate.runId)}; the stored run cannot be trusted`,
      { details: { runId: expect.runId } },
    );
  }
  const digest: Digest = `sha256:${model}`;
  if (expect.model !== undefined && !digestsEqual(digest, expect.model)) {
    throw new VeritrailError(
      'STATE_TAMPERED',
      `run ${expect.runId}: the stored model ${expect.model} is not the model its gate statement names (${digest})`,
      { details: { runId: expect.runId } },
    );
  }
  return {
    runId: expect.runId,
    model: digest,
    decision,
    status: decision === 'allow' ? 'SUCCEEDED' : 'REJECTED',
    approval: decision === 'allow' ? 'Approved' : 'Rejected',
  };
}

/**
 * Compares a stored claim (a run record's status, a registry entry's approval) with the signed
 * outcome; STATE_TAMPERED names both when they disagree.
 */
export function assertAgrees(
  outcome: SignedOutcome,
  stored: { status?: string; approval?: string },
  where: string,
): void {
  if (stored.status !== undefined && stored.status !== outcome.status) {
    throw new VeritrailError(
      'STATE_TAMPERED',
      `${where} says run ${outcome.runId} is ${stored.status}, but its signed gate decision is "${outcome.decision}" (${outcome.status}): the stored state was altered; trust the signed evidence and investigate`,
      { details: { runId: outcome.runId, stored: stored.status, signed: outcome.status } },
    );
  }
  if (stored.approval !== undefined && stored.approval !== outcome.approval) {
    throw new VeritrailError(
      'STATE_TAMPERED',
      `${where} says the model of run ${outcome.runId} is ${stored.approval}, but its signed gate decision is "${outcome.decision}" (${outcome.approval}): the stored state was altered; trust the signed evidence and investigate`,
      { details: { runId: outcome.runId, stored: stored.approval, signed: outcome.approval } },
    );
  }
}
