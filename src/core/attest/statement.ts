import { z } from 'zod';
import { type Digest, hexOf } from '../digest.js';
import { canonicalBytes } from '../jcs.js';

/**
 * in-toto Statement v1 (https://github.com/in-toto/attestation, spec/v1/statement.md) and
 * ResourceDescriptor (spec/v1/resource_descriptor.md).
 */
const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
/** DSSE payloadType for in-toto statements (spec/v1/envelope.md). */
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

/** DigestSet: algorithm → lowercase hex (spec/v1/digest_set.md). */
export type DigestSet = Record<string, string>;

export interface ResourceDescriptor {
  name?: string;
  uri?: string;
  digest?: DigestSet;
  /** base64 */
  content?: string;
  downloadLocation?: string;
  mediaType?: string;
  annotations?: Record<string, unknown>;
}

export interface Statement<P = unknown, T extends string = string> {
  _type: typeof STATEMENT_TYPE;
  subject: (ResourceDescriptor & { digest: DigestSet })[];
  predicateType: T;
  predicate: P;
}

/** A ResourceDescriptor naming an artifact by its sha256 digest. */
export function resource(
  name: string,
  digest: Digest,
  extra?: Omit<ResourceDescriptor, 'name' | 'digest'>,
): ResourceDescriptor & { digest: { sha256: string } } {
  return { name, digest: { sha256: hexOf(digest) }, ...extra };
}

/** Builds a Statement v1. At least one subject, each with a digest (statement.md "subject"). */
export function buildStatement<P, T extends string>(
  subject: (ResourceDescriptor & { digest: DigestSet })[],
  predicateType: T,
  predicate: P,
): Statement<P, T> {
  if (subject.length === 0) throw new TypeError('an in-toto statement needs at least one subject');
  return { _type: STATEMENT_TYPE, subject, predicateType, predicate };
}

/**
 * The DSSE payload of a statement: its RFC 8785 canonical JSON. Canonical bytes make the payload
 * digest a function of the statement alone, which the chain checker relies on when a gate
 * decision names the fairness statement it read by that digest.
 */
export function statementPayload(statement: Statement): Uint8Array {
  return canonicalBytes(statement);
}

// ───────────────────────── parsing (attacker-controlled input) ─────────────────────────

const HEX_SHA256 = /^[0-9a-f]{64}$/;

/** DigestSet with hex values; a `sha256` entry must be 64 lowercase hex digits. */
const DigestSetSchema = z
  .record(z.string().min(1), z.string().regex(/^[0-9a-fA-F]+$/, 'digest values are hex'))
  .refine(
    (d) => d.sha256 === undefined || HEX_SHA256.test(d.sha256),
    'sha256 must be 64 lowercase hex digits',
  );

/**
 * ResourceDescriptor: all fields optional, but one of uri, digest, content must be set.
 * Unknown fields are kept and ignored (spec/v1/README.md "Parsing rules").
 */
const ResourceDescriptorSchema = z
  .looseObject({
    name: z.string().optional(),
    uri: z.string().optional(),
    digest: DigestSetSchema.optional(),
    content: z.string().optional(),
    downloadLocation: z.string().optional(),
    mediaType: z.string().optional(),
    annotations: z.record(z.string(), z.unknown()).optional(),
  })
  .refine(
    (r) => r.uri !== undefined || r.digest !== undefined || r.content !== undefined,
    'a ResourceDescriptor needs one of uri, digest or content',
  );

/** A ResourceDescriptor that must carry a sha256 digest (what every veritrail link is made of). */
export const Sha256ResourceSchema = z.looseObject({
  name: z.string().optional(),
  uri: z.string().optional(),
  digest: z.looseObject({ sha256: z.string().regex(HEX_SHA256, 'sha256 must be 64 lowercase hex digits') }),
  mediaType: z.string().optional(),
  annotations: z.record(z.string(), z.unknown()).optional(),
});

export const StatementSchema = z.looseObject({
  _type: z.literal(STATEMENT_TYPE),
  subject: z
    .array(ResourceDescriptorSchema.and(z.looseObject({ digest: DigestSetSchema })))
    .min(1, 'a statement needs at least one subject'),
  predicateType: z.string().min(1),
  // statement.md: "Unset is treated the same as set-but-empty."
  predicate: z.record(z.string(), z.unknown()).optional(),
});
