import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { type StackContext, Table, use } from 'sst/constructs';
import { publish, removeUnusedSstHandler } from './common.js';
import { Keys } from './Keys.js';

/**
 * The single table (runs, steps, idempotency records, audit head hints): `pk`/`sk`, and `gsi1`
 * on `gsi1pk`/`gsi1sk` for runs by pipeline and time. Point-in-time recovery, encryption with the
 * customer-managed data key, deletion protection, retained on `sst remove`.
 */
export function Database({ stack }: StackContext) {
  const { dataKey } = use(Keys);
  const table = new Table(stack, 'runs', {
    fields: { pk: 'string', sk: 'string', gsi1pk: 'string', gsi1sk: 'string' },
    primaryIndex: { partitionKey: 'pk', sortKey: 'sk' },
    globalIndexes: { gsi1: { partitionKey: 'gsi1pk', sortKey: 'gsi1sk' } },
    cdk: {
      table: {
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        pointInTimeRecovery: true,
        encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
        encryptionKey: dataKey,
        deletionProtection: true,
        removalPolicy: RemovalPolicy.RETAIN,
      },
    },
  });

  publish(stack, stack.stage, 'table-name', table.tableName, 'DynamoDB table of runs');
  removeUnusedSstHandler(stack);
  return { table: table.cdk.table };
}
