import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRunStore } from '../../src/aws/dynamo-run-store.js';
import { isVeritrailError } from '../../src/core/errors.js';
import { LEGAL_TRANSITIONS, RunExistsError, RunStatus } from '../../src/core/run.js';
import { LOCAL_TABLE, type LocalDynamo, startLocalDynamo } from '../../src/local/dynamo.js';
import type { NewRun } from '../../src/ports.js';

let dynamo: LocalDynamo;
let store: DynamoRunStore;
let n = 0;

const newRun = (): NewRun => {
  n++;
  return {
    runId: `r-test-${n}`,
    pipeline: n % 2 ? 'p-odd' : 'p-even',
    pipelineDigest: `sha256:${'0'.repeat(64)}`,
    trigger: 'operator',
    idempotencyKey: `k-${n}`,
    dataset: { uri: 'file:///data.csv' },
    createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
  };
};

beforeAll(async () => {
  dynamo = await startLocalDynamo(undefined);
  store = new DynamoRunStore(dynamo.client, LOCAL_TABLE);
});
afterAll(async () => dynamo.close());

describe('the DynamoDB run store', () => {
  it('creates a run once: a second create with the same id is refused', async () => {
    const run = newRun();
    expect((await store.create(run)).status).toBe('PENDING');
    await expect(store.create(run)).rejects.toSatisfy((e) => isVeritrailError(e, 'RUN_EXISTS'));
  });

  it('refuses a second create with the run already recorded (on dynalite, read once)', async () => {
    const run = newRun();
    await store.create(run);
    await store.transition(run.runId, 'RUNNING');
    const sent = countingClient(dynamo.client);
    const refusal = await new DynamoRunStore(sent.client, LOCAL_TABLE)
      .create({ ...run, createdAt: new Date().toISOString() })
      .catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(RunExistsError);
    expect((refusal as RunExistsError).existing).toEqual(await store.get(run.runId));
    expect((refusal as RunExistsError).existing.status).toBe('RUNNING');
    // dynalite ignores ReturnValuesOnConditionCheckFailure: the store reads the run, once.
    expect(sent.names).toEqual(['PutItemCommand', 'GetItemCommand']);
  });

  it('refuses, in the store itself, every transition the table does not allow', async () => {
    const statuses = Object.values(RunStatus);
    for (const from of statuses) {
      for (const to of statuses) {
        const run = newRun();
        await store.create(run);
        // Walk to `from` along legal edges.
        const path: Record<string, string[]> = {
          PENDING: [],
          RUNNING: ['RUNNING'],
          SUCCEEDED: ['RUNNING', 'SUCCEEDED'],
          REJECTED: ['RUNNING', 'REJECTED'],
          FAILED: ['FAILED'],
        };
        for (const s of path[from] ?? []) await store.transition(run.runId, s as RunStatus);
        const legal = LEGAL_TRANSITIONS[from].includes(to);
        if (legal) {
          expect((await store.transition(run.runId, to)).status).toBe(to);
        } else {
          await expect(store.transition(run.runId, to), `${from} → ${to}`).rejects.toSatisfy((e) =>
            isVeritrailError(e, 'RUN_TRANSITION_ILLEGAL'),
          );
          expect((await store.get(run.runId))?.status).toBe(from);
        }
      }
    }
  });

  it('records steps only while the run is RUNNING', async () => {
    const run = newRun();
    await store.create(run);
    const step = { name: 'HashDataset', status: 'SUCCEEDED' as const, startedAt: 'a', endedAt: 'b' };
    await expect(store.recordStep(run.runId, step)).rejects.toSatisfy((e) =>
      isVeritrailError(e, 'RUN_TRANSITION_ILLEGAL'),
    );
    await store.transition(run.runId, 'RUNNING');
    await store.recordStep(run.runId, step, { rawDigest: 'x' });
    await store.transition(run.runId, 'SUCCEEDED');
    await expect(store.recordStep(run.runId, step)).rejects.toSatisfy((e) =>
      isVeritrailError(e, 'RUN_TRANSITION_ILLEGAL'),
    );
    const got = await store.get(run.runId);
    expect(got?.steps).toHaveLength(1);
    expect(got?.facts).toEqual({ rawDigest: 'x' });
  });

  it('an unknown run is RUN_NOT_FOUND', async () => {
    await expect(store.transition('r-missing', 'RUNNING')).rejects.toSatisfy((e) =>
      isVeritrailError(e, 'RUN_NOT_FOUND'),
    );
  });

  it('lets exactly one of many concurrent finishers win', async () => {
    const run = newRun();
    await store.create(run);
    await store.transition(run.runId, 'RUNNING');
    const outcomes = await Promise.allSettled(
      (['SUCCEEDED', 'FAILED', 'REJECTED', 'FAILED', 'SUCCEEDED'] as const).map((s) =>
        store.transition(run.runId, s),
      ),
    );
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
  });

  it('under any sequence of requests, the stored status only ever follows legal edges', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom(...Object.values(RunStatus)), { maxLength: 6 }),
        async (requests) => {
          const run = newRun();
          await store.create(run);
          let status: RunStatus = 'PENDING';
          for (const to of requests) {
            const legal = LEGAL_TRANSITIONS[status].includes(to);
            const ok = await store.transition(run.runId, to).then(
              () => true,
              () => false,
            );
            expect(ok).toBe(legal);
            if (ok) status = to;
          }
          expect((await store.get(run.runId))?.status).toBe(status);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('lists runs newest first, by pipeline or all', async () => {
    const all = await store.list({ limit: 1000 });
    expect(all.length).toBeGreaterThan(5);
    expect([...all].sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1)).map((r) => r.runId)).toEqual(
      all.map((r) => r.runId),
    );
    const odd = await store.list({ pipeline: 'p-odd', limit: 3 });
    expect(odd).toHaveLength(3);
    expect(odd.every((r) => r.pipeline === 'p-odd')).toBe(true);
  });
});

