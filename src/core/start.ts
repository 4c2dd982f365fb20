import { type Digest, digestsEqual, sha256 } from './digest.js';
import { type ErrorInfo, VeritrailError } from './errors.js';
import type { OperatorStart } from './events/operator.js';
import { datasetLocationOf } from './events/operator.js';
import type { S3ObjectCreatedEvent } from './events/s3.js';
import { ruleOf, type ScheduledEvent, type SchedulePayload } from './events/schedule.js';
import { canonicalDigest } from './jcs.js';
import { landingPrefixOf, type PipelineDefinition } from './pipeline.js';
import type { RunRecord } from './run.js';

/**
 * The pure half of the start path: what a trigger *is* (its content identity), the idempotency
 * key, run id and Step Functions execution name derived from it, and whether a scheduled
 * retraining has anything new to learn from. EventBridge delivers at least once and out of order
 * and operators double-click, so everything here is a function of the trigger's content, never
 * of when or how often it arrived (docs/design.md, invariant 4).
 */

// ───────────────────────────── triggers ─────────────────────────────

export interface S3Trigger {
  kind: 's3';
  pipeline: string;
  bucket: string;
  key: string;
  /** Present when the landing bucket is versioned (it is, in the deployed stack). */
  versionId?: string;
  etag: string;
  sequencer: string;
  size: number;
  /** EventBridge event id: recorded, not part of the identity (a redelivery has the same one, a replay not). */
  eventId: string;
}

/** A complete file in the local landing folder, already hashed. */
interface LocalFileTrigger {
  kind: 'local';
  pipeline: string;
  /** Where it landed; recorded, not part of the identity. */
  path: string;
  digest: Digest;
}

export interface ScheduleTrigger {
  kind: 'schedule';
  pipeline: string;
  /** Rule ARN on AWS, `local-schedule/<pipeline>` locally. */
  rule: string;
  /** The time the schedule fired for, as delivered. */
  time: string;
  force: boolean;
  eventId?: string;
}

export interface OperatorTrigger {
  kind: 'operator';
  pipeline: string;
  dataset: { uri: string; versionId?: string; digest?: Digest };
  requestId?: string;
  force: boolean;
  actor?: string;
}

export type Trigger = S3Trigger | LocalFileTrigger | ScheduleTrigger | OperatorTrigger;
export type TriggerKind = Trigger['kind'];

/** The trigger of a validated S3 "Object Created" event, for the pipeline its key resolved to. */
export function triggerFromS3Event(event: S3ObjectCreatedEvent, pipeline: string): S3Trigger {
  const o = event.detail.object;
  return {
    kind: 's3',
    pipeline,
    bucket: event.detail.bucket.name,
    key: o.key,
    ...(o['version-id'] !== undefined ? { versionId: o['version-id'] } : {}),
    etag: o.etag,
    sequencer: o.sequencer,
    size: o.size,
    eventId: event.id,
  };
}

/** The trigger of a raw Scheduled Event (a rule whose target gets the event unchanged). */
export function triggerFromScheduledEvent(
  event: ScheduledEvent,
  pipeline: string,
  force = false,
): ScheduleTrigger {
  return { kind: 'schedule', pipeline, rule: ruleOf(event), time: event.time, force, eventId: event.id };
}

/** The trigger of a schedule payload (AWS input transformer or local scheduler). */
export function triggerFromSchedulePayload(payload: SchedulePayload): ScheduleTrigger {
  return {
    kind: 'schedule',
    pipeline: payload.pipeline,
    rule: payload.rule,
    time: payload.time,
    force: payload.force,
    ...(payload.eventId !== undefined ? { eventId: payload.eventId } : {}),
  };
}

export function triggerFromOperatorStart(input: OperatorStart): OperatorTrigger {
  return {
    kind: 'operator',
    pipeline: input.pipeline,
    dataset: { ...input.dataset },
    force: input.force,
    ...(input.requestId !== undefined ? { requestId: input.requestId } : {}),
    ...(input.actor !== undefined ? { actor: input.actor } : {}),
  };
}

/**
 * The pipeline whose landing prefix (`landing.prefix`, default `<name>/`) holds `key`; the longest
 * prefix wins. `undefined` when no pipeline claims the key; PIPELINE_INVALID when two pipelines
 * claim it with the same prefix (the definitions must be told apart before anything runs).
 */
export function resolvePipelineForKey(
  key: string,
  pipelines: readonly PipelineDefinition[],
): PipelineDefinition | undefined {
  let best: PipelineDefinition | undefined;
  let bestLength = -1;
  let tie: PipelineDefinition | undefined;
  for (const def of pipelines) {
    const prefix = landingPrefixOf(def);
    if (!key.startsWith(prefix) || key.length === prefix.length) continue;
    if (prefix.length > bestLength) {
      best = def;
      bestLength = prefix.length;
      tie = undefined;
    } else if (prefix.length === bestLength) {
      tie = def;
    }
  }
  if (best !== undefined && tie !== undefined) {
    throw new VeritrailError(
      'PIPELINE_INVALID',
      `pipelines "${best.name}" and "${tie.name}" both land under "${landingPrefixOf(best)}"; give each its own landing.prefix`,
    );
  }
  return best;
}

