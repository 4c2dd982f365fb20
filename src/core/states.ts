/**
 * The one registry of the training pipeline's task states (state-machines/training-pipeline.asl.json):
 * for each Task state, the Lambda it invokes (functions/<function>.ts) and whether it records a
 * step of its own in the run record and the audit log. The local runner wires its tasks from it,
 * the stacks derive the definition substitutions (`${<State>}FunctionArn`) from it, step handlers
 * are typed by it, and a test checks it against the ASL file's Task states.
 */
export const TASK_STATES = {
  RegisterRun: { function: 'register-run', step: true },
  // ListDataset and the HashBatches Map's HashBatch children are recorded as the HashDataset step.
  ListDataset: { function: 'list-dataset', step: false },
  HashBatch: { function: 'hash-batch', step: false },
  HashDataset: { function: 'hash-dataset', step: true },
  Preprocess: { function: 'preprocess', step: true },
  CheckCode: { function: 'check-code', step: true },
  Train: { function: 'train', step: true },
  Evaluate: { function: 'evaluate', step: true },
  Gate: { function: 'gate', step: true },
  Sign: { function: 'sign', step: true },
  Register: { function: 'register', step: true },
  Finish: { function: 'finish', step: true },
  RecordFailure: { function: 'record-failure', step: true },
} as const;

export type TaskState = keyof typeof TASK_STATES;

/** A state that records a step of its own (run record, audit entry). */
export type StepName = {
  [S in TaskState]: (typeof TASK_STATES)[S]['step'] extends true ? S : never;
}[TaskState];

/** The definition substitution naming a task state's Lambda ARN in the ASL file. */
export function functionArnVariable(state: TaskState): `${TaskState}FunctionArn` {
  return `${state}FunctionArn`;
}
