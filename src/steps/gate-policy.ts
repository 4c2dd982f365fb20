import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { VeritrailError } from '../core/errors.js';
import { DEFAULT_POLICY_TEXT } from '../core/gate/default-policy.js';
import type { PipelineDefinition } from '../core/pipeline.js';

/**
 * The gate policy a run of `def` uses: the file gate.policy names (relative to the definition's
 * folder `base`), or the shipped default. Its bytes are part of the retrain identity.
 */
export async function readGatePolicy(
  def: PipelineDefinition,
  base: string | undefined,
): Promise<{ text: string; name: string }> {
  if (!def.gate.policy) return { text: DEFAULT_POLICY_TEXT, name: 'default' };
  if (!base) {
    throw new VeritrailError(
      'PIPELINE_INVALID',
      `gate.policy ${def.gate.policy} cannot be read here: custom policy files are not yet shipped with the deployed functions; remove gate.policy to use the default policy`,
    );
  }
  const path = fileURLToPath(new URL(def.gate.policy, base));
  return { text: await readFile(path, 'utf8'), name: def.gate.policy };
}
