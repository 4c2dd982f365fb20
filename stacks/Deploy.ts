import { Aws, CfnOutput, DefaultStackSynthesizer, Duration, Fn, Stack, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { StackContext } from 'sst/constructs';
import { POWERTOOLS_LAYER_PARAMETER } from './bundling.js';
import { removeUnusedSstHandler } from './common.js';
import { suppressDeployRoleFindings } from './compliance.js';
import { type GithubDeploy, githubDeploy, roleName, StackSettingsError } from './settings.js';

/** GitHub Actions' OIDC issuer, without the scheme: the prefix of its IAM condition keys. */
const GITHUB_OIDC_ISSUER = 'token.actions.githubusercontent.com';
/** The audience aws-actions/configure-aws-credentials requests (its `audience` input's default). */
const GITHUB_OIDC_AUDIENCE = 'sts.amazonaws.com';
/** A CI session lasts at most one hour, configure-aws-credentials' default for OIDC. */
const DEPLOY_ROLE_MAX_SESSION = Duration.hours(1);
/** SST v2's own bootstrap stack (sst/bootstrap.js): `sst deploy` reads its outputs before anything else. */
const SST_BOOTSTRAP_STACK = 'SSTBootstrap';
/** The CDK bootstrap stack SST v2 checks (its `cdk.toolkitStackName` default). */
const CDK_TOOLKIT_STACK = 'CDKToolkit';

/**
 * The `sub` claim GitHub puts in a job's OIDC token (GitHub Docs, "OpenID Connect", example subject
 * claims): `repo:<owner>/<name>:environment:<name>` for a job that names an environment, else
 * `repo:<owner>/<name>:ref:refs/heads/<branch>` for a run on a branch. Pull requests
 * (`…:pull_request`), tags and forks (another owner) get other subjects.
 */
function githubSubject(ci: GithubDeploy): string {
  return ci.environment !== undefined
    ? `repo:${ci.repository}:environment:${ci.environment}`
    : `repo:${ci.repository}:ref:refs/heads/${ci.branch}`;
}

/**
 * The trust conditions, every one StringEquals (never StringLike: no pattern can widen them). A job
 * in an environment has a `sub` that names no branch, so the branch is then pinned through the `ref`
 * claim, which STS validates for GitHub since January 2026 (AWS What's New, "AWS STS supports
 * validation of identity provider claims"); where that key is not provided the condition fails closed.
 */
function githubTrustConditions(ci: GithubDeploy): Record<string, Record<string, string>> {
  return {
    StringEquals: {
      [`${GITHUB_OIDC_ISSUER}:aud`]: GITHUB_OIDC_AUDIENCE,
      [`${GITHUB_OIDC_ISSUER}:sub`]: githubSubject(ci),
      ...(ci.environment !== undefined ? { [`${GITHUB_OIDC_ISSUER}:ref`]: `refs/heads/${ci.branch}` } : {}),
    },
  };
}

/**
 * The CDK bootstrap resources this app deploys through, from the stacks' own synthesizer: the
 * qualifier is SST's `cdk.qualifier` (default hnb659fds); the deploy and execution role ARNs follow
 * any override in sst.config.ts, the other names are CDK's defaults for that qualifier.
 */
function cdkBootstrap(stack: Stack) {
  const synthesizer = stack.synthesizer;
  if (!(synthesizer instanceof DefaultStackSynthesizer)) {
    throw new TypeError('veritrail stacks deploy with the CDK DefaultStackSynthesizer (SST v2 default)');
  }
  const qualifier = synthesizer.bootstrapQualifier ?? DefaultStackSynthesizer.DEFAULT_QUALIFIER;
  // The synthesizer's names hold ${AWS::Partition}-style placeholders, meant for Fn::Sub.
  // biome-ignore lint/suspicious/noTemplateCurlyInString: CDK's bootstrap name placeholder
  const named = (template: string) => Fn.sub(template.replaceAll('${Qualifier}', qualifier));
  return {
    deployRoleArn: Fn.sub(synthesizer.deployRoleArn),
    executionRoleArn: Fn.sub(synthesizer.cloudFormationExecutionRoleArn),
    filePublishingRoleArn: named(DefaultStackSynthesizer.DEFAULT_FILE_ASSET_PUBLISHING_ROLE_ARN),
    // Stack templates are uploaded as `<sha256>.json`; Lambda code (zip) is not readable.
    templateObjectsArn: named(
      `arn:\${AWS::Partition}:s3:::${DefaultStackSynthesizer.DEFAULT_FILE_ASSETS_BUCKET_NAME}/*.json`,
    ),
    versionParameterArn: named(
      `arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter${DefaultStackSynthesizer.DEFAULT_BOOTSTRAP_STACK_VERSION_SSM_PARAMETER}`,
    ),
  };
}

/**
 * The role GitHub Actions deploys this stage with (VERITRAIL_CI_GITHUB_REPOSITORY set): trusted
 * through GitHub's OIDC provider for exactly one repository and branch (or environment), for at
 * most one hour, and allowed only what `sst deploy` (SST 2.49) does with the caller's own
 * credentials. SST v2 calls CloudFormation itself (sst/stacks/deploy.js, monitor.js): it reads its
 * bootstrap stacks, creates or updates each app stack with the CDK execution role as RoleARN, and
 * watches its events; CloudFormation then reads the template from the CDK assets bucket and
 * resolves the bootstrap version parameter with the caller's permissions. Assets are uploaded, and
 * the bootstrap version checked, under the CDK bootstrap roles the role may assume.
 *
 * Not granted: the lookup role (the app makes no context lookups), the image-publishing role (no
 * container image assets), DeleteStack (a stack whose first creation failed is removed by an
 * administrator), this stack itself (its trust and permissions change only in an administrator's
 * deploy), and SST's app-metadata object (SST skips it when unreadable).
 */
export function Deploy({ stack, app }: StackContext) {
  const ci = githubDeploy();
  if (!ci) {
    throw new StackSettingsError(
      'SETTING_INVALID',
      'the Deploy stack needs VERITRAIL_CI_GITHUB_REPOSITORY (sst.config.ts adds it only when that is set).',
    );
  }

  let providerArn: string;
  if (ci.providerArn !== undefined) {
    const providerAccount = ci.providerArn.split(':')[4];
    if (!Token.isUnresolved(stack.account) && providerAccount !== stack.account) {
      throw new StackSettingsError(
        'SETTING_INVALID',
        `VERITRAIL_CI_GITHUB_OIDC_PROVIDER_ARN is in account ${providerAccount}, but this stage deploys to ${stack.account}: name the provider of the account being deployed, or unset it to create one.`,
      );
    }
    providerArn = ci.providerArn;
  } else {
    // The native AWS::IAM::OIDCProvider (no custom-resource Lambda). No thumbprint: IAM verifies
    // GitHub's certificate against its own trusted CAs (IAM User Guide, "Create an OIDC provider").
    providerArn = new iam.OidcProviderNative(stack, 'GithubOidcProvider', {
      url: `https://${GITHUB_OIDC_ISSUER}`,
      clientIds: [GITHUB_OIDC_AUDIENCE],
    }).oidcProviderArn;
  }

  const role = new iam.Role(stack, 'GithubDeployRole', {
    roleName: roleName(app.name, app.stage, stack.region, 'github-deploy'),
    description: `veritrail ${app.stage}: sst deploy from GitHub Actions of ${ci.repository}`,
    assumedBy: new iam.WebIdentityPrincipal(providerArn, githubTrustConditions(ci)),
    maxSessionDuration: DEPLOY_ROLE_MAX_SESSION,
  });

  const cdk = cdkBootstrap(stack);
  const stackArn = (name: string) =>
    `arn:${Aws.PARTITION}:cloudformation:${Aws.REGION}:${Aws.ACCOUNT_ID}:stack/${name}/*`;
  // Every other stack of this app at this stage; sst.config.ts adds this one last.
  const appStacks = app.node.children
    .filter((child): child is Stack => Stack.isStack(child) && child !== stack)
    .map((s) => stackArn(s.stackName));

  const grants = new iam.Policy(stack, 'Grants-github-deploy', {
    roles: [role],
    statements: [
      new iam.PolicyStatement({
        sid: 'AssumeCdkBootstrapRoles',
        actions: ['sts:AssumeRole'],
        resources: [cdk.deployRoleArn, cdk.filePublishingRoleArn],
      }),
      new iam.PolicyStatement({
        sid: 'PassTheCdkExecutionRoleToCloudFormation',
        actions: ['iam:PassRole'],
        resources: [cdk.executionRoleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'cloudformation.amazonaws.com' } },
      }),
      new iam.PolicyStatement({
        sid: 'CreateAndUpdateThisAppsStacksThroughTheExecutionRole',
        actions: ['cloudformation:CreateStack', 'cloudformation:UpdateStack'],
        resources: appStacks,
        conditions: { StringEquals: { 'cloudformation:RoleArn': cdk.executionRoleArn } },
      }),
      new iam.PolicyStatement({
        sid: 'WatchThisAppsStacks',
        actions: [
          'cloudformation:DescribeStacks',
          'cloudformation:DescribeStackEvents',
          'cloudformation:DescribeStackResources',
        ],
        resources: appStacks,
      }),
      new iam.PolicyStatement({
        sid: 'ReadBootstrapStatus',
        actions: ['cloudformation:DescribeStacks'],
        resources: [stackArn(CDK_TOOLKIT_STACK), stackArn(SST_BOOTSTRAP_STACK)],
      }),
      new iam.PolicyStatement({
        // SST keeps an export that another stack still imports (sst/stacks/deploy.js addInUseExports).
        sid: 'FindImportsOfRemovedExports',
        actions: ['cloudformation:ListImports'],
        resources: ['*'],
      }),
      new iam.PolicyStatement({
        sid: 'ReadStackTemplatesFromTheCdkAssetsBucket',
        actions: ['s3:GetObject'],
        resources: [cdk.templateObjectsArn],
        conditions: { StringEquals: { 's3:ResourceAccount': Aws.ACCOUNT_ID } },
      }),
      new iam.PolicyStatement({
        // Each template's BootstrapVersion parameter is an SSM parameter type, and so is every
        // function's Powertools layer (AWS's public parameter of the pinned release, stacks/bundling.ts):
        // CloudFormation resolves both with the caller's permissions.
        sid: 'ResolveTheCdkBootstrapVersion',
        actions: ['ssm:GetParameters'],
        resources: [
          cdk.versionParameterArn,
          `arn:${Aws.PARTITION}:ssm:${Aws.REGION}::parameter${POWERTOOLS_LAYER_PARAMETER}`,
        ],
      }),
    ],
  });

  new CfnOutput(stack, 'GithubDeployRoleArnOutput', {
    value: role.roleArn,
    description: 'Set it as the GitHub repository variable VERITRAIL_DEPLOY_ROLE_ARN (docs/deploy.md)',
  }).overrideLogicalId('GithubDeployRoleArn');

  suppressDeployRoleFindings({ grants });
  removeUnusedSstHandler(stack);
  return { role, providerArn };
}
