/**
 * Deploying from CI with short-lived credentials (issue 17 §5; stacks/Deploy.ts,
 * examples/ci/github-actions-deploy.yml): the app synthesized offline with the CI setting (a pinned
 * branch; an environment with an existing provider), without it, and with a provider of another
 * account. The trust policy is evaluated by IAM's rules (@cloud-copilot/iam-simulate) against the
 * tokens GitHub issues to other repositories, branches, forks and pull requests.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { allowedContextKeysForRequest, runSimulation } from '@cloud-copilot/iam-simulate';
import { beforeAll, describe, expect, it } from 'vitest';
// Installed with aws-local-stepfunctions (asl-validator); only this test reads YAML.
import { parse as parseYaml } from 'yaml';
import { POWERTOOLS_LAYER_PARAMETER } from '../../stacks/bundling.js';
import { DEFAULT_CI_BRANCH, githubDeploy, StackSettingsError } from '../../stacks/settings.js';
import { actionsOf, flat, type Json, resourcesOf, statementsOf } from './helpers.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const FIXTURES = path.join(ROOT, 'test/infra/fixtures/pipelines');
const WORKFLOW = path.join(ROOT, 'examples/ci/github-actions-deploy.yml');
const ACCOUNT = '123456789012';
const REGION = 'eu-west-1';
const ISSUER = 'token.actions.githubusercontent.com';
const PROVIDER_ARN = `arn:aws:iam::${ACCOUNT}:oidc-provider/${ISSUER}`;

const REPOSITORY = 'acme/veritrail-ops';
const BRANCH = 'release/prod';
const ENVIRONMENT = 'production';

type Resource = { Type: string; Properties?: Record<string, Json> };
type Templates = Record<string, { Resources: Record<string, Resource>; Outputs?: Record<string, Json> }>;

const CLEARED = [
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
];

/** `npm run synth` in a process of its own (SST keeps one app per process), templates by stack name. */
async function synth(stage: string, settings: Record<string, string>): Promise<Templates> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of CLEARED) delete env[k];
  const out = mkdtempSync(path.join(tmpdir(), `veritrail-${stage}-`));
  await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', 'scripts/synth.ts', '--stage', stage, '--out', out, '--account', ACCOUNT],
    {
      cwd: ROOT,
      env: { ...env, AWS_EC2_METADATA_DISABLED: 'true', VERITRAIL_PIPELINES_DIR: FIXTURES, ...settings },
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  const templates: Templates = {};
  for (const file of readdirSync(out).filter((f) => f.endsWith('.template.json'))) {
    templates[file.replace(/\.template\.json$/, '')] = JSON.parse(readFileSync(path.join(out, file), 'utf8'));
  }
  return templates;
}

const synthesized: { branch?: Templates; environment?: Templates; off?: Templates; foreign?: string } = {};

// Four offline syntheses at once: ~1 min alone, several on a shared 2-core machine.
beforeAll(async () => {
  const [branch, environment, off, foreign] = await Promise.all([
    synth('cibranch', { VERITRAIL_CI_GITHUB_REPOSITORY: REPOSITORY, VERITRAIL_CI_GITHUB_BRANCH: BRANCH }),
    synth('cienv', {
      VERITRAIL_CI_GITHUB_REPOSITORY: REPOSITORY,
      VERITRAIL_CI_GITHUB_ENVIRONMENT: ENVIRONMENT,
      VERITRAIL_CI_GITHUB_OIDC_PROVIDER_ARN: PROVIDER_ARN,
    }),
    synth('cioff', {}),
    synth('ciforeign', {
      VERITRAIL_CI_GITHUB_REPOSITORY: REPOSITORY,
      VERITRAIL_CI_GITHUB_OIDC_PROVIDER_ARN: `arn:aws:iam::999999999999:oidc-provider/${ISSUER}`,
    }).then(
      () => 'synthesized',
      (e: { stderr?: string }) => e.stderr ?? '',
    ),
  ]);
  Object.assign(synthesized, { branch, environment, off, foreign });
}, 600_000);

function templates(name: 'branch' | 'environment' | 'off'): Templates {
  const t = synthesized[name];
  if (!t) throw new Error(`no ${name} synthesis`);
  return t;
}

function deployTemplate(name: 'branch' | 'environment') {
  const entry = Object.entries(templates(name)).find(([stack]) => stack.endsWith('-veritrail-Deploy'));
  if (!entry) throw new Error(`no Deploy stack in the ${name} synthesis`);
  return entry[1];
}

