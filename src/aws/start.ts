/**
 * The start service on AWS: runs recorded in DynamoDB, executions started in Step Functions (an
 * existing execution name means "already started"), the newest landing object found by listing
 * object versions, lineage on EventBridge.
 */
import { ListObjectVersionsCommand, type S3Client } from '@aws-sdk/client-s3';
import { type StartPipeline, StartService, startDepsOf } from '../app/start/service.js';
import { landingPrefixOf, type PipelineDefinition } from '../core/pipeline.js';
import type { LandingIndex, PinnedDataset } from '../ports.js';
import type { Runtime } from '../runtime.js';
import { awsCall } from './errors.js';
import type { AwsConfig } from './runtime.js';
import type { StepFunctions } from './sfn.js';

/** The newest current object version under a pipeline's landing prefix, pinned by VersionId. */
export class S3LandingIndex implements LandingIndex {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
  ) {}

  async latest(def: PipelineDefinition): Promise<PinnedDataset | undefined> {
    const prefix = landingPrefixOf(def);
    let best: { key: string; versionId?: string; at: number } | undefined;
    let keyMarker: string | undefined;
    let versionIdMarker: string | undefined;
    do {
      const page = await awsCall(
        { action: 's3:ListBucketVersions', resource: `s3://${this.bucket}/${prefix}` },
        () =>
          this.s3.send(
            new ListObjectVersionsCommand({
              Bucket: this.bucket,
              Prefix: prefix,
              ...(keyMarker !== undefined ? { KeyMarker: keyMarker } : {}),
              ...(versionIdMarker !== undefined ? { VersionIdMarker: versionIdMarker } : {}),
            }),
          ),
      );
      for (const v of page.Versions ?? []) {
        if (!v.IsLatest || v.Key === undefined || v.Key.endsWith('/')) continue;
        const at = v.LastModified?.getTime() ?? 0;
        // Newest wins; equal times are ordered by key so the choice is deterministic.
        if (best === undefined || at > best.at || (at === best.at && v.Key > best.key)) {
          best = {
            key: v.Key,
            at,
            ...(v.VersionId && v.VersionId !== 'null' ? { versionId: v.VersionId } : {}),
          };
        }
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      versionIdMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
    } while (keyMarker !== undefined);
    if (best === undefined) return undefined;
    return {
      uri: `s3://${this.bucket}/${best.key}`,
      ...(best.versionId !== undefined ? { versionId: best.versionId } : {}),
    };
  }
}

/** What the start service needs on AWS: the shared ports plus Step Functions, the config and S3. */
export interface AwsStartRuntime extends Runtime {
  stepFunctions: Pick<StepFunctions, 'startExecution'>;
  config: Pick<AwsConfig, 'buckets' | 'stateMachineArn'>;
  s3: S3Client;
}

/**
 * What a scheduled retrain hashes inside the start function (60 s, 512 MB: about 10 s of S3 reads)
 * to tell a new object version with the same bytes from new data; a larger new version starts the
 * run, and its Distributed Map HashDataset records the digest.
 */
const START_RETRAIN_HASH_BUDGET_BYTES = 512 * 1024 * 1024;

/** The start service over the AWS ports (functions/start.ts composes them). */
export function createAwsStartService(
  rt: AwsStartRuntime,
  pipelines: readonly StartPipeline[],
): StartService {
  return new StartService({
    ...startDepsOf(rt),
    pipelines,
    landingBucket: rt.config.buckets.landing,
    landing: new S3LandingIndex(rt.s3, rt.config.buckets.landing),
    retrainHashBudgetBytes: START_RETRAIN_HASH_BUDGET_BYTES,
    launch: async (input, name) => {
      const started = await rt.stepFunctions.startExecution(rt.config.stateMachineArn, name, input);
      return { alreadyStarted: started.alreadyStarted };
    },
    warn: (m) => console.warn(m),
  });
}
