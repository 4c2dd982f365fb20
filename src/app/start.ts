/**
 * The start service: the one start path of both modes. AWS (functions/start.ts) launches a Step
 * Functions execution; the local control plane (src/local/control-plane.ts) queues an in-process
 * execution. Everything else is the same code: validate the trigger, resolve the pipeline, pin the
 * dataset, derive the run id from the trigger's content identity, record the run PENDING with a
 * conditional write, launch (docs/design.md, "One run, as data flows"; invariant 4).
 */

import { pathToFileURL } from 'node:url';
import { hashStream, putBytesCas, putJsonCas, readObject } from '../cas.js';
import {
  buildRetrainSkipStatement,
  parseBundle,
  serializeBundle,
  signStatement,
} from '../core/attest/index.js';
import { type Digest, digestFromHex, digestOf } from '../core/digest.js';
import { type ErrorCode, toErrorInfo, VeritrailError } from '../core/errors.js';
import { type ControlPlaneInput, parseControlPlaneInput, ruleOf } from '../core/events/index.js';
import type { ExecState } from '../core/exec-state.js';
import { canonicalDigest } from '../core/jcs.js';
import { SKIP_RECORD_PREFIX } from '../core/layout.js';
import { buildRunEvent, datasetNameOf } from '../core/lineage.js';
import { buildManifest, manifestDigest } from '../core/manifest.js';
import type { PipelineDefinition } from '../core/pipeline.js';
import { factsOf } from '../core/run-facts.js';
import {
  decideRetrain,
  planStart,
  type RetrainDecision,
  type RunInputs,
  resolvePipelineForKey,
  type StartOutcome,
  type StartPlan,
  type Trigger,
  triggerFromOperatorStart,
  triggerFromS3Event,
  triggerFromScheduledEvent,
  triggerFromSchedulePayload,
} from '../core/start.js';
import { unitOf } from '../core/unit.js';
import type {
  AuditLog,
  DatasetFile,
  DatasetSource,
  LandingIndex,
  Launch,
  LineageSink,
  ObjectStore,
  PinnedDataset,
  RunRecord,
  RunStore,
  Signer,
} from '../ports.js';
import type { Runtime } from '../runtime.js';
import { noteSigningKey } from '../steps/attest.js';
import { trainingCodeSource } from '../steps/check-code.js';
import { readGatePolicy } from '../steps/gate-policy.js';
import { trainerEnvironment } from '../steps/trainer-env.js';
import { signedOutcomeOfRun } from './signed-truth.js';

/** A pipeline definition as the start path needs it. `base` only locally (AWS runs the image). */
export interface StartPipeline {
  def: PipelineDefinition;
  /** Digest of the canonical definition (RFC 8785). */
  digest: Digest;
  /** file: URI of the definition's folder; absent on AWS, where the training code is the image. */
  base?: string;
}

export interface StartDeps {
  runs: RunStore;
  objects: ObjectStore;
  datasets: DatasetSource;
  audit: AuditLog;
  signer: Signer;
  actor: string;
  now(): Date;
  pipelines: readonly StartPipeline[];
  launch: Launch;
  landing?: LandingIndex;
  lineage?: LineageSink;
  /** Job namespace of lineage events: `veritrail.local` or `veritrail.aws/<stack>`. */
  lineageNamespace?: string;
  /** On AWS: S3 events from any other bucket are refused. */
  landingBucket?: string;
  /** Reports problems that do not change the outcome (a lineage sink that is down). */
  warn?: (message: string) => void;
  /**
   * The most bytes of new data a scheduled retrain hashes to decide whether anything changed.
   * Above it the run is started and HashDataset (a Distributed Map) settles the digest: the start
   * function has 60 s. Absent (locally): no limit.
   */
  retrainHashBudgetBytes?: number;
  /**
   * The audit log and signer of a business unit (src/core/unit.ts), for a service that starts
   * pipelines of several units (the local control plane). Absent: every pipeline's entries go to
   * `audit` and retrain-skip statements are signed by `signer`.
   */
  unitPorts?: (unit: string) => Promise<{ audit: AuditLog; signer: Signer }>;
}

