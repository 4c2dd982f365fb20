/**
 * The emulated AWS account of the suite, assembled once per test file:
 *   synthesize (bundles as `sst deploy` builds them) → moto_server → provision → IAM proxy with the
 *   policy world of the templates → one Node 22 process per function → the state machine on
 *   aws-local-stepfunctions → SageMaker jobs run by their container contract → EventBridge rules.
 * The IAM proxy is test/aws-e2e/iam/proxy.ts (VT_E2E_PROXY=passthrough swaps in the forwarding
 * stand-in, which evaluates nothing: for debugging the flow only).
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startIamProxy } from '../iam/proxy.js';
import type { ApiRequest, HookResponse, IamProxy, ResolvedResource } from '../iam/types.js';
import { EventBus } from './events.js';
import { imageCommand } from './image.js';
import { type HostedFunction, hostFunctions, type LambdaFleet } from './lambda-host.js';
import { type Moto, startMoto } from './moto.js';
import { startPassthroughProxy } from './passthrough-proxy.js';
import { type AdminClients, adminClients, provision } from './provision.js';
import { SageMakerEmulator } from './sagemaker.js';
import {
  LocalStepFunctions,
  lambdaInvokeHook,
  lambdaInvoker,
  MapChildExecutions,
  s3Reader,
  s3Writer,
} from './state-machine.js';
import { REPO_ROOT, readAssembly, type SynthesizedApp, synthesize } from './templates.js';
import { accessKeysFor, buildWorld } from './world.js';

export const ACCOUNT = '123456789012';
export const REGION = 'us-east-1';
export const ADMIN_KEY = 'AKIAADMINISTRATOR000';

export interface EmulatedAws {
  stage: string;
  resources: ResolvedResource[];
  admin: AdminClients;
  proxy: IamProxy;
  fleet: LambdaFleet;
  sfn: LocalStepFunctions;
  sagemaker: SageMakerEmulator;
  bus: EventBus;
  /** Physical names the functions are configured with. */
  names: {
    table: string;
    landing: string;
    artifacts: string;
    audit: string;
    stateMachineArn: string;
    dataKeyArn: string;
    /** The KMS key that signs the attestations (its public key verifies every bundle). */
    attestationKeyArn: string;
  };
  fn(handler: string): HostedFunction;
  /** The credentials the IAM replay knows a role by, for the one role whose logical id starts with `prefix`. */
  credentialsOfRole(prefix: string): { accessKeyId: string; secretAccessKey: string };
  /** Functions whose bundle failed to load at the cold start (Runtime.ImportModuleError on Lambda). */
  loadFailures: { name: string; handler: string; error: string }[];
  close(): Promise<void>;
}

/**
 * A pipelines folder with the example and the strict example (the same model held to a stricter
 * gate, which rejects it), as an operator would deploy two pipelines.
 */
export function pipelinesFolder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vt-e2e-pipelines-'));
  const example = join(REPO_ROOT, 'examples', 'credit-scoring');
  for (const [name, file] of [
    ['credit-scoring', 'pipeline.json'],
    ['credit-scoring-strict', 'pipeline.strict.json'],
  ] as const) {
    mkdirSync(join(dir, name));
    cpSync(join(example, file), join(dir, name, 'pipeline.json'));
    cpSync(join(example, 'trainer'), join(dir, name, 'trainer'), { recursive: true });
  }
  return dir;
}

/** One deployment (stage) to synthesize and provision into the emulated account. */
export interface StageSpec {
  stage: string;
  /** VERITRAIL_PIPELINES_DIR of the synth. */
  pipelinesDir: string;
  /** Further deploy settings of the synth (VERITRAIL_UNIT, VERITRAIL_UNITS_FILE…). */
  env?: Record<string, string>;
  /**
   * Environment a function process gets on top of its template's (a test's knob that no deploy
   * setting carries), by the function's logical id.
   */
  functionEnv?: (logicalId: string) => Record<string, string>;
}

