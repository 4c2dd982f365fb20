/**
 * The SST v2 stacks, synthesized offline (initProject + App + Template.fromStack, no credentials,
 * no network, no bundling) against test/infra/fixtures/pipelines: credit-scoring (the example:
 * schedule, network isolation), fraud (custom landing prefix, VPC, forced schedule) and churn (no
 * SageMaker trainer, no schedule).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { type CfnElement, Stack } from 'aws-cdk-lib';
import { Template as CdkTemplate } from 'aws-cdk-lib/assertions';
import type { App } from 'sst/constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_AUDIT_RETENTION_DAYS } from '../../src/core/layout.js';
import {
  s3ObjectCreatedPattern,
  sagemakerTrainingStateChangePattern,
  scheduleExpression,
  scheduleInputTransformer,
} from '../../src/core/rules.js';
import {
  ACCESS,
  FUNCTION_NAMES,
  type FunctionName,
  MAP_RESULTS_PREFIX,
  STATE_MACHINE_TASKS,
  signers,
} from '../../stacks/access.js';
import { RESOURCE_STAR_ONLY_ACTIONS } from '../../stacks/grants.js';
import { BUNDLED_PIPELINES_DIR } from '../../stacks/Pipeline.js';
import { DENIED_OBJECT_ACTIONS } from '../../stacks/Storage.js';
import {
  auditReplica,
  auditRetentionDays,
  loadPipelines,
  RESERVED_CONCURRENCY,
  vpcMode,
} from '../../stacks/settings.js';
import {
  HASH_BATCHES_LABEL,
  readStateMachineDefinition,
  STATE_MACHINE_BUCKETS,
  STATE_MACHINE_FILE,
} from '../../stacks/state-machine.js';
import {
  ASYNC_MAX_EVENT_AGE,
  ASYNC_RETRY_ATTEMPTS,
  TARGET_MAX_EVENT_AGE,
  TARGET_RETRY_ATTEMPTS,
} from '../../stacks/Triggers.js';
import {
  actionsOf,
  type FoundStatement,
  flat,
  type Json,
  listOf,
  resourcesOf,
  statementsIn,
  statementsOf,
  type Template,
} from './helpers.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const FIXTURES = path.join(ROOT, 'test/infra/fixtures/pipelines');
const STAGE = 'test';

let app: App;
const templates: Record<string, Template> = {};
let stacksModule: {
  getStack: (fn: never) => Stack;
  use: <T>(fn: (...args: never[]) => T) => T;
};
let stackFns: {
  Identity: typeof import('../../stacks/Identity.js').Identity;
  Keys: typeof import('../../stacks/Keys.js').Keys;
  Storage: typeof import('../../stacks/Storage.js').Storage;
  Database: typeof import('../../stacks/Database.js').Database;
  Pipeline: typeof import('../../stacks/Pipeline.js').Pipeline;
  Triggers: typeof import('../../stacks/Triggers.js').Triggers;
  Witness: typeof import('../../stacks/Witness.js').Witness;
};
let synthMs = 0;

function template(name: keyof typeof stackFns): Template {
  const t = templates[name];
  if (!t) throw new Error(`no template for ${name}`);
  return t;
}

function resourcesOfType(name: keyof typeof stackFns, type: string) {
  return Object.entries(template(name).Resources).filter(([, r]) => r.Type === type);
}

/** Logical id of a construct's CloudFormation resource inside its own stack. */
function logicalId(construct: { node: { defaultChild?: unknown } } | CfnElement): string {
  const element = ('logicalId' in construct ? construct : construct.node.defaultChild) as CfnElement;
  return Stack.of(element).resolve(element.logicalId) as string;
}

beforeAll(async () => {
  process.env.VERITRAIL_PIPELINES_DIR = FIXTURES;
  delete process.env.VERITRAIL_AUDIT_RETENTION_DAYS;
  // Nothing may reach AWS: no credentials, no instance metadata.
  for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE'])
    delete process.env[k];
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  // With the app's own witness (VERITRAIL_WITNESS=stack), so every check below covers its stack too
  // (test/infra/witness.test.ts checks what is particular to it).
  process.env.VERITRAIL_WITNESS = 'stack';
  const started = performance.now();
  const { synthesizeApp } = await import('../../stacks/synthesize.js');
  app = await synthesizeApp({
    stage: STAGE,
    root: ROOT,
    outdir: path.join(ROOT, '.sst', 'synth-infra-test'),
  });
  const sst = await import('sst/constructs');
  stacksModule = sst as unknown as typeof stacksModule;
  stackFns = {
    Identity: (await import('../../stacks/Identity.js')).Identity,
    Keys: (await import('../../stacks/Keys.js')).Keys,
    Storage: (await import('../../stacks/Storage.js')).Storage,
    Database: (await import('../../stacks/Database.js')).Database,
    Pipeline: (await import('../../stacks/Pipeline.js')).Pipeline,
    Triggers: (await import('../../stacks/Triggers.js')).Triggers,
    Witness: (await import('../../stacks/Witness.js')).Witness,
  };
  for (const [name, fn] of Object.entries(stackFns)) {
    templates[name] = CdkTemplate.fromStack(sst.getStack(fn as never)).toJSON() as Template;
  }
  synthMs = performance.now() - started;
});

const identity = () => stacksModule.use(stackFns.Identity);

function functionRoleId(name: FunctionName): string {
  return logicalId(identity().functionRoles[name]);
}

/** The Lambda function resource whose Role is the named function's role. */
function lambdaOf(name: FunctionName): Record<string, Json> {
  const roleId = functionRoleId(name);
  const found = resourcesOfType('Pipeline', 'AWS::Lambda::Function').filter(([, r]) =>
    flat(r.Properties?.Role).includes(`GetAtt${roleId}Arn`),
  );
  expect(found, `exactly one Lambda runs as role ${roleId}`).toHaveLength(1);
  return found[0]?.[1].Properties ?? {};
}

/** The statements attached to a function's role (its own Grants policy and the tracing default policy). */
function grantsOf(name: FunctionName): Record<string, Json>[] {
  const roleId = functionRoleId(name);
  const all: Record<string, Json>[] = [];
  for (const stackName of ['Identity', 'Pipeline'] as const) {
    for (const [, r] of resourcesOfType(stackName, 'AWS::IAM::Policy')) {
      const roles = flat(r.Properties?.Roles);
      if (roles.includes(roleId) || roles === roleId) {
        const doc = r.Properties?.PolicyDocument as { Statement: Record<string, Json>[] };
        all.push(...doc.Statement);
      }
    }
  }
  return all;
}

function allowedActions(name: FunctionName): Set<string> {
  return new Set(grantsOf(name).flatMap(actionsOf));
}

