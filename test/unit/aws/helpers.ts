import type { Readable } from 'node:stream';
import { isVeritrailError } from '../../../src/core/errors.js';

/** The domain error code a promise rejects with, or a marker saying what else happened. */
export async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return isVeritrailError(e) ? e.code : `not a VeritrailError: ${String(e)}`;
  }
}

export async function errorOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

export async function readAll(r: Readable | AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

/** An SDK-shaped service exception, as the SDK deserializer builds one from an error response. */
export function awsError(name: string, httpStatusCode: number, message = name): Error {
  return Object.assign(new Error(message), {
    name,
    $fault: httpStatusCode >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode, requestId: 'req-1' },
  });
}

export const bytes = (s: string) => new TextEncoder().encode(s);
