import { Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { NagSuppressions } from 'cdk-nag';
import { defaultGroupName } from '../src/core/deployment.js';
import { inlinePolicy } from './compliance.js';
import type { DeployedPipeline } from './settings.js';
import type { DeployedUnit } from './units.js';

/** The model package groups of these pipelines (src/core/deployment.ts defaultGroupName). */
export function modelPackageGroups(pipelines: readonly DeployedPipeline[]): string[] {
  return pipelines.map((p) => defaultGroupName(p.definition.name));
}

/** ARNs of the groups and of their versions, in this stack's account and region. */
export function modelPackageArns(
  stack: Stack,
  groups: readonly string[],
): { groups: string[]; packages: string[] } {
  const arn = (resource: string, resourceName: string) =>
    Stack.of(stack).formatArn({ service: 'sagemaker', resource, resourceName });
  return {
    groups: groups.map((g) => arn('model-package-group', g)),
    // Versions are numbered by SageMaker when registered: `model-package/<group>/<n>`.
    packages: groups.map((g) => arn('model-package', `${g}/*`)),
  };
}

/**
 * The unit's approvers, given a meaning on AWS (docs/units.md "On AWS"): a role that only the
 * approvers named by IAM role or user ARN may assume (approvers named otherwise, e.g. by e-mail,
 * are recorded in the stage's outputs only), able to read and update (approve or reject) the
 * versions of this unit's model package groups and nothing else. None when no approver is an ARN.
 */
export function modelApprovalRole(
  stack: Stack,
  unit: DeployedUnit,
  pipelines: readonly DeployedPipeline[],
): iam.Role | undefined {
  if (unit.approverArns.length === 0) return undefined;
  const arns = modelPackageArns(stack, modelPackageGroups(pipelines));
  const role = new iam.Role(stack, 'ModelApproval', {
    assumedBy: new iam.CompositePrincipal(...unit.approverArns.map((a) => new iam.ArnPrincipal(a))),
    description: `veritrail ${stack.stackName}: approvers of unit ${unit.name} approve or reject its model versions`,
    maxSessionDuration: Duration.hours(1),
  });
  const grants = new iam.Policy(stack, 'Grants-model-approval', {
    roles: [role],
    statements: [
      new iam.PolicyStatement({
        // UpdateModelPackage sets ModelApprovalStatus (SageMaker Developer Guide, "Update the
        // approval status of a model"); Describe shows what is being approved.
        sid: 'ApproveUnitModelVersions',
        actions: ['sagemaker:UpdateModelPackage', 'sagemaker:DescribeModelPackage'],
        resources: arns.packages,
      }),
      new iam.PolicyStatement({
        sid: 'ReadUnitModelGroups',
        actions: ['sagemaker:DescribeModelPackageGroup'],
        resources: arns.groups,
      }),
    ],
  });
  NagSuppressions.addResourceSuppressions(grants, [
    ...inlinePolicy(),
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'Model package versions are numbered by SageMaker when registered (`model-package/<group>/<n>`): ' +
        'only the versions of this unit’s own groups, `veritrail-<pipeline>` for each of its pipelines.',
      appliesTo: [
        {
          regex:
            '/^Resource::arn:<AWS::Partition>:sagemaker:[a-z0-9-]+:\\d{12}:model-package/veritrail-[A-Za-z0-9-]+/\\*$/',
        },
      ],
    },
  ]);
  return role;
}
