/** Lambda for the RecordFailure state (every Catch leads here): the run ends FAILED with its reason. */
import { AWS_STEP_PORTS, awsLineage, composeAws } from '../src/aws/runtime.js';
import { recordFailure } from '../src/steps/finish.js';
import { plainHandler } from '../src/steps/handler.js';

/** Composition root: the run, the audit log and the OpenLineage sink for the run's end. */
export const handler = plainHandler(
  recordFailure,
  composeAws('functions/record-failure.ts', { ...AWS_STEP_PORTS, lineage: awsLineage }),
);
