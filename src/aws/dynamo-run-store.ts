import {
  type AttributeValue,
  ConditionalCheckFailedException,
  CreateTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  ResourceNotFoundException,
  ScanCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import type { ErrorInfo } from '../core/errors.js';
import { VeritrailError } from '../core/errors.js';
import { redactValue } from '../core/redact.js';
import { assertTransition, legalSourcesOf, RunExistsError, type RunStatus } from '../core/run.js';
import { DEFAULT_UNIT } from '../core/unit.js';
import type {
  ExecutionClaim,
  ExecutionIndex,
  NewRun,
  RunRecord,
  RunStore,
  StepRecord,
  TaskTokenStore,
} from '../ports.js';

/**
 * Run state in one DynamoDB table (single-table design), used on AWS and, unchanged, against the
 * embedded dynalite server.
 *
 *   pk = RUN#<runId>   sk = RUN   the run item: status, unit, dataset, facts (map), steps (map by name)
 *   gsi1pk = PIPELINE#<name>   gsi1sk = <createdAt>#<runId>   runs of a pipeline, newest first
 *   pk = RUN#<runId>   sk = EXECUTION   the execution that owns the run (first claim wins); while
 *                                       the run is unsettled also gsi1pk = ACTIVE, gsi1sk =
 *                                       <claimedAt>#<runId>: the reconciler's work list
 *   pk = TASK#<runId>  sk = TOKEN#<step> a waiting step's Step Functions task token, on its own
 *                                       partition key so that IAM (dynamodb:LeadingKeys) can keep
 *                                       every function but its writer and readers away from it
 *
 * Every status change is a conditional update whose condition lists the statuses it may come from
 * (src/core/run.ts), so an illegal transition is refused by the store itself, even under races.
 */
const TABLE_KEYS = { pk: 'pk', sk: 'sk', gsi1: 'gsi1', gsi1pk: 'gsi1pk', gsi1sk: 'gsi1sk' } as const;

const RUN_SK = 'RUN';
const runPk = (runId: string) => `RUN#${runId}`;
const EXECUTION_SK = 'EXECUTION';
/** gsi1 partition of unsettled claims (sparse: a settled claim has no gsi1 keys). */
const ACTIVE_GSI1PK = 'ACTIVE';
/** Partition key prefix of task-token items; no other item lives under it. */
export const TASK_TOKEN_PK_PREFIX = 'TASK#';
const taskPk = (runId: string) => `${TASK_TOKEN_PK_PREFIX}${runId}`;
const taskSk = (step: string) => `TOKEN#${step}`;

interface ClaimItem extends ExecutionClaim {
  pk: string;
  sk: string;
  gsi1pk?: string;
  gsi1sk?: string;
}

interface RunItem extends Omit<RunRecord, 'steps'> {
  pk: string;
  sk: string;
  gsi1pk: string;
  gsi1sk: string;
  steps: Record<string, StepRecord>;
}

export class DynamoRunStore implements RunStore, TaskTokenStore, ExecutionIndex {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async create(input: NewRun): Promise<RunRecord> {
    // Invariant 7: free text is redacted (src/core/redact.ts) before it is stored, here and below.
    const run = redactValue(input);
    const at = this.now().toISOString();
    const item: RunItem = {
      ...run,
      pk: runPk(run.runId),
      sk: RUN_SK,
      gsi1pk: `PIPELINE#${run.pipeline}`,
      gsi1sk: `${run.createdAt}#${run.runId}`,
      status: 'PENDING',
      updatedAt: at,
      steps: {},
      facts: {},
    };
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: marshall(item, { removeUndefinedValues: true }),
          ConditionExpression: 'attribute_not_exists(pk)',
          // The refusal carries the run already recorded: no second request to name it.
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
    } catch (e) {
      if (isConditionalFailure(e)) throw await this.runExists(run.runId, e);
      throw translate(e, 'PutItem');
    }
    return toRecord(item);
  }

  /**
   * RUN_EXISTS with the run that is recorded, taken from the refused PutItem itself (DynamoDB
   * returns the item under ReturnValuesOnConditionCheckFailure ALL_OLD). dynalite, the embedded
   * runtime's DynamoDB, ignores that parameter and returns no item (github.com/architect/dynalite
   * issue 182): only then is the run read, once.
   */
  private async runExists(runId: string, refusal: unknown): Promise<VeritrailError> {
    const old = oldItemOf(refusal);
    const existing = old !== undefined ? toRecord(unmarshall(old) as RunItem) : await this.get(runId);
    if (existing === undefined) {
      // Runs are never deleted: a refusal for an absent run is a read that raced something odd.
      return new VeritrailError('TRANSIENT', `run ${runId} was refused as recorded but is not there; retry`, {
        cause: refusal,
      });
    }
    return new RunExistsError(existing, { cause: refusal });
  }

  async get(runId: string): Promise<RunRecord | undefined> {
    try {
      const out = await this.client.send(
        new GetItemCommand({
          TableName: this.tableName,
          Key: marshall({ pk: runPk(runId), sk: RUN_SK }),
          ConsistentRead: true,
        }),
      );
      return out.Item ? toRecord(unmarshall(out.Item) as RunItem) : undefined;
    } catch (e) {
      throw translate(e, 'GetItem');
    }
  }

  async transition(
    runId: string,
    to: RunStatus,
    unsafePatch: { facts?: Record<string, unknown>; error?: ErrorInfo } = {},
  ): Promise<RunRecord> {
    const patch = redactValue(unsafePatch);
    const from = legalSourcesOf(to);
    const names: Record<string, string> = { '#status': 'status', '#updatedAt': 'updatedAt' };
    const values: Record<string, unknown> = { ':to': to, ':at': this.now().toISOString() };
    const sets = ['#status = :to', '#updatedAt = :at'];
    from.forEach((s, i) => {
      values[`:from${i}`] = s;
    });
    if (patch.error) {
      names['#error'] = 'error';
      values[':error'] = patch.error;
      sets.push('#error = :error');
    }
    addFactSets(patch.facts, names, values, sets);
    const condition =
      from.length > 0
        ? `attribute_exists(pk) AND #status IN (${from.map((_, i) => `:from${i}`).join(', ')})`
        : 'attribute_exists(pk) AND attribute_not_exists(pk)';
    try {
      const out = await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: marshall({ pk: runPk(runId), sk: RUN_SK }),
          UpdateExpression: `SET ${sets.join(', ')}`,
          ConditionExpression: condition,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: marshall(values, { removeUndefinedValues: true }),
          ReturnValues: 'ALL_NEW',
        }),
      );
      return toRecord(unmarshall(out.Attributes ?? {}) as RunItem);
    } catch (e) {
      if (isConditionalFailure(e)) throw await this.explainRefusal(runId, to, e);
      throw translate(e, 'UpdateItem');
    }
  }

  async recordStep(
    runId: string,
    unsafeStep: StepRecord,
    unsafeFacts?: Record<string, unknown>,
  ): Promise<void> {
    const step = redactValue(unsafeStep);
    const facts = redactValue(unsafeFacts);
    const names: Record<string, string> = {
      '#status': 'status',
      '#steps': 'steps',
      '#step': step.name,
      '#updatedAt': 'updatedAt',
    };
    const values: Record<string, unknown> = {
      ':step': step,
      ':running': 'RUNNING',
      ':at': this.now().toISOString(),
    };
    const sets = ['#steps.#step = :step', '#updatedAt = :at'];
    addFactSets(facts, names, values, sets);
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: marshall({ pk: runPk(runId), sk: RUN_SK }),
          UpdateExpression: `SET ${sets.join(', ')}`,
          ConditionExpression: 'attribute_exists(pk) AND #status = :running',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: marshall(values, {
            removeUndefinedValues: true,
            convertClassInstanceToMap: true,
          }),
        }),
      );
    } catch (e) {
      if (isConditionalFailure(e)) {
        const run = await this.get(runId);
        if (!run) throw new VeritrailError('RUN_NOT_FOUND', `run ${runId} is not recorded`, { cause: e });
        throw new VeritrailError(
          'RUN_TRANSITION_ILLEGAL',
          `run ${runId} is ${run.status}; steps can only be recorded while it is RUNNING`,
          { cause: e, details: { runId, status: run.status } },
        );
      }
      throw translate(e, 'UpdateItem');
    }
  }

  async list(options: { pipeline?: string; unit?: string; limit?: number } = {}): Promise<RunRecord[]> {
    const limit = options.limit ?? 50;
    const items: RunItem[] = [];
    // A run recorded without a unit (before units existed) belongs to the default unit.
    const byUnit =
      options.unit === undefined
        ? undefined
        : {
            expression:
              options.unit === DEFAULT_UNIT
                ? '(attribute_not_exists(#unit) OR #unit = :unit)'
                : '#unit = :unit',
            names: { '#unit': 'unit' },
            values: { ':unit': options.unit },
          };
    try {
      if (options.pipeline) {
        let start: Record<string, unknown> | undefined;
        do {
          const out = await this.client.send(
            new QueryCommand({
              TableName: this.tableName,
              IndexName: TABLE_KEYS.gsi1,
              KeyConditionExpression: 'gsi1pk = :p',
              ...(byUnit
                ? { FilterExpression: byUnit.expression, ExpressionAttributeNames: byUnit.names }
                : {}),
              ExpressionAttributeValues: marshall({
                ':p': `PIPELINE#${options.pipeline}`,
                ...byUnit?.values,
              }),
              ScanIndexForward: false,
              ExclusiveStartKey: start ? marshall(start) : undefined,
            }),
          );
          for (const i of out.Items ?? []) items.push(unmarshall(i) as RunItem);
          start = out.LastEvaluatedKey ? unmarshall(out.LastEvaluatedKey) : undefined;
        } while (start && items.length < limit);
      } else {
        let start: Record<string, unknown> | undefined;
        do {
          const out = await this.client.send(
            new ScanCommand({
              TableName: this.tableName,
              FilterExpression: byUnit ? `sk = :run AND ${byUnit.expression}` : 'sk = :run',
              ...(byUnit ? { ExpressionAttributeNames: byUnit.names } : {}),
              ExpressionAttributeValues: marshall({ ':run': RUN_SK, ...byUnit?.values }),
              ExclusiveStartKey: start ? marshall(start) : undefined,
            }),
          );
          for (const i of out.Items ?? []) items.push(unmarshall(i) as RunItem);
          start = out.LastEvaluatedKey ? unmarshall(out.LastEvaluatedKey) : undefined;
        } while (start);
      }
    } catch (e) {
      throw translate(e, options.pipeline ? 'Query' : 'Scan');
    }
    return items
      .sort((a, b) => (a.gsi1sk < b.gsi1sk ? 1 : a.gsi1sk > b.gsi1sk ? -1 : 0))
      .slice(0, limit)
      .map(toRecord);
  }

  // ───────────── task tokens (TaskTokenStore) ─────────────

  async putTaskToken(runId: string, step: string, token: string): Promise<void> {
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          // A retried state gets a new token: the newest one is the one Step Functions waits on.
          Item: marshall({
            pk: taskPk(runId),
            sk: taskSk(step),
            runId,
            step,
            token,
            storedAt: this.now().toISOString(),
          }),
        }),
      );
    } catch (e) {
      throw translate(e, 'PutItem');
    }
  }

  async getTaskToken(runId: string, step: string): Promise<string | undefined> {
    try {
      const out = await this.client.send(
        new GetItemCommand({
          TableName: this.tableName,
          Key: marshall({ pk: taskPk(runId), sk: taskSk(step) }),
          ConsistentRead: true,
        }),
      );
      const token = out.Item ? unmarshall(out.Item).token : undefined;
      return typeof token === 'string' ? token : undefined;
    } catch (e) {
      throw translate(e, 'GetItem');
    }
  }

  // ───────────── execution claims (ExecutionIndex) ─────────────

  async claim(runId: string, executionArn: string): Promise<ExecutionClaim> {
    const claimedAt = this.now().toISOString();
    const item: ClaimItem = {
      pk: runPk(runId),
      sk: EXECUTION_SK,
      runId,
      executionArn,
      claimedAt,
      gsi1pk: ACTIVE_GSI1PK,
      gsi1sk: `${claimedAt}#${runId}`,
    };
    try {
      // Never overwritten, not even by its own holder: a settled claim must stay settled.
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: marshall(item),
          ConditionExpression: 'attribute_not_exists(pk)',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return { runId, executionArn, claimedAt };
    } catch (e) {
      if (!isConditionalFailure(e)) throw translate(e, 'PutItem');
      // The holder, from the refusal itself; read only where the server does not return it (dynalite).
      const old = oldItemOf(e);
      if (old !== undefined) {
        const { executionArn: holderArn, claimedAt: heldSince } = unmarshall(old) as ClaimItem;
        return { runId, executionArn: holderArn, claimedAt: heldSince };
      }
    }
    const held = await this.holder(runId);
    if (!held) {
      throw new VeritrailError('TRANSIENT', `the claim of run ${runId} changed while it was read; retry`);
    }
    return held;
  }

  async active(options: { limit?: number } = {}): Promise<ExecutionClaim[]> {
    const limit = options.limit ?? 500;
    const out: ExecutionClaim[] = [];
    let start: Record<string, unknown> | undefined;
    try {
      do {
        const page = await this.client.send(
          new QueryCommand({
            TableName: this.tableName,
            IndexName: TABLE_KEYS.gsi1,
            KeyConditionExpression: 'gsi1pk = :a',
            ExpressionAttributeValues: marshall({ ':a': ACTIVE_GSI1PK }),
            ScanIndexForward: true,
            Limit: limit,
            ExclusiveStartKey: start ? marshall(start) : undefined,
          }),
        );
        for (const i of page.Items ?? []) {
          const { runId, executionArn, claimedAt } = unmarshall(i) as ClaimItem;
          out.push({ runId, executionArn, claimedAt });
        }
        start = page.LastEvaluatedKey ? unmarshall(page.LastEvaluatedKey) : undefined;
      } while (start && out.length < limit);
    } catch (e) {
      throw translate(e, 'Query');
    }
    return out.slice(0, limit);
  }

  async settle(runId: string): Promise<void> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: marshall({ pk: runPk(runId), sk: EXECUTION_SK }),
          UpdateExpression: 'REMOVE gsi1pk, gsi1sk',
          ConditionExpression: 'attribute_exists(pk)',
        }),
      );
    } catch (e) {
      // No claim (a run from before claims existed, or one that never reached RegisterRun): nothing to settle.
      if (isConditionalFailure(e)) return;
      throw translate(e, 'UpdateItem');
    }
  }

  async holder(runId: string): Promise<ExecutionClaim | undefined> {
    try {
      const out = await this.client.send(
        new GetItemCommand({
          TableName: this.tableName,
          Key: marshall({ pk: runPk(runId), sk: EXECUTION_SK }),
          ConsistentRead: true,
        }),
      );
      if (!out.Item) return undefined;
      const { executionArn, claimedAt } = unmarshall(out.Item) as ClaimItem;
      return { runId, executionArn, claimedAt };
    } catch (e) {
      throw translate(e, 'GetItem');
    }
  }

  private async explainRefusal(runId: string, to: RunStatus, cause: unknown): Promise<VeritrailError> {
    const run = await this.get(runId);
    if (!run) return new VeritrailError('RUN_NOT_FOUND', `run ${runId} is not recorded`, { cause });
    try {
      assertTransition(runId, run.status, to);
    } catch (e) {
      if (e instanceof VeritrailError) return e;
    }
    // Legal now but refused a moment ago: another writer changed it in between.
    return new VeritrailError('RUN_TRANSITION_ILLEGAL', `run ${runId} changed concurrently; retry`, {
      cause,
    });
  }
}

