/**
 * CloudFormation intrinsics across the app's stacks, resolved as CloudFormation would after
 * creating the resources: Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select, Fn::Split, Fn::If,
 * Fn::Equals/And/Or/Not (Conditions), Fn::ImportValue (another stack's Output Export) and the
 * pseudo parameters. Physical names: what the emulator returned (KMS key ids, queue URLs) when
 * recorded with `setPhysical`, otherwise deterministic names built like CloudFormation's
 * (`<stack>-<logicalId>-<suffix>`), or the name the template sets.
 */
import { createHash } from 'node:crypto';
import type { ResolvedResource } from '../iam/types.js';
import type { SynthesizedApp, Template } from './templates.js';

export interface Physical {
  /** What Ref returns. */
  ref: string;
  /** Fn::GetAtt attributes. */
  attrs: Record<string, string>;
}

export type { ResolvedResource };

export class UnresolvedError extends Error {}

const suffix = (s: string, n: number) =>
  createHash('sha256').update(s).digest('hex').slice(0, n).toUpperCase();

export class Resolver {
  private readonly physical = new Map<string, Physical>();
  private readonly exports = new Map<string, { stack: string; value: unknown }>();
  readonly partition = 'aws';

  constructor(readonly app: SynthesizedApp) {
    for (const [stack, t] of app.stacks) {
      for (const out of Object.values(t.Outputs ?? {})) {
        if (out.Export) {
          const name = this.resolve(stack, out.Export.Name);
          this.exports.set(String(name), { stack, value: out.Value });
        }
      }
    }
  }

  template(stack: string): Template {
    const t = this.app.stacks.get(stack);
    if (!t) throw new Error(`no stack ${stack}`);
    return t;
  }

  setPhysical(stack: string, logicalId: string, p: Physical): void {
    this.physical.set(`${stack}/${logicalId}`, p);
  }

  /** The physical identity of a resource: recorded, or the deterministic one for its type. */
  physicalOf(stack: string, logicalId: string): Physical {
    const known = this.physical.get(`${stack}/${logicalId}`);
    if (known) return known;
    const res = this.template(stack).Resources[logicalId];
    if (!res) throw new UnresolvedError(`${stack} has no resource ${logicalId}`);
    const p = this.defaultPhysical(stack, logicalId, res.Type, res.Properties ?? {});
    this.physical.set(`${stack}/${logicalId}`, p);
    return p;
  }

  private defaultPhysical(
    stack: string,
    logicalId: string,
    type: string,
    props: Record<string, unknown>,
  ): Physical {
    const { account, region } = this.app;
    const generated = (max: number) => {
      const tail = `-${suffix(`${stack}/${logicalId}`, 12)}`;
      return `${stack}-${logicalId}`.slice(0, max - tail.length) + tail;
    };
    const nameFrom = (prop: string, max: number) => {
      const given = props[prop];
      if (given === undefined) return generated(max);
      return String(this.resolve(stack, given));
    };
    switch (type) {
      case 'AWS::S3::Bucket': {
        const name =
          props.BucketName !== undefined
            ? String(this.resolve(stack, props.BucketName))
            : generated(63).toLowerCase();
        return { ref: name, attrs: { Arn: `arn:aws:s3:::${name}`, DomainName: `${name}.s3.amazonaws.com` } };
      }
      case 'AWS::IAM::Role': {
        const name = nameFrom('RoleName', 64);
        return {
          ref: name,
          attrs: { Arn: `arn:aws:iam::${account}:role/${name}`, RoleId: `AROA${suffix(name, 17)}` },
        };
      }
      case 'AWS::IAM::Policy':
        return { ref: generated(128), attrs: { Id: generated(128) } };
      case 'AWS::Lambda::Function': {
        const name = nameFrom('FunctionName', 64);
        return { ref: name, attrs: { Arn: `arn:aws:lambda:${region}:${account}:function:${name}` } };
      }
      case 'AWS::DynamoDB::Table': {
        const name = nameFrom('TableName', 255);
        return { ref: name, attrs: { Arn: `arn:aws:dynamodb:${region}:${account}:table/${name}` } };
      }
      case 'AWS::StepFunctions::StateMachine': {
        const name = nameFrom('StateMachineName', 80);
        const arn = `arn:aws:states:${region}:${account}:stateMachine:${name}`;
        return { ref: arn, attrs: { Arn: arn, Name: name } };
      }
      case 'AWS::SSM::Parameter': {
        const name = nameFrom('Name', 2048);
        return { ref: name, attrs: { Type: String(props.Type ?? 'String'), Value: '' } };
      }
      case 'AWS::Events::Rule': {
        const name = nameFrom('Name', 64);
        return { ref: name, attrs: { Arn: `arn:aws:events:${region}:${account}:rule/${name}` } };
      }
      case 'AWS::Logs::LogGroup': {
        const name = nameFrom('LogGroupName', 512);
        return { ref: name, attrs: { Arn: `arn:aws:logs:${region}:${account}:log-group:${name}:*` } };
      }
      case 'AWS::SQS::Queue': {
        const name = nameFrom('QueueName', 80);
        return {
          ref: `https://sqs.${region}.amazonaws.com/${account}/${name}`,
          attrs: {
            Arn: `arn:aws:sqs:${region}:${account}:${name}`,
            QueueName: name,
            QueueUrl: `https://sqs.${region}.amazonaws.com/${account}/${name}`,
          },
        };
      }
      case 'AWS::KMS::Key':
        throw new UnresolvedError(
          `KMS key ${stack}/${logicalId} is not created yet (its id comes from the emulator)`,
        );
      case 'AWS::KMS::Alias':
        return { ref: String(this.resolve(stack, props.AliasName)), attrs: {} };
      default:
        return { ref: generated(128), attrs: {} };
    }
  }