/** A file that landed in a local landing folder, complete and hashed. */
export interface LandedFile {
  pipeline: string;
  /** Absolute path. */
  path: string;
  digest: Digest;
}

/** Codes that mean "this input cannot start anything": recorded as a rejection, not retried. */
const INPUT_CODES: ReadonlySet<ErrorCode> = new Set([
  'EVENT_INVALID',
  'PATH_REJECTED',
  'PIPELINE_INVALID',
  'DATASET_MISSING',
  'DATASET_EMPTY',
  'DATASET_UNREADABLE',
  'USAGE',
]);

type ExecTriggerType = ExecState['trigger']['type'];

interface Request {
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

function execTypeOf(kind: Trigger['kind']): ExecTriggerType {
  return kind === 'local' ? 'landing' : kind;
}

function reject(code: ErrorCode, message: string, details?: Record<string, unknown>): VeritrailError {
  return new VeritrailError(code, message, details ? { details } : undefined);
}

/** sha256 of the canonical JSON of anything a caller sent, for idempotent audit entries. */
function deliveryDigest(raw: unknown): Digest {
  try {
    return canonicalDigest(raw);
  } catch {
    return digestOf(String(raw));
  }
}

function pipelineNameIn(raw: unknown): string | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const p = (raw as { pipeline?: unknown }).pipeline;
  return typeof p === 'string' && /^[a-z][a-z0-9-]{1,38}[a-z0-9]$/.test(p) ? p : undefined;
}

export class StartService {
  private readonly byName: Map<string, StartPipeline>;

  constructor(private readonly deps: StartDeps) {
    this.byName = new Map(deps.pipelines.map((p) => [p.def.name, p]));
    if (this.byName.size !== deps.pipelines.length) {
      throw new VeritrailError(
        'PIPELINE_INVALID',
        'two pipeline definitions have the same name; names must be unique',
      );
    }
  }

  get pipelines(): readonly StartPipeline[] {
    return this.deps.pipelines;
  }

  /** The audit log and signer of a pipeline's unit; an input that names no loaded pipeline: the service's own. */
  private async portsOf(pipeline: StartPipeline | undefined): Promise<{ audit: AuditLog; signer: Signer }> {
    if (pipeline === undefined || this.deps.unitPorts === undefined) return this.deps;
    return this.deps.unitPorts(unitOf(pipeline.def));
  }

  /**
   * Handles any control-plane input (EventBridge event, schedule payload, operator start). A
   * malformed or unroutable input is recorded in the audit log (`trigger.rejected`) and returned as
   * `rejected`; infrastructure failures (TRANSIENT…) are thrown so the caller retries.
   */
  async handle(raw: unknown): Promise<StartOutcome> {
    const delivery = deliveryDigest(raw);
    let input: ControlPlaneInput;
    try {
      input = parseControlPlaneInput(raw);
    } catch (e) {
      return this.rejected(e, delivery, pipelineNameIn(raw), raw);
    }
    try {
      const request = await this.requestOf(input, delivery);
      if ('ignored' in request) return { status: 'ignored', reason: request.ignored };
      return await this.start(request);
    } catch (e) {
      return this.rejected(e, delivery, pipelineNameIn(raw) ?? pipelineNameIn(input), raw);
    }
  }

  /** A complete file in a local landing folder: the same content, under any name, is one trigger. */
  async landed(file: LandedFile): Promise<StartOutcome> {
    const delivery = `landing:${file.path}`;
    try {
      const pipeline = this.pipeline(file.pipeline);
      const uri = pathToFileURL(file.path).href;
      return await this.start({
        trigger: { kind: 'local', pipeline: file.pipeline, path: file.path, digest: file.digest },
        pipeline,
        dataset: { uri, digest: file.digest },
        delivery,
        retrain: false,
        force: false,
        actor: this.deps.actor,
      });
    } catch (e) {
      return this.rejected(e, deliveryDigest(delivery), file.pipeline, { landed: file.path });
    }
  }

