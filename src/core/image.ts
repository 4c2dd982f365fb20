import type { Digest } from './digest.js';
import { VeritrailError } from './errors.js';

/**
 * The one rule for container images: an OCI image reference pinned by digest (`…@sha256:<64 hex>`),
 * the only kind that cannot change under the same name (OCI distribution spec, "Pulling manifests":
 * a tag may move, a digest may not). CheckCode, the SageMaker trainer and the model registry refuse
 * anything else with CODE_IMAGE_UNPINNED; the pipeline schema also checks the registry/repository
 * grammar (src/core/pipeline.ts).
 */
export function isImagePinned(image: string): boolean {
  return /^[^\s@]+@sha256:[0-9a-f]{64}$/.test(image);
}

/** The `sha256:<hex>` digest of a pinned image reference. */
export function imageDigestOf(image: string): Digest {
  if (!isImagePinned(image)) throw unpinnedImage('image', image);
  return `sha256:${image.slice(image.lastIndexOf('@sha256:') + '@sha256:'.length)}`;
}

/** The refusal of an image that is not pinned, naming what it was for. */
export function unpinnedImage(
  what: string,
  image: string | undefined,
  details?: Record<string, unknown>,
): VeritrailError {
  return new VeritrailError(
    'CODE_IMAGE_UNPINNED',
    `${what} "${image ?? ''}" is not pinned by digest; use <repository>@sha256:<64 hex digits>`,
    ...(details ? [{ details }] : []),
  );
}
