/**
 * The findings of the compliance rule packs (cdk-nag: AwsSolutions, HIPAA.Security, NIST.800.53.R5,
 * PCI.DSS.321) that are design choices or false positives here, each suppressed on the resource it
 * concerns with the reason that holds for that resource. Wildcard findings (AwsSolutions-IAM5) are
 * suppressed per resource pattern (`appliesTo`), never for a whole statement or stack, so a new
 * wildcard fails test/infra/compliance.test.ts until someone writes down why it is needed.
 * docs/deploy.md "For your security review" prints the same list.
 */

import { type NagPackSuppression, NagSuppressions } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { PREPROCESS_JOB_NAME_PREFIX } from '../src/core/processing.js';
import { ACCESS, type FunctionAccess, type FunctionName } from './access.js';

/** The packs applied by the infra test; a rule id is `<pack>-<rule>`. */
export const PACKS = ['AwsSolutions', 'HIPAA.Security', 'NIST.800.53.R5', 'PCI.DSS.321'] as const;

/** One suppression of the same rule in every pack that has it. */
function inPacks(
  rule: string,
  packs: readonly (typeof PACKS)[number][],
  reason: string,
): NagPackSuppression[] {
  return packs.map((pack) => ({ id: `${pack}-${rule}`, reason }));
}

const HNP = ['HIPAA.Security', 'NIST.800.53.R5', 'PCI.DSS.321'] as const;
const HN = ['HIPAA.Security', 'NIST.800.53.R5'] as const;

/** A finding string of IAM5 matched by a regular expression over the CDK logical id. */
const res = (pattern: string) => ({ regex: `/^Resource::${pattern}$/` });

const INLINE_POLICY_REASON =
  'Each role has exactly one policy of its own, generated from its row of grants (stacks/access.ts and ' +
  'the stack that creates the role). A customer-managed policy could be attached to other roles, which ' +
  'is what this layout prevents; no role has a managed policy at all (test/infra/stacks.test.ts).';

export const inlinePolicy = (): NagPackSuppression[] =>
  inPacks('IAMNoInlinePolicy', HNP, INLINE_POLICY_REASON);

/** Storage: data buckets, the trail bucket. */
export function suppressStorageFindings(b: {
  landing: IConstruct;
  artifacts: IConstruct;
  audit: IConstruct;
  trailBucket: IConstruct;
  trailLogsPolicy: IConstruct;
  replicationPolicy?: IConstruct | undefined;
}): void {
  const recordedByTrail =
    'Every object-level read and write of this bucket is recorded by the data-access CloudTrail trail ' +
    '(S3 data events, log file validation on, delivered to the Object Lock trail bucket and to an ' +
    'encrypted log group). S3 server access logs are best-effort and cannot be delivered to an Object ' +
    'Lock bucket, so the trail is the record.';
  for (const bucket of [b.landing, b.artifacts, b.audit]) {
    NagSuppressions.addResourceSuppressions(bucket, [
      { id: 'AwsSolutions-S1', reason: recordedByTrail },
      ...inPacks('S3BucketLoggingEnabled', HNP, recordedByTrail),
    ]);
  }
  NagSuppressions.addResourceSuppressions(b.trailBucket, [
    ...[
      { id: 'AwsSolutions-S1' },
      ...inPacks('S3BucketLoggingEnabled', HNP, '').map(({ id }) => ({ id })),
    ].map(({ id }) => ({
      id,
      reason:
        'This is the data-access trail’s destination: recording its own reads into itself would loop. ' +
        'Its objects are Object Lock COMPLIANCE for the audit retention, and CloudTrail log file ' +
        'validation (signed digest files) detects any change or removal of a log file.',
    })),
    ...inPacks(
      'S3BucketReplicationEnabled',
      HNP,
      'CloudTrail log files are locked (COMPLIANCE) and validated by signed digests; the copy in ' +
        'CloudWatch Logs is a second store. Cross-region archiving of trails is the account’s log-archive ' +
        'practice (an organization trail), outside this app.',
    ),
  ]);
  NagSuppressions.addResourceSuppressions(
    b.landing,
    inPacks(
      'S3BucketReplicationEnabled',
      HNP,
      'The landing bucket is an inbox: a run pins the uploaded version by VersionId and digest, and what ' +
        'the run used is kept content-addressed in the artifacts bucket and named in the audit log.',
    ),
  );
  NagSuppressions.addResourceSuppressions(
    b.artifacts,
    inPacks(
      'S3BucketReplicationEnabled',
      HNP,
      'Artifacts are content-addressed (sha256/<hex>) and every digest is in the audit log, which is the ' +
        'replicated record: a lost or altered artifact is detected by `veritrail verify`, never hidden. ' +
        'Versioning and the no-delete bucket policy protect them in the region.',
    ),
  );
  if (!b.replicationPolicy) {
    NagSuppressions.addResourceSuppressions(
      b.audit,
      inPacks(
        'S3BucketReplicationEnabled',
        HNP,
        'Second-region replication of the audit log is an option, off in this deployment: set ' +
          'VERITRAIL_AUDIT_REPLICA_BUCKET_ARN and VERITRAIL_AUDIT_REPLICA_KEY_ARN (docs/deploy.md) and the ' +
          'rule passes. In the region the entries are Object Lock COMPLIANCE.',
      ),
    );
  } else {
    NagSuppressions.addResourceSuppressions(b.replicationPolicy, [
      ...inlinePolicy(),
      {
        id: 'AwsSolutions-IAM5',
        reason:
          'S3 Replication reads every version of every audit entry and writes each replica: the object ' +
          'ARNs of the two buckets are the narrowest resources (S3 User Guide, replication permissions).',
        appliesTo: [res('<auditBucket[0-9A-F]{8}\\.Arn>/\\*'), res('arn:aws[a-z-]*:s3:::[a-z0-9.-]+/\\*')],
      },
    ]);
  }
  NagSuppressions.addResourceSuppressions(b.trailLogsPolicy, inlinePolicy());
}

