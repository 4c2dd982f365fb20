/**
 * worldFromTemplates on the real synthesized app (stacks/synthesize.ts, offline), with a small
 * intrinsic resolver of this test's own standing in for the harness's provisioning; and on small
 * hand-written resources for the attachment rules.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { evaluate } from './evaluate.js';
import { ACCOUNT, allow, doc, REGION } from './test-helpers.js';
import type { PolicyWorld, ResolvedResource } from './types.js';
import { WorldError, worldFromTemplates } from './world.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
interface Template {
  Resources: Record<string, { Type: string; Properties?: Record<string, Json> }>;
  Outputs?: Record<string, { Value: Json; Export?: { Name: string } }>;
  /** Template parameters: the SSM-parameter-typed ones CDK adds (the Powertools layer, stacks/bundling.ts). */
  Parameters?: Record<string, { Type: string; Default?: string }>;
}

/**
 * Resolves Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select, Fn::Split and Fn::ImportValue with
 * invented physical ids (what provisioning would return), the way CloudFormation would.
 */
function resolveApp(templates: Record<string, Template>): ResolvedResource[] {
  const NAME_PROPS = [
    'RoleName',
    'BucketName',
    'TableName',
    'AliasName',
    'FunctionName',
    'StateMachineName',
    'QueueName',
    'ManagedPolicyName',
    'Name',
  ];
  const physical = new Map<string, string>();
  const typeOf = (stack: string, id: string) => templates[stack]?.Resources[id]?.Type ?? '';
  const physicalId = (stack: string, id: string): string => {
    const key = `${stack}/${id}`;
    const known = physical.get(key);
    if (known) return known;
    const type = typeOf(stack, id);
    const props = templates[stack]?.Resources[id]?.Properties ?? {};
    const named = NAME_PROPS.map((p) => props[p]).find((v) => typeof v === 'string') as string | undefined;
    const h = createHash('sha256').update(key).digest('hex');
    let value: string;
    if (named) value = named;
    else if (type === 'AWS::KMS::Key')
      value = `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
    else if (type === 'AWS::S3::Bucket') value = `${stack}-${id}`.toLowerCase().slice(0, 50) + h.slice(0, 8);
    else value = `${stack.split('-').pop()}-${id}`.slice(0, 64);
    physical.set(key, value);
    return value;
  };
  const arnOf = (stack: string, id: string): string => {
    const n = physicalId(stack, id);
    const t = typeOf(stack, id);
    const arns: Record<string, string> = {
      'AWS::IAM::Role': `arn:aws:iam::${ACCOUNT}:role/${n}`,
      'AWS::IAM::ManagedPolicy': `arn:aws:iam::${ACCOUNT}:policy/${n}`,
      'AWS::S3::Bucket': `arn:aws:s3:::${n}`,
      'AWS::KMS::Key': `arn:aws:kms:${REGION}:${ACCOUNT}:key/${n}`,
      'AWS::DynamoDB::Table': `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${n}`,
      'AWS::Lambda::Function': `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${n}`,
      'AWS::StepFunctions::StateMachine': `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:${n}`,
      'AWS::SQS::Queue': `arn:aws:sqs:${REGION}:${ACCOUNT}:${n}`,
      'AWS::Events::Rule': `arn:aws:events:${REGION}:${ACCOUNT}:rule/${n}`,
      'AWS::Logs::LogGroup': `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:${n}:*`,
    };
    return arns[t] ?? `arn:aws:unknown:${REGION}:${ACCOUNT}:${n}`;
  };
  const ref = (stack: string, id: string): string => {
    const pseudo: Record<string, string> = {
      'AWS::AccountId': ACCOUNT,
      'AWS::Region': REGION,
      'AWS::Partition': 'aws',
      'AWS::URLSuffix': 'amazonaws.com',
      'AWS::StackName': stack,
    };
    if (pseudo[id]) return pseudo[id];
    // A template parameter resolves to its default, as the harness's resolver has it (resolve.ts).
    const parameter = templates[stack]?.Parameters?.[id];
    if (parameter) return parameter.Default ?? id;
    const t = typeOf(stack, id);
    if (t === 'AWS::StepFunctions::StateMachine' || t === 'AWS::IAM::ManagedPolicy') return arnOf(stack, id);
    if (t === 'AWS::SQS::Queue')
      return `https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/${physicalId(stack, id)}`;
    if (!t) throw new Error(`Ref to ${id}, which is not in ${stack}`);
    return physicalId(stack, id);
  };
  const exports = new Map<string, { stack: string; value: Json }>();
  for (const [stack, t] of Object.entries(templates)) {
    for (const o of Object.values(t.Outputs ?? {}))
      if (o.Export) exports.set(o.Export.Name, { stack, value: o.Value });
  }
  const resolve = (stack: string, v: Json): Json => {
    if (Array.isArray(v)) return v.map((x) => resolve(stack, x));
    if (!v || typeof v !== 'object') return v;
    const [k, x] = Object.entries(v)[0] ?? [];
    if (Object.keys(v).length === 1 && k !== undefined && x !== undefined) {
      if (k === 'Ref') return ref(stack, x as string);
      if (k === 'Fn::GetAtt') {
        const [id, attr] = Array.isArray(x) ? (x as string[]) : String(x).split('.');
        if (attr === 'Arn') return arnOf(stack, id as string);
        return physicalId(stack, id as string);
      }
      if (k === 'Fn::Join') {
        const [sep, parts] = x as [string, Json[]];
        return (resolve(stack, parts) as Json[]).join(sep);
      }
      if (k === 'Fn::Sub') {
        const [text, vars] = Array.isArray(x) ? (x as [string, Record<string, Json>]) : [x as string, {}];
        return text.replace(/\$\{([^}]+)\}/g, (_, name: string) => {
          if (vars[name] !== undefined) return String(resolve(stack, vars[name] as Json));
          const [id, attr] = name.split('.');
          return attr
            ? String(resolve(stack, { 'Fn::GetAtt': [id as string, attr] }))
            : ref(stack, id as string);
        });
      }
      if (k === 'Fn::Select') {
        const [i, list] = x as [number, Json];
        return (resolve(stack, list) as Json[])[Number(i)] ?? null;
      }
      if (k === 'Fn::Split') {
        const [sep, s] = x as [string, Json];
        return String(resolve(stack, s)).split(sep);
      }
      if (k === 'Fn::ImportValue') {
        const e = exports.get(String(resolve(stack, x)));
        if (!e) throw new Error(`no export named ${String(x)}`);
        return resolve(e.stack, e.value);
      }
      if (k.startsWith('Fn::')) throw new Error(`the test resolver does not know ${k}`);
    }
    return Object.fromEntries(Object.entries(v).map(([kk, xx]) => [kk, resolve(stack, xx)]));
  };
  const out: ResolvedResource[] = [];
  for (const [stack, t] of Object.entries(templates)) {
    for (const [logicalId, r] of Object.entries(t.Resources)) {
      const resolved: ResolvedResource = {
        stack,
        logicalId,
        type: r.Type,
        properties: resolve(stack, r.Properties ?? {}) as Record<string, unknown>,
        physicalId: ref(stack, logicalId),
      };
      if (
        r.Type.startsWith('AWS::IAM::Role') ||
        r.Type === 'AWS::S3::Bucket' ||
        r.Type === 'AWS::KMS::Key' ||
        r.Type === 'AWS::DynamoDB::Table'
      )
        resolved.arn = arnOf(stack, logicalId);
      out.push(resolved);
    }
  }
  return out;
}

describe('on the synthesized app', () => {
  let resources: ResolvedResource[];
  let w: PolicyWorld;

  beforeAll(async () => {
    const ROOT = path.resolve(import.meta.dirname, '../../..');
    process.env.VERITRAIL_PIPELINES_DIR = path.join(ROOT, 'test/infra/fixtures/pipelines');
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE'])
      delete process.env[k];
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
    const { synthesizeApp } = await import('../../../stacks/synthesize.js');
    const app = await synthesizeApp({
      stage: 'iamtest',
      root: ROOT,
      account: ACCOUNT,
      region: REGION,
      outdir: path.join(ROOT, '.sst', 'synth-iam-test'),
    });
    const { Stack } = await import('aws-cdk-lib');
    const { Template: CdkTemplate } = await import('aws-cdk-lib/assertions');
    const templates: Record<string, Template> = {};
    for (const c of app.node.children)
      if (Stack.isStack(c)) templates[c.stackName] = CdkTemplate.fromStack(c).toJSON() as Template;
    resources = resolveApp(templates);
    const accessKeys: Record<string, string> = {};
    resources
      .filter((r) => r.type === 'AWS::IAM::Role')
      .forEach((r, i) => {
        accessKeys[`${r.stack}/${r.logicalId}`] = `AKIDROLE${i}`;
      });
    w = worldFromTemplates({ account: ACCOUNT, region: REGION, resources, accessKeys });
  }, 120_000);

  it('has one principal per role, each with the policies attached to it across stacks', () => {
    const roles = resources.filter((r) => r.type === 'AWS::IAM::Role');
    expect(w.principals).toHaveLength(roles.length);
    const attached = resources
      .filter((r) => r.type === 'AWS::IAM::Policy')
      .reduce((n, p) => n + (p.properties.Roles as unknown[]).length, 0);
    const inline = roles.reduce(
      (n, r) => n + ((r.properties.Policies as unknown[] | undefined)?.length ?? 0),
      0,
    );
    expect(w.principals.reduce((n, p) => n + p.identityPolicies.length, 0)).toBe(attached + inline);
    expect(w.principals.filter((p) => p.identityPolicies.length > 0).length).toBeGreaterThan(0);
  });

  it('maps every key id, key ARN and alias to a key with a key policy', () => {
    const keys = resources.filter((r) => r.type === 'AWS::KMS::Key');
    expect(Object.keys(w.keyPolicies)).toHaveLength(keys.length);
    for (const a of resources.filter((r) => r.type === 'AWS::KMS::Alias')) {
      const arn = w.keyIds[a.properties.AliasName as string];
      expect(arn && w.keyPolicies[arn]).toBeTruthy();
    }
  });

  it('knows each bucket policy and each SSE-KMS bucket default key', () => {
    expect(Object.keys(w.bucketPolicies).sort()).toEqual(
      resources
        .filter((r) => r.type === 'AWS::S3::BucketPolicy')
        .map((r) => r.properties.Bucket as string)
        .sort(),
    );
    for (const key of Object.values(w.bucketKmsKeys)) expect(w.keyPolicies[key]).toBeDefined();
    expect(Object.keys(w.bucketKmsKeys).length).toBeGreaterThan(0);
  });

  it('evaluates every principal against every statement it holds without a simulator error', async () => {
    // Each Allow statement's first action on "*": iam-simulate validates every identity policy of the
    // principal (syntax, action names, resolved ARNs) before it evaluates, and reports errors instead.
    let checked = 0;
    for (const p of w.principals) {
      for (const { policy } of p.identityPolicies) {
        for (const s of [policy.Statement].flat() as Record<string, unknown>[]) {
          const action = [s.Action].flat()[0] as string;
          if (s.Effect !== 'Allow' || action.includes('*')) continue;
          const d = await evaluate(w, p, { action, resource: '*', context: {}, implied: false });
          expect(d.reason ?? '', `${p.label} ${action}`).not.toMatch(/simulator refused/);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(10);
  });

  it('finds a state machine start grant for the role that holds one, on the resolved state machine ARN', async () => {
    const starter = w.principals.find((p) =>
      JSON.stringify(p.identityPolicies).includes('states:StartExecution'),
    );
    expect(starter).toBeDefined();
    const sm = resources.find((r) => r.type === 'AWS::StepFunctions::StateMachine');
    // Ref of a state machine is its ARN.
    const smArn = sm?.physicalId ?? '';
    expect(smArn).toMatch(/^arn:aws:states:/);
    const d = await evaluate(w, starter, {
      action: 'states:StartExecution',
      resource: smArn,
      context: {},
      implied: false,
    });
    expect(d).toEqual({ decision: 'Allowed' });
  });
});

describe('attachment rules', () => {
  const role = (logicalId: string): ResolvedResource => ({
    stack: 's',
    logicalId,
    type: 'AWS::IAM::Role',
    properties: {},
    physicalId: `name-${logicalId}`,
    arn: `arn:aws:iam::${ACCOUNT}:role/name-${logicalId}`,
  });

  it('attaches AWS::IAM::Policy and ManagedPolicy by role name, and inline policies', () => {
    const w = worldFromTemplates({
      account: ACCOUNT,
      region: REGION,
      resources: [
        {
          ...role('A'),
          properties: {
            Policies: [{ PolicyName: 'inline', PolicyDocument: doc(allow('s3:GetObject', '*')) }],
            ManagedPolicyArns: [`arn:aws:iam::${ACCOUNT}:policy/m`],
          },
        },
        role('B'),
        {
          stack: 's',
          logicalId: 'P',
          type: 'AWS::IAM::Policy',
          properties: {
            PolicyName: 'p',
            Roles: ['name-A', 'name-B'],
            PolicyDocument: doc(allow('kms:Sign', '*')),
          },
          physicalId: 'p',
        },
        {
          stack: 's',
          logicalId: 'M',
          type: 'AWS::IAM::ManagedPolicy',
          properties: { PolicyDocument: doc(allow('sqs:SendMessage', '*')) },
          physicalId: `arn:aws:iam::${ACCOUNT}:policy/m`,
          arn: `arn:aws:iam::${ACCOUNT}:policy/m`,
        },
      ],
      accessKeys: { 's/A': 'AKA', [`arn:aws:iam::${ACCOUNT}:role/name-B`]: 'AKB' },
      labels: { 's/A': 'fn:a' },
    });
    expect(w.principals.map((p) => [p.label, p.accessKeyId, p.identityPolicies.map((x) => x.name)])).toEqual([
      ['fn:a', 'AKA', ['inline', 'M', 'p']],
      [`arn:aws:iam::${ACCOUNT}:role/name-B`.replace(/^.*$/, 's/B'), 'AKB', ['p']],
    ]);
  });

  it('refuses a policy document that still holds an intrinsic', () => {
    expect(() =>
      worldFromTemplates({
        account: ACCOUNT,
        region: REGION,
        resources: [
          {
            ...role('A'),
            properties: {
              Policies: [
                {
                  PolicyName: 'x',
                  PolicyDocument: doc(allow('s3:GetObject', { 'Fn::GetAtt': ['B', 'Arn'] } as never)),
                },
              ],
            },
          },
        ],
        accessKeys: { 's/A': 'AKA' },
      }),
    ).toThrow(WorldError);
  });

  it('refuses access keys for roles that are not in the templates', () => {
    expect(() =>
      worldFromTemplates({
        account: ACCOUNT,
        region: REGION,
        resources: [role('A')],
        accessKeys: { 's/Nope': 'AK' },
      }),
    ).toThrow(/not in the templates: s\/Nope/);
  });

  it('reads the bucket default KMS key through an alias, the Bucket Key flag and a table key', () => {
    const key: ResolvedResource = {
      stack: 's',
      logicalId: 'K',
      type: 'AWS::KMS::Key',
      properties: { KeyPolicy: doc() },
      physicalId: 'kid',
      arn: `arn:aws:kms:${REGION}:${ACCOUNT}:key/kid`,
    };
    const w = worldFromTemplates({
      account: ACCOUNT,
      region: REGION,
      resources: [
        key,
        {
          stack: 's',
          logicalId: 'Al',
          type: 'AWS::KMS::Alias',
          properties: { AliasName: 'alias/data', TargetKeyId: 'kid' },
          physicalId: 'alias/data',
        },
        {
          stack: 's',
          logicalId: 'B',
          type: 'AWS::S3::Bucket',
          properties: {
            BucketEncryption: {
              ServerSideEncryptionConfiguration: [
                {
                  ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: 'alias/data' },
                  BucketKeyEnabled: true,
                },
              ],
            },
          },
          physicalId: 'bkt',
        },
        {
          stack: 's',
          logicalId: 'T',
          type: 'AWS::DynamoDB::Table',
          properties: { SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: key.arn } },
          physicalId: 'runs',
        },
      ],
      accessKeys: {},
    });
    expect(w.bucketKmsKeys).toEqual({ bkt: key.arn });
    expect(w.bucketKeyEnabled).toEqual({ bkt: true });
    expect(w.tableKmsKeys).toEqual({ runs: key.arn });
    expect(w.keyIds[`arn:aws:kms:${REGION}:${ACCOUNT}:alias/data`]).toBe(key.arn);
  });
});
