import { Aws, CfnOutput, type Stack } from 'aws-cdk-lib';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import type { Construct } from 'constructs';

/**
 * Every SST v2 stack creates a "CustomResourceHandler" Lambda (nodejs16.x, with the
 * AWSLambdaBasicExecutionRole managed policy) for SST's own custom resources. veritrail uses none of
 * them (no Script, no sites, no bound Config), so it is removed: an unused function on a retired
 * runtime, with a broader role than any of ours, is pure attack surface.
 */
export function removeUnusedSstHandler(stack: Stack): void {
  stack.node.tryRemoveChild('CustomResourceHandler');
}

/** SSM parameter path the CLI reads: `/veritrail/<stage>/<name>`. */
export function parameterPath(stage: string, name: string): string {
  return `/veritrail/${stage}/${name}`;
}

/**
 * Publishes a value both as a stack output and as an SSM parameter, so the CLI finds the deployed
 * resources by stage (`veritrail start --stage <stage>`) without anyone typing an ARN.
 */
export function publish(
  scope: Construct,
  stage: string,
  name: string,
  value: string,
  description: string,
): void {
  const id = name.replace(/(^|-)([a-z])/g, (_m, _d: string, c: string) => c.toUpperCase());
  new ssm.StringParameter(scope, `Param${id}`, {
    parameterName: parameterPath(stage, name),
    stringValue: value,
    description,
  });
  new CfnOutput(scope, `Output${id}`, { value, description }).overrideLogicalId(id);
}

/** The CloudTrail trail recording every object-level read and write of the three data buckets. */
export function dataAccessTrailName(app: { logicalPrefixedName(name: string): string }): string {
  return app.logicalPrefixedName('data-access');
}

/** Its ARN, known before the trail exists (the data key policy in the Keys stack names it). */
export function dataAccessTrailArn(app: { logicalPrefixedName(name: string): string }): string {
  return `arn:${Aws.PARTITION}:cloudtrail:${Aws.REGION}:${Aws.ACCOUNT_ID}:trail/${dataAccessTrailName(app)}`;
}
