/**
 * Trust roots for verification, from outside the state dir: `--key` / `--audit-key` PEM files
 * (repeatable: every key of a rotation), a trust file an auditor keeps, and the state dir's own
 * keys (those of the run's business unit, docs/units.md) only with `--trust-state-keys`.
 *
 * Trust file (JSON): `{"signing": ["keys/signing-2026.pem", …], "audit": ["keys/audit.pem"]}`;
 * each entry is a path relative to the trust file, or the PEM text itself. Unknown keys are refused.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import type { WitnessKey } from '../core/cosignature.js';
import { VerifyError } from './codes.js';

const TrustFileSchema = z.strictObject({
  signing: z.array(z.string().min(1)).default([]),
  audit: z.array(z.string().min(1)).default([]),
});

/** Where the trusted keys come from. Nothing is trusted by default: an auditor names the keys. */
export interface LocalVerifyOptions {
  /** Trusted attestation keys (PEM text, with where each came from). */
  signing?: { pem: string; source: string }[];
  /** Trusted audit checkpoint keys. */
  audit?: { pem: string; source: string }[];
  /**
   * Also trust the state dir's own keys (the user said so: `--trust-state-keys`): those of the
   * run's business unit only (src/local/home.ts unitPaths).
   */
  stateKeys?: boolean;
  /** Witnesses whose cosignature on a checkpoint covering the run is looked for (`--witness`). */
  witnesses?: WitnessKey[];
}

/** The options every verifying command shares (parseArgs definitions). */
export const TRUST_OPTIONS = {
  key: { type: 'string', multiple: true },
  'audit-key': { type: 'string', multiple: true },
  trust: { type: 'string' },
  'trust-state-keys': { type: 'boolean' },
} as const;

export const TRUST_USAGE = `  --key <pem>        a trusted attestation public key (repeatable, for rotated keys)
  --audit-key <pem>  a trusted audit checkpoint public key (repeatable)
  --trust <file>     a trust file: {"signing": [<pem path>…], "audit": [<pem path>…]}
  --trust-state-keys also trust the state dir's own keys, of the run's business unit only
                     (never by default)`;

async function readKey(path: string, flag: string): Promise<{ pem: string; source: string }> {
  try {
    return { pem: await readFile(path, 'utf8'), source: `${flag} ${path}` };
  } catch (e) {
    throw new VerifyError('KEY_MISSING', `${flag} ${path} cannot be read: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** Reads the named keys and trust file. KEY_MISSING / KEY_INVALID with what to do. */
export async function trustOptions(
  values: { key?: string[]; 'audit-key'?: string[]; trust?: string; 'trust-state-keys'?: boolean },
  cwd: string,
): Promise<LocalVerifyOptions> {
  const signing = await Promise.all((values.key ?? []).map((p) => readKey(resolve(cwd, p), '--key')));
  const audit = await Promise.all(
    (values['audit-key'] ?? []).map((p) => readKey(resolve(cwd, p), '--audit-key')),
  );
  if (values.trust !== undefined) {
    const file = resolve(cwd, values.trust);
    let parsed: z.infer<typeof TrustFileSchema>;
    try {
      parsed = TrustFileSchema.parse(JSON.parse(await readFile(file, 'utf8')));
    } catch (e) {
      throw new VerifyError(
        'KEY_INVALID',
        `trust file ${file} is not {"signing": [..], "audit": [..]}: ${(e as Error).message.split('\n')[0]}`,
        { cause: e },
      );
    }
    const entry = async (v: string, what: string) =>
      v.includes('-----BEGIN')
        ? { pem: v, source: `trust file ${file}` }
        : { ...(await readKey(resolve(dirname(file), v), `trust file ${what}`)) };
    for (const v of parsed.signing) signing.push(await entry(v, 'signing key'));
    for (const v of parsed.audit) audit.push(await entry(v, 'audit key'));
  }
  return { signing, audit, stateKeys: values['trust-state-keys'] === true };
}

/** One line per trusted key: what the output says was trusted. */
export function describeTrusted(keys: {
  signing: { id: string; source: string }[];
  audit: { id: string; source: string }[];
}): string[] {
  return [
    ...keys.signing.map((k) => `signing ${k.id} (${k.source})`),
    ...keys.audit.map((k) => `audit   ${k.id} (${k.source})`),
  ];
}
