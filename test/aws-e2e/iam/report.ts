/** Human-readable report of the proxy's denials, printed by the suite when it fails. */
import type { RecordedCall } from './types.js';

/** One line per denied decision: principal, operation, action, resource, reason. */
export function formatDenials(calls: readonly RecordedCall[]): string {
  const denied = calls.filter((c) => c.decision !== 'Allowed');
  if (denied.length === 0) return 'no denied calls';
  const lines = denied.map(
    (c) =>
      `${c.principal}  ${c.service}:${c.operation}  ${c.decision === 'ExplicitlyDenied' ? 'EXPLICIT DENY' : 'denied'} ${c.action} on ${c.resource}${c.implied ? ' (implied)' : ''}: ${c.reason ?? 'no reason recorded'}`,
  );
  return `${denied.length} denied call${denied.length === 1 ? '' : 's'}:\n${lines.join('\n')}`;
}
