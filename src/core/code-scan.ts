/**
 * CheckCode's secret scan: hard-coded credentials in training code, found by file, line and column.
 *
 * A finding never carries the secret or any part of it (docs/design.md invariant 7: no credential is ever
 * written to logs or attestations): only where it is and which rule matched. Token formats are the
 * ones their issuers document: AWS access key ids (IAM "Understanding unique ID prefixes": AKIA long
 * term, ASIA temporary), GitHub token prefixes (GitHub docs "About authentication to GitHub": ghp_,
 * gho_, ghu_, ghs_, ghr_, github_pat_), Slack (xoxb-, xoxp-, xoxa-, xoxr-, xoxs-), Stripe live keys
 * (sk_live_, rk_live_), Google API keys (AIza + 35 characters), PEM private keys (RFC 7468 labels).
 *
 * AWS documents example credentials (an access key id "AKIA…EXAMPLE", a secret ending "…EXAMPLEKEY").
 * They are still findings (a scanner cannot know the line is only an example, and refusing them
 * costs one `veritrail:allow-secret` marker) but are marked `example: true` so a report can say so.
 */

export interface SecretFinding {
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based, in UTF-16 code units of the line (what editors count for BMP text). */
  column: number;
  /** What was found, e.g. "aws-access-key-id", "private-key", "generic-secret". */
  kind: SecretKind;
  /** The rule that matched, e.g. "veritrail/aws-access-key-id". */
  rule: string;
  /** The value is one of the placeholder examples published in AWS documentation. */
  example?: true;
}

export type SecretKind =
  | 'aws-access-key-id'
  | 'aws-secret-access-key'
  | 'private-key'
  | 'github-token'
  | 'slack-token'
  | 'stripe-live-key'
  | 'google-api-key'
  | 'generic-secret';

/** A marker comment on a line that suppresses findings on that line (a known false positive). */
export const ALLOW_SECRET_MARKER = 'veritrail:allow-secret';

interface Rule {
  kind: SecretKind;
  rule: string;
  pattern: RegExp;
  /** Index of the capture group holding the secret itself (for spans and checks); 0 = whole match. */
  group: number;
  accept?: (secret: string) => boolean;
  example?: (secret: string) => boolean;
}

// Published AWS documentation examples, as fragments so that no complete key-shaped literal sits in
// the source (the scan itself would flag it).
const AWS_EXAMPLE_KEY_ID = `AKIA${'IOSFODNN7'}EXAMPLE`;
const AWS_EXAMPLE_SECRET_TAIL = 'EXAMPLEKEY';

