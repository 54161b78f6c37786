"""Jobs, work units, nonces and targets: pure functions and plain data, no I/O.

A `Job` is what a job source (a Stratum pool or a node's block template) says to mine; it carries
everything needed to build headers. The dispatcher cuts `Work` from it, one unit per extranonce2;
devices hash a unit's header over the nonce space and report `Nonce`s, which the share path checks.

Byte orders (see docs/stratum.md §0): hashes and the prevhash are kept in header
(internal) order; integers are plain ints and are packed little-endian into the header.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from miner.core.targets import DIFF1_TARGET, nbits_to_target, target_to_difficulty


def dsha256(data: bytes) -> bytes:
    """sha256d with hashlib; used for merkle and coinbase hashing, which are short and many."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


# ------------------------------------------------------------------------------------ headers
def swap_words(data: bytes) -> bytes:
    """Reverse the bytes inside every 4-byte word (Stratum's prevhash form <-> header order)."""
    if len(data) % 4:
        raise ValueError(f"swap_words: length {len(data)} is not a multiple of 4")
    return b"".join(data[i : i + 4][::-1] for i in range(0, len(data), 4))


def build_header(version: int, prevhash: bytes, merkle_root: bytes, ntime: int, nbits: int,
                 nonce: int) -> bytes:
    """The 80-byte block header; prevhash and merkle_root in header (internal) order."""
    if len(prevhash) != 32 or len(merkle_root) != 32:
        raise ValueError("prevhash and merkle_root must be 32 bytes each")
    return struct.pack("<I32s32sIII", version, prevhash, merkle_root, ntime, nbits, nonce)


@dataclass(frozen=True, slots=True)
class HeaderFields:
    version: int
    prevhash: bytes
    merkle_root: bytes
    ntime: int
    nbits: int
    nonce: int


def parse_header(header: bytes) -> HeaderFields:
    if len(header) != 80:
        raise ValueError(f"header: must be 80 bytes, got {len(header)}")
    return HeaderFields(*struct.unpack("<I32s32sIII", header))


def merkle_root(coinbase_hash: bytes, branch: Sequence[bytes]) -> bytes:
    """Fold the coinbase txid (internal order) up the branch; the coinbase is always on the left."""
    root = coinbase_hash
    for sibling in branch:
        root = dsha256(root + sibling)
    return root


def merkle_branch(txids: Sequence[bytes]) -> list[bytes]:
    """The branch from leaf 0 given the other leaves (internal order) in block order.

    `txids` are the hashes of transactions 1..n (the coinbase itself is not known yet).
    Odd levels duplicate their last hash, as Bitcoin does.
    """
    branch: list[bytes] = []
    level: list[bytes | None] = [None, *txids]
    while len(level) > 1:
        branch.append(level[1])  # type: ignore[arg-type]
        if len(level) % 2:
            level.append(level[-1])
        level = [None] + [dsha256(level[i] + level[i + 1]) for i in range(2, len(level), 2)]  # type: ignore[operator]
    return branch


def roll_version(base: int, mask: int, bits: int) -> int:
    """BIP310: the version with the bits inside mask replaced by bits."""
    return (base & ~mask & 0xFFFFFFFF) | (bits & mask)


def spread_bits(counter: int, mask: int) -> int:
    """Deposit the low bits of counter into the set bits of mask, lowest first (like x86 PDEP)."""
    out = 0
    while mask and counter:
        low = mask & -mask
        if counter & 1:
            out |= low
        counter >>= 1
        mask ^= low
    return out