// ───────────────────────────── identity and idempotency ─────────────────────────────

/** Version of the identity rules below; bump it if they ever change, so old and new keys never collide. */
const IDENTITY_VERSION = 1;

/** The JSON object an idempotency key is the RFC 8785 digest of. */
export type TriggerIdentity = Readonly<Record<string, string | number | boolean | null>>;

/** Floors an RFC 3339 time to its UTC minute: schedules have minute precision (cron has no seconds). */
export function scheduledMinuteOf(time: string): string {
  const ms = Date.parse(time);
  if (Number.isNaN(ms))
    throw new VeritrailError('EVENT_INVALID', `schedule time "${time}" is not an RFC 3339 date-time`);
  return new Date(Math.floor(ms / 60_000) * 60_000).toISOString();
}

function notPinned(uri: string, how: string): VeritrailError {
  return new VeritrailError(
    'EVENT_INVALID',
    `dataset ${uri} is not pinned: ${how} before deriving the idempotency key (an unpinned "latest" would name different bytes over time)`,
    { details: { uri } },
  );
}

/**
 * What makes a trigger the same trigger. Each rule names content, never arrival:
 *  - S3: pipeline + bucket + key + VersionId. A version id names immutable bytes, and every
 *    redelivery of the event carries it. Unversioned buckets have none, so ETag + sequencer stand
 *    in: the sequencer orders PUTs of one key, so a re-upload is a new trigger and a redelivery is not.
 *  - local file: pipeline + dataset content digest. The same bytes landing again, under any name,
 *    are the same trigger (the issue's "recorded as a duplicate of the first").
 *  - schedule: pipeline + rule + scheduled minute. Every delivery of one firing carries the same
 *    rule and time; the next firing has another minute. Minute flooring makes the local scheduler's
 *    few milliseconds of lateness irrelevant.
 *  - operator: pipeline + dataset identity (digest if given, else URI + VersionId) + requestId +
 *    force. A double-click or a retried request repeats the requestId and starts one run; a
 *    deliberate rerun uses a new requestId; asking again with force is a different request.
 *    Without a requestId, starting the same pinned dataset again is the same trigger.
 * `force` of a schedule, actors, event ids and paths are recorded, not identifying.
 */
export function triggerIdentity(trigger: Trigger): TriggerIdentity {
  const base = { v: IDENTITY_VERSION, kind: trigger.kind, pipeline: trigger.pipeline };
  switch (trigger.kind) {
    case 's3':
      return trigger.versionId !== undefined
        ? { ...base, bucket: trigger.bucket, key: trigger.key, versionId: trigger.versionId }
        : {
            ...base,
            bucket: trigger.bucket,
            key: trigger.key,
            etag: trigger.etag,
            sequencer: trigger.sequencer,
          };
    case 'local':
      return { ...base, digest: trigger.digest };
    case 'schedule':
      return { ...base, rule: trigger.rule, scheduledTime: scheduledMinuteOf(trigger.time) };
    case 'operator': {
      const { uri, versionId, digest } = trigger.dataset;
      let dataset: Record<string, string>;
      if (digest !== undefined) {
        dataset = { datasetDigest: digest };
      } else {
        const loc = datasetLocationOf(uri);
        if ('problem' in loc) throw new VeritrailError('EVENT_INVALID', `dataset uri ${uri}: ${loc.problem}`);
        if (loc.location.scheme === 'file') throw notPinned(uri, 'hash it (give dataset.digest)');
        if (versionId === undefined) throw notPinned(uri, 'resolve its S3 VersionId (HeadObject)');
        dataset = { datasetUri: uri, datasetVersionId: versionId };
      }
      return { ...base, ...dataset, requestId: trigger.requestId ?? null, force: trigger.force };
    }
  }
}

/** An idempotency key: `sha256:<hex>` of the RFC 8785 form of the trigger's identity. */
export type IdempotencyKey = Digest;

export function idempotencyKeyOf(trigger: Trigger): IdempotencyKey {
  return canonicalDigest(triggerIdentity(trigger));
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** RFC 4648 base32 (lowercase, no padding) of the first `chars * 5` bits of `bytes`. */
function base32Prefix(bytes: Uint8Array, chars: number): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < chars) {
      out += BASE32[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
    if (out.length >= chars) break;
  }
  return out;
}

/** Run ids are `r-` + 26 base32 characters (130 bits) of sha256(idempotency key). */
export const RUN_ID_PATTERN = /^r-[a-z2-7]{26}$/;

/** The run id of an idempotency key: deterministic, so a redelivered trigger finds its run. */
export function runIdOf(key: IdempotencyKey): string {
  return `r-${base32Prefix(sha256(`veritrail run id\n${key}`), 26)}`;
}

/** Step Functions execution names: 1-80 characters from `[A-Za-z0-9-_]` (StartExecution, `name`). */
export const EXECUTION_NAME_PATTERN = /^[A-Za-z0-9_-]{1,80}$/;