const RULES: readonly Rule[] = [
  {
    kind: 'aws-access-key-id',
    rule: 'veritrail/aws-access-key-id',
    pattern: /(?<![A-Za-z0-9])((?:AKIA|ASIA)[A-Z0-9]{16})(?![A-Za-z0-9])/g,
    group: 1,
    example: (s) => s === AWS_EXAMPLE_KEY_ID || s.endsWith('EXAMPLE'),
  },
  {
    kind: 'aws-secret-access-key',
    rule: 'veritrail/aws-secret-access-key',
    // A 40-character base64 value assigned to a name that says it is an AWS secret key: the value
    // alone is indistinguishable from any other base64 string.
    pattern:
      /(?:aws_?secret(?:_?access)?(?:_?key)?|secret_?access_?key)[A-Za-z0-9_]*["']?\s*(?:[:=]|=>|:=)\s*["'`]?(?<![A-Za-z0-9/+])([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])/gi,
    group: 1,
    accept: (s) => /[0-9/+]/.test(s) && /[a-z]/.test(s) && /[A-Z]/.test(s),
    example: (s) => s.endsWith(AWS_EXAMPLE_SECRET_TAIL),
  },
  {
    kind: 'private-key',
    rule: 'veritrail/pem-private-key',
    // RFC 7468 §10 ("PRIVATE KEY"), §11 ("ENCRYPTED PRIVATE KEY"); legacy RSA/DSA/EC/OPENSSH labels;
    // RFC 4880 §6.2 armor for OpenPGP ("PGP PRIVATE KEY BLOCK").
    pattern:
      /-----BEGIN (?:(?:RSA|DSA|EC|OPENSSH|ENCRYPTED|SSH2 ENCRYPTED|PGP) )?PRIVATE KEY(?: BLOCK)?-----/g,
    group: 0,
  },
  {
    kind: 'github-token',
    rule: 'veritrail/github-token',
    pattern:
      /(?<![A-Za-z0-9_])(gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,244})(?![A-Za-z0-9_])/g,
    group: 1,
  },
  {
    kind: 'slack-token',
    rule: 'veritrail/slack-token',
    pattern: /(?<![A-Za-z0-9])(xox[baprs]-[A-Za-z0-9-]{10,250})(?![A-Za-z0-9-])/g,
    group: 1,
    accept: (s) => /\d/.test(s),
  },
  {
    kind: 'stripe-live-key',
    rule: 'veritrail/stripe-live-key',
    pattern: /(?<![A-Za-z0-9_])([sr]k_live_[A-Za-z0-9]{16,247})(?![A-Za-z0-9])/g,
    group: 1,
  },
  {
    kind: 'google-api-key',
    rule: 'veritrail/google-api-key',
    pattern: /(?<![A-Za-z0-9_-])(AIza[0-9A-Za-z_-]{35})(?![0-9A-Za-z_-])/g,
    group: 1,
  },
];

/**
 * `password = "…"`, `api_key: '…'`, `"client_secret": "…"`: a name that says secret, an assignment,
 * and a quoted literal. The literal must look random (see `looksLikeSecret`), which leaves out
 * placeholders, prose and references such as `process.env.X` (not a literal at all).
 */
