"""Targets, difficulties and the numbers every part of the miner shares: one home for each.

A target is the largest sha256d hash, read as a little-endian 256-bit integer, that counts; a
difficulty is how much harder than difficulty 1 a target is. Pools measure from 0xFFFF * 2**208
(Bitcoin's difficulty 1), hashing chips from 2**224 (their "top 32 bits zero" rule).
"""

from __future__ import annotations

import math
from fractions import Fraction

# Pool difficulty 1: 0xFFFF * 2**208.
DIFF1_TARGET = 0xFFFF << 208
MAX_TARGET = (1 << 256) - 1
NONCE_SPACE = 1 << 32  # nonces per header


def nbits_to_target(nbits: int) -> int:
    """The compact "bits" encoding to a target: mantissa * 256**(exponent - 3)."""
    if not 0 <= nbits <= 0xFFFFFFFF:
        raise ValueError(f"nbits: not a 32-bit value: {nbits!r}")
    exponent = nbits >> 24
    mantissa = nbits & 0x007FFFFF
    if nbits & 0x00800000:
        raise ValueError(f"nbits: negative compact target {nbits:08x}")
    if exponent <= 3:
        return mantissa >> (8 * (3 - exponent))
    return min(mantissa << (8 * (exponent - 3)), MAX_TARGET)


def checked_compact_target(nbits: int) -> int:
    """The target of a compact "bits" value that a block may carry; ValueError for the ones Bitcoin
    Core refuses: negative, zero or overflowing 256 bits (bitcoin/bitcoin src/arith_uint256.cpp
    `SetCompact`'s pfNegative/pfOverflow, refused by src/pow.cpp `DeriveTarget`)."""
    if isinstance(nbits, bool) or not isinstance(nbits, int) or not 0 <= nbits <= 0xFFFFFFFF:
        raise ValueError(f"nbits: not a 32-bit value: {nbits!r}")
    size, word = nbits >> 24, nbits & 0x007FFFFF
    if size <= 3:
        word >>= 8 * (3 - size)
    if word == 0:
        raise ValueError(f"nbits {nbits:08x}: zero target")
    if nbits & 0x00800000:
        raise ValueError(f"nbits {nbits:08x}: negative target (sign bit set)")
    if size > 34 or (word > 0xFF and size > 33) or (word > 0xFFFF and size > 32):
        raise ValueError(f"nbits {nbits:08x}: target overflows 256 bits")
    return nbits_to_target(nbits)


def target_to_nbits(target: int) -> int:
    """The compact encoding of a target (rounding down, as Bitcoin Core's GetCompact does)."""
    if target <= 0:
        raise ValueError("target: must be positive")
    size = (target.bit_length() + 7) // 8
    mantissa = target >> (8 * (size - 3)) if size > 3 else target << (8 * (3 - size))
    if mantissa & 0x00800000:  # the sign bit: shift one byte more
        mantissa >>= 8
        size += 1
    return (size << 24) | mantissa


def difficulty_to_target(difficulty: float | int | str | Fraction) -> int:
    """Share target for a pool difficulty: floor(diff1 / D), exact for fractional D."""
    d = Fraction(difficulty)
    if d <= 0:
        raise ValueError(f"difficulty: must be positive, got {difficulty!r}")
    return min(int(DIFF1_TARGET / d), MAX_TARGET)


def target_to_difficulty(target: int) -> float:
    """Pool difficulty whose share target this is (diff1 / target)."""
    if target <= 0:
        raise ValueError("target: must be positive")
    return DIFF1_TARGET / target


def hash_to_int(digest: bytes) -> int:
    """A sha256d digest as the little-endian integer compared with targets."""
    return int.from_bytes(digest, "little")


def hash_difficulty(digest: bytes) -> float:
    """Share difficulty of a hash: diff1 / hash (infinite for an all-zero hash)."""
    value = hash_to_int(digest)
    return float("inf") if value == 0 else DIFF1_TARGET / value


def display_hash(digest: bytes) -> str:
    """The hex a block explorer shows: the digest reversed."""
    return digest[::-1].hex()


def chip_target(difficulty: float | Fraction) -> int:
    """The largest hash (as a little-endian integer) a hashing chip reports at `difficulty`.

    Chips test zero bits, not the pool's difficulty-1 target: at difficulty 1 they report every
    hash whose top 32 bits are zero, a little more than 0xffff * 2**208 lets through. Judging them
    by the pool's target would call about 1 in 65536 good nonces hardware errors.
    """
    return math.ceil(Fraction(1 << 224) / Fraction(difficulty)) - 1
