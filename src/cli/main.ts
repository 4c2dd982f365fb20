/**
 * `veritrail` entry point. Each command lives in src/cli/commands/<name>.ts and exports
 * `run(args, io)`; commands are loaded on demand so the CLI starts fast and commands stay independent.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VeritrailError } from '../core/errors.js';
import { type CliIo, EXIT, processIo } from './io.js';

export interface CommandModule {
  run(args: string[], io: CliIo): Promise<number>;
  summary: string;
}

const COMMANDS = [
  'run',
  'runs',
  'hash',
  'verify',
  'export',
  'audit',
  'fairness',
  'gate',
  'serve',
  'start',
] as const;

function usage(io: CliIo): void {
  io.err(`usage: veritrail <command> [options]

commands:
  run <dataset> --pipeline <file>   run a whole pipeline locally and print a summary
  runs list | runs show <runId>     inspect recorded runs
  hash <file|dir>                   content digest of a file or a dataset folder
  verify <runId> | --bundle <file>  check signatures, digests and links offline
  export <runId> --out <dir>        write an evidence folder for auditors
  audit verify|show|checkpoint|prove  the append-only audit log
  fairness <file> ...               fairness metrics of a predictions file
  gate --policy <file> --input <f>  evaluate a gate policy offline
  serve                             the local control plane: landing folder, schedules, starts
  start --pipeline <name> --dataset <path>  start a run on the control plane

Run 'veritrail <command> --help' for a command's options.`);
}

export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    usage(io);
    return name === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (!(COMMANDS as readonly string[]).includes(name)) {
    io.err(`veritrail: unknown command "${name}"`);
    usage(io);
    return EXIT.USAGE;
  }
  const here = dirname(fileURLToPath(import.meta.url));
  const file = join(here, 'commands', `${name}.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`);
  if (!existsSync(file)) {
    io.err(`veritrail: the "${name}" command is not available in this build`);
    return EXIT.USAGE;
  }
  const mod = (await import(`./commands/${name}.js`)) as CommandModule;
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