/** Roles whose trust names a federated (web identity) principal, in any template. */
function federatedRoles(t: Templates) {
  return Object.entries(t).flatMap(([stack, template]) =>
    Object.entries(template.Resources)
      .filter(([, r]) => r.Type === 'AWS::IAM::Role')
      .filter(([, r]) =>
        statementsOf(r.Properties?.AssumeRolePolicyDocument).some((s) => {
          const principal = s.Principal;
          return typeof principal === 'object' && principal !== null && 'Federated' in principal;
        }),
      )
      .map(([id, r]) => ({ stack, id, role: r })),
  );
}

function deployRole(name: 'branch' | 'environment') {
  const roles = federatedRoles({ Deploy: deployTemplate(name) });
  expect(roles).toHaveLength(1);
  const found = roles[0];
  if (!found) throw new Error('no deploy role');
  return found;
}

/**
 * The trust policy as IAM sees it once deployed: a `Ref` to the stack's own OIDC provider becomes the
 * provider's ARN (IAM names it after the issuer URL without its scheme).
 */
function trustPolicy(name: 'branch' | 'environment'): Record<string, Json> {
  const { role } = deployRole(name);
  const resources = deployTemplate(name).Resources;
  const resolved = JSON.parse(JSON.stringify(role.Properties?.AssumeRolePolicyDocument)) as Record<
    string,
    Json
  >;
  for (const s of statementsOf(resolved)) {
    const principal = s.Principal as { Federated?: Json };
    const ref = (principal.Federated as { Ref?: string } | undefined)?.Ref;
    if (ref !== undefined) {
      const provider = resources[ref];
      expect(provider?.Type).toBe('AWS::IAM::OIDCProvider');
      expect(provider?.Properties?.Url).toBe(`https://${ISSUER}`);
      principal.Federated = PROVIDER_ARN;
    }
  }
  return resolved;
}

/**
 * IAM's condition keys for GitHub's `sub` and `aud` claims are `token.actions.githubusercontent.com:sub`
 * and `:aud`, which the Service Authorization Reference (the simulator's data) does not list for
 * sts:AssumeRoleWithWebIdentity, so the simulator would ignore them. Every IAM condition operator
 * compares a key's value regardless of the key's name, so the same claims are evaluated under the two
 * string keys the reference does list for this action's `sub` and `aud` (Google's); `ref` is listed.
 */
const SIMULATED_KEY: Record<string, string> = {
  [`${ISSUER}:sub`]: 'accounts.google.com:sub',
  [`${ISSUER}:aud`]: 'accounts.google.com:aud',
};

function renameConditionKeys(policy: Record<string, Json>): Record<string, Json> {
  const copy = JSON.parse(JSON.stringify(policy)) as Record<string, Json>;
  expect(JSON.stringify(copy)).not.toContain('accounts.google.com:');
  for (const s of statementsOf(copy)) {
    const condition = (s.Condition ?? {}) as Record<string, Record<string, Json>>;
    for (const operator of Object.keys(condition)) {
      const keys = condition[operator] ?? {};
      condition[operator] = Object.fromEntries(
        Object.entries(keys).map(([key, value]) => [SIMULATED_KEY[key] ?? key, value]),
      );
    }
  }
  return copy;
}

type Claims = Partial<Record<'sub' | 'aud' | 'ref' | 'environment', string>>;

/** sts:AssumeRoleWithWebIdentity on the deploy role with a GitHub token carrying these claims. */
async function assume(
  policy: Record<string, Json>,
  claims: Claims,
  principal: string = PROVIDER_ARN,
): Promise<string> {
  const simulated = renameConditionKeys(policy);
  const roleArn = `arn:aws:iam::${ACCOUNT}:role/veritrail-ci-deploy`;
  // Every condition key must be one the simulator evaluates, or the result would mean nothing.
  const known = new Set(
    (await allowedContextKeysForRequest('sts', 'AssumeRoleWithWebIdentity', roleArn, false, undefined)).map(
      (k) => k.toLowerCase(),
    ),
  );
  for (const s of statementsOf(simulated)) {
    for (const keys of Object.values((s.Condition ?? {}) as Record<string, Record<string, Json>>)) {
      for (const key of Object.keys(keys)) expect(known, key).toContain(key.toLowerCase());
    }
  }
  const context: Record<string, string> = {};
  for (const [claim, value] of Object.entries(claims)) {
    const key = `${ISSUER}:${claim}`;
    context[SIMULATED_KEY[key] ?? key] = value;
  }
  const result = await runSimulation(
    {
      request: {
        principal,
        action: 'sts:AssumeRoleWithWebIdentity',
        resource: { resource: roleArn, accountId: ACCOUNT },
        contextVariables: context,
      },
      identityPolicies: [],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      resourcePolicy: simulated,
    },
    {},
  );
  if (result.resultType === 'error') throw new Error(`simulator refused: ${JSON.stringify(result.errors)}`);
  if (result.resultType === 'single') expect(result.result.ignoredContextKeys ?? []).toEqual([]);
  return result.overallResult;
}

