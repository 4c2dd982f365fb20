import { VeritrailError } from './errors.js';

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

export const TERMINAL_STATUSES: readonly RunStatus[] = ['SUCCEEDED', 'REJECTED', 'FAILED'];

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
