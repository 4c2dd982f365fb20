/** Lambda for the Evaluate state of state-machines/training-pipeline.asl.json. */

import { stepHandler } from '../src/aws/handler.js';
import { AWS_STEP_PORTS, awsProcessor, awsTrainer, composeAws } from '../src/aws/runtime.js';
import { evaluate } from '../src/steps/evaluate.js';

/**
 * Composition root: the model and the held-out split (objects), the run and its audit, the
 * trainer's inference contract (a SageMaker Batch Transform job of the training image) and (when the
 * deployment enables them) SageMaker Processing jobs for the data work above the threshold.
 */
export const handler = stepHandler(
  'Evaluate',
  evaluate,
  composeAws('functions/evaluate.ts', { ...AWS_STEP_PORTS, trainer: awsTrainer, processor: awsProcessor }),
);
