/** `fairness.report`: the stored fairness report is intact and evaluates the model this run built. */
import type { Statement } from '../../core/attest/index.js';
import { type Digest, digestsEqual } from '../../core/digest.js';
import { altered, short, type VerifyContext } from './context.js';
import { jsonOf, readCas } from './read.js';

/**
 * Checked when the run has a verified fairness statement or a readable report; a run that never
 * got that far has neither, and no check.
 */
export async function checkFairnessReport(
  ctx: VerifyContext,
  fairness: Statement | undefined,
  actualModel: Digest,
): Promise<void> {
  const c = ctx.checks;
  const report = await readCas(ctx, ctx.facts.fairnessReportKey, 'fairness report');
  if (report.ok) ctx.evidence.fairnessReport = report.bytes;
  if (fairness === undefined && !report.ok) return;
  if (!report.ok) c.fail('fairness.report', report.code, report.detail);
  else if (!report.addressed) c.fail('fairness.report', 'DIGEST_MISMATCH', altered('fairness report'));
  else {
    const model = jsonOf(report.bytes)?.model;
    if (typeof model === 'string' && digestsEqual(model, actualModel))
      c.pass('fairness.report', `the report evaluates model ${short(model)}`);
    else
      c.fail(
        'fairness.report',
        'LINK_BROKEN',
        'the fairness report evaluates another model than this run built',
      );
  }
}
