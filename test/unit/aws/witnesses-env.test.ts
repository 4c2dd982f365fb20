/**
 * VERITRAIL_WITNESSES on AWS (src/aws/runtime.ts `witnessesFromEnv`, used by `awsAudit`): the
 * witnesses the checkpointing functions ask, in the JSON of a local witnesses.json. A bad value is
 * one line naming the variable and the fix; a witness that refuses is written to the log.
 */
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { witnessesFromEnv } from '../../../src/aws/runtime.js';
import { formatVkey, witnessKeyOf } from '../../../src/core/cosignature.js';

const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const vkey = formatVkey(witnessKeyOf('witness.example/w1', pem));
const config = (url = 'https://abc.lambda-url.eu-west-1.on.aws/') =>
  JSON.stringify({ witnesses: [{ vkey, url }] });

describe('VERITRAIL_WITNESSES', () => {
  it('absent or empty: the log asks no witness', () => {
    expect(witnessesFromEnv({})).toEqual([]);
    expect(witnessesFromEnv({ VERITRAIL_WITNESSES: '  ' })).toEqual([]);
  });

  it('names each witness by its vkey', () => {
    const [w] = witnessesFromEnv({ VERITRAIL_WITNESSES: config() });
    expect(w?.key.name).toBe('witness.example/w1');
    expect(formatVkey(w?.key ?? { name: '', publicKey: new Uint8Array() })).toBe(vkey);
  });

  it.each([
    ['not JSON', '{witnesses:', /VERITRAIL_WITNESSES is not JSON/],
    ['a key that is not there', JSON.stringify({ witness: [] }), /VERITRAIL_WITNESSES: .*witness/],
    ['a bad URL', config('not a url'), /VERITRAIL_WITNESSES: witnesses\.0\.url/],
    [
      'a bad vkey',
      JSON.stringify({ witnesses: [{ vkey: 'w1+00000000+AAAA', url: 'https://w/' }] }),
      /VERITRAIL_WITNESSES: witness key/,
    ],
  ])('refuses %s in one line that names the variable and the fix', (_what, value, message) => {
    let error: unknown;
    try {
      witnessesFromEnv({ VERITRAIL_WITNESSES: value });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'USAGE' });
    const text = (error as Error).message;
    expect(text).toMatch(message);
    expect(text).toContain('{"witnesses":[{"vkey"');
    expect(text).toContain('unset it');
    expect(text).not.toContain('\n');
  });

  it('writes a refusal to the log, and not the 409 that tells a new client the witness’s size', async () => {
    const lines: string[] = [];
    const [w] = witnessesFromEnv({ VERITRAIL_WITNESSES: config('http://127.0.0.1:9/') }, (l) =>
      lines.push(l),
    );
    if (!w) throw new Error('no witness');
    // Port 9 (discard) refuses the connection: the failure is reported and thrown on.
    await expect(w.submit('old 0\n\nx')).rejects.toThrow();
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({ level: 'WARN', witness: 'witness.example/w1' });
  });

  it('writes a witness’s refusal (422) to the log, but not its size hint (409 with a size)', async () => {
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        if (body.startsWith('old 0\n'))
          res.writeHead(409, { 'content-type': 'text/x.tlog.size' }).end('15\n');
        else res.writeHead(422).end('the consistency proof from 15 does not verify\n');
      });
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    try {
      const { port } = server.address() as AddressInfo;
      const lines: string[] = [];
      const [w] = witnessesFromEnv({ VERITRAIL_WITNESSES: config(`http://127.0.0.1:${port}/`) }, (l) =>
        lines.push(l),
      );
      if (!w) throw new Error('no witness');
      expect(await w.submit('old 0\n\nx')).toEqual({ status: 409, body: '15\n' });
      expect(lines).toEqual([]);
      expect((await w.submit('old 15\n\nx')).status).toBe(422);
      expect(lines.map((l) => JSON.parse(l))).toEqual([
        {
          level: 'WARN',
          message: 'witness did not cosign',
          witness: 'witness.example/w1',
          status: 422,
          answer: 'the consistency proof from 15 does not verify',
        },
      ]);
    } finally {
      server.close();
    }
  });
});
