"""BM13xx jobs (docs/bm13xx.md §4): the BM1397 midstate job, the BM1366+ full-header job, and the
55 AA job frame both travel in (§2.2); BM1387 sends the same frame without its preamble. The
framings (framing.py) take jobs from here, so this module depends on none of them."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from miner.drivers.kit.bits import reverse_words
from miner.drivers.kit.crc import crc16_ccitt_false as crc16

PREAMBLE = b"\x55\xaa"  # host → chip, commands and jobs alike
TYPE_JOB = 0x20  # the TYPE bits of a job's HDR (§2.1)
JOB_HDR = TYPE_JOB | 1
HEADER_JOB_FRAME = 88  # BM1366/68/70, whatever LEN says (§2.2)


@dataclass(frozen=True, slots=True)
class MidstateJob:
    """BM1397 job (§4.1): up to 4 midstates (words S0..S7 big-endian, as hashing.midstate gives)
    sharing the 12-byte header tail."""

    job_id: int
    nbits: int
    ntime: int
    merkle_tail: bytes  # header bytes 64..67
    midstates: tuple[bytes, ...]
    start_nonce: int = 0

    def __post_init__(self) -> None:
        if not 1 <= len(self.midstates) <= 4 or any(len(m) != 32 for m in self.midstates):
            raise ValueError("midstate job: 1 to 4 midstates of 32 bytes")
        if len(self.merkle_tail) != 4 or not 0 <= self.job_id <= 0xFF:
            raise ValueError("midstate job: merkle tail is 4 bytes, job id one byte")

    @property
    def tail(self) -> bytes:
        """Header bytes 64..75, which the chip hashes after each midstate (nonce follows)."""
        return self.merkle_tail + struct.pack("<II", self.ntime, self.nbits)

    def payload(self) -> bytes:
        out = bytes([self.job_id, len(self.midstates)]) + struct.pack("<III", self.start_nonce, self.nbits,
                                                                          self.ntime) + self.merkle_tail
        # On the wire each midstate is H7..H0, each word big-endian.
        return out + b"".join(reverse_words(m) for m in self.midstates)

    def encode(self, slots: int | None = None) -> bytes:
        """The frame; `slots=4` pads unused midstate slots with zeros (ESP-Miner's 152-byte form)."""
        pad = max(0, (slots or 0) - len(self.midstates))
        return job_frame(self.payload() + bytes(32 * pad))


@dataclass(frozen=True, slots=True)
class HeaderJob:
    """BM1366/68/70 job (§4.2): the whole header; the chip rolls version bits itself."""

    job_id: int
    nbits: int
    ntime: int
    merkle_root: bytes  # header order
    prevhash: bytes  # header order
    version: int
    start_nonce: int = 0
    midstates: int = 1  # the "number of midstates" byte; 1 from ESP-Miner

    def __post_init__(self) -> None:
        if len(self.merkle_root) != 32 or len(self.prevhash) != 32 or not 0 <= self.job_id <= 0xFF:
            raise ValueError("header job: merkle root and prevhash are 32 bytes, job id one byte")

    def header(self, version: int | None = None, nonce: int = 0) -> bytes:
        v = self.version if version is None else version
        return struct.pack("<I32s32sIII", v, self.prevhash, self.merkle_root, self.ntime, self.nbits, nonce)

    def payload(self) -> bytes:
        return (bytes([self.job_id, self.midstates]) + struct.pack("<III", self.start_nonce, self.nbits, self.ntime)
                + reverse_words(self.merkle_root) + reverse_words(self.prevhash) + struct.pack("<I", self.version))

    def encode(self, length: int | None = None) -> bytes:
        return job_frame(self.payload(), length)


def job_frame(payload: bytes, length: int | None = None) -> bytes:
    """55 AA 21 LEN payload CRC16; LEN is payload + 4 unless given (cgminer sends 0x36 for 88 bytes)."""
    body = bytes([JOB_HDR, len(payload) + 4 if length is None else length]) + payload
    return PREAMBLE + body + struct.pack(">H", crc16(body))


def decode_midstate_job(frame: bytes) -> MidstateJob:
    payload = _job_payload(frame)
    count = payload[1]
    if not 1 <= count <= 4 or len(payload) < 18 + 32 * count:
        raise ValueError(f"midstate job: {count} midstates do not fit a {len(frame)}-byte frame")
    start, nbits, ntime = struct.unpack_from("<III", payload, 2)
    mids = tuple(reverse_words(payload[18 + 32 * i : 50 + 32 * i]) for i in range(count))
    return MidstateJob(payload[0], nbits, ntime, payload[14:18], mids, start)


def decode_header_job(frame: bytes) -> HeaderJob:
    payload = _job_payload(frame)
    if len(payload) != 82:
        raise ValueError(f"header job: payload is 82 bytes, got {len(payload)}")
    start, nbits, ntime = struct.unpack_from("<III", payload, 2)
    (version,) = struct.unpack_from("<I", payload, 78)
    return HeaderJob(payload[0], nbits, ntime, reverse_words(payload[14:46]), reverse_words(payload[46:78]),
                     version, start, payload[1])


def _job_payload(frame: bytes) -> bytes:
    if frame[:2] != PREAMBLE or len(frame) < 6 or frame[2] != JOB_HDR:
        raise ValueError("job: not a 55 AA 21 frame")
    if crc16(frame[2:-2]) != int.from_bytes(frame[-2:], "big"):
        raise ValueError("job: CRC-16 mismatch")
    return frame[4:-2]
