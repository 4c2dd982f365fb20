/** Lambda for the Finish state: SUCCEEDED or REJECTED, then an audit checkpoint. */
import { AWS_STEP_PORTS, awsLineage, composeAws } from '../src/aws/runtime.js';
import { finish } from '../src/steps/finish.js';
import { plainHandler } from '../src/steps/handler.js';

/** Composition root: the run, the audit log (checkpoint) and the OpenLineage sink for the run's end. */
export const handler = plainHandler(
  finish,
  composeAws('functions/finish.ts', { ...AWS_STEP_PORTS, lineage: awsLineage }),
);