  private pipeline(name: string): StartPipeline {
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

  private async requestOf(
    input: ControlPlaneInput,
    delivery: string,
  ): Promise<Request | { ignored: string }> {
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

  private scheduleRequest(trigger: Trigger & { kind: 'schedule' }, delivery: string): Request {
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
    return { uri: ref.uri, digest: await this.digestOfFiles(files) };
  }

  /** The dataset digest HashDataset records: the file's sha256, or the manifest digest of several. */
  private async digestOfFiles(files: DatasetFile[]): Promise<Digest> {
    const entries: { path: string; size: number; digest: Digest }[] = [];
    for (const f of files) {
      const { hex, size } = this.deps.datasets.hash
        ? await this.deps.datasets.hash(f)
        : await hashStream(await this.deps.datasets.open(f));
      entries.push({ path: f.path, size, digest: digestFromHex(hex) });
    }
    const [only] = entries;
    return entries.length === 1 && only !== undefined ? only.digest : manifestDigest(buildManifest(entries));
  }

  // ───────────────────────────── the start itself ─────────────────────────────

  private async start(req: Request): Promise<StartOutcome> {
    const { pipeline } = req;
    let dataset = req.dataset;
    if (req.trigger.kind === 'schedule') {
      // Answer a redelivered firing from what it decided the first time, before any work.
      const plan = planStart(req.trigger, pipeline.digest);
      const seen = await this.seenBefore(req, plan);
      if (seen !== undefined) return seen;
      dataset = await this.deps.landing?.latest(pipeline.def);
      if (dataset === undefined) {
        throw reject(
          'DATASET_MISSING',
          `scheduled retraining of ${pipeline.def.name} found no dataset under its landing location; upload one first`,
        );
      }
    }
    if (dataset === undefined) throw new VeritrailError('INTERNAL', 'start request without a dataset');
    const plan = planStart(req.trigger, pipeline.digest);
    if (req.trigger.kind !== 'schedule') {
      const seen = await this.seenBefore(req, plan);
      if (seen !== undefined) return seen;
    }
    if (req.retrain) {
      const decision = await this.retrainDecision(req, dataset);
      if (decision?.decision.action === 'skip') {
        const skipped = await this.recordSkip(req, plan, decision.decision, decision.inputs, decision.last);
        if (skipped !== undefined) return skipped;
      }
    }
    return this.createAndLaunch(req, plan, dataset);
  }

  /** The run or skip this trigger already produced, as a `duplicate` outcome. */
  private async seenBefore(req: Request, plan: StartPlan): Promise<StartOutcome | undefined> {
    const existing = await this.deps.runs.get(plan.runId);
    if (existing !== undefined) return this.duplicate(req, plan, existing);
    const skip = await this.readSkipRecord(plan.runId);
    if (skip !== undefined) {
      await this.auditDuplicate(req, plan, 'SKIPPED');
      return {
        status: 'duplicate',
        runId: plan.runId,
        pipeline: req.pipeline.def.name,
        executionName: plan.executionName,
        runStatus: 'SKIPPED',
        relaunched: false,
      };
    }
    return undefined;
  }

  private async createAndLaunch(
    req: Request,
    plan: StartPlan,
    dataset: PinnedDataset,
  ): Promise<StartOutcome> {
    const { pipeline } = req;
    // Content-addressed: RegisterRun reads the definition back by this digest and checks the bytes.
    await putJsonCas(this.deps.objects, pipeline.def);
    const execDataset = {
      uri: dataset.uri,
      ...(dataset.versionId !== undefined ? { versionId: dataset.versionId } : {}),
    };
    const input: ExecState = {
      runId: plan.runId,
      pipeline: {
        name: pipeline.def.name,
        digest: pipeline.digest,
        ...(pipeline.base !== undefined ? { base: pipeline.base } : {}),
      },
      dataset: execDataset,
      trigger: { type: execTypeOf(req.trigger.kind), idempotencyKey: plan.idempotencyKey, actor: req.actor },
    };
    try {
      await this.deps.runs.create({
        runId: plan.runId,
        pipeline: pipeline.def.name,
        unit: unitOf(pipeline.def),
        pipelineDigest: pipeline.digest,
        trigger: input.trigger.type,
        idempotencyKey: plan.idempotencyKey,
        dataset: { ...execDataset, ...(dataset.digest !== undefined ? { digest: dataset.digest } : {}) },
        createdAt: this.deps.now().toISOString(),
      });
    } catch (e) {
      if (e instanceof VeritrailError && e.code === 'RUN_EXISTS') {
        const existing = await this.deps.runs.get(plan.runId);
        if (existing !== undefined) return this.duplicate(req, plan, existing, input);
      }
      throw e;
    }
    await (await this.portsOf(pipeline)).audit.append({
      eventId: `${plan.runId}/Start/run.requested`,
      pipeline: pipeline.def.name,
      runId: plan.runId,
      step: 'Start',
      type: 'run.requested',
      outcome: 'info',
      actor: req.actor,
      subjects: {
        pipeline: pipeline.digest,
        ...(dataset.digest !== undefined ? { raw: dataset.digest } : {}),
      },
      detail: {
        trigger: req.trigger.kind,
        idempotencyKey: plan.idempotencyKey,
        executionName: plan.executionName,
        dataset: dataset.uri,
        ...(dataset.versionId !== undefined ? { versionId: dataset.versionId } : {}),
        ...(req.trigger.kind === 'local' ? { path: req.trigger.path } : {}),
      },
    });
    await this.emitStart(req, plan, dataset);
    await this.deps.launch(input, plan.executionName);
    return {
      status: 'started',
      runId: plan.runId,
      pipeline: pipeline.def.name,
      executionName: plan.executionName,
      idempotencyKey: plan.idempotencyKey,
      trigger: req.trigger.kind,
    };
  }

  /**
   * A trigger that already has a run. A run still PENDING is handed to the orchestrator again:
   * launching is idempotent per execution name, and this heals a crash between the conditional
   * write and the launch (a redelivery, or a rescan after a restart, then starts it).
   */
  private async duplicate(
    req: Request,
    plan: StartPlan,
    existing: RunRecord,
    input?: ExecState,
  ): Promise<StartOutcome> {
    let relaunched = false;
    if (existing.status === 'PENDING') {
      const execInput: ExecState = input ?? {
        runId: existing.runId,
        pipeline: {
          name: existing.pipeline,
          digest: existing.pipelineDigest,
          ...(req.pipeline.base !== undefined && req.pipeline.digest === existing.pipelineDigest
            ? { base: req.pipeline.base }
            : {}),
        },
        dataset: {
          uri: existing.dataset.uri,
          ...(existing.dataset.versionId !== undefined ? { versionId: existing.dataset.versionId } : {}),
        },
        trigger: {
          type: existing.trigger as ExecTriggerType,
          idempotencyKey: existing.idempotencyKey,
          actor: req.actor,
        },
      };
      relaunched = !(await this.deps.launch(execInput, plan.executionName)).alreadyStarted;
    }
    await this.auditDuplicate(req, plan, existing.status, existing);
    return {
      status: 'duplicate',
      runId: plan.runId,
      pipeline: req.pipeline.def.name,
      executionName: plan.executionName,
      runStatus: existing.status,
      relaunched,
    };
  }

  /** One entry per distinct delivery (the same event redelivered 100 times adds one entry). */
  private async auditDuplicate(
    req: Request,
    plan: StartPlan,
    status: string,
    existing?: RunRecord,
  ): Promise<void> {
    await (await this.portsOf(req.pipeline)).audit.append({
      eventId: `${plan.runId}/Start/duplicate/${req.delivery}`,
      pipeline: req.pipeline.def.name,
      runId: plan.runId,
      step: 'Start',
      type: 'trigger.duplicate',
      outcome: 'info',
      actor: req.actor,
      detail: {
        trigger: req.trigger.kind,
        idempotencyKey: plan.idempotencyKey,
        status,
        ...(existing !== undefined ? { firstDataset: existing.dataset.uri } : {}),
        ...(req.trigger.kind === 'local' ? { path: req.trigger.path } : {}),
      },
    });
  }

  private async rejected(
    e: unknown,
    delivery: string,
    pipeline: string | undefined,
    raw: unknown,
  ): Promise<StartOutcome> {
    const info = toErrorInfo(e);
    if (!INPUT_CODES.has(info.code)) throw e;
    const source =
      typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>).source : undefined;
    const detailType =
      typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>)['detail-type'] : undefined;
    const fields = e instanceof VeritrailError ? e.details?.fields : undefined;
    const audit = (await this.portsOf(pipeline === undefined ? undefined : this.byName.get(pipeline))).audit;
    await audit.append({
      eventId: `trigger-rejected/${delivery}`,
      pipeline: pipeline ?? 'unknown',
      runId: `rejected-${delivery.replace(/^sha256:/, '').slice(0, 16)}`,
      step: 'Start',
      type: 'trigger.rejected',
      outcome: 'refused',
      actor: this.deps.actor,
      detail: {
        error: info,
        delivery,
        ...(typeof source === 'string' ? { source: source.slice(0, 256) } : {}),
        ...(typeof detailType === 'string' ? { detailType: detailType.slice(0, 256) } : {}),
        ...(Array.isArray(fields) ? { fields } : {}),
      },
    });
    return { status: 'rejected', error: info, ...(pipeline !== undefined ? { pipeline } : {}) };
  }