/**
 * `<pipeline>-<kind>-<runId>`, readable in the console and unique per idempotency key (the run id
 * is). Starting an execution under an existing name fails with ExecutionAlreadyExists for 90 days,
 * which is how a duplicate delivery is turned away on AWS. Characters outside the allowed set
 * become `_` and the pipeline part is shortened so the name always fits.
 */
export function executionNameOf(pipeline: string, kind: TriggerKind, runId: string): string {
  const clean = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, '_');
  const tail = `-${clean(kind)}-${clean(runId)}`.slice(-79);
  const head = clean(pipeline).slice(0, 80 - tail.length) || 'p';
  return `${head}${tail}`.slice(0, 80);
}

export interface StartPlan {
  identity: TriggerIdentity;
  idempotencyKey: IdempotencyKey;
  runId: string;
  executionName: string;
}

/**
 * Identity, idempotency key, run id and execution name of a trigger, in one call. With the
 * pipeline definition's digest, a changed definition makes a new identity: the same data under a
 * new definition is a new run, not a duplicate of the old one.
 */
export function planStart(trigger: Trigger, definition?: Digest): StartPlan {
  const identity: TriggerIdentity =
    definition === undefined ? triggerIdentity(trigger) : { ...triggerIdentity(trigger), definition };
  const idempotencyKey = canonicalDigest(identity);
  const runId = runIdOf(idempotencyKey);
  return {
    identity,
    idempotencyKey,
    runId,
    executionName: executionNameOf(trigger.pipeline, trigger.kind, runId),
  };
}

// ───────────────────────────── retraining ─────────────────────────────

/** The digests that decide whether retraining can learn anything new. */
export interface RunInputs {
  /** Dataset digest (sha256 of the canonical manifest). */
  data: Digest;
  /** Training code (folder digest, or image digest on AWS). */
  code: Digest;
  /** Pipeline definition (canonical JSON digest). */
  definition: Digest;
  /** The gate policy's bytes (the file gate.policy names, or the shipped default). */
  policy?: Digest;
  /** The trainer environment locally (interpreter, version, packages); on AWS the image is in the definition. */
  environment?: Digest;
}

export type RetrainDecision =
  | {
      action: 'train';
      reason: 'forced' | 'no-successful-run' | 'inputs-changed';
      changed: (keyof RunInputs)[];
    }
  | { action: 'skip'; sinceRunId: string; reason: string };

/**
 * Scheduled retraining: train when forced, when nothing succeeded before, or when data, code or
 * definition differ from the last successful run; otherwise skip, naming that run, so the caller
 * records a signed "no change since run X" audit entry instead of training again.
 */
export function decideRetrain(args: {
  latestInputs: RunInputs;
  lastSuccessfulRun?: { runId: string; inputs: RunInputs } | undefined;
  force: boolean;
}): RetrainDecision {
  const { latestInputs, lastSuccessfulRun, force } = args;
  // Policy and environment count when known now; an earlier run that did not record them counts
  // as changed (its identity cannot be shown to be the same).
  const fields: (keyof RunInputs)[] = [
    'data',
    'code',
    'definition',
    ...(latestInputs.policy !== undefined ? (['policy'] as const) : []),
    ...(latestInputs.environment !== undefined ? (['environment'] as const) : []),
  ];
  const same = (a: Digest | undefined, b: Digest | undefined) =>
    a !== undefined && b !== undefined && digestsEqual(a, b);
  const changed =
    lastSuccessfulRun === undefined
      ? fields
      : fields.filter((f) => !same(latestInputs[f], lastSuccessfulRun.inputs[f]));
  if (force) return { action: 'train', reason: 'forced', changed };
  if (lastSuccessfulRun === undefined) return { action: 'train', reason: 'no-successful-run', changed };
  if (changed.length > 0) return { action: 'train', reason: 'inputs-changed', changed };
  return {
    action: 'skip',
    sinceRunId: lastSuccessfulRun.runId,
    reason: `no change since run ${lastSuccessfulRun.runId}: ${fields.join(', ')} digests are identical`,
  };
}

/** What one trigger came to. Input problems are outcomes, never exceptions. */
export type StartOutcome =
  | {
      status: 'started';
      runId: string;
      pipeline: string;
      executionName: string;
      idempotencyKey: string;
      trigger: Trigger['kind'];
    }
  | {
      /** The same trigger (or the same content) was started before: nothing new was started. */
      status: 'duplicate';
      runId: string;
      pipeline: string;
      executionName: string;
      runStatus: RunRecord['status'] | 'SKIPPED';
      /** A PENDING run was handed to the orchestrator again (it never started, e.g. after a crash). */
      relaunched: boolean;
    }
  | {
      status: 'skipped';
      runId: string;
      pipeline: string;
      sinceRunId: string;
      reason: string;
      /** Artifacts key of the signed retrain-skip/v1 bundle. */
      bundleKey: string;
    }
  | { status: 'rejected'; error: ErrorInfo; pipeline?: string }
  | { status: 'ignored'; reason: string };