export function suppressDatabaseFindings(d: { backupPolicy: IConstruct }): void {
  NagSuppressions.addResourceSuppressions(d.backupPolicy, [
    ...inlinePolicy(),
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'AWS Backup describes and expires the backups of this table only; a backup ARN ends with an id ' +
        'AWS assigns when the backup is taken, so `<table>/backup/*` is the narrowest resource.',
      appliesTo: [res('<runsTable[0-9A-F]{8}\\.Arn>/backup/\\*')],
    },
  ]);
}

/** The X-Ray statement Lambda's active tracing adds to each function role's default policy. */
export function suppressTracingPolicy(role: IConstruct): void {
  const policy = role.node.tryFindChild('DefaultPolicy');
  if (!policy) return;
  NagSuppressions.addResourceSuppressions(
    policy,
    [
      ...inlinePolicy(),
      {
        id: 'AwsSolutions-IAM5',
        reason:
          'xray:PutTraceSegments and xray:PutTelemetryRecords (active tracing) accept no resource ' +
          '(Service Authorization Reference, AWS X-Ray): "*" is the only value.',
        appliesTo: ['Resource::*'],
      },
    ],
    true,
  );
}

/** The IAM5 patterns a function's grants produce, each with why it cannot be narrower. */
function wildcardSuppressions(access: FunctionAccess, processing: boolean): NagPackSuppression[] {
  const out: { appliesTo: (string | ReturnType<typeof res>)[]; reason: string }[] = [];
  if (access.auditAppend) {
    out.push({
      appliesTo: [res('<auditBucket[0-9A-F]{8}\\.Arn>/\\*')],
      reason:
        'Audit entries are appended under keys derived from the log index and the run: the function ' +
        'cannot know them in advance. Deletion and retention changes are denied to everyone by the bucket ' +
        'policy, and every entry is Object Lock COMPLIANCE.',
    });
  }
  const prefixes = [...new Set([...(access.artifactsRead ?? []), ...(access.artifactsWrite ?? [])])];
  if (prefixes.length > 0) {
    out.push({
      appliesTo: prefixes.map((p) => res(`<artifactsBucket[0-9A-F]{8}\\.Arn>/${p.replace(/\//g, '\\/')}\\*`)),
      reason:
        'Artifacts are content-addressed (`sha256/<hex>`) or written by SageMaker under `training/` with a ' +
        'job name chosen at run time: the prefix is the narrowest resource, and only the prefixes of the ' +
        'function’s row in stacks/access.ts are granted.',
    });
  }
  if (access.landingRead) {
    out.push({
      appliesTo: [res('<landingBucket[0-9A-F]{8}\\.Arn>/[a-z0-9/_.-]+\\*')],
      reason:
        'Datasets are uploaded under each deployed pipeline’s landing prefix with names chosen by the ' +
        'uploader: read access is limited to exactly those prefixes (and listing to them by s3:prefix).',
    });
  }
  if (access.createTrainingJob || access.describeTrainingJob) {
    out.push({
      appliesTo: [res('arn:<AWS::Partition>:sagemaker:[a-z0-9-]+:\\d{12}:training-job/vt-\\*')],
      reason:
        'Training job names are `vt-<run>` chosen per run (src/core/rules.ts TRAINING_JOB_NAME_PREFIX): ' +
        'only veritrail’s own jobs, with encryption conditions on CreateTrainingJob.',
    });
  }
  if (access.processingJobs && processing) {
    const rehashes = access.processingJobs.includes(PREPROCESS_JOB_NAME_PREFIX);
    out.push({
      appliesTo: [
        ...access.processingJobs.map((prefix) =>
          res(`arn:<AWS::Partition>:sagemaker:[a-z0-9-]+:\\d{12}:processing-job/${prefix}\\*`),
        ),
        res('<artifactsBucket[0-9A-F]{8}\\.Arn>/processing-code\\/\\*'),
        res('<artifactsBucket[0-9A-F]{8}\\.Arn>/processing\\/\\*'),
        ...(rehashes ? [res('<artifactsBucket[0-9A-F]{8}\\.Arn>/processing-verify\\/\\*')] : []),
      ],
      reason:
        'Processing jobs are named `<prefix><run>` per run (`veritrail-pre-` for Preprocess, `veritrail-evs-` and ' +
        '`veritrail-evc-` for Evaluate: src/core/processing.ts), with ' +
        'network isolation, inter-container encryption and the data key required; the job program is stored ' +
        'under processing-code/ by its content address, each job’s result under processing/<job>/' +
        (rehashes
          ? ' and Preprocess’s checkpoint of its re-hash of a job’s output at processing-verify/<job>.json.'
          : '.'),
    });
  }
  if (access.batchTransform) {
    out.push({
      appliesTo: [
        res('arn:<AWS::Partition>:sagemaker:[a-z0-9-]+:\\d{12}:model/vts-\\*'),
        res('arn:<AWS::Partition>:sagemaker:[a-z0-9-]+:\\d{12}:transform-job/vts-\\*'),
      ],
      reason:
        'Scoring models and Batch Transform jobs are named `vts-<run>` per run (src/core/rules.ts ' +
        'SCORING_JOB_NAME_PREFIX): only veritrail’s own, with network isolation and the data key required.',
    });
  }
  if (access.registerModel) {
    out.push({
      appliesTo: [
        res('arn:<AWS::Partition>:sagemaker:[a-z0-9-]+:\\d{12}:model-package/veritrail-[A-Za-z0-9-]+/\\*'),
      ],
      reason:
        'Model package versions are numbered by SageMaker when registered (`model-package/<group>/<n>`): ' +
        'only the versions of this stage’s own groups, named exactly (`veritrail-<pipeline>` for each of ' +
        'its unit’s pipelines).',
    });
  }
  if (access.taskCallback) {
    out.push({
      appliesTo: ['Resource::*'],
      reason:
        'states:SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat list no resource type (Service ' +
        'Authorization Reference, AWS Step Functions): "*" is the only value. The task token itself names ' +
        'the one task it resolves.',
    });
  }
  if (access.describeExecutions) {
    out.push({
      appliesTo: [res('arn:<AWS::Partition>:states:[a-z0-9-]+:\\d{12}:execution:[A-Za-z0-9-]+:\\*')],
      reason:
        'Execution names are chosen per run: DescribeExecution is limited to the executions of this ' +
        'app’s own state machine.',
    });
  }
  return out.map((o) => ({ id: 'AwsSolutions-IAM5', reason: o.reason, appliesTo: o.appliesTo }));
}