describe('synthesis', () => {
  it('runs offline and in reasonable time', () => {
    expect(Object.keys(templates).sort()).toEqual([
      'Database',
      'Identity',
      'Keys',
      'Pipeline',
      'Storage',
      'Triggers',
      'Witness',
    ]);
    // Generous bound for a shared 2-core machine; it takes ~5 s.
    expect(synthMs).toBeLessThan(60_000);
  });

  it('leaves no SST custom-resource handler (nodejs16.x, managed policy) in any stack', () => {
    for (const name of Object.keys(templates) as (keyof typeof stackFns)[]) {
      const fns = resourcesOfType(name, 'AWS::Lambda::Function');
      expect(fns.length).toBe(name === 'Pipeline' ? FUNCTION_NAMES.length : name === 'Witness' ? 1 : 0);
    }
  });

  it('references only resources that exist in the same template (cross-stack through exports)', () => {
    for (const [stack, t] of Object.entries(templates)) {
      // A Ref may also name a parameter of the template (the Powertools layer's SSM parameter).
      const parameters = (t as { Parameters?: Record<string, unknown> }).Parameters ?? {};
      const names = new Set([...Object.keys(t.Resources), ...Object.keys(parameters)]);
      const walk = (x: Json): void => {
        if (Array.isArray(x)) {
          x.forEach(walk);
          return;
        }
        if (x === null || typeof x !== 'object') return;
        for (const [k, v] of Object.entries(x)) {
          if (k === 'Ref' && typeof v === 'string' && !v.startsWith('AWS::'))
            expect(names, `${stack} Ref ${v}`).toContain(v);
          if (k === 'Fn::GetAtt' && Array.isArray(v))
            expect(names, `${stack} GetAtt ${String(v[0])}`).toContain(v[0]);
          walk(v);
        }
      };
      walk(t.Resources as unknown as Json);
    }
  });
});

describe('least privilege across every statement', () => {
  const statements = (): FoundStatement[] => statementsIn(templates);
  const allows = () =>
    statements().filter(
      (s) => s.statement.Effect === 'Allow' && !('AssumeRolePolicyDocument' in s.statement),
    );

  it('has no wildcard action (`*`, `service:*`, or any `*`) in an Allow statement', () => {
    const offenders = allows()
      .filter((s) => s.type !== 'AWS::IAM::Role' || !actionsOf(s.statement).includes('sts:AssumeRole'))
      .flatMap((s) =>
        actionsOf(s.statement)
          .filter((a) => a.includes('*'))
          .map((a) => `${s.stack}/${s.resource}: ${a}`),
      );
    expect(offenders).toEqual([]);
  });

  it('uses Resource "*" only for actions that accept nothing narrower (key policies: "*" is the key itself)', () => {
    const allowList = new Set<string>(RESOURCE_STAR_ONLY_ACTIONS);
    const offenders = allows()
      .filter((s) => s.type !== 'AWS::KMS::Key')
      .filter((s) => resourcesOf(s.statement).some((r) => r === '*'))
      .flatMap((s) =>
        actionsOf(s.statement)
          .filter((a) => !allowList.has(a))
          .map((a) => `${s.stack}/${s.resource}: ${a}`),
      );
    expect(offenders).toEqual([]);
  });

  it('grants no role a delete, a retention bypass or a lock change, and attaches no managed policy', () => {
    const forbidden =
      /^s3:(DeleteObject|BypassGovernanceRetention|PutBucketObjectLockConfiguration|PutObjectLockConfiguration)/;
    const offenders = allows().flatMap((s) => actionsOf(s.statement).filter((a) => forbidden.test(a)));
    expect(offenders).toEqual([]);
    for (const [stack, t] of Object.entries(templates)) {
      for (const [id, r] of Object.entries(t.Resources)) {
        if (r.Type === 'AWS::IAM::Role')
          expect(r.Properties?.ManagedPolicyArns, `${stack}/${id}`).toBeUndefined();
      }
    }
  });

  it('the wildcard check can fail: it flags a statement with s3:* and a * resource', () => {
    const bad: Record<string, Template> = {
      X: {
        Resources: {
          P: {
            Type: 'AWS::IAM::Policy',
            Properties: {
              PolicyDocument: { Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }] },
            },
          },
        },
      },
    };
    const s = statementsIn(bad);
    expect(s.flatMap((x) => actionsOf(x.statement)).filter((a) => a.includes('*'))).toEqual(['s3:*']);
    expect(s.filter((x) => resourcesOf(x.statement).includes('*'))).toHaveLength(1);
  });
});

describe('Keys', () => {
  const keys = () =>
    resourcesOfType('Keys', 'AWS::KMS::Key').map(([id, r]) => ({ id, p: r.Properties ?? {} }));
  const policyOf = (id: string) => statementsOf(keys().find((k) => k.id === id)?.p.KeyPolicy);
  const keyId = (prefix: string) => keys().find((k) => k.id.startsWith(prefix))?.id ?? '';

  it('makes two P-256 signing keys and a rotating symmetric data key', () => {
    const specs = keys().map((k) => `${k.p.KeySpec}/${k.p.KeyUsage}/${k.p.EnableKeyRotation ?? false}`);
    expect(specs.sort()).toEqual([
      'ECC_NIST_P256/SIGN_VERIFY/false',
      'ECC_NIST_P256/SIGN_VERIFY/false',
      'SYMMETRIC_DEFAULT/ENCRYPT_DECRYPT/true',
    ]);
  });

  it('retains every key on removal, so retained data stays readable and signatures checkable', () => {
    for (const [id, r] of resourcesOfType('Keys', 'AWS::KMS::Key')) {
      expect((r as { DeletionPolicy?: string }).DeletionPolicy, id).toBe('Retain');
    }
  });

  for (const [kind, prefix] of [
    ['attestation', 'AttestationKey'],
    ['checkpoint', 'CheckpointKey'],
  ] as const) {
    it(`lets only the ${kind} signing roles call kms:Sign`, () => {
      const statements = policyOf(keyId(prefix));
      const sign = statements.filter((s) => actionsOf(s).includes('kms:Sign'));
      expect(sign).toHaveLength(1);
      const principals = flat((sign[0]?.Principal as { AWS?: Json } | undefined)?.AWS);
      const expected = signers(kind).map(functionRoleId);
      for (const id of expected) expect(principals).toContain(id);
      for (const other of FUNCTION_NAMES.filter((n) => !signers(kind).includes(n))) {
        expect(principals).not.toMatch(new RegExp(`${functionRoleId(other)}Arn`));
      }
      expect(principals).not.toContain(':root');
      // Verification is delegated to IAM, and grants no signing.
      const verify = statements.find((s) => s.Sid === 'VerifyThroughIam');
      expect(actionsOf(verify ?? {}).sort()).toEqual(['kms:DescribeKey', 'kms:GetPublicKey', 'kms:Verify']);
    });
  }

  it('grants key use on the data key only to data users, SageMaker roles and CloudWatch Logs', () => {
    const statements = policyOf(keyId('DataKey'));
    const admin = statements.find((s) => s.Sid === 'KeyAdministrationByTheAccount');
    expect(actionsOf(admin ?? {}).filter((a) => /Decrypt|Encrypt|GenerateDataKey|Sign/.test(a))).toEqual([]);
    const viaService = statements.find((s) => s.Sid === 'ReadThroughStorageServicesOnly');
    expect(flat(viaService?.Condition)).toContain('s3.');
    expect(flat(viaService?.Condition)).toContain('dynamodb.');
  });
});

