/**
 * Redaction of free text before it is written anywhere that lasts (the run store, the write-once
 * audit log, lineage): docs/design.md invariant 7, no credential is ever written to logs or attestations.
 *
 * The detector is CheckCode's secret scanner (src/core/code-scan.ts), run over the text as it is
 * and, when the text holds JSON `\uXXXX` escapes, over the decoded text as well (a key spelled
 * `\u0041KIA…` is still a key). A match is replaced by a marker naming its kind,
 * `[REDACTED:aws-access-key-id]`; control characters (terminal escape codes) are escaped as `\xNN`
 * so that a stored message can never drive an operator's terminal. The scanner's allow-marker has
 * no effect here: what a file may allow in code, a log never keeps.
 */
import { ALLOW_SECRET_MARKER, type SecretKind, scanForSecrets } from './code-scan.js';

const REDACTED_PREFIX = '[REDACTED:';

function redactionMarker(kind: SecretKind): string {
  return `${REDACTED_PREFIX}${kind}]`;
}

// C0 controls but tab and newline, DEL, C1 controls.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/** Characters a token (key id, secret, API token) is made of: a finding extends over these. */
const TOKEN_CHAR = /[A-Za-z0-9/+=_\-.]/;

const JSON_ESCAPE = /\\u([0-9a-fA-F]{4})/g;
const HAS_JSON_ESCAPE = /\\u[0-9a-fA-F]{4}/;

/** Escapes control characters (other than tab and newline) as `\xNN` / `\u00NN`. */
export function escapeControls(text: string): string {
  return text.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function redactSecrets(text: string): { text: string; kinds: SecretKind[] } {
  // Neutralise the allow-marker without moving any column the scanner reports.
  const scanned = text.split(ALLOW_SECRET_MARKER).join('veritrail:allow-s3cret');
  const findings = scanForSecrets('redact', scanned);
  if (findings.length === 0) return { text, kinds: [] };
  const lines = text.split(/(\r\n|\n|\r)/);
  // lines alternates content and separators; content of line n is at index 2(n-1).
  const kinds: SecretKind[] = [];
  const byLine = new Map<number, typeof findings>();
  for (const f of findings) byLine.set(f.line, [...(byLine.get(f.line) ?? []), f]);
  let inPrivateKey = false;
  for (let n = 1; 2 * (n - 1) < lines.length; n++) {
    const i = 2 * (n - 1);
    let line = lines[i] as string;
    if (inPrivateKey) {
      // Everything between a private key's BEGIN and END lines is the key.
      const end = line.indexOf('-----END');
      if (end < 0) {
        lines[i] = '';
        continue;
      }
      const close = line.indexOf('-----', end + 8);
      line = `${redactionMarker('private-key')}${close < 0 ? '' : line.slice(close + 5)}`;
      inPrivateKey = false;
    }
    // Right to left, so earlier columns stay valid while later spans are replaced.
    const here = (byLine.get(n) ?? []).sort((a, b) => b.column - a.column);
    for (const f of here) {
      const start = f.column - 1;
      kinds.push(f.kind);
      if (f.kind === 'private-key') {
        const end = line.indexOf('-----END', start + 10);
        if (end < 0) {
          line = `${line.slice(0, start)}${redactionMarker('private-key')}`;
          inPrivateKey = true;
        } else {
          const close = line.indexOf('-----', end + 8);
          line = `${line.slice(0, start)}${redactionMarker('private-key')}${close < 0 ? '' : line.slice(close + 5)}`;
        }
        continue;
      }
      let end = start;
      while (end < line.length && TOKEN_CHAR.test(line[end] as string)) end++;
      line = `${line.slice(0, start)}${redactionMarker(f.kind)}${line.slice(Math.max(end, start + 1))}`;
    }
    lines[i] = line;
  }
  return { text: lines.join(''), kinds };
}

/**
 * One free-text value made safe to store: secrets (also when spelled with JSON escapes) replaced
 * by a marker naming their kind, control characters escaped.
 */
export function redactText(text: string): string {
  let out = text;
  if (HAS_JSON_ESCAPE.test(out)) {
    const decoded = out.replace(JSON_ESCAPE, (_, hex: string) =>
      String.fromCharCode(Number.parseInt(hex, 16)),
    );
    // Only when decoding reveals something: otherwise the text is kept exactly as it was.
    const found = redactSecrets(decoded);
    if (found.kinds.length > 0) out = found.text;
  }
  out = redactSecrets(out).text;
  return escapeControls(out);
}

/** The kinds of secret a text holds (after JSON decoding), for callers that refuse rather than redact. */
export function secretKindsIn(text: string): SecretKind[] {
  const decoded = text.replace(JSON_ESCAPE, (_, hex: string) =>
    String.fromCharCode(Number.parseInt(hex, 16)),
  );
  const scanned = decoded.split(ALLOW_SECRET_MARKER).join('veritrail:allow-s3cret');
  return scanForSecrets('redact', scanned).map((f) => f.kind);
}

/**
 * Every string in a JSON-like value redacted (object keys too: a group value can be a key). Plain
 * objects and arrays are copied; other values (numbers, booleans, byte arrays, dates) are kept.
 * Returns the very same value when nothing needed a change.
 */
export function redactValue<T>(value: T): T {
  return redactAny(value, 0) as T;
}

function redactAny(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactText(value);
  if (depth > 64 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    let changed = false;
    const out = value.map((v) => {
      const r = redactAny(v, depth + 1);
      if (r !== v) changed = true;
      return r;
    });
    return changed ? out : value;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  let changed = false;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const rk = redactText(k);
    const rv = redactAny(v, depth + 1);
    if (rk !== k || rv !== v) changed = true;
    out[rk] = rv;
  }
  return changed ? out : value;
}
