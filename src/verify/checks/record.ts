/**
 * The run record against the evidence: the record is not signed, so every fact of it that a
 * reader acts on is checked against what is (`record.dataset`, `record.gate`, `record.status`,
 * `record.registry`, `record.signing-key`).
 */
import { readObject } from '../../cas.js';
import { type Digest, digestsEqual } from '../../core/digest.js';
import { short, type VerifyContext } from './context.js';
import type { GateClaim } from './gate-decision.js';
import type { BundleSlot } from './slots.js';

/** `record.dataset`: the raw data the trigger named is the raw data that was hashed. */
export function checkRecordDataset(ctx: VerifyContext, named: Digest, rawDigest: Digest): void {
  if (digestsEqual(named, rawDigest))
    ctx.checks.pass('record.dataset', 'the trigger named the raw data that was hashed');
  else
    ctx.checks.fail(
      'record.dataset',
      'RECORD_MISMATCH',
      `the run was started for ${short(named)}, the raw data hashed to ${short(rawDigest)}`,
    );
}

/** `record.gate`: the decision the run record holds is the signed gate's. */
export function checkRecordGate(ctx: VerifyContext, gate: GateClaim): void {
  const recorded = (ctx.facts.gate as { decision?: unknown } | undefined)?.decision;
  if (recorded === gate.decision)
    ctx.checks.pass('record.gate', `the run record and the signed gate agree: ${gate.decision}`);
  else
    ctx.checks.fail(
      'record.gate',
      'RECORD_MISMATCH',
      `the run record says ${String(recorded)}, the signed gate statement ${String(gate.decision)}`,
    );
}

/**
 * `record.status`: SUCCEEDED iff the signed gate allowed, REJECTED iff it denied. A FAILED run
 * passes: what it produced is checked by the other checks.
 */
export function checkRecordStatus(ctx: VerifyContext, gate: GateClaim | undefined): void {
  const run = ctx.run;
  if (ctx.failed) {
    const err = run.error;
    ctx.checks.pass(
      'record.status',
      `run FAILED${err ? ` (${err.code}: ${err.message})` : ''}; the evidence it produced is checked`,
    );
    return;
  }
  const expected =
    gate?.decision === 'allow' ? 'SUCCEEDED' : gate?.decision === 'deny' ? 'REJECTED' : undefined;
  if (expected !== undefined && run.status === expected)
    ctx.checks.pass('record.status', `${run.status}, as the signed gate decided`);
  else if (expected === undefined)
    ctx.checks.fail(
      'record.status',
      'EVIDENCE_MISSING',
      `run is ${run.status} and has no signed gate decision`,
    );
  else
    ctx.checks.fail(
      'record.status',
      'RECORD_MISMATCH',
      `run is ${run.status}, but the signed gate decision means ${expected}`,
    );
}

/**
 * `record.registry`, signed truth over the registry (issue 11 item 6): the local registry entry's
 * approval is what the signed gate decided. A model package on AWS (an ARN) is not readable
 * offline, and a FAILED run registered nothing: no check then.
 */
export async function checkRecordRegistry(ctx: VerifyContext, gate: GateClaim | undefined): Promise<void> {
  const registry = ctx.facts.registry as { ref?: unknown } | undefined;
  const registryKey =
    typeof registry?.ref === 'string' && registry.ref.startsWith('local:artifacts/')
      ? registry.ref.slice('local:artifacts/'.length)
      : undefined;
  if (registryKey === undefined || gate === undefined || ctx.failed) return;
  const approvalOf = gate.decision === 'allow' ? 'Approved' : 'Rejected';
  let stored: unknown;
  try {
    stored = (
      JSON.parse(new TextDecoder().decode(await readObject(ctx.deps.objects, 'artifacts', registryKey))) as {
        approval?: unknown;
      }
    ).approval;
  } catch {
    stored = undefined;
  }
  if (stored === approvalOf)
    ctx.checks.pass('record.registry', `the registry entry is ${approvalOf}, as the signed gate decided`);
  else
    ctx.checks.fail(
      'record.registry',
      stored === undefined ? 'EVIDENCE_MISSING' : 'RECORD_MISMATCH',
      stored === undefined
        ? `the registry entry ${registryKey} cannot be read`
        : `the registry entry says ${String(stored)}, but the signed gate decision means ${approvalOf}`,
    );
}

/** `record.signing-key`: the key the run record names is trusted, and the one that verified every bundle. */
export function checkRecordSigningKey(
  ctx: VerifyContext,
  signingKey: string,
  verifiedBy: Partial<Record<BundleSlot, string>>,
): void {
  const verifying = [...new Set(Object.values(verifiedBy))];
  const trusted = ctx.keys.signing.some((k) => digestsEqual(k.id, signingKey));
  if (trusted && verifying.every((id) => digestsEqual(id, signingKey)))
    ctx.checks.pass('record.signing-key', `the run records signing key ${short(signingKey)}, a trusted key`);
  else
    ctx.checks.fail(
      'record.signing-key',
      'RECORD_MISMATCH',
      `the run records signing key ${short(signingKey)}, the bundles verify with ${verifying.map(short).join(', ') || 'no trusted key'}`,
    );
}
