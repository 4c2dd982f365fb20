import type { z } from 'zod';
import { readObject } from '../cas.js';
import { VeritrailError } from '../core/errors.js';
import type { ObjectStore } from '../ports.js';

/**
 * A processing job's result.json (Preprocess's and Evaluate's jobs): read, parsed with its schema
 * and bound to this run, or PROCESSING_FAILED. `what` names the kind of result in the message.
 */
export async function readJobResult<T extends z.ZodType<{ runId: string }>>(
  objects: ObjectStore,
  key: string,
  schema: T,
  runId: string,
  what: string,
): Promise<z.infer<T>> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(await readObject(objects, 'artifacts', key)));
  } catch (e) {
    throw new VeritrailError(
      'PROCESSING_FAILED',
      `the processing job's ${key} is missing or not JSON; start a new run`,
      { cause: e },
    );
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success || parsed.data.runId !== runId) {
    throw new VeritrailError(
      'PROCESSING_FAILED',
      `the processing job's ${key} is not ${what} for run ${runId}; start a new run`,
    );
  }
  return parsed.data;
}
