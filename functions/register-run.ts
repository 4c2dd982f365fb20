/** Lambda for the RegisterRun state of state-machines/training-pipeline.asl.json. */
import { type ConsoleLanding, consoleStarter } from '../src/aws/console-start.js';
import { plainHandler } from '../src/aws/handler.js';
import { AWS_STEP_PORTS, awsDatasets, awsLineage, awsSigner, composeAws } from '../src/aws/runtime.js';
import type { Runtime } from '../src/runtime.js';
import { type ConsoleStarter, registerRun } from '../src/steps/register-run.js';

let starter: ConsoleStarter | undefined;

/**
 * Composition root: the run and its audit; for an operator start typed in the Step Functions
 * console, also what the start service uses (datasets to pin the version, the signer for a
 * retrain skip, lineage, the landing bucket).
 */
export const handler = plainHandler(
  (rt: Runtime & ConsoleLanding, event) => {
    starter ??= consoleStarter(rt, process.env);
    return registerRun(rt, event, starter ? { consoleStart: starter } : {});
  },
  composeAws(
    'functions/register-run.ts',
    { ...AWS_STEP_PORTS, datasets: awsDatasets, signer: awsSigner, lineage: awsLineage },
    (ctx) => ({ landing: { bucket: ctx.config.buckets.landing, s3: ctx.s3() } }),
  ),
);