function addFactSets(
  facts: Record<string, unknown> | undefined,
  names: Record<string, string>,
  values: Record<string, unknown>,
  sets: string[],
): void {
  if (!facts) return;
  names['#facts'] = 'facts';
  Object.entries(facts).forEach(([k, v], i) => {
    if (v === undefined) return;
    names[`#f${i}`] = k;
    values[`:f${i}`] = v;
    sets.push(`#facts.#f${i} = :f${i}`);
  });
}

function toRecord(item: RunItem): RunRecord {
  const { pk: _pk, sk: _sk, gsi1pk: _g1, gsi1sk: _g2, steps, ...rest } = item;
  return {
    ...rest,
    facts: rest.facts ?? {},
    steps: Object.values(steps ?? {}).sort((a, b) =>
      a.startedAt < b.startedAt ? -1 : a.startedAt > b.startedAt ? 1 : 0,
    ),
  };
}

/** The item a refused conditional write returned (ReturnValuesOnConditionCheckFailure ALL_OLD), if any. */
function oldItemOf(e: unknown): Record<string, AttributeValue> | undefined {
  const item = (e as { Item?: Record<string, AttributeValue> } | null)?.Item;
  return item !== undefined && Object.keys(item).length > 0 ? item : undefined;
}

function isConditionalFailure(e: unknown): boolean {
  return (
    e instanceof ConditionalCheckFailedException ||
    (e as { name?: string })?.name === 'ConditionalCheckFailedException'
  );
}