const onBranch = (branch: string, repository = REPOSITORY) => `repo:${repository}:ref:refs/heads/${branch}`;
const AUD = 'sts.amazonaws.com';
/** The role-to-assume the example workflow must use: a GitHub Actions expression, not a template. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: GitHub Actions expression syntax
const ROLE_VARIABLE = '${{ vars.VERITRAIL_DEPLOY_ROLE_ARN }}';

describe('the deploy role pinned to a repository and branch', () => {
  it('trusts only GitHub’s OIDC provider of this stack, with StringEquals on aud and the exact sub', () => {
    const template = deployTemplate('branch');
    const providers = Object.values(template.Resources).filter((r) => r.Type === 'AWS::IAM::OIDCProvider');
    expect(providers).toHaveLength(1);
    // The native resource, no thumbprint (IAM trusts GitHub's CA itself), only the STS audience.
    expect(providers[0]?.Properties).toMatchObject({ Url: `https://${ISSUER}`, ClientIdList: [AUD] });
    expect(providers[0]?.Properties?.ThumbprintList).toBeUndefined();
    expect(Object.values(template.Resources).some((r) => r.Type === 'AWS::Lambda::Function')).toBe(false);

    const statements = statementsOf(trustPolicy('branch'));
    expect(statements).toEqual([
      {
        Effect: 'Allow',
        Principal: { Federated: PROVIDER_ARN },
        Action: 'sts:AssumeRoleWithWebIdentity',
        Condition: {
          StringEquals: {
            [`${ISSUER}:aud`]: AUD,
            [`${ISSUER}:sub`]: `repo:${REPOSITORY}:ref:refs/heads/${BRANCH}`,
          },
        },
      },
    ]);
  });

  it('gives sessions of at most one hour', () => {
    expect(deployRole('branch').role.Properties?.MaxSessionDuration).toBe(3600);
  });

  const tokens: [string, Claims, 'Allowed' | 'ImplicitlyDenied'][] = [
    ['a push to the pinned branch', { sub: onBranch(BRANCH), aud: AUD }, 'Allowed'],
    [
      'another repository of the same owner',
      { sub: onBranch(BRANCH, 'acme/other'), aud: AUD },
      'ImplicitlyDenied',
    ],
    ['another branch', { sub: onBranch('main'), aud: AUD }, 'ImplicitlyDenied'],
    [
      'a branch named like the pinned one, longer',
      { sub: onBranch(`${BRANCH}-x`), aud: AUD },
      'ImplicitlyDenied',
    ],
    ['a fork', { sub: onBranch(BRANCH, 'mallory/veritrail-ops'), aud: AUD }, 'ImplicitlyDenied'],
    ['a pull request', { sub: `repo:${REPOSITORY}:pull_request`, aud: AUD }, 'ImplicitlyDenied'],
    ['a tag', { sub: `repo:${REPOSITORY}:ref:refs/tags/v1.0.0`, aud: AUD }, 'ImplicitlyDenied'],
    [
      'a job in an environment',
      { sub: `repo:${REPOSITORY}:environment:${ENVIRONMENT}`, aud: AUD },
      'ImplicitlyDenied',
    ],
    ['a sub that looks like a wildcard', { sub: `repo:${REPOSITORY}:*`, aud: AUD }, 'ImplicitlyDenied'],
    ['a branch wildcard', { sub: `repo:${REPOSITORY}:ref:refs/heads/*`, aud: AUD }, 'ImplicitlyDenied'],
    ['an owner wildcard', { sub: onBranch(BRANCH, 'acme/*'), aud: AUD }, 'ImplicitlyDenied'],
    [
      'the owner spelled in capitals',
      { sub: onBranch(BRANCH, 'ACME/veritrail-ops'), aud: AUD },
      'ImplicitlyDenied',
    ],
    [
      'a token for another audience',
      { sub: onBranch(BRANCH), aud: 'https://github.com/acme' },
      'ImplicitlyDenied',
    ],
    ['a token without audience', { sub: onBranch(BRANCH) }, 'ImplicitlyDenied'],
    ['a token without subject', { aud: AUD }, 'ImplicitlyDenied'],
  ];

  it.each(tokens)('evaluated by IAM’s rules: %s → %s', async (_what, claims, expected) => {
    expect(await assume(trustPolicy('branch'), claims)).toBe(expected);
  });

  it('refuses the right token presented through another account’s GitHub provider', async () => {
    const foreign = `arn:aws:iam::999999999999:oidc-provider/${ISSUER}`;
    expect(await assume(trustPolicy('branch'), { sub: onBranch(BRANCH), aud: AUD }, foreign)).toBe(
      'ImplicitlyDenied',
    );
  });

  it('the evaluation can fail: a StringLike sub pattern lets a pull request in', async () => {
    const loose = trustPolicy('branch');
    const [statement] = statementsOf(loose);
    if (!statement) throw new Error('no statement');
    statement.Condition = {
      StringEquals: { [`${ISSUER}:aud`]: AUD },
      StringLike: { [`${ISSUER}:sub`]: `repo:${REPOSITORY}:*` },
    };
    expect(await assume(loose, { sub: `repo:${REPOSITORY}:pull_request`, aud: AUD })).toBe('Allowed');
  });
});

describe('the deploy role pinned to a GitHub environment, with an existing provider', () => {
  it('names the given provider, creates none, and pins the environment and the branch', () => {
    const template = deployTemplate('environment');
    expect(Object.values(template.Resources).filter((r) => r.Type === 'AWS::IAM::OIDCProvider')).toEqual([]);
    expect(statementsOf(trustPolicy('environment'))).toEqual([
      {
        Effect: 'Allow',
        Principal: { Federated: PROVIDER_ARN },
        Action: 'sts:AssumeRoleWithWebIdentity',
        Condition: {
          StringEquals: {
            [`${ISSUER}:aud`]: AUD,
            [`${ISSUER}:sub`]: `repo:${REPOSITORY}:environment:${ENVIRONMENT}`,
            [`${ISSUER}:ref`]: `refs/heads/${DEFAULT_CI_BRANCH}`,
          },
        },
      },
    ]);
  });

  const inEnvironment = `repo:${REPOSITORY}:environment:${ENVIRONMENT}`;
  const tokens: [string, Claims, 'Allowed' | 'ImplicitlyDenied'][] = [
    [
      'the environment on the pinned branch',
      { sub: inEnvironment, aud: AUD, ref: 'refs/heads/main' },
      'Allowed',
    ],
    [
      'the environment from another branch',
      { sub: inEnvironment, aud: AUD, ref: 'refs/heads/feature' },
      'ImplicitlyDenied',
    ],
    [
      'the environment from a pull request',
      { sub: inEnvironment, aud: AUD, ref: 'refs/pull/7/merge' },
      'ImplicitlyDenied',
    ],
    ['the environment without a ref claim', { sub: inEnvironment, aud: AUD }, 'ImplicitlyDenied'],
    [
      'another environment',
      { sub: `repo:${REPOSITORY}:environment:staging`, aud: AUD, ref: 'refs/heads/main' },
      'ImplicitlyDenied',
    ],
    [
      'the pinned branch outside the environment',
      { sub: onBranch('main'), aud: AUD, ref: 'refs/heads/main' },
      'ImplicitlyDenied',
    ],
    [
      'the environment of a fork',
      { sub: `repo:mallory/veritrail-ops:environment:${ENVIRONMENT}`, aud: AUD, ref: 'refs/heads/main' },
      'ImplicitlyDenied',
    ],
    [
      'another audience',
      { sub: inEnvironment, aud: 'https://github.com/acme', ref: 'refs/heads/main' },
      'ImplicitlyDenied',
    ],
  ];

  it.each(tokens)('evaluated by IAM’s rules: %s → %s', async (_what, claims, expected) => {
    expect(await assume(trustPolicy('environment'), claims)).toBe(expected);
  });
});

/** Fn::Sub, Fn::Join and pseudo-parameter Refs resolved for the synthesis account and region. */
function resolve(value: Json | undefined): string {
  const pseudo: Record<string, string> = {
    'AWS::Partition': 'aws',
    'AWS::AccountId': ACCOUNT,
    'AWS::Region': REGION,
  };
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    if ('Fn::Sub' in value && typeof value['Fn::Sub'] === 'string')
      return value['Fn::Sub'].replace(/\$\{([^}]+)\}/g, (_m, name: string) => {
        const v = pseudo[name];
        if (v === undefined) throw new Error(`unexpected \${${name}}`);
        return v;
      });
    if ('Fn::Join' in value && Array.isArray(value['Fn::Join'])) {
      const [sep, parts] = value['Fn::Join'] as [string, Json[]];
      return parts.map(resolve).join(sep);
    }
    if ('Ref' in value && typeof value.Ref === 'string' && pseudo[value.Ref] !== undefined)
      return pseudo[value.Ref] as string;
  }
  throw new Error(`cannot resolve ${JSON.stringify(value)}`);
}

