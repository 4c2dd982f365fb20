/**
 * What AWS authorizes for one API request: the IAM action(s), resource ARN(s) and the context keys
 * the service puts in the request context, per the Service Authorization Reference (SAR,
 * https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html)
 * and each service's API reference ("Permissions" sections).
 *
 * Pure: no I/O. The proxy evaluates each requirement against the policy world (evaluate.ts).
 */

import type { ParsedRequest } from './parse.js';
import { s3Payload } from './parse.js';
import type { PolicyWorld } from './types.js';

export type Context = Record<string, string | string[]>;

/** One authorization AWS makes for a request. */
export interface Requirement {
  action: string;
  resource: string;
  context: Context;
  /** An authorization the service makes on the caller's behalf (SSE-KMS, PassRole, AddTags, ListBucket for 404). */
  implied: boolean;
  /**
   * For an action the SAR lists with no resource type (evaluated on "*") that the service nevertheless
   * matches against a resource's ARN: statements whose Resource covers this ARN apply too.
   */
  scope?: string;
}

/** Options of the mapping that only the harness can know. */
export interface AuthzOptions {
  /** The state machine ARN a task token belongs to (Step Functions tokens are opaque). */
  stateMachineOfTaskToken?: (taskToken: string) => string | undefined;
}

/** State the mapping keeps across requests (what a real service remembers). */
export interface AuthzState {
  /** `bucket/key` → the KMS key ARN its latest version was written with (SSE-KMS through S3). */
  objectKeys: Map<string, string>;
  /** Model package group (lower case) → versions created so far, to name the next package's ARN. */
  packageVersions: Map<string, number>;
}

export const newAuthzState = (): AuthzState => ({ objectKeys: new Map(), packageVersions: new Map() });

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const obj = (v: unknown): Record<string, unknown> =>
  v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** The key ARN a KMS key identifier (id, ARN, alias name, alias ARN) names in this world. */
export function resolveKeyArn(world: PolicyWorld, keyId: string): string {
  const known = world.keyIds[keyId];
  if (known) return known;
  if (keyId.startsWith('arn:')) return keyId;
  if (keyId.startsWith('alias/')) return `arn:aws:kms:${world.region}:${world.account}:${keyId}`;
  return `arn:aws:kms:${world.region}:${world.account}:key/${keyId}`;
}

// ---------------------------------------------------------------- S3

const s3Arn = (bucket: string, key?: string) =>
  key === undefined ? `arn:aws:s3:::${bucket}` : `arn:aws:s3:::${bucket}/${key}`;

/** Context every S3 request carries (SAR "Condition keys for Amazon S3"). */
function s3Common(req: ParsedRequest): Context {
  const c: Context = { 's3:signatureversion': 'AWS4-HMAC-SHA256' };
  if (req.authType) c['s3:authType'] = req.authType;
  const sha = req.headers['x-amz-content-sha256'];
  if (sha) c['s3:x-amz-content-sha256'] = sha;
  return c;
}

/** Object tags of `x-amz-tagging` (URL-encoded k=v&k=v) as s3:RequestObjectTag context. */
function taggingHeaderContext(tagging: string | undefined): Context {
  if (!tagging) return {};
  const c: Context = {};
  const keys: string[] = [];
  for (const [k, v] of new URLSearchParams(tagging)) {
    keys.push(k);
    c[`s3:RequestObjectTag/${k}`] = v;
  }
  c['s3:RequestObjectTagKeys'] = keys;
  return c;
}

function xmlValues(xml: string, tag: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`<${tag}>([^<]*)</${tag}>`, 'g');
  for (let m = re.exec(xml); m; m = re.exec(xml)) out.push(decodeXml(m[1] as string));
  return out;
}
const decodeXml = (s: string) =>
  s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');

function remainingDays(until: string | undefined): Context {
  if (!until) return {};
  const ms = Date.parse(until) - Date.now();
  if (!Number.isFinite(ms)) return {};
  return { 's3:object-lock-remaining-retention-days': String(Math.max(0, Math.ceil(ms / 86_400_000))) };
}

/**
 * The KMS key S3 uses to encrypt a new object (SSE-KMS), or undefined (SSE-S3, or the AWS managed
 * aws/s3 key, whose AWS-written key policy allows any caller of the account through S3).
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html (x-amz-server-side-encryption-aws-kms-key-id:
 * "If you specify aws:kms but don't provide the key id, Amazon S3 uses the AWS managed key (aws/s3)");
 * with no encryption header the bucket's default encryption applies.
 */
export function s3WriteKey(world: PolicyWorld, req: ParsedRequest): string | undefined {
  const sse = req.headers['x-amz-server-side-encryption'];
  const keyId = req.headers['x-amz-server-side-encryption-aws-kms-key-id'];
  if (keyId) return resolveKeyArn(world, keyId);
  if (sse === undefined && req.bucket) return world.bucketKmsKeys[req.bucket];
  return undefined;
}

/**
 * kms:<action> that S3 makes with the caller's credentials for SSE-KMS (a forward access session):
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html#require-sse-kms
 * ("kms:GenerateDataKey to upload, kms:Decrypt to download"), with kms:ViaService
 * s3.<region>.amazonaws.com and the encryption context aws:s3:arn (the object ARN, or the bucket ARN
 * when an S3 Bucket Key is used: https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html#encryption-context).
 */
