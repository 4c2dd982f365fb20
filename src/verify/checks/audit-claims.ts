/**
 * What the proven audit entries say, against the evidence: `audit.subjects` (the digests they
 * recorded), `audit.report` (the report the run ended with) and `audit.signing-key` (the key that
 * signed the statements). The log is the signed record of these facts; the run record is not.
 */
import { type Digest, digestsEqual, isDigest } from '../../core/digest.js';
import type { AuditEntry } from '../../ports.js';
import { NO_DIGEST, short, type VerifyContext } from './context.js';
import type { SignedReport } from './model-report.js';
import { BUNDLE_SLOTS, type BundleSlot } from './slots.js';

/**
 * `audit.subjects`: every digest an entry recorded under a role the evidence pins (`raw`,
 * `processed`, `model`, `report`…) is the evidence's digest for that role.
 */
export function checkAuditSubjects(
  ctx: VerifyContext,
  entries: readonly AuditEntry[],
  actual: Readonly<Record<string, Digest>>,
): void {
  const disagreements: string[] = [];
  for (const entry of entries) {
    for (const [role, digest] of Object.entries(entry.subjects ?? {})) {
      const real = actual[role];
      // Only roles the evidence pins; the raw role of a failed hash is absent, for instance.
      if (real !== undefined && real !== NO_DIGEST && !digestsEqual(real, digest)) {
        disagreements.push(
          `entry ${entry.seq} (${entry.step}) records ${role} ${short(digest)}, the evidence is ${short(real)}`,
        );
      }
    }
  }
  if (disagreements.length > 0)
    ctx.checks.fail('audit.subjects', 'AUDIT_SUBJECT_MISMATCH', disagreements.join('; '));
  else ctx.checks.pass('audit.subjects', 'the audited digests are the evidence digests');
}

/**
 * `audit.report`: the report is signed as the run ends and the log names it (report.signed), so a
 * report swapped in the run record for another validly signed one is caught even though its
 * signature holds.
 */
export function checkAuditReport(
  ctx: VerifyContext,
  entries: readonly AuditEntry[],
  report: SignedReport,
): void {
  const named = entries.find(
    (e) => e.subjects?.report !== undefined && digestsEqual(e.subjects.report, report.statement),
  );
  if (named !== undefined)
    ctx.checks.pass('audit.report', `entry ${named.seq} names the signed report ${short(report.statement)}`);
  else
    ctx.checks.fail(
      'audit.report',
      'AUDIT_ENTRY_MISSING',
      `no audit entry of the run names its signed report ${short(report.statement)}`,
    );
}

/**
 * `audit.signing-key`: the log is the record of which key signed what (the run record is not
 * signed), so every entry that names a signing key must name the very key that verified the
 * bundles it signed. No check when nothing was signed and nothing recorded.
 */
export function checkAuditSigningKey(
  ctx: VerifyContext,
  entries: readonly AuditEntry[],
  verifiedBy: Partial<Record<BundleSlot, string>>,
  report: SignedReport | undefined,
): void {
  const recorded = entries.flatMap((e) => {
    const d = e.detail as { key?: unknown; bundles?: unknown } | undefined;
    return typeof d?.key === 'string' && isDigest(d.key)
      ? [
          {
            seq: e.seq,
            step: e.step,
            key: d.key,
            bundles: Array.isArray(d.bundles) ? d.bundles.map(String) : [],
          },
        ]
      : [];
  });
  const slotOf: Record<string, BundleSlot | 'report'> = {
    ...Object.fromEntries(BUNDLE_SLOTS.map((b) => [b.fact, b.slot])),
    report: 'report',
  };
  const keyOf: Partial<Record<BundleSlot | 'report', string>> = {
    ...verifiedBy,
    ...(report ? { report: report.key } : {}),
  };
  const wrong: string[] = [];
  for (const r of recorded) {
    for (const b of r.bundles) {
      const slot = slotOf[b];
      const by = slot === undefined ? undefined : keyOf[slot];
      if (by !== undefined && !digestsEqual(by, r.key))
        wrong.push(
          `entry ${r.seq} (${r.step}) records key ${short(r.key)} for the ${slot} bundle, which verifies with ${short(by)}`,
        );
    }
  }
  if (wrong.length > 0) ctx.checks.fail('audit.signing-key', 'KEY_MISMATCH', wrong.join('; '));
  else if (recorded.length === 0 && Object.keys(verifiedBy).some((s) => s !== 'transform'))
    ctx.checks.fail(
      'audit.signing-key',
      'KEY_MISMATCH',
      "no audit entry records the key that signed the run's statements",
    );
  else if (recorded.length > 0)
    ctx.checks.pass(
      'audit.signing-key',
      `the log records ${[...new Set(recorded.map((r) => short(r.key)))].join(', ')}, the key that verifies the bundles`,
    );
}
