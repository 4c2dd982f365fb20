/** Lambda for the Preprocess state of state-machines/training-pipeline.asl.json. */
import { stepHandler } from '../src/steps/handler.js';
import { preprocess } from '../src/steps/preprocess.js';

export const handler = stepHandler('Preprocess', preprocess);
