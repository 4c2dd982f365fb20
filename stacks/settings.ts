/**
 * Deploy-time settings read once when the stacks are built: which pipeline definitions to deploy,
 * how long audit entries are locked, how resources are named. Everything here runs at synth time
 * on the operator's machine, never in a Lambda.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { WITNESS_NAME, witnessesFrom } from '../src/audit/witness/config.js';
import { CodedError } from '../src/core/errors.js';
import { isImagePinned } from '../src/core/image.js';
import { DEFAULT_AUDIT_RETENTION_DAYS } from '../src/core/layout.js';
import { landingPrefixOf, type PipelineDefinition, parsePipelineDefinition } from '../src/core/pipeline.js';
import { DEFAULT_PROCESSING_THRESHOLD_BYTES } from '../src/core/processing.js';
import type { FunctionName } from './access.js';

export type SettingsErrorCode =
  | 'PIPELINES_NOT_FOUND'
  | 'PIPELINE_DUPLICATE'
  | 'SETTING_INVALID'
  | 'NAME_TOO_LONG';

/** A deploy setting that cannot be used as given. */
export class StackSettingsError extends CodedError<SettingsErrorCode> {
  override readonly name = 'StackSettingsError';
}

/** A pipeline definition as deployed: validated, with the file it came from. */
export interface DeployedPipeline {
  definition: PipelineDefinition;
  file: string;
  /** S3 key prefix in the landing bucket whose Object Created events start this pipeline. */
  landingPrefix: string;
}

/** Default pipelines folder: every `examples/<name>/pipeline.json`. */
export const DEFAULT_PIPELINES_DIR = 'examples';

/**
 * The pipeline definitions to deploy: every `<dir>/<name>/pipeline.json` and every `<dir>/*.json`
 * (VERITRAIL_PIPELINES_DIR, default `examples`). Refuses an empty folder and two definitions
 * with the same name or landing prefix, since both would start the wrong pipeline silently.
 */
export function loadPipelines(
  dir: string = process.env.VERITRAIL_PIPELINES_DIR ?? DEFAULT_PIPELINES_DIR,
): DeployedPipeline[] {
  const root = path.resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    throw new StackSettingsError(
      'PIPELINES_NOT_FOUND',
      `VERITRAIL_PIPELINES_DIR ${root} is not a folder. Point it at a folder holding <name>/pipeline.json files.`,
    );
  }
  const files: string[] = [];
  for (const entry of readdirSync(root, { withFileTypes: true }).sort((a, b) =>
    a.name.localeCompare(b.name),
  )) {
    if (entry.isDirectory()) {
      const candidate = path.join(root, entry.name, 'pipeline.json');
      if (existsSync(candidate)) files.push(candidate);
    } else if (entry.isFile() && entry.name.endsWith('.json')) {
      files.push(path.join(root, entry.name));
    }
  }
  if (files.length === 0) {
    throw new StackSettingsError(
      'PIPELINES_NOT_FOUND',
      `no pipeline definition found in ${root} (looked for <name>/pipeline.json and *.json). Add one or set VERITRAIL_PIPELINES_DIR.`,
    );
  }
  const byName = new Map<string, DeployedPipeline>();
  for (const file of files) {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, 'utf8'));
    } catch (cause) {
      throw new StackSettingsError('SETTING_INVALID', `${file} is not valid JSON. Fix it and deploy again.`, {
        cause,
      });
    }
    const definition = parsePipelineDefinition(raw, file);
    const clash = byName.get(definition.name);
    if (clash) {
      throw new StackSettingsError(
        'PIPELINE_DUPLICATE',
        `${file} and ${clash.file} both define pipeline "${definition.name}". Rename one.`,
      );
    }
    byName.set(definition.name, { definition, file, landingPrefix: landingPrefixOf(definition) });
  }
  const pipelines = [...byName.values()];
  for (const a of pipelines) {
    for (const b of pipelines) {
      // An empty prefix, or one prefix inside another, would route one upload to two pipelines.
      if (a !== b && b.landingPrefix.startsWith(a.landingPrefix)) {
        throw new StackSettingsError(
          'PIPELINE_DUPLICATE',
          `landing prefix "${b.landingPrefix}" of ${b.definition.name} lies inside "${a.landingPrefix}" of ` +
            `${a.definition.name}: one upload would start both. Give each pipeline a disjoint landing.prefix.`,
        );
      }
    }
  }
  return pipelines;
}

