/**
 * DatasetSource over S3: a dataset is one object (`s3://bucket/key`) or every object under a
 * prefix (`s3://bucket/prefix/`). Every file is pinned by its VersionId when listed, and opened by
 * that VersionId, so the bytes hashed are exactly the bytes later processed even if someone
 * uploads a new version in between (invariant 2).
 */
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { VeritrailError } from '../core/errors.js';
import type { DatasetFile, DatasetSource } from '../ports.js';
import { awsCall, awsErrorName, awsHttpStatus, translateAwsError } from './errors.js';

export interface S3Location {
  bucket: string;
  key: string;
  versionId?: string;
}

/** Parses `s3://bucket/key[?versionId=<id>]`. */
export function parseS3Uri(uri: string): S3Location {
  let url: URL;
  try {
    url = new URL(uri);
  } catch (e) {
    throw new VeritrailError('DATASET_MISSING', `"${uri}" is not a URI; use s3://<bucket>/<key>`, {
      cause: e,
    });
  }
  if (url.protocol !== 's3:' || !url.hostname) {
    throw new VeritrailError(
      'DATASET_MISSING',
      `"${uri}" is not an S3 URI; use s3://<bucket>/<key>[?versionId=<id>]`,
    );
  }
  const key = decodeURIComponent(url.pathname.replace(/^\//, ''));
  const loc: S3Location = { bucket: url.hostname, key };
  const versionId = url.searchParams.get('versionId');
  if (versionId) loc.versionId = versionId;
  return loc;
}

function checkRelativePath(uri: string, path: string): void {
  const segments = path.split('/');
  if (
    path.length === 0 ||
    path.includes('\0') ||
    path.includes('\\') ||
    segments.some((s) => s === '' || s === '.' || s === '..')
  ) {
    throw new VeritrailError(
      'PATH_REJECTED',
      `dataset object ${uri} has a key that cannot be used safely as a relative path ("${path.replaceAll('\0', '\\0')}"); rename it`,
    );
  }
}

const byBytes = (a: DatasetFile, b: DatasetFile) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path));

export class S3DatasetSource implements DatasetSource {
  constructor(private readonly s3: S3Client) {}

  async list(uri: string, options: { versionId?: string } = {}): Promise<DatasetFile[]> {
    const loc = parseS3Uri(uri);
    const versionId = options.versionId ?? loc.versionId;
    if (loc.key === '' || loc.key.endsWith('/')) {
      if (versionId) {
        throw new VeritrailError('USAGE', `a versionId pins one object, but ${uri} names a prefix`);
      }
      return this.listPrefix(loc.bucket, loc.key);
    }
    const resource = `s3://${loc.bucket}/${loc.key}`;
    try {
      const head = await this.s3.send(
        new HeadObjectCommand({
          Bucket: loc.bucket,
          Key: loc.key,
          ...(versionId ? { VersionId: versionId } : {}),
        }),
      );
      const file: DatasetFile = {
        uri: resource,
        path: posix.basename(loc.key),
        size: head.ContentLength ?? 0,
      };
      const pinned = head.VersionId ?? versionId;
      if (pinned && pinned !== 'null') file.versionId = pinned;
      return [file];
    } catch (e) {
      if (awsErrorName(e) === 'NotFound' || awsErrorName(e) === 'NoSuchKey' || awsHttpStatus(e) === 404) {
        if (versionId) {
          throw new VeritrailError(
            'DATASET_MISSING',
            `dataset ${resource} has no version ${versionId}; check the key and version`,
            {
              cause: e,
            },
          );
        }
        // Not an object: maybe a prefix given without its trailing slash.
        return this.listPrefix(loc.bucket, `${loc.key}/`);
      }
      throw translateAwsError(e, { action: 's3:GetObject', resource });
    }
  }

  private async listPrefix(bucket: string, prefix: string): Promise<DatasetFile[]> {
    const resource = `s3://${bucket}/${prefix}`;
    const files: DatasetFile[] = [];
    // ListObjectVersions gives each current object's VersionId in the same pass, so every file is
    // pinned from the start (ListObjectsV2 does not return versions).
    let keyMarker: string | undefined;
    let versionIdMarker: string | undefined;
    do {
      const page = await awsCall({ action: 's3:ListBucketVersions', resource }, () =>
        this.s3.send(
          new ListObjectVersionsCommand({
            Bucket: bucket,
            Prefix: prefix,
            ...(keyMarker !== undefined ? { KeyMarker: keyMarker } : {}),
            ...(versionIdMarker !== undefined ? { VersionIdMarker: versionIdMarker } : {}),
          }),
        ),
      );
      for (const v of page.Versions ?? []) {
        if (!v.IsLatest || v.Key === undefined) continue;
        // Zero-byte "folder" placeholders created by the console are not data.
        if (v.Key.endsWith('/') && (v.Size ?? 0) === 0) continue;
        const path = v.Key.slice(prefix.length);
        const uri = `s3://${bucket}/${v.Key}`;
        checkRelativePath(uri, path);
        const file: DatasetFile = { uri, path, size: v.Size ?? 0 };
        if (v.VersionId && v.VersionId !== 'null') file.versionId = v.VersionId;
        files.push(file);
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      versionIdMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
    } while (keyMarker !== undefined);
    if (files.length === 0) {
      throw new VeritrailError(
        'DATASET_EMPTY',
        `no objects under ${resource}; upload the data files and retry`,
      );
    }
    return files.sort(byBytes);
  }

  async open(file: DatasetFile): Promise<Readable> {
    const loc = parseS3Uri(file.uri);
    const resource = file.versionId ? `${file.uri}?versionId=${file.versionId}` : file.uri;
    try {
      const out = await this.s3.send(
        new GetObjectCommand({
          Bucket: loc.bucket,
          Key: loc.key,
          ...(file.versionId ? { VersionId: file.versionId } : {}),
          ChecksumMode: 'ENABLED',
        }),
      );
      const body = out.Body;
      if (body instanceof Readable) return body;
      if (body && typeof body === 'object' && 'transformToWebStream' in body) {
        return Readable.fromWeb(body.transformToWebStream() as Parameters<typeof Readable.fromWeb>[0]);
      }
      throw new VeritrailError('DATASET_UNREADABLE', `s3:GetObject on ${resource} returned no body`);
    } catch (e) {
      const name = awsErrorName(e);
      if (name === 'NoSuchKey' || name === 'NoSuchVersion') {
        throw new VeritrailError(
          'DATASET_MISSING',
          `dataset file ${resource} is gone; it was deleted or its version expired`,
          {
            cause: e,
          },
        );
      }
      throw translateAwsError(e, { action: 's3:GetObject', resource });
    }
  }
}