/** The client, with the name of every command sent through it recorded. */
function countingClient(client: DynamoDBClient): { client: DynamoDBClient; names: string[] } {
  const names: string[] = [];
  const send = (command: { constructor: { name: string } }) => {
    names.push(command.constructor.name);
    return client.send(command as never);
  };
  return { client: { send } as unknown as DynamoDBClient, names };
}

describe('where DynamoDB returns the refused item (ReturnValuesOnConditionCheckFailure)', () => {
  // This one client only: the dynalite client of the other tests stays real.
  const client = new DynamoDBClient({ region: 'eu-west-1' });
  const ddb = mockClient(client);
  afterEach(() => ddb.reset());
  const refused = (item: Record<string, unknown>) =>
    new ConditionalCheckFailedException({
      message: 'The conditional request failed',
      $metadata: {},
      Item: marshall(item, { removeUndefinedValues: true }),
    });

  it('answers a second create with the recorded run from the refusal, without reading it', async () => {
    const run = newRun();
    const recorded = {
      ...run,
      pk: `RUN#${run.runId}`,
      sk: 'RUN',
      gsi1pk: `PIPELINE#${run.pipeline}`,
      gsi1sk: `${run.createdAt}#${run.runId}`,
      status: 'SUCCEEDED',
      updatedAt: '2026-01-01T01:00:00.000Z',
      steps: { HashDataset: { name: 'HashDataset', status: 'SUCCEEDED', startedAt: 'a', endedAt: 'b' } },
      facts: { rawDigest: 'x' },
    };
    ddb.on(PutItemCommand).rejects(refused(recorded));
    const refusal = await new DynamoRunStore(client, LOCAL_TABLE).create(run).catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(RunExistsError);
    expect((refusal as RunExistsError).existing).toMatchObject({
      runId: run.runId,
      status: 'SUCCEEDED',
      facts: { rawDigest: 'x' },
      steps: [{ name: 'HashDataset' }],
    });
    expect(ddb.commandCalls(PutItemCommand)[0]?.args[0].input.ReturnValuesOnConditionCheckFailure).toBe(
      'ALL_OLD',
    );
    expect(ddb.commandCalls(GetItemCommand)).toHaveLength(0);
  });

  it('names the execution holding a claim from the refusal, without reading it', async () => {
    const A = 'arn:aws:states:eu-west-1:111122223333:execution:training-pipeline:a';
    const B = 'arn:aws:states:eu-west-1:111122223333:execution:training-pipeline:b';
    ddb
      .on(PutItemCommand)
      .rejects(refused({ pk: 'RUN#r-1', sk: 'EXECUTION', runId: 'r-1', executionArn: A, claimedAt: 't0' }));
    const store = new DynamoRunStore(client, LOCAL_TABLE);
    expect(await store.claim('r-1', B)).toEqual({ runId: 'r-1', executionArn: A, claimedAt: 't0' });
    expect(ddb.commandCalls(GetItemCommand)).toHaveLength(0);
  });
});

