import { z } from 'zod';
import { isDigest } from '../digest.js';
import { PATH_ISSUE, parseWith, pipelineName } from './common.js';
import { objectKeyProblem } from './key.js';

/**
 * An operator's start request: what `veritrail start` sends to the local control plane, and what
 * an operator types as the input of StartExecution in the Step Functions console. Unknown keys are
 * refused so that a typo (`focre`) never silently changes what runs.
 */

/** Where a dataset is: an S3 object (`s3://bucket/key`) or a local file or folder (`file:///abs`). */
export type DatasetLocation =
  | { scheme: 's3'; bucket: string; key: string }
  | { scheme: 'file'; path: string };

/**
 * Splits a dataset URI, or says why it is not one. The key of an `s3://` URI obeys the same rules
 * as keys in events; a `file://` path must be absolute and free of `..` so that the recorded URI
 * names the same bytes wherever it is read.
 */
export function datasetLocationOf(
  uri: string,
): { location: DatasetLocation } | { problem: string; path: boolean } {
  const s3 = /^s3:\/\/([^/]+)\/(.+)$/s.exec(uri);
  if (s3 !== null) {
    const [, bucket = '', key = ''] = s3;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$/.test(bucket)) {
      return { problem: `bucket "${bucket}" is not an S3 bucket name`, path: false };
    }
    const problem = objectKeyProblem(key);
    if (problem !== undefined) return { problem: `object key ${problem}`, path: true };
    return { location: { scheme: 's3', bucket, key } };
  }
  if (uri.startsWith('file://')) {
    let path: string;
    try {
      path = decodeURIComponent(uri.slice('file://'.length));
    } catch {
      return { problem: 'is not a valid file:// URI (bad %-escape)', path: false };
    }
    if (!path.startsWith('/'))
      return { problem: 'file:// path must be absolute (file:///home/…)', path: true };
    if (path.includes('\u0000')) return { problem: 'file:// path contains a NUL character', path: true };
    if (path.split('/').includes('..'))
      return { problem: 'file:// path contains a ".." segment', path: true };
    return { location: { scheme: 'file', path } };
  }
  return { problem: 'must be s3://<bucket>/<key> or file:///<absolute path>', path: false };
}

const datasetRef = z
  .strictObject({
    uri: z.string().min(1, 'must not be empty').max(4096),
    /** S3 VersionId pinning the exact object version; only for s3:// URIs. */
    versionId: z.string().min(1, 'must not be empty').max(1024).optional(),
    /** Content digest (`sha256:<hex>`) when the caller has already hashed the dataset (locally). */
    digest: z
      .string()
      .refine(isDigest, 'must be sha256:<64 lowercase hex digits>')
      .transform((d) => d as `sha256:${string}`)
      .optional(),
  })
  .superRefine((ref, ctx) => {
    const parsed = datasetLocationOf(ref.uri);
    if ('problem' in parsed) {
      ctx.addIssue({
        code: 'custom',
        path: ['uri'],
        message: parsed.problem,
        ...(parsed.path ? { params: { [PATH_ISSUE]: true } } : {}),
      });
      return;
    }
    if (ref.versionId !== undefined && parsed.location.scheme !== 's3') {
      ctx.addIssue({ code: 'custom', path: ['versionId'], message: 'applies only to s3:// datasets' });
    }
  });

const OperatorStartSchema = z.strictObject({
  pipeline: pipelineName,
  dataset: datasetRef,
  /** Retrain even when nothing changed since the last successful run. */
  force: z.boolean().default(false),
  /**
   * Names one start intent: a double-click or a retried request sends the same requestId and
   * starts one run; a deliberate second run uses a new one.
   */
  requestId: z
    .string()
    .regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be 1-128 letters, digits or . _ : -')
    .optional(),
  /** Who asked (IAM principal or user@host); recorded, never part of the identity. */
  actor: z.string().min(1, 'must not be empty').max(512).optional(),
});

export type OperatorStart = z.output<typeof OperatorStartSchema>;
export type OperatorStartInput = z.input<typeof OperatorStartSchema>;

export function parseOperatorStart(value: unknown): OperatorStart {
  return parseWith(
    OperatorStartSchema,
    value,
    'operator start request',
    'Nothing was started; fix the field(s) named and start again.',
  );
}
