/** Lambda for the Evaluate state of state-machines/training-pipeline.asl.json. */
import { stepHandler } from '../src/steps/handler.js';
import { evaluate } from '../src/steps/evaluate.js';

export const handler = stepHandler('Evaluate', evaluate);