  private pseudo(stack: string, name: string): string | undefined {
    switch (name) {
      case 'AWS::AccountId':
        return this.app.account;
      case 'AWS::Region':
        return this.app.region;
      case 'AWS::Partition':
        return this.partition;
      case 'AWS::URLSuffix':
        return 'amazonaws.com';
      case 'AWS::StackName':
        return stack;
      case 'AWS::StackId':
        return `arn:aws:cloudformation:${this.app.region}:${this.app.account}:stack/${stack}/${suffix(stack, 8)}`;
      case 'AWS::NoValue':
        return undefined;
      default:
        return undefined;
    }
  }

  private ref(stack: string, name: string): unknown {
    if (name.startsWith('AWS::')) return this.pseudo(stack, name);
    const t = this.template(stack);
    const param = t.Parameters?.[name];
    if (param) return param.Default;
    return this.physicalOf(stack, name).ref;
  }

  private getAtt(stack: string, logicalId: string, attr: string): string {
    const p = this.physicalOf(stack, logicalId);
    const v = p.attrs[attr];
    if (v === undefined) throw new UnresolvedError(`no attribute ${attr} for ${stack}/${logicalId}`);
    return v;
  }

  condition(stack: string, name: string): boolean {
    const c = this.template(stack).Conditions?.[name];
    if (c === undefined) throw new UnresolvedError(`${stack} has no condition ${name}`);
    return Boolean(this.resolve(stack, c));
  }

  /** Resolves every intrinsic in `value`; AWS::NoValue drops the key or element. */
  resolve(stack: string, value: unknown): unknown {
    if (Array.isArray(value)) return value.map((v) => this.resolve(stack, v)).filter((v) => v !== NO_VALUE);
    if (value === null || typeof value !== 'object') return value;
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj);
    if (keys.length === 1) {
      const [k] = keys as [string];
      const arg = obj[k];
      switch (k) {
        case 'Ref': {
          if (arg === 'AWS::NoValue') return NO_VALUE;
          return this.ref(stack, String(arg));
        }
        case 'Fn::GetAtt': {
          const [id, attr] = Array.isArray(arg) ? (arg as string[]) : String(arg).split(/\.(.*)/s);
          return this.getAtt(stack, String(id), String(attr));
        }
        case 'Fn::Join': {
          const [sep, parts] = arg as [string, unknown[]];
          return (this.resolve(stack, parts) as unknown[]).map(String).join(sep);
        }
        case 'Fn::Select': {
          const [i, list] = arg as [unknown, unknown];
          return (this.resolve(stack, list) as unknown[])[Number(this.resolve(stack, i))];
        }
        case 'Fn::Split': {
          const [sep, s] = arg as [string, unknown];
          return String(this.resolve(stack, s)).split(sep);
        }
        case 'Fn::Sub': {
          const [text, vars] =
            typeof arg === 'string' ? [arg, {}] : (arg as [string, Record<string, unknown>]);
          const resolvedVars = Object.fromEntries(
            Object.entries(vars).map(([n, v]) => [n, this.resolve(stack, v)]),
          );
          return text.replace(/\$\{(!?)([^}]+)\}/g, (_m, bang: string, name: string) => {
            if (bang) return `\${${name}}`;
            if (name in resolvedVars) return String(resolvedVars[name]);
            if (name.includes('.') && !name.startsWith('AWS::')) {
              const [id, attr] = name.split(/\.(.*)/s) as [string, string];
              return this.getAtt(stack, id, attr);
            }
            return String(this.ref(stack, name));
          });
        }
        case 'Fn::ImportValue': {
          const name = String(this.resolve(stack, arg));
          const exp = this.exports.get(name);
          if (!exp) throw new UnresolvedError(`no stack exports ${name}`);
          return this.resolve(exp.stack, exp.value);
        }
        case 'Fn::If': {
          const [cond, a, b] = arg as [string, unknown, unknown];
          return this.resolve(stack, this.condition(stack, cond) ? a : b);
        }
        case 'Fn::Equals': {
          const [a, b] = arg as [unknown, unknown];
          return JSON.stringify(this.resolve(stack, a)) === JSON.stringify(this.resolve(stack, b));
        }
        case 'Fn::And':
          return (arg as unknown[]).every((c) => Boolean(this.resolve(stack, c)));
        case 'Fn::Or':
          return (arg as unknown[]).some((c) => Boolean(this.resolve(stack, c)));
        case 'Fn::Not':
          return !this.resolve(stack, (arg as unknown[])[0]);
        case 'Condition':
          return this.condition(stack, String(arg));
        case 'Fn::Base64':
          return Buffer.from(String(this.resolve(stack, arg))).toString('base64');
        case 'Fn::GetAZs':
          return [`${this.app.region}a`, `${this.app.region}b`, `${this.app.region}c`];
        default:
          if (k.startsWith('Fn::'))
            throw new UnresolvedError(`intrinsic ${k} is not supported by the harness`);
      }
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) {
      const r = this.resolve(stack, v);
      if (r !== NO_VALUE && r !== undefined) out[k] = r;
    }
    return out;
  }

  /** True when the resource exists under its Condition (no Condition: always). */
  exists(stack: string, logicalId: string): boolean {
    const c = this.template(stack).Resources[logicalId]?.Condition;
    return c === undefined || this.condition(stack, c);
  }
}

const NO_VALUE = Symbol('AWS::NoValue') as unknown as string;
