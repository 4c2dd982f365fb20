/**
 * The emulated-AWS harness's own logic, without moto: CloudFormation intrinsics across stacks, the
 * Lambda error → Step Functions error mapping, the state machine's Lambda invocations and the
 * Distributed Map's child executions through the IAM proxy, EventBridge InputTransformer and S3
 * event shape.
 */
import { describe, expect, it, vi } from 'vitest';
import { matchesPattern } from '../helpers/event-pattern.js';
import { s3ObjectCreatedEvent, transform } from './harness/events.js';
import type { InvokeResult, LambdaFleet } from './harness/lambda-host.js';
import { Resolver, UnresolvedError } from './harness/resolve.js';
import {
  LambdaTaskError,
  LocalStepFunctions,
  lambdaInvokeHook,
  lambdaInvoker,
  MapChildExecutions,
  throwIfFailed,
} from './harness/state-machine.js';
import type { SynthesizedApp, Template } from './harness/templates.js';
import { startIamProxy } from './iam/proxy.js';
import { ACCOUNT, allow, fakeUpstream, principal, REGION, world } from './iam/test-helpers.js';

function app(stacks: Record<string, Template>): SynthesizedApp {
  return {
    stage: 't',
    account: '111122223333',
    region: 'eu-west-1',
    outdir: '/nowhere',
    stacks: new Map(Object.entries(stacks)),
    assetDir: () => '/nowhere',
  };
}

const keys: Template = {
  Resources: { Key: { Type: 'AWS::KMS::Key', Properties: {} } },
  Outputs: {
    KeyArn: { Value: { 'Fn::GetAtt': ['Key', 'Arn'] }, Export: { Name: 'keys:KeyArn' } },
  },
};
const storage: Template = {
  Parameters: { Env: { Type: 'String', Default: 'prod' } },
  Conditions: { IsProd: { 'Fn::Equals': [{ Ref: 'Env' }, 'prod'] } },
  Resources: {
    Bucket: { Type: 'AWS::S3::Bucket', Properties: {} },
    Named: {
      Type: 'AWS::DynamoDB::Table',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub syntax
      Properties: { TableName: { 'Fn::Sub': '${AWS::StackName}-runs' } },
    },
    Role: { Type: 'AWS::IAM::Role', Properties: {} },
    Dev: { Type: 'AWS::SQS::Queue', Condition: 'IsDev', Properties: {} },
  },
  Outputs: {},
};
storage.Conditions = { ...storage.Conditions, IsDev: { 'Fn::Not': [{ Condition: 'IsProd' }] } };

describe('Resolver', () => {
  const r = new Resolver(app({ keys, storage }));
  r.setPhysical('keys', 'Key', {
    ref: 'k-1',
    attrs: { Arn: 'arn:aws:kms:eu-west-1:111122223333:key/k-1', KeyId: 'k-1' },
  });

  it('resolves Ref, GetAtt, Join, Sub, Select, Split and pseudo parameters', () => {
    const bucket = String(r.resolve('storage', { Ref: 'Bucket' }));
    expect(bucket).toMatch(/^storage-bucket-[0-9a-f]{12}$/);
    expect(r.resolve('storage', { 'Fn::GetAtt': ['Bucket', 'Arn'] })).toBe(`arn:aws:s3:::${bucket}`);
    expect(r.resolve('storage', { 'Fn::GetAtt': 'Role.Arn' })).toMatch(
      /^arn:aws:iam::111122223333:role\/storage-Role-/,
    );
    expect(r.resolve('storage', { Ref: 'Named' })).toBe('storage-runs');
    expect(
      r.resolve('storage', {
        'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':x:', { Ref: 'AWS::Region' }]],
      }),
    ).toBe('arn:aws:x:eu-west-1');
    expect(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub syntax
      r.resolve('storage', { 'Fn::Sub': ['${A}/${Bucket.Arn}/${AWS::AccountId}/${!Literal}', { A: 'a' }] }),
    ).toBe(`a/arn:aws:s3:::${bucket}/111122223333/\${Literal}`);
    expect(r.resolve('storage', { 'Fn::Select': [1, { 'Fn::Split': ['/', 'a/b/c'] }] })).toBe('b');
  });

  it('resolves Fn::ImportValue through the exporting stack and conditions with Fn::If', () => {
    expect(r.resolve('storage', { 'Fn::ImportValue': 'keys:KeyArn' })).toBe(
      'arn:aws:kms:eu-west-1:111122223333:key/k-1',
    );
    expect(r.resolve('storage', { 'Fn::If': ['IsProd', 'yes', 'no'] })).toBe('yes');
    expect(r.exists('storage', 'Dev')).toBe(false);
    expect(r.resolve('storage', { a: { 'Fn::If': ['IsDev', 1, { Ref: 'AWS::NoValue' }] }, b: 2 })).toEqual({
      b: 2,
    });
  });

  it('refuses what it cannot resolve instead of guessing', () => {
    const fresh = new Resolver(app({ keys, storage }));
    expect(() => fresh.resolve('storage', { 'Fn::ImportValue': 'keys:KeyArn' })).toThrow(UnresolvedError);
    expect(() => r.resolve('storage', { 'Fn::ImportValue': 'nobody:exports' })).toThrow(UnresolvedError);
    expect(() => r.resolve('storage', { 'Fn::Transform': {} })).toThrow(UnresolvedError);
  });
});

