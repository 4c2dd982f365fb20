/**
 * The adapters a handler runs with. On Lambda they are built from the environment (src/aws/runtime.ts);
 * the embedded runtime installs its own (src/local/runtime.ts) before it runs the state machine, so the
 * very same handler modules run in both places.
 */
import type { LineageSink } from './app/lineage.js';
import type {
  AuditLog,
  DatasetSource,
  ModelRegistry,
  ObjectStore,
  RunStore,
  Signer,
  Trainer,
} from './ports.js';

export interface Runtime {
  objects: ObjectStore;
  runs: RunStore;
  /** Signs attestations (KMS key on AWS, local P-256 key). */
  signer: Signer;
  audit: AuditLog;
  trainer: Trainer;
  datasets: DatasetSource;
  registry: ModelRegistry;
  /** Who acts: the execution or function ARN on AWS, `user@host` locally. */
  actor: string;
  /** `aws` or `local`: recorded in provenance as the builder. */
  mode: 'aws' | 'local';
  now(): Date;
  /** Where OpenLineage RunEvents go (files locally, EventBridge on AWS), and their job namespace. */
  lineage?: { sink: LineageSink; namespace: string };
}

let current: Runtime | undefined;
let factory: (() => Promise<Runtime>) | undefined;

/** Installs the runtime handlers will use (the local runner, tests). */
export function setRuntime(runtime: Runtime | undefined): void {
  current = runtime;
}

/** Registers a lazy factory, used when no runtime was set explicitly (Lambda cold start). */
export function setRuntimeFactory(f: () => Promise<Runtime>): void {
  factory = f;
}

export async function getRuntime(): Promise<Runtime> {
  if (current) return current;
  if (factory) {
    current = await factory();
    return current;
  }
  // On Lambda nothing is installed: build the AWS runtime from the environment.
  const { createAwsRuntime } = await import('./aws/runtime.js');
  current = await createAwsRuntime(process.env);
  return current;
}
