/**
 * The end of a run as lineage: the Finish step (and the local control plane, for a run that ends
 * without reaching Finish) emit it to the runtime's LineageSink (src/ports.ts): files under the state
 * dir locally (src/local/lineage.ts), the EventBridge bus on AWS (src/aws/lineage.ts).
 */
import { type RunEvent, runEndEvent } from '../core/lineage.js';
import type { LineageSink, RunRecord } from '../ports.js';

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
