import { VeritrailError } from '../errors.js';
import { type OperatorStart, parseOperatorStart } from './operator.js';
import { parseS3ObjectCreatedEvent, type S3ObjectCreatedEvent } from './s3.js';
import type { TrainingJobStateChangeEvent } from './sagemaker.js';
import { parseTrainingJobStateChangeEvent } from './sagemaker.js';
import {
  parseScheduledEvent,
  parseSchedulePayload,
  type ScheduledEvent,
  type SchedulePayload,
} from './schedule.js';

export * from './common.js';
export * from './key.js';
export * from './operator.js';
export * from './pattern.js';
export * from './s3.js';
export * from './sagemaker.js';
export * from './schedule.js';

/** Any input the control plane accepts, validated and tagged with what it is. */
export type ControlPlaneInput =
  | { kind: 's3-object-created'; event: S3ObjectCreatedEvent }
  | { kind: 'scheduled-event'; event: ScheduledEvent }
  | { kind: 'schedule-payload'; payload: SchedulePayload }
  | { kind: 'operator-start'; input: OperatorStart }
  | { kind: 'training-state-change'; event: TrainingJobStateChangeEvent };

function field(value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)[name]
    : undefined;
}

/**
 * Recognises an input by its `source` and `detail-type` (EventBridge events) or by its shape (our
 * own payloads), then validates it with the matching schema. Anything else is EVENT_INVALID with
 * a message listing what is accepted; nothing here throws anything but a VeritrailError.
 */
export function parseControlPlaneInput(value: unknown): ControlPlaneInput {
  const source = field(value, 'source');
  const detailType = field(value, 'detail-type');
  if (source === 'aws.s3' && detailType === 'Object Created') {
    return { kind: 's3-object-created', event: parseS3ObjectCreatedEvent(value) };
  }
  if (source === 'aws.events' && detailType === 'Scheduled Event') {
    return { kind: 'scheduled-event', event: parseScheduledEvent(value) };
  }
  if (source === 'aws.sagemaker' && detailType === 'SageMaker Training Job State Change') {
    return { kind: 'training-state-change', event: parseTrainingJobStateChangeEvent(value) };
  }
  if (source === undefined && detailType === undefined) {
    if (field(value, 'dataset') !== undefined)
      return { kind: 'operator-start', input: parseOperatorStart(value) };
    if (field(value, 'rule') !== undefined)
      return { kind: 'schedule-payload', payload: parseSchedulePayload(value) };
  }
  const what =
    source === undefined && detailType === undefined
      ? 'an input with neither source/detail-type nor dataset/rule'
      : `an event with source ${JSON.stringify(source)} and detail-type ${JSON.stringify(detailType)}`;
  throw new VeritrailError(
    'EVENT_INVALID',
    `${what} is not accepted here. Accepted: S3 "Object Created", EventBridge "Scheduled Event", ` +
      '"SageMaker Training Job State Change", an operator start {pipeline, dataset} or a schedule payload {pipeline, rule, time}.',
    { details: { source, detailType } },
  );
}
