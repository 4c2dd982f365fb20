import { z } from 'zod';
import type { Digest } from '../digest.js';
import {
  buildStatement,
  type ResourceDescriptor,
  resource,
  Sha256ResourceSchema,
  type Statement,
} from './statement.js';

/**
 * SLSA Provenance v1 predicate (https://slsa.dev/provenance/v1; schema in slsa-framework/slsa
 * spec/schema/provenance.proto and provenance.cue) for a trained model.
 */
export const SLSA_PROVENANCE_PREDICATE_TYPE = 'https://slsa.dev/provenance/v1';

/**
 * Our buildType: "a veritrail training run". Defines what externalParameters and
 * internalParameters mean (docs/attestations.md "buildType"): externalParameters are what the
 * pipeline author controls (pipeline name and definition digest, dataset URI, hyperparameters,
 * trainer command or image); internalParameters are what the platform chose (trainer kind, job
 * name, instance type). resolvedDependencies are always named with {@link DEPENDENCY_NAMES}.
 */
const VERITRAIL_BUILD_TYPE = 'https://veritrail.dev/buildtypes/training/v1';

/** Fixed `name`s of the resolvedDependencies, so a verifier finds each link without guessing. */
export const DEPENDENCY_NAMES = {
  raw: 'raw-data',
  processed: 'processed-data',
  code: 'training-code',
  image: 'training-image',
} as const;

interface SlsaProvenancePredicate {
  buildDefinition: {
    buildType: string;
    externalParameters: Record<string, unknown>;
    internalParameters?: Record<string, unknown>;
    resolvedDependencies: ResourceDescriptor[];
  };
  runDetails: {
    builder: { id: string; version?: Record<string, string>; builderDependencies?: ResourceDescriptor[] };
    metadata: { invocationId: string; startedOn: string; finishedOn: string };
    byproducts?: ResourceDescriptor[];
  };
}

export type ProvenanceStatement = Statement<SlsaProvenancePredicate, typeof SLSA_PROVENANCE_PREDICATE_TYPE>;

/** A dependency of the build: its digest, plus where it lives when that helps a reader. */
interface DependencyRef {
  digest: Digest;
  uri?: string;
  /** e.g. the manifest media type when `digest` is a dataset manifest digest. */
  mediaType?: string;
  annotations?: Record<string, unknown>;
}

export interface ProvenanceInput {
  /** The model artifact (model.tar.gz): the statement's only subject. */
  model: { name: string; digest: Digest };
  /** Becomes runDetails.metadata.invocationId. */
  runId: string;
  /** runDetails.builder.id: the Step Functions state machine ARN, or `https://veritrail.dev/builders/local/v1`. */
  builderId: string;
  builderVersion?: Record<string, string>;
  startedOn: Date | string;
  finishedOn: Date | string;
  externalParameters: Record<string, unknown>;
  internalParameters?: Record<string, unknown>;
  dependencies: { raw: DependencyRef; processed: DependencyRef; code: DependencyRef; image?: DependencyRef };
  byproducts?: ResourceDescriptor[];
}

function timestamp(t: Date | string): string {
  return typeof t === 'string' ? t : t.toISOString();
}

function dependency(name: string, d: DependencyRef): ResourceDescriptor {
  const { digest, ...extra } = d;
  return resource(name, digest, extra);
}

/** in-toto Statement v1 whose subject is the model and whose predicate is SLSA Provenance v1. */
export function buildProvenanceStatement(input: ProvenanceInput): ProvenanceStatement {
  const deps = input.dependencies;
  const resolvedDependencies = [
    dependency(DEPENDENCY_NAMES.raw, deps.raw),
    dependency(DEPENDENCY_NAMES.processed, deps.processed),
    dependency(DEPENDENCY_NAMES.code, deps.code),
    ...(deps.image === undefined ? [] : [dependency(DEPENDENCY_NAMES.image, deps.image)]),
  ];
  const predicate: SlsaProvenancePredicate = {
    buildDefinition: {
      buildType: VERITRAIL_BUILD_TYPE,
      externalParameters: input.externalParameters,
      ...(input.internalParameters === undefined ? {} : { internalParameters: input.internalParameters }),
      resolvedDependencies,
    },
    runDetails: {
      builder: {
        id: input.builderId,
        ...(input.builderVersion === undefined ? {} : { version: input.builderVersion }),
      },
      metadata: {
        invocationId: input.runId,
        startedOn: timestamp(input.startedOn),
        finishedOn: timestamp(input.finishedOn),
      },
      ...(input.byproducts === undefined ? {} : { byproducts: input.byproducts }),
    },
  };
  return buildStatement(
    [resource(input.model.name, input.model.digest)],
    SLSA_PROVENANCE_PREDICATE_TYPE,
    predicate,
  ) as ProvenanceStatement;
}

/**
 * What verification requires of a provenance predicate. SLSA leaves most fields optional; a
 * veritrail provenance must name the build type, the builder, the run and a sha256 for every
 * resolved dependency, because those are the links the chain checker follows.
 */
export const SlsaProvenancePredicateSchema = z.looseObject({
  buildDefinition: z.looseObject({
    buildType: z.string().min(1),
    externalParameters: z.record(z.string(), z.unknown()),
    internalParameters: z.record(z.string(), z.unknown()).optional(),
    resolvedDependencies: z.array(Sha256ResourceSchema),
  }),
  runDetails: z.looseObject({
    builder: z.looseObject({ id: z.string().min(1) }),
    metadata: z.looseObject({
      invocationId: z.string().min(1),
      startedOn: z.iso.datetime({ offset: true }),
      finishedOn: z.iso.datetime({ offset: true }),
    }),
    byproducts: z.array(z.looseObject({})).optional(),
  }),
});