const GENERIC =
  /([A-Za-z0-9_.-]*(?:passw(?:or)?d|pwd|secret|token|api_?key|apikey|access_?key|private_?key|auth_?key|credentials?)[A-Za-z0-9_]*)["']?\s*(?::=|=>|=|:)\s*(?:[rbuf]{0,2})(["'`])((?:(?!\2)[^\\\s]|\\.){1,512})\2/gi;

/** Shannon entropy of a string, in bits per character. */
export function shannonEntropy(s: string): number {
  if (s.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const ch of s) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let h = 0;
  const n = [...s].length;
  for (const c of counts.values()) {
    const p = c / n;
    h -= p * Math.log2(p);
  }
  return h;
}

/** Minimum length and entropy of a generic secret literal; a 16-char random base64 string has ~3.7-4 bits/char. */
const GENERIC_MIN_LENGTH = 12;
const GENERIC_MIN_ENTROPY = 3.0;

const PLACEHOLDER =
  /^(?:\$\{.*\}|\$[A-Z_][A-Z0-9_]*|\{\{.*\}\}|<[^>]*>|%\(?[a-z_]*\)?s|\*+|x+|\.+|-+|_+|#+)$|changeme|change_me|placeholder|example|dummy|redacted|your[_-]|xxxx|<|>|\{\{|\$\{|process\.env|os\.environ|getenv/i;

/** True when a literal is long, varied and random-looking enough to be a real credential. */
export function looksLikeSecret(value: string): boolean {
  if (value.length < GENERIC_MIN_LENGTH) return false;
  if (PLACEHOLDER.test(value)) return false;
  // Secrets mix letters with digits or symbols; identifiers, words and URLs without them are not.
  if (!/[A-Za-z]/.test(value) || !/[0-9]/.test(value)) return false;
  if (/^[a-z]+:\/\//i.test(value)) return false;
  return shannonEntropy(value) >= GENERIC_MIN_ENTROPY;
}

/**
 * Finds hard-coded credentials in one text file. Each finding names file, line, column, kind and
 * rule, never the secret. A line containing `veritrail:allow-secret` is skipped.
 */
export function scanForSecrets(file: string, text: string): SecretFinding[] {
  const findings: SecretFinding[] = [];
  const lines = text.split(/\r\n|\n|\r/);
  lines.forEach((line, index) => {
    if (line.includes(ALLOW_SECRET_MARKER)) return;
    const spans: Array<[number, number]> = [];
    const overlaps = (start: number, end: number): boolean => spans.some(([s, e]) => start < e && s < end);
    for (const r of RULES) {
      r.pattern.lastIndex = 0;
      for (const m of line.matchAll(r.pattern)) {
        const secret = m[r.group] ?? '';
        const start = (m.index ?? 0) + (r.group === 0 ? 0 : m[0].lastIndexOf(secret));
        const end = start + secret.length;
        if (r.accept !== undefined && !r.accept(secret)) continue;
        if (overlaps(start, end)) continue;
        spans.push([start, end]);
        const f: SecretFinding = { file, line: index + 1, column: start + 1, kind: r.kind, rule: r.rule };
        if (r.example?.(secret) === true) f.example = true;
        findings.push(f);
      }
    }
    for (const m of line.matchAll(GENERIC)) {
      const value = m[3] ?? '';
      const name = m[1] ?? '';
      // Names such as "tokenizer" or "password_prompt" hold no secret; keys ending in the secret word do.
      if (
        /(?:izer|ized|prompt|label|field|hint|url|uri|path|file|name|type|length|len|regex|pattern)$/i.test(
          name,
        )
      )
        continue;
      if (!looksLikeSecret(value)) continue;
      const start = (m.index ?? 0) + m[0].length - value.length - 1;
      if (overlaps(start, start + value.length)) continue;
      spans.push([start, start + value.length]);
      findings.push({
        file,
        line: index + 1,
        column: start + 1,
        kind: 'generic-secret',
        rule: 'veritrail/generic-secret-assignment',
      });
    }
  });
  return findings.sort((a, b) => a.line - b.line || a.column - b.column);
}

/**
 * Git's heuristic (xdiff `buffer_is_binary`): a NUL byte in the first 8000 bytes means binary.
 * Additionally, more than 10% control characters (other than tab, newline, carriage return, form
 * feed, backspace and escape) in that window means binary.
 */
export function isProbablyText(bytes: Uint8Array): boolean {
  const n = Math.min(bytes.length, 8000);
  let control = 0;
  for (let i = 0; i < n; i++) {
    const b = bytes[i] as number;
    if (b === 0) return false;
    if (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0x0c && b !== 0x08 && b !== 0x1b)
      control++;
  }
  return n === 0 || control * 10 <= n;
}

export interface SourceFile {
  /** Path relative to the code root, as it should appear in findings. */
  path: string;
  bytes: Uint8Array;
}

export interface SecretScanResult {
  findings: SecretFinding[];
  /** Files not scanned because they are binary. */
  skipped: string[];
}

/** Scans many files: binary ones are skipped (and listed), text is decoded as UTF-8. */
export function scanFilesForSecrets(files: Iterable<SourceFile>): SecretScanResult {
  const findings: SecretFinding[] = [];
  const skipped: string[] = [];
  const decoder = new TextDecoder('utf-8');
  for (const f of files) {
    if (!isProbablyText(f.bytes)) {
      skipped.push(f.path);
      continue;
    }
    findings.push(...scanForSecrets(f.path, decoder.decode(f.bytes)));
  }
  return { findings, skipped };
}

/** One line per finding, safe to log: `file:line:column: kind (rule)`; never the secret. */
export function describeSecretFinding(f: SecretFinding): string {
  return `${f.file}:${f.line}:${f.column}: ${f.kind}${f.example === true ? ' (a documented example value)' : ''} [${f.rule}]`;
}
