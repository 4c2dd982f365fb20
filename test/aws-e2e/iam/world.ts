/**
 * Builds the PolicyWorld the proxy evaluates from the synthesized CloudFormation templates, after the
 * harness has resolved every intrinsic (ResolvedResource: properties as plain JSON, physical id, ARN).
 *
 * Read from the templates:
 * - AWS::IAM::Role: inline Policies, ManagedPolicyArns naming an AWS::IAM::ManagedPolicy of the app;
 * - AWS::IAM::Policy and AWS::IAM::ManagedPolicy: attached to the roles their `Roles` name;
 * - AWS::S3::BucketPolicy (by bucket name); AWS::S3::Bucket default SSE-KMS key and Bucket Key;
 * - AWS::KMS::Key KeyPolicy (key id and ARN map to it), AWS::KMS::Alias (alias name and ARN);
 * - AWS::DynamoDB::Table SSESpecification KMSMasterKeyId.
 * Not read: AWS managed policies (arn:aws:iam::aws:policy/…; their text is not in the templates),
 * permission boundaries, SCPs/RCPs, session policies, VPC endpoint policies.
 */
import type { PolicyDocument, PolicyWorld, Principal, ResolvedResource } from './types.js';

export interface WorldInput {
  account: string;
  region: string;
  resources: ResolvedResource[];
  /**
   * Role → the access key id its caller signs with. A role is named by its ARN, its physical name or
   * `<stack>/<logicalId>`. Roles without a key make no calls and are left out.
   */
  accessKeys: Record<string, string>;
  /** Same keys as accessKeys → label in reports (default `<stack>/<logicalId>`). */
  labels?: Record<string, string>;
}

export class WorldError extends Error {
  override readonly name = 'WorldError';
}

const obj = (v: unknown): Record<string, unknown> =>
  v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function policyDocument(v: unknown, where: string): PolicyDocument {
  const d = obj(v);
  if (!('Statement' in d)) throw new WorldError(`${where} has no policy document with a Statement`);
  assertResolved(d, where);
  return d as unknown as PolicyDocument;
}

/** A document still holding an intrinsic ({"Ref": …}, {"Fn::…": …}) was not resolved by the harness. */
function assertResolved(v: unknown, where: string): void {
  if (Array.isArray(v)) {
    for (const x of v) assertResolved(x, where);
    return;
  }
  if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (k === 'Ref' || k.startsWith('Fn::'))
        throw new WorldError(
          `${where} still holds the intrinsic ${k}: resolve every intrinsic before building the policy world`,
        );
      assertResolved(x, where);
    }
  }
}

