/**
 * Verifies a run of a deployed stage from an auditor's machine (`veritrail verify|export <runId>
 * --stage <stage>`): the same checks as for the embedded runtime, over the stage's run table, its
 * artifacts and audit buckets and its landing bucket (the raw data re-hashed at the VersionIds the
 * run pinned), read with the caller's own credentials from the standard SDK chain (an auditor's
 * read-only role is enough: docs/verify.md "A deployed stage"). Nothing is trusted by default: the
 * public keys come from `--key`/`--audit-key`/`--trust`, or, when the auditor says so
 * (`--trust-stage-keys`), from KMS GetPublicKey on the stage's attestation and checkpoint keys.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { openLogReader } from '../audit/reader.js';
import { publicKeyDer } from '../core/attest/keys.js';
import { auditOrigin } from '../core/deployment.js';
import { digestOf } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import type { VerifyReport } from '../verify/codes.js';
import { VerifyError } from '../verify/codes.js';
import { type Evidence, type TrustedKey, type TrustedKeys, verifyRunWith } from '../verify/run.js';
import { retryConfig } from './clients.js';
import { type DeployedStage, findStage } from './deployed.js';
import { DynamoRunStore } from './dynamo-run-store.js';
import { KMS_KEY_SPEC, KMS_SIGNING_ALGORITHM, kmsPublicKey } from './kms-signer.js';
import { S3DatasetSource } from './s3-dataset-source.js';
import { S3ObjectStore } from './s3-object-store.js';

export interface DeployedVerifyOptions {
  signing?: { pem: string; source: string }[];
  audit?: { pem: string; source: string }[];
  /** Also trust the stage's own KMS keys, fetched with GetPublicKey (`--trust-stage-keys`). */
  stageKeys?: boolean;
  witnesses?: TrustedKeys['witnesses'];
}

/** Clients, injected by tests; otherwise built from the standard SDK chain. */
export interface DeployedVerifyClients {
  ssm?: SSMClient;
  s3?: S3Client;
  kms?: KMSClient;
  dynamodb?: DynamoDBClient;
}

function trusted(pem: string, source: string): TrustedKey {
  return { pem, id: digestOf(publicKeyDer(pem)), source };
}

/** A stage key's public half, checked to be what veritrail signs with (src/aws/kms-signer.ts). */
async function kmsPublicPem(kms: KMSClient, keyArn: string, configuredBy: string): Promise<string> {
  const key = await kmsPublicKey(kms, keyArn, {
    spec: KMS_KEY_SPEC,
    algorithm: KMS_SIGNING_ALGORITHM,
    needs: 'veritrail verifies',
    configuredBy,
  });
  return key.export({ type: 'spki', format: 'pem' }).toString();
}

/** The stage's names a verification needs, or one line naming what the stage does not publish. */
function verifiable(
  stage: DeployedStage,
): DeployedStage & { artifactsBucket: string; checkpointKeyArn: string } {
  const missing = [
    ...(stage.artifactsBucket ? [] : ['artifacts-bucket']),
    ...(stage.checkpointKeyArn ? [] : ['checkpoint-key-arn']),
  ];
  if (missing.length > 0)
    throw new VeritrailError(
      'USAGE',
      `stage "${stage.stage}" does not publish ${missing.map((m) => `/veritrail/${stage.stage}/${m}`).join(', ')}; deploy it again with this version (npx sst deploy --stage ${stage.stage})`,
    );
  return stage as DeployedStage & { artifactsBucket: string; checkpointKeyArn: string };
}

/** The keys to trust for a deployed stage; KEY_MISSING when none of a kind is named. */
export async function trustedStageKeys(
  stage: DeployedStage & { checkpointKeyArn: string },
  kms: KMSClient,
  options: DeployedVerifyOptions,
): Promise<TrustedKeys> {
  const signing = (options.signing ?? []).map((k) => trusted(k.pem, k.source));
  const audit = (options.audit ?? []).map((k) => trusted(k.pem, k.source));
  if (options.stageKeys) {
    signing.push(
      trusted(
        await kmsPublicPem(kms, stage.attestationKeyArn, `/veritrail/${stage.stage}/attestation-key-arn`),
        `stage ${stage.stage} KMS ${stage.attestationKeyArn}`,
      ),
    );
    audit.push(
      trusted(
        await kmsPublicPem(kms, stage.checkpointKeyArn, `/veritrail/${stage.stage}/checkpoint-key-arn`),
        `stage ${stage.stage} KMS ${stage.checkpointKeyArn}`,
      ),
    );
  }
  const say =
    "name the public keys you trust: --key <pem> and --audit-key <pem> (repeatable), --trust <file>, or --trust-stage-keys to trust the stage's own KMS keys";
  if (signing.length === 0) throw new VerifyError('KEY_MISSING', `no trusted signing key; ${say}`);
  if (audit.length === 0) throw new VerifyError('KEY_MISSING', `no trusted audit key; ${say}`);
  return { signing, audit, witnesses: options.witnesses ?? [] };
}

/** Verifies run `runId` of deployed stage `stage` with the caller's credentials. */
export async function verifyDeployedRun(
  stageName: string,
  runId: string,
  options: DeployedVerifyOptions,
  env: Record<string, string | undefined>,
  clients: DeployedVerifyClients = {},
): Promise<{ report: VerifyReport; evidence: Evidence; keys: TrustedKeys }> {
  const retry = retryConfig(env);
  const stage = verifiable(await findStage(stageName, env, clients.ssm ? { ssm: clients.ssm } : {}));
  const s3 = clients.s3 ?? new S3Client({ ...retry });
  const kms = clients.kms ?? new KMSClient({ ...retry });
  const keys = await trustedStageKeys(stage, kms, options);
  const objects = new S3ObjectStore(s3, {
    buckets: { landing: stage.landingBucket, artifacts: stage.artifactsBucket, audit: stage.auditBucket },
  });
  const origin = auditOrigin({
    buckets: { landing: stage.landingBucket, artifacts: stage.artifactsBucket, audit: stage.auditBucket },
  });
  const { report, evidence } = await verifyRunWith(
    {
      runs: new DynamoRunStore(clients.dynamodb ?? new DynamoDBClient({ ...retry }), stage.tableName),
      objects,
      datasets: new S3DatasetSource(s3),
      openAudit: (key) => openLogReader({ store: objects, publicKey: key.pem, bucket: 'audit', origin }),
    },
    keys,
    runId,
  );
  return { report, evidence, keys };
}
