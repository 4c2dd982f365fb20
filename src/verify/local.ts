import { access } from 'node:fs/promises';
import { openAuditLog } from '../audit/log.js';
import { parsePublicKey } from '../core/attest/index.js';
import { digestOf } from '../core/digest.js';
import { openFileSigner } from '../local/file-signer.js';
import { homePaths } from '../local/home.js';
import { openLocalRuntime } from '../local/runtime.js';
import type { Signer } from '../ports.js';
import type { VerifyReport } from './codes.js';
import { VerifyError } from './codes.js';
import { type Evidence, type TrustedKeys, verifyRunWith } from './run.js';

export interface LocalVerifyOptions {
  /** Trusted attestation key (PEM); default: the public half of the state dir's signing key. */
  signingPem?: string;
  /** Trusted audit checkpoint key (PEM); default: the public half of the state dir's audit key. */
  auditPem?: string;
}

/** The public half of a state dir key, without ever creating one (openFileSigner would). */
async function publicPemOf(path: string, what: string): Promise<string> {
  try {
    await access(path);
  } catch (e) {
    throw new VerifyError(
      'KEY_MISSING',
      `the ${what} key ${path} does not exist; pass the trusted public key with --key / --audit-key`,
      { cause: e },
    );
  }
  return (await openFileSigner(path)).publicKeyPem();
}

/** The keys to trust: given PEMs, else the state dir's own. Checks each is a usable public key. */
export async function trustedKeys(home: string, options: LocalVerifyOptions = {}): Promise<TrustedKeys> {
  const paths = homePaths(home);
  const signingPem = options.signingPem ?? (await publicPemOf(paths.signingKey, 'signing'));
  const auditPem = options.auditPem ?? (await publicPemOf(paths.auditKey, 'audit'));
  for (const [what, pem] of [
    ['signing', signingPem],
    ['audit', auditPem],
  ] as const) {
    try {
      parsePublicKey(pem);
    } catch (e) {
      throw new VerifyError(
        'KEY_INVALID',
        `the trusted ${what} key is not a PEM public key: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
  return { signingPem, auditPem };
}

/** A signer that only knows its public key: verification never signs. */
export function publicOnlySigner(publicKeyPem: string): Signer {
  return {
    keyId: digestOf(new Uint8Array(parsePublicKey(publicKeyPem).key.export({ type: 'spki', format: 'der' }))),
    publicKeyPem: async () => publicKeyPem,
    sign: async () => {
      throw new VerifyError('KEY_MISSING', 'verification never signs');
    },
  };
}

/** Verifies a run of a local state dir (opens its run table: one process at a time). */
export async function verifyLocalRun(
  home: string,
  runId: string,
  options: LocalVerifyOptions = {},
): Promise<{ report: VerifyReport; evidence: Evidence; keys: TrustedKeys }> {
  const keys = await trustedKeys(home, options);
  const rt = await openLocalRuntime(home);
  try {
    const audit = openAuditLog({
      store: rt.objects,
      signer: publicOnlySigner(keys.auditPem),
      bucket: 'audit',
    });
    const { report, evidence } = await verifyRunWith(
      { runs: rt.runs, objects: rt.objects, audit },
      keys,
      runId,
    );
    return { report, evidence, keys };
  } finally {
    await rt.close();
  }
}
