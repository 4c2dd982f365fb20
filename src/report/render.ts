/**
 * Renders a run's report from its signed statement, with the verification just run, and checks a
 * rendered report file against the statement it carries.
 */
import {
  isAttestationError,
  MODEL_REPORT_PREDICATE_TYPE,
  type ModelReportPredicate,
  type Statement,
  verifyBundle,
} from '../core/attest/index.js';
import type { Digest } from '../core/digest.js';
import type { RunRecord } from '../ports.js';
import type { VerifyCheck, VerifyReport } from '../verify/codes.js';
import type { Evidence, TrustedKeys } from '../verify/run.js';
import { describeTrusted } from '../verify/trust.js';
import { readReportBlocks, renderReportHtml } from './html.js';

/** Verifies a report bundle with any of the trusted signing keys: the statement and the key's id. */
function verifyReportBundle(
  bundle: unknown,
  signing: TrustedKeys['signing'],
):
  | { ok: true; statement: Statement<ModelReportPredicate>; payload: Uint8Array; keyId: string }
  | { ok: false; check: VerifyCheck } {
  let last = 'no trusted signing key';
  let code: VerifyCheck['code'] = 'SIGNATURE_INVALID';
  for (const key of signing) {
    try {
      const v = verifyBundle(bundle, key.pem, { predicateType: MODEL_REPORT_PREDICATE_TYPE });
      return {
        ok: true,
        statement: v.statement as Statement<ModelReportPredicate>,
        payload: v.payload,
        keyId: key.id,
      };
    } catch (e) {
      if (!isAttestationError(e)) throw e;
      last = e.message;
      code = e.code;
    }
  }
  return {
    ok: false,
    check: { name: 'report.signature', ok: false, code, detail: `the report statement: ${last}` },
  };
}

/** A run's signed report statement, as read from where the run's evidence is (src/local/report.ts). */
export interface LocalReport {
  run: RunRecord;
  bundleBytes: Uint8Array;
  bundle: unknown;
  statement: Statement<ModelReportPredicate>;
  statementDigest: Digest;
  /** True when the run had no report statement and one was signed now with the state dir's key. */
  producedNow: boolean;
}

/** The HTML of a run's report; with a verification, its result and the audit entries are shown too. */
export async function renderRunReport(
  local: LocalReport,
  v?: { report: VerifyReport; evidence: Evidence; keys: TrustedKeys },
): Promise<string> {
  let signingKey: string | undefined;
  const checks = v ? [...v.report.checks] : [];
  if (v) {
    const r = verifyReportBundle(local.bundle, v.keys.signing);
    if (r.ok) {
      signingKey = r.keyId;
      checks.push({
        name: 'report.signature',
        ok: true,
        code: 'OK',
        detail: `model-report/v1 signed by trusted key ${r.keyId.slice(0, 23)}…`,
      });
    } else checks.push(r.check);
  }
  const size = v?.evidence.checkpoint?.split('\n')[1];
  return renderReportHtml({
    statement: local.statement,
    statementDigest: local.statementDigest,
    bundle: local.bundle,
    ...(signingKey ? { signingKey } : {}),
    ...(v
      ? {
          verification: { ok: checks.every((c) => c.ok), checks, trusted: describeTrusted(v.keys) },
          audit: {
            entries: v.evidence.auditEntries,
            ...(size !== undefined && /^\d+$/.test(size) ? { checkpointSize: Number(size) } : {}),
          },
        }
      : {}),
  });
}

/**
 * Checks a rendered report: the bundle it carries verifies with a trusted key, and the file is,
 * byte for byte, the rendering of that statement (with the renderer's context it carries). An edit
 * of any figure, text or plot breaks the second check.
 */
export async function checkReportHtml(
  html: string,
  signing: TrustedKeys['signing'],
): Promise<{ ok: boolean; checks: VerifyCheck[] }> {
  const blocks = readReportBlocks(html);
  if (blocks === undefined) {
    return {
      ok: false,
      checks: [
        {
          name: 'report.bundle',
          ok: false,
          code: 'REPORT_MISMATCH',
          detail: 'the file carries no signed report bundle',
        },
      ],
    };
  }
  const r = verifyReportBundle(blocks.bundle, signing);
  if (!r.ok) return { ok: false, checks: [r.check] };
  const { createHash } = await import('node:crypto');
  const statementDigest = `sha256:${createHash('sha256').update(r.payload).digest('hex')}` as const;
  const again = await renderReportHtml({
    ...blocks.context,
    statement: r.statement,
    statementDigest,
    bundle: blocks.bundle,
  });
  const checks: VerifyCheck[] = [
    {
      name: 'report.signature',
      ok: true,
      code: 'OK',
      detail: `model-report/v1 ${statementDigest} signed by trusted key ${r.keyId}`,
    },
    again === html
      ? {
          name: 'report.rendering',
          ok: true,
          code: 'OK',
          detail: 'the file is exactly the rendering of the signed statement',
        }
      : {
          name: 'report.rendering',
          ok: false,
          code: 'REPORT_MISMATCH',
          detail:
            'the file is NOT the rendering of the statement it carries: its text, figures or plots were edited',
        },
  ];
  return { ok: checks.every((c) => c.ok), checks };
}
