/**
 * Business units in the embedded runtime (docs/units.md): one process serves several units with
 * one object store, run store and trainer, and each unit's own signer and audit log. A view of the
 * runtime is the runtime with one unit's signer and audit log in `signer` and `audit`, so every
 * step, start and reconciliation that signs or appends does so for that unit only.
 */
import { loadPipeline } from '../cas.js';
import { DEFAULT_UNIT, unitOf } from '../core/unit.js';
import type { AuditLog, ObjectStore, RunRecord, Signer } from '../ports.js';
import type { Runtime } from '../runtime.js';

/** What differs between business units in one runtime: the key that signs and the log that records. */
export interface UnitPorts {
  signer: Signer;
  audit: AuditLog;
}

/** A runtime that holds one unit's ports and can open any other unit's. */
export interface UnitScoped extends Runtime {
  /** The business unit whose signer and audit log this view holds (src/core/unit.ts). */
  unit: string;
  /**
   * Unit `unit`'s signer and audit log, opened on first use and then shared by every view of the
   * runtime, so that one process has one appender per log.
   */
  unitPorts(unit: string): Promise<UnitPorts>;
}

/** The runtime as unit `unit` sees it; `rt` itself when it is that unit's view already. */
export async function inUnit<R extends UnitScoped>(rt: R, unit: string): Promise<R> {
  if (rt.unit === unit) return rt;
  return { ...rt, unit, ...(await rt.unitPorts(unit)) };
}

/**
 * The unit a run belongs to: the one its pipeline definition names. The definition is read from
 * the object store by the run's pipeline digest (content-addressed, and named by the run's signed
 * evidence), not taken from the mutable run record; only a definition that cannot be read falls
 * back to the record's `unit` (none: the default unit).
 */
export async function unitOfRun(
  objects: ObjectStore,
  run: Pick<RunRecord, 'pipelineDigest' | 'unit'>,
): Promise<string> {
  try {
    return unitOf(await loadPipeline(objects, run.pipelineDigest));
  } catch {
    return run.unit ?? DEFAULT_UNIT;
  }
}

/** The view of the unit a run belongs to (unitOfRun). */
export async function forRun<R extends UnitScoped>(
  rt: R,
  run: Pick<RunRecord, 'pipelineDigest' | 'unit'>,
): Promise<R> {
  return inUnit(rt, await unitOfRun(rt.objects, run));
}