# ------------------------------------------------------------------------------------ data
@dataclass(frozen=True, slots=True)
class Job:
    """What to mine, as a job source gave it; the same type for Stratum and getblocktemplate."""

    job_id: str
    prevhash: bytes  # header order
    coinb1: bytes  # coinbase up to extranonce1
    coinb2: bytes  # coinbase after extranonce2
    merkle_branch: tuple[bytes, ...]
    version: int
    nbits: int
    ntime: int
    # A job re-announced as clean (a pool switch) or with a new rolling mask is still the same job:
    # shares for it stay valid, so these two fields do not take part in equality.
    clean: bool = field(default=False, compare=False)
    extranonce1: bytes = b""
    extranonce2_size: int = 4
    share_target: int = DIFF1_TARGET
    version_mask: int = field(default=0, compare=False)  # bits devices may roll (BIP310), 0 = none
    source: str = ""  # who made the job; shares go back there
    height: int | None = None  # when the source knows it (getblocktemplate)
    # A standard job (Stratum V2 standard channel, docs/sv2.md §8): the pool fixed the merkle root, so
    # there is no coinbase and no extranonce (extranonce2_size 0); the work space is nonce x version
    # bits x ntime. Such a job is cut for one device only, named here ("" = any device).
    fixed_merkle_root: bytes | None = None
    device: str = ""

    def __post_init__(self) -> None:
        # The header holds these in 32 bits; a source that let a wider one through (a node's
        # curtime 2^33) would otherwise fail in a device thread, at struct.pack, for every unit.
        for name, value in (("version", self.version), ("ntime", self.ntime), ("nbits", self.nbits)):
            if not 0 <= value <= 0xFFFFFFFF:
                raise ValueError(f"job {self.job_id}: {name} {value} does not fit the header's 32 bits")

    @property
    def network_target(self) -> int:
        return nbits_to_target(self.nbits)

    @property
    def share_difficulty(self) -> float:
        return target_to_difficulty(self.share_target)

    def coinbase(self, extranonce2: bytes) -> bytes:
        if len(extranonce2) != self.extranonce2_size:
            raise ValueError(f"extranonce2: need {self.extranonce2_size} bytes, got {len(extranonce2)}")
        return self.coinb1 + self.extranonce1 + extranonce2 + self.coinb2

    def extranonce2_for(self, counter: int) -> bytes:
        """The extranonce2 bytes for a counter: little-endian, wrapping at its size (as cgminer)."""
        size = self.extranonce2_size
        return (counter % (1 << (8 * size))).to_bytes(size, "little") if size else b""

    def make_work(self, work_id: int, extranonce2: bytes, version: int | None = None) -> Work:
        """A unit with this extranonce2 (and, within the job's mask, this rolled version)."""
        version = self.version if version is None else version
        if (version ^ self.version) & ~self.version_mask & 0xFFFFFFFF:
            raise ValueError(f"version {version:08x} differs from the job's outside its mask")
        if self.fixed_merkle_root is not None:
            if extranonce2:
                raise ValueError(f"job {self.job_id}: a standard job has no extranonce2")
            return self.work_from_root(work_id, b"", self.fixed_merkle_root, version)
        root = merkle_root(dsha256(self.coinbase(extranonce2)), self.merkle_branch)
        return self.work_from_root(work_id, extranonce2, root, version)

    def work_from_root(self, work_id: int, extranonce2: bytes, root: bytes, version: int,
                       ntime: int | None = None) -> Work:
        """A unit on this merkle root; `ntime` (default the job's) is rolled only for standard jobs,
        whose merkle root cannot change (docs/sv2.md §8)."""
        header = build_header(version, self.prevhash, root, self.ntime if ntime is None else ntime, self.nbits, 0)
        return Work(work_id, self, extranonce2, root, header, version)


@dataclass(frozen=True, slots=True)
class Work:
    """One unit for a device: a job with its extranonce2 fixed, so a full header up to the nonce."""

    work_id: int
    job: Job
    extranonce2: bytes
    merkle_root: bytes
    header: bytes  # 80 bytes with nonce 0, this unit's version and the job's ntime
    version: int  # the job's version, or one rolled within its mask

    @property
    def target(self) -> int:
        return self.job.share_target

    @property
    def ntime(self) -> int:
        """This unit's ntime: the job's, or one the dispatcher rolled for a standard job (§8)."""
        return int.from_bytes(self.header[68:72], "little")

    def header_for(self, nonce: int, version: int | None = None, ntime: int | None = None) -> bytes:
        """The header a device hashed: this work's, with its nonce (and rolled version/ntime)."""
        v = self.version if version is None else version
        t = self.ntime if ntime is None else ntime
        return struct.pack("<I", v) + self.header[4:68] + struct.pack("<III", t, self.job.nbits, nonce)


@dataclass(frozen=True, slots=True)
class Nonce:
    """A device's answer: this nonce (with this version and ntime, if rolled) for that work unit.

    The share path hashes it once and hands the verdict back to the device, with `chip` (which
    chip or module found it) and `tag` (anything else the driver wants back) as they were.
    When the driver cannot tell which of a few units the nonce is for (an Icarus stick's reply
    just after new work, an Avalon job-id CRC that two jobs share), it names the likeliest here
    and the others in `alternatives`: the share path tries those, in order, only when this one
    misses the device target.
    """

    work_id: int
    nonce: int
    version: int | None = None
    ntime: int | None = None
    device: str = ""
    found_at: float = field(default=0.0, compare=False)
    chip: int | None = field(default=None, compare=False)
    tag: object = field(default=None, compare=False)
    alternatives: tuple[Nonce, ...] = field(default=(), compare=False)
