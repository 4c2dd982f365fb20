/** Lambda for the HashBatch task of each HashBatches child execution (state-machines/training-pipeline.asl.json). */

import { plainHandler } from '../src/aws/handler.js';
import { awsDatasets, awsObjects, composeAws } from '../src/aws/runtime.js';
import { hashListedBatch } from '../src/steps/hash-batch.js';

/** Composition root: the landing objects, read by their pinned VersionIds, and the artifacts bucket. */
export const handler = plainHandler(
  hashListedBatch,
  composeAws('functions/hash-batch.ts', { objects: awsObjects, datasets: awsDatasets }),
);
