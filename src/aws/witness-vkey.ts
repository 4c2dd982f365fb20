/**
 * The witness's vkey at deploy time: a CloudFormation custom resource served by the witness
 * function itself (stacks/Witness.ts). The vkey (`<name>+<key id>+<key>`, c2sp.org/signed-note)
 * hashes the KMS key's public key, which exists only once the key does, and CloudFormation has no
 * SHA-256: so on Create and Update the function reads its public key (kms:GetPublicKey, which it
 * may do anyway) and returns `Data.Vkey`. The stack publishes it (output, SSM parameter) and hands
 * it, with the function URL, to the pipeline's checkpointing functions in VERITRAIL_WITNESSES.
 *
 * Protocol: CloudFormation User Guide, "Custom resources": the function answers by an HTTPS PUT of
 * a JSON document to the request's presigned `ResponseURL` (S3), with an empty content type.
 * Delete always succeeds (nothing was created); a failure is answered FAILED with the reason, so a
 * deploy fails at once instead of waiting for the custom resource timeout.
 */
import { VeritrailError } from '../core/errors.js';

export interface CustomResourceRequest {
  RequestType: 'Create' | 'Update' | 'Delete';
  ResponseURL: string;
  StackId: string;
  RequestId: string;
  LogicalResourceId: string;
  PhysicalResourceId?: string;
  ResourceProperties?: Record<string, unknown>;
}

export function isCustomResourceRequest(event: unknown): event is CustomResourceRequest {
  const e = event as Partial<CustomResourceRequest> | null;
  return (
    typeof e === 'object' &&
    e !== null &&
    (e.RequestType === 'Create' || e.RequestType === 'Update' || e.RequestType === 'Delete') &&
    typeof e.ResponseURL === 'string' &&
    typeof e.StackId === 'string' &&
    typeof e.RequestId === 'string' &&
    typeof e.LogicalResourceId === 'string'
  );
}

/**
 * Where a response may go: S3 over HTTPS (CloudFormation's presigned URLs are on `*.amazonaws.com`,
 * `*.amazonaws.com.cn` in China), or the S3 endpoint the SDK chain is pointed at
 * (AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL: an emulator). Nothing else: the function never
 * sends to a host a request names.
 */
function responseUrlAllowed(url: string, env: Record<string, string | undefined>): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  if (u.protocol === 'https:' && /^[a-z0-9.-]+\.amazonaws\.com(\.cn)?$/.test(u.hostname)) return true;
  const configured = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL;
  if (!configured) return false;
  try {
    return new URL(configured).origin === u.origin;
  } catch {
    return false;
  }
}

/**
 * How long a Create or Update keeps asking while access is denied: the function's role and its
 * grants are created in the same deployment, and IAM applies a new policy after a few seconds
 * (IAM User Guide, "Changes that I make are not always immediately visible"). Within the function's
 * 30-second timeout.
 */
const VKEY_RETRY_MS = 20_000;

/** `read`, again after a growing pause while it fails with ACCESS_DENIED or TRANSIENT, until `budgetMs` is spent. */
async function patiently<T>(read: () => Promise<T>, budgetMs: number): Promise<T> {
  const deadline = Date.now() + budgetMs;
  let pause = 500;
  for (;;) {
    try {
      return await read();
    } catch (e) {
      const code = e instanceof VeritrailError ? e.code : undefined;
      if ((code !== 'ACCESS_DENIED' && code !== 'TRANSIENT') || Date.now() + pause > deadline) throw e;
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 4000);
    }
  }
}

/** Answers one custom resource request with the vkey (Create, Update) or nothing (Delete). */
export async function respondWithVkey(
  request: CustomResourceRequest,
  vkey: () => Promise<string>,
  options: { fetch?: typeof fetch; env: Record<string, string | undefined>; retryForMs?: number },
): Promise<void> {
  if (!responseUrlAllowed(request.ResponseURL, options.env)) {
    throw new VeritrailError(
      'USAGE',
      'the custom resource response URL is not an S3 URL; the witness answers CloudFormation only',
    );
  }
  const base = {
    StackId: request.StackId,
    RequestId: request.RequestId,
    LogicalResourceId: request.LogicalResourceId,
  };
  let response: Record<string, unknown>;
  if (request.RequestType === 'Delete') {
    response = {
      ...base,
      Status: 'SUCCESS',
      PhysicalResourceId: request.PhysicalResourceId ?? request.LogicalResourceId,
    };
  } else {
    try {
      const value = await patiently(vkey, options.retryForMs ?? VKEY_RETRY_MS);
      response = { ...base, Status: 'SUCCESS', PhysicalResourceId: value, Data: { Vkey: value } };
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e);
      response = {
        ...base,
        Status: 'FAILED',
        Reason: `the witness could not read its key: ${reason}`.slice(0, 1000),
        PhysicalResourceId: request.PhysicalResourceId ?? request.LogicalResourceId,
      };
    }
  }
  const body = JSON.stringify(response);
  const send = options.fetch ?? fetch;
  const r = await send(request.ResponseURL, {
    method: 'PUT',
    // The presigned URL is signed without a content type: S3 refuses the PUT if one is sent.
    headers: { 'content-type': '' },
    body,
    signal: AbortSignal.timeout(30_000),
  });
  if (!r.ok) {
    throw new VeritrailError(
      'TRANSIENT',
      `the custom resource response was refused (HTTP ${r.status}); CloudFormation will time the resource out`,
    );
  }
}
