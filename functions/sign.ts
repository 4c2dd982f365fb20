/** Lambda for the Sign state of state-machines/training-pipeline.asl.json. */

import { stepHandler } from '../src/aws/handler.js';
import { AWS_STEP_PORTS, awsSigner, composeAws } from '../src/aws/runtime.js';
import { sign } from '../src/steps/sign.js';

/** Composition root: the KMS signer for the attestations. */
export const handler = stepHandler(
  'Sign',
  sign,
  composeAws('functions/sign.ts', { ...AWS_STEP_PORTS, signer: awsSigner }),
);
