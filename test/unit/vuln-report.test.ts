import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isVeritrailError } from '../../src/core/errors.js';
import {
  failingFindings,
  fromScore,
  parseSeverity,
  parseVulnReport,
  type VulnFinding,
} from '../../src/core/vuln-report.js';

const fixture = (name: string): string =>
  readFileSync(join(import.meta.dirname, '../fixtures/gate/vuln-reports', name), 'utf8');

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return isVeritrailError(e) ? e.code : `not a VeritrailError: ${String(e)}`;
  }
  return undefined;
}

function messageOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return '';
}

const brief = (fs: VulnFinding[]) => fs.map((f) => [f.id, f.package, f.severity]);

describe('parseVulnReport', () => {
  describe('when given a Trivy JSON report (schema version 2)', () => {
    it('lists every vulnerability of every result with its package and severity', () => {
      const findings = parseVulnReport(fixture('trivy-image.json'));
      expect(brief(findings)).toEqual([
        ['CVE-2023-45853', 'zlib1g', 'CRITICAL'],
        ['CVE-2024-26462', 'libgssapi-krb5-2', 'MEDIUM'],
        ['TEMP-0841856-B18BAF', 'bash', 'LOW'],
        ['CVE-2024-6345', 'setuptools', 'HIGH'],
        ['GHSA-0000-0000-0000', 'example-lib', 'UNKNOWN'],
      ]);
      expect(findings.every((f) => f.source === 'trivy')).toBe(true);
      expect(findings[3]?.target).toBe('Python');
    });

    it('reads a clean report (no Results at all) as no findings', () => {
      expect(parseVulnReport(fixture('trivy-clean.json'))).toEqual([]);
    });

    it('accepts the pre-0.20 format, a bare array of results with null Vulnerabilities', () => {
      expect(brief(parseVulnReport(fixture('trivy-legacy.json')))).toEqual([
        ['CVE-2018-16487', 'lodash', 'HIGH'],
      ]);
    });
  });

  describe('when given a SARIF 2.1.0 log', () => {
    it('takes the severity from the rule security-severity score (Trivy SARIF)', () => {
      const findings = parseVulnReport(fixture('trivy.sarif'));
      expect(findings.map((f) => [f.id, f.severity, f.source, f.target])).toEqual([
        ['CVE-2023-45853', 'CRITICAL', 'sarif', 'Trivy'],
        ['CVE-2024-6345', 'HIGH', 'sarif', 'Trivy'],
        ['CVE-2024-26462', 'MEDIUM', 'sarif', 'Trivy'],
      ]);
    });

    it('falls back to result level, then rule default level, then "warning", and skips non-failing kinds', () => {
      const findings = parseVulnReport(fixture('levels-only.sarif'));
      expect(findings.map((f) => [f.id, f.severity])).toEqual([
        ['S301', 'HIGH'], // rule default "error"
        ['S101', 'LOW'], // rule default "note"
        ['S105', 'MEDIUM'], // no level anywhere: SARIF default "warning"
        ['S105/variant', 'UNKNOWN'], // level "none"
        ['S301', 'MEDIUM'], // by ruleIndex, result level "warning" wins over the rule's "error"
      ]);
    });

    it('maps CVSS scores as GitHub code scanning does', () => {
      expect([10, 9, 8.9, 7, 6.9, 4, 3.9, 0.1, 0].map(fromScore)).toEqual([
        'CRITICAL',
        'CRITICAL',
        'HIGH',
        'HIGH',
        'MEDIUM',
        'MEDIUM',
        'LOW',
        'LOW',
        'UNKNOWN',
      ]);
    });
  });

  describe('when the report is malformed', () => {
    it.each([
      ['not JSON', '{"SchemaVersion": 2,'],
      ['a JSON scalar', '42'],
      ['neither format', '{"findings": []}'],
      [
        'Trivy with a vulnerability missing its id',
        '{"SchemaVersion":2,"Results":[{"Vulnerabilities":[{"PkgName":"x"}]}]}',
      ],
      ['Trivy with Results not an array', '{"SchemaVersion":2,"Results":{}}'],
      ['SARIF of another version', '{"version":"2.0.0","runs":[]}'],
      ['SARIF without runs', '{"version":"2.1.0"}'],
      [
        'SARIF with a result naming no rule',
        '{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"t"}},"results":[{"level":"error"}]}]}',
      ],
    ])('refuses %s with POLICY_INVALID', (_name, text) => {
      expect(codeOf(() => parseVulnReport(text))).toBe('POLICY_INVALID');
    });

    it('names the bad field', () => {
      const msg = messageOf(() =>
        parseVulnReport('{"SchemaVersion":2,"Results":[{"Vulnerabilities":[{"PkgName":"x"}]}]}'),
      );
      expect(msg).toContain('Results.0.Vulnerabilities.0.VulnerabilityID');
    });
  });
});

describe('failingFindings', () => {
  const findings = parseVulnReport(fixture('trivy-image.json'));

  it('keeps findings at or above the threshold', () => {
    expect(failingFindings(findings, 'HIGH').map((f) => f.id)).toEqual(['CVE-2023-45853', 'CVE-2024-6345']);
    expect(failingFindings(findings, 'CRITICAL').map((f) => f.id)).toEqual(['CVE-2023-45853']);
    expect(failingFindings(findings, 'LOW')).toHaveLength(4);
  });

  it('ranks UNKNOWN lowest, so only an UNKNOWN threshold fails on it', () => {
    expect(failingFindings(findings, 'UNKNOWN')).toHaveLength(5);
  });

  it('parses severity names case-insensitively and refuses others', () => {
    expect(parseSeverity('high')).toBe('HIGH');
    expect(codeOf(() => parseSeverity('severe'))).toBe('USAGE');
  });
});
