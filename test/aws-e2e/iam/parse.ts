/**
 * Names the caller and the API operation of one signed AWS SDK request, from its wire form only.
 *
 * - Caller: the access key id in the SigV4 credential scope (Authorization header, or X-Amz-Credential
 *   for presigned URLs): `Credential=<akid>/<date>/<region>/<service>/aws4_request`
 *   (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html).
 * - Operation: X-Amz-Target for the JSON protocols (`DynamoDB_20120810.PutItem`, `TrentService.Sign`…),
 *   method + path + query for S3's REST protocol (path-style and virtual-hosted-style) and Lambda's
 *   REST-JSON Invoke.
 */

export interface ParsedRequest {
  method: string;
  /** The request target exactly as received (path and query, undecoded). */
  rawUrl: string;
  accessKeyId?: string;
  region?: string;
  /** The signing name from the credential scope (s3, dynamodb, kms, states, events, sagemaker, ssm, sqs, lambda). */
  service: string;
  operation: string;
  /** JSON body of a JSON-protocol request; undefined for S3. */
  input?: Record<string, unknown>;
  bucket?: string;
  key?: string;
  query: Record<string, string>;
  /** Lower-cased header names, as node gives them. */
  headers: Record<string, string>;
  body: Buffer;
  /** S3's s3:authType: REST-HEADER (Authorization header) or REST-QUERY-STRING (presigned). */
  authType?: 'REST-HEADER' | 'REST-QUERY-STRING';
}

