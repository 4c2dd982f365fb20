import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ensureRunTable } from '../aws/dynamo-run-store.js';
import { VeritrailError } from '../core/errors.js';

const require = createRequire(import.meta.url);
type DynaliteFactory = (options: {
  path?: string;
  createTableMs?: number;
  deleteTableMs?: number;
  updateTableMs?: number;
}) => Server;
const dynalite = require('dynalite') as DynaliteFactory;

export const LOCAL_TABLE = 'veritrail-runs';

export interface LocalDynamo {
  client: DynamoDBClient;
  endpoint: string;
  close(): Promise<void>;
}

/**
 * Serves the DynamoDB protocol in-process (dynalite, persisted with LevelDB under `dir`, or in memory
 * when `dir` is undefined) on a loopback port, so the run store runs the same SDK code as on AWS.
 */
export async function startLocalDynamo(dir: string | undefined): Promise<LocalDynamo> {
  if (dir) await mkdir(dir, { recursive: true });
  const server = dynalite({ path: dir, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  // Explicit placeholder credentials: the embedded server checks none, and the SDK must not go
  // looking for real ones (or send them anywhere) on a machine that has them.
  const client = new DynamoDBClient({
    endpoint,
    region: 'local',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 3,
  });
  try {
    await ensureRunTable(client, LOCAL_TABLE);
  } catch (e) {
    client.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    const text = String((e as Error)?.message ?? e);
    if (/lock/i.test(text)) {
      throw new VeritrailError(
        'TRANSIENT',
        `the state dir's run database (${dir}) is in use by another veritrail process; wait for it to finish or use another --home`,
        { cause: e },
      );
    }
    throw e;
  }
  return {
    client,
    endpoint,
    close: async () => {
      client.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
