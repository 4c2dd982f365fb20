/**
 * `veritrail audit verify|show|checkpoint|prove`: the append-only audit log of the local state
 * dir (`--home`, else VERITRAIL_HOME, else ./.veritrail), the default unit's or, with `--unit`,
 * a business unit's own log (docs/units.md). Formats: docs/audit-log.md.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { ObjectAuditLog } from '../../audit/log.js';
import { verifyLog } from '../../audit/verify/log-verifier.js';
import { witnessesFromFile } from '../../audit/witness/config.js';
import { HttpWitnessClient } from '../../audit/witness/http.js';
import { parseVkey, type WitnessKey } from '../../core/cosignature.js';
import { VeritrailError } from '../../core/errors.js';
import { DEFAULT_UNIT, parseUnitName } from '../../core/unit.js';
import { openFileSigner } from '../../local/file-signer.js';
import { FsObjectStore } from '../../local/fs-object-store.js';
import { assertUnitKnown, type UnitPaths, unitPaths } from '../../local/home.js';
import { type CliIo, EXIT } from '../io.js';

export const summary = 'the append-only audit log: verify, show, checkpoint, prove';

const USAGE = `usage: veritrail audit <subcommand> [--unit <unit>] [--home <dir>] [--json]

  verify              re-derive the chain and Merkle tree, check every checkpoint; exit 0 only when intact
    --bundles-only    skip comparing each sealed batch copy with its entry bundle (reads a few
                      large objects instead of one per batch; the bundles are what is chained and signed)
    --audit-key <pem> a log public key to trust (repeat for rotated keys); with it, or --trust,
                      no key of the state dir is used and no private key is needed (without
                      them: the state dir's own key of the unit, and the output says so)
    --trust <file>    a trust file an auditor keeps: {"auditKeys":[pem…],"witnesses":[vkey…],
                      "witnessUrls":{"<name>":"<url>"},"quorum":k}
    --witness <vkey>  a witness whose cosignatures count (name+keyid+key; repeat)
    --witness-url <name>=<url>  where to ask that witness for the largest checkpoint it cosigned
                      (catches truncation and whole-state rollback)
    --quorum <k>      cosignatures the latest checkpoint needs (default 1 with --witness)
  show [--run <id>]   list entries (of one run)
  checkpoint          sign and store a checkpoint of the log as it is now, cosigned by the
                      witnesses listed in <home>/witnesses.json ({"witnesses":[{"vkey","url"}]};
                      a unit's: <home>/units/<unit>/witnesses.json)
  prove <seq>         a self-contained inclusion proof of entry <seq> for offline verification

  --unit <unit>       the log of that business unit (default: the default unit's log)
  --home <dir>        state dir (default: $VERITRAIL_HOME, else ./.veritrail)
  --json              machine-readable output`;

function usageError(message: string): VeritrailError {
  return new VeritrailError('USAGE', `${message}\n${USAGE}`);
}

/** The log of `unit` (src/local/home.ts unitPaths: the default unit's is the one before units). */
async function openLog(home: string, unit: UnitPaths, needSigner: boolean): Promise<ObjectAuditLog> {
  const keyPath = unit.auditKey;
  if (needSigner && !existsSync(keyPath)) {
    throw new VeritrailError(
      'USAGE',
      `no audit key at ${keyPath}; run a pipeline first, pass --home <state dir>, or verify with --audit-key <pem>`,
    );
  }
  const store = new FsObjectStore(join(home, 'objects'));
  const signer = existsSync(keyPath) ? await openFileSigner(keyPath) : undefined;
  const witnesses = await witnessesFromFile(unit.witnesses);
  return new ObjectAuditLog({
    store,
    witnesses,
    prefix: unit.auditPrefix,
    origin: unit.auditOrigin,
    ...(signer === undefined ? {} : { signer }),
  });
}

interface Trust {
  auditKeys: string[];
  witnesses: WitnessKey[];
  urls: Map<string, string>;
  quorum?: number;
}

