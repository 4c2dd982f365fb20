import { isVeritrailError } from '../core/errors.js';
import { canonicalBytes } from '../core/jcs.js';
import type { ModelRegistration, ModelRegistry, ObjectStore } from '../ports.js';

/** The embedded model registry: one write-once JSON entry per run under `registry/<pipeline>/`. */
export class LocalModelRegistry implements ModelRegistry {
  constructor(private readonly objects: ObjectStore) {}

  async register(entry: ModelRegistration): Promise<{ ref: string }> {
    const key = `registry/${entry.pipeline}/${entry.runId}.json`;
    try {
      await this.objects.put('artifacts', key, canonicalBytes(entry), { ifAbsent: true });
    } catch (e) {
      // Registered already by an earlier attempt of this step: the entry is the same run's.
      if (!isVeritrailError(e, 'OBJECT_EXISTS')) throw e;
    }
    return { ref: `local:artifacts/${key}` };
  }
}
