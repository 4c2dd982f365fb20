import * as iam from 'aws-cdk-lib/aws-iam';
import type { StackContext } from 'sst/constructs';
import { FUNCTION_NAMES, type FunctionName } from './access.js';
import { modelApprovalRole } from './approval.js';
import { publish, removeUnusedSstHandler } from './common.js';
import { processingJobRole, sagemakerExecutionRoles } from './sagemaker-roles.js';
import { processingSettings } from './settings.js';
import { checkUnitStage, deployedPipelines, deployedUnit } from './units.js';

/**
 * The roles, created empty, before anything they will be granted. Each function gets its own role;
 * the state machine one; each pipeline that trains on SageMaker one execution role. Creating them
 * first lets the Keys stack name the exact signing roles in its key policies (KMS refuses a key
 * policy naming a principal that does not exist yet), while each later stack attaches the
 * statements for its own resources, so no stack depends on a later one.
 */
export function Identity({ stack }: StackContext) {
  const account = stack.account;
  // One stage per business unit (stacks/units.ts): this stage's roles serve this unit's pipelines only.
  const unit = deployedUnit();
  checkUnitStage(unit, stack.stage);
  const pipelines = deployedPipelines();

  const functionRoles = {} as Record<FunctionName, iam.Role>;
  for (const name of FUNCTION_NAMES) {
    functionRoles[name] = new iam.Role(stack, `Fn-${name}`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `veritrail ${stack.stage}: Lambda ${name} (own role, least privilege; see docs/deploy.md)`,
    });
  }

  const stateMachineRole = new iam.Role(stack, 'StateMachine', {
    // Confused-deputy guard: only Step Functions acting for this account may assume it.
    assumedBy: new iam.ServicePrincipal('states.amazonaws.com', {
      conditions: { StringEquals: { 'aws:SourceAccount': account } },
    }),
    description: `veritrail ${stack.stage}: training pipeline state machine`,
  });

  const sagemakerRoles = sagemakerExecutionRoles(stack, pipelines);
  // Preprocess's processing jobs, only when the deployment enables them (VERITRAIL_PROCESSING_IMAGE).
  const processingRole = processingJobRole(stack, processingSettings());

  const modelApproval = modelApprovalRole(stack, unit, pipelines);
  // The platform-level view of a stage (docs/units.md "On AWS"): which unit it serves, who approves.
  publish(stack, stack.stage, 'unit', unit.name, 'Business unit this stage serves (VERITRAIL_UNIT)');
  if (unit.approvers.length > 0) {
    publish(
      stack,
      stack.stage,
      'unit-approvers',
      unit.approvers.join(','),
      `Approvers of unit ${unit.name}'s models, as declared in the units file`,
    );
  }
  if (modelApproval) {
    publish(
      stack,
      stack.stage,
      'model-approval-role-arn',
      modelApproval.roleArn,
      `Role the approvers of unit ${unit.name} assume to approve its model versions`,
    );
  }

  removeUnusedSstHandler(stack);
  return { functionRoles, stateMachineRole, sagemakerRoles, processingRole, modelApproval };
}