describe('Lambda errors as Step Functions sees them', () => {
  it('maps errorType to Error and the runtime JSON to Cause', () => {
    const failed = {
      ok: false as const,
      error: { errorType: 'Veritrail.TRANSIENT', errorMessage: 'slow', trace: ['at x'] },
    };
    let caught: unknown;
    try {
      throwIfFailed(failed);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(LambdaTaskError);
    expect((caught as Error).name).toBe('Veritrail.TRANSIENT');
    expect(JSON.parse((caught as Error).message)).toEqual({
      errorMessage: 'slow',
      errorType: 'Veritrail.TRANSIENT',
      trace: ['at x'],
    });
    expect(throwIfFailed({ ok: true, result: { a: 1 } })).toEqual({ a: 1 });
  });
});

describe('a Task’s Lambda invocation, as the state machine’s role', () => {
  const fn = (name: string) => `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${name}`;

  it('is a Lambda Invoke the IAM proxy decides against the role’s policy, then runs the hosted function', async () => {
    const role = principal('state-machine', [allow('lambda:InvokeFunction', fn('granted'))]);
    const upstream = await fakeUpstream();
    const proxy = await startIamProxy({ upstream: upstream.url, world: world([role]) });
    const ran: { name: string; event: unknown }[] = [];
    const results: Record<string, InvokeResult> = {
      [fn('granted')]: { ok: true, result: { key: 'sha256/x', files: 2 } },
    };
    const fleet = {
      byArn: (name: string) => ({
        invoke: async (event: unknown) => {
          ran.push({ name, event });
          return (
            results[name] ?? { ok: false, error: { errorType: 'Veritrail.INTERNAL', errorMessage: 'boom' } }
          );
        },
      }),
    } as unknown as LambdaFleet;
    proxy.addHook(lambdaInvokeHook(role.label, fleet));
    const invoke = lambdaInvoker({
      endpoint: proxy.endpoint,
      region: REGION,
      credentials: { accessKeyId: role.accessKeyId, secretAccessKey: 'test-secret' },
    });
    try {
      expect(await invoke(fn('granted'), { Items: [1, 2] })).toEqual({
        ok: true,
        result: { key: 'sha256/x', files: 2 },
      });
      expect(ran).toEqual([{ name: fn('granted'), event: { Items: [1, 2] } }]);
      // A function error comes back as the runtime reported it, for Retry/Catch.
      results[fn('granted')] = {
        ok: false,
        error: { errorType: 'Veritrail.TRANSIENT', errorMessage: 'slow' },
      };
      expect(await invoke(fn('granted'), {})).toEqual({
        ok: false,
        error: { errorType: 'Veritrail.TRANSIENT', errorMessage: 'slow' },
      });
      // A function the role may not invoke: denied and recorded (the suite fails on it), never run.
      await expect(invoke(fn('other'), {})).rejects.toMatchObject({ name: 'AccessDeniedException' });
      expect(ran.map((r) => r.name)).not.toContain(fn('other'));
      expect(proxy.denials()).toEqual([
        expect.objectContaining({
          principal: 'state-machine',
          action: 'lambda:InvokeFunction',
          resource: fn('other'),
        }),
      ]);
      expect(upstream.seen).toEqual([]);
    } finally {
      await proxy.close();
      await upstream.close();
    }
  });
});

describe('the Distributed Map’s child executions, as the state machine’s role', () => {
  const MACHINE = `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:pipeline`;
  const CHILDREN = `arn:aws:states:${REGION}:${ACCOUNT}:execution:pipeline/M:*`;
  const CHILD_FN = `arn:aws:lambda:${REGION}:${ACCOUNT}:function:child`;
  const grants = {
    start: allow('states:StartExecution', MACHINE),
    describe: allow('states:DescribeExecution', CHILDREN),
    stop: allow('states:StopExecution', CHILDREN),
  };
  /**
   * M: a Distributed Map over s3://b/items.json, one item per child execution, 2 at a time; its
   * error caught into `$.error` (as the pipeline's Catch does), so the Map's own error can be read.
   */
  const definition = {
    StartAt: 'M',
    States: {
      M: {
        Type: 'Map',
        Label: 'M',
        ItemReader: {
          Resource: 'arn:aws:states:::s3:getObject',
          ReaderConfig: { InputType: 'JSON' },
          Parameters: { Bucket: 'b', Key: 'items.json' },
        },
        ItemBatcher: { MaxItemsPerBatch: 1 },
        MaxConcurrency: 2,
        ItemProcessor: {
          ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' },
          StartAt: 'Child',
          States: { Child: { Type: 'Task', Resource: CHILD_FN, End: true } },
        },
        ResultPath: '$.out',
        Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'MapFailed' }],
        End: true,
      },
      MapFailed: { Type: 'Pass', End: true },
    },
  };
  /** The Map's error, or undefined when it succeeded. */
  const mapError = (done: { status: string; output?: string }) => {
    expect(done.status).toBe('SUCCEEDED');
    return (JSON.parse(done.output ?? '{}') as { error?: { Error: string; Cause: string } }).error;
  };

  /** The state machine with its role granted `statements`, the child function `child`. */
  async function machine(
    statements: Record<string, unknown>[],
    items: string[],
    child: (item: string) => Promise<InvokeResult>,
  ) {
    const role = principal('states', statements);
    const upstream = await fakeUpstream();
    const proxy = await startIamProxy({ upstream: upstream.url, world: world([role]) });
    const ran: string[] = [];
    const fleet = {
      byArn: () => ({
        invoke: async (event: { Items: string[] }) => {
          const item = event.Items[0] as string;
          ran.push(item);
          return child(item);
        },
      }),
    } as unknown as LambdaFleet;
    const children = new MapChildExecutions(MACHINE, role.label, {
      endpoint: proxy.endpoint,
      region: REGION,
      credentials: { accessKeyId: role.accessKeyId, secretAccessKey: 'test-secret' },
    });
    proxy.addHook(children.hook);
    const sfn = new LocalStepFunctions(MACHINE, definition, fleet, {
      read: async () => new TextEncoder().encode(JSON.stringify(items)),
      write: async () => {},
      children,
    });
    const asRole = (action: string) =>
      proxy.calls.filter((c) => c.principal === 'states' && c.action === action);
    return {
      proxy,
      sfn,
      children,
      ran,
      asRole,
      close: async () => {
        await proxy.close();
        await upstream.close();
      },
    };
  }

  it('starts each child as a StartExecution of its own state machine and describes it once ended', async () => {
    const m = await machine([grants.start, grants.describe, grants.stop], ['a', 'b'], async (item) => ({
      ok: true,
      result: item.toUpperCase(),
    }));
    try {
      const done = await m.sfn.start('run-1', '{}').done;
      expect(mapError(done)).toBeUndefined();
      expect(JSON.parse(done.output ?? '{}')).toEqual({ out: ['A', 'B'] });
      expect(m.asRole('states:StartExecution').map((c) => c.resource)).toEqual([MACHINE, MACHINE]);
      const arns = [...m.children.children.keys()];
      expect(arns).toHaveLength(2);
      for (const arn of arns)
        expect(arn).toMatch(/^arn:aws:states:[^:]+:\d{12}:execution:pipeline\/M:[0-9a-f-]{36}$/);
      expect(
        m
          .asRole('states:DescribeExecution')
          .map((c) => c.resource)
          .sort(),
      ).toEqual(arns.sort());
      expect([...m.children.children.values()].map((c) => [c.status, JSON.parse(c.input)])).toEqual(
        expect.arrayContaining([
          ['SUCCEEDED', { Items: ['a'] }],
          ['SUCCEEDED', { Items: ['b'] }],
        ]),
      );
      expect(m.asRole('states:StopExecution')).toEqual([]);
      expect(m.proxy.denials()).toEqual([]);
      // Only the role's own child execution calls are answered by the children's hook.
      expect(m.sfn.executions.size).toBe(1);
    } finally {
      await m.close();
    }
  });

  it('fails the Map and records the denial when the role may not start its own state machine', async () => {
    const m = await machine([grants.describe, grants.stop], ['a'], async () => ({ ok: true, result: 1 }));
    try {
      const done = await m.sfn.start('run-1', '{}').done;
      expect(mapError(done)).toMatchObject({
        Error: 'AccessDeniedException',
        Cause: expect.stringContaining('not authorized to perform: states:StartExecution'),
      });
      expect(m.ran).toEqual([]);
      expect(m.proxy.denials()).toEqual([
        expect.objectContaining({ principal: 'states', action: 'states:StartExecution', resource: MACHINE }),
      ]);
    } finally {
      await m.close();
    }
  });

  it('records the denial when the role may not describe its children', async () => {
    const m = await machine([grants.start, grants.stop], ['a'], async () => ({ ok: true, result: 1 }));
    try {
      const done = await m.sfn.start('run-1', '{}').done;
      expect(mapError(done)?.Error).toBe('AccessDeniedException');
      const [child] = [...m.children.children.keys()];
      expect(m.proxy.denials()).toEqual([
        expect.objectContaining({ principal: 'states', action: 'states:DescribeExecution', resource: child }),
      ]);
    } finally {
      await m.close();
    }
  });

  it('stops the running siblings of a failed child, and records the denial without StopExecution', async () => {
    for (const granted of [true, false]) {
      let release: () => void = () => {};
      let slowStarted: () => void = () => {};
      const started = new Promise<void>((r) => {
        slowStarted = r;
      });
      const m = await machine(
        granted ? [grants.start, grants.describe, grants.stop] : [grants.start, grants.describe],
        ['bad', 'slow'],
        async (item) => {
          if (item === 'slow') {
            slowStarted();
            await new Promise<void>((r) => {
              release = r;
            });
            return { ok: true, result: 'late' };
          }
          await started;
          return { ok: false, error: { errorType: 'Veritrail.INTERNAL', errorMessage: 'bad batch' } };
        },
      );
      try {
        const record = m.sfn.start('run-1', '{}');
        await vi.waitFor(() => expect(m.asRole('states:StopExecution')).toHaveLength(1), { timeout: 5000 });
        release();
        const done = await record.done;
        const error = mapError(done);
        const byItem = (item: string) =>
          [...m.children.children.values()].find((c) => JSON.parse(c.input).Items[0] === item);
        const slow = byItem('slow');
        expect(m.asRole('states:StopExecution').map((c) => c.resource)).toEqual([slow?.executionArn]);
        expect(byItem('bad')?.status).toBe('FAILED');
        if (granted) {
          // The Map fails with the child's own error (AWS: States.ExceedToleratedFailureThreshold).
          expect(error?.Error).toBe('Veritrail.INTERNAL');
          expect(slow?.status).toBe('ABORTED');
          expect(m.proxy.denials()).toEqual([]);
        } else {
          expect(error?.Error).toBe('AccessDeniedException');
          expect(m.proxy.denials()).toEqual([
            expect.objectContaining({
              principal: 'states',
              action: 'states:StopExecution',
              resource: slow?.executionArn,
            }),
          ]);
        }
      } finally {
        release();
        await m.close();
      }
    }
  });
});