const CREDENTIAL = /Credential=([^/,\s]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request/;

export interface CredentialScope {
  accessKeyId: string;
  region: string;
  service: string;
}

/** The SigV4 credential scope of a request, from the Authorization header or the presigned query. */
export function credentialScope(
  headers: Record<string, string>,
  query: Record<string, string>,
): (CredentialScope & { authType: 'REST-HEADER' | 'REST-QUERY-STRING' }) | undefined {
  const auth = headers.authorization;
  const fromHeader = auth ? CREDENTIAL.exec(auth) : null;
  if (fromHeader) {
    return {
      accessKeyId: fromHeader[1] as string,
      region: fromHeader[3] as string,
      service: fromHeader[4] as string,
      authType: 'REST-HEADER',
    };
  }
  const presigned = query['X-Amz-Credential'];
  if (presigned) {
    const m = CREDENTIAL.exec(`Credential=${presigned}`);
    if (m) {
      return {
        accessKeyId: m[1] as string,
        region: m[3] as string,
        service: m[4] as string,
        authType: 'REST-QUERY-STRING',
      };
    }
  }
  return undefined;
}

/** Flattens node's header object (arrays joined with ", " as HTTP allows). */
export function flatHeaders(headers: NodeJS.Dict<string | string[]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/** Query parameters, decoded; a flag parameter (`?versions`) maps to "". */
export function parseQuery(rawUrl: string): Record<string, string> {
  const i = rawUrl.indexOf('?');
  const out: Record<string, string> = {};
  if (i < 0) return out;
  for (const [k, v] of new URLSearchParams(rawUrl.slice(i + 1))) out[k] = v;
  return out;
}

/**
 * Decodes an `aws-chunked` body (SigV4 streaming, with or without trailers) to its payload bytes.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html
 */
export function decodeAwsChunked(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', at);
    if (eol < 0) break;
    const size = Number.parseInt(body.subarray(at, eol).toString('latin1').split(';')[0] ?? '', 16);
    if (!Number.isFinite(size) || size === 0) break;
    parts.push(body.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

/** The payload of an S3 request body, aws-chunked decoded when the request says so. */
export function s3Payload(req: Pick<ParsedRequest, 'headers' | 'body'>): Buffer {
  const encoding = req.headers['content-encoding'] ?? '';
  const sha = req.headers['x-amz-content-sha256'] ?? '';
  if (encoding.includes('aws-chunked') || sha.startsWith('STREAMING-')) return decodeAwsChunked(req.body);
  return req.body;
}

/**
 * Bucket of a virtual-hosted-style request: `<bucket>.s3[.-]<region>.amazonaws.com`,
 * `<bucket>.s3.amazonaws.com` or `<bucket>.localhost` (what the SDK builds for a custom endpoint
 * http://localhost:<port> with forcePathStyle false). An IP or bare host means path-style.
 */
export function virtualHostBucket(host: string | undefined): string | undefined {
  if (!host) return undefined;
  const hostname = host.replace(/:\d+$/, '').toLowerCase();
  const aws = /^(.+)\.s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com$/.exec(hostname);
  if (aws) return aws[1];
  const local = /^(.+)\.localhost$/.exec(hostname);
  if (local) return local[1];
  return undefined;
}

function parseJson(body: Buffer): Record<string, unknown> | undefined {
  if (body.length === 0) return {};
  try {
    const v: unknown = JSON.parse(body.toString('utf8'));
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const has = (q: Record<string, string>, k: string) => Object.hasOwn(q, k);

/** Query parameters that select no subresource (list options, versions, response overrides, SDK and presign markers). */
const PLAIN_PARAMS = new Set([
  'list-type',
  'prefix',
  'delimiter',
  'max-keys',
  'marker',
  'continuation-token',
  'start-after',
  'fetch-owner',
  'encoding-type',
  'key-marker',
  'version-id-marker',
  'upload-id-marker',
  'max-uploads',
  'x-id',
  'versionId',
  'partNumber',
]);
/** A query parameter this parser does not know: a subresource (`?cors`, `?website`…) it must not misname. */
const unknownParam = (q: Record<string, string>) =>
  Object.keys(q).find((k) => !PLAIN_PARAMS.has(k) && !k.startsWith('response-') && !k.startsWith('X-Amz-'));

/** The S3 operation of a REST request (the subset of S3's API this project and its neighbours use). */
export function s3Operation(
  method: string,
  q: Record<string, string>,
  headers: Record<string, string>,
  hasKey: boolean,
  hasBucket: boolean,
): string {
  if (!hasBucket) return method === 'GET' ? 'ListBuckets' : `Unknown${method}`;
  if (!hasKey) {
    switch (method) {
      case 'GET':
        if (has(q, 'versions')) return 'ListObjectVersions';
        if (has(q, 'uploads')) return 'ListMultipartUploads';
        if (has(q, 'location')) return 'GetBucketLocation';
        if (has(q, 'versioning')) return 'GetBucketVersioning';
        if (has(q, 'object-lock')) return 'GetObjectLockConfiguration';
        if (has(q, 'policy')) return 'GetBucketPolicy';
        if (has(q, 'encryption')) return 'GetBucketEncryption';
        if (has(q, 'tagging')) return 'GetBucketTagging';
        if (has(q, 'notification')) return 'GetBucketNotificationConfiguration';
        if (has(q, 'lifecycle')) return 'GetBucketLifecycleConfiguration';
        if (has(q, 'acl')) return 'GetBucketAcl';
        if (has(q, 'publicAccessBlock')) return 'GetPublicAccessBlock';
        if (has(q, 'ownershipControls')) return 'GetBucketOwnershipControls';
        if (unknownParam(q)) return `UnknownBucketGET?${unknownParam(q)}`;
        if (q['list-type'] === '2') return 'ListObjectsV2';
        return 'ListObjects';
      case 'HEAD':
        return 'HeadBucket';
      case 'PUT':
        if (has(q, 'versioning')) return 'PutBucketVersioning';
        if (has(q, 'object-lock')) return 'PutObjectLockConfiguration';
        if (has(q, 'policy')) return 'PutBucketPolicy';
        if (has(q, 'encryption')) return 'PutBucketEncryption';
        if (has(q, 'tagging')) return 'PutBucketTagging';
        if (has(q, 'notification')) return 'PutBucketNotificationConfiguration';
        if (has(q, 'lifecycle')) return 'PutBucketLifecycleConfiguration';
        if (has(q, 'acl')) return 'PutBucketAcl';
        if (has(q, 'publicAccessBlock')) return 'PutPublicAccessBlock';
        if (has(q, 'ownershipControls')) return 'PutBucketOwnershipControls';
        if (unknownParam(q)) return `UnknownBucketPUT?${unknownParam(q)}`;
        return 'CreateBucket';
      case 'DELETE':
        if (has(q, 'policy')) return 'DeleteBucketPolicy';
        if (has(q, 'tagging')) return 'DeleteBucketTagging';
        if (has(q, 'encryption')) return 'DeleteBucketEncryption';
        if (has(q, 'lifecycle')) return 'DeleteBucketLifecycle';
        return 'DeleteBucket';
      case 'POST':
        if (has(q, 'delete')) return 'DeleteObjects';
        return 'UnknownBucketPOST';
      default:
        return `Unknown${method}`;
    }
  }
  switch (method) {
    case 'GET':
      if (has(q, 'tagging')) return 'GetObjectTagging';
      if (has(q, 'retention')) return 'GetObjectRetention';
      if (has(q, 'legal-hold')) return 'GetObjectLegalHold';
      if (has(q, 'acl')) return 'GetObjectAcl';
      if (has(q, 'attributes')) return 'GetObjectAttributes';
      if (has(q, 'uploadId')) return 'ListParts';
      if (unknownParam(q)) return `UnknownObjectGET?${unknownParam(q)}`;
      return 'GetObject';
    case 'HEAD':
      return 'HeadObject';
    case 'PUT':
      if (has(q, 'tagging')) return 'PutObjectTagging';
      if (has(q, 'retention')) return 'PutObjectRetention';
      if (has(q, 'legal-hold')) return 'PutObjectLegalHold';
      if (has(q, 'acl')) return 'PutObjectAcl';
      if (has(q, 'uploadId') && has(q, 'partNumber')) {
        return headers['x-amz-copy-source'] ? 'UploadPartCopy' : 'UploadPart';
      }
      if (headers['x-amz-copy-source']) return 'CopyObject';
      if (unknownParam(q) && !has(q, 'uploadId')) return `UnknownObjectPUT?${unknownParam(q)}`;
      return 'PutObject';
    case 'POST':
      if (has(q, 'uploads')) return 'CreateMultipartUpload';
      if (has(q, 'uploadId')) return 'CompleteMultipartUpload';
      if (has(q, 'restore')) return 'RestoreObject';
      if (has(q, 'select')) return 'SelectObjectContent';
      return 'UnknownObjectPOST';
    case 'DELETE':
      if (has(q, 'tagging')) return 'DeleteObjectTagging';
      if (has(q, 'uploadId')) return 'AbortMultipartUpload';
      return 'DeleteObject';
    default:
      return `Unknown${method}`;
  }
}

/** Parses one request as the proxy received it. */
export function parseRequest(
  method: string,
  rawUrl: string,
  headers: Record<string, string>,
  body: Buffer,
): ParsedRequest {
  const query = parseQuery(rawUrl);
  const scope = credentialScope(headers, query);
  const base = {
    method,
    rawUrl,
    query,
    headers,
    body,
    ...(scope ? { accessKeyId: scope.accessKeyId, region: scope.region } : {}),
  };
  const target = headers['x-amz-target'];
  if (target) {
    const dot = target.lastIndexOf('.');
    const prefix = target.slice(0, dot);
    const operation = target.slice(dot + 1);
    const input = parseJson(body);
    return {
      ...base,
      service: scope?.service ?? jsonServiceOf(prefix),
      operation,
      ...(input ? { input } : {}),
    };
  }
  const path = rawUrl.split('?')[0] ?? '/';
  const service = scope?.service ?? 's3';
  if (service === 'lambda') {
    const m = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/.exec(path);
    const input = parseJson(body);
    if (m && method === 'POST') {
      return {
        ...base,
        service,
        operation: 'Invoke',
        input: { FunctionName: decodeURIComponent(m[1] as string), Payload: input },
      };
    }
    return { ...base, service, operation: `Unknown${method}` };
  }
  if (service !== 's3') return { ...base, service, operation: `Unknown${method}` };

  // S3: virtual-hosted style takes the bucket from Host, path-style from the first path segment.
  const segments = path.split('/').slice(1);
  let bucket = virtualHostBucket(headers.host);
  let keyPath: string;
  if (bucket) {
    keyPath = segments.join('/');
  } else {
    bucket = segments[0] ? decodeURIComponent(segments[0]) : undefined;
    keyPath = segments.slice(1).join('/');
  }
  const key = keyPath ? decodeURIComponent(keyPath) : undefined;
  const operation = s3Operation(method, query, headers, key !== undefined, bucket !== undefined);
  return {
    ...base,
    service,
    operation,
    ...(bucket !== undefined ? { bucket } : {}),
    ...(key !== undefined ? { key } : {}),
    ...(scope ? { authType: scope.authType } : {}),
  };
}

/** The signing name of a JSON-protocol target prefix, for unsigned requests (never from the SDK). */
function jsonServiceOf(prefix: string): string {
  if (prefix.startsWith('DynamoDB')) return 'dynamodb';
  if (prefix === 'TrentService') return 'kms';
  if (prefix === 'AWSStepFunctions') return 'states';
  if (prefix === 'AWSEvents') return 'events';
  if (prefix === 'SageMaker') return 'sagemaker';
  if (prefix === 'AmazonSSM') return 'ssm';
  if (prefix === 'AmazonSQS') return 'sqs';
  return prefix.toLowerCase();
}
