import { hostname, userInfo } from 'node:os';
import { DynamoRunStore } from '../aws/dynamo-run-store.js';
import { DEFAULT_UNIT } from '../core/unit.js';
import type { AuditLog } from '../ports.js';
import { openLocalAuditLog } from './audit.js';
import { LOCAL_TABLE, startLocalDynamo } from './dynamo.js';
import { openFileSigner } from './file-signer.js';
import { FsDatasetSource } from './fs-dataset-source.js';
import { FsObjectStore } from './fs-object-store.js';
import { assertHomeUsable, homePaths, unitPaths } from './home.js';
import { FsLineageSink, LOCAL_LINEAGE_NAMESPACE } from './lineage.js';
import { LocalProcessor, processingThresholdFromEnv, verifyBudgetFromEnv } from './process-processor.js';
import { ProcessTrainer } from './process-trainer.js';
import { redactingAuditLog } from './redacting-audit.js';
import { LocalModelRegistry } from './registry.js';
import { RunOwners, reconcileLostRuns } from './run-owners.js';
import type { UnitPorts, UnitScoped } from './units.js';

/** The embedded runtime, as one business unit sees it (src/local/units.ts: `inUnit` gives another's). */
export interface LocalRuntime extends UnitScoped {
  mode: 'local';
  home: string;
  trainer: ProcessTrainer;
  /** Owner items and leases of the runs this process executes (src/local/run-owners.ts). */
  owners: RunOwners;
  close(): Promise<void>;
}

function localActor(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    /* no passwd entry in some containers */
  }
  return `${user}@${hostname()}`;
}

/**
 * The embedded runtime: every port backed by something on this machine, under the state dir.
 * Run state goes through the very DynamoDB code used on AWS, against an in-process dynalite. The
 * runtime returned is the default unit's view (`signer`, `audit`); `inUnit` (src/local/units.ts)
 * gives another unit's, with the keys and log of src/local/home.ts unitPaths.
 */
export async function openLocalRuntime(
  home: string,
  options: {
    now?: () => Date;
    audit?: AuditLog;
    /** Close runs whose owner is gone before anything else (default true). */
    reconcile?: boolean;
    /** Where reconciliation reports what it closed (default: nowhere). */
    log?: (line: string) => void;
    /** Read-only commands: a missing state dir is a usage error, not created. */
    mustExist?: boolean;
    /**
     * Datasets larger than this are preprocessed by a local processing job (src/local/process-processor.ts);
     * default VERITRAIL_PROCESSING_THRESHOLD_BYTES, unset: always in-process.
     */
    processingThresholdBytes?: number;
  } = {},
): Promise<LocalRuntime> {
  const threshold = options.processingThresholdBytes ?? processingThresholdFromEnv();
  await assertHomeUsable(home, options.mustExist ? { mustExist: true } : {});
  const paths = homePaths(home);
  const now = options.now ?? (() => new Date());
  const objects = new FsObjectStore(paths.objects);
  const datasets = new FsDatasetSource();
  const dynamo = await startLocalDynamo(paths.dynamodb);
  try {
    const signer = await openFileSigner(paths.signingKey);
    const audit = redactingAuditLog(options.audit ?? (await openLocalAuditLog(objects, paths.auditKey)));
    const units = new Map<string, Promise<UnitPorts>>([[DEFAULT_UNIT, Promise.resolve({ signer, audit })]]);
    const unitPortsOf = (unit: string): Promise<UnitPorts> => {
      let ports = units.get(unit);
      if (ports === undefined) {
        const p = unitPaths(home, unit);
        ports = (async () => ({
          signer: await openFileSigner(p.signingKey),
          audit: redactingAuditLog(
            await openLocalAuditLog(objects, p.auditKey, { prefix: p.auditPrefix, origin: p.auditOrigin }),
          ),
        }))();
        units.set(unit, ports);
        // A failed open (an unreadable key) is not remembered: the next use tries again.
        ports.catch(() => units.delete(unit));
      }
      return ports;
    };
    const owners = new RunOwners(dynamo.client, LOCAL_TABLE, now);
    const rt: LocalRuntime = {
      mode: 'local',
      home,
      unit: DEFAULT_UNIT,
      unitPorts: unitPortsOf,
      objects,
      runs: new DynamoRunStore(dynamo.client, LOCAL_TABLE, now),
      signer,
      audit,
      trainer: new ProcessTrainer(paths.jobs, objects),
      datasets,
      ...(threshold !== undefined ? { processor: localProcessor(threshold, objects, datasets) } : {}),
      registry: new LocalModelRegistry(objects),
      lineage: { sink: new FsLineageSink(home), namespace: LOCAL_LINEAGE_NAMESPACE },
      actor: localActor(),
      now,
      owners,
      close: async () => {
        owners.stop();
        await dynamo.close();
      },
    };
    if (options.reconcile !== false) {
      await reconcileLostRuns(rt, owners, options.log ? { log: options.log } : {});
    }
    return rt;
  } catch (e) {
    await dynamo.close();
    throw e;
  }
}

/** The local processing job, with VERITRAIL_PROCESSING_VERIFY_BYTES's re-hash budget when set. */
function localProcessor(
  threshold: number,
  objects: FsObjectStore,
  datasets: FsDatasetSource,
): LocalProcessor {
  const verifyBudget = verifyBudgetFromEnv();
  return new LocalProcessor(threshold, objects, datasets, verifyBudget ? { verifyBudget } : {});
}
