/**
 * CheckCode's vulnerability gate: read a scanner's report and keep the findings at or above a
 * configured severity. Two formats are understood:
 *
 * - Trivy JSON (`trivy … --format json`): `{SchemaVersion: 2, Results: [{Target, Vulnerabilities:
 *   [{VulnerabilityID, PkgName, InstalledVersion, Severity}]}]}`; Trivy before v0.20 wrote the
 *   `Results` array alone at the top level, which is accepted too. Severity is Trivy's own
 *   UNKNOWN / LOW / MEDIUM / HIGH / CRITICAL.
 * - SARIF 2.1.0 (OASIS standard): `runs[].results[]`. The severity of a result is the CVSS score in
 *   its rule's `properties["security-severity"]` (the property GitHub code scanning reads, and Trivy
 *   writes), mapped as GitHub documents it: ≥ 9.0 CRITICAL, ≥ 7.0 HIGH, ≥ 4.0 MEDIUM, > 0 LOW.
 *   Without a score, the SARIF level decides (§3.27.10: the result's `level`, else the rule's
 *   `defaultConfiguration.level` (§3.50.3), else "warning"): error → HIGH, warning → MEDIUM,
 *   note → LOW, none → UNKNOWN. Results whose `kind` (§3.27.9) is not "fail" are not findings.
 */
import { z } from 'zod';
import { VeritrailError } from './errors.js';
import { describeIssues } from './pipeline.js';

const SEVERITIES = ['UNKNOWN', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL'] as const;
export type Severity = (typeof SEVERITIES)[number];

export interface VulnFinding {
  /** CVE / GHSA id (Trivy) or rule id (SARIF). */
  id: string;
  package?: string;
  severity: Severity;
  source: 'trivy' | 'sarif';
  /** Trivy's scan target, or the SARIF tool's name. */
  target?: string;
}

const trivyVulnerability = z.looseObject({
  VulnerabilityID: z.string().min(1),
  PkgName: z.string().optional(),
  InstalledVersion: z.string().optional(),
  Severity: z.string().optional(),
});
const trivyResult = z.looseObject({
  Target: z.string().optional(),
  Vulnerabilities: z.array(trivyVulnerability).nullish(),
});
const trivyReport = z.looseObject({
  SchemaVersion: z.number().int().optional(),
  Results: z.array(trivyResult).nullish(),
});

const sarifLevel = z.enum(['none', 'note', 'warning', 'error']);
const propertyBag = z.looseObject({ 'security-severity': z.union([z.string(), z.number()]).optional() });
const sarifRule = z.looseObject({
  id: z.string().min(1),
  defaultConfiguration: z.looseObject({ level: sarifLevel.optional() }).optional(),
  properties: propertyBag.optional(),
});
const sarifComponent = z.looseObject({ name: z.string(), rules: z.array(sarifRule).optional() });
const sarifResult = z.looseObject({
  ruleId: z.string().optional(),
  ruleIndex: z.number().int().min(0).optional(),
  rule: z.looseObject({ id: z.string().optional(), index: z.number().int().optional() }).optional(),
  kind: z.enum(['notApplicable', 'pass', 'fail', 'review', 'open', 'informational']).optional(),
  level: sarifLevel.optional(),
  properties: propertyBag.optional(),
});
const sarifLog = z.looseObject({
  version: z.literal('2.1.0'),
  runs: z.array(
    z.looseObject({
      tool: z.looseObject({ driver: sarifComponent, extensions: z.array(sarifComponent).optional() }),
      results: z.array(sarifResult).nullish(),
    }),
  ),
});

/** Parses a Trivy JSON report or a SARIF 2.1.0 log (text or parsed JSON) into findings. */
export function parseVulnReport(input: string | unknown, source = 'vulnerability report'): VulnFinding[] {
  let value: unknown = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (e) {
      throw invalid(`${source} is not JSON (${(e as Error).message})`, e);
    }
  }
  if (Array.isArray(value)) return fromTrivy({ Results: value }, source);
  if (typeof value !== 'object' || value === null) {
    throw invalid(`${source} is not a JSON object`);
  }
  if ('runs' in value || '$schema' in value || 'version' in value) return fromSarif(value, source);
  if ('Results' in value || 'SchemaVersion' in value || 'ArtifactName' in value)
    return fromTrivy(value, source);
  throw invalid(
    `${source} is neither a Trivy JSON report (no "Results" or "SchemaVersion") nor a SARIF 2.1.0 log (no "version" and "runs")`,
  );
}

