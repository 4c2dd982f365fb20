/** Lambda for the HashDataset state of state-machines/training-pipeline.asl.json: the fold of HashBatches. */

import { stepHandler } from '../src/aws/handler.js';
import { AWS_STEP_PORTS, composeAws } from '../src/aws/runtime.js';
import { hashDataset } from '../src/steps/hash-dataset.js';

/**
 * Composition root: the artifacts (the pinned listing, the hashed batches, the manifest) besides the
 * run and its audit. It reads no landing object: the HashBatch children did.
 */
export const handler = stepHandler(
  'HashDataset',
  hashDataset,
  composeAws('functions/hash-dataset.ts', AWS_STEP_PORTS),
);
