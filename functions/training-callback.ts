/**
 * Lambda for the EventBridge rule on "SageMaker Training Job State Change" (stacks/Triggers.ts): the
 * second half of the Train state. The work is src/aws/training-callback.ts.
 */

import { eventHandler } from '../src/aws/handler.js';
import { AWS_STEP_PORTS, awsStepFunctions, composeAws } from '../src/aws/runtime.js';
import {
  type CallbackOutcome,
  type CallbackRuntime,
  handleTrainingJobEvent,
} from '../src/aws/training-callback.js';
import { VeritrailError } from '../src/core/errors.js';

/** The callback needs the task-token API and the artifacts bucket, which only the AWS side has. */
function callbackRuntime(rt: unknown): CallbackRuntime {
  if (typeof rt !== 'object' || rt === null || !('stepFunctions' in rt) || !('config' in rt)) {
    throw new VeritrailError(
      'USAGE',
      'the training callback runs on AWS only: it needs the AWS runtime (Step Functions)',
    );
  }
  return rt as CallbackRuntime;
}

/** Composition root: the run, the model and output objects, the audit log and Step Functions. */
export const handler = eventHandler(
  async (rt, event: unknown): Promise<CallbackOutcome> => handleTrainingJobEvent(callbackRuntime(rt), event),
  composeAws('functions/training-callback.ts', { ...AWS_STEP_PORTS }, (ctx) => ({
    stepFunctions: awsStepFunctions(ctx),
    config: ctx.config,
  })),
);

export { type CallbackRuntime, handleTrainingJobEvent, runIdOfJob } from '../src/aws/training-callback.js';
