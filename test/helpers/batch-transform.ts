/**
 * SageMaker Batch Transform, emulated on this machine (no Docker) for the emulated-AWS suite: given
 * the CreateModel and CreateTransformJob requests veritrail sends (src/aws/sagemaker-scorer.ts) and
 * the bytes behind their S3 URIs, unpack model.tar.gz as /opt/ml/model, run the pipeline's
 * inference contract (trainer.predict in its code folder: features on stdin, predictions on stdout,
 * as the image's `serve` answers one POST /invocations with SplitType None) and return the bytes
 * Batch Transform would write, with the key it would write them under.
 *
 * Wiring (test/aws-e2e): on CreateTransformJob, read `ModelDataUrl` and the input S3Uri from moto,
 * call `emulateTransformJob`, put `output.bytes` at `output.key` in the artifacts bucket, and answer
 * DescribeTransformJob with `TransformJobStatus: 'Completed'` (or 'Failed' + FailureReason when it throws).
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CreateModelInput, CreateTransformJobRequest } from '@aws-sdk/client-sagemaker';
import { extract } from 'tar';

export interface TransformEmulation {
  model: CreateModelInput;
  transform: CreateTransformJobRequest;
  /** Bytes of the object at PrimaryContainer.ModelDataUrl (model.tar.gz). */
  modelTarGz: Uint8Array;
  /** Bytes of the object at TransformInput.DataSource.S3DataSource.S3Uri. */
  input: Uint8Array;
  /** The pipeline's trainer.predict, and the folder it runs in (the definition's folder). */
  predict: string[];
  cwd: string;
}

/** S3 `s3://bucket/key` → { bucket, key }. */
export function parseS3Uri(uri: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/(.*)$/.exec(uri);
  if (!m) throw new Error(`not an S3 URI: ${uri}`);
  return { bucket: m[1] as string, key: m[2] as string };
}

export async function emulateTransformJob(
  job: TransformEmulation,
): Promise<{ bucket: string; key: string; bytes: Uint8Array }> {
  const inputUri = job.transform.TransformInput?.DataSource?.S3DataSource?.S3Uri ?? '';
  const outputPath = job.transform.TransformOutput?.S3OutputPath ?? '';
  if (job.transform.TransformInput?.SplitType !== 'None') throw new Error('only SplitType None is emulated');
  const dir = await mkdtemp(join(tmpdir(), 'veritrail-transform-'));
  try {
    const modelDir = join(dir, 'model');
    await mkdir(modelDir);
    await writeFile(join(dir, 'model.tar.gz'), job.modelTarGz);
    await extract({ file: join(dir, 'model.tar.gz'), cwd: modelDir, strict: true });
    const [cmd = '', ...args] = job.predict;
    const out = await new Promise<Buffer>((resolve, reject) => {
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
          ? resolve(Buffer.concat(chunks))
          : reject(new Error(`ClientError: 500 from /invocations: ${stderr.trim().slice(-400)}`)),
      );
      child.stdin.end(Buffer.from(job.input));
    });
    const { bucket, key: prefix } = parseS3Uri(outputPath);
    const name = parseS3Uri(inputUri).key.split('/').pop() ?? 'input';
    return { bucket, key: `${prefix}/${name}.out`, bytes: new Uint8Array(out) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