/** VERITRAIL_AUDIT_RETENTION_DAYS at deploy time, 1..36500 days. */
export function auditRetentionDays(
  value: string | undefined = process.env.VERITRAIL_AUDIT_RETENTION_DAYS,
): number {
  if (value === undefined || value === '') return DEFAULT_AUDIT_RETENTION_DAYS;
  const days = Number(value);
  if (!Number.isInteger(days) || days < 1 || days > 36500) {
    throw new StackSettingsError(
      'SETTING_INVALID',
      `VERITRAIL_AUDIT_RETENTION_DAYS must be a whole number of days from 1 to 36500, got "${value}".`,
    );
  }
  return days;
}

/**
 * Optional copy of the audit log in a second region (VERITRAIL_AUDIT_REPLICA_BUCKET_ARN and
 * VERITRAIL_AUDIT_REPLICA_KEY_ARN, both or neither). The replica bucket is created beforehand in the
 * other region with versioning and Object Lock (docs/deploy.md); S3 Replication copies each entry
 * with its COMPLIANCE retain-until date (S3 User Guide, "Replicating objects": Object Lock).
 */
export interface AuditReplica {
  /** `arn:<partition>:s3:::<bucket>` */
  bucketArn: string;
  /** The replica region's KMS key the copies are encrypted with. */
  keyArn: string;
  /** The replica's region, read from the key ARN (an S3 bucket ARN carries none). */
  region: string;
}

const BUCKET_ARN = /^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const KEY_ARN = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:key\/[0-9a-f-]{36}$/;

/** The audit replica settings, or undefined when replication is off. */
export function auditReplica(
  bucketArn: string | undefined = process.env.VERITRAIL_AUDIT_REPLICA_BUCKET_ARN,
  keyArn: string | undefined = process.env.VERITRAIL_AUDIT_REPLICA_KEY_ARN,
  deployRegion?: string,
): AuditReplica | undefined {
  const bucket = bucketArn || undefined;
  const key = keyArn || undefined;
  if (!bucket && !key) return undefined;
  if (!bucket || !key) {
    throw new StackSettingsError(
      'SETTING_INVALID',
      'set both VERITRAIL_AUDIT_REPLICA_BUCKET_ARN and VERITRAIL_AUDIT_REPLICA_KEY_ARN to replicate the audit log, or neither.',
    );
  }
  if (!BUCKET_ARN.test(bucket)) {
    throw new StackSettingsError(
      'SETTING_INVALID',
      `VERITRAIL_AUDIT_REPLICA_BUCKET_ARN must be an S3 bucket ARN (arn:aws:s3:::<bucket>), got "${bucket}".`,
    );
  }
  const region = KEY_ARN.exec(key)?.[1];
  if (!region) {
    throw new StackSettingsError(
      'SETTING_INVALID',
      `VERITRAIL_AUDIT_REPLICA_KEY_ARN must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), got "${key}".`,
    );
  }
  if (deployRegion !== undefined && region === deployRegion) {
    throw new StackSettingsError(
      'SETTING_INVALID',
      `the audit replica key is in ${region}, the region being deployed: a replica in the same region does not survive a regional outage. Create the replica bucket and key in another region.`,
    );
  }
  return { bucketArn: bucket, keyArn: key, region };
}

/**
 * Reserved concurrency per function: a burst of uploads cannot take the whole account's
 * concurrency, and one function cannot starve the others (issue 15). The sum (91) leaves 909 of
 * the default account quota of 1,000; Lambda refuses a reservation that leaves less than 100
 * unreserved (Lambda Developer Guide, "Configuring reserved concurrency"). hash-batch's share is
 * the HashBatches Distributed Map's MaxConcurrency (a test keeps them equal); the state machine
 * retries Lambda.TooManyRequestsException.
 */