describe('Storage', () => {
  const buckets = () => resourcesOfType('Storage', 'AWS::S3::Bucket');
  const bucket = (role: string) => {
    const found = buckets().find(([id]) => id.startsWith(`${role}Bucket`));
    if (!found) throw new Error(`no ${role} bucket`);
    return found;
  };

  it('versions, blocks public access, encrypts with the data key and a bucket key, and retains every bucket', () => {
    // landing, artifacts, audit, and the data-access trail's bucket.
    expect(buckets()).toHaveLength(4);
    for (const [id, r] of buckets()) {
      const p = r.Properties ?? {};
      expect(p.VersioningConfiguration, id).toEqual({ Status: 'Enabled' });
      expect(p.PublicAccessBlockConfiguration, id).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      const sse = (p.BucketEncryption as { ServerSideEncryptionConfiguration: Record<string, Json>[] })
        .ServerSideEncryptionConfiguration[0] as Record<string, Json>;
      expect(sse.BucketKeyEnabled, id).toBe(true);
      const byDefault = sse.ServerSideEncryptionByDefault as Record<string, Json>;
      expect(byDefault.SSEAlgorithm).toBe('aws:kms');
      expect(flat(byDefault.KMSMasterKeyID)).toContain('DataKey');
      expect(p.CorsConfiguration, id).toBeUndefined();
      expect(flat(p.OwnershipControls)).toContain('BucketOwnerEnforced');
      expect((r as { DeletionPolicy?: string }).DeletionPolicy, id).toBe('Retain');
    }
  });

  it('turns on EventBridge notifications for the landing bucket only, without a custom resource', () => {
    expect(bucket('landing')[1].Properties?.NotificationConfiguration).toEqual({
      EventBridgeConfiguration: { EventBridgeEnabled: true },
    });
    expect(bucket('artifacts')[1].Properties?.NotificationConfiguration).toBeUndefined();
    expect(Object.values(template('Storage').Resources).filter((r) => r.Type.startsWith('Custom::'))).toEqual(
      [],
    );
  });

  it('locks the audit bucket in COMPLIANCE mode with the default retention', () => {
    const p = bucket('audit')[1].Properties ?? {};
    expect(p.ObjectLockEnabled).toBe(true);
    expect(p.ObjectLockConfiguration).toEqual({
      ObjectLockEnabled: 'Enabled',
      Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: DEFAULT_AUDIT_RETENTION_DAYS } },
    });
    expect(bucket('landing')[1].Properties?.ObjectLockEnabled).toBeUndefined();
  });

  it('denies non-TLS access and any delete, bypass or lock change in every bucket policy', () => {
    const policies = resourcesOfType('Storage', 'AWS::S3::BucketPolicy');
    expect(policies).toHaveLength(4);
    for (const [id, r] of policies) {
      const statements = statementsOf(r.Properties?.PolicyDocument);
      const tls = statements.find(
        (s) =>
          s.Effect === 'Deny' &&
          flat(s.Condition) === 'false' &&
          JSON.stringify(s.Condition).includes('aws:SecureTransport'),
      );
      expect(tls, id).toBeDefined();
      const deny = statements.find((s) => s.Sid === 'NoDeleteNoBypassNoLockChange');
      expect(deny?.Effect).toBe('Deny');
      expect(deny?.Principal).toEqual({ AWS: '*' });
      expect(actionsOf(deny ?? {}).sort()).toEqual([...DENIED_OBJECT_ACTIONS].sort());
      expect(resourcesOf(deny ?? {})).toHaveLength(2);
      const lock = statements.find((s) => s.Sid === 'LockConfigurationOnlyThroughDeploys');
      expect(lock?.Effect).toBe('Deny');
      expect(actionsOf(lock ?? {})).toEqual(['s3:PutBucketObjectLockConfiguration']);
      expect(flat(lock?.Condition)).toContain('cfn-exec-role');
    }
  });
});

describe('who read or wrote which object (issue 15)', () => {
  const trail = () => {
    const found = resourcesOfType('Storage', 'AWS::CloudTrail::Trail');
    expect(found).toHaveLength(1);
    return found[0]?.[1].Properties ?? {};
  };

  it('records S3 data events of the landing, artifacts and audit buckets, reads and writes', () => {
    const selectors = listOf(trail().EventSelectors);
    expect(selectors).toHaveLength(1);
    expect(selectors[0]?.ReadWriteType).toBe('All');
    expect(selectors[0]?.IncludeManagementEvents).toBe(false);
    const data = listOf(selectors[0]?.DataResources);
    expect(data.map((d) => d.Type)).toEqual(['AWS::S3::Object']);
    const values = listOf(data[0]?.Values).map((v) => flat(v as Json));
    for (const role of ['landing', 'artifacts', 'audit'])
      expect(values.some((v) => v.startsWith(`GetAtt:${role}Bucket`) && v.endsWith('.Arn/'))).toBe(true);
    expect(values).toHaveLength(3);
  });

  it('validates log files, encrypts them with the data key, and copies them to an encrypted log group', () => {
    const p = trail();
    expect(p.EnableLogFileValidation).toBe(true);
    expect(p.IsLogging).toBe(true);
    expect(flat(p.KMSKeyId)).toContain('DataKey');
    const groupId = flat(p.CloudWatchLogsLogGroupArn)
      .replace(/^GetAtt:/, '')
      .replace(/\.Arn$/, '');
    const group = template('Storage').Resources[groupId]?.Properties ?? {};
    expect(flat(group.KmsKeyId)).toContain('DataKey');
    expect(group.RetentionInDays).toBe(365);
  });

  it('delivers into a bucket of its own, Object Lock COMPLIANCE for the audit retention, writable by this trail only', () => {
    const bucketId = flat(trail().S3BucketName);
    expect(bucketId).toMatch(/^trailBucket/);
    const bucket = template('Storage').Resources[bucketId]?.Properties ?? {};
    expect(bucket.ObjectLockConfiguration).toEqual({
      ObjectLockEnabled: 'Enabled',
      Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: DEFAULT_AUDIT_RETENTION_DAYS } },
    });
    const policy = resourcesOfType('Storage', 'AWS::S3::BucketPolicy').find(
      ([, r]) => flat(r.Properties?.Bucket) === bucketId,
    );
    const statements = statementsOf(policy?.[1].Properties?.PolicyDocument);
    for (const sid of ['CloudTrailAclCheck', 'CloudTrailWrite']) {
      const st = statements.find((x) => x.Sid === sid);
      expect(st?.Principal, sid).toEqual({ Service: 'cloudtrail.amazonaws.com' });
      expect(flat(st?.Condition), sid).toContain(':trail/test-veritrail-data-access');
    }
  });

  it('lets CloudTrail use the data key for this trail only', () => {
    const key = resourcesOfType('Keys', 'AWS::KMS::Key').find(([id]) => id.startsWith('DataKey'));
    const st = statementsOf(key?.[1].Properties?.KeyPolicy).find((x) => x.Sid === 'DataAccessTrailEncrypts');
    expect(actionsOf(st ?? {}).sort()).toEqual(['kms:DescribeKey', 'kms:GenerateDataKey']);
    expect(flat(st?.Condition)).toContain(':trail/test-veritrail-data-access');
  });
});

