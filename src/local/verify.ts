import { access } from 'node:fs/promises';
import { openLogReader } from '../audit/reader.js';
import { publicKeyDer } from '../core/attest/index.js';
import { digestOf } from '../core/digest.js';
import { DEFAULT_UNIT } from '../core/unit.js';
import type { VerifyReport } from '../verify/codes.js';
import { VerifyError } from '../verify/codes.js';
import { type Evidence, type TrustedKey, type TrustedKeys, verifyRunWith } from '../verify/run.js';
import type { LocalVerifyOptions } from '../verify/trust.js';
import { openFileSigner } from './file-signer.js';
import { unitPaths } from './home.js';
import { openLocalRuntime } from './runtime.js';
import { unitOfRun } from './units.js';

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

function trusted(pem: string, source: string, what: string): TrustedKey {
  try {
    return { pem, id: digestOf(publicKeyDer(pem)), source };
  } catch (e) {
    throw new VerifyError(
      'KEY_INVALID',
      `the trusted ${what} key (${source}) is not a PEM public key: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
}

/**
 * The keys to trust: the ones given, plus the state dir's own keys of `unit` only when `stateKeys`
 * is set. KEY_MISSING when no signing or no audit key is named: verification never trusts a key by
 * default.
 */
export async function trustedKeys(
  home: string,
  options: LocalVerifyOptions = {},
  need: { audit: boolean } = { audit: true },
  unit: string = DEFAULT_UNIT,
): Promise<TrustedKeys> {
  const paths = unitPaths(home, unit);
  const signing = (options.signing ?? []).map((k) => trusted(k.pem, k.source, 'signing'));
  const audit = (options.audit ?? []).map((k) => trusted(k.pem, k.source, 'audit'));
  if (options.stateKeys) {
    signing.push(
      trusted(await publicPemOf(paths.signingKey, 'signing'), `state dir ${paths.signingKey}`, 'signing'),
    );
    if (need.audit)
      audit.push(trusted(await publicPemOf(paths.auditKey, 'audit'), `state dir ${paths.auditKey}`, 'audit'));
  }
  const say =
    "name the public keys you trust: --key <pem> and --audit-key <pem> (repeatable), --trust <file>, or --trust-state-keys to trust this state dir's own keys";
  if (signing.length === 0) throw new VerifyError('KEY_MISSING', `no trusted signing key; ${say}`);
  if (need.audit && audit.length === 0) throw new VerifyError('KEY_MISSING', `no trusted audit key; ${say}`);
  return { signing, audit };
}

/**
 * Verifies a run of a local state dir (opens its run table: one process at a time) against the
 * audit log of the run's business unit, and with `stateKeys` that unit's keys.
 */
export async function verifyLocalRun(
  home: string,
  runId: string,
  options: LocalVerifyOptions = {},
): Promise<{ report: VerifyReport; evidence: Evidence; keys: TrustedKeys }> {
  // Keys named wrongly, or none at all, are said before the state dir is opened (as before units:
  // with --trust-state-keys, a state dir where nothing ran has no default keys either).
  let keys: TrustedKeys = { ...(await trustedKeys(home, options)), witnesses: options.witnesses ?? [] };
  const rt = await openLocalRuntime(home);
  try {
    const run = await rt.runs.get(runId);
    const unit = unitPaths(home, run === undefined ? DEFAULT_UNIT : await unitOfRun(rt.objects, run));
    // The state dir's keys to trust are those of the run's unit, and no other unit's.
    if (unit.unit !== DEFAULT_UNIT && options.stateKeys)
      keys = { ...(await trustedKeys(home, options, { audit: true }, unit.unit)), witnesses: keys.witnesses };
    const { report, evidence } = await verifyRunWith(
      {
        runs: rt.runs,
        objects: rt.objects,
        openAudit: (key) =>
          openLogReader({
            store: rt.objects,
            publicKey: key.pem,
            bucket: 'audit',
            prefix: unit.auditPrefix,
            origin: unit.auditOrigin,
          }),
      },
      keys,
      runId,
    );
    return { report, evidence, keys };
  } finally {
    await rt.close();
  }
}
