/** Lambda for the Sign state of state-machines/training-pipeline.asl.json. */
import { stepHandler } from '../src/steps/handler.js';
import { sign } from '../src/steps/sign.js';

export const handler = stepHandler('Sign', sign);
