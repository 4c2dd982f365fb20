/** Lambda for the Register state of state-machines/training-pipeline.asl.json. */

import { stepHandler } from '../src/aws/handler.js';
import { AWS_STEP_PORTS, awsRegistry, composeAws } from '../src/aws/runtime.js';
import { register } from '../src/steps/register.js';

/** Composition root: the SageMaker model registry. */
export const handler = stepHandler(
  'Register',
  register,
  composeAws('functions/register.ts', { ...AWS_STEP_PORTS, registry: awsRegistry }),
);