/** The PolicyWorld of an app's resolved resources. */
export function worldFromTemplates(input: WorldInput): PolicyWorld {
  const { account, region, resources } = input;
  const byType = (type: string) => resources.filter((r) => r.type === type);
  const id = (r: ResolvedResource) => `${r.stack}/${r.logicalId}`;

  // Keys first: buckets, tables and aliases name them by id, ARN or alias.
  const keyPolicies: Record<string, PolicyDocument> = {};
  const keyIds: Record<string, string> = {};
  for (const k of byType('AWS::KMS::Key')) {
    const arn = k.arn ?? `arn:aws:kms:${region}:${account}:key/${k.physicalId}`;
    keyPolicies[arn] = policyDocument(k.properties.KeyPolicy, `${id(k)} KeyPolicy`);
    keyIds[arn] = arn;
    keyIds[k.physicalId] = arn;
  }
  const keyArnOf = (ref: string) =>
    keyIds[ref] ?? (ref.startsWith('arn:') ? ref : `arn:aws:kms:${region}:${account}:key/${ref}`);
  for (const a of byType('AWS::KMS::Alias')) {
    const name = str(a.properties.AliasName);
    const target = str(a.properties.TargetKeyId);
    if (!name || !target) throw new WorldError(`${id(a)} needs AliasName and TargetKeyId as strings`);
    keyIds[name] = keyArnOf(target);
    keyIds[`arn:aws:kms:${region}:${account}:${name}`] = keyArnOf(target);
  }

  const bucketPolicies: Record<string, PolicyDocument> = {};
  for (const p of byType('AWS::S3::BucketPolicy')) {
    const bucket = str(p.properties.Bucket);
    if (!bucket) throw new WorldError(`${id(p)} has no resolved Bucket name`);
    bucketPolicies[bucket] = policyDocument(p.properties.PolicyDocument, `${id(p)} PolicyDocument`);
  }
  const bucketKmsKeys: Record<string, string> = {};
  const bucketKeyEnabled: Record<string, boolean> = {};
  for (const b of byType('AWS::S3::Bucket')) {
    for (const rule of arr(obj(b.properties.BucketEncryption).ServerSideEncryptionConfiguration).map(obj)) {
      const def = obj(rule.ServerSideEncryptionByDefault);
      const key = str(def.KMSMasterKeyID);
      if (str(def.SSEAlgorithm)?.startsWith('aws:kms') && key) bucketKmsKeys[b.physicalId] = keyArnOf(key);
      if (rule.BucketKeyEnabled === true) bucketKeyEnabled[b.physicalId] = true;
    }
  }
  const tableKmsKeys: Record<string, string> = {};
  for (const t of byType('AWS::DynamoDB::Table')) {
    const sse = obj(t.properties.SSESpecification);
    const key = str(sse.KMSMasterKeyId);
    if (sse.SSEEnabled === true && key) tableKmsKeys[t.physicalId] = keyArnOf(key);
  }

  // Identity policies per role.
  const roles = byType('AWS::IAM::Role');
  const roleArn = (r: ResolvedResource) =>
    r.arn ?? `arn:aws:iam::${account}:role${str(r.properties.Path) ?? '/'}${r.physicalId}`;
  const policiesOf = new Map<ResolvedResource, { name: string; policy: PolicyDocument }[]>(
    roles.map((r) => [r, []]),
  );
  const findRole = (ref: string) =>
    roles.find((r) => r.physicalId === ref || roleArn(r) === ref || id(r) === ref);
  const managed = new Map<string, { name: string; policy: PolicyDocument }>();
  for (const m of byType('AWS::IAM::ManagedPolicy')) {
    const entry = {
      name: str(m.properties.ManagedPolicyName) ?? m.logicalId,
      policy: policyDocument(m.properties.PolicyDocument, `${id(m)} PolicyDocument`),
    };
    managed.set(m.physicalId, entry);
    if (m.arn) managed.set(m.arn, entry);
    for (const ref of arr(m.properties.Roles)) {
      const role = findRole(String(ref));
      if (role) policiesOf.get(role)?.push(entry);
    }
  }
  for (const r of roles) {
    for (const p of arr(r.properties.Policies).map(obj)) {
      policiesOf.get(r)?.push({
        name: str(p.PolicyName) ?? 'inline',
        policy: policyDocument(p.PolicyDocument, `${id(r)} inline policy`),
      });
    }
    for (const arn of arr(r.properties.ManagedPolicyArns)) {
      const m = managed.get(String(arn));
      if (m && !policiesOf.get(r)?.includes(m)) policiesOf.get(r)?.push(m);
    }
  }
  for (const p of byType('AWS::IAM::Policy')) {
    const entry = {
      name: str(p.properties.PolicyName) ?? p.logicalId,
      policy: policyDocument(p.properties.PolicyDocument, `${id(p)} PolicyDocument`),
    };
    for (const ref of arr(p.properties.Roles)) {
      const role = findRole(String(ref));
      if (!role)
        throw new WorldError(`${id(p)} attaches to role ${String(ref)}, which is not among the resources`);
      policiesOf.get(role)?.push(entry);
    }
  }

  const principals: Principal[] = [];
  const claimed = new Set<string>();
  for (const r of roles) {
    const names = [roleArn(r), r.physicalId, id(r)];
    const name = names.find((n) => input.accessKeys[n] !== undefined);
    if (name === undefined) continue;
    claimed.add(name);
    principals.push({
      accessKeyId: input.accessKeys[name] as string,
      roleArn: roleArn(r),
      identityPolicies: policiesOf.get(r) ?? [],
      label: input.labels?.[name] ?? id(r),
    });
  }
  const unknown = Object.keys(input.accessKeys).filter((k) => !claimed.has(k));
  if (unknown.length > 0)
    throw new WorldError(`access keys given for roles that are not in the templates: ${unknown.join(', ')}`);

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
