/** Lambda for the ListDataset state of state-machines/training-pipeline.asl.json (HashDataset's listing). */

import { plainHandler } from '../src/aws/handler.js';
import { awsDatasets, awsObjects, composeAws } from '../src/aws/runtime.js';
import { listDataset } from '../src/steps/list-dataset.js';

/** Composition root: the landing objects (listed with their VersionIds) and the artifacts bucket. */
export const handler = plainHandler(
  listDataset,
  composeAws('functions/list-dataset.ts', { objects: awsObjects, datasets: awsDatasets }),
);
