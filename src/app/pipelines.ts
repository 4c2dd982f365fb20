/**
 * Loading the pipeline definitions a control plane serves: every `*.json` file of a folder (the
 * Lambda bundle's `pipelines/`, or `veritrail serve --pipelines <dir>`), each validated.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { VeritrailError } from '../core/errors.js';
import { canonicalDigest } from '../core/jcs.js';
import { parsePipelineDefinition } from '../core/pipeline.js';
import type { StartPipeline } from './start/service.js';

/**
 * Reads the definitions in `dir` without a `base`: the AWS form, where the training code is the
 * pinned image. PIPELINE_INVALID names the file and field; an empty folder is an error too.
 */
export async function loadPipelinesForAws(dir: string): Promise<StartPipeline[]> {
  const abs = resolve(dir);
  let names: string[];
  try {
    names = (await readdir(abs)).filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort();
  } catch (e) {
    throw new VeritrailError(
      'PIPELINE_INVALID',
      `cannot read the pipeline definitions folder ${abs}: ${(e as Error).message}; set VERITRAIL_PIPELINES_DIR or bundle pipelines/ with the function`,
      { cause: e },
    );
  }
  if (names.length === 0) {
    throw new VeritrailError('PIPELINE_INVALID', `no pipeline definitions (*.json) in ${abs}`);
  }
  const out: StartPipeline[] = [];
  for (const name of names) {
    const path = join(abs, name);
    let value: unknown;
    try {
      value = JSON.parse(await readFile(path, 'utf8'));
    } catch (e) {
      throw new VeritrailError(
        'PIPELINE_INVALID',
        `pipeline definition ${path} is not valid JSON: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
    const def = parsePipelineDefinition(value, `pipeline definition ${path}`);
    out.push({ def, digest: canonicalDigest(def) });
  }
  return out;
}