function translate(e: unknown, operation: string): VeritrailError {
  const name = (e as { name?: string })?.name ?? '';
  if (e instanceof VeritrailError) return e;
  if (e instanceof ResourceNotFoundException || name === 'ResourceNotFoundException') {
    return new VeritrailError(
      'INTERNAL',
      `DynamoDB ${operation}: the run table does not exist; deploy the stack first`,
      {
        cause: e,
      },
    );
  }
  if (
    /Throttl|ProvisionedThroughputExceeded|RequestLimitExceeded|InternalServerError|ServiceUnavailable/.test(
      name,
    )
  ) {
    return new VeritrailError(
      'TRANSIENT',
      `DynamoDB ${operation} was throttled or unavailable; it will be retried`,
      {
        cause: e,
      },
    );
  }
  const message = e instanceof Error ? e.message : String(e);
  return new VeritrailError('INTERNAL', `DynamoDB ${operation} failed: ${message}`, { cause: e });
}

/** Creates the run table when missing (embedded runtime and tests; on AWS the stack owns it). */
export async function ensureRunTable(client: DynamoDBClient, tableName: string): Promise<void> {
  try {
    const d = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (d.Table?.TableStatus === 'ACTIVE') return;
  } catch (e) {
    if (
      !(e instanceof ResourceNotFoundException) &&
      (e as { name?: string }).name !== 'ResourceNotFoundException'
    ) {
      throw translate(e, 'DescribeTable');
    }
    await client.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
          { AttributeName: 'gsi1pk', AttributeType: 'S' },
          { AttributeName: 'gsi1sk', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        GlobalSecondaryIndexes: [
          {
            IndexName: TABLE_KEYS.gsi1,
            KeySchema: [
              { AttributeName: 'gsi1pk', KeyType: 'HASH' },
              { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: 'ALL' },
          },
        ],
      }),
    );
  }
  for (let i = 0; i < 100; i++) {
    const d = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (d.Table?.TableStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new VeritrailError('TRANSIENT', `table ${tableName} did not become ACTIVE`);
}
