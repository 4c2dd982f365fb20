/** Lambda for the Evaluate state of state-machines/training-pipeline.asl.json. */

import { evaluate } from '../src/steps/evaluate.js';
import { stepHandler } from '../src/steps/handler.js';

export const handler = stepHandler('Evaluate', evaluate);
