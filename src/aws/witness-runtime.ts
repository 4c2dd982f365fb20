/**
 * The witness function's composition (functions/witness.ts, the Witness stack): a c2sp.org
 * tlog-witness `Witness` (src/audit/witness/core.ts) whose key is a KMS Ed25519 key, whose state
 * is its own DynamoDB table, and whose trusted log keys come from its environment, built once per
 * cold start. Configuration, set by stacks/Witness.ts:
 *
 * - VERITRAIL_WITNESS_NAME      the witness's key name (the name in its vkey and cosignature lines)
 * - VERITRAIL_WITNESS_KEY_ARN   the KMS key (ECC_NIST_EDWARDS25519, SIGN_VERIFY) it cosigns with
 * - VERITRAIL_WITNESS_TABLE     its DynamoDB table (src/aws/dynamo-witness-store.ts)
 * - VERITRAIL_WITNESS_LOGS      the logs it witnesses, each with the keys it trusts for it:
 *   `{"logs":[{"origin":"<origin line>","keyArns":["<KMS key ARN>"],"publicKeys":["<PEM>"]}]}`.
 *   A key ARN is read with kms:GetPublicKey at cold start (the pipeline's checkpoint key, same
 *   account); a PEM is a public key given at deploy time (a log in another account).
 *
 * The function answers two kinds of invocation: function URL requests (the protocol), and the
 * CloudFormation custom resource that publishes its vkey at deploy time (src/aws/witness-vkey.ts).
 */
import { createPublicKey } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KMSClient } from '@aws-sdk/client-kms';
import { z } from 'zod';
import { WITNESS_NAME } from '../audit/witness/config.js';
import { Witness } from '../audit/witness/core.js';
import {
  type FunctionUrlEvent,
  type FunctionUrlResult,
  isFunctionUrlEvent,
  serveFunctionUrl,
} from '../audit/witness/function-url.js';
import { formatVkey } from '../core/cosignature.js';
import { VeritrailError } from '../core/errors.js';
import { retryConfig } from './clients.js';
import { DynamoWitnessStore } from './dynamo-witness-store.js';
import { KmsCosigner } from './kms-cosigner.js';
import { KmsSigner } from './kms-signer.js';
import { type CustomResourceRequest, isCustomResourceRequest, respondWithVkey } from './witness-vkey.js';

const KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[0-9a-f-]{36}$/;

const LogsSchema = z
  .object({
    logs: z
      .array(
        z
          .object({
            origin: z.string().min(1).max(255),
            keyArns: z.array(z.string().regex(KEY_ARN, 'a KMS key ARN')).default([]),
            publicKeys: z.array(z.string().min(1)).default([]),
          })
          .strict(),
      )
      .min(1),
  })
  .strict();

export interface WitnessConfig {
  name: string;
  keyArn: string;
  table: string;
  logs: { origin: string; keyArns: string[]; publicKeys: string[] }[];
}

const REQUIRED = [
  'VERITRAIL_WITNESS_NAME',
  'VERITRAIL_WITNESS_KEY_ARN',
  'VERITRAIL_WITNESS_TABLE',
  'VERITRAIL_WITNESS_LOGS',
] as const;

/** Reads and checks the witness function's configuration; names each missing or malformed variable. */
function readWitnessConfig(env: Record<string, string | undefined>): WitnessConfig {
  const missing = REQUIRED.filter((n) => !env[n]?.trim());
  if (missing.length > 0) {
    throw new VeritrailError(
      'USAGE',
      `missing environment variable${missing.length > 1 ? 's' : ''} ${missing.join(', ')}: the Witness stack sets ${missing.length > 1 ? 'them' : 'it'}; set ${missing.length > 1 ? 'them' : 'it'} when running the witness function outside it`,
      { details: { missing } },
    );
  }
  const get = (n: (typeof REQUIRED)[number]) => (env[n] ?? '').trim();
  const name = get('VERITRAIL_WITNESS_NAME');
  if (!WITNESS_NAME.test(name)) {
    throw new VeritrailError(
      'USAGE',
      `VERITRAIL_WITNESS_NAME must be a key name without spaces or "+" (such as example.org/witness), got "${name}"`,
    );
  }
  const keyArn = get('VERITRAIL_WITNESS_KEY_ARN');
  if (!KEY_ARN.test(keyArn)) {
    throw new VeritrailError(
      'USAGE',
      `VERITRAIL_WITNESS_KEY_ARN must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), got "${keyArn}"`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(get('VERITRAIL_WITNESS_LOGS'));
  } catch (cause) {
    throw new VeritrailError('USAGE', 'VERITRAIL_WITNESS_LOGS is not JSON', { cause });
  }
  const parsed = LogsSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new VeritrailError(
      'USAGE',
      `VERITRAIL_WITNESS_LOGS must be {"logs":[{"origin","keyArns":[…],"publicKeys":[…]}]}: ${issue?.path.join('.') || '(top)'}: ${issue?.message ?? 'invalid'}`,
    );
  }
  for (const log of parsed.data.logs) {
    if (log.keyArns.length + log.publicKeys.length === 0) {
      throw new VeritrailError(
        'USAGE',
        `VERITRAIL_WITNESS_LOGS: log "${log.origin}" has no trusted key (keyArns or publicKeys)`,
      );
    }
  }
  return { name, keyArn, table: get('VERITRAIL_WITNESS_TABLE'), logs: parsed.data.logs };
}

