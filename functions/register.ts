/** Lambda for the Register state of state-machines/training-pipeline.asl.json. */
import { stepHandler } from '../src/steps/handler.js';
import { register } from '../src/steps/register.js';

export const handler = stepHandler('Register', register);
