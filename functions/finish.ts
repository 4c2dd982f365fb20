/** Lambda for the Finish state: SUCCEEDED or REJECTED, then an audit checkpoint. */
import { finish } from '../src/steps/finish.js';
import { plainHandler } from '../src/steps/handler.js';

export const handler = plainHandler(finish);
