/**
 * SageMaker Batch Transform, emulated on this machine (no Docker) for the emulated-AWS suite: given
 * the CreateModel and CreateTransformJob requests veritrail sends (src/aws/sagemaker-scorer.ts) and
 * the bytes behind their S3 URIs, unpack model.tar.gz as /opt/ml/model, run the pipeline's
 * inference contract (trainer.predict in its code folder: features on stdin, predictions on stdout,
 * as the image's `serve` answers one POST /invocations with SplitType None) and return the bytes
 * Batch Transform would write, with the key it would write them under.
 *
 * Two inputs (TransformS3DataSource):
 * - S3Prefix naming one object (`emulateTransformJob`): one request, output `<S3OutputPath>/<name>.out`;
 * - ManifestFile (`emulateManifestTransformJob`): the manifest (`[{"prefix": "s3://b/p/"}, "rel", …]`)
 *   read first, then each listed object read and scored as a request of its own, its output at
 *   `<S3OutputPath>/<rel>.out` (TransformOutput.S3OutputPath: the object's path relative to the
 *   input prefix, plus `.out`). Any object failing fails the job and nothing is returned.
 * Either way a request larger than MaxPayloadInMB (default 6 MB) fails the job as SageMaker does.
 *
 * Wiring (test/aws-e2e): on CreateTransformJob, read `ModelDataUrl` and the input from moto as the
 * model's execution role, call the emulation, put each output at its key in the artifacts bucket,
 * and answer DescribeTransformJob with `TransformJobStatus: 'Completed'` (or 'Failed' + FailureReason
 * when it throws).
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CreateModelInput, CreateTransformJobRequest } from '@aws-sdk/client-sagemaker';
import { extract } from 'tar';

interface TransformJobBase {
  model: CreateModelInput;
  transform: CreateTransformJobRequest;
  /** Bytes of the object at PrimaryContainer.ModelDataUrl (model.tar.gz). */
  modelTarGz: Uint8Array;
  /** The pipeline's trainer.predict, and the folder it runs in (the definition's folder). */
  predict: string[];
  cwd: string;
}

export interface TransformEmulation extends TransformJobBase {
  /** Bytes of the object at TransformInput.DataSource.S3DataSource.S3Uri. */
  input: Uint8Array;
}

export interface ManifestTransformEmulation extends TransformJobBase {
  /** Reads an S3 object by URI: the manifest, then each object it lists (as the execution role). */
  read(uri: string): Promise<Uint8Array>;
}

export interface TransformOutputObject {
  bucket: string;
  key: string;
  bytes: Uint8Array;
}

/** S3 `s3://bucket/key` → { bucket, key }. */
export function parseS3Uri(uri: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/(.*)$/.exec(uri);
  if (!m) throw new Error(`not an S3 URI: ${uri}`);
  return { bucket: m[1] as string, key: m[2] as string };
}

/** The S3 URIs a manifest lists, with each one's path relative to its prefix (TransformS3DataSource). */
export function parseTransformManifest(bytes: Uint8Array): { uri: string; relative: string }[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new Error(`ClientError: the manifest file is not JSON: ${(e as Error).message}`);
  }
  const [head, ...entries] = Array.isArray(parsed) ? parsed : [];
  const prefix = (head as { prefix?: unknown } | undefined)?.prefix;
  if (typeof prefix !== 'string' || !prefix.startsWith('s3://') || entries.length === 0) {
    throw new Error('ClientError: the manifest file must be [{"prefix": "s3://…"}, "relative/key", …]');
  }
  return entries.map((e) => {
    if (typeof e !== 'string' || e === '')
      throw new Error(`ClientError: manifest entry ${JSON.stringify(e)}`);
    return { uri: `${prefix}${e}`, relative: e };
  });
}

export async function emulateTransformJob(job: TransformEmulation): Promise<TransformOutputObject> {
  const inputUri = job.transform.TransformInput?.DataSource?.S3DataSource?.S3Uri ?? '';
  const name = parseS3Uri(inputUri).key.split('/').pop() ?? 'input';
  const [out] = await withModel(job, (invoke) => Promise.all([invoke(job.input)]));
  return { ...outputAt(job, name), bytes: out as Uint8Array };
}

export async function emulateManifestTransformJob(
  job: ManifestTransformEmulation,
): Promise<TransformOutputObject[]> {
  const source = job.transform.TransformInput?.DataSource?.S3DataSource;
  if (source?.S3DataType !== 'ManifestFile') throw new Error('not a ManifestFile transform');
  const entries = parseTransformManifest(await job.read(source.S3Uri ?? ''));
  return withModel(job, async (invoke) => {
    const outputs: TransformOutputObject[] = [];
    // One request per listed object (SplitType None); the job uploads only once every object succeeded.
    for (const entry of entries) {
      outputs.push({ ...outputAt(job, entry.relative), bytes: await invoke(await job.read(entry.uri)) });
    }
    return outputs;
  });
}

function outputAt(job: TransformJobBase, relative: string): { bucket: string; key: string } {
  const { bucket, key: prefix } = parseS3Uri(job.transform.TransformOutput?.S3OutputPath ?? '');
  return { bucket, key: `${prefix.replace(/\/$/, '')}/${relative}.out` };
}

/** Unpacks the model once, then lets `body` POST requests to /invocations (one predict run each). */
async function withModel<T>(
  job: TransformJobBase,
  body: (invoke: (request: Uint8Array) => Promise<Uint8Array>) => Promise<T>,
): Promise<T> {
  if (job.transform.TransformInput?.SplitType !== 'None') throw new Error('only SplitType None is emulated');
  const maxPayload = (job.transform.MaxPayloadInMB ?? 6) * 1024 * 1024;
  const dir = await mkdtemp(join(tmpdir(), 'veritrail-transform-'));
  try {
    const modelDir = join(dir, 'model');
    await mkdir(modelDir);
    await writeFile(join(dir, 'model.tar.gz'), job.modelTarGz);
    await extract({ file: join(dir, 'model.tar.gz'), cwd: modelDir, strict: true });
    const [cmd = '', ...args] = job.predict;
    const invoke = (request: Uint8Array) => {
      if (request.length > maxPayload) {
        return Promise.reject(
          new Error(
            `ClientError: a request of ${request.length} bytes exceeds MaxPayloadInMB (${maxPayload / 1024 / 1024})`,
          ),
        );
      }
      return new Promise<Uint8Array>((resolve, reject) => {
        const child = spawn(cmd === 'node' ? process.execPath : cmd, args, {
          cwd: job.cwd,
          env: {
            PATH: process.env.PATH ?? '/usr/bin:/bin',
            SM_MODEL_DIR: modelDir,
            ...(job.model.PrimaryContainer?.Environment ?? {}),
          },
          stdio: ['pipe', 'pipe', 'pipe'],
        });
        const chunks: Buffer[] = [];
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => chunks.push(c));
        child.stderr.on('data', (c: Buffer) => {
          stderr += c.toString('utf8');
        });
        child.on('error', reject);
        child.on('close', (code) =>
          code === 0
            ? resolve(new Uint8Array(Buffer.concat(chunks)))
            : reject(new Error(`ClientError: 500 from /invocations: ${stderr.trim().slice(-400)}`)),
        );
        child.stdin.on('error', () => undefined);
        child.stdin.end(Buffer.from(request));
      });
    };
    return await body(invoke);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
