/**
 * The compliance rule packs security reviewers run (cdk-nag: AwsSolutions, HIPAA.Security,
 * NIST.800.53.R5, PCI.DSS.321) over the synthesized app, in the default deployment and in the
 * regulated one (second-region audit replica, VPC mode, the CI deploy role, Preprocess's processing jobs). Any unsuppressed finding fails; every
 * suppression sits on a resource with a reason, wildcard suppressions name the resource pattern they
 * cover, and the set of suppressed rules is the one docs/deploy.md explains.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { App, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Json, Template } from './helpers.js';
import { applyPacks, collectNag, type NagFinding, type NagSuppressed } from './nag.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const FIXTURES = path.join(ROOT, 'test/infra/fixtures/pipelines');

interface Run {
  findings: NagFinding[];
  suppressed: NagSuppressed[];
  templates: { name: string; template: Template & { Metadata?: Record<string, Json> } }[];
}

const REPLICA_BUCKET = 'arn:aws:s3:::veritrail-audit-replica';
const REPLICA_KEY = 'arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

async function nag(stage: string, env: Record<string, string>): Promise<Run> {
  const clean = { ...process.env };
  for (const k of [
    'AWS_ACCESS_KEY_ID',
    'AWS_SECRET_ACCESS_KEY',
    'AWS_SESSION_TOKEN',
    'AWS_PROFILE',
    'VERITRAIL_AUDIT_RETENTION_DAYS',
    'VERITRAIL_AUDIT_REPLICA_BUCKET_ARN',
    'VERITRAIL_AUDIT_REPLICA_KEY_ARN',
    'VERITRAIL_VPC_MODE',
    'VERITRAIL_CI_GITHUB_REPOSITORY',
    'VERITRAIL_CI_GITHUB_BRANCH',
    'VERITRAIL_CI_GITHUB_ENVIRONMENT',
    'VERITRAIL_CI_GITHUB_OIDC_PROVIDER_ARN',
    'VERITRAIL_WITNESS',
    'VERITRAIL_WITNESS_NAME',
    'VERITRAIL_EXTERNAL_WITNESSES',
    'VERITRAIL_PROCESSING_IMAGE',
    'VERITRAIL_PROCESSING_THRESHOLD_BYTES',
    'VERITRAIL_PROCESSING_INSTANCE_TYPE',
  ])
    delete clean[k];
  const out = path.join(mkdtempSync(path.join(tmpdir(), 'veritrail-nag-')), 'nag.json');
  await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', path.join(ROOT, 'test/infra/nag-findings.ts')],
    {
      cwd: ROOT,
      env: {
        ...clean,
        AWS_EC2_METADATA_DISABLED: 'true',
        VERITRAIL_PIPELINES_DIR: FIXTURES,
        NAG_STAGE: stage,
        NAG_OUT: out,
        ...env,
      },
      maxBuffer: 256 * 1024 * 1024,
    },
  );
  return JSON.parse(readFileSync(out, 'utf8')) as Run;
}

const runs: { standard?: Run; regulated?: Run } = {};

beforeAll(async () => {
  const [standard, regulated] = await Promise.all([
    // With the app's own audit log witness (stacks/Witness.ts); the regulated run's VPC mode has no
    // route out to a witness, so it has none.
    nag('nagstd', { VERITRAIL_WITNESS: 'stack' }),
    nag('nagreg', {
      VERITRAIL_AUDIT_REPLICA_BUCKET_ARN: REPLICA_BUCKET,
      VERITRAIL_AUDIT_REPLICA_KEY_ARN: REPLICA_KEY,
      VERITRAIL_VPC_MODE: 'isolated',
      // The GitHub Actions deploy role and its OIDC provider (stacks/Deploy.ts).
      VERITRAIL_CI_GITHUB_REPOSITORY: 'acme/veritrail-ops',
      // Preprocess's SageMaker Processing jobs: their role and the Preprocess function's grants.
      VERITRAIL_PROCESSING_IMAGE: `123456789012.dkr.ecr.us-east-1.amazonaws.com/veritrail-node@sha256:${'a'.repeat(64)}`,
    }),
  ]);
  runs.standard = standard;
  runs.regulated = regulated;
}, 240_000);

const run = (name: keyof typeof runs): Run => {
  const r = runs[name];
  if (!r) throw new Error(`no ${name} run`);
  return r;
};

const describeFinding = (f: NagFinding) => `${f.path}: ${f.message}`;

/** The rules suppressed somewhere, with why (docs/deploy.md "For your security review" explains each). */
const SUPPRESSED_RULES = {
  standard: [
    'AwsSolutions-IAM5',
    'AwsSolutions-L1',
    'AwsSolutions-S1',
    'AwsSolutions-SQS3',
    'HIPAA.Security-DynamoDBInBackupPlan',
    'HIPAA.Security-IAMNoInlinePolicy',
    'HIPAA.Security-LambdaDLQ',
    'HIPAA.Security-LambdaFunctionPublicAccessProhibited',
    'HIPAA.Security-LambdaInsideVPC',
    'HIPAA.Security-S3BucketLoggingEnabled',
    'HIPAA.Security-S3BucketReplicationEnabled',
    'NIST.800.53.R5-DynamoDBInBackupPlan',
    'NIST.800.53.R5-IAMNoInlinePolicy',
    'NIST.800.53.R5-LambdaDLQ',
    'NIST.800.53.R5-LambdaFunctionPublicAccessProhibited',
    'NIST.800.53.R5-LambdaInsideVPC',
    'NIST.800.53.R5-S3BucketLoggingEnabled',
    'NIST.800.53.R5-S3BucketReplicationEnabled',
    'PCI.DSS.321-IAMNoInlinePolicy',
    'PCI.DSS.321-LambdaFunctionPublicAccessProhibited',
    'PCI.DSS.321-LambdaInsideVPC',
    'PCI.DSS.321-S3BucketLoggingEnabled',
    'PCI.DSS.321-S3BucketReplicationEnabled',
  ],
};