  // ───────────────────────────── retraining ─────────────────────────────

  private async lastSucceeded(pipeline: string): Promise<RunRecord | undefined> {
    const runs = await this.deps.runs.list({ pipeline, limit: 200 });
    const when = (r: RunRecord) => factsOf(r).finishedAt ?? r.updatedAt;
    return runs
      .filter((r) => r.status === 'SUCCEEDED')
      .sort((a, b) => (when(a) < when(b) ? 1 : when(a) > when(b) ? -1 : 0))[0];
  }

  /**
   * The digest of the training code CheckCode records: the manifest of the `trainer.code` files,
   * read where CheckCode reads them (src/steps/check-code.ts trainingCodeSource: the folder next to
   * the definition locally, the copy bundled into the function on AWS).
   */
  private async codeDigest(p: StartPipeline): Promise<Digest | undefined> {
    // On AWS only pipelines that train on SageMaker have their code bundled (and can run at all).
    if (p.base === undefined && p.def.trainer.aws === undefined) return undefined;
    const { source, uri } = trainingCodeSource(p.def, p.base, this.deps.datasets);
    return this.digestOfCode(source, await source.list(uri));
  }

  private async digestOfCode(source: DatasetSource, files: DatasetFile[]): Promise<Digest> {
    const entries: { path: string; size: number; digest: Digest }[] = [];
    for (const f of files) {
      const { hex, size } = await hashStream(await source.open(f));
      entries.push({ path: f.path, size, digest: digestFromHex(hex) });
    }
    return manifestDigest(buildManifest(entries));
  }

