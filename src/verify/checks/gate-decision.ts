/**
 * `gate.decision`: the stored decision document is intact, and it is the one the signed gate
 * statement names by digest, with the same decision.
 */
import type { Statement } from '../../core/attest/index.js';
import { digestOf, digestsEqual } from '../../core/digest.js';
import { altered, type VerifyContext } from './context.js';
import { jsonOf, readCas } from './read.js';

/** What the checks read of a verified gate statement's predicate. */
export interface GateClaim {
  decision?: string;
  policy?: { digest?: { sha256?: string } };
}

/** The predicate of the run's verified gate statement, if it has one. */
export function gateClaimOf(gate: Statement | undefined): GateClaim | undefined {
  return gate?.predicate as GateClaim | undefined;
}

/** Checked when the run has a verified gate statement or a readable decision document. */
export async function checkGateDecision(ctx: VerifyContext, gate: GateClaim | undefined): Promise<void> {
  const c = ctx.checks;
  const doc = await readCas(ctx, ctx.facts.gateDecisionKey, 'gate decision');
  if (doc.ok) ctx.evidence.gateDecision = doc.bytes;
  if (gate === undefined && !doc.ok) return;
  if (!doc.ok) c.fail('gate.decision', doc.code, doc.detail);
  else if (!doc.addressed) c.fail('gate.decision', 'DIGEST_MISMATCH', altered('gate decision'));
  else if (gate === undefined) c.pass('gate.decision', 'stored decision document is intact');
  else {
    const named = gate.policy?.digest?.sha256;
    const stored = jsonOf(doc.bytes);
    if (named === undefined || !digestsEqual(`sha256:${named}`, digestOf(doc.bytes))) {
      c.fail(
        'gate.decision',
        'LINK_BROKEN',
        'the gate statement names another decision document than the stored one',
      );
    } else if (stored?.decision !== gate.decision) {
      c.fail(
        'gate.decision',
        'LINK_BROKEN',
        `the decision document says ${String(stored?.decision)}, the signed gate statement ${String(gate.decision)}`,
      );
    } else c.pass('gate.decision', `signed decision ${gate.decision}, with its policy and facts`);
  }
}
