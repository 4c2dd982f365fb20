import { loadPipeline } from '../cas.js';
import {
  type ExecState,
  GateResultSchema,
  HashResultSchema,
  PreprocessResultSchema,
  resultOf,
  SignResultSchema,
  TrainResultSchema,
} from '../core/exec-state.js';
import type { Runtime } from '../runtime.js';
import type { StepOutcome } from './step.js';

/** Register: a model registry entry whose approval status is the gate's decision. */
export async function register(
  rt: Runtime,
  state: ExecState,
): Promise<StepOutcome<{ ref: string; approval: string }>> {
  const def = await loadPipeline(rt.objects, state.pipeline.digest);
  const train = resultOf(state, 'train', TrainResultSchema);
  const decision = resultOf(state, 'gate', GateResultSchema);
  const signed = resultOf(state, 'sign', SignResultSchema);
  const approval = decision.decision === 'allow' ? 'Approved' : 'Rejected';
  const { ref } = await rt.registry.register({
    pipeline: def.name,
    runId: state.runId,
    modelDigest: train.model.digest,
    modelKey: train.model.key,
    // The registry names the container that serves the model, not the one that trained it.
    ...(def.trainer.aws?.inferenceImage ? { image: def.trainer.aws.inferenceImage } : {}),
    approval,
    metadata: {
      rawDigest: resultOf(state, 'hash', HashResultSchema).digest,
      processedDigest: resultOf(state, 'preprocess', PreprocessResultSchema).digest,
      modelDigest: train.model.digest,
      ...Object.fromEntries(Object.entries(signed.bundles).map(([k, v]) => [`bundle.${k}`, v])),
    },
  });
  return {
    output: { ref, approval },
    digests: { model: train.model.digest },
    facts: { registry: { ref, approval } },
    detail: { ref, approval },
  };
}
