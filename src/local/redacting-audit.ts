import { redactValue } from '../core/redact.js';
import type { AuditEventInput, AuditLog } from '../ports.js';

/**
 * The audit log with every appended event redacted first (src/core/redact.ts, invariant 7): the
 * log is write-once, so a secret that reached it could never be removed. Everything else passes.
 */
export function redactingAuditLog<T extends AuditLog>(log: T): T {
  return new Proxy(log, {
    get(target, prop) {
      if (prop === 'append') return (event: AuditEventInput) => target.append(redactValue(event));
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
