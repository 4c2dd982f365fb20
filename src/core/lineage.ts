import { type Digest, hexOf, isDigest, sha256 } from './digest.js';
import { factsOf } from './run-facts.js';

/**
 * OpenLineage RunEvents (https://openlineage.io/spec/2-0-2/OpenLineage.json, `$defs/RunEvent`) for
 * veritrail runs: one START when a run is started, one COMPLETE or FAIL when it ends ("It is
 * required to issue 1 START event and 1 of [COMPLETE, ABORT, FAIL] event per run"). Datasets carry
 * their content digests in a custom dataset facet (`veritrail_digest`, schema in
 * schemas/openlineage/VeritrailDigestDatasetFacet.json) and, as the spec's own `version` facet
 * (DatasetVersionDatasetFacet), the digest text, so a consumer such as Marquez versions datasets by
 * content without knowing our facet.
 */

export const OPENLINEAGE_SCHEMA_URL = 'https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent';
/** `producer` / `_producer`: a URI naming the software that wrote the metadata (spec: BaseEvent). */
const LINEAGE_PRODUCER = 'https://veritrail.dev/openlineage/producer/v1';

const FACET_SCHEMAS = {
  version:
    'https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet',
  errorMessage:
    'https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet',
  nominalTime: 'https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet',
  jobType: 'https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet',
  digest:
    'https://veritrail.dev/spec/openlineage/1-0-0/VeritrailDigestDatasetFacet.json#/$defs/VeritrailDigestDatasetFacet',
  run: 'https://veritrail.dev/spec/openlineage/1-0-0/VeritrailRunFacet.json#/$defs/VeritrailRunFacet',
} as const;

type LineageEventType = 'START' | 'COMPLETE' | 'FAIL';

interface Facet {
  _producer: string;
  _schemaURL: string;
  [k: string]: unknown;
}

interface LineageDatasetJson {
  namespace: string;
  name: string;
  facets?: Record<string, Facet>;
}

/** A RunEvent as the spec defines it (only the parts veritrail writes). */
export interface RunEvent {
  eventType: LineageEventType;
  eventTime: string;
  producer: string;
  schemaURL: string;
  run: { runId: string; facets?: Record<string, Facet> };
  job: { namespace: string; name: string; facets?: Record<string, Facet> };
  inputs: LineageDatasetJson[];
  outputs: LineageDatasetJson[];
}

/** A dataset a run read or wrote, by where it is and (when known) what bytes it is. */
interface LineageDataset {
  namespace: string;
  name: string;
  digest?: Digest;
  uri?: string;
  versionId?: string;
}

/**
 * The OpenLineage run id of a veritrail run: a UUID (the spec requires `format: uuid`) derived
 * deterministically from the run id, so START and COMPLETE of one run agree wherever they are
 * emitted. Layout per RFC 9562 §5.8 (UUIDv8, custom) with the name-based SHA-256 construction of
 * RFC 9562 Appendix B.2: the first 128 bits of sha256, version nibble 8, variant bits 10.
 */
