/**
 * Which witnesses a log asks at every checkpoint: `<state dir>/witnesses.json` locally, or the
 * same JSON in VERITRAIL_WITNESSES on AWS: {"witnesses":[{"vkey":"<name+keyid+key>","url":"<submission prefix>"}]}.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { parseVkey } from '../../core/cosignature.js';
import { VeritrailError } from '../../core/errors.js';
import { HttpWitnessClient, type WitnessClient } from './http.js';

/**
 * A witness name as signed-note allows a key name: non-empty, no whitespace, no `+` (c2sp.org
 * signed-note); printable ASCII here, a URL-like name such as `example.org/witness` by convention.
 */
export const WITNESS_NAME = /^[!-*,-~]{1,255}$/;

const WitnessConfig = z
  .object({ witnesses: z.array(z.object({ vkey: z.string(), url: z.string().url() }).strict()) })
  .strict();

/** Parses a witness configuration; USAGE naming `where` when it is invalid. */
export function witnessesFrom(text: string, where: string): WitnessClient[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new VeritrailError('USAGE', `${where} is not JSON`);
  }
  const parsed = WitnessConfig.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue?.path.length ? `${issue.path.join('.')}: ` : '';
    throw new VeritrailError('USAGE', `${where}: ${at}${issue?.message ?? 'invalid'}`);
  }
  return parsed.data.witnesses.map((w) => {
    try {
      return new HttpWitnessClient(parseVkey(w.vkey), w.url);
    } catch (e) {
      throw new VeritrailError('USAGE', `${where}: ${e instanceof Error ? e.message : String(e)}`);
    }
  });
}

/** The witnesses `<file>` names, none when it does not exist. */
export async function witnessesFromFile(path: string): Promise<WitnessClient[]> {
  if (!existsSync(path)) return [];
  return witnessesFrom(await readFile(path, 'utf8'), path);
}
