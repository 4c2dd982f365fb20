/** Lambda for the Preprocess state of state-machines/training-pipeline.asl.json. */

import { stepHandler } from '../src/aws/handler.js';
import { AWS_STEP_PORTS, awsDatasets, awsProcessor, awsSigner, composeAws } from '../src/aws/runtime.js';
import { preprocess } from '../src/steps/preprocess.js';

/**
 * Composition root: the raw dataset, the KMS signer for the transform statement, and (when the
 * deployment enables them) SageMaker Processing jobs for datasets above the threshold.
 */
export const handler = stepHandler(
  'Preprocess',
  preprocess,
  composeAws('functions/preprocess.ts', {
    ...AWS_STEP_PORTS,
    datasets: awsDatasets,
    signer: awsSigner,
    processor: awsProcessor,
  }),
);
