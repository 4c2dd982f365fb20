import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ALLOW_SECRET_MARKER,
  describeSecretFinding,
  isProbablyText,
  looksLikeSecret,
  type SecretFinding,
  scanFilesForSecrets,
  scanForSecrets,
  shannonEntropy,
} from '../../src/core/code-scan.js';
import { isImagePinned } from '../../src/core/image.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/code-scan');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');
const scanFixture = (name: string): SecretFinding[] => scanForSecrets(name, fixture(name));
const where = (fs: SecretFinding[]) => fs.map((f) => [f.line, f.column, f.kind]);

// Fake keys are assembled at run time so that no key-shaped literal sits in the repository's code.
const fakeAwsKeyId = (): string => ['AK', 'IA', 'Q3EGRI5ZBJ7MNX2P'].join('');
const fakeGithub = (): string => `${'gh'}p_${'a1B2c3D4e5F6g7H8i9J0'}${'k1L2m3N4o5P6q7R8'}`;

/**
 * Every 6-character substring of the secret part of a token: none may appear in any output. The
 * first 11 characters are skipped because they hold the issuer's public prefix (up to
 * "github_pat_"), which a kind name may legitimately contain.
 */
function fragments(secret: string): string[] {
  const out: string[] = [];
  for (let i = 11; i + 6 <= secret.length; i++) out.push(secret.slice(i, i + 6));
  return out;
}

describe('scanForSecrets', () => {
  describe('when code holds AWS credentials', () => {
    it('finds the access key ids (AKIA and ASIA) and the secret key by line and column', () => {
      expect(where(scanFixture('aws_credentials.py'))).toEqual([
        [4, 18, 'aws-access-key-id'],
        [5, 26, 'aws-secret-access-key'],
        [7, 16, 'aws-access-key-id'],
      ]);
    });

    it('flags the example keys AWS documents, marked as examples', () => {
      const found = scanFixture('aws_documented_example.ini');
      expect(found.map((f) => [f.line, f.kind, f.example])).toEqual([
        [3, 'aws-access-key-id', true],
        [4, 'aws-secret-access-key', true],
      ]);
    });

    it('does not mark a real-looking key as an example', () => {
      const [f] = scanForSecrets('a.py', `key = "${fakeAwsKeyId()}"`);
      expect(f).toMatchObject({ kind: 'aws-access-key-id', line: 1, column: 8 });
      expect(f?.example).toBeUndefined();
    });

    it('does not take a 40-character value for a secret key unless its name says so', () => {
      const value = ['wJalrXUtnFEMI', '/K7MDENG/bPxRfiCY', 'Q9Z8Y7X6AB'].join('');
      expect(scanForSecrets('a.txt', `checksum = ${value}`).map((f) => f.kind)).not.toContain(
        'aws-secret-access-key',
      );
      expect(scanForSecrets('a.txt', `AWS_SECRET_ACCESS_KEY=${value}`).map((f) => f.kind)).toEqual([
        'aws-secret-access-key',
      ]);
    });
  });

  describe('when a file holds a PEM private key', () => {
    it('reports each BEGIN line, not the key body', () => {
      expect(where(scanFixture('deploy_key.txt'))).toEqual([
        [2, 1, 'private-key'],
        [8, 1, 'private-key'],
      ]);
    });

    it.each(['RSA', 'EC', 'DSA', 'OPENSSH', 'ENCRYPTED'])('recognises the %s label', (label) => {
      const dashes = '-----';
      const text = `x\n${dashes}BEGIN ${label} PRIVATE KEY${dashes}\nAAAA\n`;
      expect(where(scanForSecrets('k', text))).toEqual([[2, 1, 'private-key']]);
    });

    it('ignores public keys and certificates', () => {
      const dashes = '-----';
      expect(
        scanForSecrets('k', `${dashes}BEGIN PUBLIC KEY${dashes}\n${dashes}BEGIN CERTIFICATE${dashes}`),
      ).toEqual([]);
    });
  });

  describe('when code holds API tokens', () => {
    it('finds GitHub, Slack, Stripe and Google tokens', () => {
      expect(where(scanFixture('tokens.ts'))).toEqual([
        [3, 12, 'github-token'],
        [4, 23, 'github-token'],
        [5, 11, 'slack-token'],
        [6, 12, 'stripe-live-key'],
        [7, 10, 'google-api-key'],
      ]);
    });

    it('ignores Stripe test keys', () => {
      expect(scanForSecrets('s.js', `const k = '${'sk_'}test_${'4eC39HqLyjWDarjtT1zdp7dc'}';`)).toEqual([]);
    });
  });

  describe('when a secret-named variable is assigned a literal', () => {
    it('flags long random literals', () => {
      expect(where(scanFixture('settings.yaml'))).toEqual([
        [3, 14, 'generic-secret'],
        [5, 15, 'generic-secret'],
      ]);
    });

    it('ignores placeholders, environment lookups, prose, short values and non-secret names', () => {
      expect(scanFixture('negatives.py')).toEqual([]);
    });
  });

  describe('when a line carries the allow marker', () => {
    it('suppresses that line only', () => {
      expect(fixture('allowed.py')).toContain(ALLOW_SECRET_MARKER);
      expect(where(scanFixture('allowed.py'))).toEqual([[3, 10, 'github-token']]);
    });
  });

  describe('whatever it finds', () => {
    it('never includes the secret or a fragment of it in findings or their descriptions', () => {
      const secrets = [fakeAwsKeyId(), fakeGithub()];
      const text = secrets.map((s, i) => `v${i} = "${s}"`).join('\n');
      const findings = scanForSecrets('f.py', text);
      expect(findings).toHaveLength(2);
      const output = JSON.stringify(findings) + findings.map(describeSecretFinding).join('\n');
      for (const s of secrets) for (const frag of fragments(s)) expect(output).not.toContain(frag);
    });

    it('never echoes a fixture secret either', () => {
      const text = fixture('tokens.ts');
      const secrets = [...text.matchAll(/'([^']{20,})'/g)].map((m) => m[1] as string);
      expect(secrets).toHaveLength(5);
      const output = JSON.stringify(scanForSecrets('tokens.ts', text));
      for (const s of secrets) for (const frag of fragments(s)) expect(output).not.toContain(frag);
    });

    it('counts lines across CRLF line endings', () => {
      const f = scanForSecrets('w.bat', `a\r\nb\r\nset K=${fakeAwsKeyId()}\r\n`);
      expect(where(f)).toEqual([[3, 7, 'aws-access-key-id']]);
    });
  });
});