/** AwsSolutions-L1 (latest runtime) on every function: the runtime is pinned on purpose. */
const RUNTIME_PINNED: NagPackSuppression = {
  id: 'AwsSolutions-L1',
  reason:
    'nodejs22.x is the runtime veritrail targets and tests on (package.json node@22, ' +
    'test/infra/runtimes.test.ts checks AWS still accepts it); moving to a newer runtime is a tested ' +
    'change of its own, not a deploy setting.',
};

/**
 * A Lambda function and its grants policy. `asyncDestination` names the on-failure queue of the
 * functions invoked asynchronously (EventBridge); the others are invoked synchronously by the state
 * machine. `inVpc` is VERITRAIL_VPC_MODE.
 */
export function suppressFunctionFindings(
  name: FunctionName,
  fn: IConstruct,
  grants: IConstruct,
  options: { inVpc: boolean; processing?: boolean },
): void {
  const asynchronous = name === 'start' || name === 'training-callback' || name === 'reconcile';
  const suppressions: NagPackSuppression[] = [
    RUNTIME_PINNED,
    ...inPacks(
      'LambdaDLQ',
      HN,
      asynchronous
        ? 'Invoked asynchronously by EventBridge; a failed invocation goes, with its error, to the ' +
            'function’s on-failure destination, the SQS queue its rule also dead-letters into (Triggers ' +
            'stack, EventInvokeConfig): a destination supersedes a dead-letter queue and carries more.'
        : 'Invoked synchronously by the state machine (lambda:invoke): a dead-letter queue applies to ' +
            'asynchronous invocations only. Failures are retried by the ASL and recorded as a FAILED run ' +
            'by RecordFailure.',
    ),
  ];
  if (!options.inVpc) {
    suppressions.push(
      ...inPacks(
        'LambdaInsideVPC',
        HNP,
        'The function reaches only AWS APIs (S3, DynamoDB, KMS, Step Functions, SageMaker, EventBridge) ' +
          'over TLS with SigV4 and no private network resource. VPC mode is an option for reviewers who ' +
          'require it: VERITRAIL_VPC_MODE=isolated puts every function in private subnets with VPC ' +
          'endpoints, and the rule passes.',
      ),
    );
  }
  NagSuppressions.addResourceSuppressions(fn, suppressions);
  const access = ACCESS[name];
  const vpc: NagPackSuppression[] = options.inVpc
    ? [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'VPC mode: Lambda creates and deletes the function’s network interfaces, whose ids do not exist ' +
            'before; creation is limited to the app’s isolated subnets and the functions’ security group, ' +
            'and ec2:DescribeNetworkInterfaces/DescribeSubnets accept no resource.',
          appliesTo: [
            res('arn:<AWS::Partition>:ec2:[a-z0-9-]+:\\d{12}:network-interface/\\*'),
            'Resource::*',
          ],
        },
      ]
    : [];
  NagSuppressions.addResourceSuppressions(grants, [
    ...inlinePolicy(),
    ...wildcardSuppressions(access, options.processing === true),
    ...vpc,
  ]);
}

