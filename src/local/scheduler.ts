/**
 * The embedded scheduler: each pipeline's `schedule.cron` (five fields, UTC) on croner. A firing
 * becomes the very payload the AWS rule's input transformer builds from a Scheduled Event
 * (scheduleInputTransformer, applied with applyInputTransformer), so both modes start the same
 * way and the same firing always has the same idempotency key.
 */
import { randomUUID } from 'node:crypto';
import { Cron } from 'croner';
import type { PipelineDefinition } from '../core/pipeline.js';
import {
  applyInputTransformer,
  localCron,
  localScheduleRule,
  scheduleInputTransformer,
} from '../core/rules.js';

export interface SchedulerOptions {
  /** Receives each firing's schedule payload. Errors are the receiver's to report. */
  fire(payload: unknown): void;
  now?: () => Date;
}

/** The payload of one firing of a pipeline's schedule at `time`. */
export function schedulePayloadAt(def: PipelineDefinition, time: Date): unknown {
  const rule = localScheduleRule(def.name);
  // A Scheduled Event as EventBridge writes it (time without milliseconds), locally sourced.
  const event = {
    version: '0',
    id: randomUUID(),
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    time: `${time.toISOString().slice(0, 19)}Z`,
    resources: [rule],
    detail: {},
  };
  return applyInputTransformer(scheduleInputTransformer(def.name, def.schedule?.force ?? false), event, {
    arn: rule,
    name: rule,
  });
}

export class LocalScheduler {
  private readonly jobs: Cron[] = [];

  constructor(
    private readonly pipelines: readonly PipelineDefinition[],
    private readonly options: SchedulerOptions,
  ) {
    // Validate every schedule before any starts: one bad cron refuses them all (PIPELINE_INVALID).
    for (const def of pipelines) if (def.schedule) localCron(def.schedule.cron);
  }

  start(): void {
    for (const def of this.pipelines) {
      const schedule = def.schedule;
      if (!schedule) continue;
      const job = new Cron(
        schedule.cron.trim(),
        { timezone: 'UTC', mode: '5-part', sloppyRanges: true, protect: true },
        () => {
          this.options.fire(schedulePayloadAt(def, this.options.now?.() ?? new Date()));
        },
      );
      this.jobs.push(job);
    }
  }

  /** The next firing of each scheduled pipeline. */
  next(): { pipeline: string; at: Date }[] {
    const out: { pipeline: string; at: Date }[] = [];
    this.pipelines.forEach((def) => {
      if (!def.schedule) return;
      const [at] = localCron(def.schedule.cron).nextRuns(1, this.options.now?.() ?? new Date());
      if (at) out.push({ pipeline: def.name, at });
    });
    return out;
  }

  stop(): void {
    for (const j of this.jobs.splice(0)) j.stop();
  }
}
