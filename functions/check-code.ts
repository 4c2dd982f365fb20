/** Lambda for the CheckCode state of state-machines/training-pipeline.asl.json. */

import { stepHandler } from '../src/aws/handler.js';
import { AWS_STEP_PORTS, awsDatasets, composeAws } from '../src/aws/runtime.js';
import { checkCode } from '../src/steps/check-code.js';

/** Composition root: the training code's objects besides the run and its audit. */
export const handler = stepHandler(
  'CheckCode',
  checkCode,
  composeAws('functions/check-code.ts', { ...AWS_STEP_PORTS, datasets: awsDatasets }),
);