function grantsOfDeployRole(name: 'branch' | 'environment'): Record<string, Json>[] {
  const { id } = deployRole(name);
  const policies = Object.values(deployTemplate(name).Resources).filter(
    (r) => r.Type === 'AWS::IAM::Policy' && flat(r.Properties?.Roles).includes(id),
  );
  expect(policies).toHaveLength(1);
  return statementsOf(policies[0]?.Properties?.PolicyDocument);
}

describe('what the deploy role may do', () => {
  const stage = 'cibranch';
  const stackArn = (name: string) => `arn:aws:cloudformation:${REGION}:${ACCOUNT}:stack/${name}/*`;
  const bootstrapRole = (kind: string) =>
    `arn:aws:iam::${ACCOUNT}:role/cdk-hnb659fds-${kind}-${ACCOUNT}-${REGION}`;

  it('has no wildcard action, no managed policy, and "*" only for ListImports (which takes no resource)', () => {
    const statements = grantsOfDeployRole('branch');
    for (const s of statements) {
      expect(s.Effect).toBe('Allow');
      for (const action of actionsOf(s)) expect(action).not.toContain('*');
      if (resourcesOf(s).includes('*')) expect(actionsOf(s)).toEqual(['cloudformation:ListImports']);
    }
    expect(deployRole('branch').role.Properties?.ManagedPolicyArns).toBeUndefined();
    expect(deployRole('branch').role.Properties?.Policies).toBeUndefined();
  });

  it('may do exactly what `sst deploy` does as its caller, on this app’s stacks and the CDK bootstrap only', () => {
    const appStacks = Object.keys(templates('branch'))
      .filter((name) => !name.endsWith('-Deploy'))
      .sort();
    expect(appStacks.map((s) => s.replace(`${stage}-veritrail-`, ''))).toEqual(
      expect.arrayContaining(['Database', 'Identity', 'Keys', 'Pipeline', 'Storage', 'Triggers']),
    );
    const granted: Record<string, string[]> = {};
    for (const s of grantsOfDeployRole('branch')) {
      for (const action of actionsOf(s)) {
        granted[action] = [...(granted[action] ?? []), ...resourcesOf(s).map(resolve)].sort();
      }
    }
    const stacks = appStacks.map(stackArn).sort();
    expect(granted).toEqual({
      'sts:AssumeRole': [bootstrapRole('deploy-role'), bootstrapRole('file-publishing-role')].sort(),
      'iam:PassRole': [bootstrapRole('cfn-exec-role')],
      'cloudformation:CreateStack': stacks,
      'cloudformation:UpdateStack': stacks,
      'cloudformation:DescribeStacks': [...stacks, stackArn('CDKToolkit'), stackArn('SSTBootstrap')].sort(),
      'cloudformation:DescribeStackEvents': stacks,
      'cloudformation:DescribeStackResources': stacks,
      'cloudformation:ListImports': ['*'],
      's3:GetObject': [`arn:aws:s3:::cdk-hnb659fds-assets-${ACCOUNT}-${REGION}/*.json`],
      'ssm:GetParameters': [
        `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/cdk-bootstrap/hnb659fds/version`,
        `arn:aws:ssm:${REGION}::parameter${POWERTOOLS_LAYER_PARAMETER}`,
      ],
    });
    // Not its own stack: its trust and permissions change only in an administrator's deploy.
    expect(JSON.stringify(granted)).not.toContain(`${stage}-veritrail-Deploy`);
  });

  it('passes the execution role only to CloudFormation, and changes stacks only through it', () => {
    const statements = grantsOfDeployRole('branch');
    const withAction = (action: string) => statements.filter((s) => actionsOf(s).includes(action));
    const execRole = bootstrapRole('cfn-exec-role');
    for (const s of withAction('iam:PassRole'))
      expect(s.Condition).toEqual({
        StringEquals: { 'iam:PassedToService': 'cloudformation.amazonaws.com' },
      });
    for (const s of [
      ...withAction('cloudformation:CreateStack'),
      ...withAction('cloudformation:UpdateStack'),
    ]) {
      const condition = s.Condition as { StringEquals: Record<string, Json> };
      expect(Object.keys(condition)).toEqual(['StringEquals']);
      expect(resolve(condition.StringEquals['cloudformation:RoleArn'])).toBe(execRole);
    }
    for (const s of withAction('s3:GetObject'))
      expect(s.Condition).toEqual({ StringEquals: { 's3:ResourceAccount': { Ref: 'AWS::AccountId' } } });
  });

  it('publishes its ARN as the GithubDeployRoleArn output', () => {
    const output = deployTemplate('branch').Outputs?.GithubDeployRoleArn as { Value: Json } | undefined;
    expect(output?.Value).toEqual({ 'Fn::GetAtt': [deployRole('branch').id, 'Arn'] });
  });
});

