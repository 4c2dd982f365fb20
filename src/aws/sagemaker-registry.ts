/**
 * Model registry entries in SageMaker Model Registry. The approval status is the gate's decision,
 * and the customer metadata carries the content digests, so the registry entry points back into
 * the chain of custody (model, datasets, attestation bundles) and can be checked against it.
 */
import { createHash } from 'node:crypto';
import {
  CreateModelPackageCommand,
  CreateModelPackageGroupCommand,
  type CreateModelPackageInput,
  type SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { defaultGroupName } from '../core/deployment.js';
import { type Digest, isDigest } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { isImagePinned, unpinnedImage } from '../core/image.js';
import type { ModelRegistration, ModelRegistry } from '../ports.js';
import { awsCall, awsErrorName, translateAwsError } from './errors.js';

export interface ModelPackageRequest {
  /** Model package group: one per pipeline. */
  groupName: string;
  runId: string;
  pipeline: string;
  /** The gate's decision. */
  approval: 'Approved' | 'Rejected';
  /** Artifacts bucket key of model.tar.gz. */
  modelKey: string;
  /**
   * Inference image (the pipeline's `trainer.aws.inferenceImage`), pinned by digest: the container
   * SageMaker serves the model with. Never the training image, which follows the training contract
   * only. Without one the package records the model only (SourceUri, no inference spec).
   */
  image?: string;
  /** Digests by role (`model`, `raw`, `processed`, `provenance`…): customer metadata `digest:<role>`. */
  digests: Record<string, Digest>;
  /** Further customer metadata (bundle keys…), kept as given. */
  metadata?: Record<string, string>;
  /** Optional fairness report in the artifacts bucket, registered as the Bias metrics with its digest. */
  fairnessReport?: { key: string; digest: Digest };
  description?: string;
  contentTypes?: string[];
}

export interface SageMakerRegistryConfig {
  artifactsBucket: string;
  /** Encrypts the model package. */
  kmsKeyId?: string;
  /** Model package group of a pipeline. Default: `veritrail-<pipeline>`, cut to SageMaker's rules. */
  groupNameOf?: (pipeline: string) => string;
}

/** CustomerMetadataProperties limits (CreateModelPackage API reference). */
const MAX_METADATA_ENTRIES = 50;
const MAX_METADATA_KEY = 128;
const MAX_METADATA_VALUE = 256;
const GROUP_NAME_RE = /^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/;

export class SageMakerRegistry implements ModelRegistry {
  constructor(
    private readonly sagemaker: SageMakerClient,
    private readonly config: SageMakerRegistryConfig,
  ) {
    if (!config.artifactsBucket) throw new VeritrailError('USAGE', 'SageMakerRegistry needs artifactsBucket');
  }

  buildRequest(r: ModelPackageRequest): CreateModelPackageInput {
    if (!GROUP_NAME_RE.test(r.groupName)) {
      throw new VeritrailError(
        'USAGE',
        `model package group name "${r.groupName}" is invalid: 1-63 letters, digits and hyphens, starting with a letter or digit`,
      );
    }
    if (r.image !== undefined && !isImagePinned(r.image)) throw unpinnedImage('the inference image', r.image);
    const metadata: Record<string, string> = {
      'veritrail:run-id': r.runId,
      'veritrail:pipeline': r.pipeline,
    };
    for (const [role, digest] of Object.entries(r.digests).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (!isDigest(digest)) {
        throw new VeritrailError(
          'DIGEST_MISMATCH',
          `digest "${String(digest)}" for ${role} is not sha256:<hex>`,
        );
      }
      metadata[`digest:${role}`] = digest;
    }
    for (const [k, v] of Object.entries(r.metadata ?? {})) metadata[k] = v;
    const entries = Object.entries(metadata);
    if (entries.length > MAX_METADATA_ENTRIES) {
      throw new VeritrailError(
        'USAGE',
        `model package metadata has more than ${MAX_METADATA_ENTRIES} entries`,
      );
    }
    for (const [k, v] of entries) {
      if (k.length > MAX_METADATA_KEY || v.length === 0 || v.length > MAX_METADATA_VALUE) {
        throw new VeritrailError(
          'USAGE',
          `model package metadata "${k.slice(0, 40)}" does not fit SageMaker's limits (${MAX_METADATA_KEY}-character keys, 1-${MAX_METADATA_VALUE}-character values)`,
        );
      }
    }
    const s3 = (key: string) => `s3://${this.config.artifactsBucket}/${key}`;
    const contentTypes = r.contentTypes ?? ['text/csv'];
    const input: CreateModelPackageInput = {
      ModelPackageGroupName: r.groupName,
      ModelPackageDescription: r.description ?? `veritrail run ${r.runId} of pipeline ${r.pipeline}`,
      ModelApprovalStatus: r.approval,
      CustomerMetadataProperties: metadata,
      // Idempotency per (group, run, model): a retried Register step creates one package.
      ClientToken: createHash('sha256')
        .update(`${r.groupName}\n${r.runId}\n${r.digests.model ?? ''}`)
        .digest('hex')
        .slice(0, 36),
      Tags: [
        { Key: 'veritrail:run-id', Value: r.runId },
        { Key: 'veritrail:pipeline', Value: r.pipeline },
      ],
    };
    if (r.image) {
      input.InferenceSpecification = {
        Containers: [{ Image: r.image, ModelDataUrl: s3(r.modelKey) }],
        SupportedContentTypes: contentTypes,
        SupportedResponseMIMETypes: contentTypes,
      };
    } else {
      // Versioned packages may omit the inference spec; the model's location still goes on record.
      input.SourceUri = s3(r.modelKey);
    }
    if (r.fairnessReport) {
      input.ModelMetrics = {
        Bias: {
          Report: {
            ContentType: 'application/json',
            S3Uri: s3(r.fairnessReport.key),
            ContentDigest: r.fairnessReport.digest,
          },
        },
      };
    }
    if (this.config.kmsKeyId) input.SecurityConfig = { KmsKeyId: this.config.kmsKeyId };
    return input;
  }

  /** Registers the model version; returns its ARN. */
  async createModelPackage(r: ModelPackageRequest): Promise<{ modelPackageArn: string }> {
    const input = this.buildRequest(r);
    const out = await awsCall(
      { action: 'sagemaker:CreateModelPackage', resource: `model-package-group/${r.groupName}` },
      () => this.sagemaker.send(new CreateModelPackageCommand(input)),
    );
    if (!out.ModelPackageArn) {
      throw new VeritrailError('INTERNAL', `sagemaker:CreateModelPackage in ${r.groupName} returned no ARN`);
    }
    return { modelPackageArn: out.ModelPackageArn };
  }

  /** The ModelRegistry port: registers one model version with the gate's approval status. */
  async register(entry: ModelRegistration): Promise<{ ref: string }> {
    const request: ModelPackageRequest = {
      groupName: (this.config.groupNameOf ?? defaultGroupName)(entry.pipeline),
      runId: entry.runId,
      pipeline: entry.pipeline,
      approval: entry.approval,
      modelKey: entry.modelKey,
      digests: { model: entry.modelDigest },
      metadata: entry.metadata,
    };
    if (entry.image) request.image = entry.image;
    // Nothing else creates the group (the stack does not know which pipelines will register), so
    // the first registration of a pipeline creates it; later ones find it there.
    await this.ensureGroup(request.groupName, `veritrail pipeline ${entry.pipeline}`, entry.pipeline);
    const { modelPackageArn } = await this.createModelPackage(request);
    return { ref: modelPackageArn };
  }

  /** Creates the pipeline's model package group if it does not exist yet (idempotent). */
  async ensureGroup(groupName: string, description?: string, pipeline?: string): Promise<void> {
    try {
      await this.sagemaker.send(
        new CreateModelPackageGroupCommand({
          ModelPackageGroupName: groupName,
          ModelPackageGroupDescription: description ?? `veritrail pipeline ${groupName}`,
          ...(pipeline ? { Tags: [{ Key: 'veritrail:pipeline', Value: pipeline }] } : {}),
        }),
      );
    } catch (e) {
      // SageMaker reports an existing group as a ValidationException naming it "already exists".
      const message = e instanceof Error ? e.message : '';
      if (awsErrorName(e) === 'ValidationException' && /already exists/i.test(message)) return;
      throw translateAwsError(e, {
        action: 'sagemaker:CreateModelPackageGroup',
        resource: `model-package-group/${groupName}`,
      });
    }
  }
}
