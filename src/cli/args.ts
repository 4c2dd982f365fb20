import { type ParseArgsConfig, parseArgs } from 'node:util';
import { VeritrailError } from '../core/errors.js';

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