/**
 * The state machine's grants: every version of the task functions, the HashBatches Distributed
 * Map's listing, results and child executions, log delivery, tracing.
 */
export function suppressStateMachineFindings(grants: IConstruct): void {
  NagSuppressions.addResourceSuppressions(grants, [
    ...inlinePolicy(),
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'A Lambda task may be invoked by qualified ARN (`<function>:<version|alias>`), which Step Functions ' +
        'authorizes against `<function>:*`; only the task functions of this app are named.',
      appliesTo: [res('<[a-z]+[0-9A-F]{8}\\.Arn>:\\*')],
    },
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'The HashBatches Distributed Map reads the dataset listing ListDataset wrote for the run, named by its ' +
        'content digest (`listings/<sha256>.json`) at run time: the prefix is the narrowest resource, and the ' +
        'role may read nothing else of the bucket.',
      appliesTo: [res('<artifactsBucket[0-9A-F]{8}\\.Arn>/listings/\\*')],
    },
    {
      id: 'AwsSolutions-IAM5',
      reason:
        "The HashBatches ResultWriter writes each Map Run's results under `map-results/<runId>/<map run id>/`, " +
        'the run and the id Step Functions assigns known only at run time: the prefix is the narrowest ' +
        'resource, and the role may write nothing else of any bucket.',
      appliesTo: [res('<artifactsBucket[0-9A-F]{8}\\.Arn>/map-results/\\*')],
    },
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'Step Functions names each Distributed Map child execution `<state machine>/<Map label>:<id>` with an ' +
        'id it assigns (Step Functions Developer Guide, "IAM policies for using Distributed Map states"): ' +
        'DescribeExecution and StopExecution are limited to the children of this state machine’s HashBatches Map.',
      appliesTo: [
        res('arn:<AWS::Partition>:states:[a-z0-9-]+:\\d{12}:execution:[A-Za-z0-9-]+/HashBatches:\\*'),
      ],
    },
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'CloudWatch Logs log delivery (logs:*LogDelivery*, PutResourcePolicy, Describe*) and X-Ray ' +
        'accept no resource: Step Functions Developer Guide, "Logging using CloudWatch Logs", requires "*".',
      appliesTo: ['Resource::*'],
    },
  ]);
}

