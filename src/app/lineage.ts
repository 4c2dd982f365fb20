/**
 * Where OpenLineage RunEvents go: files under the state dir locally (src/local/lineage.ts), the
 * EventBridge bus on AWS (detail type `OpenLineage RunEvent`), for any consumer such as Marquez.
 */
import type { EventPublisher } from '../aws/events.js';
import { DetailType } from '../aws/events.js';
import { type RunEvent, runEndEvent } from '../core/lineage.js';
import type { RunRecord } from '../ports.js';

export interface LineageSink {
  /** Idempotent per (run, eventType): emitting the same event twice is harmless. */
  emit(event: RunEvent): Promise<void>;
}

/** Lineage on the EventBridge bus: one `OpenLineage RunEvent` per event, `detail` = the RunEvent. */
export class EventBridgeLineageSink implements LineageSink {
  constructor(private readonly events: Pick<EventPublisher, 'publish'>) {}

  async emit(event: RunEvent): Promise<void> {
    await this.events.publish([
      {
        detailType: DetailType.OPENLINEAGE_RUN_EVENT,
        detail: event as unknown as Record<string, unknown>,
        time: new Date(event.eventTime),
      },
    ]);
  }
}

/**
 * Emits the COMPLETE (SUCCEEDED, REJECTED) or FAIL (FAILED) event of an ended run from its record.
 * Nothing is emitted while the run has not ended. Returns the event emitted, if any.
 */
export async function emitRunEnd(
  sink: LineageSink,
  run: RunRecord | undefined,
  options: { namespace: string; now: Date },
): Promise<RunEvent | undefined> {
  if (run === undefined || run.status === 'PENDING' || run.status === 'RUNNING') return undefined;
  const event = runEndEvent({
    run: {
      runId: run.runId,
      pipeline: run.pipeline,
      pipelineDigest: run.pipelineDigest,
      status: run.status,
      trigger: run.trigger,
      idempotencyKey: run.idempotencyKey,
      dataset: {
        uri: run.dataset.uri,
        ...(run.dataset.versionId !== undefined ? { versionId: run.dataset.versionId } : {}),
      },
      facts: run.facts,
      ...(run.error !== undefined ? { error: run.error } : {}),
    },
    namespace: options.namespace,
    eventTime: options.now,
  });
  await sink.emit(event);
  return event;
}
