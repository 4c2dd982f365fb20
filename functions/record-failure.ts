/** Lambda for the RecordFailure state (every Catch leads here): the run ends FAILED with its reason. */

import { plainHandler } from '../src/aws/handler.js';
import { AWS_STEP_PORTS, awsLineage, awsSigner, composeAws } from '../src/aws/runtime.js';
import { recordFailure } from '../src/steps/finish.js';

/**
 * Composition root: the run, the audit log, the OpenLineage sink for the run's end, and the
 * attestation signer with the artifacts for the signed model report (a FAILED run has one too).
 */
export const handler = plainHandler(
  recordFailure,
  composeAws('functions/record-failure.ts', { ...AWS_STEP_PORTS, signer: awsSigner, lineage: awsLineage }),
);
