/**
 * One IAM decision with @cloud-copilot/iam-simulate: identity policies of the caller's role, plus the
 * resource policy AWS consults for the resource (bucket policy for S3, key policy for KMS).
 *
 * The evaluator's own service rules do the cross-policy logic:
 * - same-account S3: an Allow in the identity policy or in the bucket policy suffices; an explicit Deny
 *   in either wins (DefaultServiceAuthorizer).
 * - KMS keys: the key policy must allow the principal itself, or allow the account root ("enable IAM
 *   policies") and then an identity policy must allow too; an explicit Deny anywhere wins
 *   (KmsServiceAuthorizer: `serviceTrustsPrincipalAccount` trusts IAM only through account-level key
 *   policy statements). Tests in rules.test.ts pin both behaviours.
 */
import { getDenialReasons, type RequestDenial, runSimulation } from '@cloud-copilot/iam-simulate';
import type { Context, Requirement } from './authz.js';
import type { PolicyDocument, PolicyWorld, Principal, RecordedCall } from './types.js';

export type Decision = Pick<RecordedCall, 'decision' | 'reason'>;

/**
 * The ARN of the caller's assumed-role session, the principal AWS evaluates for a Lambda function or
 * a SageMaker job (arn:aws:sts::<account>:assumed-role/<role name>/<session>). Resource policies that
 * name the role ARN match it, as in AWS; aws:PrincipalArn is the role ARN
 * (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-principalarn).
 */
export function sessionArn(principal: Principal, account: string): string {
  const roleName = principal.roleArn.split('/').pop() ?? principal.roleArn;
  const session = principal.label.replace(/[^\w+=,.@-]/g, '-').slice(0, 64) || 'session';
  return `arn:aws:sts::${account}:assumed-role/${roleName}/${session}`;
}

/** The key policy AWS gives a key created without one: the account root, so IAM policies decide. */
export function defaultKeyPolicy(account: string): PolicyDocument {
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'Enable IAM User Permissions',
        Effect: 'Allow',
        Principal: { AWS: `arn:aws:iam::${account}:root` },
        Action: 'kms:*',
        Resource: '*',
      },
    ],
  };
}

function resourcePolicyFor(
  world: PolicyWorld,
  resource: string,
): { kind: string; policy: PolicyDocument } | undefined {
  const s3 = /^arn:aws:s3:::([^/]+)/.exec(resource);
  if (s3) {
    const policy = world.bucketPolicies[s3[1] as string];
    return policy ? { kind: `bucket policy of ${s3[1]}`, policy } : undefined;
  }
  if (/^arn:aws:kms:[^:]*:[^:]*:key\//.test(resource)) {
    return {
      kind: `key policy of ${resource}`,
      policy: world.keyPolicies[resource] ?? defaultKeyPolicy(world.account),
    };
  }
  return undefined;
}

/** Global context keys AWS sets on every request of a role session. */
function globalContext(world: PolicyWorld, principal: Principal | undefined): Context {
  const now = new Date();
  const c: Context = {
    // The functions reach AWS over HTTPS (the SDK's default); only the hop to this proxy is plain
    // HTTP, so policies see the request as AWS would: aws:SecureTransport true.
    'aws:SecureTransport': 'true',
    'aws:RequestedRegion': world.region,
    'aws:CurrentTime': now.toISOString(),
    'aws:EpochTime': String(Math.floor(now.getTime() / 1000)),
    'aws:ViaAWSService': 'false',
  };
  if (principal) {
    c['aws:PrincipalArn'] = principal.roleArn;
    c['aws:PrincipalAccount'] = world.account;
    c['aws:PrincipalType'] = 'AssumedRole';
  }
  return c;
}

function describeDenial(d: RequestDenial, kind: string | undefined): string {
  const where =
    d.policyType === 'identity'
      ? 'identity policy'
      : d.policyType === 'resource'
        ? (kind ?? 'resource policy')
        : d.policyType;
  if (d.denialType === 'Explicit') {
    const id = 'policyIdentifier' in d && d.policyIdentifier ? ` ${d.policyIdentifier}` : '';
    const sid = d.statementId ? ` (Sid ${d.statementId})` : ` (statement ${d.statementIndex})`;
    return `explicit Deny in ${where}${id}${sid}`;
  }
  return `no Allow in ${where}`;
}

/** IAM ARN pattern matching: `*` any run of characters, `?` one character (case-sensitive). */
export function arnPatternMatches(pattern: string, arn: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(arn);
}

/** Statements whose Resource covers `scope` are widened to "*" so that they apply to a "*" request. */
function widenToScope(policy: PolicyDocument, scope: string): PolicyDocument {
  const statements = [policy.Statement].flat().map((s) => {
    const resources = [s.Resource].flat().filter((r): r is string => typeof r === 'string');
    return resources.some((r) => arnPatternMatches(r, scope)) ? { ...s, Resource: '*' } : s;
  });
  return { ...policy, Statement: statements };
}

/** Evaluates one requirement for a caller; an unknown caller has no policy, so it is denied. */
export async function evaluate(
  world: PolicyWorld,
  principal: Principal | undefined,
  r: Requirement,
): Promise<Decision> {
  if (!principal)
    return {
      decision: 'ImplicitlyDenied',
      reason: 'the access key belongs to no principal of the policy world',
    };
  const rp = resourcePolicyFor(world, r.resource);
  const result = await runSimulation(
    {
      request: {
        principal: sessionArn(principal, world.account),
        action: r.action,
        resource: { resource: r.resource, accountId: world.account },
        contextVariables: { ...globalContext(world, principal), ...r.context },
      },
      identityPolicies: principal.identityPolicies.map((p) => ({
        name: p.name,
        policy: r.scope ? widenToScope(p.policy, r.scope) : p.policy,
      })),
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(rp ? { resourcePolicy: rp.policy } : {}),
    },
    {},
  );
  if (result.resultType === 'error') {
    return {
      decision: 'ImplicitlyDenied',
      reason: `the simulator refused the request: ${result.errors.message}`,
    };
  }
  const decision = result.overallResult;
  if (decision === 'Allowed') return { decision };
  const analysis = result.resultType === 'single' ? result.result : result.results[0];
  const reasons = analysis ? getDenialReasons(analysis.analysis).map((d) => describeDenial(d, rp?.kind)) : [];
  const ignored = analysis?.ignoredContextKeys?.filter((k) => !k.startsWith('aws:')) ?? [];
  let reason = reasons.length > 0 ? [...new Set(reasons)].join('; ') : 'no statement allows it';
  if (rp && r.resource.includes(':kms:') && decision === 'ImplicitlyDenied')
    reason += ' (a KMS key policy must allow the principal, or the account root and then an identity policy)';
  if (ignored.length > 0)
    reason += `; context keys the SAR does not define for ${r.action} were ignored: ${ignored.join(', ')}`;
  return { decision, reason };
}
