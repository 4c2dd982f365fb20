/**
 * A Map Run's results as the HashBatches ResultWriter exports them (Step Functions Developer Guide,
 * "ResultWriter (Map)"): manifest.json naming SUCCEEDED_<n>.json files of child executions, Input
 * and Output as JSON text. For tests that hand HashDataset a Map's output without running the Map.
 */
import type { ObjectStore } from '../../src/ports.js';

export type Child = { input: unknown; output: unknown };
export type MapRunExport = {
  manifest: {
    DestinationBucket: string;
    MapRunArn: string;
    ResultFiles: Record<string, { Key: string; Size: number }[]>;
  };
  files: { key: string; text: string }[];
};
let mapRuns = 0;

/**
 * Writes `children` to the object store under `map-results/<runId>/<map run id>/`, `perFile` a file;
 * `edit` may change the export before it is written. Returns the Map's output, as HashDataset finds
 * it at results.hash.batches.
 */
export async function exportMapRun(
  objects: ObjectStore,
  runId: string,
  children: readonly Child[],
  perFile = 1000,
  edit: (e: MapRunExport) => void = () => {},
) {
  const id = `${String(++mapRuns).padStart(8, '0')}-1111-2222-3333-444455556666`;
  const folder = `map-results/${runId}/${id}/`;
  const machine = 'arn:aws:states:eu-west-1:111122223333:stateMachine:training-pipeline';
  const at = '2026-12-01T03:00:00.000Z';
  const mapRunArn = `arn:aws:states:eu-west-1:111122223333:mapRun:training-pipeline/HashBatches:${id}`;
  const files: MapRunExport['files'] = [];
  for (let i = 0; i < children.length; i += perFile) {
    const entries = children.slice(i, i + perFile).map((c, j) => ({
      ExecutionArn: `arn:aws:states:eu-west-1:111122223333:execution:training-pipeline/HashBatches:${i + j}`,
      Input: JSON.stringify(c.input),
      InputDetails: { Included: true },
      Name: String(i + j),
      Output: JSON.stringify(c.output),
      OutputDetails: { Included: true },
      RedriveCount: 0,
      RedriveStatus: 'NOT_REDRIVABLE',
      RedriveStatusReason: 'Execution is SUCCEEDED and cannot be redriven',
      StartDate: at,
      StateMachineArn: machine,
      Status: 'SUCCEEDED',
      StopDate: at,
    }));
    files.push({ key: `${folder}SUCCEEDED_${files.length}.json`, text: JSON.stringify(entries) });
  }
  const exported: MapRunExport = {
    manifest: {
      DestinationBucket: 'artifacts',
      MapRunArn: mapRunArn,
      ResultFiles: {
        FAILED: [],
        PENDING: [],
        SUCCEEDED: files.map((f) => ({ Key: f.key, Size: Buffer.byteLength(f.text) })),
      },
    },
    files,
  };
  edit(exported);
  for (const f of exported.files) await objects.put('artifacts', f.key, Buffer.from(f.text));
  const key = `${folder}manifest.json`;
  await objects.put('artifacts', key, Buffer.from(JSON.stringify(exported.manifest)));
  return { MapRunArn: mapRunArn, ResultWriterDetails: { Bucket: 'artifacts', Key: key } };
}
