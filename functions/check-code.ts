/** Lambda for the CheckCode state of state-machines/training-pipeline.asl.json. */
import { stepHandler } from '../src/steps/handler.js';
import { checkCode } from '../src/steps/check-code.js';

export const handler = stepHandler('CheckCode', checkCode);