/** A stage as the emulated account runs it: its resources, functions, state machine and rules. */
export type EmulatedStage = Omit<EmulatedAws, 'admin' | 'proxy' | 'sagemaker' | 'close'>;

/**
 * One emulated account holding any number of stages, side by side as `sst deploy` of each would
 * leave them (e.g. one stage per business unit, docs/units.md): one moto_server, one IAM proxy whose
 * world holds every stage's roles and resource policies, one SageMaker, and, per stage, its own
 * function processes, state machine and rules. The default event bus is the account's: every
 * SageMaker state-change event reaches every stage's rules. With more than one stage, each role's
 * label (the proxy's principal name) is prefixed with its stage: `<stage>/fn:<name>`.
 */
export interface EmulatedAccount {
  stages: EmulatedStage[];
  stage(name: string): EmulatedStage;
  /** Every stage's resources. */
  resources: ResolvedResource[];
  admin: AdminClients;
  proxy: IamProxy;
  sagemaker: SageMakerEmulator;
  /** Credentials of a role of any stage, as that role's processes sign with them. */
  credentialsOf(roleArn: string): { accessKeyId: string; secretAccessKey: string };
  close(): Promise<void>;
}

export async function startEmulatedAws(options: {
  motoServer: string;
  stage?: string;
  log?: (line: string) => void;
}): Promise<EmulatedAws> {
  const pipelines = pipelinesFolder();
  let account: EmulatedAccount;
  try {
    account = await startEmulatedAccount({
      motoServer: options.motoServer,
      stages: [{ stage: options.stage ?? 'awse2e', pipelinesDir: pipelines }],
      ...(options.log ? { log: options.log } : {}),
    });
  } catch (e) {
    rmSync(pipelines, { recursive: true, force: true });
    throw e;
  }
  const [only] = account.stages as [EmulatedStage];
  return {
    ...only,
    admin: account.admin,
    proxy: account.proxy,
    sagemaker: account.sagemaker,
    close: async () => {
      await account.close();
      rmSync(pipelines, { recursive: true, force: true });
    },
  };
}

