/**
 * `veritrail audit verify|show|checkpoint|prove`: the append-only audit log of the local state
 * dir (`--home`, else VERITRAIL_HOME, else ./.veritrail). Formats: docs/audit-log.md.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ObjectAuditLog } from '../../audit/log.js';
import { VeritrailError } from '../../core/errors.js';
import { openFileSigner } from '../../local/file-signer.js';
import { FsObjectStore } from '../../local/fs-object-store.js';
import { type CliIo, EXIT } from '../io.js';

export const summary = 'the append-only audit log: verify, show, checkpoint, prove';

const USAGE = `usage: veritrail audit <subcommand> [--home <dir>] [--json]

  verify              re-derive the chain and Merkle tree, check every checkpoint; exit 0 only when intact
    --bundles-only    skip comparing each sealed entry object with its entry bundle (reads a few
                      large objects instead of one per entry; the bundles are what is chained and signed)
  show [--run <id>]   list entries (of one run)
  checkpoint          sign and store a checkpoint of the log as it is now
  prove <seq>         a self-contained inclusion proof of entry <seq> for offline verification

  --home <dir>        state dir (default: $VERITRAIL_HOME, else ./.veritrail)
  --json              machine-readable output`;

function usageError(message: string): VeritrailError {
  return new VeritrailError('USAGE', `${message}\n${USAGE}`);
}

async function openLog(home: string, needSigner: boolean): Promise<ObjectAuditLog> {
  const keyPath = join(home, 'keys', 'audit.key');
  if (needSigner && !existsSync(keyPath)) {
    throw new VeritrailError(
      'USAGE',
      `no audit key at ${keyPath}; run a pipeline first or pass --home <state dir>`,
    );
  }
  const store = new FsObjectStore(join(home, 'objects'));
  const signer = existsSync(keyPath) ? await openFileSigner(keyPath) : undefined;
  return new ObjectAuditLog(signer === undefined ? { store } : { store, signer });
}

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
  switch (sub) {
    case 'verify': {
      const log = await openLog(home, true);
      const report = await log.verify({ entryObjects: values['bundles-only'] !== true });
      if (json) io.out(JSON.stringify(report));
      else {
        io.out(
          `${report.entries} entries, ${report.checkpoints} checkpoints: ${report.ok ? 'intact' : 'PROBLEMS'}`,
        );
        for (const p of report.problems) io.out(`  seq ${p.seq}  ${p.code}  ${p.detail}`);
        if (report.moreProblems !== undefined) io.out(`  … and ${report.moreProblems} more`);
      }
      return report.ok ? EXIT.OK : EXIT.FAILED;
    }
    case 'show': {
      const log = await openLog(home, false);
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
      const log = await openLog(home, true);
      const cp = await log.checkpoint();
      io.out(
        json
          ? JSON.stringify({
              treeSize: cp.size,
              root: Buffer.from(cp.root).toString('base64'),
              note: cp.note,
            })
          : cp.note,
      );
      return EXIT.OK;
    }
    case 'prove': {
      const seqText = rest[0];
      if (seqText === undefined || !/^\d+$/.test(seqText))
        throw usageError('audit prove needs a sequence number');
      const log = await openLog(home, true);
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
      run: { type: 'string' },
      json: { type: 'boolean' },
      'bundles-only': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
