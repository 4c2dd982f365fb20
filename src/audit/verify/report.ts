/**
 * The vocabulary of `audit verify`: the problem codes it names, the report it returns, and a
 * stored checkpoint as the checks take it (opened, or why it could not be).
 */
import type { SignedCheckpoint } from '../../core/checkpoint.js';

export const AuditProblemCodes = [
  'ENTRY_MISSING',
  'ENTRY_ALTERED',
  'ENTRY_REORDERED',
  'ENTRY_INSERTED',
  'CHAIN_BROKEN',
  'TILE_ALTERED',
  /** A hash tile, entry bundle or `checkpoint` that tlog-tiles requires for the latest checkpoint is absent. */
  'TILE_MISSING',
  'CHECKPOINT_FORGED',
  'CHECKPOINT_INCONSISTENT',
  /** The latest checkpoint lacks the required number of witness cosignatures. */
  'WITNESS_QUORUM_MISSING',
  /** A witness cosigned a larger size than the log's latest checkpoint: truncation or rollback. */
  'LOG_ROLLED_BACK',
  /** A witness cosigned another root at a size the log holds: the log is a fork. */
  'LOG_FORKED',
] as const;
export type AuditProblemCode = (typeof AuditProblemCodes)[number];

export interface AuditProblem {
  /** The entry's sequence number; for a checkpoint, the last seq it covers (size - 1). */
  seq: number;
  code: AuditProblemCode;
  detail: string;
}

export interface VerifyReport {
  ok: boolean;
  entries: number;
  checkpoints: number;
  problems: AuditProblem[];
  /** Problems beyond `maxProblems` that were counted but not listed. */
  moreProblems?: number;
  /** Key IDs (signed-note, hex) of the log keys the checkpoints were checked against. */
  trustedKeys?: string[];
  /** Per witness: whether the latest checkpoint carries its cosignature, and the size it holds. */
  witnesses?: { witness: string; cosigned: boolean; witnessSize?: number }[];
}

export interface CheckpointInput {
  /** From the storage key; must agree with the note. */
  size: number;
  /** undefined when the note could not be opened (signature or format). */
  checkpoint?: SignedCheckpoint;
  error?: string;
}