describe.each(['standard', 'regulated'] as const)('the %s deployment under the four packs', (name) => {
  it('has no unsuppressed finding (error or warning)', () => {
    expect(run(name).findings.map(describeFinding)).toEqual([]);
  });

  it('suppresses on resources only, never for a whole stack', () => {
    for (const { name: stack, template } of run(name).templates) {
      expect(template.Metadata?.cdk_nag, stack).toBeUndefined();
    }
    for (const s of run(name).suppressed) expect(s.path.split('/').length, s.path).toBeGreaterThan(2);
  });

  it('gives every suppression a reason of substance, and every wildcard one the resource it covers', () => {
    for (const { name: stack, template } of run(name).templates) {
      for (const [id, resource] of Object.entries(template.Resources)) {
        const meta = (resource as { Metadata?: { cdk_nag?: { rules_to_suppress?: Json[] } } }).Metadata;
        for (const rule of meta?.cdk_nag?.rules_to_suppress ?? []) {
          const r = rule as { id: string; reason: string; applies_to?: Json[] };
          expect(r.reason.length, `${stack}/${id} ${r.id}`).toBeGreaterThan(60);
          if (r.id === 'AwsSolutions-IAM5') expect(r.applies_to?.length, `${stack}/${id}`).toBeGreaterThan(0);
        }
      }
    }
  });
});

