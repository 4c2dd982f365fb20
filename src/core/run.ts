import type { Digest } from './digest.js';
import { type ErrorInfo, VeritrailError } from './errors.js';

/** Run statuses. `as const` rather than an enum so the values are plain strings in JSON and DynamoDB. */
export const RunStatus = {
  PENDING: 'PENDING',
  RUNNING: 'RUNNING',
  SUCCEEDED: 'SUCCEEDED',
  REJECTED: 'REJECTED',
  FAILED: 'FAILED',
} as const;
export type RunStatus = (typeof RunStatus)[keyof typeof RunStatus];

/**
 * Legal transitions. A run is registered PENDING by the start path, becomes RUNNING when the
 * state machine picks it up, and ends exactly once. Terminal states never change again: an
 * auditor must be able to rely on a SUCCEEDED run staying SUCCEEDED.
 */
export const LEGAL_TRANSITIONS: Readonly<Record<RunStatus, readonly RunStatus[]>> = {
  PENDING: ['RUNNING', 'FAILED'],
  RUNNING: ['SUCCEEDED', 'REJECTED', 'FAILED'],
  SUCCEEDED: [],
  REJECTED: [],
  FAILED: [],
};

const TERMINAL_STATUSES: readonly RunStatus[] = ['SUCCEEDED', 'REJECTED', 'FAILED'];

export function isTerminal(s: RunStatus): boolean {
  return TERMINAL_STATUSES.includes(s);
}

/** The statuses from which `to` may be entered. */
export function legalSourcesOf(to: RunStatus): RunStatus[] {
  return (Object.keys(LEGAL_TRANSITIONS) as RunStatus[]).filter((from) =>
    LEGAL_TRANSITIONS[from].includes(to),
  );
}

export function assertTransition(runId: string, from: RunStatus, to: RunStatus): void {
  if (!LEGAL_TRANSITIONS[from].includes(to)) {
    throw new VeritrailError(
      'RUN_TRANSITION_ILLEGAL',
      `run ${runId} is ${from}; it cannot become ${to} (allowed from ${from}: ${LEGAL_TRANSITIONS[from].join(', ') || 'none, it has ended'})`,
      { details: { runId, from, to } },
    );
  }
}

// The record of a run, as the run store (src/ports.ts RunStore) keeps it.

export interface StepRecord {
  name: string;
  /** RUNNING while an asynchronous step (training) is under way. */
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED';
  startedAt: string;
  endedAt?: string;
  /** Content digests this step produced or checked, by role (raw, processed, model…). */
  digests?: Record<string, Digest>;
  error?: ErrorInfo;
}

export interface RunRecord {
  runId: string;
  pipeline: string;
  /**
   * The business unit of the run's pipeline (src/core/unit.ts), whose keys sign it and whose log
   * records it. Absent: the default unit (runs recorded before units).
   */
  unit?: string;
  pipelineDigest: Digest;
  status: RunStatus;
  trigger: string;
  /** Idempotency key: the content identity of the trigger (invariant 4). */
  idempotencyKey: string;
  dataset: { uri: string; digest?: Digest; versionId?: string };
  createdAt: string;
  updatedAt: string;
  steps: StepRecord[];
  /** Summary facts filled in as the run goes: digests, fairness headline, gate decision, bundles. */
  facts: Record<string, unknown>;
  error?: ErrorInfo;
}

/**
 * The run store's refusal to create a run whose id is already recorded (RUN_EXISTS), carrying that
 * run as the store found it, so a caller answering a duplicate needs no second read.
 */
export class RunExistsError extends VeritrailError {
  constructor(
    readonly existing: RunRecord,
    options?: { cause?: unknown },
  ) {
    super('RUN_EXISTS', `run ${existing.runId} is already recorded`, {
      ...options,
      details: { runId: existing.runId },
    });
  }
}
