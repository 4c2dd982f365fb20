import { type ParseArgsConfig, parseArgs } from 'node:util';
import { isVeritrailError, VeritrailError } from '../core/errors.js';

/** node:util parseArgs, with unknown options and bad values turned into USAGE errors (exit 2). */
export function parseCli<T extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: T,
  usage: string,
) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new VeritrailError('USAGE', `${(e as Error).message.replace(/\. To specify.*$/, '')}\n${usage}`);
  }
}

export function usageError(message: string, usage: string): VeritrailError {
  return new VeritrailError('USAGE', `${message}\n${usage}`);
}

/**
 * Runs a command's option parser for a command that maps its own errors to exit codes: a usage
 * problem (a USAGE error, or node:util parseArgs refusing an option) is printed with the usage and
 * turned into exit code 2, as `main` does for every other command; anything else propagates.
 */
export function parseOrExit<T>(
  io: { err(text: string): void },
  command: string,
  usage: string,
  parse: () => T,
): { ok: true; value: T } | { ok: false; exitCode: number } {
  try {
    return { ok: true, value: parse() };
  } catch (e) {
    const parseArgsRefusal =
      e instanceof TypeError && String((e as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS');
    if (isVeritrailError(e, 'USAGE') || parseArgsRefusal) {
      io.err(`veritrail ${command}: ${(e as Error).message.replace(/\. To specify.*$/, '')}\n${usage}`);
      return { ok: false, exitCode: 2 };
    }
    throw e;
  }
}
