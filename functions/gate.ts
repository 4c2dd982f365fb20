/** Lambda for the Gate state of state-machines/training-pipeline.asl.json. */

import { gate } from '../src/steps/gate.js';
import { stepHandler } from '../src/steps/handler.js';

export const handler = stepHandler('Gate', gate);
