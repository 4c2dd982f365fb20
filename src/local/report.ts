/**
 * The report of a run of a local state dir: the signed statement the run produced at its end
 * (`facts.reportKey`), or, for a run that ended before reports existed, one produced and signed now
 * with the state dir's key of the run's unit, its facts dated at the run's end so the statement is the same each time.
 */
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { readObject } from '../cas.js';
import { type ModelReportPredicate, parseBundle, type Statement } from '../core/attest/index.js';
import { type Digest, digestOf } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { factsOf } from '../core/run-facts.js';
import type { ObjectStore, RunRecord } from '../ports.js';
import { produceReport } from '../report/produce.js';
import type { LocalReport } from '../report/render.js';
import { openLocalRuntime } from './runtime.js';
import { forRun } from './units.js';

/** Reads (or, for an older run, produces) the run's signed report statement. RUN_NOT_FOUND otherwise. */
export async function loadLocalReport(home: string, runId: string): Promise<LocalReport> {
  const rt = await openLocalRuntime(home);
  try {
    const run = await rt.runs.get(runId);
    if (run === undefined)
      throw new VeritrailError(
        'RUN_NOT_FOUND',
        `no run ${runId} is recorded here; list runs with: veritrail runs list`,
      );
    const facts = factsOf(run);
    let key = facts.reportKey;
    let producedNow = false;
    if (key === undefined) {
      const at = new Date(facts.finishedAt ?? run.updatedAt);
      // Signed with the key of the run's unit (docs/units.md), like every other statement of it.
      key = (await produceReport({ ...(await forRun(rt, run)), now: () => at }, run)).key;
      producedNow = true;
    }
    const bundleBytes = await readObject(rt.objects, 'artifacts', key);
    const payload = parseBundle(bundleBytes).envelope.payload;
    return {
      run,
      bundleBytes,
      bundle: JSON.parse(new TextDecoder().decode(bundleBytes)),
      statement: JSON.parse(new TextDecoder().decode(payload)) as Statement<ModelReportPredicate>,
      statementDigest: digestOf(payload),
      producedNow,
    };
  } finally {
    await rt.close();
  }
}

/** Copies the run's stored model.tar.gz to `dest` (a new file) and returns the digest of what was written. */
export async function copyModel(objects: ObjectStore, run: RunRecord, dest: string): Promise<Digest> {
  const key = factsOf(run).modelKey;
  if (key === undefined)
    throw new VeritrailError('OBJECT_NOT_FOUND', `run ${run.runId} has no model: it ended before training`);
  const { createHash } = await import('node:crypto');
  const h = createHash('sha256');
  const src = await objects.open('artifacts', key);
  src.on('data', (c: Buffer) => h.update(c));
  await pipeline(src, createWriteStream(dest, { flags: 'wx' }));
  return `sha256:${h.digest('hex')}`;
}
