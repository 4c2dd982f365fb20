/** Lambda for the Gate state of state-machines/training-pipeline.asl.json. */
import { stepHandler } from '../src/steps/handler.js';
import { gate } from '../src/steps/gate.js';

export const handler = stepHandler('Gate', gate);
