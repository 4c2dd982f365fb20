/** Lambda for the Finish state: SUCCEEDED or REJECTED, then an audit checkpoint. */

import { plainHandler } from '../src/aws/handler.js';
import { AWS_STEP_PORTS, awsLineage, awsSigner, composeAws } from '../src/aws/runtime.js';
import { finish } from '../src/steps/finish.js';

/**
 * Composition root: the run, the audit log (checkpoint), the OpenLineage sink for the run's end, and
 * the attestation signer with the artifacts for the signed model report (src/report/produce.ts).
 */
export const handler = plainHandler(
  finish,
  composeAws('functions/finish.ts', { ...AWS_STEP_PORTS, signer: awsSigner, lineage: awsLineage }),
);