export const RESERVED_CONCURRENCY = {
  start: 10,
  'register-run': 10,
  'list-dataset': 5,
  'hash-batch': 10,
  'hash-dataset': 5,
  preprocess: 5,
  'check-code': 5,
  train: 5,
  'training-callback': 5,
  evaluate: 5,
  gate: 5,
  sign: 5,
  register: 5,
  finish: 5,
  'record-failure': 5,
  reconcile: 1,
} as const satisfies Record<FunctionName, number>;

/**
 * VERITRAIL_VPC_MODE=isolated: every function in private isolated subnets of a VPC of its own,
 * reaching AWS only through VPC endpoints (no NAT, no internet route). Off by default.
 */
export function vpcMode(value: string | undefined = process.env.VERITRAIL_VPC_MODE): 'off' | 'isolated' {
  if (value === undefined || value === '' || value === 'off') return 'off';
  if (value === 'isolated') return 'isolated';
  throw new StackSettingsError(
    'SETTING_INVALID',
    `VERITRAIL_VPC_MODE must be "isolated" or "off" (default), got "${value}".`,
  );
}

/**
 * Preprocess as a SageMaker Processing job above a size (docs/scale-cost-model.md, "Preprocess as a
 * SageMaker Processing job"). Off unless VERITRAIL_PROCESSING_IMAGE names a Node.js 22 image in
 * ECR pinned by digest (the job runs veritrail's own program on it, with network isolation);
 * VERITRAIL_PROCESSING_THRESHOLD_BYTES (default 8 GiB) is the dataset size above which Preprocess
 * uses it, VERITRAIL_PROCESSING_INSTANCE_TYPE the instance (default ml.m5.xlarge).
 */
export interface ProcessingSettings {
  image: string;
  thresholdBytes: number;
  instanceType?: string;
  /** The image's ECR repository, which the processing role may pull from. */
  repository: { account: string; region: string; name: string };
}

/** The ECR repository an image pinned by digest is pulled from, or undefined for an image outside ECR. */
export function ecrRepositoryOf(image: string): ProcessingSettings['repository'] | undefined {
  const m = /^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\/([^@:]+)@/.exec(image);
  return m?.[1] && m[2] && m[3] ? { account: m[1], region: m[2], name: m[3] } : undefined;
}

export function processingSettings(env: NodeJS.ProcessEnv = process.env): ProcessingSettings | undefined {
  const image = env.VERITRAIL_PROCESSING_IMAGE || undefined;
  const threshold = env.VERITRAIL_PROCESSING_THRESHOLD_BYTES || undefined;
  const instanceType = env.VERITRAIL_PROCESSING_INSTANCE_TYPE || undefined;
  if (image === undefined) {
    if (threshold !== undefined || instanceType !== undefined)
      throw new StackSettingsError(
        'SETTING_INVALID',
        'VERITRAIL_PROCESSING_THRESHOLD_BYTES and VERITRAIL_PROCESSING_INSTANCE_TYPE need VERITRAIL_PROCESSING_IMAGE (a Node.js 22 image in ECR pinned by digest); set it, or unset them to preprocess every dataset in the Lambda.',
      );
    return undefined;
  }
  const repository = ecrRepositoryOf(image);
  if (!isImagePinned(image) || !repository)
    throw new StackSettingsError(
      'SETTING_INVALID',
      `VERITRAIL_PROCESSING_IMAGE must be an ECR image pinned by digest, <account>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:<digest> (SageMaker Processing pulls from ECR only), got "${image}".`,
    );
  if (threshold !== undefined && !/^\d+$/.test(threshold))
    throw new StackSettingsError(
      'SETTING_INVALID',
      `VERITRAIL_PROCESSING_THRESHOLD_BYTES must be a whole number of bytes, got "${threshold}".`,
    );
  if (instanceType !== undefined && !/^ml\.[a-z0-9]+\.[a-z0-9]+$/.test(instanceType))
    throw new StackSettingsError(
      'SETTING_INVALID',
      `VERITRAIL_PROCESSING_INSTANCE_TYPE must be a SageMaker instance type such as ml.m5.xlarge, got "${instanceType}".`,
    );
  return {
    image,
    thresholdBytes: threshold === undefined ? DEFAULT_PROCESSING_THRESHOLD_BYTES : Number(threshold),
    ...(instanceType ? { instanceType } : {}),
    repository,
  };
}

