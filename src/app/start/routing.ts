/**
 * Routing of a trigger: which control-plane input (EventBridge event, schedule payload, operator
 * start, a file in a local landing folder) becomes which start request, for which loaded pipeline
 * and which pinned dataset (docs/triggers.md). Nothing is recorded here: the service
 * (src/app/start/service.ts) records what it decides.
 */

import { pathToFileURL } from 'node:url';
import { type Digest, digestOf } from '../../core/digest.js';
import { type ErrorCode, VeritrailError } from '../../core/errors.js';
import { type ControlPlaneInput, ruleOf } from '../../core/events/index.js';
import type { ExecState } from '../../core/exec-state.js';
import { canonicalDigest } from '../../core/jcs.js';
import type { PipelineDefinition } from '../../core/pipeline.js';
import {
  resolvePipelineForKey,
  type Trigger,
  triggerFromOperatorStart,
  triggerFromS3Event,
  triggerFromScheduledEvent,
  triggerFromSchedulePayload,
} from '../../core/start.js';
import type { DatasetSource, PinnedDataset } from '../../ports.js';
import { datasetDigestOf } from '../../steps/hash-dataset.js';

/** A pipeline definition as the start path needs it. `base` only locally (AWS runs the image). */
export interface StartPipeline {
  def: PipelineDefinition;
  /** Digest of the canonical definition (RFC 8785). */
  digest: Digest;
  /** file: URI of the definition's folder; absent on AWS, where the training code is the image. */
  base?: string;
}

/** A file that landed in a local landing folder, complete and hashed. */
export interface LandedFile {
  pipeline: string;
  /** Absolute path. */
  path: string;
  digest: Digest;
}

/** What a trigger asks to start: the request the service records, skips or launches. */
export interface StartRequest {
  trigger: Trigger;
  pipeline: StartPipeline;
  dataset?: PinnedDataset;
  /** Identifies this delivery among duplicates (the raw event's digest, or the landed path). */
  delivery: string;
  /** Schedules and operator starts may be skipped when nothing changed; uploads never are. */
  retrain: boolean;
  force: boolean;
  actor: string;
  nominalTime?: string;
}

/** What routing needs: the loaded pipelines, who starts, and where operator datasets are read. */
export interface RoutingDeps {
  pipelines: readonly StartPipeline[];
  datasets: DatasetSource;
  actor: string;
  /** On AWS: S3 events from any other bucket are refused. */
  landingBucket?: string;
}

type ExecTriggerType = ExecState['trigger']['type'];

/** The execution's trigger type of a trigger kind (a local landing folder is a `landing`). */
export function execTypeOf(kind: Trigger['kind']): ExecTriggerType {
  return kind === 'local' ? 'landing' : kind;
}

export function reject(code: ErrorCode, message: string, details?: Record<string, unknown>): VeritrailError {
  return new VeritrailError(code, message, details ? { details } : undefined);
}

/** sha256 of the canonical JSON of anything a caller sent, for idempotent audit entries. */
export function deliveryDigest(raw: unknown): Digest {
  try {
    return canonicalDigest(raw);
  } catch {
    return digestOf(String(raw));
  }
}

/** The pipeline name an input claims, if it is a well-formed one (to file a rejection under it). */
export function pipelineNameIn(raw: unknown): string | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const p = (raw as { pipeline?: unknown }).pipeline;
  return typeof p === 'string' && /^[a-z][a-z0-9-]{1,38}[a-z0-9]$/.test(p) ? p : undefined;
}

/** Turns control-plane inputs and landed files into start requests for the loaded pipelines. */
export class TriggerRouter {
  private readonly byName: Map<string, StartPipeline>;

  constructor(private readonly deps: RoutingDeps) {
    this.byName = new Map(deps.pipelines.map((p) => [p.def.name, p]));
    if (this.byName.size !== deps.pipelines.length) {
      throw new VeritrailError(
        'PIPELINE_INVALID',
        'two pipeline definitions have the same name; names must be unique',
      );
    }
  }

  /** The loaded pipeline of that name, if any. */
  find(name: string): StartPipeline | undefined {
    return this.byName.get(name);
  }

  /** The loaded pipeline of that name; EVENT_INVALID naming the loaded ones otherwise. */
  pipeline(name: string): StartPipeline {
    const p = this.byName.get(name);
    if (p === undefined) {
      const known = [...this.byName.keys()].join(', ') || 'none';
      throw reject(
        'EVENT_INVALID',
        `no pipeline named "${name}" is loaded here (loaded: ${known}); check the name`,
        {
          pipeline: name,
        },
      );
    }
    return p;
  }

