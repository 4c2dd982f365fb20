/**
 * The Step Functions task token is a bearer credential for the waiting Train state. After a whole
 * `veritrail run` (the embedded runtime plays the token wait with the same handlers), the token
 * is nowhere but in its own item of the run table: not in `runs show --json`, not in the audit
 * log, not in any other file of the state dir.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { openAuditLog } from '../../src/audit/log.js';
import { TASK_TOKEN_PK_PREFIX } from '../../src/aws/dynamo-run-store.js';
import { main } from '../../src/cli/main.js';
import { LOCAL_TABLE, startLocalDynamo } from '../../src/local/dynamo.js';
import { homePaths } from '../../src/local/home.js';
import { openLocalRuntime } from '../../src/local/runtime.js';
import type { AuditEntry } from '../../src/ports.js';
import { captureIo, makeWorkspace, type Workspace } from '../helpers/workspace.js';

/** Every file under `dir`, except those under `skip`. */
function filesUnder(dir: string, skip: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (path === skip) continue;
    if (statSync(path).isDirectory()) out.push(...filesUnder(path, skip));
    else out.push(path);
  }
  return out;
}

describe('the task token of a run', () => {
  let ws: Workspace;
  let runId: string;
  let token: string;

  beforeAll(async () => {
    ws = makeWorkspace({ rows: 1500 });
    const io = captureIo(ws.dir);
    expect(await main(['run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home, '--json'], io)).toBe(
      0,
    );
    runId = (JSON.parse(io.stdout[0] as string) as { runId: string }).runId;
    // The token the embedded runner hands the Train state (src/local/runner.ts, `$$.Task.Token`).
    token = `local-task-token:${runId}`;
  });
  afterAll(() => ws.cleanup());

  it('is not in `runs show --json`', async () => {
    const io = captureIo(ws.dir);
    expect(await main(['runs', 'show', runId, '--home', ws.home, '--json'], io)).toBe(0);
    expect(io.stdout.join('\n')).toContain(runId);
    expect(io.stdout.join('\n')).not.toContain(token);
  });

  it('is not in the audit log', async () => {
    const rt = await openLocalRuntime(ws.home);
    try {
      const entries: AuditEntry[] = [];
      for await (const e of (rt.audit as ReturnType<typeof openAuditLog>).entriesOf(runId)) entries.push(e);
      expect(entries.some((e) => e.step === 'Train')).toBe(true);
      expect(JSON.stringify(entries)).not.toContain(token);
    } finally {
      await rt.close();
    }
  });

  it('is in no file of the state dir outside the run table', () => {
    const paths = homePaths(ws.home);
    const files = filesUnder(ws.home, paths.dynamodb);
    expect(files.some((f) => f.startsWith(paths.objects))).toBe(true);
    for (const f of files) expect(readFileSync(f).includes(token), f).toBe(false);
  });

  it('is in exactly one item of the run table: its own TASK# item', async () => {
    const dynamo = await startLocalDynamo(homePaths(ws.home).dynamodb);
    try {
      const items = (await dynamo.client.send(new ScanCommand({ TableName: LOCAL_TABLE }))).Items ?? [];
      const holding = items.map((i) => unmarshall(i)).filter((i) => JSON.stringify(i).includes(token));
      expect(holding.map((i) => i.pk)).toEqual([`${TASK_TOKEN_PK_PREFIX}${runId}`]);
    } finally {
      await dynamo.close();
    }
  });
});