  private async retrainDecision(
    req: Request,
    dataset: PinnedDataset,
  ): Promise<{ decision: RetrainDecision; inputs: RunInputs; last: RunRecord } | undefined> {
    if (req.force) return undefined;
    const last = await this.lastSucceeded(req.pipeline.def.name);
    if (last === undefined) return undefined;
    const lastFacts = factsOf(last);
    const lastRaw = lastFacts.rawDigest;
    const lastCode = lastFacts.codeDigest;
    if (lastRaw === undefined || lastCode === undefined) return undefined;
    const code = await this.codeDigest(req.pipeline);
    if (code === undefined) return undefined;
    // The rest of the retrain identity (issue 11): the gate policy's bytes and, locally, the
    // trainer environment; the earlier run recorded both (Gate and CheckCode facts).
    // (A custom policy cannot be read on AWS yet: Gate refuses that run, so it is not compared here.)
    const policy =
      req.pipeline.base === undefined && req.pipeline.def.gate.policy !== undefined
        ? undefined
        : digestOf((await readGatePolicy(req.pipeline.def, req.pipeline.base)).text);
    const environment = req.pipeline.base?.startsWith('file:')
      ? trainerEnvironment(req.pipeline.def.trainer.command).digest
      : undefined;
    const inputs: RunInputs = {
      data: lastRaw, // compared below, only when everything else is unchanged
      code,
      definition: req.pipeline.digest,
      ...(policy ? { policy } : {}),
      ...(environment ? { environment } : {}),
    };
    const lastPolicy = lastFacts.policyDigest;
    const lastEnvironment = lastFacts.environmentDigest;
    const lastSuccessfulRun = {
      runId: last.runId,
      inputs: {
        data: lastRaw,
        code: lastCode,
        definition: last.pipelineDigest,
        ...(lastPolicy ? { policy: lastPolicy } : {}),
        ...(lastEnvironment ? { environment: lastEnvironment } : {}),
      },
    };
    // The cheap inputs first: when the code, definition, policy or environment changed, the run
    // trains whatever the data is, and the data is not read.
    const withoutData = decideRetrain({ latestInputs: inputs, lastSuccessfulRun, force: req.force });
    if (withoutData.action === 'train') return { decision: withoutData, inputs, last };
    const data = await this.retrainDataDigest(req, dataset, last, lastRaw);
    if (data === undefined) return undefined;
    const latestInputs = { ...inputs, data };
    const decision = decideRetrain({ latestInputs, lastSuccessfulRun, force: req.force });
    return { decision, inputs: latestInputs, last };
  }

