/**
 * The start service: the one start path of both modes. AWS (functions/start.ts) launches a Step
 * Functions execution; the local control plane (src/local/control-plane.ts) queues an in-process
 * execution. Everything else is the same code: validate the trigger and route it
 * (src/app/start/routing.ts), resolve the pipeline, pin the dataset, derive the run id from the
 * trigger's content identity, decide whether a retrain is needed (src/app/start/retrain.ts), record
 * the run PENDING with a conditional write, launch (docs/design.md, "One run, as data flows";
 * invariant 4).
 */

import { putJsonCas } from '../../cas.js';
import { type ErrorCode, toErrorInfo, VeritrailError } from '../../core/errors.js';
import { type ControlPlaneInput, parseControlPlaneInput } from '../../core/events/index.js';
import type { ExecState } from '../../core/exec-state.js';
import { buildRunEvent, datasetNameOf } from '../../core/lineage.js';
import { RunExistsError } from '../../core/run.js';
import { planStart, type StartOutcome, type StartPlan } from '../../core/start.js';
import { unitOf } from '../../core/unit.js';
import type {
  AuditLog,
  LandingIndex,
  Launch,
  LineageSink,
  PinnedDataset,
  RunRecord,
  Signer,
} from '../../ports.js';
import type { Runtime } from '../../runtime.js';
import { type RetrainDeps, retrainDecision } from './retrain.js';
import {
  deliveryDigest,
  execTypeOf,
  type LandedFile,
  pipelineNameIn,
  type RoutingDeps,
  reject,
  type StartPipeline,
  type StartRequest,
  TriggerRouter,
} from './routing.js';
import { readSkipRecord, recordSkip, type SkipDeps } from './skip.js';

/** The pipeline shape callers compose the service with (src/aws/start.ts, src/local/control-plane.ts). */
export type { StartPipeline } from './routing.js';

/** The ports and settings of a start service: those of its parts, and what recording and launching need. */
export interface StartDeps extends RoutingDeps, RetrainDeps, SkipDeps {
  audit: AuditLog;
  signer: Signer;
  launch: Launch;
  landing?: LandingIndex;
  lineage?: LineageSink;
  /** Job namespace of lineage events: `veritrail.local` or `veritrail.aws/<stack>`. */
  lineageNamespace?: string;
  /**
   * The audit log and signer of a business unit (src/core/unit.ts), for a service that starts
   * pipelines of several units (the local control plane). Absent: every pipeline's entries go to
   * `audit` and retrain-skip statements are signed by `signer`.
   */
  unitPorts?: (unit: string) => Promise<{ audit: AuditLog; signer: Signer }>;
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

export class StartService {
  private readonly router: TriggerRouter;

  constructor(private readonly deps: StartDeps) {
    this.router = new TriggerRouter(deps);
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
      const request = await this.router.requestOf(input, delivery);
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
      return await this.start(this.router.landed(file, delivery));
    } catch (e) {
      return this.rejected(e, deliveryDigest(delivery), file.pipeline, { landed: file.path });
    }
  }

  private async start(req: StartRequest): Promise<StartOutcome> {
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
      const retrain = await retrainDecision(this.deps, req, dataset);
      if (retrain?.decision.action === 'skip') {
        const unit = await this.portsOf(pipeline);
        const skipped = await recordSkip(
          this.deps,
          unit,
          req,
          plan,
          retrain.decision,
          retrain.inputs,
          retrain.last,
        );
        if (skipped !== undefined) return skipped;
      }
    }
    return this.createAndLaunch(req, plan, dataset);
  }

  /** The run or skip this trigger already produced, as a `duplicate` outcome. */
  private async seenBefore(req: StartRequest, plan: StartPlan): Promise<StartOutcome | undefined> {
    const existing = await this.deps.runs.get(plan.runId);
    if (existing !== undefined) return this.duplicate(req, plan, existing);
    const skip = await readSkipRecord(this.deps.objects, plan.runId);
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
    req: StartRequest,
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
      // A concurrent delivery recorded it first: answer from the run the refusal carries.
      if (e instanceof RunExistsError) return this.duplicate(req, plan, e.existing, input);
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
    req: StartRequest,
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
    req: StartRequest,
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
    const audit = (await this.portsOf(pipeline === undefined ? undefined : this.router.find(pipeline))).audit;
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

  /** The OpenLineage START event of a started run (best effort: the audit log is the record). */
  private async emitStart(req: StartRequest, plan: StartPlan, dataset: PinnedDataset): Promise<void> {
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