/**
 * VERITRAIL_TRANSFORM_MAX_INSTANCES (1-99, unset: 1): the most instances Evaluate's sharded Batch
 * Transform asks for (one per 8 shards up to it; src/aws/sagemaker-scorer.ts). Mind the account's
 * Batch Transform instance quota for the transform's instance type.
 */
export function transformMaxInstances(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const value = env.VERITRAIL_TRANSFORM_MAX_INSTANCES || undefined;
  if (value === undefined) return undefined;
  if (!/^[1-9][0-9]?$/.test(value))
    throw new StackSettingsError(
      'SETTING_INVALID',
      `VERITRAIL_TRANSFORM_MAX_INSTANCES must be a whole number from 1 to 99, got "${value}".`,
    );
  return Number(value);
}

/**
 * VERITRAIL_TRANSFORM_SHARD_BYTES (1024 to 67108864, unset: 64 MiB): the most bytes of test
 * features in one Batch Transform request (src/aws/sagemaker-scorer.ts TRANSFORM_SHARD_BYTES), for
 * a model server that takes less than MaxPayloadInMB's 100 MB.
 */
export function transformShardBytes(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const value = env.VERITRAIL_TRANSFORM_SHARD_BYTES || undefined;
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1024 || Number(value) > 64 * 1024 * 1024)
    throw new StackSettingsError(
      'SETTING_INVALID',
      `VERITRAIL_TRANSFORM_SHARD_BYTES must be a whole number of bytes from 1024 to 67108864, got "${value}".`,
    );
  return Number(value);
}

/**
 * Deploys from GitHub Actions with short-lived credentials (issue 17, docs/deploy.md "Deploying from
 * CI with short-lived credentials"): the repository, branch and, optionally, GitHub environment whose
 * workflow jobs may assume the deploy role through GitHub's OIDC provider. Unset (no
 * VERITRAIL_CI_GITHUB_REPOSITORY), the app has no deploy role at all.
 */
export interface GithubDeploy {
  /** `owner/name` as GitHub spells it: the token's `sub` claim carries it, compared case-sensitively. */
  repository: string;
  /** The one branch whose workflow runs may deploy (default `main`). */
  branch: string;
  /** When set, only jobs that run in this GitHub environment (and on `branch`) may deploy. */
  environment?: string;
  /** An existing IAM OIDC provider for GitHub in this account (IAM allows one per issuer URL). */
  providerArn?: string;
}

export const DEFAULT_CI_BRANCH = 'main';

const GITHUB_REPOSITORY = /^[A-Za-z0-9][A-Za-z0-9-]{0,38}\/[A-Za-z0-9._-]{1,100}$/;
const GITHUB_OIDC_PROVIDER_ARN =
  /^arn:aws[a-z-]*:iam::\d{12}:oidc-provider\/token\.actions\.githubusercontent\.com$/;

/** Control characters, and what would read as a pattern or end the `sub` claim's field. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused.
const ENVIRONMENT_REFUSED = /[\x00-\x1f\x7f:*?]/;

/** A branch name as `git check-ref-format --branch` accepts it, without wildcards or a `refs/` prefix. */
function isBranchName(name: string): boolean {
  if (name.length === 0 || name.length > 244 || name === '@') return false;
  if (name.startsWith('refs/') || name.startsWith('-') || name.startsWith('/')) return false;
  if (name.endsWith('/') || name.endsWith('.') || name.endsWith('.lock')) return false;
  if (name.includes('..') || name.includes('//') || name.includes('@{')) return false;
  // Control characters, space and the characters git refuses in a ref (git-check-ref-format(1)).
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused.
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(name)) return false;
  return name.split('/').every((part) => !part.startsWith('.'));
}

