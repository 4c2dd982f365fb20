"""
Loaded by Python at start-up (site.py imports `sitecustomize`) in the moto_server process the
emulated-AWS harness starts, through PYTHONPATH (test/aws-e2e/harness/moto.ts); nowhere else.

KMS Sign with MessageType=DIGEST: AWS signs the given digest as it is (KMS API Reference, Sign,
"MessageType"); moto 5.2 ignores MessageType and hashes the digest again, so every signature of a
message over 4096 bytes (which veritrail sends as a digest) would be wrong. This patch signs a
DIGEST request with ECDSA over the prehashed value, and refuses a digest of the wrong length as
KMS does. Nothing else of moto changes.
"""
import threading

try:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
    from moto.kms import responses as _responses
    from moto.kms import utils as _utils
except Exception:  # not the moto process, or another moto: leave everything as it is
    _responses = None

if _responses is not None:
    _digest_call = threading.local()
    _original_sign = _utils.ECDSAPrivateKey.sign
    _hash_of = {
        "ECDSA_SHA_256": ("SHA256", 32),
        "ECDSA_SHA_384": ("SHA384", 48),
        "ECDSA_SHA_512": ("SHA512", 64),
    }

    def _sign(self, message, signing_algorithm):
        if not getattr(_digest_call, "on", False):
            return _original_sign(self, message, signing_algorithm)
        _utils.validate_signing_algorithm(signing_algorithm, self.valid_signing_algorithms)
        from cryptography.hazmat.primitives import hashes

        name, size = _hash_of[signing_algorithm]
        if len(message) != size:
            raise _utils.ValidationException(
                f"Digest is invalid length for algorithm {signing_algorithm}."
            )
        return self.private_key.sign(message, ec.ECDSA(Prehashed(getattr(hashes, name)())))

    _utils.ECDSAPrivateKey.sign = _sign
    _original_response_sign = _responses.KmsResponse.sign

    def _response_sign(self):
        _digest_call.on = self._get_param("MessageType") == "DIGEST"
        try:
            return _original_response_sign(self)
        finally:
            _digest_call.on = False

    _responses.KmsResponse.sign = _response_sign