export function s3KmsRequirement(
  world: PolicyWorld,
  req: ParsedRequest,
  action: string,
  keyArn: string,
  bucketKey: boolean,
): Requirement {
  const bucket = req.bucket as string;
  const ctxArn = bucketKey ? s3Arn(bucket) : s3Arn(bucket, req.key);
  return {
    action,
    resource: keyArn,
    context: {
      'kms:ViaService': `s3.${world.region}.amazonaws.com`,
      'kms:CallerAccount': world.account,
      'kms:EncryptionContext:aws:s3:arn': ctxArn,
      'kms:EncryptionContextKeys': ['aws:s3:arn'],
      'aws:ViaAWSService': 'true',
    },
    implied: true,
  };
}

function bucketKeyEnabled(world: PolicyWorld, req: ParsedRequest): boolean {
  const h = req.headers['x-amz-server-side-encryption-bucket-key-enabled'];
  if (h !== undefined) return h.toLowerCase() === 'true';
  return Boolean(req.bucket && world.bucketKeyEnabled?.[req.bucket]);
}

/** Headers of a write that S3 authorizes as extra actions (PutObject API reference, "Permissions"). */
function s3WriteExtras(req: ParsedRequest, objectArn: string, base: Context): Requirement[] {
  const out: Requirement[] = [];
  const h = req.headers;
  if (h['x-amz-tagging']) {
    out.push({
      action: 's3:PutObjectTagging',
      resource: objectArn,
      context: { ...base, ...taggingHeaderContext(h['x-amz-tagging']) },
      implied: false,
    });
  }
  if (h['x-amz-object-lock-mode'] || h['x-amz-object-lock-retain-until-date']) {
    out.push({ action: 's3:PutObjectRetention', resource: objectArn, context: base, implied: false });
  }
  if (h['x-amz-object-lock-legal-hold']) {
    out.push({ action: 's3:PutObjectLegalHold', resource: objectArn, context: base, implied: false });
  }
  if (h['x-amz-acl'] || Object.keys(h).some((k) => k.startsWith('x-amz-grant-'))) {
    out.push({ action: 's3:PutObjectAcl', resource: objectArn, context: base, implied: false });
  }
  return out;
}

function s3WriteContext(req: ParsedRequest): Context {
  const h = req.headers;
  const c: Context = { ...s3Common(req), ...taggingHeaderContext(h['x-amz-tagging']) };
  const pairs: [string, string][] = [
    ['x-amz-server-side-encryption', 's3:x-amz-server-side-encryption'],
    ['x-amz-server-side-encryption-aws-kms-key-id', 's3:x-amz-server-side-encryption-aws-kms-key-id'],
    ['x-amz-acl', 's3:x-amz-acl'],
    ['x-amz-storage-class', 's3:x-amz-storage-class'],
    ['x-amz-object-lock-mode', 's3:object-lock-mode'],
    ['x-amz-object-lock-retain-until-date', 's3:object-lock-retain-until-date'],
    ['x-amz-object-lock-legal-hold', 's3:object-lock-legal-hold'],
    ['x-amz-copy-source', 's3:x-amz-copy-source'],
    ['x-amz-metadata-directive', 's3:x-amz-metadata-directive'],
  ];
  for (const [header, key] of pairs) if (h[header] !== undefined) c[key] = h[header] as string;
  Object.assign(c, remainingDays(h['x-amz-object-lock-retain-until-date']));
  return c;
}

