/** Lambda for the Evaluate state of state-machines/training-pipeline.asl.json. */
import { AWS_STEP_PORTS, composeAws } from '../src/aws/runtime.js';
import { evaluate } from '../src/steps/evaluate.js';
import { stepHandler } from '../src/steps/handler.js';

/** Composition root: the model and the held-out split (objects), the run and its audit. */
export const handler = stepHandler(
  'Evaluate',
  evaluate,
  composeAws('functions/evaluate.ts', { ...AWS_STEP_PORTS }),
);