describe('EventBridge', () => {
  it('fills an InputTransformer template from the event and the rule ARN', () => {
    const out = transform(
      {
        InputPathsMap: { time: '$.time', id: '$.id' },
        InputTemplate: '{"pipeline":"p","rule":<aws.events.rule-arn>,"time":<time>,"eventId":<id>}',
      },
      { id: 'e-1', time: '2026-01-05T03:00:00Z' },
      'arn:aws:events:eu-west-1:111122223333:rule/r',
    );
    expect(out).toEqual({
      pipeline: 'p',
      rule: 'arn:aws:events:eu-west-1:111122223333:rule/r',
      time: '2026-01-05T03:00:00Z',
      eventId: 'e-1',
    });
  });

  it('builds an S3 Object Created event that a landing rule pattern matches', () => {
    const event = s3ObjectCreatedEvent({
      account: '111122223333',
      region: 'eu-west-1',
      bucket: 'landing',
      key: 'credit-scoring/a.csv',
      size: 3,
      etag: '"abc"',
      versionId: 'v1',
    });
    const pattern = {
      source: ['aws.s3'],
      'detail-type': ['Object Created'],
      detail: { bucket: { name: ['landing'] }, object: { key: [{ prefix: 'credit-scoring/' }] } },
    };
    expect(matchesPattern(pattern, event)).toBe(true);
    expect((event.detail as { object: { etag: string; 'version-id': string } }).object).toMatchObject({
      etag: 'abc',
      'version-id': 'v1',
    });
    expect(
      matchesPattern(pattern, {
        ...event,
        detail: { ...(event.detail as object), object: { key: 'other/a.csv' } },
      }),
    ).toBe(false);
  });
});

describe('training image', () => {
  it('runs the example image as `docker run <image> train` would, COPY paths mapped to the build context', async () => {
    const { imageCommand } = await import('./harness/image.js');
    const { join } = await import('node:path');
    const { REPO_ROOT } = await import('./harness/templates.js');
    const dir = join(REPO_ROOT, 'examples', 'credit-scoring', 'image');
    expect(imageCommand(join(dir, 'Dockerfile'))).toEqual({
      command: ['node', join(dir, 'train.mjs'), 'train'],
      cwd: dir,
    });
  });
});
