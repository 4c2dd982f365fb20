/**
 * `<slot>.signature`, one per statement of the run (transform, provenance, model-signing,
 * fairness, gate): the bundle's DSSE signature verifies with a trusted key, and its stored bytes
 * still hash to their content address.
 */
import {
  isAttestationError,
  type RunStatements,
  type Statement,
  verifyBundle,
} from '../../core/attest/index.js';
import { altered, type FailCode, short, type VerifyContext } from './context.js';
import { readCas } from './read.js';
import { BUNDLE_SLOTS, type BundleSlot } from './slots.js';

export interface SignedStatements {
  /**
   * The statements that verified. Every slot absent here has a failing `<slot>.signature` check:
   * that is why the chain checks never need to say a statement is missing.
   */
  statements: RunStatements;
  /** Which trusted key (its id) verified each bundle, by slot. */
  verifiedBy: Partial<Record<BundleSlot, string>>;
}

/** Every `<slot>.signature` check, in chain order. */
export async function checkSignatures(ctx: VerifyContext): Promise<SignedStatements> {
  const statements: RunStatements = {};
  const verifiedBy: Partial<Record<BundleSlot, string>> = {};
  const keys = bundleKeysOf(ctx.facts);
  for (const { slot, fact } of BUNDLE_SLOTS) {
    const verified = await checkSignature(ctx, slot, keys[fact]);
    // A bundle whose signature holds but whose bytes left their address was still verified by
    // that key: the key checks (record.signing-key, audit.signing-key) count it.
    if (verified.keyId !== undefined) verifiedBy[slot] = verified.keyId;
    if (verified.statement === undefined) continue;
    if (slot === 'model-signing') statements.modelSigning = verified.statement;
    else statements[slot] = verified.statement;
  }
  return { statements, verifiedBy };
}

/**
 * Where the run record names its bundles: Sign's `bundles`. A run that failed after Preprocess
 * never reached Sign; its transform bundle is then named by Preprocess's own fact,
 * `transformBundleKey`. Values are checked, not trusted: a key that is not a content address is
 * the check's RECORD_INVALID.
 */
function bundleKeysOf(facts: VerifyContext['facts']): Record<string, unknown> {
  const keys = { ...((facts.bundles ?? {}) as Record<string, unknown>) };
  if (keys.transform === undefined && facts.transformBundleKey !== undefined)
    keys.transform = facts.transformBundleKey;
  return keys;
}

/**
 * `<slot>.signature`. Returns the trusted key that verified the bundle's signature, and its
 * statement when the check passed (the signature holds and the bytes are at their address).
 */
async function checkSignature(
  ctx: VerifyContext,
  slot: BundleSlot,
  key: unknown,
): Promise<{ keyId?: string; statement?: Statement }> {
  const c = ctx.checks;
  const name = `${slot}.signature` as const;
  const r = await readCas(ctx, key, `${slot} bundle`);
  if (!r.ok) {
    c.fail(name, r.code, r.detail);
    return {};
  }
  ctx.evidence.bundles[slot] = r.bytes;
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(r.bytes));
  } catch {
    c.fail(name, 'BUNDLE_MALFORMED', `the ${slot} bundle is not JSON`);
    return {};
  }
  let verified: { statement: Statement; keyId: string } | undefined;
  let failure: { code: FailCode; message: string } | undefined;
  for (const trusted of ctx.keys.signing) {
    try {
      verified = { statement: verifyBundle(json, trusted.pem).statement, keyId: trusted.id };
      break;
    } catch (e) {
      if (!isAttestationError(e)) throw e;
      // A wrong key and a forged signature look alike; keep the most telling failure.
      if (failure === undefined || failure.code === 'SIGNATURE_INVALID')
        failure = { code: e.code, message: e.message };
    }
  }
  if (verified === undefined) {
    c.fail(
      name,
      failure?.code ?? 'EVIDENCE_MISSING',
      `${slot} bundle: ${failure?.message ?? 'no trusted signing key'}`,
    );
    return {};
  }
  if (!r.addressed) {
    c.fail(name, 'DIGEST_MISMATCH', altered(`${slot} bundle`));
    return { keyId: verified.keyId };
  }
  c.pass(name, `${verified.statement.predicateType} signed by trusted key ${short(verified.keyId)}`);
  return verified;
}
