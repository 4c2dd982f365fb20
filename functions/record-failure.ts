/** Lambda for the RecordFailure state (every Catch leads here): the run ends FAILED with its reason. */
import { recordFailure } from '../src/steps/finish.js';
import { plainHandler } from '../src/steps/handler.js';

export const handler = plainHandler(recordFailure);