describe('without the CI setting', () => {
  it('deploys no Deploy stack, no OIDC provider and no role a web identity may assume', () => {
    const t = templates('off');
    expect(Object.keys(t).some((name) => name.endsWith('-Deploy'))).toBe(false);
    // Every other stack is there: the setting adds the Deploy stack and nothing else.
    expect(
      Object.keys(t)
        .map((name) => name.replace('cioff-', ''))
        .sort(),
    ).toEqual(
      Object.keys(templates('branch'))
        .filter((name) => !name.endsWith('-Deploy'))
        .map((name) => name.replace('cibranch-', ''))
        .sort(),
    );
    const providers = Object.values(t).flatMap((tpl) =>
      Object.values(tpl.Resources).filter((r) => r.Type === 'AWS::IAM::OIDCProvider'),
    );
    expect(providers).toEqual([]);
    expect(federatedRoles(t)).toEqual([]);
    expect(JSON.stringify(t)).not.toContain(ISSUER);
  });

  it('refuses, at synth time, a provider of another account than the one deployed', () => {
    expect(synthesized.foreign).toContain('VERITRAIL_CI_GITHUB_OIDC_PROVIDER_ARN is in account 999999999999');
  });
});

describe('the CI settings', () => {
  const refusal = (env: Record<string, string>): StackSettingsError => {
    try {
      githubDeploy(env);
    } catch (e) {
      if (e instanceof StackSettingsError) return e;
      throw e;
    }
    throw new Error(`accepted ${JSON.stringify(env)}`);
  };

  it('are off unless a repository is named, and default to main', () => {
    expect(githubDeploy({})).toBeUndefined();
    expect(githubDeploy({ VERITRAIL_CI_GITHUB_REPOSITORY: '' })).toBeUndefined();
    expect(githubDeploy({ VERITRAIL_CI_GITHUB_REPOSITORY: 'acme/app.v2_x-y' })).toEqual({
      repository: 'acme/app.v2_x-y',
      branch: 'main',
    });
    expect(
      githubDeploy({ VERITRAIL_CI_GITHUB_REPOSITORY: 'a/b', VERITRAIL_CI_GITHUB_BRANCH: 'release/v2' }),
    ).toEqual({
      repository: 'a/b',
      branch: 'release/v2',
    });
  });

  it.each([
    [
      { VERITRAIL_CI_GITHUB_BRANCH: 'main' },
      'VERITRAIL_CI_GITHUB_BRANCH is set but VERITRAIL_CI_GITHUB_REPOSITORY',
    ],
    [{ VERITRAIL_CI_GITHUB_ENVIRONMENT: 'prod' }, 'VERITRAIL_CI_GITHUB_ENVIRONMENT is set but'],
    [
      { VERITRAIL_CI_GITHUB_REPOSITORY: 'acme' },
      'VERITRAIL_CI_GITHUB_REPOSITORY must be one GitHub repository',
    ],
    [{ VERITRAIL_CI_GITHUB_REPOSITORY: 'acme/*' }, 'VERITRAIL_CI_GITHUB_REPOSITORY must be'],
    [{ VERITRAIL_CI_GITHUB_REPOSITORY: 'acme/app/x' }, 'VERITRAIL_CI_GITHUB_REPOSITORY must be'],
    [
      { VERITRAIL_CI_GITHUB_REPOSITORY: 'https://github.com/acme/app' },
      'VERITRAIL_CI_GITHUB_REPOSITORY must be',
    ],
    [{ VERITRAIL_CI_GITHUB_REPOSITORY: 'acme/..' }, 'VERITRAIL_CI_GITHUB_REPOSITORY must be'],
    [
      { VERITRAIL_CI_GITHUB_REPOSITORY: 'a/b', VERITRAIL_CI_GITHUB_BRANCH: 'refs/heads/main' },
      'no refs/heads/ prefix',
    ],
    [
      { VERITRAIL_CI_GITHUB_REPOSITORY: 'a/b', VERITRAIL_CI_GITHUB_BRANCH: 'release/*' },
      'VERITRAIL_CI_GITHUB_BRANCH must be',
    ],
    [
      { VERITRAIL_CI_GITHUB_REPOSITORY: 'a/b', VERITRAIL_CI_GITHUB_BRANCH: 'a b' },
      'VERITRAIL_CI_GITHUB_BRANCH must be',
    ],
    [
      { VERITRAIL_CI_GITHUB_REPOSITORY: 'a/b', VERITRAIL_CI_GITHUB_BRANCH: 'main:x' },
      'VERITRAIL_CI_GITHUB_BRANCH must be',
    ],
    [
      { VERITRAIL_CI_GITHUB_REPOSITORY: 'a/b', VERITRAIL_CI_GITHUB_BRANCH: 'x..y' },
      'VERITRAIL_CI_GITHUB_BRANCH must be',
    ],
    [
      { VERITRAIL_CI_GITHUB_REPOSITORY: 'a/b', VERITRAIL_CI_GITHUB_ENVIRONMENT: 'prod*' },
      'VERITRAIL_CI_GITHUB_ENVIRONMENT must be',
    ],
    [
      { VERITRAIL_CI_GITHUB_REPOSITORY: 'a/b', VERITRAIL_CI_GITHUB_ENVIRONMENT: 'a:b' },
      'VERITRAIL_CI_GITHUB_ENVIRONMENT must be',
    ],
    [
      { VERITRAIL_CI_GITHUB_REPOSITORY: 'a/b', VERITRAIL_CI_GITHUB_ENVIRONMENT: ' prod' },
      'VERITRAIL_CI_GITHUB_ENVIRONMENT must be',
    ],
    [
      {
        VERITRAIL_CI_GITHUB_REPOSITORY: 'a/b',
        VERITRAIL_CI_GITHUB_OIDC_PROVIDER_ARN: `arn:aws:iam::${ACCOUNT}:oidc-provider/gitlab.com`,
      },
      'VERITRAIL_CI_GITHUB_OIDC_PROVIDER_ARN must be',
    ],
  ])('refuses %j with one line naming the setting', (env, message) => {
    const e = refusal(env);
    expect(e.code).toBe('SETTING_INVALID');
    expect(e.message).toContain(message);
    expect(e.message).not.toContain('\n');
  });
});