async function trustOf(values: ReturnType<typeof parse>['values'], cwd: string): Promise<Trust> {
  const trust: Trust = { auditKeys: [], witnesses: [], urls: new Map() };
  if (values.trust !== undefined) {
    const file = TrustFile.safeParse(JSON.parse(await readFile(resolve(cwd, values.trust), 'utf8')));
    if (!file.success)
      throw usageError(`trust file ${values.trust}: ${file.error.issues[0]?.message ?? 'invalid'}`);
    trust.auditKeys.push(...file.data.auditKeys);
    trust.witnesses.push(...(file.data.witnesses ?? []).map((v) => parseVkey(v)));
    for (const [n, u] of Object.entries(file.data.witnessUrls ?? {})) trust.urls.set(n, u);
    if (file.data.quorum !== undefined) trust.quorum = file.data.quorum;
  }
  for (const p of values['audit-key'] ?? []) trust.auditKeys.push(await readFile(resolve(cwd, p), 'utf8'));
  for (const v of values.witness ?? []) {
    try {
      trust.witnesses.push(parseVkey(v));
    } catch (e) {
      throw usageError(`--witness ${v}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  for (const pair of values['witness-url'] ?? []) {
    const at = pair.indexOf('=');
    if (at < 1) throw usageError('--witness-url takes <witness name>=<url>');
    trust.urls.set(pair.slice(0, at), pair.slice(at + 1));
  }
  if (values.quorum !== undefined) {
    if (!/^\d+$/.test(values.quorum)) throw usageError('--quorum takes a whole number');
    trust.quorum = Number(values.quorum);
  }
  if (trust.quorum !== undefined && trust.quorum > trust.witnesses.length) {
    throw usageError(`--quorum ${trust.quorum} needs at least that many --witness keys`);
  }
  return trust;
}

const TrustFile = z
  .object({
    auditKeys: z.array(z.string().includes('BEGIN PUBLIC KEY')).min(1),
    witnesses: z.array(z.string()).optional(),
    witnessUrls: z.record(z.string(), z.string().url()).optional(),
    quorum: z.number().int().min(1).optional(),
  })
  .strict();

export async function run(args: string[], io: CliIo): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (e) {
    if (e instanceof VeritrailError) throw e;
    throw usageError(e instanceof Error ? e.message : String(e));
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    io.out(USAGE);
    return EXIT.OK;
  }
  const [sub, ...rest] = positionals;
  const home = resolve(io.cwd, values.home ?? io.env.VERITRAIL_HOME ?? '.veritrail');
  const json = values.json === true;
  let unit = unitPaths(home, DEFAULT_UNIT);
  if (values.unit !== undefined) {
    unit = unitPaths(home, parseUnitName(values.unit));
    // A unit this state dir does not hold is a typo, not an empty log.
    await assertUnitKnown(home, unit.unit);
  }
  switch (sub) {
    case 'verify': {
      const trust = await trustOf(values, io.cwd);
      const pinned = trust.auditKeys.length > 0;
      const log = await openLog(home, unit, !pinned);
      const witnesses = trust.witnesses.map((key) => {
        const url = trust.urls.get(key.name);
        return url === undefined ? { key } : new HttpWitnessClient(key, url);
      });
      const report = await verifyLog(log.reader, {
        entryObjects: values['bundles-only'] !== true,
        ...(pinned ? { trustedKeys: trust.auditKeys } : {}),
        ...(witnesses.length > 0 ? { witnesses, quorum: trust.quorum ?? 1 } : {}),
      });
      if (json) io.out(JSON.stringify(report));
      else {
        if (pinned) io.out(`trusted log keys (key id): ${(report.trustedKeys ?? []).join(', ')}`);
        else
          io.out(
            `trusted log key: the state dir's own (${relative(home, unit.auditKey)}), not an independent trust root; pass --audit-key <pem> or --trust <file>`,
          );
        for (const w of report.witnesses ?? []) {
          io.out(
            `witness ${w.witness}: ${w.cosigned ? 'cosigned the latest checkpoint' : 'no cosignature on the latest checkpoint'}${w.witnessSize === undefined ? '' : `; holds size ${w.witnessSize}`}`,
          );
        }
        io.out(
          `${report.entries} entries, ${report.checkpoints} checkpoints: ${report.ok ? 'intact' : 'PROBLEMS'}`,
        );
        for (const p of report.problems) io.out(`  seq ${p.seq}  ${p.code}  ${p.detail}`);
        if (report.moreProblems !== undefined) io.out(`  … and ${report.moreProblems} more`);
      }
      return report.ok ? EXIT.OK : EXIT.FAILED;
    }
    case 'show': {
      const log = await openLog(home, unit, false);
      const filter = values.run === undefined ? {} : { runId: values.run };
      for await (const e of log.entries(filter)) {
        if (json) io.out(JSON.stringify(e));
        else
          io.out(
            `${e.seq}\t${e.time}\t${e.pipeline}\t${e.runId}\t${e.step}\t${e.type}\t${e.outcome}\t${e.actor}`,
          );
      }
      return EXIT.OK;
    }
    case 'checkpoint': {
      const log = await openLog(home, unit, true);
      const cp = await log.checkpoint();
      io.out(
        json
          ? JSON.stringify({
              treeSize: cp.size,
              root: Buffer.from(cp.root).toString('base64'),
              note: cp.note,
              witnessed: cp.witnessed.map((w) => (w.ok ? { witness: w.witness, ok: true } : w)),
            })
          : cp.note,
      );
      const refused = cp.witnessed.filter((w) => !w.ok);
      for (const w of refused)
        if (!w.ok) io.err(`witness ${w.witness} did not cosign (${w.status}): ${w.detail}`);
      return refused.length === 0 ? EXIT.OK : EXIT.FAILED;
    }
    case 'prove': {
      const seqText = rest[0];
      if (seqText === undefined || !/^\d+$/.test(seqText))
        throw usageError('audit prove needs a sequence number');
      const log = await openLog(home, unit, true);
      const bundle = await log.prove(Number(seqText));
      io.out(json ? JSON.stringify(bundle) : JSON.stringify(bundle, null, 2));
      return EXIT.OK;
    }
    default:
      throw usageError(sub === undefined ? 'missing subcommand' : `unknown subcommand "${sub}"`);
  }
}

function parse(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      home: { type: 'string' },
      unit: { type: 'string' },
      run: { type: 'string' },
      json: { type: 'boolean' },
      'bundles-only': { type: 'boolean' },
      'audit-key': { type: 'string', multiple: true },
      trust: { type: 'string' },
      witness: { type: 'string', multiple: true },
      'witness-url': { type: 'string', multiple: true },
      quorum: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