/**
 * The CI deploy settings, or undefined when VERITRAIL_CI_GITHUB_REPOSITORY is unset. Each value
 * becomes an exact StringEquals value in the role's trust policy, so anything that could read as a
 * pattern (`*`, `?`) or break the `sub` claim's `:`-separated form is refused with one line.
 */
export function githubDeploy(env: NodeJS.ProcessEnv = process.env): GithubDeploy | undefined {
  const repository = env.VERITRAIL_CI_GITHUB_REPOSITORY || undefined;
  const branch = env.VERITRAIL_CI_GITHUB_BRANCH || undefined;
  const environment = env.VERITRAIL_CI_GITHUB_ENVIRONMENT || undefined;
  const providerArn = env.VERITRAIL_CI_GITHUB_OIDC_PROVIDER_ARN || undefined;
  if (!repository) {
    const orphan = [
      ['VERITRAIL_CI_GITHUB_BRANCH', branch],
      ['VERITRAIL_CI_GITHUB_ENVIRONMENT', environment],
      ['VERITRAIL_CI_GITHUB_OIDC_PROVIDER_ARN', providerArn],
    ].find(([, value]) => value !== undefined);
    if (orphan) {
      throw new StackSettingsError(
        'SETTING_INVALID',
        `${orphan[0]} is set but VERITRAIL_CI_GITHUB_REPOSITORY is not: set the repository (owner/name) that may deploy, or unset ${orphan[0]}.`,
      );
    }
    return undefined;
  }
  if (!GITHUB_REPOSITORY.test(repository) || /\/\.\.?$/.test(repository)) {
    throw new StackSettingsError(
      'SETTING_INVALID',
      `VERITRAIL_CI_GITHUB_REPOSITORY must be one GitHub repository as owner/name (no wildcard), got "${repository}".`,
    );
  }
  if (branch !== undefined && !isBranchName(branch)) {
    throw new StackSettingsError(
      'SETTING_INVALID',
      `VERITRAIL_CI_GITHUB_BRANCH must be one branch name such as main or release/v2 (no refs/heads/ prefix, no wildcard, space or ':'), got "${branch}".`,
    );
  }
  if (
    environment !== undefined &&
    (environment.length > 255 || environment.trim() !== environment || ENVIRONMENT_REFUSED.test(environment))
  ) {
    throw new StackSettingsError(
      'SETTING_INVALID',
      `VERITRAIL_CI_GITHUB_ENVIRONMENT must be the name of one GitHub environment (at most 255 characters, no ':', '*' or '?', no surrounding spaces), got "${environment}".`,
    );
  }
  if (providerArn !== undefined && !GITHUB_OIDC_PROVIDER_ARN.test(providerArn)) {
    throw new StackSettingsError(
      'SETTING_INVALID',
      `VERITRAIL_CI_GITHUB_OIDC_PROVIDER_ARN must be the ARN of this account's GitHub OIDC provider (arn:aws:iam::<account>:oidc-provider/token.actions.githubusercontent.com), got "${providerArn}".`,
    );
  }
  return {
    repository,
    branch: branch ?? DEFAULT_CI_BRANCH,
    ...(environment !== undefined ? { environment } : {}),
    ...(providerArn !== undefined ? { providerArn } : {}),
  };
}

/** CloudWatch Logs retention of function and state machine logs, in days. */
export const LOG_RETENTION_DAYS = 365;

/** IAM role names are at most 64 characters (IAM User Guide, "IAM object quotas"). */
export function roleName(app: string, stage: string, region: string, purpose: string): string {
  const name = `${app}-${stage}-${region}-${purpose}`;
  if (name.length > 64) {
    throw new StackSettingsError(
      'NAME_TOO_LONG',
      `IAM role name ${name} is longer than 64 characters. Use a shorter stage name (or pipeline name).`,
    );
  }
  return name;
}

