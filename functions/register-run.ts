/** Lambda for the RegisterRun state of state-machines/training-pipeline.asl.json. */
import { stepHandler } from '../src/steps/handler.js';
import { registerRun } from '../src/steps/register-run.js';

export const handler = stepHandler('RegisterRun', registerRun);