/** A SageMaker execution role's grants. */
export function suppressSageMakerRoleFindings(grants: IConstruct, pipeline: string): void {
  NagSuppressions.addResourceSuppressions(grants, [
    ...inlinePolicy(),
    {
      id: 'AwsSolutions-IAM5',
      reason:
        `The training job of pipeline ${pipeline} reads its content-addressed inputs (sha256/<hex>, chosen ` +
        `per run) and writes under its own training/${pipeline}/ prefix, job names chosen per run; its ` +
        `Batch Transform scoring job reads the model there and writes under scoring/${pipeline}/.`,
      appliesTo: [
        res('<artifactsBucket[0-9A-F]{8}\\.Arn>/sha256/\\*'),
        res(`<artifactsBucket[0-9A-F]{8}\\.Arn>/training/${pipeline}/\\*`),
        res(`<artifactsBucket[0-9A-F]{8}\\.Arn>/scoring/${pipeline}/\\*`),
      ],
    },
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'SageMaker names each job’s log streams in /aws/sagemaker/TrainingJobs (SageMaker Developer Guide, ' +
        '"CloudWatch Logs for SageMaker"): the log group’s streams are the narrowest resource.',
      appliesTo: [
        res('arn:<AWS::Partition>:logs:[a-z0-9-]+:\\d{12}:log-group:/aws/sagemaker/TrainingJobs:\\*'),
        res('arn:<AWS::Partition>:logs:[a-z0-9-]+:\\d{12}:log-group:/aws/sagemaker/TransformJobs:\\*'),
      ],
    },
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'ecr:GetAuthorizationToken, cloudwatch:PutMetricData (namespace-conditioned to /aws/sagemaker/*) and ' +
        'the EC2 Describe* calls of VPC mode accept no resource (Service Authorization Reference).',
      appliesTo: ['Resource::*'],
    },
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'In VPC mode SageMaker creates the job’s network interfaces, whose ids do not exist before; ' +
        'creation is limited to the definition’s own subnets and security groups.',
      appliesTo: [res('arn:<AWS::Partition>:ec2:[a-z0-9-]+:\\d{12}:network-interface/\\*')],
    },
  ]);
}

