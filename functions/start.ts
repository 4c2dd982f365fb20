/**
 * Lambda for the start path: EventBridge S3 "Object Created" and schedule events, and operator
 * starts invoked directly. Input problems come back as a `rejected` outcome (and are in the audit
 * log); infrastructure failures throw, so EventBridge's retries deliver the event again.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import middy from '@middy/core';
import { createAwsStartService } from '../src/app/aws.js';
import { loadPipelinesForAws } from '../src/app/pipelines.js';
import type { StartOutcome, StartService } from '../src/app/start.js';
import { createAwsRuntime } from '../src/aws/runtime.js';

let service: Promise<StartService> | undefined;

async function build(env: Record<string, string | undefined>): Promise<StartService> {
  // The stack bundles the definitions at <task root>/pipelines and says so in the environment.
  const dir =
    env.VERITRAIL_PIPELINES_DIR ??
    join(env.LAMBDA_TASK_ROOT ?? join(dirname(fileURLToPath(import.meta.url)), '..'), 'pipelines');
  const [rt, pipelines] = await Promise.all([createAwsRuntime(env), loadPipelinesForAws(dir)]);
  return createAwsStartService(rt, pipelines);
}

export const handler = middy(async (event: unknown): Promise<StartOutcome> => {
  service ??= build(process.env).catch((e: unknown) => {
    service = undefined;
    throw e;
  });
  return (await service).handle(event);
});