describe('what the packs found and what was fixed rather than suppressed', () => {
  const rules = (name: keyof typeof runs) => [...new Set(run(name).suppressed.map((s) => s.rule))].sort();

  it('suppresses exactly the rules docs/deploy.md explains (backups, concurrency, trail rules are fixed)', () => {
    expect(rules('standard')).toEqual([...SUPPRESSED_RULES.standard].sort());
    const doc = readFileSync(path.join(ROOT, 'docs/deploy.md'), 'utf8');
    const section = doc.slice(doc.indexOf('## For your security review'));
    expect(section.length).toBeGreaterThan(100);
    for (const rule of [...rules('standard'), ...rules('regulated')]) {
      expect(section, rule).toContain(
        rule.replace(/^(AwsSolutions|HIPAA\.Security|NIST\.800\.53\.R5|PCI\.DSS\.321)-/, ''),
      );
    }
  });

  it('covers the CI deploy role in the regulated deployment, and only there', () => {
    const deploy = (name: keyof typeof runs) => run(name).templates.filter((t) => t.name.endsWith('-Deploy'));
    expect(deploy('standard')).toEqual([]);
    const [template] = deploy('regulated').map((t) => t.template);
    const types = Object.values(template?.Resources ?? {}).map((r) => r.Type);
    expect(types).toContain('AWS::IAM::OIDCProvider');
    expect(types).toContain('AWS::IAM::Role');
  });

  it('in the regulated deployment, audit replication and VPC placement pass instead of being suppressed', () => {
    const auditReplication = (s: NagSuppressed) =>
      s.rule.endsWith('S3BucketReplicationEnabled') && s.path.includes('/audit/');
    expect(run('standard').suppressed.filter(auditReplication)).toHaveLength(3);
    expect(run('regulated').suppressed.filter(auditReplication)).toEqual([]);
    expect(rules('regulated').filter((r) => r.endsWith('LambdaInsideVPC'))).toEqual([]);
  });

  it('replicates the audit bucket to the second-region bucket with its key, delete markers not replicated', () => {
    const storage = run('regulated').templates.find((t) => t.name.endsWith('-Storage'))?.template;
    const audit = Object.entries(storage?.Resources ?? {}).find(([id]) => id.startsWith('auditBucket'))?.[1];
    const replication = audit?.Properties?.ReplicationConfiguration as {
      Rules: { Destination: Record<string, Json>; DeleteMarkerReplication: Json; Status: string }[];
    };
    expect(replication.Rules).toHaveLength(1);
    expect(replication.Rules[0]?.Status).toBe('Enabled');
    expect(replication.Rules[0]?.Destination.Bucket).toBe(REPLICA_BUCKET);
    expect(replication.Rules[0]?.Destination.EncryptionConfiguration).toEqual({
      ReplicaKmsKeyID: REPLICA_KEY,
    });
    expect(replication.Rules[0]?.DeleteMarkerReplication).toEqual({ Status: 'Disabled' });
  });

  it('in VPC mode puts every function in isolated subnets, with gateway and interface endpoints and no route out', () => {
    const pipeline = run('regulated').templates.find((t) => t.name.endsWith('-Pipeline'))?.template;
    const all = Object.values(pipeline?.Resources ?? {});
    const fns = all.filter((r) => r.Type === 'AWS::Lambda::Function');
    expect(fns.length).toBeGreaterThan(0);
    for (const fn of fns)
      expect((fn.Properties?.VpcConfig as { SubnetIds?: Json[] } | undefined)?.SubnetIds).toHaveLength(2);
    const endpoints = all
      .filter((r) => r.Type === 'AWS::EC2::VPCEndpoint')
      .map((r) => JSON.stringify(r.Properties?.ServiceName));
    for (const service of [
      's3',
      'dynamodb',
      'kms',
      'states',
      'events',
      'sagemaker.api',
      'ssm',
      'logs',
      'xray',
    ])
      expect(
        endpoints.some((e) => e.includes(`.${service}"`) || e.includes(`.${service}`)),
        service,
      ).toBe(true);
    expect(
      all.filter((r) => r.Type === 'AWS::EC2::InternetGateway' || r.Type === 'AWS::EC2::NatGateway'),
    ).toEqual([]);
    expect(all.filter((r) => r.Type === 'AWS::EC2::FlowLog')).toHaveLength(1);
  });
});

describe('the pack harness', () => {
  it('can fail: a bucket without logging and a wildcard policy are reported', () => {
    const app = new App();
    const stack = new Stack(app, 'Control');
    const bucket = new s3.Bucket(stack, 'Plain');
    new iam.Policy(stack, 'Broad', {
      statements: [
        new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [bucket.arnForObjects('*')] }),
      ],
    });
    applyPacks(app);
    const { findings } = collectNag(app.synth());
    const messages = findings.map((f) => f.message);
    expect(messages.some((m) => m.startsWith('AwsSolutions-S1:'))).toBe(true);
    expect(messages.some((m) => m.startsWith('AwsSolutions-IAM5['))).toBe(true);
    expect(messages.some((m) => m.startsWith('HIPAA.Security-S3BucketLoggingEnabled:'))).toBe(true);
  });
});
