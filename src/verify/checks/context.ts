/**
 * What every check of `veritrail verify <runId>` shares: the run, the trusted keys, the ports it
 * reads through, the evidence read so far and the list of checks, in the order they ran.
 */

import type { LogReader } from '../../audit/reader.js';
import type { ProofBundle } from '../../audit/verify/proof.js';
import type { WitnessKey } from '../../core/cosignature.js';
import type { Digest } from '../../core/digest.js';
import { isDigest } from '../../core/digest.js';
import type { AuditEntry, DatasetSource, ObjectStore, RunRecord, RunStore } from '../../ports.js';
import type { VerifyCheck, VerifyCheckName, VerifyCode } from '../codes.js';
import type { BundleSlot } from './slots.js';

export interface VerifyDeps {
  runs: Pick<RunStore, 'get'>;
  objects: ObjectStore;
  /**
   * Reads raw data that is not a local path (`s3://…` of a deployed stage): the files the run
   * pinned (raw.pins.json, VersionIds included) are re-read and re-hashed through it.
   */
  datasets?: Pick<DatasetSource, 'open'>;
  /** Opens a reader of the audit log that checks its checkpoints with one trusted audit public key. */
  openAudit(key: TrustedKey): LogReader;
}

/** One public key an auditor trusts: PEM SubjectPublicKeyInfo, its id, and where it came from. */
export interface TrustedKey {
  pem: string;
  /** sha256 of the DER SubjectPublicKeyInfo: the key id the audit log and the run record carry. */
  id: string;
  /** e.g. `--key ./signing.pub.pem`, `trust file ./trust.json`, `state dir .veritrail/keys/signing.key`. */
  source: string;
}

/**
 * The public keys an auditor trusts, several of each kind when keys were rotated. The first of each
 * list is the one written into an evidence folder when none verified.
 */
export interface TrustedKeys {
  signing: TrustedKey[];
  audit: TrustedKey[];
  /**
   * Witnesses (C2SP tlog-cosignature verifier keys) whose cosignature the auditor looks for on a
   * checkpoint covering the run's entries. Absent or empty: witnessing is reported as not asked.
   */
  witnesses?: WitnessKey[];
}

/** The evidence read while verifying: what `veritrail export` writes out, byte for byte. */
export interface Evidence {
  run: RunRecord;
  bundles: Partial<Record<BundleSlot, Uint8Array>>;
  rawManifest?: Uint8Array;
  rawPins?: Uint8Array;
  processedManifest?: Uint8Array;
  fairnessReport?: Uint8Array;
  gateDecision?: Uint8Array;
  auditEntries: AuditEntry[];
  proofs: ProofBundle[];
  checkpoint?: string;
  /** The run's signed report statement (Sigstore bundle), when the run recorded one. */
  reportBundle?: Uint8Array;
  /** The trusted keys that verified the bundles and the checkpoint (absent when none did). */
  signingKey?: TrustedKey;
  auditKey?: TrustedKey;
}

/** A code a failing check carries. */
export type FailCode = Exclude<VerifyCode, 'OK'>;

/** The checks of one run, in the order they ran: the first failing one is the first broken link. */
export class Checks {
  readonly list: VerifyCheck<VerifyCheckName>[] = [];

  pass(name: VerifyCheckName, detail: string): void {
    this.list.push({ name, ok: true, code: 'OK', detail });
  }

  fail(name: VerifyCheckName, code: FailCode, detail: string): void {
    this.list.push({ name, ok: false, code, detail });
  }

  /** A check made elsewhere (src/core/attest's chain checks), as it is. */
  add(check: VerifyCheck<VerifyCheckName>): void {
    this.list.push(check);
  }
}

export interface VerifyContext {
  readonly deps: VerifyDeps;
  readonly keys: TrustedKeys;
  readonly run: RunRecord;
  readonly facts: RunRecord['facts'];
  /** The run FAILED: what it never produced is absent, and said to be. */
  readonly failed: boolean;
  readonly checks: Checks;
  /**
   * What `veritrail export` writes out. Each field is set by the one check that reads it
   * (`rawManifest` by raw.manifest, `bundles` by the signature checks, `auditEntries` by
   * audit.entries…), and only read by later ones.
   */
  readonly evidence: Evidence;
}

export function createContext(deps: VerifyDeps, keys: TrustedKeys, run: RunRecord): VerifyContext {
  return {
    deps,
    keys,
    run,
    facts: run.facts,
    failed: run.status === 'FAILED',
    checks: new Checks(),
    evidence: { run, bundles: {}, auditEntries: [], proofs: [] },
  };
}

/** Stands for a digest the run never recorded, so that no comparison with it can hold. */
export const NO_DIGEST: Digest = `sha256:${'0'.repeat(64)}`;

/** A digest as the details print it: algorithm and the first 16 hex digits. */
export function short(d: string): string {
  return d.length > 23 ? `${d.slice(0, 23)}…` : d;
}

/** Why a piece of evidence is absent: the run FAILED before producing it, or it was lost. */
export function missing(ctx: VerifyContext, what: string): string {
  return ctx.failed
    ? `${what} is absent: the run FAILED before producing it`
    : `${what} is absent from the run's evidence`;
}

export function altered(what: string): string {
  return `the stored ${what} was altered: its bytes no longer hash to its content address`;
}

/**
 * A digest fact of the run record (`rawDigest`, `processedDigest`, `modelDigest`): undefined, and
 * `check` fails, when it is absent or not a sha256 digest.
 */
export function digestFact(
  ctx: VerifyContext,
  fact: string,
  check: VerifyCheckName,
  what: string,
): Digest | undefined {
  const v = ctx.facts[fact];
  if (v === undefined) {
    ctx.checks.fail(check, 'EVIDENCE_MISSING', missing(ctx, `the ${what} digest`));
    return undefined;
  }
  if (!isDigest(v)) {
    ctx.checks.fail(check, 'RECORD_INVALID', `the run record's ${fact} is not a sha256 digest`);
    return undefined;
  }
  return v;
}
