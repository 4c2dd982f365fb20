/**
 * The links between the statements: raw → processed → model → fairness → gate, all of one run
 * (src/core/attest/chain.ts), and `link.evaluation-data`, the held-out split fairness was
 * evaluated on is a file of the processed data.
 */
import {
  type ActualDigests,
  checkChain,
  type RunStatements,
  type Statement,
} from '../../core/attest/index.js';
import { digestsEqual, isDigest } from '../../core/digest.js';
import type { Manifest } from '../../core/manifest.js';
import { isVerifyCheckName } from '../codes.js';
import type { VerifyContext } from './context.js';

/**
 * The chain checks of src/core/attest, given the verified statements and the digests of the bytes
 * as they are now: `<slot>.predicate`, `<slot>.subject`, `transform.raw`, `provenance.raw`,
 * `provenance.processed`, `provenance.code`, `link.*`, `run.id`.
 */
export function checkChainLinks(
  ctx: VerifyContext,
  statements: RunStatements,
  actual: Pick<ActualDigests, 'raw' | 'processed' | 'model'>,
): void {
  const codeDigest = isDigest(ctx.facts.codeDigest) ? ctx.facts.codeDigest : undefined;
  for (const k of checkChain(statements, {
    runId: ctx.run.runId,
    ...actual,
    ...(codeDigest ? { trainingCode: codeDigest } : {}),
  })) {
    // A statement that did not verify is already reported by its signature check, and every slot
    // without a statement has one that failed (SignedStatements): the absence is not news.
    if (k.code === 'STATEMENT_MISSING') continue;
    if (!isVerifyCheckName(k.name)) {
      throw new Error(
        `the chain check ${k.name} is not a VerifyCheckName: add it to src/verify/codes.ts and docs/verify.md`,
      );
    }
    ctx.checks.add({ name: k.name, ok: k.ok, code: k.code, detail: k.detail });
  }
}

/**
 * `link.evaluation-data`: the held-out split the fairness statement names (test.csv;
 * validation.csv in older runs) is a file of the processed data, by name and digest.
 */
export function checkEvaluationData(ctx: VerifyContext, fairness: Statement, processed: Manifest): void {
  const data = (fairness.predicate as { evaluationData?: { name?: unknown; digest?: { sha256?: string } } })
    .evaluationData;
  const name = typeof data?.name === 'string' ? data.name : 'validation.csv';
  const claimed = data?.digest?.sha256;
  const held = processed.files.find((f) => f.path === name);
  if (held !== undefined && claimed !== undefined && digestsEqual(`sha256:${claimed}`, held.digest)) {
    ctx.checks.pass('link.evaluation-data', `the fairness evaluation ran on the processed ${name}`);
  } else {
    ctx.checks.fail(
      'link.evaluation-data',
      'LINK_BROKEN',
      `the fairness statement names evaluation data (${name}) that is not a file of the processed data`,
    );
  }
}
