/**
 * Safety rules for object keys and dataset paths that arrive in events. An S3 key is
 * attacker-controlled text: it becomes a file path in the embedded runtime and a prefix in the
 * artifacts bucket, so anything that could climb out of a folder or mean two different things on
 * two platforms is refused before it reaches a port (docs/design.md, invariant 6).
 */

/** S3 keys are at most 1024 bytes of UTF-8 (Amazon S3 User Guide, "Naming Amazon S3 objects"). */
const MAX_OBJECT_KEY_BYTES = 1024;

/**
 * Why a key is unsafe, or `undefined` when it is safe. The key is taken as is: EventBridge
 * delivers `detail.object.key` unencoded (unlike S3 event notifications to SNS/SQS/Lambda, whose
 * keys are URL-encoded), so `%2e%2e` is four literal characters here, not `..`.
 */
export function objectKeyProblem(key: string, options: { prefix?: boolean } = {}): string | undefined {
  // A list prefix may be empty and may end with "/" (or in the middle of a name).
  const prefix = options.prefix === true;
  if (typeof key !== 'string') return 'is not a string';
  if (key.length === 0) return prefix ? undefined : 'is empty';
  if (new TextEncoder().encode(key).length > MAX_OBJECT_KEY_BYTES) {
    return `is longer than ${MAX_OBJECT_KEY_BYTES} bytes, the S3 limit`;
  }
  if (key.includes('\u0000')) return 'contains a NUL character';
  // Other control characters cannot be typed safely in logs or file names either.
  for (const ch of key) {
    const c = ch.codePointAt(0) ?? 0;
    if (c < 0x20 || c === 0x7f) return 'contains a control character';
  }
  if (key.includes('\\')) return 'contains a backslash, which is a path separator on Windows; use / only';
  if (key.startsWith('/')) return 'is absolute (starts with /); keys are relative to the landing prefix';
  if (/^[A-Za-z]:/.test(key)) return 'starts with a drive letter, which is absolute on Windows';
  if (key.endsWith('/') && !prefix) return 'names a folder (ends with /), not an object';
  const segments = prefix && key.endsWith('/') ? key.slice(0, -1).split('/') : key.split('/');
  if (segments.includes('..')) return 'contains a ".." segment, which would climb out of its folder';
  if (segments.includes('.')) return 'contains a "." segment; give the key without it';
  if (segments.includes(''))
    return 'contains an empty segment ("//"), which collapses to another path on disk';
  return undefined;
}
