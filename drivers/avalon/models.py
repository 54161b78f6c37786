"""Which Avalon a module is (from its ACKDETECT version string, docs/avalon.md §B4.1, §B6.1, §B7)
and how its chips count nonces: the facts the drivers and the emulators share."""

from __future__ import annotations

from dataclasses import dataclass, field

from miner.drivers.avalon.packets import Family, PacketError
from miner.drivers.kit.bits import bswap32

NONCE_OFFSET_A3222 = 0x4000  # avalonm and MM40/41/50 report N + 0x4000


def header_nonce(n_field: int, offset: int = 0) -> int:
    """The nonce as work.py keeps it (the header's little-endian field) from a reported N."""
    return bswap32((n_field - offset) & 0xFFFFFFFF)


def n_field(header_nonce_value: int, offset: int = 0) -> int:
    """The reverse of header_nonce: what the chip reports for a nonce found in the header."""
    return (bswap32(header_nonce_value) + offset) & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Model:
    family: Family
    name: str
    miners: int
    asics: int  # per miner
    nonce_offset: int = 0
    max_modules: int = 6
    default_freqs: tuple[int, ...] = field(default=())


def model_for_version(version: str) -> Model:
    """The module model from the first characters of its ACKDETECT version string."""
    head2, head3 = version[:2], version[:3]
    if head2 == "3U":
        return Model(Family.AVALONM, "nano2", 1, 1, NONCE_OFFSET_A3222)
    if head2 == "4M":
        return Model(Family.AVALONM, "4mini", 1, 5, NONCE_OFFSET_A3222)
    if head2 in ("40", "41"):
        return Model(Family.AVALON4, "MM" + head2, 10, 4, NONCE_OFFSET_A3222, 6, (200, 200, 200))
    if head2 == "50":
        return Model(Family.AVALON4, "MM50", 2, 16, NONCE_OFFSET_A3222, 6, (200, 200, 200))
    if head2 == "60":
        return Model(Family.AVALON4, "MM60", 2, 40, 0, 6, (200, 200, 200))
    if head3 in ("711", "721"):
        return Model(Family.AVALON7, head3, 4, 18, 0, 6, (600, 636, 672, 708, 744, 780))
    if head3 == "741":
        return Model(Family.AVALON7, head3, 4, 22, 0, 6, (600, 636, 672, 708, 744, 780))
    if head3 == "761":
        return Model(Family.AVALON7, head3, 4, 26, 0, 6, (600, 636, 672, 708, 744, 780))
    if head3 in ("821", "831", "841", "851"):
        return Model(Family.AVALON8, head3, 4, 26, 0, 6, (0, 0, 0, 850))
    raise PacketError(f"module version {version!r}: not a known Avalon model")
