/**
 * Lineage on AWS: OpenLineage RunEvents on the EventBridge bus (detail type `OpenLineage RunEvent`),
 * for any consumer such as Marquez. The embedded runtime writes them to files (src/local/lineage.ts).
 */
import type { RunEvent } from '../core/lineage.js';
import type { LineageSink } from '../ports.js';
import { DetailType, type EventPublisher } from './events.js';

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
