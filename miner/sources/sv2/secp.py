"""The secp256k1 operations the Noise handshake needs (docs/sv2.md §2): ElligatorSwift keys and
X-only ECDH (BIP324), BIP340 Schnorr signatures for the pool's certificate.

All of it is libsecp256k1, through coincurve (PyPI, maintained, wheels with the library bundled).
coincurve's Python API has BIP340 signing and verification (`PrivateKey.sign_schnorr`,
`PublicKeyXOnly.verify`) but not ElligatorSwift, although the library it bundles (0.6 in
coincurve 21) builds the ellswift module and its cffi binding declares it; so the three ellswift
calls go to that binding directly. This module is the only place that does, so a coincurve that
exposes ellswift in Python (or moves the binding) is a change here alone. No curve arithmetic is
written in Python: tests/vectors/bip324_ellswift.json and bip340.json check the calls.
"""

from __future__ import annotations

import hashlib
import os

import coincurve
from coincurve import _libsecp256k1  # the bundled library's ellswift calls (see the docstring)
from coincurve.context import GLOBAL_CONTEXT
from coincurve.flags import EC_COMPRESSED

_ffi, _lib = _libsecp256k1.ffi, _libsecp256k1.lib
CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ELLSWIFT_SIZE = 64
# BIP324 "Shared secret computation": the tag of the hash over both encodings and the shared x.
XDH_TAG = hashlib.sha256(b"bip324_ellswift_xonly_ecdh").digest()


class SecpError(ValueError):
    """A key or encoding libsecp256k1 refuses."""


def valid_secret(secret: bytes) -> bool:
    return len(secret) == 32 and 0 < int.from_bytes(secret, "big") < CURVE_ORDER


def new_secret() -> bytes:
    while True:
        secret = os.urandom(32)
        if valid_secret(secret):
            return secret


def ellswift_create(secret: bytes, aux: bytes | None = None) -> bytes:
    """The 64-byte ElligatorSwift encoding of secret·G, one of its x's encodings picked with the 32
    bytes `aux` (fresh randomness when None, so the bytes on the wire look random; tests fix it)."""
    if not valid_secret(secret):
        raise SecpError("secret key out of range")
    out = _ffi.new("unsigned char[64]")
    if not _lib.secp256k1_ellswift_create(GLOBAL_CONTEXT.ctx, out, secret, os.urandom(32) if aux is None else aux):
        raise SecpError("ellswift_create failed")
    return bytes(_ffi.buffer(out, 64))


def ellswift_decode_x(encoding: bytes) -> bytes:
    """The 32-byte x coordinate an ElligatorSwift encoding stands for (every 64 bytes decode)."""
    if len(encoding) != ELLSWIFT_SIZE:
        raise SecpError(f"ellswift encoding must be 64 bytes, got {len(encoding)}")
    pub = _ffi.new("secp256k1_pubkey *")
    if not _lib.secp256k1_ellswift_decode(GLOBAL_CONTEXT.ctx, pub, encoding):
        raise SecpError("ellswift_decode failed")
    out = _ffi.new("unsigned char[33]")
    size = _ffi.new("size_t *", 33)
    _lib.secp256k1_ec_pubkey_serialize(GLOBAL_CONTEXT.ctx, out, size, pub, EC_COMPRESSED)
    return bytes(_ffi.buffer(out, 33))[1:]


def ellswift_xdh_x(theirs: bytes, secret: bytes) -> bytes:
    """BIP324's ellswift_ecdh_xonly: the x coordinate of secret·decode(theirs)."""
    point = coincurve.PublicKey(b"\x02" + ellswift_decode_x(theirs))  # the sign of y does not change x(k·P)
    return point.multiply(secret).format(compressed=True)[1:]


def v2_ecdh(secret: bytes, ours: bytes, theirs: bytes, initiator: bool) -> bytes:
    """sv2-spec 04-Protocol-Security.md §4.4.2 ECDH(k, rk): BIP324's v2_ecdh, the tagged hash of the
    initiator's encoding, the responder's, and the shared x."""
    shared_x = ellswift_xdh_x(theirs, secret)
    a, b = (ours, theirs) if initiator else (theirs, ours)
    return hashlib.sha256(XDH_TAG + XDH_TAG + a + b + shared_x).digest()


def xonly_public(secret: bytes) -> bytes:
    """The BIP340 32-byte x-only public key of a secret."""
    return coincurve.PrivateKey(secret).public_key.format(compressed=True)[1:]


def schnorr_sign(secret: bytes, message: bytes, aux: bytes | None = None) -> bytes:
    return coincurve.PrivateKey(secret).sign_schnorr(message, os.urandom(32) if aux is None else aux)


def schnorr_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """BIP340 verification; False for a key that is no curve point as for a wrong signature."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        return bool(coincurve.PublicKeyXOnly(public_key).verify(signature, message))
    except (ValueError, TypeError):
        return False