/**
 * A c2sp.org/tlog-witness witness for the audit log (docs/audit-log.md, "A witness on AWS"):
 *
 * - VERITRAIL_WITNESS: `off` (default); `stack`: this app also deploys a Witness stack (its own
 *   key, table and function URL) that witnesses this app's log; `only`: this app deploys nothing
 *   but a Witness stack, for a log in another account (the stronger setup), named by
 *   VERITRAIL_WITNESS_LOG_ORIGIN and VERITRAIL_WITNESS_LOG_KEYS.
 * - VERITRAIL_WITNESS_NAME: the witness's key name (default `veritrail.aws/<stage>/witness`).
 * - VERITRAIL_EXTERNAL_WITNESSES: other witnesses the checkpointing functions ask, as a local
 *   witnesses.json: `{"witnesses":[{"vkey","url"}]}` (HTTPS).
 */
export type WitnessMode = 'off' | 'stack' | 'only';

export interface WitnessSettings {
  mode: WitnessMode;
  /** VERITRAIL_WITNESS_NAME, when set. */
  name?: string;
  /** `only`: the log this witness cosigns, its origin line and its checkpoint public keys (PEM). */
  log?: { origin: string; publicKeys: string[] };
  /** Witnesses outside this app that the checkpointing functions also ask. */
  external: { vkey: string; url: string }[];
}

/** Reserved concurrency of the witness function: concurrent checkpoints of one log are few. */
export const WITNESS_RESERVED_CONCURRENCY = 2;

/** The witness's key name when VERITRAIL_WITNESS_NAME is unset. */
export function defaultWitnessName(stage: string): string {
  return `veritrail.aws/${stage}/witness`;
}

function pemPublicKeys(value: string, cwd: string): string[] {
  const files = value
    .split(',')
    .map((f) => f.trim())
    .filter((f) => f !== '');
  if (files.length === 0) {
    throw new StackSettingsError(
      'SETTING_INVALID',
      'VERITRAIL_WITNESS_LOG_KEYS must name at least one PEM file (comma-separated): the public key(s) the log signs checkpoints with.',
    );
  }
  return files.map((file) => {
    const full = path.resolve(cwd, file);
    let key: KeyObject;
    try {
      key = createPublicKey(readFileSync(full, 'utf8'));
    } catch (cause) {
      throw new StackSettingsError(
        'SETTING_INVALID',
        `VERITRAIL_WITNESS_LOG_KEYS: ${full} is not a readable public key in PEM. Export the log's checkpoint key with: aws kms get-public-key --key-id <checkpoint key ARN> --query PublicKey --output text | base64 -d | openssl pkey -pubin -inform DER -out checkpoint.pem`,
        { cause },
      );
    }
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new StackSettingsError(
        'SETTING_INVALID',
        `VERITRAIL_WITNESS_LOG_KEYS: ${full} is not an ECDSA P-256 public key; veritrail's checkpoint keys are (KMS ECC_NIST_P256).`,
      );
    }
    return key.export({ type: 'spki', format: 'pem' }).toString();
  });
}