/** The processing role's grants (stacks/sagemaker-roles.ts grantProcessingRole). */
export function suppressProcessingRoleFindings(grants: IConstruct): void {
  NagSuppressions.addResourceSuppressions(grants, [
    ...inlinePolicy(),
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'A Preprocess processing job reads the raw files under the deployed pipelines’ landing prefixes ' +
        '(object keys chosen by uploaders), its content-addressed job config (sha256/<hex>) and program ' +
        '(processing-code/sha256/<hex>/), and writes the processed files at their content addresses and ' +
        'its result under processing/<job>/, job names chosen per run. The Preprocess step re-hashes every ' +
        'object it wrote before signing anything about them. Evaluate’s count job also reads the ' +
        'predictions a Batch Transform job wrote under scoring/<pipeline>/<job>/ (names chosen by SageMaker).',
      appliesTo: [
        res('<landingBucket[0-9A-F]{8}\\.Arn>/.+\\*'),
        res('<artifactsBucket[0-9A-F]{8}\\.Arn>/sha256/\\*'),
        res('<artifactsBucket[0-9A-F]{8}\\.Arn>/scoring/\\*'),
        res('<artifactsBucket[0-9A-F]{8}\\.Arn>/processing-code/\\*'),
        res('<artifactsBucket[0-9A-F]{8}\\.Arn>/processing/\\*'),
      ],
    },
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'SageMaker names each job’s log streams in /aws/sagemaker/ProcessingJobs (SageMaker Developer Guide, ' +
        '"CloudWatch Logs for SageMaker"): the log group’s streams are the narrowest resource.',
      appliesTo: [
        res('arn:<AWS::Partition>:logs:[a-z0-9-]+:\\d{12}:log-group:/aws/sagemaker/ProcessingJobs:\\*'),
      ],
    },
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'ecr:GetAuthorizationToken and cloudwatch:PutMetricData (namespace-conditioned to /aws/sagemaker/*) ' +
        'accept no resource (Service Authorization Reference).',
      appliesTo: ['Resource::*'],
    },
  ]);
}

/** Triggers: the dead-letter queues, the on-failure grants. */
export function suppressTriggerFindings(t: { queues: IConstruct[]; onFailurePolicies: IConstruct[] }): void {
  for (const queue of t.queues) {
    NagSuppressions.addResourceSuppressions(queue, [
      {
        id: 'AwsSolutions-SQS3',
        reason:
          'This queue is itself the dead-letter queue and on-failure destination of a trigger; ' +
          'messages stay 14 days for an operator to inspect and redrive.',
      },
    ]);
  }
  for (const policy of t.onFailurePolicies) NagSuppressions.addResourceSuppressions(policy, inlinePolicy());
}

/** VPC mode: the default security group, the flow logs' grants. */
export function suppressNetworkFindings(n: { vpc: IConstruct; flowLogsPolicy: IConstruct }): void {
  NagSuppressions.addResourceSuppressions(n.flowLogsPolicy, inlinePolicy());
  NagSuppressions.addResourceSuppressions(
    n.vpc,
    inPacks(
      'VPCDefaultSecurityGroupClosed',
      HNP,
      'Nothing is placed in the VPC’s default security group: the functions and the endpoints have ' +
        'groups of their own (HTTPS only). CloudFormation cannot revoke the default group’s rules; CDK ' +
        'does it with a custom-resource Lambda, which this app does not deploy. docs/deploy.md gives the ' +
        'one command that revokes them after the first deploy.',
    ),
  );
}

/** The grants of the GitHub Actions deploy role (stacks/Deploy.ts), what `sst deploy` does as its caller. */
export function suppressDeployRoleFindings(d: { grants: IConstruct }): void {
  NagSuppressions.addResourceSuppressions(d.grants, [
    ...inlinePolicy(),
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'A stack ARN ends with the id CloudFormation assigns when it creates the stack (`stack/<name>/<id>`, ' +
        'Service Authorization Reference, AWS CloudFormation): the stack name is the narrowest resource. Named: ' +
        'this app’s stacks at this stage (create and update only with the CDK execution role) and, to read ' +
        'their status only, the CDK and SST bootstrap stacks.',
      appliesTo: [
        res(
          'arn:<AWS::Partition>:cloudformation:<AWS::Region>:<AWS::AccountId>:stack/(CDKToolkit|SSTBootstrap|[A-Za-z0-9-]+-veritrail-[A-Za-z]+)/\\*',
        ),
      ],
    },
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'CloudFormation reads each stack template from the CDK assets bucket with the caller’s permissions; ' +
        'templates are named by their content hash at synth time, so the `.json` objects of this account’s ' +
        'bucket (s3:ResourceAccount) are the narrowest resource. Asset zips (function code) are not readable.',
      appliesTo: [
        res('arn:<AWS::Partition>:s3:::cdk-[A-Za-z0-9_-]+-assets-<AWS::AccountId>-<AWS::Region>/\\*\\.json'),
      ],
    },
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'cloudformation:ListImports lists no resource type (Service Authorization Reference, AWS ' +
        'CloudFormation): "*" is the only value. It only reads which stacks import an export SST is about to drop.',
      appliesTo: ['Resource::*'],
    },
  ]);
}

