/**
 * The audit log holds the run: `audit.entries` (the run's entries, the one that ended it
 * included), `audit.checkpoint` (the latest checkpoint is signed by a trusted audit key),
 * `audit.inclusion` (RFC 9162 inclusion proof of every entry in it) and `audit.witnessed`
 * (a checkpoint covering the run carries the cosignature of a named witness).
 */
import type { LogReader } from '../../audit/reader.js';
import { verifyProofBundle } from '../../audit/verify/proof.js';
import { isVeritrailError, toErrorInfo } from '../../core/errors.js';
import type { AuditEntry } from '../../ports.js';
import type { FailCode, TrustedKey, VerifyContext } from './context.js';

/** The audit log opened with the trusted audit key that verifies its latest checkpoint. */
export interface TrustedAudit {
  log: LogReader;
  key: TrustedKey;
}

type SignedCheckpoint = NonNullable<Awaited<ReturnType<LogReader['latestCheckpoint']>>>;

/**
 * With rotated audit keys, the latest checkpoint is signed by one of them: the log is opened with
 * the first that verifies it (kept as evidence), else with the first trusted audit key.
 */
export async function openTrustedAudit(ctx: VerifyContext): Promise<TrustedAudit> {
  let key = ctx.keys.audit[0] as TrustedKey;
  for (const k of ctx.keys.audit) {
    try {
      if ((await ctx.deps.openAudit(k).latestCheckpoint()) !== undefined) {
        key = k;
        ctx.evidence.auditKey = k;
        break;
      }
    } catch {
      /* not this key */
    }
  }
  return { log: ctx.deps.openAudit(key), key };
}

/** `audit.entries`. Returns the run's entries; undefined when the log cannot be read (nothing after it can be checked). */
export async function checkAuditEntries(
  ctx: VerifyContext,
  log: LogReader,
): Promise<AuditEntry[] | undefined> {
  const c = ctx.checks;
  const run = ctx.run;
  const entries: AuditEntry[] = [];
  try {
    for await (const e of log.entriesOf(run.runId)) entries.push(e);
  } catch (e) {
    c.fail('audit.entries', 'AUDIT_CORRUPT', `the audit log cannot be read: ${toErrorInfo(e).message}`);
    return undefined;
  }
  ctx.evidence.auditEntries = entries;
  const terminal = run.status === 'FAILED' ? 'run.failed' : 'run.finished';
  const ended = ['SUCCEEDED', 'REJECTED', 'FAILED'].includes(run.status);
  if (entries.length === 0)
    c.fail('audit.entries', 'AUDIT_ENTRY_MISSING', `the audit log holds no entry of run ${run.runId}`);
  else if (ended && !entries.some((e) => e.type === terminal)) {
    c.fail(
      'audit.entries',
      'AUDIT_ENTRY_MISSING',
      `the run is ${run.status} but the audit log has no ${terminal} entry for it`,
    );
  } else c.pass('audit.entries', `${entries.length} entries (seq ${entries[0]?.seq}…${entries.at(-1)?.seq})`);
  return entries;
}

/** `audit.checkpoint`. Returns the latest signed checkpoint; undefined when there is none that verifies. */
export async function checkAuditCheckpoint(
  ctx: VerifyContext,
  log: LogReader,
): Promise<SignedCheckpoint | undefined> {
  let checkpoint: SignedCheckpoint | undefined;
  try {
    checkpoint = await log.latestCheckpoint();
  } catch (e) {
    ctx.checks.fail(
      'audit.checkpoint',
      'AUDIT_CHECKPOINT_INVALID',
      `the latest checkpoint does not verify with the audit key: ${toErrorInfo(e).message}`,
    );
    return undefined;
  }
  if (checkpoint === undefined) {
    ctx.checks.fail('audit.checkpoint', 'AUDIT_NOT_CHECKPOINTED', 'the audit log has no signed checkpoint');
    return undefined;
  }
  ctx.evidence.checkpoint = checkpoint.note;
  ctx.checks.pass('audit.checkpoint', `signed checkpoint of ${checkpoint.size} entries`);
  return checkpoint;
}

/**
 * `audit.inclusion`: every entry of the run is under the checkpoint, by an inclusion proof that
 * leads to its signed root (the proofs are kept as evidence). False when one is not: what the
 * entries say is then not to be trusted.
 */
export async function checkAuditInclusion(
  ctx: VerifyContext,
  audit: TrustedAudit,
  entries: readonly AuditEntry[],
  checkpoint: SignedCheckpoint,
): Promise<boolean> {
  const problems: { code: FailCode; detail: string }[] = [];
  for (const entry of entries) {
    if (entry.seq >= checkpoint.size) {
      problems.push({
        code: 'AUDIT_NOT_CHECKPOINTED',
        detail: `entry ${entry.seq} is beyond the latest checkpoint (${checkpoint.size})`,
      });
      continue;
    }
    try {
      const proof = await audit.log.prove(entry.seq, { checkpointSize: checkpoint.size });
      verifyProofBundle(proof, audit.key.pem);
      ctx.evidence.proofs.push(proof);
    } catch (e) {
      const code: FailCode = isVeritrailError(e, 'SIGNATURE_INVALID')
        ? 'AUDIT_CHECKPOINT_INVALID'
        : 'AUDIT_PROOF_FAILED';
      problems.push({
        code,
        detail: `entry ${entry.seq} (${entry.step} ${entry.type}) is not proven by the signed checkpoint: ${toErrorInfo(e).message}`,
      });
    }
  }
  const first = problems[0];
  if (first !== undefined) {
    ctx.checks.fail('audit.inclusion', first.code, problems.map((p) => p.detail).join('; '));
    return false;
  }
  if (entries.length > 0)
    ctx.checks.pass('audit.inclusion', `every entry of the run is included in checkpoint ${checkpoint.size}`);
  return true;
}

/**
 * `audit.witnessed`: is the run under a checkpoint that independent witnesses cosigned (C2SP
 * tlog-witness)? Only a witness can tell a rolled-back or forked log from the real one: the log's
 * own key cannot. Without a witness named it passes and says it was not checked.
 */
export async function checkAuditWitnessed(
  ctx: VerifyContext,
  audit: TrustedAudit,
  entries: readonly AuditEntry[],
): Promise<void> {
  const witnesses = ctx.keys.witnesses ?? [];
  const last = entries.at(-1);
  if (witnesses.length === 0) {
    ctx.checks.pass(
      'audit.witnessed',
      'no witness named (--witness): whether the run is under a witnessed checkpoint was not checked',
    );
    return;
  }
  if (last === undefined) return;
  const witnessed = await audit.log.witnessedAt(last.seq, witnesses, [audit.key.pem]);
  if (witnessed === undefined) {
    ctx.checks.fail(
      'audit.witnessed',
      'AUDIT_NOT_WITNESSED',
      `no checkpoint covering entry ${last.seq} carries a cosignature of ${witnesses.map((w) => w.name).join(', ')}`,
    );
  } else {
    ctx.checks.pass(
      'audit.witnessed',
      `checkpoint ${witnessed.checkpointSize} covers the run and is cosigned by ${witnessed.cosignatures.map((w) => w.witness).join(', ')}`,
    );
  }
}
