/** Lambda for the Gate state of state-machines/training-pipeline.asl.json. */

import { stepHandler } from '../src/aws/handler.js';
import { AWS_STEP_PORTS, awsSigner, composeAws } from '../src/aws/runtime.js';
import { gate } from '../src/steps/gate.js';

/** Composition root: the evidence (objects) and the signer's public key, which checks the processed data statement. */
export const handler = stepHandler(
  'Gate',
  gate,
  composeAws('functions/gate.ts', { ...AWS_STEP_PORTS, signer: awsSigner }),
);
