/** Lambda for the HashDataset state of state-machines/training-pipeline.asl.json. */
import { AWS_STEP_PORTS, awsDatasets, composeAws } from '../src/aws/runtime.js';
import { stepHandler } from '../src/steps/handler.js';
import { hashDataset } from '../src/steps/hash-dataset.js';

/** Composition root: the landing objects (S3, pinned by VersionId) besides the run and its audit. */
export const handler = stepHandler(
  'HashDataset',
  hashDataset,
  composeAws('functions/hash-dataset.ts', { ...AWS_STEP_PORTS, datasets: awsDatasets }),
);
