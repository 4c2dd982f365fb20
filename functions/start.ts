/**
 * Lambda for the start path: EventBridge S3 "Object Created" and schedule events, and operator
 * starts invoked directly. Input problems come back as a `rejected` outcome (and are in the audit
 * log); infrastructure failures throw, so EventBridge's retries deliver the event again.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPipelinesForAws } from '../src/app/pipelines.js';
import type { StartService } from '../src/app/start/service.js';
import { eventHandler } from '../src/aws/handler.js';
import {
  AWS_STEP_PORTS,
  awsDatasets,
  awsLineage,
  awsSigner,
  awsStepFunctions,
  composeAws,
} from '../src/aws/runtime.js';
import { type AwsStartRuntime, createAwsStartService } from '../src/aws/start.js';
import type { StartOutcome } from '../src/core/start.js';

let service: Promise<StartService> | undefined;

async function build(rt: AwsStartRuntime, env: Record<string, string | undefined>): Promise<StartService> {
  // The stack bundles the definitions at <task root>/pipelines and says so in the environment.
  const dir =
    env.VERITRAIL_PIPELINES_DIR ??
    join(env.LAMBDA_TASK_ROOT ?? join(dirname(fileURLToPath(import.meta.url)), '..'), 'pipelines');
  return createAwsStartService(rt, await loadPipelinesForAws(dir));
}

/**
 * Composition root: the run store, objects, datasets (the landing object's digest), the signer (a
 * skipped retrain is attested), the audit log, lineage, Step Functions and the landing bucket.
 */
export const handler = eventHandler(
  async (rt: AwsStartRuntime, event: unknown): Promise<StartOutcome> => {
    service ??= build(rt, process.env).catch((e: unknown) => {
      service = undefined;
      throw e;
    });
    return (await service).handle(event);
  },
  composeAws(
    'functions/start.ts',
    { ...AWS_STEP_PORTS, datasets: awsDatasets, signer: awsSigner, lineage: awsLineage },
    (ctx) => ({ stepFunctions: awsStepFunctions(ctx), config: ctx.config, s3: ctx.s3() }),
  ),
);