export async function startEmulatedAccount(options: {
  motoServer: string;
  stages: StageSpec[];
  log?: (line: string) => void;
}): Promise<EmulatedAccount> {
  const log = options.log ?? (() => {});
  const multi = options.stages.length > 1;
  const cleanups: (() => Promise<void> | void)[] = [];
  const close = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  try {
    // One after the other: two bundling synths at once would share two cores and SST's config file.
    const apps: (SynthesizedApp & { reused: boolean })[] = [];
    for (const spec of options.stages) {
      const { stage } = spec;
      const outDir = mkdtempSync(join(tmpdir(), 'vt-e2e-templates-'));
      cleanups.push(() => rmSync(outDir, { recursive: true, force: true }));
      const t = Date.now();
      // VT_E2E_REUSE_SYNTH=1 (debugging the harness only): read the assembly of the previous run as is.
      const app =
        process.env.VT_E2E_REUSE_SYNTH === '1'
          ? {
              ...readAssembly(join(REPO_ROOT, '.sst', `synth-${stage}`), {
                stage,
                account: ACCOUNT,
                region: REGION,
              }),
              reused: true,
            }
          : await synthesize({
              stage,
              account: ACCOUNT,
              region: REGION,
              outDir,
              pipelinesDir: spec.pipelinesDir,
              ...(spec.env ? { env: spec.env } : {}),
            });
      log(
        app.reused
          ? `${stage}: reused the assembly of the same sources (${app.stacks.size} stacks with bundles)`
          : `${stage}: synthesized ${app.stacks.size} stacks with bundles in ${Date.now() - t} ms`,
      );
      apps.push(app);
    }

    const moto: Moto = await startMoto(options.motoServer);
    cleanups.push(() => moto.stop());
    let t = Date.now();
    const admin = adminClients(moto.endpoint, REGION);
    const provisioned: ResolvedResource[][] = [];
    for (const app of apps) provisioned.push((await provision(app, admin)).resources);
    const resources = provisioned.flat();
    log(
      `provisioned ${resources.length} resources of ${apps.length} stage(s) on moto in ${Date.now() - t} ms`,
    );

    const keys = accessKeysFor(resources);
    if (multi) {
      // The same function name in two stages: the label says whose role signed.
      provisioned.forEach((stageResources, i) => {
        const stage = apps[i]?.stage;
        for (const role of stageResources.filter((r) => r.type === 'AWS::IAM::Role')) {
          const k = role.arn ? keys.byRole.get(role.arn) : undefined;
          if (k) k.label = `${stage}/${k.label}`;
        }
      });
    }
    const world = buildWorld(resources, keys, ACCOUNT, REGION);
    const proxy =
      process.env.VT_E2E_PROXY === 'passthrough'
        ? await startPassthroughProxy({ upstream: moto.endpoint, world })
        : await startIamProxy({
            upstream: moto.endpoint,
            world,
            adminAccessKeyIds: [ADMIN_KEY],
            // VT_E2E_ENFORCE=0 (triage only): denials are recorded but the calls go through, so one
            // run lists every denial of the whole pipeline; the suite still fails on them.
            enforce: process.env.VT_E2E_ENFORCE !== '0',
          });
    cleanups.push(() => proxy.close());
    const credentialsOf = (roleArn: string) => {
      const k = keys.byRole.get(roleArn);
      if (!k) throw new Error(`no role ${roleArn} in the templates`);
      return { accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey };
    };

    const stages: EmulatedStage[] = [];
    for (const [i, app] of apps.entries()) {
      const stageResources = provisioned[i] ?? [];
      const functionEnv = options.stages[i]?.functionEnv;
      const fleet = hostFunctions(stageResources, {
        assetDir: app.assetDir,
        endpoint: proxy.endpoint,
        region: REGION,
        credentialsOf,
        ...(functionEnv ? { overrides: (fn: { logicalId: string }) => functionEnv(fn.logicalId) } : {}),
      });
      cleanups.push(() => fleet.close());
      t = Date.now();
      const loadFailures = await fleet.warm();
      log(
        `${app.stage}: ${fleet.functions.length - loadFailures.length}/${fleet.functions.length} function processes loaded their bundles in ${Date.now() - t} ms`,
      );
      for (const f of loadFailures)
        log(`LOAD FAILURE ${app.stage} fn:${f.handler}: ${f.error.split('\n')[0]}`);

      const sm = stageResources.find((r) => r.type === 'AWS::StepFunctions::StateMachine');
      if (!sm) throw new Error(`the templates of ${app.stage} have no state machine`);
      const definition = LocalStepFunctions.definitionFrom(
        String(sm.properties.DefinitionString),
        (sm.properties.DefinitionSubstitutions as Record<string, string> | undefined) ?? {},
      );
      // The state machine role's own calls go through the IAM proxy signed as that role: the
      // Distributed Map's ItemReader and ResultWriter, its child executions' StartExecution,
      // DescribeExecution and StopExecution, and every Task's Lambda invocation (the Invokes and
      // the child execution calls answered by hooks once the proxy has allowed them).
      const roleArn = String(sm.properties.RoleArn);
      const roleLabel = keys.byRole.get(roleArn)?.label ?? roleArn;
      const asRole = { endpoint: proxy.endpoint, region: REGION, credentials: credentialsOf(roleArn) };
      // The passthrough proxy (a debugging switch) has no principals: invoke directly there, and
      // run the Map's children without the calls around them.
      const passthrough = process.env.VT_E2E_PROXY === 'passthrough';
      const children = passthrough ? undefined : new MapChildExecutions(sm.physicalId, roleLabel, asRole);
      const sfn = new LocalStepFunctions(sm.physicalId, definition, fleet, {
        read: s3Reader(asRole),
        write: s3Writer(asRole),
        ...(passthrough ? {} : { invoke: lambdaInvoker(asRole) }),
        ...(children ? { children } : {}),
      });
      proxy.addHook(lambdaInvokeHook(roleLabel, fleet));
      if (children) proxy.addHook(children.hook);
      const bus = new EventBus(stageResources, fleet);
      const env = fleet.byHandler('start').environment;
      const need = (k: string) => {
        const v = env[k];
        if (!v) throw new Error(`the start function of ${app.stage} has no ${k}`);
        return v;
      };
      stages.push({
        stage: app.stage,
        resources: stageResources,
        fleet,
        sfn,
        bus,
        names: {
          table: need('VERITRAIL_TABLE'),
          landing: need('VERITRAIL_LANDING_BUCKET'),
          artifacts: need('VERITRAIL_ARTIFACTS_BUCKET'),
          audit: need('VERITRAIL_AUDIT_BUCKET'),
          stateMachineArn: need('VERITRAIL_STATE_MACHINE_ARN'),
          dataKeyArn: need('VERITRAIL_DATA_KEY_ARN'),
          attestationKeyArn: need('VERITRAIL_SIGNING_KEY_ARN'),
        },
        fn: (h) => fleet.byHandler(h),
        credentialsOfRole: (prefix) => {
          const roles = stageResources.filter(
            (r) => r.type === 'AWS::IAM::Role' && r.logicalId.startsWith(prefix),
          );
          if (roles.length !== 1 || !roles[0]?.arn)
            throw new Error(
              `${roles.length} roles of ${app.stage} have a logical id starting with ${prefix}`,
            );
          return credentialsOf(roles[0].arn);
        },
        loadFailures,
      });
    }
    const stageOf = (name: string) => {
      const found = stages.find((s) => s.stage === name);
      if (!found) throw new Error(`no stage ${name} in the emulated account`);
      return found;
    };

    const sagemaker = new SageMakerEmulator({
      endpoint: proxy.endpoint,
      region: REGION,
      account: ACCOUNT,
      credentialsOf,
      // The training image of the example, run as SageMaker runs it: `docker run <image> train`.
      trainer: imageCommand(join(REPO_ROOT, 'examples', 'credit-scoring', 'image', 'Dockerfile')),
      startAfter: (caller) => {
        const [stage, label] = multi
          ? (caller.split(/\/(.*)/s) as [string, string])
          : [stages[0]?.stage ?? '', caller];
        return label.startsWith('fn:')
          ? stageOf(stage).fleet.byHandler(label.slice(3)).idle()
          : Promise.resolve();
      },
      // The account's default bus: every stage's rules see every event.
      onEvent: async (event) => {
        for (const s of stages) await s.bus.put(event);
      },
      // Every deployed pipeline of this suite is a copy of the example's definition: its inference
      // contract runs in the example's folder.
      predictFor: () => ({
        command: ['node', 'trainer/predict.mjs'],
        cwd: join(REPO_ROOT, 'examples', 'credit-scoring'),
      }),
    });
    proxy.addHook(multi ? stepFunctionsRouter(stages) : (stages[0] as EmulatedStage).sfn.hook);
    proxy.addHook(sagemaker.hook);

    return {
      stages,
      stage: stageOf,
      resources,
      admin,
      proxy,
      sagemaker,
      credentialsOf,
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * The Step Functions API of several stages: each call goes to the state machine it names (by ARN,
 * by execution ARN, or by the task token one of them issued); anything else to the first, whose
 * answer is the service's error.
 */
function stepFunctionsRouter(stages: EmulatedStage[]): (req: ApiRequest) => HookResponse | undefined {
  return (req) => {
    if (req.service !== 'states') return undefined;
    const input = req.input ?? {};
    const owner =
      stages.find((s) => input.stateMachineArn === s.sfn.stateMachineArn) ??
      stages.find(
        (s) => typeof input.executionArn === 'string' && s.sfn.executions.has(input.executionArn),
      ) ??
      stages.find((s) => typeof input.taskToken === 'string' && s.sfn.taskTokens.has(input.taskToken)) ??
      stages[0];
    return owner?.sfn.hook(req);
  };
}
