/**
 * The contract between the emulated-AWS harness (test/aws-e2e/harness) and the IAM replay proxy
 * (test/aws-e2e/iam). The harness provisions what the synthesized templates create on moto_server and
 * hands the proxy a PolicyWorld built from those same templates; every SDK call a Lambda bundle makes
 * goes through the proxy, which names the IAM action(s) it needs, evaluates them against the
 * synthesized identity, key and bucket policies, and forwards allowed calls to moto (or answers them
 * itself where a hook says so).
 */

/** An IAM policy document as CloudFormation writes it, every intrinsic already resolved to strings. */
export interface PolicyDocument {
  Version?: string;
  Statement: Record<string, unknown>[] | Record<string, unknown>;
}

/** One caller: an IAM role (a Lambda function's, the state machine's, a SageMaker execution role). */
export interface Principal {
  /** The access key id the caller signs with; the harness gives each role its own. */
  accessKeyId: string;
  /** arn:aws:iam::<account>:role/<name> */
  roleArn: string;
  /** Every identity policy attached to the role (inline Policies and AWS::IAM::Policy resources). */
  identityPolicies: { name: string; policy: PolicyDocument }[];
  /** A short label for reports ("fn:start", "sagemaker:credit-scoring"). */
  label: string;
}

/** Everything the evaluator needs, from the synthesized templates after provisioning. */
export interface PolicyWorld {
  account: string;
  region: string;
  principals: Principal[];
  /** Bucket name → its bucket policy (absent: no bucket policy). */
  bucketPolicies: Record<string, PolicyDocument>;
  /** Bucket name → default SSE-KMS key ARN (S3 then calls KMS on the caller's behalf). */
  bucketKmsKeys: Record<string, string>;
  /** KMS key ARN → its key policy. Key ids and alias ARNs the code may use map to it via keyIds. */
  keyPolicies: Record<string, PolicyDocument>;
  /** Any identifier a request may carry (key id, key ARN, alias name, alias ARN) → key ARN. */
  keyIds: Record<string, string>;
  /** DynamoDB table name → its SSE key ARN when customer managed. */
  tableKmsKeys: Record<string, string>;
  /** Bucket name → true when its default encryption uses an S3 Bucket Key (KMS encryption context is then the bucket ARN). */
  bucketKeyEnabled?: Record<string, boolean>;
}

/** One authorization decision the proxy took (an API call can need several: tag-on-create, PassRole, SSE-KMS). */
export interface RecordedCall {
  principal: string; // Principal.label, or "unknown:<accessKeyId>"
  service: string; // s3, kms, dynamodb, sagemaker, states, events, ssm, sqs …
  operation: string; // the API operation, e.g. "HeadObject", "PutItem"
  action: string; // the IAM action evaluated, e.g. "s3:GetObject"
  resource: string; // the resource ARN evaluated
  context: Record<string, string | string[]>;
  decision: 'Allowed' | 'ImplicitlyDenied' | 'ExplicitlyDenied';
  /** True for an authorization S3 or SageMaker makes on the caller's behalf (SSE-KMS, PassRole, AddTags). */
  implied: boolean;
  /** Why, in one line, when denied (which policy or missing grant). */
  reason?: string;
}

/** A parsed API request, as hooks see it. */
export interface ApiRequest {
  principal: string;
  service: string;
  operation: string;
  /** JSON body for JSON-protocol services; undefined for S3 REST. */
  input?: Record<string, unknown>;
  /** S3 only. */
  bucket?: string;
  key?: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: Buffer;
}

/** What a hook may answer instead of moto. */
export interface HookResponse {
  status: number;
  headers?: Record<string, string>;
  body: string | Buffer;
}

export interface IamProxy {
  /** http://127.0.0.1:<port>: set as AWS_ENDPOINT_URL of every caller. */
  endpoint: string;
  /** Every authorization decision, in order. */
  calls: RecordedCall[];
  denials(): RecordedCall[];
  /**
   * Hooks run after the IAM decision, only for allowed calls, in registration order; the first one
   * returning a response answers the call (moto is not asked). Used for Step Functions calls (the
   * state machine runs on aws-local-stepfunctions), SageMaker emulation and KMS Sign.
   */
  addHook(hook: (req: ApiRequest) => Promise<HookResponse | undefined> | HookResponse | undefined): void;
  /** Replaces the policy world (after provisioning, or to test a changed template). */
  setWorld(world: PolicyWorld): void;
  close(): Promise<void>;
}

export interface IamProxyOptions {
  /** moto_server's base URL. */
  upstream: string;
  world: PolicyWorld;
  /** true: a denied call gets the AccessDenied answer AWS would give; false: record only. Default true. */
  enforce?: boolean;
  /**
   * Access key ids of the harness itself (provisioning, inspection): their calls are forwarded to moto
   * with no IAM evaluation and are not recorded. Any other key that no principal owns is evaluated as
   * "unknown:<accessKeyId>" with no policy, so it is denied.
   */
  adminAccessKeyIds?: string[];
  /**
   * The state machine ARN a Step Functions task token belongs to (tokens are opaque; the harness
   * issues them). SendTaskSuccess/Failure/Heartbeat are then also allowed by a grant on that state
   * machine, as in AWS; without it only a grant on "*" allows them.
   */
  stateMachineOfTaskToken?: (taskToken: string) => string | undefined;
}

/**
 * One resource of a synthesized CloudFormation template after provisioning, every intrinsic
 * (Ref, Fn::GetAtt, Fn::Join, Fn::Sub, pseudo parameters) resolved to plain JSON by the harness.
 */
export interface ResolvedResource {
  stack: string;
  logicalId: string;
  /** e.g. AWS::IAM::Role */
  type: string;
  properties: Record<string, unknown>;
  /** What Ref returns for it (role name, bucket name, key id, table name …). */
  physicalId: string;
  /** Its ARN when it has one (Fn::GetAtt Arn). */
  arn?: string;
}
