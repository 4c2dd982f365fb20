/**
 * Lambda for the EventBridge rule on "SageMaker Training Job State Change" (stacks/Triggers.ts): the
 * second half of the Train state. The work is src/app/training-callback.ts.
 */
import middy from '@middy/core';
import {
  type CallbackOutcome,
  type CallbackRuntime,
  handleTrainingJobEvent,
} from '../src/app/training-callback.js';
import { VeritrailError } from '../src/core/errors.js';
import { getRuntime } from '../src/runtime.js';

async function callbackRuntime(): Promise<CallbackRuntime> {
  const rt = await getRuntime();
  if (!('stepFunctions' in rt) || !('config' in rt)) {
    throw new VeritrailError(
      'USAGE',
      'the training callback runs on AWS only: it needs the AWS runtime (Step Functions)',
    );
  }
  return rt as CallbackRuntime;
}

export const handler = middy(
  async (event: unknown): Promise<CallbackOutcome> => handleTrainingJobEvent(await callbackRuntime(), event),
);

export { type CallbackRuntime, handleTrainingJobEvent, runIdOfJob } from '../src/app/training-callback.js';