  /**
   * The digest HashDataset would record for the dataset a schedule found, or `undefined` when
   * finding it out would read more than the start function may (then the run starts, and its own
   * HashDataset settles the digest; a retrain over the same bytes under a new object version then
   * trains again rather than being skipped).
   */
  private async retrainDataDigest(
    req: Request,
    dataset: PinnedDataset,
    last: RunRecord,
    lastRaw: Digest,
  ): Promise<Digest | undefined> {
    if (dataset.digest !== undefined) return dataset.digest;
    // The same S3 object version is the same bytes: no need to read it again.
    if (
      dataset.versionId !== undefined &&
      last.dataset.uri === dataset.uri &&
      last.dataset.versionId === dataset.versionId
    )
      return lastRaw;
    const files = await this.deps.datasets.list(
      dataset.uri,
      dataset.versionId !== undefined ? { versionId: dataset.versionId } : {},
    );
    const size = files.reduce((n, f) => n + f.size, 0);
    const budget = this.deps.retrainHashBudgetBytes;
    if (budget !== undefined && size > budget) {
      this.deps.warn?.(
        `scheduled retraining of ${req.pipeline.def.name}: ${dataset.uri} is a new version of ${size} bytes, more than the ${budget} the start function hashes; starting the run, whose HashDataset records the digest`,
      );
      return undefined;
    }
    return this.digestOfFiles(files);
  }

  private async readSkipRecord(
    runId: string,
  ): Promise<{ bundleKey: string; sinceRunId: string } | undefined> {
    const key = `${SKIP_RECORD_PREFIX}${runId}.json`;
    if ((await this.deps.objects.head('artifacts', key)) === undefined) return undefined;
    const value = JSON.parse(
      new TextDecoder().decode(await readObject(this.deps.objects, 'artifacts', key)),
    ) as {
      bundleKey: string;
      sinceRunId: string;
    };
    return value;
  }