/** What is wrong with a deploy workflow, by the rules the example must hold; empty when nothing. */
function workflowProblems(text: string): string[] {
  const problems: string[] = [];
  const doc = parseYaml(text) as {
    permissions?: Record<string, string>;
    jobs?: Record<
      string,
      {
        permissions?: unknown;
        steps?: {
          uses?: string;
          run?: string;
          with?: Record<string, unknown>;
          env?: Record<string, string>;
        }[];
      }
    >;
  };
  if (JSON.stringify(doc.permissions) !== JSON.stringify({ 'id-token': 'write', contents: 'read' }))
    problems.push(
      `permissions are ${JSON.stringify(doc.permissions)}, not id-token: write and contents: read`,
    );
  const jobs = Object.entries(doc.jobs ?? {});
  if (jobs.length === 0) problems.push('no job');
  for (const [name, job] of jobs) {
    if (job.permissions !== undefined) problems.push(`job ${name} widens or changes the permissions`);
    const steps = job.steps ?? [];
    for (const step of steps) {
      if (step.uses !== undefined && !/^[\w.-]+\/[\w.-]+(\/[\w./-]+)?@[0-9a-f]{40}$/.test(step.uses))
        problems.push(`${step.uses} is not pinned to a full commit SHA`);
      for (const key of Object.keys(step.env ?? {}))
        if (key.startsWith('VERITRAIL_CI_GITHUB_'))
          problems.push(`the deploy sets ${key}: it would deploy its own role`);
    }
    const configure = steps.findIndex((s) => s.uses?.startsWith('aws-actions/configure-aws-credentials@'));
    const install = steps.findIndex((s) => s.run?.trim() === 'npm ci');
    const deploy = steps.findIndex((s) => /^npx sst deploy --stage /.test(s.run?.trim() ?? ''));
    if (configure < 0) problems.push(`job ${name} does not use aws-actions/configure-aws-credentials`);
    else {
      const inputs = steps[configure]?.with ?? {};
      if (inputs['role-to-assume'] !== ROLE_VARIABLE)
        problems.push(
          'role-to-assume is not the VERITRAIL_DEPLOY_ROLE_ARN variable (the GithubDeployRoleArn output)',
        );
      for (const key of ['aws-access-key-id', 'aws-secret-access-key', 'aws-session-token'])
        if (key in inputs) problems.push(`configure-aws-credentials is given ${key}`);
    }
    if (install < 0 || deploy < 0 || !(install < configure && configure < deploy))
      problems.push('expected npm ci, then the credentials, then npx sst deploy --stage');
  }
  if (/secrets\./.test(text)) problems.push('reads a secret');
  if (/AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN)/.test(text))
    problems.push('names an AWS key variable');
  if (/\b(AKIA|ASIA)[A-Z0-9]{16}\b/.test(text)) problems.push('holds an access key id');
  return problems;
}

