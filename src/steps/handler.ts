import middy from '@middy/core';
import { getRuntime, type Runtime } from '../runtime.js';
import type { ExecState } from './state.js';
import { runStep, type StepName, type StepOutcome } from './step.js';

export type StepWork<T> = (rt: Runtime, state: ExecState) => Promise<StepOutcome<T>>;

/**
 * A Lambda handler for one state of the state machine: the runtime's adapters, the step's work,
 * and invariant 1 (audit before success) from runStep. Every function in functions/ is one line of this.
 */
export function stepHandler<T>(step: StepName, work: StepWork<T>) {
  return middy(async (event: unknown): Promise<T> => {
    const rt = await getRuntime();
    return runStep(rt, step, event, (state) => work(rt, state));
  });
}

/** A handler that is not a pipeline step with its own record (Finish, RecordFailure). */
export function plainHandler<T>(fn: (rt: Runtime, event: unknown) => Promise<T>) {
  return middy(async (event: unknown): Promise<T> => fn(await getRuntime(), event));
}