  /**
   * Nothing changed since run X: a signed retrain-skip/v1 statement (subject: the model in
   * effect) and an audit entry instead of a run. The audit entry's eventId makes the decision
   * idempotent: concurrent deliveries may each sign, but the log keeps the first, whose bundle key
   * every caller returns. `undefined` when the earlier run lacks the evidence to name (train then).
   */
  private async recordSkip(
    req: Request,
    plan: StartPlan,
    decision: RetrainDecision & { action: 'skip' },
    inputs: RunInputs,
    last: RunRecord,
  ): Promise<StartOutcome | undefined> {
    const { modelDigest: model, bundles } = factsOf(last);
    const provenanceKey = bundles?.provenance;
    if (model === undefined || provenanceKey === undefined) return undefined;
    // Signed truth: "no change since run X" names X's model only if X's signed gate decision says
    // it shipped; a run record edited to SUCCEEDED is refused as STATE_TAMPERED, never signed over.
    const unit = await this.portsOf(req.pipeline);
    await signedOutcomeOfRun(this.deps.objects, await unit.signer.publicKeyPem(), last);
    const provenance = parseBundle(await readObject(this.deps.objects, 'artifacts', provenanceKey));
    const name = req.pipeline.def.name;
    const now = this.deps.now();
    const statement = buildRetrainSkipStatement({
      model: { name: `${name}/model.tar.gz`, digest: model },
      runId: plan.runId,
      previousRunId: last.runId,
      reason: decision.reason,
      unchanged: [
        { name: 'raw-data', digest: inputs.data },
        { name: 'training-code', digest: inputs.code },
        { name: 'pipeline-definition', digest: inputs.definition },
        ...(inputs.policy ? [{ name: 'gate-policy', digest: inputs.policy }] : []),
        ...(inputs.environment ? [{ name: 'trainer-environment', digest: inputs.environment }] : []),
      ],
      previousProvenance: digestOf(provenance.envelope.payload),
      decidedOn: now,
    });
    const key = await noteSigningKey(unit);
    const signed = await signStatement(statement, unit.signer);
    const bytes = new TextEncoder().encode(serializeBundle(signed.bundle));
    const stored = await putBytesCas(this.deps.objects, bytes, digestOf(bytes));
    const entry = await unit.audit.append({
      eventId: `${plan.runId}/Start/retrain.skipped`,
      pipeline: name,
      runId: plan.runId,
      step: 'Start',
      type: 'retrain.skipped',
      outcome: 'info',
      actor: req.actor,
      subjects: {
        model,
        raw: inputs.data,
        code: inputs.code,
        pipeline: inputs.definition,
        statement: signed.payloadDigest,
      },
      detail: {
        sinceRunId: last.runId,
        reason: decision.reason,
        bundleKey: stored.key,
        key,
        trigger: req.trigger.kind,
        idempotencyKey: plan.idempotencyKey,
      },
    });
    const bundleKey = typeof entry.detail?.bundleKey === 'string' ? entry.detail.bundleKey : stored.key;
    const record = { runId: plan.runId, sinceRunId: last.runId, bundleKey, auditSeq: entry.seq };
    try {
      await this.deps.objects.put(
        'artifacts',
        `${SKIP_RECORD_PREFIX}${plan.runId}.json`,
        new TextEncoder().encode(`${JSON.stringify(record)}\n`),
        { ifAbsent: true, contentType: 'application/json' },
      );
    } catch (e) {
      if (!(e instanceof VeritrailError && e.code === 'OBJECT_EXISTS')) throw e;
    }
    return {
      status: 'skipped',
      runId: plan.runId,
      pipeline: name,
      sinceRunId: last.runId,
      reason: decision.reason,
      bundleKey,
    };
  }

  // ───────────────────────────── lineage ─────────────────────────────

  private async emitStart(req: Request, plan: StartPlan, dataset: PinnedDataset): Promise<void> {
    const sink = this.deps.lineage;
    if (sink === undefined) return;
    const event = buildRunEvent({
      eventType: 'START',
      eventTime: this.deps.now(),
      runId: plan.runId,
      pipeline: req.pipeline.def.name,
      namespace: this.deps.lineageNamespace ?? 'veritrail',
      inputs: [
        {
          ...datasetNameOf(dataset.uri),
          uri: dataset.uri,
          ...(dataset.digest !== undefined ? { digest: dataset.digest } : {}),
          ...(dataset.versionId !== undefined ? { versionId: dataset.versionId } : {}),
        },
      ],
      trigger: { type: execTypeOf(req.trigger.kind), idempotencyKey: plan.idempotencyKey },
      pipelineDigest: req.pipeline.digest,
      status: 'PENDING',
      ...(req.nominalTime !== undefined ? { nominalTime: new Date(req.nominalTime).toISOString() } : {}),
    });
    try {
      await sink.emit(event);
    } catch (e) {
      // Lineage is for consumers such as Marquez; the chain of custody is the audit log.
      this.deps.warn?.(`lineage START of run ${plan.runId} not emitted: ${(e as Error).message}`);
    }
  }
}

/** The ports a start service takes from a runtime; the caller adds pipelines, launch and extras. */
export function startDepsOf(
  rt: Pick<Runtime, 'runs' | 'objects' | 'datasets' | 'audit' | 'signer' | 'actor' | 'now' | 'lineage'>,
): Omit<StartDeps, 'pipelines' | 'launch'> {
  return {
    runs: rt.runs,
    objects: rt.objects,
    datasets: rt.datasets,
    audit: rt.audit,
    signer: rt.signer,
    actor: rt.actor,
    now: () => rt.now(),
    ...(rt.lineage ? { lineage: rt.lineage.sink, lineageNamespace: rt.lineage.namespace } : {}),
  };
}
