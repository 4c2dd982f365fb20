/** Lambda for the CheckCode state of state-machines/training-pipeline.asl.json. */

import { checkCode } from '../src/steps/check-code.js';
import { stepHandler } from '../src/steps/handler.js';

export const handler = stepHandler('CheckCode', checkCode);