export function lineageRunId(runId: string): string {
  const b = sha256(`veritrail openlineage run\n${runId}`).slice(0, 16);
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x80;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * Namespace and name of a dataset location, per the OpenLineage naming conventions (spec/Naming.md):
 * S3 → namespace `s3://<bucket>`, name `<key>`; local file system → namespace `file`, name `<path>`.
 */
export function datasetNameOf(uri: string): { namespace: string; name: string } {
  const s3 = /^s3:\/\/([^/?]+)\/?([^?]*)/.exec(uri);
  if (s3 !== null) return { namespace: `s3://${s3[1] ?? ''}`, name: s3[2] || '/' };
  if (uri.startsWith('file://')) {
    let path = uri.slice('file://'.length);
    try {
      path = decodeURIComponent(path);
    } catch {
      /* keep the raw text: a name, not a path to open */
    }
    return { namespace: 'file', name: path || '/' };
  }
  return { namespace: 'veritrail', name: uri };
}

/**
 * Artifacts a run produces are named per pipeline and role (`<pipeline>/model`…) in namespace
 * `veritrail://<namespace>`, so each run is a new version of the same dataset, the version being
 * the content digest.
 */
function artifactDataset(namespace: string, pipeline: string, role: string, digest: Digest): LineageDataset {
  return { namespace: `veritrail://${namespace}`, name: `${pipeline}/${role}`, digest };
}

function facet(schemaURL: string, body: Record<string, unknown>, producer: string): Facet {
  return { _producer: producer, _schemaURL: schemaURL, ...body };
}

function datasetJson(d: LineageDataset, producer: string): LineageDatasetJson {
  const facets: Record<string, Facet> = {};
  if (d.digest !== undefined && isDigest(d.digest)) {
    facets.version = facet(FACET_SCHEMAS.version, { datasetVersion: d.digest }, producer);
    facets.veritrail_digest = facet(
      FACET_SCHEMAS.digest,
      {
        digest: { sha256: hexOf(d.digest) },
        ...(d.uri !== undefined ? { uri: d.uri } : {}),
        ...(d.versionId !== undefined ? { versionId: d.versionId } : {}),
      },
      producer,
    );
  } else if (d.versionId !== undefined) {
    // Not hashed yet (START on S3): the VersionId still names immutable bytes.
    facets.version = facet(FACET_SCHEMAS.version, { datasetVersion: d.versionId }, producer);
  }
  return { namespace: d.namespace, name: d.name, ...(Object.keys(facets).length > 0 ? { facets } : {}) };
}

export interface RunEventInput {
  eventType: LineageEventType;
  eventTime: Date | string;
  /** veritrail run id (`r-…`); the OpenLineage run id is derived from it. */
  runId: string;
  pipeline: string;
  /** Job namespace: `veritrail.local` or `veritrail.aws/<account or stack>`. */
  namespace: string;
  inputs: LineageDataset[];
  outputs?: LineageDataset[];
  trigger?: { type: string; idempotencyKey: string };
  pipelineDigest?: Digest;
  status?: string;
  /** The time a schedule fired for (NominalTimeRunFacet). */
  nominalTime?: string;
  error?: { code: string; message: string };
  producer?: string;
}

/** Builds one RunEvent; pure and deterministic for the same input. */
export function buildRunEvent(input: RunEventInput): RunEvent {
  const producer = input.producer ?? LINEAGE_PRODUCER;
  const runFacets: Record<string, Facet> = {
    veritrail: facet(
      FACET_SCHEMAS.run,
      {
        runId: input.runId,
        ...(input.trigger !== undefined ? { trigger: input.trigger } : {}),
        ...(input.pipelineDigest !== undefined ? { pipelineDigest: input.pipelineDigest } : {}),
        ...(input.status !== undefined ? { status: input.status } : {}),
      },
      producer,
    ),
  };
  if (input.nominalTime !== undefined) {
    runFacets.nominalTime = facet(
      FACET_SCHEMAS.nominalTime,
      { nominalStartTime: input.nominalTime },
      producer,
    );
  }
  if (input.error !== undefined) {
    runFacets.errorMessage = facet(
      FACET_SCHEMAS.errorMessage,
      { message: `${input.error.code}: ${input.error.message}`, programmingLanguage: 'TypeScript' },
      producer,
    );
  }
  const time = input.eventTime instanceof Date ? input.eventTime.toISOString() : input.eventTime;
  return {
    eventType: input.eventType,
    eventTime: time,
    producer,
    schemaURL: OPENLINEAGE_SCHEMA_URL,
    run: { runId: lineageRunId(input.runId), facets: runFacets },
    job: {
      namespace: input.namespace,
      name: input.pipeline,
      facets: {
        jobType: facet(
          FACET_SCHEMAS.jobType,
          { processingType: 'BATCH', integration: 'VERITRAIL', jobType: 'PIPELINE' },
          producer,
        ),
      },
    },
    inputs: input.inputs.map((d) => datasetJson(d, producer)),
    outputs: (input.outputs ?? []).map((d) => datasetJson(d, producer)),
  };
}

/** Fact digests of a run record, when they are well-formed. */
/**
 * The end event of a run from its record: COMPLETE for SUCCEEDED or REJECTED (the run completed;
 * the gate's refusal is a result, not a failure), FAIL for FAILED. Inputs are the raw data and the
 * training code; outputs the processed data and the model, each with the digest recorded.
 */
export function runEndEvent(args: {
  run: {
    runId: string;
    pipeline: string;
    pipelineDigest: Digest;
    status: string;
    trigger: string;
    idempotencyKey: string;
    dataset: { uri: string; versionId?: string };
    facts: Record<string, unknown>;
    error?: { code: string; message: string };
  };
  namespace: string;
  eventTime: Date | string;
}): RunEvent {
  const { run } = args;
  const { rawDigest: raw, codeDigest: code, processedDigest: processed, modelDigest: model } = factsOf(run);
  const inputs: LineageDataset[] = [
    {
      ...datasetNameOf(run.dataset.uri),
      uri: run.dataset.uri,
      ...(raw !== undefined ? { digest: raw } : {}),
      ...(run.dataset.versionId !== undefined ? { versionId: run.dataset.versionId } : {}),
    },
  ];
  if (code !== undefined) inputs.push(artifactDataset(args.namespace, run.pipeline, 'training-code', code));
  const outputs: LineageDataset[] = [];
  if (processed !== undefined)
    outputs.push(artifactDataset(args.namespace, run.pipeline, 'processed', processed));
  if (model !== undefined) outputs.push(artifactDataset(args.namespace, run.pipeline, 'model', model));
  const failed = run.status === 'FAILED';
  return buildRunEvent({
    eventType: failed ? 'FAIL' : 'COMPLETE',
    eventTime: args.eventTime,
    runId: run.runId,
    pipeline: run.pipeline,
    namespace: args.namespace,
    inputs,
    outputs,
    trigger: { type: run.trigger, idempotencyKey: run.idempotencyKey },
    pipelineDigest: run.pipelineDigest,
    status: run.status,
    ...(failed && run.error !== undefined ? { error: run.error } : {}),
  });
}
