/**
 * VPC mode (VERITRAIL_VPC_MODE=isolated, stacks/settings.ts vpcMode): for reviewers who require
 * every function in a private network. A VPC of its own with private isolated subnets in two
 * Availability Zones (no internet gateway, no NAT: nothing leaves except through the endpoints),
 * gateway endpoints for S3 and DynamoDB, interface endpoints for every other AWS API the functions
 * call, and flow logs of all traffic to an encrypted log group.
 */
import { Aws, Fn, type Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { suppressNetworkFindings } from './compliance.js';
import { LOG_RETENTION_DAYS } from './settings.js';

/**
 * The interface endpoints, by the service each function reaches (src/aws): KMS (signing, data key),
 * Step Functions (start, callbacks), EventBridge (lineage events), SageMaker (training jobs, model
 * registry), SSM (parameters), CloudWatch Logs, X-Ray (active tracing sends segments from inside
 * the function's network).
 */
export const INTERFACE_ENDPOINTS = {
  kms: ec2.InterfaceVpcEndpointAwsService.KMS,
  states: ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS,
  events: ec2.InterfaceVpcEndpointAwsService.EVENTBRIDGE,
  sagemaker: ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_API,
  ssm: ec2.InterfaceVpcEndpointAwsService.SSM,
  logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
  xray: ec2.InterfaceVpcEndpointAwsService.XRAY,
} as const;

export interface IsolatedNetwork {
  vpc: ec2.Vpc;
  /** The functions' security group: HTTPS out, nothing in. */
  functions: ec2.SecurityGroup;
  subnets: ec2.SubnetSelection;
}

export function isolatedNetwork(stack: Stack, dataKey: kms.IKey): IsolatedNetwork {
  const vpc = new ec2.Vpc(stack, 'Network', {
    // The region's first two zones, resolved by CloudFormation (Fn::GetAZs): a synth-time lookup would
    // need the account, and offline synthesis has none.
    availabilityZones: [0, 1].map((i) => Fn.select(i, Fn.getAzs())),
    natGateways: 0,
    subnetConfiguration: [{ name: 'functions', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 }],
    // CDK closes the default security group through a custom-resource Lambda; this app deploys no
    // Lambda it does not own. Nothing is placed in the default group (compliance.ts says why).
    restrictDefaultSecurityGroup: false,
    gatewayEndpoints: {
      s3: { service: ec2.GatewayVpcEndpointAwsService.S3 },
      dynamodb: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB },
    },
  });
  const subnets = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };

  const functions = new ec2.SecurityGroup(stack, 'FunctionsSecurityGroup', {
    vpc,
    description: 'veritrail functions: HTTPS to AWS endpoints only',
    allowAllOutbound: false,
  });
  // Subnets without a route out: HTTPS reaches only the endpoints (interface endpoints in the VPC,
  // S3 and DynamoDB through the gateway endpoints' prefix lists, whose ids are not known at synth).
  functions.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'HTTPS to VPC endpoints');
  const endpoints = new ec2.SecurityGroup(stack, 'EndpointsSecurityGroup', {
    vpc,
    description: 'veritrail interface endpoints: HTTPS from the functions only',
    allowAllOutbound: false,
  });
  endpoints.addIngressRule(functions, ec2.Port.tcp(443), 'HTTPS from veritrail functions');
  for (const [id, service] of Object.entries(INTERFACE_ENDPOINTS)) {
    vpc.addInterfaceEndpoint(`Endpoint-${id}`, {
      service,
      subnets,
      securityGroups: [endpoints],
      open: false,
      privateDnsEnabled: true,
    });
  }

  const flowLogs = new logs.LogGroup(stack, 'Logs-network-flows', {
    retention: LOG_RETENTION_DAYS as logs.RetentionDays,
    encryptionKey: dataKey,
  });
  const flowLogsRole = new iam.Role(stack, 'NetworkFlowLogs', {
    assumedBy: new iam.ServicePrincipal('vpc-flow-logs.amazonaws.com', {
      conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
    }),
    description: `veritrail ${stack.stackName}: VPC flow logs delivery`,
  });
  const flowLogsPolicy = new iam.Policy(stack, 'Grants-network-flow-logs', {
    roles: [flowLogsRole],
    statements: [
      new iam.PolicyStatement({
        sid: 'FlowLogStreams',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
        resources: [flowLogs.logGroupArn],
      }),
    ],
  });
  const flowLog = new ec2.CfnFlowLog(stack, 'NetworkFlowLog', {
    resourceId: vpc.vpcId,
    resourceType: 'VPC',
    trafficType: 'ALL',
    logDestinationType: 'cloud-watch-logs',
    logGroupName: flowLogs.logGroupName,
    deliverLogsPermissionArn: flowLogsRole.roleArn,
  });
  flowLog.node.addDependency(flowLogsPolicy);
  suppressNetworkFindings({ vpc: vpc.node.defaultChild as ec2.CfnVPC, flowLogsPolicy });
  return { vpc, functions, subnets };
}