describe('the example workflow', () => {
  const text = readFileSync(WORKFLOW, 'utf8');

  it('requests an OIDC token, assumes the role from the output variable by SHA-pinned actions, holds no key', () => {
    expect(path.relative(ROOT, WORKFLOW).startsWith('.github')).toBe(false);
    expect(workflowProblems(text)).toEqual([]);
    // The header tells where the variable comes from.
    expect(text).toContain('GithubDeployRoleArn');
    expect(text).toContain('VERITRAIL_DEPLOY_ROLE_ARN');
  });

  it('deploys on pushes to the branch the role pins by default', () => {
    const doc = parseYaml(text) as { on: { push: { branches: string[] } } };
    expect(doc.on.push.branches).toEqual([DEFAULT_CI_BRANCH]);
  });

  it('the workflow check can fail: long-lived keys, a tag pin and write permissions are reported', () => {
    const bad = text
      .replace('contents: read', 'contents: write')
      .replace(/actions\/checkout@[0-9a-f]{40}/, 'actions/checkout@v4')
      // biome-ignore lint/suspicious/noTemplateCurlyInString: GitHub Actions expression syntax
      .replace(`role-to-assume: ${ROLE_VARIABLE}`, 'aws-access-key-id: ${{ secrets.AWS_ACCESS_KEY_ID }}');
    const problems = workflowProblems(bad);
    expect(problems.some((p) => p.startsWith('permissions are'))).toBe(true);
    expect(problems).toContain('actions/checkout@v4 is not pinned to a full commit SHA');
    expect(problems).toContain('configure-aws-credentials is given aws-access-key-id');
    expect(problems).toContain('reads a secret');
    expect(problems).toContain('names an AWS key variable');
  });
});

describe('docs', () => {
  it('docs/deploy.md explains the CI deploy, its settings and the output; README points to it', () => {
    const doc = readFileSync(path.join(ROOT, 'docs/deploy.md'), 'utf8');
    const start = doc.indexOf('## Deploying from CI with short-lived credentials');
    expect(start).toBeGreaterThan(0);
    const section = doc.slice(start, doc.indexOf('\n## ', start + 1));
    for (const word of [
      'VERITRAIL_CI_GITHUB_REPOSITORY',
      'VERITRAIL_CI_GITHUB_BRANCH',
      'VERITRAIL_CI_GITHUB_ENVIRONMENT',
      'VERITRAIL_CI_GITHUB_OIDC_PROVIDER_ARN',
      'GithubDeployRoleArn',
      'VERITRAIL_DEPLOY_ROLE_ARN',
      'examples/ci/github-actions-deploy.yml',
    ])
      expect(section, word).toContain(word);
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    expect(readme).toContain('Deploying from CI with short-lived credentials');
  });
});