/** A P-256 public key given as PEM (a log's checkpoint key), checked and normalized. */
function logPublicKey(pem: string, origin: string): string {
  try {
    const key = createPublicKey(pem);
    if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1')
      return key.export({ type: 'spki', format: 'pem' }).toString();
  } catch {
    /* reported below */
  }
  throw new VeritrailError(
    'USAGE',
    `VERITRAIL_WITNESS_LOGS: a public key of log "${origin}" is not an ECDSA P-256 public key in PEM (the form veritrail's checkpoint keys have)`,
  );
}

export interface WitnessClients {
  kms?: KMSClient;
  dynamodb?: DynamoDBClient;
}

/** The witness, with the log keys resolved (kms:GetPublicKey for each key ARN). */
export async function composeWitness(
  env: Record<string, string | undefined>,
  clients: WitnessClients = {},
): Promise<{ witness: Witness; config: WitnessConfig }> {
  const config = readWitnessConfig(env);
  const retry = retryConfig(env);
  const kms = clients.kms ?? new KMSClient({ ...retry });
  const dynamodb = clients.dynamodb ?? new DynamoDBClient({ ...retry });
  const logs = new Map<string, string[]>();
  for (const log of config.logs) {
    const fromKms = await Promise.all(
      log.keyArns.map((arn) =>
        new KmsSigner(kms, arn, { configuredBy: 'VERITRAIL_WITNESS_LOGS' }).publicKeyPem(),
      ),
    );
    logs.set(log.origin, [
      ...(logs.get(log.origin) ?? []),
      ...fromKms,
      ...log.publicKeys.map((p) => logPublicKey(p, log.origin)),
    ]);
  }
  const witness = new Witness({
    cosigner: new KmsCosigner(kms, config.keyArn, config.name),
    logs,
    store: new DynamoWitnessStore(dynamodb, config.table, { configuredBy: 'VERITRAIL_WITNESS_TABLE' }),
  });
  // Fails the cold start, not a request, when the key is not an Ed25519 signing key.
  await witness.key();
  return { witness, config };
}

/** The vkey (`<name>+<key id>+<key>`) the witness's cosignatures verify under. */
async function witnessVkey(witness: Witness): Promise<string> {
  return formatVkey(await witness.key());
}

/**
 * The witness function's handler: function URL requests go to the witness, the deploy-time custom
 * resource gets the vkey. The witness is composed on the first invocation of a cold start and
 * kept; a composition that fails is tried again by the next invocation.
 */
export function witnessHandler(
  compose: () => Promise<{ witness: Witness }>,
  options: { fetch?: typeof fetch; env?: Record<string, string | undefined>; retryForMs?: number } = {},
): (event: unknown) => Promise<FunctionUrlResult | undefined> {
  let built: Promise<{ witness: Witness }> | undefined;
  const witness = async () => {
    if (!built) {
      built = compose();
      built.catch(() => {
        built = undefined;
      });
    }
    return (await built).witness;
  };
  return async (event) => {
    if (isFunctionUrlEvent(event)) {
      let w: Witness;
      try {
        w = await witness();
      } catch (e) {
        process.stderr.write(
          `${JSON.stringify({ level: 'ERROR', message: 'witness composition failed', error: e instanceof Error ? e.message : String(e) })}\n`,
        );
        return {
          statusCode: 503,
          headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' },
          body: 'the witness is unavailable for a moment; retry\n',
        };
      }
      return serveFunctionUrl(w, event as FunctionUrlEvent);
    }
    if (isCustomResourceRequest(event)) {
      await respondWithVkey(event as CustomResourceRequest, async () => witnessVkey(await witness()), {
        ...(options.fetch ? { fetch: options.fetch } : {}),
        ...(options.retryForMs !== undefined ? { retryForMs: options.retryForMs } : {}),
        env: options.env ?? process.env,
      });
      return undefined;
    }
    throw new VeritrailError(
      'USAGE',
      'the witness function answers its function URL and its CloudFormation custom resource only',
    );
  };
}
