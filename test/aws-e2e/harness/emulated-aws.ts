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
import type { IamProxy, ResolvedResource } from '../iam/types.js';
import { EventBus } from './events.js';
import { imageCommand } from './image.js';
import { type HostedFunction, hostFunctions, type LambdaFleet } from './lambda-host.js';
import { type Moto, startMoto } from './moto.js';
import { startPassthroughProxy } from './passthrough-proxy.js';
import { type AdminClients, adminClients, provision } from './provision.js';
import { SageMakerEmulator } from './sagemaker.js';
import { LocalStepFunctions, s3Reader } from './state-machine.js';
import { REPO_ROOT, readAssembly, synthesize } from './templates.js';
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

export async function startEmulatedAws(options: {
  motoServer: string;
  stage?: string;
  log?: (line: string) => void;
}): Promise<EmulatedAws> {
  const stage = options.stage ?? 'awse2e';
  const log = options.log ?? (() => {});
  const cleanups: (() => Promise<void> | void)[] = [];
  const close = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  try {
    const pipelines = pipelinesFolder();
    cleanups.push(() => rmSync(pipelines, { recursive: true, force: true }));
    const outDir = mkdtempSync(join(tmpdir(), 'vt-e2e-templates-'));
    cleanups.push(() => rmSync(outDir, { recursive: true, force: true }));
    let t = Date.now();
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
        : await synthesize({ stage, account: ACCOUNT, region: REGION, outDir, pipelinesDir: pipelines });
    log(
      app.reused
        ? `reused the assembly of the same sources (${app.stacks.size} stacks with bundles)`
        : `synthesized ${app.stacks.size} stacks with bundles in ${Date.now() - t} ms`,
    );

    const moto: Moto = await startMoto(options.motoServer);
    cleanups.push(() => moto.stop());
    t = Date.now();
    const admin = adminClients(moto.endpoint, REGION);
    const { resources } = await provision(app, admin);
    log(`provisioned ${resources.length} resources on moto in ${Date.now() - t} ms`);

    const keys = accessKeysFor(resources);
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

    const fleet = hostFunctions(resources, {
      assetDir: app.assetDir,
      endpoint: proxy.endpoint,
      region: REGION,
      credentialsOf,
    });
    cleanups.push(() => fleet.close());
    t = Date.now();
    const loadFailures = await fleet.warm();
    log(
      `${fleet.functions.length - loadFailures.length}/${fleet.functions.length} function processes loaded their bundles in ${Date.now() - t} ms`,
    );
    for (const f of loadFailures) log(`LOAD FAILURE fn:${f.handler}: ${f.error.split('\n')[0]}`);

    const sm = resources.find((r) => r.type === 'AWS::StepFunctions::StateMachine');
    if (!sm) throw new Error('the templates have no state machine');
    const definition = LocalStepFunctions.definitionFrom(
      String(sm.properties.DefinitionString),
      (sm.properties.DefinitionSubstitutions as Record<string, string> | undefined) ?? {},
    );
    // The Distributed Map's ItemReader reads as the state machine's role, through the IAM proxy.
    const stateMachineRole = credentialsOf(String(sm.properties.RoleArn));
    const readObject = s3Reader({ endpoint: proxy.endpoint, region: REGION, credentials: stateMachineRole });
    const sfn = new LocalStepFunctions(sm.physicalId, definition, fleet, readObject);
    const bus = new EventBus(resources, fleet);
    const sagemaker = new SageMakerEmulator({
      endpoint: proxy.endpoint,
      region: REGION,
      account: ACCOUNT,
      credentialsOf,
      // The training image of the example, run as SageMaker runs it: `docker run <image> train`.
      trainer: imageCommand(join(REPO_ROOT, 'examples', 'credit-scoring', 'image', 'Dockerfile')),
      startAfter: (caller) =>
        caller.startsWith('fn:') ? fleet.byHandler(caller.slice(3)).idle() : Promise.resolve(),
      onEvent: async (event) => {
        await bus.put(event);
      },
      // Every deployed pipeline of this suite is a copy of the example's definition: its inference
      // contract runs in the example's folder.
      predictFor: () => ({
        command: ['node', 'trainer/predict.mjs'],
        cwd: join(REPO_ROOT, 'examples', 'credit-scoring'),
      }),
    });
    proxy.addHook(sfn.hook);
    proxy.addHook(sagemaker.hook);

    const env = fleet.byHandler('start').environment;
    const need = (k: string) => {
      const v = env[k];
      if (!v) throw new Error(`the start function has no ${k}`);
      return v;
    };
    return {
      stage,
      resources,
      admin,
      proxy,
      fleet,
      sfn,
      sagemaker,
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
        const roles = resources.filter((r) => r.type === 'AWS::IAM::Role' && r.logicalId.startsWith(prefix));
        if (roles.length !== 1 || !roles[0]?.arn)
          throw new Error(`${roles.length} roles have a logical id starting with ${prefix}`);
        return credentialsOf(roles[0].arn);
      },
      loadFailures,
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}
