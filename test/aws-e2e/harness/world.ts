/**
 * The PolicyWorld (iam/types.ts) from the provisioned, resolved resources: one principal per IAM
 * role (identity policies = its inline Policies plus every AWS::IAM::Policy naming it), bucket
 * policies and default SSE-KMS keys, key policies and every identifier of each key, table keys.
 * Each role gets its own access key id, so the proxy knows who signs each call.
 */
import type { PolicyDocument, PolicyWorld, Principal } from '../iam/types.js';
import type { ResolvedResource } from './resolve.js';

export interface RoleKeys {
  /** Role ARN → its credentials. */
  byRole: Map<string, { accessKeyId: string; secretAccessKey: string; label: string }>;
}

/** A label per role: "fn:<handler>" for a function's role, "sagemaker:<pipeline>", "states", else the logical id. */
export function roleLabels(resources: ResolvedResource[]): Map<string, string> {
  const labels = new Map<string, string>();
  for (const fn of resources.filter((r) => r.type === 'AWS::Lambda::Function')) {
    const p = fn.properties as { Role: string; Handler: string };
    labels.set(p.Role, `fn:${p.Handler.replace(/\.[^.]+$/, '').replace(/^.*\//, '')}`);
  }
  for (const sm of resources.filter((r) => r.type === 'AWS::StepFunctions::StateMachine'))
    labels.set(String((sm.properties as { RoleArn: string }).RoleArn), 'states');
  for (const role of resources.filter((r) => r.type === 'AWS::IAM::Role')) {
    if (!role.arn || labels.has(role.arn)) continue;
    const m = /^SageMaker(.+?)[A-F0-9]{8}$/.exec(role.logicalId);
    labels.set(role.arn, m?.[1] ? `sagemaker:${m[1]}` : role.logicalId);
  }
  return labels;
}

export function accessKeysFor(resources: ResolvedResource[]): RoleKeys {
  const labels = roleLabels(resources);
  const byRole = new Map<string, { accessKeyId: string; secretAccessKey: string; label: string }>();
  let i = 0;
  for (const role of resources.filter((r) => r.type === 'AWS::IAM::Role')) {
    if (!role.arn) continue;
    i += 1;
    byRole.set(role.arn, {
      accessKeyId: `AKIAE2E${String(i).padStart(13, '0')}`,
      secretAccessKey: `secret-of-${role.physicalId}`,
      label: labels.get(role.arn) ?? role.logicalId,
    });
  }
  return { byRole };
}

export function buildWorld(
  resources: ResolvedResource[],
  keys: RoleKeys,
  account: string,
  region: string,
): PolicyWorld {
  const principals: Principal[] = [];
  for (const role of resources.filter((r) => r.type === 'AWS::IAM::Role')) {
    const creds = role.arn ? keys.byRole.get(role.arn) : undefined;
    if (!role.arn || !creds) continue;
    const identityPolicies: Principal['identityPolicies'] = [];
    for (const p of (role.properties.Policies as
      | { PolicyName: string; PolicyDocument: PolicyDocument }[]
      | undefined) ?? [])
      identityPolicies.push({ name: p.PolicyName, policy: p.PolicyDocument });
    for (const pol of resources.filter((r) => r.type === 'AWS::IAM::Policy')) {
      const roles = (pol.properties.Roles as string[] | undefined) ?? [];
      if (roles.includes(role.physicalId))
        identityPolicies.push({
          name: String(pol.properties.PolicyName),
          policy: pol.properties.PolicyDocument as PolicyDocument,
        });
    }
    principals.push({
      accessKeyId: creds.accessKeyId,
      roleArn: role.arn,
      identityPolicies,
      label: creds.label,
    });
  }
  const bucketPolicies: Record<string, PolicyDocument> = {};
  for (const bp of resources.filter((r) => r.type === 'AWS::S3::BucketPolicy'))
    bucketPolicies[String(bp.properties.Bucket)] = bp.properties.PolicyDocument as PolicyDocument;
  const bucketKmsKeys: Record<string, string> = {};
  const keyPolicies: Record<string, PolicyDocument> = {};
  const keyIds: Record<string, string> = {};
  for (const key of resources.filter((r) => r.type === 'AWS::KMS::Key')) {
    if (!key.arn) continue;
    keyPolicies[key.arn] = key.properties.KeyPolicy as PolicyDocument;
    keyIds[key.arn] = key.arn;
    keyIds[key.physicalId] = key.arn;
  }
  for (const alias of resources.filter((r) => r.type === 'AWS::KMS::Alias')) {
    const target = String(alias.properties.TargetKeyId);
    const arn = keyIds[target];
    if (!arn) continue;
    keyIds[alias.physicalId] = arn;
    keyIds[`arn:aws:kms:${region}:${account}:${alias.physicalId}`] = arn;
  }
  const keyArnOf = (id: string | undefined) => (id ? (keyIds[id] ?? id) : undefined);
  for (const b of resources.filter((r) => r.type === 'AWS::S3::Bucket')) {
    const rules = (
      b.properties.BucketEncryption as
        | {
            ServerSideEncryptionConfiguration?: {
              ServerSideEncryptionByDefault?: { KMSMasterKeyID?: string };
            }[];
          }
        | undefined
    )?.ServerSideEncryptionConfiguration;
    const k = keyArnOf(rules?.[0]?.ServerSideEncryptionByDefault?.KMSMasterKeyID);
    if (k) bucketKmsKeys[b.physicalId] = k;
  }
  const tableKmsKeys: Record<string, string> = {};
  for (const t of resources.filter((r) => r.type === 'AWS::DynamoDB::Table')) {
    const k = keyArnOf(
      (t.properties.SSESpecification as { KMSMasterKeyId?: string } | undefined)?.KMSMasterKeyId,
    );
    if (k) tableKmsKeys[t.physicalId] = k;
  }
  const bucketKeyEnabled: Record<string, boolean> = {};
  for (const b of resources.filter((r) => r.type === 'AWS::S3::Bucket')) {
    const rules = (
      b.properties.BucketEncryption as
        | { ServerSideEncryptionConfiguration?: { BucketKeyEnabled?: boolean }[] }
        | undefined
    )?.ServerSideEncryptionConfiguration;
    if (rules?.[0]?.BucketKeyEnabled) bucketKeyEnabled[b.physicalId] = true;
  }
  principals.push(OPERATOR(account));
  return {
    account,
    region,
    principals,
    bucketPolicies,
    bucketKmsKeys,
    keyPolicies,
    keyIds,
    tableKmsKeys,
    bucketKeyEnabled,
  };
}

/**
 * An administrator of the account (AdministratorAccess), for what docs/deploy.md tells an operator
 * to do by hand: `aws s3 cp` to the landing bucket, a start from the Step Functions console. Key
 * and bucket policies still apply to it.
 */
export const OPERATOR_KEY = { accessKeyId: 'AKIAE2EOPERATOR00001', secretAccessKey: 'operator-secret' };
export const OPERATOR = (account: string): Principal => ({
  accessKeyId: OPERATOR_KEY.accessKeyId,
  roleArn: `arn:aws:iam::${account}:role/Administrator`,
  identityPolicies: [
    {
      name: 'AdministratorAccess',
      policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] },
    },
  ],
  label: 'operator',
});
