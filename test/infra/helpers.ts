/**
 * Walks synthesized CloudFormation templates for the infra tests: every IAM-style statement,
 * wherever it lives (roles, policies, managed policies, key policies, bucket and queue policies).
 */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Template = { Resources: Record<string, { Type: string; Properties?: Record<string, Json> }> };

export interface FoundStatement {
  stack: string;
  resource: string;
  type: string;
  /** The statement as written. */
  statement: Record<string, Json>;
}

const asArray = (v: Json | undefined): Json[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function documentsOf(type: string, props: Record<string, Json>): Json[] {
  switch (type) {
    case 'AWS::IAM::Policy':
    case 'AWS::IAM::ManagedPolicy':
    case 'AWS::S3::BucketPolicy':
    case 'AWS::SQS::QueuePolicy':
      return [props.PolicyDocument ?? null];
    case 'AWS::IAM::Role':
      return [
        props.AssumeRolePolicyDocument ?? null,
        ...asArray(props.Policies).map((p) => (p as { PolicyDocument: Json }).PolicyDocument),
      ];
    case 'AWS::KMS::Key':
      return [props.KeyPolicy ?? null];
    default:
      return [];
  }
}

export function statementsIn(templates: Record<string, Template>): FoundStatement[] {
  const found: FoundStatement[] = [];
  for (const [stack, template] of Object.entries(templates)) {
    for (const [resource, { Type, Properties = {} }] of Object.entries(template.Resources)) {
      for (const doc of documentsOf(Type, Properties)) {
        if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) continue;
        for (const statement of asArray(doc.Statement)) {
          found.push({ stack, resource, type: Type, statement: statement as Record<string, Json> });
        }
      }
    }
  }
  return found;
}

export function actionsOf(statement: Record<string, Json>): string[] {
  return asArray(statement.Action).map(String);
}

export function resourcesOf(statement: Record<string, Json>): Json[] {
  return asArray(statement.Resource);
}

/** All string leaves of a value joined: enough to tell which resource an ARN expression names. */
export function flat(value: Json | undefined): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'object') return String(value);
  if (Array.isArray(value)) return value.map(flat).join('');
  return Object.entries(value)
    .map(([k, v]) => (k === 'Fn::GetAtt' && Array.isArray(v) ? `GetAtt:${v.join('.')}` : flat(v)))
    .join('');
}

/** The statements of a policy document value (empty when absent). */
export function statementsOf(doc: Json | undefined): Record<string, Json>[] {
  if (doc === undefined || doc === null || typeof doc !== 'object' || Array.isArray(doc)) return [];
  return asArray(doc.Statement) as Record<string, Json>[];
}

/** A list-valued property as an array of objects (empty when absent). */
export function listOf(value: Json | undefined): Record<string, Json>[] {
  return asArray(value) as Record<string, Json>[];
}
