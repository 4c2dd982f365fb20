/**
 * The adapters a handler runs with. There is no global lookup: every entry point composes exactly
 * the ports it needs and hands them in. On Lambda, each functions/<name>.ts names its ports and
 * src/aws/runtime.ts builds them from the environment (so a bundle carries only the SDK clients
 * those ports use); the local runner passes the embedded runtime (src/local/runtime.ts) with each
 * invocation. The wiring is src/aws/handler.ts.
 */
import { VeritrailError } from './core/errors.js';
import type {
  AuditLog,
  DatasetSource,
  LineageSink,
  ModelRegistry,
  ObjectStore,
  Processor,
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
  /**
   * Preprocess above a size: a SageMaker Processing job on AWS, a child process under the same
   * container contract locally. Absent: Preprocess always runs in its own function.
   */
  processor?: Processor;
}

/** The ports a composition root may build; the rest of a Runtime (actor, mode, now) is always there. */
const PORT_NAMES = [
  'objects',
  'runs',
  'signer',
  'audit',
  'trainer',
  'datasets',
  'registry',
  'lineage',
  'processor',
] as const;
type PortName = (typeof PORT_NAMES)[number];

/** The ports a function was composed with; `lineage` and `processor` are optional in a Runtime and simply absent. */
export type ComposedPorts = Partial<Pick<Runtime, PortName>>;

/**
 * A port the entry point did not compose. Any use of it fails with INTERNAL and says where to add
 * it, instead of an `undefined is not a function` deep inside a step. Reading the property itself
 * (spreading a runtime, passing it on) is fine; only touching a member throws.
 */
function missingPort<T extends object>(port: PortName, entry: string): T {
  const fail = (): never => {
    throw new VeritrailError(
      'INTERNAL',
      `${entry} was composed without the "${port}" port, which this code path uses: add it to the ports ${entry} declares (its composition root in functions/ or src/local/)`,
      { details: { port, entry } },
    );
  };
  return new Proxy({} as T, {
    get: (_target, key) => (key === 'then' || typeof key === 'symbol' ? undefined : fail()),
    set: fail,
    has: fail,
  });
}

/**
 * A Runtime from the ports an entry point composed: the ones it did not compose are `missingPort`
 * guards (lineage and processor, optional, stay absent).
 */
export function runtimeOf<X extends object = object>(
  entry: string,
  base: Pick<Runtime, 'actor' | 'mode' | 'now'>,
  ports: ComposedPorts,
  extras?: X,
): Runtime & X {
  const guard = <K extends Exclude<PortName, 'lineage' | 'processor'>>(k: K): Runtime[K] =>
    ports[k] ?? missingPort<Runtime[K]>(k, entry);
  return {
    ...(extras as X),
    ...base,
    objects: guard('objects'),
    runs: guard('runs'),
    signer: guard('signer'),
    audit: guard('audit'),
    trainer: guard('trainer'),
    datasets: guard('datasets'),
    registry: guard('registry'),
    ...(ports.lineage ? { lineage: ports.lineage } : {}),
    ...(ports.processor ? { processor: ports.processor } : {}),
  };
}
