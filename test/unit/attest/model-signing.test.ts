import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { signStatement } from '../../../src/core/attest/bundle.js';
import { isAttestationError } from '../../../src/core/attest/errors.js';
import { publicKeyHint } from '../../../src/core/attest/keys.js';
import {
  buildModelSigningStatement,
  buildSingleFileModelSigningStatement,
  comparePathSegments,
  MODEL_SIGNING_PREDICATE_TYPE,
  modelSigningRootDigest,
} from '../../../src/core/attest/model-signing.js';
import { verifyBundle } from '../../../src/core/attest/verify.js';
import { digestOf } from '../../../src/core/digest.js';
import { clone, localSigner } from './helpers.js';

const dir = new URL('../../fixtures/attest/model-transparency-v1.1.0-elliptic-key/', import.meta.url);
const read = (name: string) => readFileSync(new URL(name, dir));
const theirBundle = read('model.sig').toString('utf8');
const theirKey = read('signing-key-pub.pem').toString('utf8');
const signme1 = new Uint8Array(read('signme-1'));
const signme2 = new Uint8Array(read('signme-2'));

describe('a real model-transparency v1.1.0 key-signed bundle', () => {
  it('carries the key hint we compute for their key (sha256 of the SPKI PEM)', () => {
    expect(JSON.parse(theirBundle).verificationMaterial.publicKey.hint).toBe(publicKeyHint(theirKey));
    expect(publicKeyHint(theirKey)).toBe('e8450dec4eb99dae995da9af1bc2cc9f76ed669ee2e744f57abba763df3e3f8e');
  });

  it('verifies with our reader (P-384/SHA-384 key, indented JSON payload)', () => {
    const v = verifyBundle(theirBundle, theirKey, { predicateType: MODEL_SIGNING_PREDICATE_TYPE });
    expect(v.statement.subject).toEqual([
      {
        name: 'v1.1.0-elliptic-key',
        digest: { sha256: '92745110b1ab4368471cbe31664e10174e954b113a3df333db860317b2c6dec4' },
      },
    ]);
  });

  it('has the subject digest our builder computes over the same files', () => {
    const ours = buildModelSigningStatement({
      modelName: 'v1.1.0-elliptic-key',
      // given out of order on purpose: the builder sorts
      files: [
        { path: 'signme-2', digest: digestOf(signme2) },
        { path: 'signme-1', digest: digestOf(signme1) },
      ],
    });
    const theirs = verifyBundle(theirBundle, theirKey).statement;
    expect(ours.subject).toEqual(theirs.subject);
    const theirResources = (
      theirs.predicate as { resources: { name: string; digest: string; algorithm: string }[] }
    ).resources;
    expect(ours.predicate.resources).toEqual(
      theirResources.map((r) => ({ name: r.name, algorithm: r.algorithm, digest: r.digest })),
    );
  });

  it('is refused once a resource digest is edited, even if re-signed (inconsistent manifest)', async () => {
    const theirs = clone(verifyBundle(theirBundle, theirKey).statement) as ReturnType<
      typeof buildModelSigningStatement
    >;
    const r0 = theirs.predicate.resources[0];
    if (r0) r0.digest = digestOf('other').slice(7);
    const signer = localSigner();
    // Our own signer refuses nothing here: the check is on the verifying side.
    const { bundle } = await signStatement(theirs, signer);
    let code: unknown;
    try {
      verifyBundle(bundle, signer.pem);
    } catch (e) {
      code = isAttestationError(e) ? e.code : e;
    }
    expect(code).toBe('PREDICATE_MALFORMED');
  });

  it('does not verify with our key', () => {
    let code: unknown;
    try {
      verifyBundle(theirBundle, localSigner().pem);
    } catch (e) {
      code = isAttestationError(e) ? e.code : e;
    }
    expect(code).toBe('SIGNATURE_INVALID');
  });
});

describe('our model signature statement', () => {
  it('names a single-file model "." with the file digest, as model-transparency does', () => {
    const digest = digestOf('model.tar.gz bytes');
    const s = buildSingleFileModelSigningStatement('model.tar.gz', digest);
    expect(s.predicateType).toBe('https://model_signing/signature/v1.0');
    expect(s.predicate).toEqual({
      serialization: { method: 'files', hash_type: 'sha256', allow_symlinks: false },
      resources: [{ name: '.', algorithm: 'sha256', digest: digest.slice(7) }],
    });
    expect(s.subject).toEqual([
      {
        name: 'model.tar.gz',
        digest: { sha256: modelSigningRootDigest([{ digest: digest.slice(7) }]).slice(7) },
      },
    ]);
  });

  it('verifies against the model file itself', async () => {
    const bytes = new TextEncoder().encode('weights');
    const signer = localSigner();
    const { bundle } = await signStatement(
      buildSingleFileModelSigningStatement('model.tar.gz', digestOf(bytes)),
      signer,
    );
    expect(() => verifyBundle(bundle, signer.pem, { artifact: bytes })).not.toThrow();
    expect(() => verifyBundle(bundle, signer.pem, { artifact: new TextEncoder().encode('weightz') })).toThrow(
      expect.objectContaining({ code: 'SUBJECT_MISMATCH' }),
    );
  });

  it('sorts resources segment by segment, like PurePosixPath', () => {
    // As strings "a.b" < "a/b"; as paths ("a","b") < ("a.b").
    expect(['a.b', 'a/b'].sort(comparePathSegments)).toEqual(['a/b', 'a.b']);
    expect(['b', 'a/z', 'a'].sort(comparePathSegments)).toEqual(['a', 'a/z', 'b']);
  });

  it('rejects path tricks in file names', () => {
    expect(() =>
      buildModelSigningStatement({ modelName: 'm', files: [{ path: '../x', digest: digestOf('x') }] }),
    ).toThrow(expect.objectContaining({ code: 'PATH_REJECTED' }));
  });
});
