/**
 * `veritrail` entry point. Each command lives in src/cli/commands/<name>.ts and exports
 * `run(args, io)`; commands are loaded on demand so the CLI starts fast and commands stay independent.
 */
import { VeritrailError } from '../core/errors.js';
import { type CliIo, EXIT, processIo } from './io.js';

export interface CommandModule {
  run(args: string[], io: CliIo): Promise<number>;
  summary: string;
}

// Loaded on demand, so the CLI starts fast and one command's dependencies never slow another.
const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  run: () => import('./commands/run.js'),
  runs: () => import('./commands/runs.js'),
  hash: () => import('./commands/hash.js'),
  verify: () => import('./commands/verify.js'),
  export: () => import('./commands/export.js'),
  report: () => import('./commands/report.js'),
  model: () => import('./commands/model.js'),
  audit: () => import('./commands/audit.js'),
  fairness: () => import('./commands/fairness.js'),
  gate: () => import('./commands/gate.js'),
  serve: () => import('./commands/serve.js'),
  start: () => import('./commands/start.js'),
  scan: () => import('./commands/scan.js'),
  witness: () => import('./commands/witness.js'),
};

function usage(io: CliIo): void {
  io.err(`usage: veritrail <command> [options]

commands:
  run <dataset> --pipeline <file>   run a whole pipeline locally and print a summary
  runs list | show <id> | compare <a> <b>  inspect and compare recorded runs
  hash <file|dir>                   content digest of a file or a dataset folder
  verify <runId> | --bundle <file>  check signatures, digests and links offline
  export <runId> --out <dir>        write an evidence folder for auditors (model, report, verify.sh)
  report <runId> [--out <file>]     the run's model report: one self-contained HTML file
  model get <runId> --out <dir>     hand over the verified model files
  audit verify|show|checkpoint|prove  the append-only audit log
  fairness <file> ...               fairness metrics of a predictions file
  gate --policy <file> --input <f>  evaluate a gate policy offline
  serve                             the local control plane: landing folder, schedules, starts
  start --pipeline <name> --dataset <path>  start a run on the control plane
  scan [<file|dir>…] [--staged]     find hard-coded credentials (also a pre-commit hook)
  witness serve|key                 a tlog-witness that cosigns audit checkpoints

Run 'veritrail <command> --help' for a command's options.`);
}

export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    usage(io);
    return name === undefined ? EXIT.USAGE : EXIT.OK;
  }
  const load = COMMANDS[name];
  if (!load) {
    io.err(`veritrail: unknown command "${name}"`);
    usage(io);
    return EXIT.USAGE;
  }
  const mod = await load();
  try {
    return await mod.run(rest, io);
  } catch (e) {
    if (e instanceof VeritrailError) {
      io.err(`veritrail ${name}: ${e.message}`);
      return e.code === 'USAGE' || e.code === 'PIPELINE_INVALID' ? EXIT.USAGE : EXIT.FAILED;
    }
    throw e;
  }
}
