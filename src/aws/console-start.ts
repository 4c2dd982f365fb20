/**
 * An operator start typed into the Step Functions console reaches RegisterRun, not the start
 * function. This builds the same start service the start function runs (the deployed pipeline
 * definitions bundled with the function, the landing bucket, lineage), with RegisterRun's launch:
 * the execution already running claims the run instead of starting another one.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { S3Client } from '@aws-sdk/client-s3';
import { loadPipelinesForAws } from '../app/pipelines.js';
import { type StartPipeline, StartService, startDepsOf } from '../app/start/service.js';
import type { Runtime } from '../runtime.js';
import type { ConsoleStarter } from '../steps/register-run.js';
import { S3LandingIndex } from './start.js';

/** What a console start needs beyond the shared ports: the landing bucket (AWS only). */
export interface ConsoleLanding {
  landing?: { bucket: string; s3: S3Client };
}

/** Where the deployed definitions are: VERITRAIL_PIPELINES_DIR, else `pipelines/` at the task root. */
function pipelinesDirOf(env: Record<string, string | undefined>): string {
  return (
    env.VERITRAIL_PIPELINES_DIR ??
    join(env.LAMBDA_TASK_ROOT ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..'), 'pipelines')
  );
}

/**
 * The console starter of a runtime with a landing bucket; `undefined` without one (the embedded
 * runtime has no console: `veritrail start` goes through its control plane).
 */
export function consoleStarter(
  rt: Runtime & ConsoleLanding,
  env: Record<string, string | undefined>,
): ConsoleStarter | undefined {
  const landing = rt.landing;
  if (landing === undefined) return undefined;
  let pipelines: Promise<StartPipeline[]> | undefined;
  return async (launch) => {
    // Read once per cold start, and only when an operator start arrives.
    pipelines ??= loadPipelinesForAws(pipelinesDirOf(env)).catch((e: unknown) => {
      pipelines = undefined;
      throw e;
    });
    return new StartService({
      ...startDepsOf(rt),
      pipelines: await pipelines,
      landingBucket: landing.bucket,
      landing: new S3LandingIndex(landing.s3, landing.bucket),
      launch,
      warn: (m) => console.warn(m),
    });
  };
}
