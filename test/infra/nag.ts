/**
 * The four compliance packs (cdk-nag 2.37, the last line compatible with aws-cdk-lib 2.224) and how
 * their findings are read back from a cloud assembly: shared by test/infra/nag-findings.ts (the
 * synthesized app) and test/infra/compliance.test.ts (a control app that must be flagged).
 */
import { Aspects, type IAspect } from 'aws-cdk-lib';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks, PCIDSS321Checks } from 'cdk-nag';
import type { IConstruct } from 'constructs';

export interface NagFinding {
  level: 'error' | 'warning';
  stack: string;
  path: string;
  message: string;
}
export interface NagSuppressed {
  stack: string;
  path: string;
  rule: string;
  /** For a granular suppression (IAM5), the finding it covers, e.g. `Resource::<auditBucket….Arn>/*`. */
  finding?: string;
  reason: string;
}

/** Adds the four packs as aspects; suppressed findings are logged (as info) with their reason. */
export function applyPacks(scope: IConstruct): void {
  for (const Pack of [AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks, PCIDSS321Checks]) {
    Aspects.of(scope).add(new Pack({ verbose: true, logIgnores: true }) as IAspect);
  }
}

/** Every unsuppressed finding (errors and warnings) and every suppression that was used. */
export function collectNag(assembly: CloudAssembly): { findings: NagFinding[]; suppressed: NagSuppressed[] } {
  const findings: NagFinding[] = [];
  const suppressed: NagSuppressed[] = [];
  for (const stack of assembly.stacks) {
    for (const { id, level, entry } of stack.messages) {
      const message = String(entry.data);
      if (level === 'error' || level === 'warning') {
        findings.push({ level, stack: stack.stackName, path: id, message: message.split('\n')[0] ?? '' });
      } else if (message.startsWith('CdkNagSuppression')) {
        // cdk-nag's AnnotationLogger: `CdkNagSuppression[<finding>]: <rule> was triggered but suppressed.
        // Provided reason: "<reason>"` (the `[<finding>]` only for a granular suppression).
        const rule = / (\S+) was triggered but suppressed\./.exec(message)?.[1] ?? '';
        const finding = /^CdkNagSuppression\[(.+)\]: /.exec(message)?.[1];
        const reason = /Provided reason: "([\s\S]*)"\s*$/.exec(message)?.[1] ?? '';
        suppressed.push({ stack: stack.stackName, path: id, rule, ...(finding ? { finding } : {}), reason });
      }
    }
  }
  return { findings, suppressed };
}