  /** A complete file in a local landing folder: the same content, under any name, is one trigger. */
  landed(file: LandedFile, delivery: string): StartRequest {
    return {
      trigger: { kind: 'local', pipeline: file.pipeline, path: file.path, digest: file.digest },
      pipeline: this.pipeline(file.pipeline),
      dataset: { uri: pathToFileURL(file.path).href, digest: file.digest },
      delivery,
      retrain: false,
      force: false,
      actor: this.deps.actor,
    };
  }

  /** The request a parsed control-plane input makes, or why it starts nothing. */
  async requestOf(input: ControlPlaneInput, delivery: string): Promise<StartRequest | { ignored: string }> {
    switch (input.kind) {
      case 's3-object-created': {
        const { bucket, object } = input.event.detail;
        if (this.deps.landingBucket !== undefined && bucket.name !== this.deps.landingBucket) {
          throw reject(
            'EVENT_INVALID',
            `S3 event from bucket "${bucket.name}", but the landing bucket is "${this.deps.landingBucket}"; check the rule`,
          );
        }
        const def = resolvePipelineForKey(
          object.key,
          this.deps.pipelines.map((p) => p.def),
        );
        if (def === undefined) {
          throw reject(
            'EVENT_INVALID',
            `no pipeline lands under "${object.key}": upload under a pipeline's landing prefix (${this.deps.pipelines
              .map((p) => p.def.landing?.prefix ?? `${p.def.name}/`)
              .join(', ')})`,
            { key: object.key },
          );
        }
        const trigger = triggerFromS3Event(input.event, def.name);
        return {
          trigger,
          pipeline: this.pipeline(def.name),
          dataset: {
            uri: `s3://${bucket.name}/${object.key}`,
            ...(object['version-id'] !== undefined ? { versionId: object['version-id'] } : {}),
          },
          delivery,
          retrain: false,
          force: false,
          actor: this.deps.actor,
        };
      }
      case 'scheduled-event': {
        const rule = ruleOf(input.event);
        const ruleName = rule.slice(rule.lastIndexOf('/') + 1);
        const candidates = this.deps.pipelines.filter((p) => p.def.schedule && ruleName.includes(p.def.name));
        const [only] = candidates;
        if (only === undefined || candidates.length > 1) {
          throw reject(
            'EVENT_INVALID',
            `a raw Scheduled Event from rule ${rule} names no single pipeline; give the rule target the input of scheduleInputTransformer (src/core/rules.ts)`,
          );
        }
        const force = only.def.schedule?.force ?? false;
        return this.scheduleRequest(triggerFromScheduledEvent(input.event, only.def.name, force), delivery);
      }
      case 'schedule-payload':
        return this.scheduleRequest(triggerFromSchedulePayload(input.payload), delivery);
      case 'operator-start': {
        const op = input.input;
        const pipeline = this.pipeline(op.pipeline);
        const dataset = await this.pinOperatorDataset(op.dataset);
        const trigger = triggerFromOperatorStart({ ...op, dataset: { ...op.dataset, ...dataset } });
        return {
          trigger,
          pipeline,
          dataset,
          delivery,
          retrain: true,
          force: op.force,
          actor: op.actor ?? this.deps.actor,
        };
      }
      case 'training-state-change':
        return {
          ignored: 'a SageMaker training job state change is not a start trigger (the Train step handles it)',
        };
    }
  }

  /** A schedule's request; its dataset is found when it starts (the newest under its landing). */
  private scheduleRequest(trigger: Trigger & { kind: 'schedule' }, delivery: string): StartRequest {
    return {
      trigger,
      pipeline: this.pipeline(trigger.pipeline),
      delivery,
      retrain: true,
      force: trigger.force,
      actor: this.deps.actor,
      nominalTime: trigger.time,
    };
  }

  /** Pins an operator's dataset: its S3 VersionId, or its content digest for a local path. */
  private async pinOperatorDataset(ref: PinnedDataset): Promise<PinnedDataset> {
    if (ref.digest !== undefined || ref.versionId !== undefined) return { ...ref };
    const files = await this.deps.datasets.list(ref.uri);
    if (ref.uri.startsWith('s3://')) {
      const [only] = files;
      if (files.length !== 1 || only === undefined) {
        throw reject(
          'EVENT_INVALID',
          `dataset ${ref.uri} is a prefix of ${files.length} objects; start one object, or give dataset.digest`,
        );
      }
      return only.versionId !== undefined ? { uri: ref.uri, versionId: only.versionId } : { uri: ref.uri };
    }
    return { uri: ref.uri, digest: await datasetDigestOf(this.deps.datasets, files) };
  }
}
