/** Lambda for the HashDataset state of state-machines/training-pipeline.asl.json. */
import { stepHandler } from '../src/steps/handler.js';
import { hashDataset } from '../src/steps/hash-dataset.js';

export const handler = stepHandler('HashDataset', hashDataset);
