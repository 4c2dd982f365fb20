import { loadPipeline } from '../cas.js';
import { VeritrailError } from '../core/errors.js';
import type { Runtime } from '../runtime.js';
import type { ExecState } from './state.js';
import type { StepOutcome } from './step.js';

/**
 * RegisterRun: the run item exists (the start path created it PENDING; a run started straight
 * from the console is created here) and becomes RUNNING through a conditional write.
 */
export async function registerRun(
  rt: Runtime,
  state: ExecState,
): Promise<StepOutcome<{ startedAt: string }>> {
  // The definition must be the one the trigger pinned: loadPipeline checks the bytes against the digest.
  const def = await loadPipeline(rt.objects, state.pipeline.digest);
  if (def.name !== state.pipeline.name) {
    throw new VeritrailError(
      'PIPELINE_INVALID',
      `pipeline digest names "${def.name}", not "${state.pipeline.name}"`,
    );
  }
  let run = await rt.runs.get(state.runId);
  if (!run) {
    run = await rt.runs.create({
      runId: state.runId,
      pipeline: state.pipeline.name,
      pipelineDigest: state.pipeline.digest,
      trigger: state.trigger.type,
      idempotencyKey: state.trigger.idempotencyKey,
      dataset: {
        uri: state.dataset.uri,
        ...(state.dataset.versionId ? { versionId: state.dataset.versionId } : {}),
      },
      createdAt: rt.now().toISOString(),
    });
  }
  // A retried RegisterRun finds the run RUNNING already: that is fine, anything else is refused.
  if (run.status !== 'RUNNING') run = await rt.runs.transition(state.runId, 'RUNNING');
  return {
    output: { startedAt: run.updatedAt },
    digests: { pipeline: state.pipeline.digest },
    detail: { dataset: state.dataset.uri, trigger: state.trigger.type },
  };
}
