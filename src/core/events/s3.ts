import { z } from 'zod';
import { envelopeShape, parseWith, safeObjectKey } from './common.js';

/**
 * "Object Created" as Amazon S3 sends it to EventBridge (Amazon S3 User Guide, "EventBridge event
 * message structure"). The key is the object key as is: EventBridge does not URL-encode it (a
 * key such as `raw/2023-08-08T14:03:40.zip` arrives with its colons), so it is never decoded here.
 */

/** S3 bucket names (general purpose and legacy us-east-1 names, which allowed capitals and _). */
const bucketName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$/, 'must be an S3 bucket name');

const S3ObjectCreatedEventSchema = z.looseObject({
  ...envelopeShape,
  'detail-type': z.literal('Object Created'),
  source: z.literal('aws.s3'),
  detail: z.looseObject({
    version: z.string(),
    bucket: z.looseObject({ name: bucketName }),
    object: z.looseObject({
      key: safeObjectKey,
      size: z.number().int().nonnegative(),
      etag: z.string().min(1, 'must not be empty'),
      /** Absent when the bucket is not versioned. */
      'version-id': z.string().min(1, 'must not be empty').optional(),
      /** Hex; orders the PUTs of one key, so it tells two uploads of the same key apart. */
      sequencer: z.string().regex(/^[0-9A-Fa-f]+$/, 'must be hexadecimal'),
    }),
    'request-id': z.string(),
    requester: z.string().min(1, 'must not be empty'),
    'source-ip-address': z.string().optional(),
    /** PutObject, POST Object, CopyObject or CompleteMultipartUpload; kept open for new APIs. */
    reason: z.string().min(1, 'must not be empty'),
  }),
});

export type S3ObjectCreatedEvent = z.infer<typeof S3ObjectCreatedEventSchema>;

/** Validates an S3 "Object Created" EventBridge event; EVENT_INVALID / PATH_REJECTED name the field. */
export function parseS3ObjectCreatedEvent(value: unknown): S3ObjectCreatedEvent {
  return parseWith(S3ObjectCreatedEventSchema, value, 'S3 "Object Created" event');
}