describe('looksLikeSecret', () => {
  it('accepts random mixed literals and rejects words, placeholders and repeated characters', () => {
    expect(looksLikeSecret('q8Vn2LzR7xWp4TjK')).toBe(true);
    expect(looksLikeSecret('changeme')).toBe(false);
    expect(looksLikeSecret('Authorization')).toBe(false);
    expect(looksLikeSecret('your-token-goes-here-1')).toBe(false);
    expect(looksLikeSecret('a1a1a1a1a1a1a1a1')).toBe(false);
  });

  it('measures Shannon entropy in bits per character', () => {
    expect(shannonEntropy('aaaa')).toBe(0);
    expect(shannonEntropy('abcd')).toBe(2);
    expect(shannonEntropy('0123456789abcdef')).toBe(4);
  });
});

describe('isProbablyText', () => {
  it('treats a NUL byte in the first 8000 bytes as binary, as git does', () => {
    expect(isProbablyText(new TextEncoder().encode('print("hi")\n'))).toBe(true);
    expect(isProbablyText(Uint8Array.from([0x50, 0x4b, 0x03, 0x04, 0x00, 0x00]))).toBe(false);
    const late = new Uint8Array(9000).fill(0x61);
    late[8500] = 0;
    expect(isProbablyText(late)).toBe(true);
  });

  it('treats mostly control characters as binary and UTF-8 text as text', () => {
    expect(isProbablyText(Uint8Array.from([1, 2, 3, 4, 5, 6, 65, 66]))).toBe(false);
    expect(isProbablyText(new TextEncoder().encode('données: café ü\t\n'))).toBe(true);
  });
});

describe('scanFilesForSecrets', () => {
  it('scans every fixture, skips binary files and keeps each finding with its file', () => {
    const files = readdirSync(FIXTURES).map((name) => ({
      path: name,
      bytes: readFileSync(join(FIXTURES, name)),
    }));
    const binary = Uint8Array.from([0x7f, 0x45, 0x4c, 0x46, 0, ...new TextEncoder().encode(fakeAwsKeyId())]);
    const r = scanFilesForSecrets([...files, { path: 'model.bin', bytes: binary }]);
    expect(r.skipped).toEqual(['model.bin']);
    expect(new Set(r.findings.map((f) => f.file))).toEqual(
      new Set([
        'aws_credentials.py',
        'aws_documented_example.ini',
        'deploy_key.txt',
        'tokens.ts',
        'settings.yaml',
        'allowed.py',
      ]),
    );
    expect(r.findings).toHaveLength(15);
  });
});

describe('isImagePinned', () => {
  it('accepts only references pinned by a sha256 digest', () => {
    const digest = 'a'.repeat(64);
    expect(isImagePinned(`123456789012.dkr.ecr.eu-west-1.amazonaws.com/train@sha256:${digest}`)).toBe(true);
    expect(isImagePinned(`python:3.12@sha256:${digest}`)).toBe(true);
    expect(isImagePinned('python:3.12')).toBe(false);
    expect(isImagePinned('python@sha256:abc')).toBe(false);
    expect(isImagePinned(`python@sha256:${'A'.repeat(64)}`)).toBe(false);
  });
});