function fromTrivy(value: unknown, source: string): VulnFinding[] {
  const r = trivyReport.safeParse(value);
  if (!r.success) throw invalid(`${source} (Trivy JSON) is malformed: ${describeIssues(r.error)}`, r.error);
  const out: VulnFinding[] = [];
  for (const result of r.data.Results ?? []) {
    for (const v of result.Vulnerabilities ?? []) {
      const f: VulnFinding = { id: v.VulnerabilityID, severity: trivySeverity(v.Severity), source: 'trivy' };
      if (v.PkgName !== undefined) f.package = v.PkgName;
      if (result.Target !== undefined) f.target = result.Target;
      out.push(f);
    }
  }
  return out;
}

function trivySeverity(s: string | undefined): Severity {
  const upper = (s ?? 'UNKNOWN').toUpperCase();
  return (SEVERITIES as readonly string[]).includes(upper) ? (upper as Severity) : 'UNKNOWN';
}

type SarifRule = z.infer<typeof sarifRule>;

function fromSarif(value: unknown, source: string): VulnFinding[] {
  const r = sarifLog.safeParse(value);
  if (!r.success) throw invalid(`${source} (SARIF 2.1.0) is malformed: ${describeIssues(r.error)}`, r.error);
  const out: VulnFinding[] = [];
  r.data.runs.forEach((run, runIndex) => {
    const driverRules = run.tool.driver.rules ?? [];
    const rulesById = new Map<string, SarifRule>();
    for (const comp of [run.tool.driver, ...(run.tool.extensions ?? [])]) {
      for (const rule of comp.rules ?? []) if (!rulesById.has(rule.id)) rulesById.set(rule.id, rule);
    }
    (run.results ?? []).forEach((res, i) => {
      if (res.kind !== undefined && res.kind !== 'fail') return;
      const index = res.ruleIndex ?? res.rule?.index;
      const byIndex = index === undefined ? undefined : driverRules[index];
      const id = res.ruleId ?? res.rule?.id ?? byIndex?.id;
      if (id === undefined) {
        throw invalid(
          `${source} (SARIF 2.1.0) is malformed: runs.${runIndex}.results.${i} names no rule (ruleId, rule.id or ruleIndex)`,
        );
      }
      // §3.27.5: a hierarchical ruleId "a/b" may refer to rule "a".
      const rule = rulesById.get(id) ?? byIndex ?? rulesById.get(id.split('/')[0] ?? id);
      const score = res.properties?.['security-severity'] ?? rule?.properties?.['security-severity'];
      const severity =
        score !== undefined && Number.isFinite(Number(score))
          ? fromScore(Number(score))
          : fromLevel(res.level ?? rule?.defaultConfiguration?.level ?? 'warning');
      out.push({ id, severity, source: 'sarif', target: run.tool.driver.name });
    });
  });
  return out;
}

/** GitHub code scanning's mapping of a CVSS score (security-severity) to a severity. */
export function fromScore(score: number): Severity {
  if (score >= 9) return 'CRITICAL';
  if (score >= 7) return 'HIGH';
  if (score >= 4) return 'MEDIUM';
  if (score > 0) return 'LOW';
  return 'UNKNOWN';
}

function fromLevel(level: 'none' | 'note' | 'warning' | 'error'): Severity {
  switch (level) {
    case 'error':
      return 'HIGH';
    case 'warning':
      return 'MEDIUM';
    case 'note':
      return 'LOW';
    case 'none':
      return 'UNKNOWN';
  }
}

/** Rank of a severity, UNKNOWN lowest as in Trivy's ordering. */
function severityRank(s: Severity): number {
  return SEVERITIES.indexOf(s);
}

/** Findings at or above `minSeverity` (UNKNOWN ranks lowest, so minSeverity 'UNKNOWN' keeps all). */
export function failingFindings(findings: readonly VulnFinding[], minSeverity: Severity): VulnFinding[] {
  const min = severityRank(minSeverity);
  return findings.filter((f) => severityRank(f.severity) >= min);
}

/** Parses a severity name from configuration, case-insensitively; USAGE error otherwise. */
export function parseSeverity(s: string): Severity {
  const upper = s.toUpperCase();
  if ((SEVERITIES as readonly string[]).includes(upper)) return upper as Severity;
  throw new VeritrailError('USAGE', `severity "${s}" is not one of ${SEVERITIES.join(', ')}`);
}

function invalid(message: string, cause?: unknown): VeritrailError {
  return new VeritrailError(
    'POLICY_INVALID',
    `${message}. Provide the scanner's JSON or SARIF 2.1.0 output unchanged.`,
    {
      cause,
    },
  );
}