describe('Database', () => {
  it('backs the table up daily into a locked, encrypted vault, keeping recovery points as long as the audit log', () => {
    const [[, plan] = ['', { Type: '', Properties: {} }]] = resourcesOfType(
      'Database',
      'AWS::Backup::BackupPlan',
    );
    const rules = listOf((plan.Properties?.BackupPlan as Record<string, Json> | undefined)?.BackupPlanRule);
    expect(rules).toHaveLength(1);
    expect(rules[0]?.Lifecycle).toEqual({ DeleteAfterDays: DEFAULT_AUDIT_RETENTION_DAYS });
    const [[, vault] = ['', { Type: '', Properties: {} }]] = resourcesOfType(
      'Database',
      'AWS::Backup::BackupVault',
    );
    expect(flat(vault.Properties?.EncryptionKeyArn)).toContain('DataKey');
    expect(vault.Properties?.LockConfiguration).toEqual({ MinRetentionDays: DEFAULT_AUDIT_RETENTION_DAYS });
    const deny = statementsOf(vault.Properties?.AccessPolicy).find((x) => x.Sid === 'NoManualDeletion');
    expect(deny?.Effect).toBe('Deny');
    const [[, selection] = ['', { Type: '', Properties: {} }]] = resourcesOfType(
      'Database',
      'AWS::Backup::BackupSelection',
    );
    const table = resourcesOfType('Database', 'AWS::DynamoDB::Table')[0]?.[0] ?? '';
    expect((selection.Properties?.BackupSelection as Record<string, Json> | undefined)?.Resources).toEqual([
      { 'Fn::GetAtt': [table, 'Arn'] },
    ]);
  });

  it('is the single table with gsi1, PITR, the data key and deletion protection', () => {
    const [[, table] = ['', { Type: '', Properties: {} }]] = resourcesOfType(
      'Database',
      'AWS::DynamoDB::Table',
    );
    const p = table.Properties ?? {};
    expect(p.KeySchema).toEqual([
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
    expect(
      (p.GlobalSecondaryIndexes as Record<string, Json>[]).map((g) => [g.IndexName, g.KeySchema]),
    ).toEqual([
      [
        'gsi1',
        [
          { AttributeName: 'gsi1pk', KeyType: 'HASH' },
          { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
        ],
      ],
    ]);
    expect(p.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(p.DeletionProtectionEnabled).toBe(true);
    const sse = p.SSESpecification as Record<string, Json>;
    expect(sse.SSEEnabled).toBe(true);
    expect(sse.SSEType).toBe('KMS');
    expect(flat(sse.KMSMasterKeyId)).toContain('DataKey');
    expect((table as { DeletionPolicy?: string }).DeletionPolicy).toBe('Retain');
  });
});

describe('Pipeline functions', () => {
  it.each(FUNCTION_NAMES)(
    '%s has reserved concurrency (a burst of uploads cannot starve the account)',
    (name) => {
      expect(lambdaOf(name).ReservedConcurrentExecutions).toBe(RESERVED_CONCURRENCY[name]);
    },
  );

  it.each(['hash-batch', 'preprocess', 'evaluate', 'training-callback', 'reconcile'] as const)(
    '%s, whose work grows with the data (it hashes or streams it), may run 15 minutes on a full vCPU',
    (name) => {
      expect(lambdaOf(name)).toMatchObject({ Timeout: 900, MemorySize: 1769 });
    },
  );

  it('gives preprocess, which writes the processed splits to /tmp, 10 GB of it (the default is 512 MB)', () => {
    expect(lambdaOf('preprocess').EphemeralStorage).toEqual({ Size: 10240 });
    expect(lambdaOf('evaluate').EphemeralStorage).toEqual({ Size: 512 });
  });

  it('reserves at most 900 in all, leaving the account quota’s unreserved minimum of 100 on 1,000', () => {
    const total = Object.values(RESERVED_CONCURRENCY).reduce((a, b) => a + b, 0);
    expect(total).toBeLessThanOrEqual(900);
  });

  it('puts no function in a VPC unless VPC mode is on', () => {
    for (const name of FUNCTION_NAMES) expect(lambdaOf(name).VpcConfig, name).toBeUndefined();
    expect(resourcesOfType('Pipeline', 'AWS::EC2::VPC')).toEqual([]);
  });

  it.each(FUNCTION_NAMES)(
    '%s runs nodejs22.x on arm64, traced, JSON logs in its own encrypted log group',
    (name) => {
      const p = lambdaOf(name);
      expect(p.Runtime).toBe('nodejs22.x');
      expect(p.Architectures).toEqual(['arm64']);
      expect(p.TracingConfig).toEqual({ Mode: 'Active' });
      const logging = p.LoggingConfig as Record<string, Json>;
      expect(logging.LogFormat).toBe('JSON');
      const groupId = (logging.LogGroup as { Ref: string }).Ref;
      const group = template('Pipeline').Resources[groupId]?.Properties ?? {};
      expect(group.RetentionInDays).toBe(365);
      expect(flat(group.KmsKeyId)).toContain('DataKey');
      const env = (p.Environment as { Variables: Record<string, Json> }).Variables;
      for (const v of [
        'VERITRAIL_TABLE',
        'VERITRAIL_LANDING_BUCKET',
        'VERITRAIL_ARTIFACTS_BUCKET',
        'VERITRAIL_AUDIT_BUCKET',
        'VERITRAIL_DATA_KEY_ARN',
        'VERITRAIL_SIGNING_KEY_ARN',
        'VERITRAIL_CHECKPOINT_KEY_ARN',
        'VERITRAIL_STATE_MACHINE_ARN',
        'VERITRAIL_AUDIT_RETENTION_DAYS',
        'VERITRAIL_SAGEMAKER_ROLE_ARNS',
      ]) {
        expect(env, v).toHaveProperty(v);
      }
      // Its log statement names its own group, nothing else.
      const own = grantsOf(name).find((s) => s.Sid === 'OwnLogGroup');
      expect(flat(own?.Resource)).toBe(`GetAtt:${groupId}.Arn`);
    },
  );

  it('gives every function its own role', () => {
    const roles = FUNCTION_NAMES.map((n) => flat(lambdaOf(n).Role));
    expect(new Set(roles).size).toBe(FUNCTION_NAMES.length);
  });

  it('grants hash-dataset exactly its row: reads listings/, map-results/ and sha256/, writes sha256/, table items, data key', () => {
    const statements = grantsOf('hash-dataset');
    const bySid = (sid: string) => statements.find((s) => s.Sid === sid) ?? {};
    // The fold reads no landing object: the HashBatch children did.
    expect(bySid('ReadLandingPrefixes')).toEqual({});
    expect(
      resourcesOf(bySid('ReadArtifacts'))
        .map(flat)
        .map((r) => r.slice(r.indexOf('/') + 1)),
    ).toEqual(['sha256/*', 'listings/*', 'map-results/*']);
    expect(flat(bySid('WriteArtifacts').Resource)).toMatch(/artifactsBucket.*\/sha256\/\*$/);
    expect(actionsOf(bySid('RunTable')).sort()).toEqual([
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
    ]);
    expect(flat(bySid('RunTable').Resource)).toMatch(/runsTable/);
    expect(actionsOf(bySid('DataKey')).sort()).toEqual(['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey']);
    expect(flat(bySid('DataKey').Resource)).toMatch(/DataKey/);
    expect(allowedActions('hash-dataset').has('kms:Sign')).toBe(false);
  });

  it('grants list-dataset and hash-batch the landing read and their own prefix, nothing of the run', () => {
    for (const [name, prefix] of [
      ['list-dataset', 'listings/'],
      ['hash-batch', 'sha256/'],
    ] as const) {
      const statements = grantsOf(name);
      const bySid = (sid: string) => statements.find((s) => s.Sid === sid) ?? {};
      const landing = resourcesOf(bySid('ReadLandingPrefixes')).map(flat);
      expect(
        landing.map((r) => r.slice(r.lastIndexOf('/', r.length - 3) + 1)),
        name,
      ).toEqual(['churn/*', 'credit-scoring/*', 'incoming/*']);
      expect(flat(bySid('WriteArtifacts').Resource), name).toMatch(
        new RegExp(`artifactsBucket.*/${prefix}\\*$`),
      );
      const actions = allowedActions(name);
      // No run record, no audit entry: the fold (hash-dataset) records the step.
      for (const a of ['dynamodb:PutItem', 'dynamodb:UpdateItem', 's3:PutObjectRetention', 'kms:Sign'])
        expect(actions.has(a), `${name} ${a}`).toBe(false);
    }
  });

  it('lets only the access table’s signers sign, and only start the state machine from start', () => {
    for (const name of FUNCTION_NAMES) {
      const actions = allowedActions(name);
      expect(actions.has('kms:Sign'), name).toBe(
        Boolean(ACCESS[name].signAttestations || ACCESS[name].signCheckpoints),
      );
      expect(actions.has('states:StartExecution'), name).toBe(name === 'start');
      // The callback and the reconciler (a lost SageMaker event) finish the Train step.
      expect(actions.has('states:SendTaskSuccess'), name).toBe(
        name === 'training-callback' || name === 'reconcile',
      );
      expect(actions.has('sagemaker:CreateTrainingJob'), name).toBe(name === 'train');
      // Train passes the role to the training job, Evaluate to the scoring model (Batch Transform).
      expect(actions.has('iam:PassRole'), name).toBe(name === 'train' || name === 'evaluate');
      expect(actions.has('sagemaker:CreateTransformJob'), name).toBe(name === 'evaluate');
      expect(actions.has('sagemaker:CreateModelPackage'), name).toBe(name === 'register');
    }
    const sign = grantsOf('sign').find((s) => s.Sid === 'SignAttestations');
    expect(flat(sign?.Resource)).toMatch(/AttestationKey/);
  });

  it('requires encryption in every CreateTrainingJob request and passes only SageMaker roles to SageMaker', () => {
    const create = grantsOf('train').find((s) => s.Sid === 'CreateTrainingJobs') ?? {};
    expect(flat(create.Resource)).toMatch(/training-job\/vt-\*$/);
    expect(JSON.stringify(create.Condition)).toContain('"sagemaker:InterContainerTrafficEncryption":"true"');
    expect(JSON.stringify(create.Condition)).toContain('"sagemaker:VolumeKmsKeyArn"');
    expect(JSON.stringify(create.Condition)).toContain('"sagemaker:OutputKmsKeyArn"');
    const pass = grantsOf('train').find((s) => s.Sid === 'PassPipelineSageMakerRoles') ?? {};
    expect(flat(pass.Resource)).toMatch(/SageMakercreditscoring.*SageMakerfraud/);
    expect(pass.Condition).toEqual({ StringEquals: { 'iam:PassedToService': 'sagemaker.amazonaws.com' } });
  });
});

describe('the start function bundle', () => {
  const envOf = (name: FunctionName) =>
    (lambdaOf(name).Environment as { Variables: Record<string, Json> }).Variables;

  it('copies every deployed definition, byte for byte, as pipelines/<name>.json', async () => {
    const { useFunctions } = await import('sst/constructs');
    const start = stacksModule.use(stackFns.Pipeline).functions.start;
    const copy = (useFunctions().fromID(start.node.addr)?.copyFiles ?? []).filter((c) =>
      (c.to ?? '').startsWith(`${BUNDLED_PIPELINES_DIR}/`),
    );
    const expected = loadPipelines(FIXTURES).map((p) => ({
      from: path.relative(ROOT, p.file),
      to: `${BUNDLED_PIPELINES_DIR}/${p.definition.name}.json`,
    }));
    expect(copy).toEqual(expected);
    expect(copy.map((c) => c.to).sort()).toEqual([
      'pipelines/churn.json',
      'pipelines/credit-scoring.json',
      'pipelines/fraud.json',
    ]);
    // SST resolves `from` against the project root: each must name the validated file itself.
    for (const c of copy) expect(path.isAbsolute(c.from), c.from).toBe(false);
    expect(copy.find((c) => c.to === 'pipelines/fraud.json')?.from).toBe(
      'test/infra/fixtures/pipelines/fraud/pipeline.json',
    );
    // RegisterRun runs the start service on a Step Functions console start: it carries them too.
    const registerRun = stacksModule.use(stackFns.Pipeline).functions['register-run'];
    expect(
      (useFunctions().fromID(registerRun.node.addr)?.copyFiles ?? []).filter((c) =>
        (c.to ?? '').startsWith(`${BUNDLED_PIPELINES_DIR}/`),
      ),
    ).toEqual(expected);
    // No other function carries the definitions.
    for (const name of FUNCTION_NAMES.filter((n) => n !== 'start' && n !== 'register-run')) {
      const fn = stacksModule.use(stackFns.Pipeline).functions[name];
      const files = useFunctions().fromID(fn.node.addr)?.copyFiles ?? [];
      expect(
        files.filter((c) => (c.to ?? '').startsWith(`${BUNDLED_PIPELINES_DIR}/`)),
        name,
      ).toEqual([]);
    }
  });

  it('ships each SageMaker pipeline training code to check-code and start, and to no other function', async () => {
    const { useFunctions } = await import('sst/constructs');
    const codeOf = (name: FunctionName) =>
      (useFunctions().fromID(stacksModule.use(stackFns.Pipeline).functions[name].node.addr)?.copyFiles ?? [])
        .filter((c) => (c.to ?? '').startsWith('code/'))
        .map((c) => c.to)
        .sort();
    // churn has no SageMaker trainer: nothing of it is bundled.
    const expected = ['code/credit-scoring/trainer', 'code/fraud/trainer'];
    expect(codeOf('check-code')).toEqual(expected);
    expect(codeOf('start')).toEqual(expected);
    for (const name of FUNCTION_NAMES.filter((n) => n !== 'start' && n !== 'check-code'))
      expect(codeOf(name), name).toEqual([]);
  });

  it('tells start and register-run (console starts) where the bundled definitions are, and no other function', () => {
    expect(envOf('start').VERITRAIL_PIPELINES_DIR).toBe('/var/task/pipelines');
    expect(envOf('register-run').VERITRAIL_PIPELINES_DIR).toBe('/var/task/pipelines');
    for (const name of FUNCTION_NAMES.filter((n) => n !== 'start' && n !== 'register-run')) {
      expect(envOf(name), name).not.toHaveProperty('VERITRAIL_PIPELINES_DIR');
    }
  });

  it('gives every function the per-pipeline SageMaker role map, and no single role to fall back on', () => {
    for (const name of FUNCTION_NAMES) {
      const roles = flat(envOf(name).VERITRAIL_SAGEMAKER_ROLE_ARNS);
      // Cross-stack: each value imports the role ARN exported by the Identity stack.
      expect(roles, name).toMatch(
        /"credit-scoring":"[^"]*Identity:[^"]*GetAttSageMakercreditscoring[0-9A-F]*Arn/,
      );
      expect(roles, name).toMatch(/"fraud":"[^"]*Identity:[^"]*GetAttSageMakerfraud[0-9A-F]*Arn/);
      // churn trains locally only: no role, so a SageMaker job for it is refused by the trainer.
      expect(roles, name).not.toContain('churn');
      expect(envOf(name), name).not.toHaveProperty('VERITRAIL_SAGEMAKER_ROLE_ARN');
    }
  });
});

describe('the training callback', () => {
  it('may finish the Train step: read training/ output, append to the audit log, resolve the task token', () => {
    const statements = grantsOf('training-callback');
    const bySid = (sid: string) => statements.find((s) => s.Sid === sid) ?? {};
    expect(actionsOf(bySid('ReadArtifacts')).sort()).toEqual(['s3:GetObject', 's3:GetObjectVersion']);
    expect(resourcesOf(bySid('ReadArtifacts')).map(flat)).toEqual([
      expect.stringMatching(/artifactsBucket.*\/training\/\*$/),
    ]);
    expect(actionsOf(bySid('AppendAuditLog'))).toContain('s3:PutObjectRetention');
    expect(actionsOf(bySid('TaskTokenCallback')).sort()).toEqual([
      'states:SendTaskFailure',
      'states:SendTaskHeartbeat',
      'states:SendTaskSuccess',
    ]);
    const actions = allowedActions('training-callback');
    for (const never of [
      's3:PutObject',
      'kms:Sign',
      'sagemaker:DescribeTrainingJob',
      'states:StartExecution',
    ]) {
      expect(actions.has(never) && !actionsOf(bySid('AppendAuditLog')).includes(never), never).toBe(false);
    }
    // s3:PutObject only on the audit bucket, never on artifacts.
    expect(bySid('WriteArtifacts')).toEqual({});
  });
});

describe('SageMaker execution roles', () => {
  const roleStatements = (pipeline: string) => {
    const role = identity().sagemakerRoles.get(pipeline);
    if (!role) return undefined;
    const id = logicalId(role);
    return resourcesOfType('Pipeline', 'AWS::IAM::Policy')
      .filter(([, r]) => flat(r.Properties?.Roles).includes(id))
      .flatMap(([, r]) => statementsOf(r.Properties?.PolicyDocument));
  };

  it('exists only for pipelines that train on SageMaker, trusting SageMaker of this account', () => {
    expect([...identity().sagemakerRoles.keys()].sort()).toEqual(['credit-scoring', 'fraud']);
    const role = template('Identity').Resources[logicalId(identity().sagemakerRoles.get('fraud') as never)];
    expect(JSON.stringify(role?.Properties?.AssumeRolePolicyDocument)).toContain('sagemaker.amazonaws.com');
    expect(JSON.stringify(role?.Properties?.AssumeRolePolicyDocument)).toContain('aws:SourceAccount');
  });

  it('writes only under its own training/<pipeline>/ prefix and reads content-addressed inputs', () => {
    for (const pipeline of ['credit-scoring', 'fraud']) {
      const s = roleStatements(pipeline) ?? [];
      const write = s.find((x) => x.Sid === 'WriteTrainingOutput');
      expect(flat(write?.Resource)).toMatch(new RegExp(`/training/${pipeline}/\\*$`));
      expect(flat(s.find((x) => x.Sid === 'ReadTrainingInputs')?.Resource)).toMatch(/\/sha256\/\*$/);
      expect(s.some((x) => actionsOf(x).includes('kms:CreateGrant'))).toBe(true);
    }
  });

  it('gets VPC network-interface rights only when the definition asks for a VPC, scoped to its subnets and groups', () => {
    expect(
      (roleStatements('credit-scoring') ?? []).some((x) => actionsOf(x).some((a) => a.startsWith('ec2:'))),
    ).toBe(false);
    const vpc = (roleStatements('fraud') ?? []).find((x) => x.Sid === 'VpcInterfaces');
    const resources = resourcesOf(vpc ?? {}).map(flat);
    expect(resources.some((r) => r.endsWith(':subnet/subnet-0a1b2c3d'))).toBe(true);
    expect(resources.some((r) => r.endsWith(':security-group/sg-0a1b2c3d'))).toBe(true);
  });

  it('pulls only the pinned image’s ECR repository', () => {
    const pull = (roleStatements('fraud') ?? []).find((x) => x.Sid === 'PullPinnedImage');
    expect(flat(pull?.Resource)).toMatch(/:ecr:eu-west-1:210987654321:repository\/fraud-xgb$/);
  });
});

describe('the state machine', () => {
  const machine = () => {
    const [[, r] = ['', { Type: '', Properties: {} }]] = resourcesOfType(
      'Pipeline',
      'AWS::StepFunctions::StateMachine',
    );
    return r.Properties ?? {};
  };

  it('deploys the ASL file as is with one substitution per task function and per bucket it names', () => {
    const p = machine();
    expect(p.DefinitionString).toBe(readFileSync(path.join(ROOT, STATE_MACHINE_FILE), 'utf8'));
    const subs = p.DefinitionSubstitutions as Record<string, Json>;
    expect(Object.keys(subs).sort()).toEqual(
      [...Object.values(STATE_MACHINE_TASKS), ...Object.keys(STATE_MACHINE_BUCKETS)].sort(),
    );
    expect(flat(subs.ArtifactsBucket)).toMatch(/artifactsBucket/);
    for (const [fn, variable] of Object.entries(STATE_MACHINE_TASKS)) {
      const arn = flat(subs[variable]);
      const lambdaId = resourcesOfType('Pipeline', 'AWS::Lambda::Function').find(([, r]) =>
        flat(r.Properties?.Role).includes(`GetAtt${functionRoleId(fn as FunctionName)}Arn`),
      )?.[0];
      expect(arn).toBe(`GetAtt:${lambdaId}.Arn`);
    }
  });

  it('lets its role run the HashBatches Distributed Map: read the listings, start and stop its own children', () => {
    const policy = resourcesOfType('Pipeline', 'AWS::IAM::Policy').find(([id]) =>
      id.startsWith('Grantsstatemachine'),
    )?.[1];
    const statements = statementsOf(policy?.Properties?.PolicyDocument);
    const bySid = (sid: string) => statements.find((s) => s.Sid === sid) ?? {};
    // Every task function (and its versions), the Map's HashBatch included: the substitutions' ARNs.
    const subs = machine().DefinitionSubstitutions as Record<string, Json>;
    const invoked = resourcesOf(bySid('InvokeStepFunctions')).map(flat).sort();
    const arns = Object.values(STATE_MACHINE_TASKS).map((v) => flat(subs[v]));
    expect(invoked).toEqual([...arns, ...arns.map((a) => `${a}:*`)].sort());
    expect(actionsOf(bySid('ReadDatasetListings'))).toEqual(['s3:GetObject']);
    expect(resourcesOf(bySid('ReadDatasetListings')).map(flat)).toEqual([
      expect.stringMatching(/artifactsBucket.*\/listings\/\*$/),
    ]);
    expect(actionsOf(bySid('DecryptDatasetListings'))).toEqual(['kms:Decrypt']);
    expect(JSON.stringify(bySid('DecryptDatasetListings').Condition)).toMatch(/"kms:ViaService":\{?.*"s3\./);
    expect(actionsOf(bySid('StartHashBatches'))).toEqual(['states:StartExecution']);
    expect(flat(bySid('StartHashBatches').Resource)).toMatch(
      /:stateMachine:test-veritrail-training-pipeline$/,
    );
    expect(actionsOf(bySid('ManageHashBatches')).sort()).toEqual([
      'states:DescribeExecution',
      'states:StopExecution',
    ]);
    expect(flat(bySid('ManageHashBatches').Resource)).toMatch(
      /:execution:test-veritrail-training-pipeline\/HashBatches:\*$/,
    );
    // The label the grant names is the Map's.
    const asl = JSON.parse(readFileSync(path.join(ROOT, STATE_MACHINE_FILE), 'utf8')) as {
      States: Record<string, { Label?: string }>;
    };
    expect(asl.States.HashBatches?.Label).toBe(HASH_BATCHES_LABEL);
    // Its ResultWriter: write map-results/ only, with a data key S3 asks for on its behalf.
    expect(actionsOf(bySid('WriteMapResults'))).toEqual(['s3:PutObject']);
    expect(resourcesOf(bySid('WriteMapResults')).map(flat)).toEqual([
      expect.stringMatching(/artifactsBucket.*\/map-results\/\*$/),
    ]);
    expect(actionsOf(bySid('EncryptMapResults'))).toEqual(['kms:GenerateDataKey']);
    expect(flat(bySid('EncryptMapResults').Resource)).toBe(flat(bySid('DecryptDatasetListings').Resource));
    expect(JSON.stringify(bySid('EncryptMapResults').Condition)).toMatch(/"kms:ViaService":\{?.*"s3\./);
    // The ResultWriter's Bucket and Prefix are the ones granted: the artifacts bucket, map-results/.
    const hashBatches = asl.States.HashBatches as {
      ItemReader?: { Parameters?: Record<string, string> };
      ResultWriter?: { Parameters?: Record<string, string> };
    };
    const writer = hashBatches.ResultWriter?.Parameters;
    // The bucket the ItemReader reads: the ArtifactsBucket substitution.
    expect(writer?.Bucket).toBe(hashBatches.ItemReader?.Parameters?.Bucket);
    expect(writer?.Bucket).toContain('{ArtifactsBucket}');
    expect(writer?.['Prefix.$']).toMatch(
      new RegExp(`^States\\.Format\\('${MAP_RESULTS_PREFIX}\\{\\}', \\$\\.runId\\)$`),
    );
    // Nothing else of the buckets: no other write, no other prefix, and KMS only through S3.
    const s3 = statements.filter((st) => actionsOf(st).some((a) => a.startsWith('s3:')));
    expect(s3).toHaveLength(2);
    const kms = statements.filter((st) => actionsOf(st).some((a) => a.startsWith('kms:')));
    expect(kms.flatMap((st) => actionsOf(st)).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
    for (const st of kms) expect(JSON.stringify(st.Condition)).toMatch(/kms:ViaService/);
  });

  it('waits for training through a task token', () => {
    const asl = JSON.parse(readFileSync(path.join(ROOT, STATE_MACHINE_FILE), 'utf8')) as Json;
    expect(JSON.stringify(asl)).toMatch(
      /lambda:invoke\.waitForTaskToken[^}]*\$\{TrainFunctionArn\}|\$\{TrainFunctionArn\}[^}]*waitForTaskToken/,
    );
  });

  it('logs ALL with execution data to an encrypted log group, and traces', () => {
    const p = machine();
    const logging = p.LoggingConfiguration as Record<string, Json>;
    expect(logging.Level).toBe('ALL');
    expect(logging.IncludeExecutionData).toBe(true);
    const groupId = flat(logging.Destinations)
      .replace(/^GetAtt:/, '')
      .replace(/\.Arn$/, '');
    const group = template('Pipeline').Resources[groupId]?.Properties ?? {};
    expect(flat(group.KmsKeyId)).toContain('DataKey');
    expect(group.RetentionInDays).toBe(365);
    expect(p.TracingConfiguration).toEqual({ Enabled: true });
  });

  it('refuses an ASL file that uses a substitution the stack does not provide', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'asl-')), 'bad.asl.json');
    writeFileSync(
      file,
      JSON.stringify({
        StartAt: 'A',
        States: { A: { Type: 'Task', Resource: `$${'{'}NopeArn}`, End: true } },
      }),
    );
    expect(() => readStateMachineDefinition(file)).toThrow(
      expect.objectContaining({ code: 'SETTING_INVALID' }),
    );
  });
});

describe('Triggers', () => {
  const rules = () =>
    resourcesOfType('Triggers', 'AWS::Events::Rule').map(([id, r]) => ({ id, p: r.Properties ?? {} }));
  const landingRef = () => {
    const storage = stacksModule.use(stackFns.Storage);
    return { ref: logicalId(storage.landing) };
  };

  it('starts each pipeline on Object Created under its landing prefix, with the shared pattern', () => {
    const landing = rules().filter((r) => r.id.startsWith('Landing'));
    expect(landing).toHaveLength(3);
    for (const { definition, landingPrefix } of loadPipelines(FIXTURES)) {
      const rule = landing.find((r) => r.id.startsWith(`Landing${definition.name.replaceAll('-', '')}`));
      const expected = s3ObjectCreatedPattern('placeholder-bucket', landingPrefix) as unknown as Record<
        string,
        Json
      >;
      const actual = structuredClone(rule?.p.EventPattern) as { detail: { bucket: { name: Json[] } } };
      expect(flat(actual.detail.bucket.name)).toContain(landingRef().ref);
      actual.detail.bucket.name = ['placeholder-bucket'];
      expect(actual).toEqual(expected);
    }
  });

  it('schedules exactly the pipelines that define one, with the shared expression and input transformer', () => {
    const scheduled = rules().filter(
      (r) => r.p.ScheduleExpression !== undefined && !r.id.startsWith('Reconcile'),
    );
    const defs = loadPipelines(FIXTURES).filter((p) => p.definition.schedule);
    expect(scheduled).toHaveLength(defs.length);
    for (const { definition } of defs) {
      const cron = definition.schedule?.cron ?? '';
      const transformer = scheduleInputTransformer(definition.name, definition.schedule?.force ?? false);
      const rule = scheduled.find(
        (r) =>
          (r.p.Targets as Record<string, Json>[])[0]?.InputTransformer !== undefined &&
          JSON.stringify(r.p.Targets).includes(JSON.stringify(JSON.stringify(definition.name)).slice(1, -1)),
      );
      expect(rule?.p.ScheduleExpression).toBe(scheduleExpression(cron));
      expect(listOf(rule?.p.Targets)[0]?.InputTransformer).toEqual({
        InputPathsMap: transformer.inputPathsMap,
        InputTemplate: transformer.inputTemplate,
      });
    }
  });

  it('routes SageMaker Training Job State Change to the callback function', () => {
    const rule = rules().find((r) => r.id.startsWith('TrainingStateChange'));
    expect(rule?.p.EventPattern).toEqual(sagemakerTrainingStateChangePattern());
    const target = listOf(rule?.p.Targets)[0];
    expect(flat(target?.Arn)).toContain('trainingcallback');
  });

  it('gives every target a dead-letter queue and a retry policy', () => {
    for (const { id, p } of rules()) {
      for (const target of p.Targets as Record<string, Json>[]) {
        expect(flat(target.DeadLetterConfig), id).toMatch(/DeadLetters/);
        expect(target.RetryPolicy, id).toEqual({
          MaximumRetryAttempts: TARGET_RETRY_ATTEMPTS,
          MaximumEventAgeInSeconds: TARGET_MAX_EVENT_AGE.toSeconds(),
        });
      }
    }
  });

  it('runs the reconciler every 5 minutes', () => {
    const rule = rules().find((r) => r.id.startsWith('Reconcile'));
    expect(rule?.p.ScheduleExpression).toBe('rate(5 minutes)');
    expect(flat(listOf(rule?.p.Targets)[0]?.Arn)).toContain('reconcile');
  });

  it('sends an asynchronous invocation that keeps failing to the function’s queue, and lets it send there', () => {
    const configs = resourcesOfType('Triggers', 'AWS::Lambda::EventInvokeConfig').map(
      ([, r]) => r.Properties ?? {},
    );
    const expected = {
      start: 'StartDeadLetters',
      trainingcallback: 'TrainingCallbackDeadLetters',
      reconcile: 'ReconcileDeadLetters',
    };
    expect(configs).toHaveLength(Object.keys(expected).length);
    for (const [fn, queue] of Object.entries(expected)) {
      const config = configs.find((c) => flat(c.FunctionName).toLowerCase().includes(fn));
      expect(config, fn).toBeDefined();
      expect(config?.MaximumRetryAttempts, fn).toBe(ASYNC_RETRY_ATTEMPTS);
      expect(config?.MaximumEventAgeInSeconds, fn).toBe(ASYNC_MAX_EVENT_AGE.toSeconds());
      expect(
        flat(
          (config?.DestinationConfig as { OnFailure?: { Destination: Json } } | undefined)?.OnFailure
            ?.Destination,
        ),
        fn,
      ).toContain(queue);
    }
    const sends = resourcesOfType('Triggers', 'AWS::IAM::Policy').flatMap(([, r]) =>
      statementsOf(r.Properties?.PolicyDocument),
    );
    expect(sends).toHaveLength(3);
    for (const s of sends) expect(actionsOf(s)).toEqual(['sqs:SendMessage']);
  });

  it('encrypts the dead-letter queues and refuses non-TLS access to them', () => {
    const queues = resourcesOfType('Triggers', 'AWS::SQS::Queue');
    expect(queues).toHaveLength(3);
    for (const [, q] of queues) expect(q.Properties?.SqsManagedSseEnabled).toBe(true);
    for (const [, policy] of resourcesOfType('Triggers', 'AWS::SQS::QueuePolicy')) {
      const statements = statementsOf(policy.Properties?.PolicyDocument);
      expect(
        statements.some(
          (s) => s.Effect === 'Deny' && JSON.stringify(s.Condition).includes('aws:SecureTransport'),
        ),
      ).toBe(true);
    }
  });
});

describe('discovery by the CLI', () => {
  it('publishes outputs and SSM parameters under /veritrail/<stage>/', () => {
    const params = Object.values(templates)
      .flatMap((t) => Object.values(t.Resources))
      .filter((r) => r.Type === 'AWS::SSM::Parameter')
      .map((r) => r.Properties?.Name)
      .filter((n): n is string => typeof n === 'string' && n.startsWith('/veritrail/'));
    expect(params.sort()).toEqual(
      [
        'artifacts-bucket',
        'attestation-key-arn',
        'audit-bucket',
        'checkpoint-key-arn',
        'data-key-arn',
        'landing-bucket',
        'start-function-name',
        'state-machine-arn',
        'table-name',
        'unit',
        'witness-key-arn',
        'witness-url',
        'witness-vkey',
      ].map((n) => `/veritrail/${STAGE}/${n}`),
    );
    const outputs = (template('Pipeline') as unknown as { Outputs: Record<string, Json> }).Outputs;
    expect(outputs).toHaveProperty('StateMachineArn');
  });
});

describe('settings', () => {
  it('reads the audit retention, refusing nonsense', () => {
    expect(auditRetentionDays(undefined)).toBe(DEFAULT_AUDIT_RETENTION_DAYS);
    expect(auditRetentionDays('30')).toBe(30);
    for (const bad of ['0', '-1', '1.5', 'ten', '40000']) {
      expect(() => auditRetentionDays(bad)).toThrow(expect.objectContaining({ code: 'SETTING_INVALID' }));
    }
  });

  it('reads the audit replica settings: both or neither, ARNs, another region', () => {
    const key = 'arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    expect(auditReplica(undefined, undefined)).toBeUndefined();
    expect(auditReplica('arn:aws:s3:::replica-bucket', key, 'eu-west-1')).toEqual({
      bucketArn: 'arn:aws:s3:::replica-bucket',
      keyArn: key,
      region: 'eu-central-1',
    });
    for (const [bucket, k, region] of [
      ['arn:aws:s3:::replica-bucket', undefined, 'eu-west-1'],
      ['replica-bucket', key, 'eu-west-1'],
      ['arn:aws:s3:::replica-bucket', 'alias/x', 'eu-west-1'],
      ['arn:aws:s3:::replica-bucket', key, 'eu-central-1'],
    ] as const) {
      expect(() => auditReplica(bucket, k, region)).toThrow(
        expect.objectContaining({ code: 'SETTING_INVALID' }),
      );
    }
  });

  it('reads the VPC mode, refusing anything but off and isolated', () => {
    expect(vpcMode(undefined)).toBe('off');
    expect(vpcMode('isolated')).toBe('isolated');
    expect(() => vpcMode('on')).toThrow(expect.objectContaining({ code: 'SETTING_INVALID' }));
  });

  it('deploys the examples by default', () => {
    const names = loadPipelines(path.join(ROOT, 'examples')).map((p) => p.definition.name);
    expect(names).toContain('credit-scoring');
  });

  it('refuses a folder without definitions and overlapping landing prefixes', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const empty = mkdtempSync(path.join(tmpdir(), 'pipelines-'));
    expect(() => loadPipelines(empty)).toThrow(expect.objectContaining({ code: 'PIPELINES_NOT_FOUND' }));
    const base = JSON.parse(readFileSync(path.join(FIXTURES, 'churn.json'), 'utf8')) as Record<string, Json>;
    writeFileSync(
      path.join(empty, 'a.json'),
      JSON.stringify({ ...base, name: 'aaa', landing: { prefix: 'data/' } }),
    );
    writeFileSync(
      path.join(empty, 'b.json'),
      JSON.stringify({ ...base, name: 'bbb', landing: { prefix: 'data/b/' } }),
    );
    expect(() => loadPipelines(empty)).toThrow(expect.objectContaining({ code: 'PIPELINE_DUPLICATE' }));
  });
});

describe('docs/deploy.md', () => {
  it('lists every function of the permission table', () => {
    const doc = readFileSync(path.join(ROOT, 'docs/deploy.md'), 'utf8');
    for (const name of FUNCTION_NAMES) expect(doc).toMatch(new RegExp(`^\\|\\s*\`${name}\`\\s*\\|`, 'm'));
    expect(doc).toContain('out/cloudformation');
  });
});

// Keep the app alive for getStack/use across tests.
it('keeps the synthesized app', () => expect(app).toBeDefined());

describe('stacks/access.ts', () => {
  it('names the artifact prefixes the code writes under', async () => {
    const { SKIP_RECORD_PREFIX } = await import('../../src/core/layout.js');
    const access = await import('../../stacks/access.js');
    expect(access.SKIP_RECORD_PREFIX).toBe(SKIP_RECORD_PREFIX);
    const { TRAINING_JOB_TAG_KEYS } = await import('../../stacks/grants.js');
    const { RUN_ID_TAG, PIPELINE_TAG } = await import('../../src/aws/sagemaker-trainer.js');
    expect([...TRAINING_JOB_TAG_KEYS].sort()).toEqual([RUN_ID_TAG, PIPELINE_TAG].sort());
  });
});
