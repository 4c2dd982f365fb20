/**
 * A witness's state in DynamoDB (the Witness stack's own table): one item per log origin holding
 * the latest checkpoint the witness cosigned.
 *
 *   origin (partition key, S)   size (N)   root (S, base64)   note (S)   updatedAt (S)
 *
 * `set` is one conditional PutItem on the record it replaces: `attribute_not_exists(origin)` for
 * the first checkpoint of a log, `size = :previousSize AND root = :previousRoot` after that. Two
 * witness invocations that checked two diverging checkpoints against the same state can therefore
 * never both store (and answer) theirs: DynamoDB applies one put, the other fails its condition
 * (ConditionalCheckFailedException) and that request is checked again against the new state
 * (src/audit/witness/core.ts), which refuses it. Reads are strongly consistent, so a check never
 * starts from a state older than the last acknowledged write.
 *
 * Refused requests (possible evidence of log misbehaviour) go to the function's log as one JSON
 * line each, not to the table: an unauthenticated caller can replay a checkpoint the log signed,
 * and the log group's retention bounds what that costs.
 */
import {
  ConditionalCheckFailedException,
  CreateTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  type PutItemCommandInput,
} from '@aws-sdk/client-dynamodb';
import type { WitnessRecord, WitnessStore } from '../audit/witness/core.js';
import { WITNESS_TABLE_KEY } from '../core/deployment.js';
import { VeritrailError } from '../core/errors.js';
import { awsCall, translateAwsError } from './errors.js';

export interface DynamoWitnessStoreOptions {
  /** Where refused requests are written (default: one JSON line on stderr, the function's log). */
  evidence?: (line: string) => void;
  now?: () => Date;
  /** The environment variable naming the table, quoted in error messages. */
  configuredBy?: string;
}

function isConditionalFailure(e: unknown): boolean {
  return (
    e instanceof ConditionalCheckFailedException ||
    (e as { name?: string } | null)?.name === 'ConditionalCheckFailedException'
  );
}

export class DynamoWitnessStore implements WitnessStore {
  private readonly log: (line: string) => void;
  private readonly now: () => Date;

  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly options: DynamoWitnessStoreOptions = {},
  ) {
    if (!tableName) throw new VeritrailError('USAGE', 'DynamoWitnessStore needs a table name');
    this.log = options.evidence ?? ((line) => process.stderr.write(`${line}\n`));
    this.now = options.now ?? (() => new Date());
  }

  private ctx(action: string) {
    return {
      action,
      resource: this.tableName,
      ...(this.options.configuredBy ? { configuredBy: this.options.configuredBy } : {}),
    };
  }

  async get(origin: string): Promise<WitnessRecord | undefined> {
    const out = await awsCall(this.ctx('dynamodb:GetItem'), () =>
      this.client.send(
        new GetItemCommand({
          TableName: this.tableName,
          Key: { [WITNESS_TABLE_KEY]: { S: origin } },
          ConsistentRead: true,
        }),
      ),
    );
    const item = out.Item;
    if (item === undefined) return undefined;
    const size = Number(item.size?.N);
    const root = item.root?.S;
    const note = item.note?.S;
    if (item.origin?.S !== origin || !Number.isSafeInteger(size) || size < 0 || !root || !note) {
      throw new VeritrailError(
        'AUDIT_CORRUPT',
        `witness state for "${origin}" in table ${this.tableName} is unreadable: restore it from a backup (point-in-time recovery), never delete it`,
      );
    }
    return { size, root, note };
  }

  async set(origin: string, record: WitnessRecord, previous: WitnessRecord | undefined): Promise<boolean> {
    const condition: Pick<
      PutItemCommandInput,
      'ConditionExpression' | 'ExpressionAttributeNames' | 'ExpressionAttributeValues'
    > =
      previous === undefined
        ? {
            ConditionExpression: 'attribute_not_exists(#origin)',
            ExpressionAttributeNames: { '#origin': WITNESS_TABLE_KEY },
          }
        : {
            ConditionExpression: '#size = :previousSize AND #root = :previousRoot',
            ExpressionAttributeNames: { '#size': 'size', '#root': 'root' },
            ExpressionAttributeValues: {
              ':previousSize': { N: String(previous.size) },
              ':previousRoot': { S: previous.root },
            },
          };
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: {
            [WITNESS_TABLE_KEY]: { S: origin },
            size: { N: String(record.size) },
            root: { S: record.root },
            note: { S: record.note },
            updatedAt: { S: this.now().toISOString() },
          },
          ...condition,
        }),
      );
      return true;
    } catch (e) {
      if (isConditionalFailure(e)) return false;
      // Translated (access denied, throttling…) with the same wording as every other AWS call.
      throw translateAwsError(e, this.ctx('dynamodb:PutItem'));
    }
  }

  async evidence(origin: string, reason: string, body: string): Promise<void> {
    this.log(
      JSON.stringify({
        level: 'WARN',
        message: 'witness refused a checkpoint signed by a trusted log key',
        time: this.now().toISOString(),
        origin,
        reason,
        body,
      }),
    );
  }
}

/** Creates the witness table when missing (tests and local runs; on AWS the Witness stack owns it). */
export async function ensureWitnessTable(client: DynamoDBClient, tableName: string): Promise<void> {
  try {
    const d = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (d.Table?.TableStatus === 'ACTIVE') return;
  } catch (e) {
    if ((e as { name?: string } | null)?.name !== 'ResourceNotFoundException') throw e;
    await client.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [{ AttributeName: WITNESS_TABLE_KEY, AttributeType: 'S' }],
        KeySchema: [{ AttributeName: WITNESS_TABLE_KEY, KeyType: 'HASH' }],
      }),
    );
  }
  for (let i = 0; i < 100; i++) {
    const d = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (d.Table?.TableStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new VeritrailError('TRANSIENT', `witness table ${tableName} did not become ACTIVE; try again`);
}