/** The source object of x-amz-copy-source (`/bucket/key?versionId=…`, URL-encoded). */
function copySource(header: string): { bucket: string; key: string; versionId?: string } {
  const [path = '', q = ''] = header.replace(/^\//, '').split('?');
  const decoded = decodeURIComponent(path);
  const slash = decoded.indexOf('/');
  const versionId = new URLSearchParams(q).get('versionId') ?? undefined;
  return {
    bucket: decoded.slice(0, slash),
    key: decoded.slice(slash + 1),
    ...(versionId ? { versionId } : {}),
  };
}

function s3Requirements(world: PolicyWorld, req: ParsedRequest, state: AuthzState): Requirement[] {
  const { bucket, key, query: q, headers: h } = req;
  const base = s3Common(req);
  const one = (action: string, resource: string, context: Context = base): Requirement[] => [
    { action, resource, context, implied: false },
  ];
  if (bucket === undefined) return one('s3:ListAllMyBuckets', '*');
  const bucketArn = s3Arn(bucket);
  const versioned = q.versionId !== undefined;
  const listContext = (): Context => {
    const c: Context = { ...base };
    if (q.prefix !== undefined) c['s3:prefix'] = q.prefix;
    if (q.delimiter !== undefined) c['s3:delimiter'] = q.delimiter;
    if (q['max-keys'] !== undefined) c['s3:max-keys'] = q['max-keys'];
    return c;
  };
  const bypass = h['x-amz-bypass-governance-retention']?.toLowerCase() === 'true';
  switch (req.operation) {
    case 'ListObjectsV2':
    case 'ListObjects':
    case 'HeadBucket':
      return one('s3:ListBucket', bucketArn, listContext());
    case 'ListObjectVersions':
      return one('s3:ListBucketVersions', bucketArn, listContext());
    case 'ListMultipartUploads':
      return one('s3:ListBucketMultipartUploads', bucketArn);
    case 'GetBucketLocation':
      return one('s3:GetBucketLocation', bucketArn);
    case 'GetBucketVersioning':
      return one('s3:GetBucketVersioning', bucketArn);
    case 'PutBucketVersioning':
      return one('s3:PutBucketVersioning', bucketArn);
    case 'GetObjectLockConfiguration':
      return one('s3:GetBucketObjectLockConfiguration', bucketArn);
    case 'PutObjectLockConfiguration':
      return one('s3:PutBucketObjectLockConfiguration', bucketArn);
    case 'GetBucketPolicy':
      return one('s3:GetBucketPolicy', bucketArn);
    case 'PutBucketPolicy':
      return one('s3:PutBucketPolicy', bucketArn);
    case 'DeleteBucketPolicy':
      return one('s3:DeleteBucketPolicy', bucketArn);
    case 'GetBucketEncryption':
      return one('s3:GetEncryptionConfiguration', bucketArn);
    case 'PutBucketEncryption':
    case 'DeleteBucketEncryption':
      return one('s3:PutEncryptionConfiguration', bucketArn);
    case 'GetBucketTagging':
      return one('s3:GetBucketTagging', bucketArn);
    case 'PutBucketTagging':
    case 'DeleteBucketTagging':
      return one('s3:PutBucketTagging', bucketArn);
    case 'GetBucketNotificationConfiguration':
      return one('s3:GetBucketNotification', bucketArn);
    case 'PutBucketNotificationConfiguration':
      return one('s3:PutBucketNotification', bucketArn);
    case 'GetBucketLifecycleConfiguration':
      return one('s3:GetLifecycleConfiguration', bucketArn);
    case 'PutBucketLifecycleConfiguration':
    case 'DeleteBucketLifecycle':
      return one('s3:PutLifecycleConfiguration', bucketArn);
    case 'GetBucketAcl':
      return one('s3:GetBucketAcl', bucketArn);
    case 'PutBucketAcl':
      return one('s3:PutBucketAcl', bucketArn);
    case 'GetPublicAccessBlock':
      return one('s3:GetBucketPublicAccessBlock', bucketArn);
    case 'PutPublicAccessBlock':
      return one('s3:PutBucketPublicAccessBlock', bucketArn);
    case 'GetBucketOwnershipControls':
      return one('s3:GetBucketOwnershipControls', bucketArn);
    case 'PutBucketOwnershipControls':
      return one('s3:PutBucketOwnershipControls', bucketArn);
    case 'CreateBucket':
      return one('s3:CreateBucket', bucketArn);
    case 'DeleteBucket':
      return one('s3:DeleteBucket', bucketArn);
    case 'DeleteObjects': {
      // DeleteObjects is authorized per object as DeleteObject / DeleteObjectVersion (DeleteObjects API reference).
      const xml = s3Payload(req).toString('utf8');
      const out: Requirement[] = [];
      for (const o of xml.match(/<Object>[\s\S]*?<\/Object>/g) ?? []) {
        const k = xmlValues(o, 'Key')[0];
        if (k === undefined) continue;
        const v = xmlValues(o, 'VersionId')[0];
        out.push({
          action: v ? 's3:DeleteObjectVersion' : 's3:DeleteObject',
          resource: s3Arn(bucket, k),
          context: base,
          implied: false,
        });
        if (bypass)
          out.push({
            action: 's3:BypassGovernanceRetention',
            resource: s3Arn(bucket, k),
            context: base,
            implied: false,
          });
      }
      return out;
    }
  }
  if (key === undefined) return one(`s3:${req.operation}`, bucketArn);
  const objectArn = s3Arn(bucket, key);
  switch (req.operation) {
    case 'GetObject':
    case 'HeadObject':
      // HeadObject needs s3:GetObject (HeadObject API reference, "Permissions"); a version needs the Version action.
      return one(versioned ? 's3:GetObjectVersion' : 's3:GetObject', objectArn);
    case 'GetObjectTagging':
      return one(versioned ? 's3:GetObjectVersionTagging' : 's3:GetObjectTagging', objectArn);
    case 'PutObjectTagging': {
      const xml = s3Payload(req).toString('utf8');
      const keys = xmlValues(xml, 'Key');
      const values = xmlValues(xml, 'Value');
      const c: Context = { ...base, 's3:RequestObjectTagKeys': keys };
      keys.forEach((k, i) => {
        c[`s3:RequestObjectTag/${k}`] = values[i] ?? '';
      });
      return one(versioned ? 's3:PutObjectVersionTagging' : 's3:PutObjectTagging', objectArn, c);
    }
    case 'DeleteObjectTagging':
      return one(versioned ? 's3:DeleteObjectVersionTagging' : 's3:DeleteObjectTagging', objectArn);
    case 'GetObjectRetention':
      return one('s3:GetObjectRetention', objectArn);
    case 'PutObjectRetention': {
      const xml = s3Payload(req).toString('utf8');
      const c: Context = { ...base };
      const mode = xmlValues(xml, 'Mode')[0];
      const until = xmlValues(xml, 'RetainUntilDate')[0];
      if (mode) c['s3:object-lock-mode'] = mode;
      if (until) c['s3:object-lock-retain-until-date'] = until;
      Object.assign(c, remainingDays(until));
      const out = one('s3:PutObjectRetention', objectArn, c);
      if (bypass)
        out.push({
          action: 's3:BypassGovernanceRetention',
          resource: objectArn,
          context: base,
          implied: false,
        });
      return out;
    }
    case 'GetObjectLegalHold':
      return one('s3:GetObjectLegalHold', objectArn);
    case 'PutObjectLegalHold':
      return one('s3:PutObjectLegalHold', objectArn);
    case 'GetObjectAcl':
      return one(versioned ? 's3:GetObjectVersionAcl' : 's3:GetObjectAcl', objectArn);
    case 'PutObjectAcl':
      return one(versioned ? 's3:PutObjectVersionAcl' : 's3:PutObjectAcl', objectArn);
    case 'GetObjectAttributes':
      return one(versioned ? 's3:GetObjectVersionAttributes' : 's3:GetObjectAttributes', objectArn);
    case 'ListParts':
      return one('s3:ListMultipartUploadParts', objectArn);
    case 'AbortMultipartUpload':
      return one('s3:AbortMultipartUpload', objectArn);
    case 'RestoreObject':
      return one('s3:RestoreObject', objectArn);
    case 'SelectObjectContent':
      return one('s3:GetObject', objectArn);
    case 'DeleteObject': {
      const out = one(versioned ? 's3:DeleteObjectVersion' : 's3:DeleteObject', objectArn);
      if (bypass)
        out.push({
          action: 's3:BypassGovernanceRetention',
          resource: objectArn,
          context: base,
          implied: false,
        });
      return out;
    }
    case 'UploadPart':
    case 'CompleteMultipartUpload':
      return one('s3:PutObject', objectArn, s3WriteContext(req));
    case 'UploadPartCopy':
    case 'CopyObject':
    case 'PutObject':
    case 'CreateMultipartUpload': {
      const context = s3WriteContext(req);
      const out = one('s3:PutObject', objectArn, context);
      if (req.operation !== 'UploadPartCopy') out.push(...s3WriteExtras(req, objectArn, base));
      const source = h['x-amz-copy-source'];
      if (source) {
        const src = copySource(source);
        out.push({
          action: src.versionId ? 's3:GetObjectVersion' : 's3:GetObject',
          resource: s3Arn(src.bucket, src.key),
          context: base,
          implied: false,
        });
        const srcKey = state.objectKeys.get(`${src.bucket}/${src.key}`) ?? world.bucketKmsKeys[src.bucket];
        if (srcKey)
          out.push(
            s3KmsRequirement(
              world,
              { ...req, bucket: src.bucket, key: src.key },
              'kms:Decrypt',
              srcKey,
              Boolean(world.bucketKeyEnabled?.[src.bucket]),
            ),
          );
      }
      if (req.operation !== 'UploadPartCopy') {
        const kmsKey = s3WriteKey(world, req);
        if (kmsKey) {
          out.push(s3KmsRequirement(world, req, 'kms:GenerateDataKey', kmsKey, bucketKeyEnabled(world, req)));
          // A multipart upload with SSE-KMS also needs kms:Decrypt (S3 decrypts the data key to
          // encrypt each part): https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html#mpuAndPermissions
          if (req.operation === 'CreateMultipartUpload') {
            out.push(s3KmsRequirement(world, req, 'kms:Decrypt', kmsKey, bucketKeyEnabled(world, req)));
          }
        }
      }
      return out;
    }
  }
  return one(`s3:${req.operation}`, objectArn);
}

/**
 * The s3:ListBucket check S3 makes when an object read finds nothing: "If you don't have the
 * s3:ListBucket permission, Amazon S3 returns an HTTP status code 403 Forbidden error"
 * (GetObject / HeadObject API reference, "Permissions").
 */
export function s3MissingKeyRequirement(req: ParsedRequest): Requirement {
  return {
    action: 's3:ListBucket',
    resource: s3Arn(req.bucket as string),
    context: { ...s3Common(req), 's3:prefix': req.key ?? '' },
    implied: true,
  };
}

/** Whether S3 answers this request's 404 with 403 unless the caller may list the bucket. */
export const hidesMissingKeys = (req: ParsedRequest) =>
  req.service === 's3' &&
  req.key !== undefined &&
  (req.operation === 'GetObject' || req.operation === 'HeadObject');

/**
 * kms:Decrypt S3 makes when it returns an SSE-KMS object's bytes. The key comes from the response
 * (x-amz-server-side-encryption-aws-kms-key-id), else from what this proxy saw written, else the bucket
 * default. HeadObject returns metadata only and decrypts nothing, so it needs no KMS permission (the
 * HeadObject API reference lists only s3:GetObject / s3:ListBucket).
 */
export function s3ReadKmsRequirement(
  world: PolicyWorld,
  req: ParsedRequest,
  state: AuthzState,
  responseHeaders: Record<string, string>,
): Requirement | undefined {
  if (req.operation !== 'GetObject' || req.bucket === undefined || req.key === undefined) return undefined;
  const sse = responseHeaders['x-amz-server-side-encryption'];
  if (sse !== undefined && !sse.startsWith('aws:kms')) return undefined;
  const headerKey = responseHeaders['x-amz-server-side-encryption-aws-kms-key-id'];
  const keyArn = headerKey
    ? resolveKeyArn(world, headerKey)
    : (state.objectKeys.get(`${req.bucket}/${req.key}`) ?? world.bucketKmsKeys[req.bucket]);
  if (!keyArn) return undefined;
  const bucketKey =
    responseHeaders['x-amz-server-side-encryption-bucket-key-enabled']?.toLowerCase() === 'true' ||
    Boolean(world.bucketKeyEnabled?.[req.bucket]);
  return s3KmsRequirement(world, req, 'kms:Decrypt', keyArn, bucketKey);
}

// ---------------------------------------------------------------- KMS

const KMS_GLOBAL = new Set([
  'CreateKey',
  'ListKeys',
  'ListAliases',
  'GenerateRandom',
  'ConnectCustomKeyStore',
  'DescribeCustomKeyStores',
]);

function kmsRequirements(world: PolicyWorld, req: ParsedRequest): Requirement[] {
  const input = req.input ?? {};
  const action = `kms:${req.operation}`;
  const context: Context = { 'kms:CallerAccount': world.account };
  if (KMS_GLOBAL.has(req.operation)) return [{ action, resource: '*', context, implied: false }];
  const keyId = str(input.KeyId) ?? str(input.TargetKeyId) ?? str(input.DestinationKeyId);
  const aliasName = str(input.AliasName);
  // An alias in KeyId is resolved to its key; KMS puts the alias in kms:RequestAlias (KMS condition keys).
  if (keyId && /^(arn:[^:]+:kms:[^:]*:[^:]*:)?alias\//.test(keyId))
    context['kms:RequestAlias'] = keyId.replace(/^arn:[^:]+:kms:[^:]*:[^:]*:/, '');
  for (const [field, key] of [
    ['SigningAlgorithm', 'kms:SigningAlgorithm'],
    ['MessageType', 'kms:MessageType'],
    ['EncryptionAlgorithm', 'kms:EncryptionAlgorithm'],
    ['KeySpec', 'kms:DataKeySpec'],
    ['KeySpec', 'kms:KeySpec'],
    ['KeyUsage', 'kms:KeyUsage'],
    ['MacAlgorithm', 'kms:MacAlgorithm'],
  ] as const) {
    const v = str(input[field]);
    if (v !== undefined) context[key] = v;
  }
  const ec = obj(input.EncryptionContext);
  if (Object.keys(ec).length > 0) {
    context['kms:EncryptionContextKeys'] = Object.keys(ec);
    for (const [k, v] of Object.entries(ec))
      if (typeof v === 'string') context[`kms:EncryptionContext:${k}`] = v;
  }
  if (aliasName && !keyId) {
    return [
      {
        action,
        resource: `arn:aws:kms:${world.region}:${world.account}:${aliasName}`,
        context,
        implied: false,
      },
    ];
  }
  // Decrypt of a symmetric ciphertext may omit KeyId (the key is inside the blob, which we cannot read).
  const resource = keyId ? resolveKeyArn(world, keyId) : '*';
  const out: Requirement[] = [{ action, resource, context, implied: false }];
  // CreateAlias/UpdateAlias also authorize on the alias (KMS "Controlling access to aliases").
  if (
    aliasName &&
    (req.operation === 'CreateAlias' || req.operation === 'UpdateAlias' || req.operation === 'DeleteAlias')
  ) {
    out.unshift({
      action,
      resource: `arn:aws:kms:${world.region}:${world.account}:${aliasName}`,
      context,
      implied: false,
    });
  }
  return out;
}

// ---------------------------------------------------------------- DynamoDB

const TRANSACT_ACTION: Record<string, string> = {
  ConditionCheck: 'ConditionCheckItem',
  Put: 'PutItem',
  Update: 'UpdateItem',
  Delete: 'DeleteItem',
  Get: 'GetItem',
};

/*
 * A table encrypted with a customer managed key: "How Amazon DynamoDB uses AWS KMS"
 * (https://docs.aws.amazon.com/kms/latest/developerguide/services-dynamodb.html) describes a key policy
 * for the account's callers through DynamoDB (kms:ViaService dynamodb.<region>.amazonaws.com), the
 * grants DynamoDB creates, and a table key DynamoDB caches; it does not say which caller-side KMS
 * authorization happens on each data-plane call. So none is evaluated here (documented as a gap in
 * README.md); world.tableKmsKeys is carried for reports and a future rule.
 */
function dynamoRequirements(world: PolicyWorld, req: ParsedRequest): Requirement[] {
  const input = req.input ?? {};
  const table = (name: string) =>
    name.startsWith('arn:') ? name : `arn:aws:dynamodb:${world.region}:${world.account}:table/${name}`;
  const context: Context = {};
  for (const [field, key] of [
    ['Select', 'dynamodb:Select'],
    ['ReturnValues', 'dynamodb:ReturnValues'],
    ['ReturnConsumedCapacity', 'dynamodb:ReturnConsumedCapacity'],
  ] as const) {
    const v = str(input[field]);
    if (v !== undefined) context[key] = v;
  }
  const action = `dynamodb:${req.operation}`;
  switch (req.operation) {
    case 'ListTables':
    case 'DescribeLimits':
    case 'DescribeEndpoints':
      return [{ action, resource: '*', context, implied: false }];
    case 'BatchGetItem':
    case 'BatchWriteItem':
      return Object.keys(obj(input.RequestItems)).map((t) => ({
        action,
        resource: table(t),
        context,
        implied: false,
      }));
    case 'TransactWriteItems':
    case 'TransactGetItems':
      // Each item is authorized as its single-item action (DynamoDB "Using IAM with transactions").
      return arr(input.TransactItems).flatMap((item) =>
        Object.entries(obj(item)).map(([kind, spec]) => ({
          action: `dynamodb:${TRANSACT_ACTION[kind] ?? kind}`,
          resource: table(str(obj(spec).TableName) ?? ''),
          context: { ...context, 'dynamodb:EnclosingOperation': req.operation },
          implied: false,
        })),
      );
  }
  const name = str(input.TableName) ?? str(input.ResourceArn) ?? '';
  const index = str(input.IndexName);
  const resource = index ? `${table(name)}/index/${index}` : table(name);
  return [{ action, resource, context, implied: false }];
}

// ---------------------------------------------------------------- Step Functions

function statesRequirements(world: PolicyWorld, req: ParsedRequest, options: AuthzOptions): Requirement[] {
  const input = req.input ?? {};
  const action = `states:${req.operation}`;
  switch (req.operation) {
    // The SAR lists no resource type for the task-token actions ("*",
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsstepfunctions.html),
    // yet Step Functions accepts a grant on the state machine the token belongs to (observed by the
    // CDK maintainers, https://github.com/aws/aws-cdk/pull/8486, and what CDK's grantTaskResponse
    // grants). So: "*" always matches; a statement on the token's state machine matches when the
    // harness tells which one it is.
    case 'SendTaskSuccess':
    case 'SendTaskFailure':
    case 'SendTaskHeartbeat': {
      const token = str(input.taskToken);
      const scope = token ? options.stateMachineOfTaskToken?.(token) : undefined;
      return [{ action, resource: '*', context: {}, implied: false, ...(scope ? { scope } : {}) }];
    }
    case 'ListStateMachines':
    case 'ListActivities':
    case 'CreateStateMachine':
    case 'CreateActivity':
      return [{ action, resource: '*', context: {}, implied: false }];
  }
  const resource =
    str(input.stateMachineArn) ??
    str(input.executionArn) ??
    str(input.activityArn) ??
    str(input.mapRunArn) ??
    str(input.resourceArn) ??
    `arn:aws:states:${world.region}:${world.account}:unknown`;
  return [{ action, resource, context: {}, implied: false }];
}

// ---------------------------------------------------------------- EventBridge

function eventsRequirements(world: PolicyWorld, req: ParsedRequest): Requirement[] {
  const input = req.input ?? {};
  const bus = (name: string | undefined) =>
    name?.startsWith('arn:')
      ? name
      : `arn:aws:events:${world.region}:${world.account}:event-bus/${name ?? 'default'}`;
  if (req.operation === 'PutEvents') {
    // One authorization per entry with its events:source / events:detail-type (EventBridge condition keys).
    const seen = new Set<string>();
    const out: Requirement[] = [];
    for (const e of arr(input.Entries)) {
      const entry = obj(e);
      const context: Context = {};
      const source = str(entry.Source);
      const detailType = str(entry.DetailType);
      if (source !== undefined) context['events:source'] = source;
      if (detailType !== undefined) context['events:detail-type'] = detailType;
      const r: Requirement = {
        action: 'events:PutEvents',
        resource: bus(str(entry.EventBusName)),
        context,
        implied: false,
      };
      const id = JSON.stringify(r);
      if (!seen.has(id)) {
        seen.add(id);
        out.push(r);
      }
    }
    return out;
  }
  const rule = str(input.Rule) ?? str(input.Name);
  const resource = rule
    ? `arn:aws:events:${world.region}:${world.account}:rule/${str(input.EventBusName) && str(input.EventBusName) !== 'default' ? `${str(input.EventBusName)}/` : ''}${rule}`
    : bus(str(input.EventBusName));
  return [{ action: `events:${req.operation}`, resource, context: {}, implied: false }];
}

// ---------------------------------------------------------------- SageMaker

/** aws:RequestTag/<k> and aws:TagKeys of a Tags list (IAM "Controlling access during AWS requests"). */
function requestTags(tags: unknown): Context {
  const list = arr(tags).map(obj);
  if (list.length === 0) return {};
  const c: Context = { 'aws:TagKeys': list.map((t) => str(t.Key) ?? '') };
  for (const t of list) {
    const k = str(t.Key);
    if (k !== undefined) c[`aws:RequestTag/${k}`] = str(t.Value) ?? '';
  }
  return c;
}

const bool = (v: unknown) => (typeof v === 'boolean' ? String(v) : undefined);

/**
 * Context keys SageMaker sets from a create request, exactly when the request has the field (an
 * absent key stays absent, so ArnEquals on it fails as in AWS). Both the current `…KmsKeyArn` names
 * and the older `…KmsKey` names are set; the evaluator keeps only the keys the SAR lists for the action.
 */
function sagemakerCreateContext(op: string, input: Record<string, unknown>): Context {
  const c: Context = { ...requestTags(input.Tags) };
  const put = (key: string, v: string | string[] | undefined) => {
    if (v !== undefined && !(Array.isArray(v) && v.length === 0)) c[key] = v;
  };
  const kms = (name: string, v: string | undefined) => {
    put(`sagemaker:${name}`, v);
    put(`sagemaker:${name}Arn`, v);
  };
  const vpc = obj(input.VpcConfig);
  put(
    'sagemaker:VpcSubnets',
    arr(vpc.Subnets).filter((s): s is string => typeof s === 'string'),
  );
  put(
    'sagemaker:VpcSecurityGroupIds',
    arr(vpc.SecurityGroupIds).filter((s): s is string => typeof s === 'string'),
  );
  put('sagemaker:NetworkIsolation', bool(input.EnableNetworkIsolation));
  if (op === 'CreateTrainingJob') {
    const rc = obj(input.ResourceConfig);
    const types = [
      str(rc.InstanceType),
      ...arr(rc.InstanceGroups).map((g) => str(obj(g).InstanceType)),
    ].filter((s): s is string => s !== undefined);
    put('sagemaker:InstanceTypes', types);
    kms('VolumeKmsKey', str(rc.VolumeKmsKeyId));
    kms('OutputKmsKey', str(obj(input.OutputDataConfig).KmsKeyId));
    put('sagemaker:InterContainerTrafficEncryption', bool(input.EnableInterContainerTrafficEncryption));
    const max = obj(input.StoppingCondition).MaxRuntimeInSeconds;
    if (typeof max === 'number') put('sagemaker:MaxRuntimeInSeconds', String(max));
    put('sagemaker:EnableRemoteDebug', bool(obj(input.RemoteDebugConfig).EnableRemoteDebug));
    const keepAlive = rc.KeepAlivePeriodInSeconds;
    if (typeof keepAlive === 'number') put('sagemaker:KeepAlivePeriod', String(keepAlive));
  }
  if (op === 'CreateTransformJob') {
    const tr = obj(input.TransformResources);
    put('sagemaker:InstanceTypes', str(tr.InstanceType) ? [str(tr.InstanceType) as string] : undefined);
    kms('VolumeKmsKey', str(tr.VolumeKmsKeyId));
    kms('OutputKmsKey', str(obj(input.TransformOutput).KmsKeyId));
    const model = str(input.ModelName);
    if (model) put('sagemaker:ModelArn', model);
  }
  if (op === 'CreateProcessingJob') {
    const cluster = obj(obj(input.ProcessingResources).ClusterConfig);
    const net = obj(input.NetworkConfig);
    put(
      'sagemaker:InstanceTypes',
      str(cluster.InstanceType) ? [str(cluster.InstanceType) as string] : undefined,
    );
    kms('VolumeKmsKey', str(cluster.VolumeKmsKeyId));
    kms('OutputKmsKey', str(obj(input.ProcessingOutputConfig).KmsKeyId));
    put('sagemaker:NetworkIsolation', bool(net.EnableNetworkIsolation));
    put('sagemaker:InterContainerTrafficEncryption', bool(net.EnableInterContainerTrafficEncryption));
    const pvpc = obj(net.VpcConfig);
    put(
      'sagemaker:VpcSubnets',
      arr(pvpc.Subnets).filter((x): x is string => typeof x === 'string'),
    );
    put(
      'sagemaker:VpcSecurityGroupIds',
      arr(pvpc.SecurityGroupIds).filter((x): x is string => typeof x === 'string'),
    );
    const max = obj(input.StoppingCondition).MaxRuntimeInSeconds;
    if (typeof max === 'number') put('sagemaker:MaxRuntimeInSeconds', String(max));
  }
  if (op === 'CreateModelPackage') {
    put('sagemaker:ModelApprovalStatus', str(input.ModelApprovalStatus));
    for (const [k, v] of Object.entries(obj(input.CustomerMetadataProperties))) {
      if (typeof v === 'string') put(`sagemaker:CustomerMetadataProperties/${k}`, v);
    }
  }
  return c;
}

function sagemakerRequirements(world: PolicyWorld, req: ParsedRequest, state: AuthzState): Requirement[] {
  const input = req.input ?? {};
  // SageMaker ARNs carry resource names in lower case (as DescribeTrainingJob returns them).
  const arn = (type: string, name: string) =>
    `arn:aws:sagemaker:${world.region}:${world.account}:${type}/${name.toLowerCase()}`;
  const action = `sagemaker:${req.operation}`;
  const creates: Record<string, [string, string]> = {
    CreateTrainingJob: ['training-job', 'TrainingJobName'],
    CreateTransformJob: ['transform-job', 'TransformJobName'],
    CreateModel: ['model', 'ModelName'],
    CreateModelPackageGroup: ['model-package-group', 'ModelPackageGroupName'],
    CreateProcessingJob: ['processing-job', 'ProcessingJobName'],
  };
  let resource: string;
  if (req.operation === 'CreateModelPackage') {
    const group = str(input.ModelPackageGroupName);
    if (group) {
      // A versioned package is named <group>/<version>; versions count from 1 per group.
      const g = (group.startsWith('arn:') ? (group.split('/').pop() ?? group) : group).toLowerCase();
      const next = (state.packageVersions.get(g) ?? 0) + 1;
      state.packageVersions.set(g, next);
      resource = arn('model-package', `${g}/${next}`);
    } else {
      resource = arn('model-package', str(input.ModelPackageName) ?? '');
    }
  } else if (creates[req.operation]) {
    const [type, field] = creates[req.operation] as [string, string];
    resource = arn(type, str(input[field]) ?? '');
  } else {
    const describes: [string, string][] = [
      ['TrainingJobName', 'training-job'],
      ['TransformJobName', 'transform-job'],
      ['ProcessingJobName', 'processing-job'],
      ['ModelPackageGroupName', 'model-package-group'],
      ['ModelName', 'model'],
    ];
    const named = describes.find(([f]) => str(input[f]) !== undefined);
    // UpdateModelPackage names its version by ModelPackageArn (SageMaker API Reference).
    const pkg = str(input.ModelPackageName) ?? str(input.ModelPackageArn) ?? str(input.ResourceArn);
    resource = named ? arn(named[1], str(input[named[0]]) as string) : pkg?.startsWith('arn:') ? pkg : '*';
  }
  const context = req.operation.startsWith('Create') ? sagemakerCreateContext(req.operation, input) : {};
  const out: Requirement[] = [{ action, resource, context, implied: false }];
  // Tag-on-create: SageMaker also authorizes sagemaker:AddTags on the new resource
  // (https://docs.aws.amazon.com/sagemaker/latest/dg/security_iam_id-based-policy-examples.html#api-access-policy
  // "…to tag a resource on creation, the role needs sagemaker:AddTags").
  if (arr(input.Tags).length > 0 && req.operation.startsWith('Create')) {
    out.push({
      action: 'sagemaker:AddTags',
      resource,
      context: { ...requestTags(input.Tags), 'sagemaker:TaggingAction': req.operation },
      implied: true,
    });
  }
  // iam:PassRole of the execution role, evaluated on the caller (IAM "Granting a user permissions to pass a role").
  const role = str(input.RoleArn) ?? str(input.ExecutionRoleArn);
  if (role) {
    out.push({
      action: 'iam:PassRole',
      resource: role,
      context: { 'iam:PassedToService': 'sagemaker.amazonaws.com', 'iam:AssociatedResourceArn': resource },
      implied: true,
    });
  }
  return out;
}

// ---------------------------------------------------------------- SSM, SQS, Lambda

function ssmRequirements(world: PolicyWorld, req: ParsedRequest): Requirement[] {
  const input = req.input ?? {};
  const param = (name: string) =>
    name.startsWith('arn:')
      ? name
      : `arn:aws:ssm:${world.region}:${world.account}:parameter/${name.replace(/^\//, '')}`;
  const action = `ssm:${req.operation}`;
  const context: Context = {};
  if (typeof input.Recursive === 'boolean') context['ssm:Recursive'] = String(input.Recursive);
  if (req.operation === 'GetParameters' || req.operation === 'DeleteParameters') {
    return arr(input.Names).map((n) => ({ action, resource: param(String(n)), context, implied: false }));
  }
  if (req.operation === 'DescribeParameters') return [{ action, resource: '*', context, implied: false }];
  const name = str(input.Name) ?? str(input.Path) ?? '';
  return [{ action, resource: param(name), context, implied: false }];
}

function sqsRequirements(world: PolicyWorld, req: ParsedRequest): Requirement[] {
  const input = req.input ?? {};
  const url = str(input.QueueUrl);
  let resource = '*';
  if (url) {
    const parts = new URL(url).pathname.split('/').filter(Boolean);
    resource = `arn:aws:sqs:${world.region}:${parts[0] ?? world.account}:${parts[1] ?? ''}`;
  } else if (str(input.QueueName)) {
    resource = `arn:aws:sqs:${world.region}:${world.account}:${str(input.QueueName)}`;
  }
  const action = `sqs:${req.operation.replace(/Batch$/, '')}`;
  return [{ action, resource, context: {}, implied: false }];
}

function lambdaRequirements(world: PolicyWorld, req: ParsedRequest): Requirement[] {
  const name = str(req.input?.FunctionName) ?? '';
  const resource = name.startsWith('arn:')
    ? name
    : `arn:aws:lambda:${world.region}:${world.account}:function:${name}`;
  return [{ action: 'lambda:InvokeFunction', resource, context: {}, implied: false }];
}

/** Every authorization AWS makes before it runs this request, or undefined for an operation not modelled. */
export function requirementsFor(
  world: PolicyWorld,
  req: ParsedRequest,
  state: AuthzState,
  options: AuthzOptions = {},
): Requirement[] | undefined {
  if (req.operation.startsWith('Unknown')) return undefined;
  switch (req.service) {
    case 's3':
      return s3Requirements(world, req, state);
    case 'kms':
      return kmsRequirements(world, req);
    case 'dynamodb':
      return dynamoRequirements(world, req);
    case 'states':
      return statesRequirements(world, req, options);
    case 'events':
      return eventsRequirements(world, req);
    case 'sagemaker':
      return sagemakerRequirements(world, req, state);
    case 'ssm':
      return ssmRequirements(world, req);
    case 'sqs':
      return sqsRequirements(world, req);
    case 'lambda':
      return lambdaRequirements(world, req);
    default:
      return undefined;
  }
}