/** The witness settings, checked; each problem is one line naming the setting and the fix. */
export function witnessSettings(
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): WitnessSettings {
  const modeText = env.VERITRAIL_WITNESS || 'off';
  if (modeText !== 'off' && modeText !== 'stack' && modeText !== 'only') {
    throw new StackSettingsError(
      'SETTING_INVALID',
      `VERITRAIL_WITNESS must be "off" (default), "stack" (deploy a witness of this app's audit log) or "only" (deploy only a witness, for a log in another account), got "${modeText}".`,
    );
  }
  const mode: WitnessMode = modeText;
  const name = env.VERITRAIL_WITNESS_NAME || undefined;
  if (name !== undefined && !WITNESS_NAME.test(name)) {
    throw new StackSettingsError(
      'SETTING_INVALID',
      `VERITRAIL_WITNESS_NAME must be a key name without spaces or "+", such as example.org/veritrail-witness, got "${name}".`,
    );
  }
  if (name !== undefined && mode === 'off') {
    throw new StackSettingsError(
      'SETTING_INVALID',
      'VERITRAIL_WITNESS_NAME is set but VERITRAIL_WITNESS is off: set VERITRAIL_WITNESS=stack (or only), or unset the name.',
    );
  }
  const origin = env.VERITRAIL_WITNESS_LOG_ORIGIN || undefined;
  const keys = env.VERITRAIL_WITNESS_LOG_KEYS || undefined;
  let log: WitnessSettings['log'];
  if (mode === 'only') {
    if (!origin || !keys) {
      throw new StackSettingsError(
        'SETTING_INVALID',
        "VERITRAIL_WITNESS=only needs VERITRAIL_WITNESS_LOG_ORIGIN (the log's origin line, veritrail.aws/<audit bucket> of the other app) and VERITRAIL_WITNESS_LOG_KEYS (its checkpoint public key, PEM file).",
      );
    }
    if (origin.length > 255 || /[\s]/.test(origin)) {
      throw new StackSettingsError(
        'SETTING_INVALID',
        `VERITRAIL_WITNESS_LOG_ORIGIN must be one origin line without spaces, such as veritrail.aws/prod-veritrail-storage-auditbucket-abc123, got "${origin}".`,
      );
    }
    log = { origin, publicKeys: pemPublicKeys(keys, cwd) };
  } else if (origin || keys) {
    throw new StackSettingsError(
      'SETTING_INVALID',
      `${origin ? 'VERITRAIL_WITNESS_LOG_ORIGIN' : 'VERITRAIL_WITNESS_LOG_KEYS'} is only read with VERITRAIL_WITNESS=only (a witness of another app's log); with "stack" the witness trusts this app's checkpoint key. Unset it.`,
    );
  }
  const external: WitnessSettings['external'] = [];
  const text = env.VERITRAIL_EXTERNAL_WITNESSES?.trim();
  if (text) {
    if (mode === 'only') {
      throw new StackSettingsError(
        'SETTING_INVALID',
        'VERITRAIL_EXTERNAL_WITNESSES is set but VERITRAIL_WITNESS=only deploys no pipeline to ask them: unset it.',
      );
    }
    try {
      witnessesFrom(text, 'VERITRAIL_EXTERNAL_WITNESSES');
    } catch (cause) {
      throw new StackSettingsError(
        'SETTING_INVALID',
        `${cause instanceof Error ? cause.message : String(cause)}. VERITRAIL_EXTERNAL_WITNESSES must be {"witnesses":[{"vkey":"<name>+<key id>+<key>","url":"https://<witness>/"}]}.`,
        { cause },
      );
    }
    for (const w of (JSON.parse(text) as { witnesses: { vkey: string; url: string }[] }).witnesses) {
      if (new URL(w.url).protocol !== 'https:') {
        throw new StackSettingsError(
          'SETTING_INVALID',
          `VERITRAIL_EXTERNAL_WITNESSES: witness ${w.vkey.split('+')[0]} must be reached over HTTPS, got "${w.url}".`,
        );
      }
      external.push({ vkey: w.vkey.trim(), url: w.url });
    }
  }
  // A function in VPC mode's isolated subnets has no route to the internet (stacks/network.ts: no
  // NAT, no internet gateway) and a function URL has no VPC endpoint: every checkpoint would wait
  // out the HTTP timeout and stay unwitnessed.
  if ((mode === 'stack' || external.length > 0) && vpcMode(env.VERITRAIL_VPC_MODE) === 'isolated') {
    throw new StackSettingsError(
      'SETTING_INVALID',
      'a witness is reached over HTTPS, and VERITRAIL_VPC_MODE=isolated gives the checkpointing functions no route out (no NAT, and a function URL has no VPC endpoint): turn VPC mode off, or leave VERITRAIL_WITNESS and VERITRAIL_EXTERNAL_WITNESSES unset (docs/audit-log.md, "A witness on AWS").',
    );
  }
  return { mode, ...(name !== undefined ? { name } : {}), ...(log ? { log } : {}), external };
}
