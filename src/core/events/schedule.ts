import { z } from 'zod';
import { envelopeShape, eventTime, parseWith, pipelineName } from './common.js';

/**
 * Scheduled retraining. Two shapes arrive:
 *  - the EventBridge "Scheduled Event" itself (EventBridge User Guide, "Creating a rule that runs on
 *    a schedule"; Lambda Developer Guide example), whose `resources[0]` is the rule ARN; and
 *  - our own payload, which the rule's input transformer builds from that event
 *    (see `scheduleInputTransformer` in src/core/rules.ts) and the local scheduler builds directly.
 * A target with a constant custom input would lose the event's `time` and rule, and with them the
 * idempotency key, so the payload carries both.
 */

/** `arn:<partition>:events:<region>:<account>:rule/[<bus>/]<name>`. */
const ruleArn = z
  .string()
  .regex(
    /^arn:aws[a-z-]*:events:[a-z0-9-]+:\d{12}:rule\/[A-Za-z0-9._\-/]+$/,
    'must be an EventBridge rule ARN (arn:aws:events:<region>:<account>:rule/<name>)',
  );

const ScheduledEventSchema = z.looseObject({
  ...envelopeShape,
  'detail-type': z.literal('Scheduled Event'),
  source: z.literal('aws.events'),
  resources: z.array(ruleArn).min(1, 'must name the rule ARN that fired'),
  detail: z.record(z.string(), z.unknown()),
});

export type ScheduledEvent = z.infer<typeof ScheduledEventSchema>;

const SchedulePayloadSchema = z.strictObject({
  pipeline: pipelineName,
  /** Retrain even when data, code and definition are unchanged since the last successful run. */
  force: z.boolean().default(false),
  /** The rule that fired: its ARN on AWS, `local-schedule/<pipeline>` in the embedded runtime. */
  rule: z.string().min(1, 'must not be empty').max(1600),
  /** The time the schedule fired for (the Scheduled Event's `time`). */
  time: eventTime,
  /** The Scheduled Event's `id`, for the audit record only (not part of the identity). */
  eventId: z.string().min(1).optional(),
});

export type SchedulePayload = z.output<typeof SchedulePayloadSchema>;

export function parseScheduledEvent(value: unknown): ScheduledEvent {
  return parseWith(ScheduledEventSchema, value, 'EventBridge "Scheduled Event"');
}

export function parseSchedulePayload(value: unknown): SchedulePayload {
  return parseWith(
    SchedulePayloadSchema,
    value,
    'schedule payload',
    'Nothing was started; check the rule target input (scheduleInputTransformer in src/core/rules.ts).',
  );
}

/** The rule ARN of a Scheduled Event (its first resource). */
export function ruleOf(event: ScheduledEvent): string {
  const [rule] = event.resources;
  // The schema requires at least one resource; this only satisfies the type checker.
  if (rule === undefined) throw new TypeError('Scheduled Event without resources');
  return rule;
}
