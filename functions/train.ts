/**
 * Lambda for the Train state, invoked with `lambda:invoke.waitForTaskToken`: launches the training job
 * and returns. The execution resumes when functions/training-callback.ts reports the job's end.
 */
import { z } from 'zod';
import { plainHandler } from '../src/aws/handler.js';
import { AWS_STEP_PORTS, awsTrainer, composeAws } from '../src/aws/runtime.js';
import { runStep } from '../src/steps/step.js';
import { launchTraining } from '../src/steps/train.js';

const Payload = z.object({ state: z.unknown(), taskToken: z.string().min(1) });

/** Composition root: the SageMaker trainer, besides the run and its audit. */
export const handler = plainHandler(
  async (rt, event) => {
    const { state, taskToken } = Payload.parse(event);
    return runStep(rt, 'Train', state, (s) => launchTraining(rt, s, taskToken), { phase: 'launched' });
  },
  composeAws('functions/train.ts', { ...AWS_STEP_PORTS, trainer: awsTrainer }),
);