describe('execution claims', () => {
  const A = 'arn:aws:states:eu-west-1:111122223333:execution:training-pipeline:a';
  const B = 'arn:aws:states:eu-west-1:111122223333:execution:training-pipeline:b';

  it('gives a run to the first execution that claims it; a second one is told who holds it', async () => {
    const run = newRun();
    await store.create(run);
    expect((await store.claim(run.runId, A)).executionArn).toBe(A);
    expect((await store.claim(run.runId, B)).executionArn).toBe(A);
    // The holder claiming again (a retried RegisterRun) keeps it.
    expect((await store.claim(run.runId, A)).executionArn).toBe(A);
  });

  it('settles: a settled claim leaves the active list for good, and still names its holder', async () => {
    const run = newRun();
    await store.create(run);
    await store.claim(run.runId, A);
    expect((await store.active()).map((c) => c.runId)).toContain(run.runId);
    await store.settle(run.runId);
    expect((await store.active()).map((c) => c.runId)).not.toContain(run.runId);
    expect((await store.claim(run.runId, B)).executionArn).toBe(A);
    expect((await store.active()).map((c) => c.runId)).not.toContain(run.runId);
  });

  it('settling a run nobody claimed is a no-op', async () => {
    await expect(store.settle('r-never-claimed')).resolves.toBeUndefined();
    expect((await store.active()).map((c) => c.runId)).not.toContain('r-never-claimed');
  });

  it('keeps claims and task tokens out of run listings', async () => {
    const run = newRun();
    await store.create(run);
    await store.claim(run.runId, A);
    await store.putTaskToken(run.runId, 'Train', 'token-that-must-not-be-listed');
    for (const listed of [await store.list(), await store.list({ pipeline: run.pipeline, limit: 1000 })]) {
      expect(listed.filter((r) => r.runId === run.runId)).toHaveLength(1);
      expect(JSON.stringify(listed)).not.toContain('token-that-must-not-be-listed');
      expect(JSON.stringify(listed)).not.toContain(A);
    }
  });
});

describe('task tokens', () => {
  it('are kept apart from the run record: get never returns them', async () => {
    const run = newRun();
    await store.create(run);
    await store.putTaskToken(run.runId, 'Train', 'tok-1');
    expect(await store.getTaskToken(run.runId, 'Train')).toBe('tok-1');
    expect(JSON.stringify(await store.get(run.runId))).not.toContain('tok-1');
    // A retried Train state gets a new token: the newest is the one waited on.
    await store.putTaskToken(run.runId, 'Train', 'tok-2');
    expect(await store.getTaskToken(run.runId, 'Train')).toBe('tok-2');
    expect(await store.getTaskToken(run.runId, 'Evaluate')).toBeUndefined();
    expect(await store.getTaskToken('r-unknown', 'Train')).toBeUndefined();
  });
});