/** The auditor's read-only role (stacks/Auditor.ts). */
export function suppressAuditorFindings(policy: IConstruct): void {
  NagSuppressions.addResourceSuppressions(policy, [
    ...inlinePolicy(),
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'An auditor verifies any run of the stage, so reads every content-addressed artifact, every audit-log ' +
        'object and every pinned raw-data version: object reads (GetObject, GetObjectVersion) only, on the ' +
        "stage's three buckets only; no write, no delete, no other bucket.",
      appliesTo: [
        res('<(artifacts|audit|landing)Bucket[0-9A-F]{8}\\.Arn>/\\*'),
        res('arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/veritrail/[A-Za-z0-9-]+/\\*'),
      ],
    },
  ]);
}

/**
 * The Witness stack (stacks/Witness.ts): its function, its grants, its public function URL's
 * resource policy, its table.
 */
export function suppressWitnessFindings(w: {
  fn: IConstruct;
  grants: IConstruct;
  role: IConstruct;
  table: IConstruct;
}): void {
  NagSuppressions.addResourceSuppressions(w.fn, [
    RUNTIME_PINNED,
    ...inPacks(
      'LambdaDLQ',
      HN,
      'Invoked synchronously only, through its function URL (the log waits for the cosignature) and by ' +
        'CloudFormation for its vkey: a dead-letter queue applies to asynchronous invocations only. A log ' +
        'whose request fails asks again at its next checkpoint.',
    ),
    ...inPacks(
      'LambdaInsideVPC',
      HNP,
      'A tlog-witness is a public HTTPS endpoint by design (its function URL); behind it the function ' +
        'reaches only KMS and DynamoDB over TLS with SigV4, and no private network resource. A VPC would ' +
        'add no boundary the function URL does not already cross.',
    ),
  ]);
  // CDK puts the NONE function URL's two resource-policy statements under the function.
  for (const id of ['invoke-function-url', 'invoke-function']) {
    const permission = w.fn.node.tryFindChild(id);
    if (!permission) continue;
    NagSuppressions.addResourceSuppressions(
      permission,
      inPacks(
        'LambdaFunctionPublicAccessProhibited',
        HNP,
        'The witness is public as c2sp.org/tlog-witness intends ("no authentication of requests beyond the ' +
          'validation of the signature on the checkpoint"): it cosigns only checkpoints signed by the log ' +
          'key it trusts and consistent with what it cosigned before, so a caller without that key can ' +
          'change nothing; reserved concurrency bounds what a flood of requests can cost. Invocation is ' +
          'allowed only through the URL (lambda:InvokedViaFunctionUrl).',
      ),
    );
  }
  NagSuppressions.addResourceSuppressions(w.grants, inlinePolicy());
  suppressTracingPolicy(w.role);
  NagSuppressions.addResourceSuppressions(
    w.table,
    inPacks(
      'DynamoDBInBackupPlan',
      HN,
      'A witness must never be rolled back: restored from a backup it would cosign a fork of anything the ' +
        'log signed since that backup. Deletion protection, retention on removal and point-in-time ' +
        'recovery keep the table; a witness whose state is lost retires its key and starts as a new ' +
        'witness (docs/audit-log.md, "A witness on AWS").',
    ),
    true,
  );
}
