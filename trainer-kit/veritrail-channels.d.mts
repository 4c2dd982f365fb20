/** Types of the one-file Node channel helper (veritrail-channels.mjs). */
export class ChannelError extends Error {
  readonly channel: string;
  constructor(channel: string, message: string);
}
export function channelDir(name: string, env?: Record<string, string | undefined>): string;
export function readHyperparameters(env?: Record<string, string | undefined>): Record<string, string>;
export function verifyChannels(
  names?: string[],
  env?: Record<string, string | undefined>,
): Promise<Record<string, string>>;
