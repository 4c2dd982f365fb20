import { z } from 'zod';
import { envelopeShape, parseWith } from './common.js';

/**
 * "SageMaker Training Job State Change" (SageMaker Developer Guide, "Automating Amazon SageMaker
 * with Amazon EventBridge"). The detail mirrors DescribeTrainingJob; only the fields the Train step
 * needs are checked, the rest are kept. `FailureReason` is present when the status is Failed;
 * `ModelArtifacts` when the job produced a model (the documented example omits it).
 */

/** SageMaker TrainingJobName: 1-63 characters, alphanumerics and hyphens (CreateTrainingJob). */
const trainingJobName = z
  .string()
  .regex(
    /^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/,
    'must be a SageMaker training job name (1-63 letters, digits, -)',
  );

const TrainingJobStatuses = ['InProgress', 'Completed', 'Failed', 'Stopping', 'Stopped'] as const;
export const TerminalTrainingJobStatuses = ['Completed', 'Failed', 'Stopped'] as const;

const TrainingJobStateChangeEventSchema = z.looseObject({
  ...envelopeShape,
  'detail-type': z.literal('SageMaker Training Job State Change'),
  source: z.literal('aws.sagemaker'),
  detail: z.looseObject({
    TrainingJobName: trainingJobName,
    TrainingJobArn: z.string().optional(),
    TrainingJobStatus: z.enum(TrainingJobStatuses),
    SecondaryStatus: z.string().optional(),
    FailureReason: z.string().optional(),
    ModelArtifacts: z
      .looseObject({ S3ModelArtifacts: z.string().regex(/^s3:\/\/[^/]+\/.+$/, 'must be an s3:// URI') })
      .optional(),
    /** The documented event shows a map; DescribeTrainingJob-style lists are accepted too. */
    Tags: z
      .union([
        z.record(z.string(), z.string()),
        z.array(z.looseObject({ Key: z.string(), Value: z.string() })),
      ])
      .optional(),
  }),
});

export type TrainingJobStateChangeEvent = z.infer<typeof TrainingJobStateChangeEventSchema>;

export function parseTrainingJobStateChangeEvent(value: unknown): TrainingJobStateChangeEvent {
  return parseWith(TrainingJobStateChangeEventSchema, value, '"SageMaker Training Job State Change" event');
}

/** The job's tags as a plain map, whichever of the two shapes arrived. */
export function tagsOf(event: TrainingJobStateChangeEvent): Record<string, string> {
  const tags = event.detail.Tags;
  if (tags === undefined) return {};
  if (Array.isArray(tags)) return Object.fromEntries(tags.map((t) => [t.Key, t.Value]));
  return { ...tags };
}

/** The facts the Train step acts on, or `undefined` while the job is still running. */
export interface TrainingJobOutcome {
  jobName: string;
  status: (typeof TerminalTrainingJobStatuses)[number];
  failureReason?: string;
  /** `s3://…/model.tar.gz`, when SageMaker reported one. */
  modelArtifactsUri?: string;
}

export function trainingJobOutcomeOf(event: TrainingJobStateChangeEvent): TrainingJobOutcome | undefined {
  const d = event.detail;
  if (
    d.TrainingJobStatus !== 'Completed' &&
    d.TrainingJobStatus !== 'Failed' &&
    d.TrainingJobStatus !== 'Stopped'
  ) {
    return undefined;
  }
  return {
    jobName: d.TrainingJobName,
    status: d.TrainingJobStatus,
    ...(d.FailureReason !== undefined ? { failureReason: d.FailureReason } : {}),
    ...(d.ModelArtifacts !== undefined ? { modelArtifactsUri: d.ModelArtifacts.S3ModelArtifacts } : {}),
  };
}
