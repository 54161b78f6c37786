"""The Bitmain BM13xx UART protocol (BM1397, BM1366, BM1368, BM1370): frames, CRCs, per-chip
constants. Pure functions and dataclasses, no I/O; the driver and the emulator share this codec.

Facts and byte layouts: docs/bm13xx.md (section numbers below refer to it).

Host → chip:  55 AA | HDR | LEN | data | CRC5 (commands) or CRC16 hi lo (jobs)
Chip → host:  AA 55 | value/nonce (4) | b6 | b7 | [2 bytes once version rolling is on] | TYPE|CRC5
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

from miner.core.targets import chip_target

PREAMBLE = b"\x55\xaa"
REPLY_PREAMBLE = b"\xaa\x55"

# HDR bits (§2.1): TYPE in bits 7..5, ALL in bit 4, CMD in bits 3..0.
TYPE_JOB = 0x20
TYPE_CMD = 0x40
ALL = 0x10
CMD_SET_ADDRESS = 0
CMD_WRITE = 1
CMD_READ = 2
CMD_INACTIVE = 3
JOB_HDR = TYPE_JOB | 1
REPLY_NONCE = 0x80  # TYPE bits of a reply's last byte: nonce (else register value)

# Registers (§3.6).
REG_CHIP_ID = 0x00
REG_PLL0 = 0x08
REG_HASH_COUNTING = 0x10
REG_TICKET_MASK = 0x14
REG_MISC = 0x18
REG_ORDERED_CLOCK = 0x20
REG_FAST_UART = 0x28
REG_UART_RELAY = 0x2C
REG_CORE_CTRL = 0x3C
REG_ANALOG_MUX = 0x54
REG_IO_DRIVER = 0x58
REG_PLL3 = 0x68
REG_PLL0_DIVIDER = 0x70
REG_CLOCK_ORDER0 = 0x80
REG_CLOCK_ORDER1 = 0x84
REG_VERSION_MASK = 0xA4
REG_A8 = 0xA8
REG_B9 = 0xB9

# Legacy framing (§2.4)
REG_BM1387_PLL = 0x0C
REG_BM1387_BAUD = 0x1C
REG_BM1384_PLL = 0x04  # read back as "register 4" (frequency ping); written with the set-PLL command
BM1387_JOB_HDR = 0x21
BM1387_REPLY = 7
BM1384_REPLY = 5
BM1384_JOB = 64
BM1387_CODES = {CMD_SET_ADDRESS: 1, CMD_READ: 4, CMD_INACTIVE: 5, CMD_WRITE: 8}
BM1384_CODES = {CMD_SET_ADDRESS: 1, CMD_WRITE: 2, CMD_READ: 4, CMD_INACTIVE: 5}
BM1384_BROADCAST = 0x80
BM1387_MHZ = (50.0, 800.0)  # the range accepted (R606 runs 550 in cgminer); not a chip limit we know
BM1384_MHZ = (50.0, 400.0)

SHORT_REPLY = 9
LONG_REPLY = 11  # BM1366+ once version rolling is enabled in 0xA4
COMMAND_SHORT = 7  # LEN 5
COMMAND_LONG = 11  # LEN 9
HEADER_JOB_FRAME = 88  # BM1366/68/70, whatever LEN says (§2.2)
CLKI_HZ = 25_000_000


# ------------------------------------------------------------------------------------ CRCs
def crc5(data: bytes, bits: int | None = None) -> int:
    """CRC-5, poly x^5+x^2+1, init 0x1F, MSB first, no reflection or final XOR, over the first
    `bits` bits of data (all of it by default); check("123456789") = 0x0F."""
    total = len(data) * 8 if bits is None else bits
    if not 0 <= total <= len(data) * 8:
        raise ValueError(f"crc5: {total} bits asked of {len(data)} bytes")
    reg = 0x1F
    for i in range(total):
        bit = (data[i >> 3] >> (7 - (i & 7))) & 1
        top = (reg >> 4) & 1
        reg = (reg << 1) & 0x1F
        if top ^ bit:
            reg ^= 0x05
    return reg


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0; check 0x29B1."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def word_reverse(data: bytes) -> bytes:
    """Reverse the order of the 4-byte words, bytes inside each word unchanged (§4.2)."""
    return b"".join(data[i : i + 4] for i in range(len(data) - 4, -1, -4))


def rev8(byte: int) -> int:
    return int(f"{byte:08b}"[::-1], 2)


# ------------------------------------------------------------------------------------ commands
@dataclass(frozen=True, slots=True)
class Command:
    """A command frame: set address, write/read a register, chain inactive (§2.1).

    `chip` is the addressed chip (for set-address: the new address); broadcast commands send 00.
    """

    cmd: int
    broadcast: bool = False
    chip: int = 0
    reg: int = 0
    value: int | None = None  # writes only

    def __post_init__(self) -> None:
        if self.cmd not in (CMD_SET_ADDRESS, CMD_WRITE, CMD_READ, CMD_INACTIVE):
            raise ValueError(f"command: unknown command code {self.cmd}")
        if not (0 <= self.chip <= 0xFF and 0 <= self.reg <= 0xFF):
            raise ValueError("command: chip and register addresses are bytes")
        if (self.cmd == CMD_WRITE) != (self.value is not None):
            raise ValueError("command: a write carries a value, nothing else does")
        if self.value is not None and not 0 <= self.value <= 0xFFFFFFFF:
            raise ValueError(f"command: value {self.value!r} is not 32 bits")

    def encode(self) -> bytes:
        hdr = TYPE_CMD | (ALL if self.broadcast else 0) | self.cmd
        data = bytes([0 if self.broadcast else self.chip, self.reg])
        if self.value is not None:
            data += struct.pack(">I", self.value)
        body = bytes([hdr, len(data) + 3]) + data
        return PREAMBLE + body + bytes([crc5(body)])


def read_register(reg: int, chip: int | None = None) -> Command:
    """Read `reg` of one chip, or of every chip (one reply each, in chain order) when chip is None."""
    return Command(CMD_READ, chip is None, chip or 0, reg)


def write_register(reg: int, value: int, chip: int | None = None) -> Command:
    return Command(CMD_WRITE, chip is None, chip or 0, reg, value)


def set_address(address: int) -> Command:
    return Command(CMD_SET_ADDRESS, False, address, 0)


def chain_inactive() -> Command:
    return Command(CMD_INACTIVE, True)


# ------------------------------------------------------------------------------------ jobs
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
        return out + b"".join(word_reverse(m) for m in self.midstates)

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
                + word_reverse(self.merkle_root) + word_reverse(self.prevhash) + struct.pack("<I", self.version))

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
    mids = tuple(word_reverse(payload[18 + 32 * i : 50 + 32 * i]) for i in range(count))
    return MidstateJob(payload[0], nbits, ntime, payload[14:18], mids, start)


def decode_header_job(frame: bytes) -> HeaderJob:
    payload = _job_payload(frame)
    if len(payload) != 82:
        raise ValueError(f"header job: payload is 82 bytes, got {len(payload)}")
    start, nbits, ntime = struct.unpack_from("<III", payload, 2)
    (version,) = struct.unpack_from("<I", payload, 78)
    return HeaderJob(payload[0], nbits, ntime, word_reverse(payload[14:46]), word_reverse(payload[46:78]),
                     version, start, payload[1])


def _job_payload(frame: bytes) -> bytes:
    if frame[:2] != PREAMBLE or len(frame) < 6 or frame[2] != JOB_HDR:
        raise ValueError("job: not a 55 AA 21 frame")
    if crc16(frame[2:-2]) != int.from_bytes(frame[-2:], "big"):
        raise ValueError("job: CRC-16 mismatch")
    return frame[4:-2]


# ------------------------------------------------------------------------------------ replies
@dataclass(frozen=True, slots=True)
class RegisterReply:
    value: int
    chip: int  # the replying chip's address
    reg: int


@dataclass(frozen=True, slots=True)
class NonceReply:
    nonce: int  # the header's nonce value (wire bytes are header order)
    job_byte: int  # b7: job id with a midstate / small-core index in its low bits
    version_bits: int | None = None  # BM1366+: rolled bits V; the version is base | V << 13
    b6: int = 0  # meaning unknown (§5.1); hosts ignore it

    @property
    def wire_value(self) -> int:
        """The nonce bytes read big-endian (ESP-Miner's ntohl), from which chip and core ids come."""
        return int.from_bytes(struct.pack("<I", self.nonce), "big")


@dataclass(frozen=True, slots=True)
class BadFrame:
    """Bytes the parser had to throw away: a failed CRC or garbage between frames."""

    data: bytes
    reason: str  # "crc" or "garbage"


Reply = RegisterReply | NonceReply


def encode_reply(reply: Reply, long: bool = False) -> bytes:
    if isinstance(reply, NonceReply):
        body = struct.pack("<I", reply.nonce) + bytes([reply.b6, reply.job_byte])
        if long:
            body += struct.pack(">H", reply.version_bits or 0)
        kind = REPLY_NONCE
    else:
        body = struct.pack(">I", reply.value) + bytes([reply.chip, reply.reg]) + (b"\x00\x00" if long else b"")
        kind = 0
    # The CRC covers the TYPE bits of the last byte too: every bit after the preamble but the last 5.
    partial = body + bytes([kind])
    return REPLY_PREAMBLE + body + bytes([kind | crc5(partial, len(partial) * 8 - 5)])


def decode_reply(frame: bytes) -> Reply:
    if len(frame) not in (SHORT_REPLY, LONG_REPLY) or frame[:2] != REPLY_PREAMBLE:
        raise ValueError(f"reply: expected AA 55 and 9 or 11 bytes, got {frame.hex(' ')}")
    body = frame[2:]
    if crc5(body, len(body) * 8 - 5) != body[-1] & 0x1F:
        raise ValueError(f"reply: CRC-5 mismatch in {frame.hex(' ')}")
    if body[-1] & REPLY_NONCE:
        vbits = int.from_bytes(body[6:8], "big") if len(frame) == LONG_REPLY else None
        return NonceReply(struct.unpack_from("<I", body)[0], body[5], vbits, body[4])
    return RegisterReply(struct.unpack_from(">I", body)[0], body[4], body[5])


def skip_to_preamble(buf: bytearray, preamble: bytes) -> tuple[list[BadFrame], bool]:
    """Drop the bytes before the next preamble from `buf` (as garbage); True when `buf` now starts
    with one. A trailing first preamble byte is kept: it may be the first half of the next one."""
    start = buf.find(preamble)
    if start < 0:
        start = len(buf) - (1 if buf[-1:] == preamble[:1] else 0)
    dropped = bytes(buf[:start])
    del buf[:start]
    return ([BadFrame(dropped, "garbage")] if dropped else []), buf[: len(preamble)] == preamble


class ReplyParser:
    """Chip → host byte stream to replies; resynchronises on AA 55 after garbage or a bad CRC."""

    def __init__(self, long: bool = False):
        self.long = long
        self._buf = bytearray()

    @property
    def frame_size(self) -> int:
        return LONG_REPLY if self.long else SHORT_REPLY

    def feed(self, data: bytes) -> Iterator[Reply | BadFrame]:
        self._buf += data
        size = self.frame_size
        while True:
            skipped, found = skip_to_preamble(self._buf, REPLY_PREAMBLE)
            yield from skipped
            if not found:
                return
            if len(self._buf) < size:
                return
            frame = bytes(self._buf[:size])
            try:
                reply = decode_reply(frame)
            except ValueError:
                yield BadFrame(frame[:2], "crc")
                del self._buf[:2]  # the real next frame may start inside this one
                continue
            del self._buf[:size]
            yield reply

    def clear(self) -> None:
        self._buf.clear()


class CommandParser:
    """Host → chip byte stream to commands and jobs (the emulator's side of the link)."""

    def __init__(self, header_jobs: bool):
        self.header_jobs = header_jobs
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[Command | MidstateJob | HeaderJob | BadFrame]:
        self._buf += data
        while True:
            skipped, found = skip_to_preamble(self._buf, PREAMBLE)
            yield from skipped
            if not found:
                return
            if len(self._buf) < 4:
                return
            hdr, length = self._buf[2], self._buf[3]
            if hdr == JOB_HDR:
                # BM1366+ ignore LEN on jobs (hosts send 0x56, 0x36 or 0xFF); BM1397 trusts it.
                size = HEADER_JOB_FRAME if self.header_jobs else length + 2
            elif hdr & 0xE0 == TYPE_CMD and length in (5, 9):
                size = length + 2
            else:
                yield BadFrame(bytes(self._buf[:2]), "garbage")
                del self._buf[:2]
                continue
            if len(self._buf) < size:
                return
            frame = bytes(self._buf[:size])
            try:
                item = self._decode(frame)
            except ValueError:
                yield BadFrame(frame[:2], "crc")
                del self._buf[:2]
                continue
            del self._buf[:size]
            yield item

    def _decode(self, frame: bytes) -> Command | MidstateJob | HeaderJob:
        if frame[2] == JOB_HDR:
            return decode_header_job(frame) if self.header_jobs else decode_midstate_job(frame)
        return decode_command(frame)


def decode_command(frame: bytes) -> Command:
    if frame[:2] != PREAMBLE or len(frame) not in (COMMAND_SHORT, COMMAND_LONG) or frame[3] != len(frame) - 2:
        raise ValueError(f"command: bad frame {frame.hex(' ')}")
    if crc5(frame[2:-1]) != frame[-1]:
        raise ValueError(f"command: CRC-5 mismatch in {frame.hex(' ')}")
    hdr = frame[2]
    cmd, broadcast = hdr & 0x0F, bool(hdr & ALL)
    value = struct.unpack_from(">I", frame, 6)[0] if len(frame) == COMMAND_LONG else None
    return Command(cmd, broadcast, frame[4], frame[5], value)


# ------------------------------------------------------------------------------------ ticket mask
def ticket_difficulty(difficulty: float) -> int:
    """The power of two a ticket mask can express for a requested difficulty (§3.6): the request
    rounded up to an integer, then down to a power of two; at least 1."""
    d = max(1, math.ceil(difficulty))
    return 1 << (d.bit_length() - 1)


def ticket_mask(difficulty: float) -> int:
    """Register 0x14 value for a difficulty: mask d-1, each byte bit-reversed."""
    m = ticket_difficulty(difficulty) - 1
    return int.from_bytes(bytes(rev8((m >> s) & 0xFF) for s in (24, 16, 8, 0)), "big")


def ticket_mask_difficulty(register: int) -> int:
    """Inverse of ticket_mask: the difficulty a 0x14 value selects."""
    m = int.from_bytes(bytes(rev8(b) for b in register.to_bytes(4, "big")), "big")
    return m + 1


def report_target(difficulty: float | Fraction) -> int:
    """The largest hash (little-endian int) a chip reports at this difficulty. Chips test zero
    bits: H < 2**(224 - log2 d) (§3.6), a little looser than the pool's diff-1 target / d."""
    return chip_target(difficulty)


# ------------------------------------------------------------------------------------ version mask
def version_mask_register(mask: int) -> int:
    """0xA4: enable (bit 31), bit 28 as every captured write, bits 15..0 = mask >> 13 (§3.6)."""
    return 0x90000000 | ((mask >> 13) & 0xFFFF)


def register_version_mask(register: int) -> int:
    """The version bits a 0xA4 value lets the chip roll (0 when rolling is off)."""
    return ((register & 0xFFFF) << 13) if register & 0x80000000 else 0


def rolled_version(base: int, version_bits: int) -> int:
    """A BM1366+ reply's version: hosts OR V << 13 into the job's version (§5.1)."""
    return base | (version_bits << 13)


def increment_in_mask(version: int, mask: int) -> int:
    """The next version within the mask: add the lowest mask bit, carrying only through mask bits
    (how BM1397 midstates 1..3 get their versions, §4.1)."""
    if not mask:
        return version
    rolled = ((version | ~mask) + (mask & -mask)) & mask
    return (version & ~mask & 0xFFFFFFFF) | rolled


# ------------------------------------------------------------------------------------ PLL
@dataclass(frozen=True, slots=True)
class Pll:
    fbdiv: int
    refdiv: int
    postdiv1: int  # the divider itself (not the register nibble)
    postdiv2: int

    @property
    def vco_mhz(self) -> float:
        return 25.0 * self.fbdiv / self.refdiv

    @property
    def mhz(self) -> float:
        return self.vco_mhz / (self.postdiv1 * self.postdiv2)


def pll_search(mhz: float, fb_range: tuple[int, int]) -> Pll:
    """ESP-Miner's search (§3.6): REFDIV 2 or 1, POSTDIV1 > POSTDIV2 in 7..1, FBDIV in range;
    the closest frequency, then the lowest VCO, then the smallest post-divider product."""
    best: tuple[float, float, int] | None = None
    choice: Pll | None = None
    for refdiv in (2, 1):
        for p1 in range(7, 0, -1):
            for p2 in range(min(p1 - 1, 7), 0, -1):
                fb = round(mhz / 25.0 * refdiv * p1 * p2)
                if not fb_range[0] <= fb <= fb_range[1]:
                    continue
                pll = Pll(fb, refdiv, p1, p2)
                key = (round(abs(pll.mhz - mhz), 9), pll.vco_mhz, p1 * p2)
                if best is None or key < best:
                    best, choice = key, pll
    if choice is None:
        raise ValueError(f"frequency {mhz} MHz is out of the PLL's range")
    return choice


# ------------------------------------------------------------------------------------ chips
@dataclass(frozen=True)
class ChipInfo:
    """What differs between chips of the family."""

    name: str
    chip_id: int  # reg 0x00 bits 31..16
    id_value: int  # the whole reg 0x00 at address 0
    big_cores: int
    small_cores: int  # hashes per clock (ESP-Miner's rate: MHz × small cores)
    default_mhz: float
    job_id_step: int  # ESP-Miner's id sequence: (id + step) mod 128
    core_bits: int  # low bits of b7 holding the midstate / small-core index
    header_jobs: bool  # full-header jobs and on-chip version rolling (BM1366+)
    pll_fb_range: tuple[int, int]
    pll_nibble_minus_one: bool  # BM1366+ store post dividers less one
    baud_register: int
    fast_baud_value: int
    fast_baud: int  # the host UART rate after the switch
    job_interval: float | None  # seconds (ESP-Miner's fixed value, before ÷ next_pow2(chips))
    # Broadcast writes before the chain is enumerated (ESP-Miner's 0xA4 writes, so replies are long).
    pre_enumerate: tuple[tuple[int, int], ...] = ()
    broadcast_init: tuple[tuple[int, int], ...] = ()
    per_chip_init: tuple[tuple[int, int], ...] = ()
    # Registers the emulator wants written before it hashes (the core set-up of §3).
    required: frozenset[int] = field(default_factory=frozenset)
    # The wire format (§2.4): "55aa" (BM1397+), "bm1387" or "bm1384" (legacy, no preamble).
    framing: str = "55aa"
    pll_reg: int = REG_PLL0  # the register holding the clock (BM1387 0x0C, BM1384 its "set PLL" 4)
    job_ids: tuple[int, int] = (0, 128)  # the range job ids cycle through
    midstates: int = 4  # most midstates per job (host-rolled versions; BM1384 takes one)
    ticket_in_job: bool = False  # BM1384: the ticket mask is a byte of each job, not a register

    @property
    def long_replies(self) -> bool:
        return self.header_jobs

    @property
    def legacy(self) -> bool:
        return self.framing != "55aa"

    # framing ------------------------------------------------------------------
    def encode_command(self, command: Command) -> bytes:
        if self.framing == "bm1387":
            return encode_bm1387_command(command)
        if self.framing == "bm1384":
            return encode_bm1384_command(command)
        return command.encode()

    def encode_reply(self, reply: Reply, long: bool = False) -> bytes:
        if self.framing == "bm1387":
            return encode_reply(reply)[2:]  # the BM1397 reply minus AA 55 (§2.4)
        if self.framing == "bm1384":
            return encode_bm1384_reply(reply)
        return encode_reply(reply, long)

    def reply_parser(self) -> ReplyParser | LegacyReplyParser:
        if self.framing == "bm1387":
            return LegacyReplyParser(BM1387_REPLY, decode_bm1387_reply)
        if self.framing == "bm1384":
            return LegacyReplyParser(BM1384_REPLY, decode_bm1384_reply)
        return ReplyParser(self.long_replies)

    def command_parser(self) -> CommandParser | Bm1387CommandParser | Bm1384CommandParser:
        if self.framing == "bm1387":
            return Bm1387CommandParser()
        if self.framing == "bm1384":
            return Bm1384CommandParser()
        return CommandParser(self.header_jobs)

    # job ids ------------------------------------------------------------------
    def next_job_id(self, job_id: int) -> int:
        low, high = self.job_ids
        return low + (job_id - low + self.job_id_step) % (high - low)

    def job_byte(self, job_id: int, index: int) -> int:
        """b7 of a nonce reply for this job and midstate / small-core index (§4.3)."""
        index &= (1 << self.core_bits) - 1
        if self.core_bits == 4:
            return ((job_id >> 3) & 0x0F) << 4 | index
        return (job_id & (0xFF << self.core_bits) & 0xFF) | index

    def split_job_byte(self, b7: int) -> tuple[int, int]:
        """(job id, midstate / small-core index) from b7."""
        index = b7 & ((1 << self.core_bits) - 1)
        if self.core_bits == 4:
            return (b7 & 0xF0) >> 1, index
        return b7 & (0xFF << self.core_bits) & 0xFF, index

    # PLL ----------------------------------------------------------------------
    def pll(self, mhz: float) -> Pll:
        if self.framing == "bm1384":
            raise ValueError("BM1384: its clock is a PLL word, see actual_mhz")
        if self.framing == "bm1387":
            return bm1387_pll(mhz)
        return pll_search(mhz, self.pll_fb_range)

    def actual_mhz(self, mhz: float) -> float:
        """The clock the chip runs at when asked for `mhz`; ValueError when it cannot."""
        if self.framing == "bm1384":
            bm1384_pll_word(mhz)
            return float(mhz)
        return self.pll(mhz).mhz

    def pll_register(self, mhz: float) -> int:
        if self.framing == "bm1384":
            return bm1384_pll_word(mhz)
        pll = self.pll(mhz)
        if self.framing == "bm1387":
            return bm1387_pll_register(pll)
        sub = 1 if self.pll_nibble_minus_one else 0
        high = 0x50 if self.header_jobs and pll.vco_mhz >= 2400 else 0x40
        return (high << 24 | pll.fbdiv << 16 | pll.refdiv << 8 | (pll.postdiv1 - sub) << 4
                | (pll.postdiv2 - sub))

    def pll_mhz(self, register: int) -> float:
        """The hash clock a PLL0 value gives (0 if a divider is zero: the PLL is not set up)."""
        if self.framing == "bm1384":
            return bm1384_pll_mhz(register)
        if self.framing == "bm1387":
            fb, ref, p1, p2 = (register >> 16) & 0xFFF, (register >> 8) & 0xF, (register >> 4) & 0xF, register & 0xF
            return 25.0 * fb / (ref * p1 * p2) if ref and p1 and p2 else 0.0
        fb, ref = (register >> 16) & 0xFFF, (register >> 8) & 0x3F
        add = 1 if self.pll_nibble_minus_one else 0
        p1, p2 = ((register >> 4) & 7) + add, (register & 7) + add
        return 25.0 * fb / (ref * p1 * p2) if ref and p1 and p2 else 0.0

    # rates --------------------------------------------------------------------
    def hashrate(self, mhz: float, chips: int = 1) -> float:
        """Expected hashes per second (ESP-Miner: MHz × small cores × chips, in MH/s)."""
        return mhz * 1e6 * self.small_cores * chips


def next_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def address_interval(chips: int) -> int:
    """Spacing of chip addresses: 256 / chips (§3.1)."""
    return 256 // max(1, chips)


def chip_field(wire_value: int) -> int:
    """The chip-address field of a nonce (§5.2): bits 24..17 of the wire bytes read big-endian."""
    return (wire_value >> 17) & 0xFF


def core_field(wire_value: int) -> int:
    return wire_value >> 25


def chip_index(wire_value: int, chips: int) -> int:
    """Which chip of the chain found a nonce (§5.2; approximate on real hardware)."""
    return min(chips - 1, chip_field(wire_value) // address_interval(chips))


_BM1366_LIKE = dict(header_jobs=True, pll_nibble_minus_one=True, baud_register=REG_FAST_UART,
                    fast_baud_value=0x11300200, fast_baud=1_000_000, core_bits=3)
_VR = version_mask_register(0x1FFFE000)
_REQUIRED_NEW = frozenset({REG_A8, REG_MISC, REG_CORE_CTRL, REG_PLL0, REG_VERSION_MASK})

CHIPS: dict[str, ChipInfo] = {
    "bm1397": ChipInfo(
        "bm1397", 0x1397, 0x13971800, 168, 672, 425.0, 4, 2, False, (60, 200), False,
        REG_MISC, 0x00006031, 3_125_000, None,
        broadcast_init=((REG_CLOCK_ORDER0, 0), (REG_CLOCK_ORDER1, 0), (REG_ORDERED_CLOCK, 1),
                        (REG_CORE_CTRL, 0x80008074), (REG_PLL3, 0xC0700111), (REG_FAST_UART, 0x0600000F),
                        (REG_MISC, 0x00007A31), (REG_PLL0_DIVIDER, 0x0F0F0F00)),
        required=frozenset({REG_CORE_CTRL, REG_PLL0_DIVIDER, REG_PLL0})),
    "bm1366": ChipInfo(
        "bm1366", 0x1366, 0x13660000, 112, 894, 485.0, 8, job_interval=2.0,
        pll_fb_range=(144, 235), pre_enumerate=((REG_VERSION_MASK, _VR),) * 3,
        broadcast_init=((REG_A8, 0x00070000), (REG_MISC, 0xFF0FC100), (REG_CORE_CTRL, 0x80008540),
                        (REG_CORE_CTRL, 0x80008020), (REG_ANALOG_MUX, 0x00000003), (REG_IO_DRIVER, 0x02111111)),
        per_chip_init=((REG_A8, 0x000701F0), (REG_MISC, 0xF000C100), (REG_CORE_CTRL, 0x80008540),
                       (REG_CORE_CTRL, 0x80008020), (REG_CORE_CTRL, 0x800082AA)),
        required=_REQUIRED_NEW, **_BM1366_LIKE),
    "bm1368": ChipInfo(
        "bm1368", 0x1368, 0x13680000, 80, 1276, 490.0, 24, job_interval=0.5,
        pll_fb_range=(144, 235), pre_enumerate=((REG_VERSION_MASK, _VR),) * 4,
        broadcast_init=((REG_A8, 0x00070000), (REG_MISC, 0xFF0FC100), (REG_CORE_CTRL, 0x80008B00),
                        (REG_CORE_CTRL, 0x80008018), (REG_ANALOG_MUX, 0x00000003), (REG_IO_DRIVER, 0x02111111)),
        per_chip_init=((REG_A8, 0x000701F0), (REG_MISC, 0xF000C100), (REG_CORE_CTRL, 0x80008B00),
                       (REG_CORE_CTRL, 0x80008018), (REG_CORE_CTRL, 0x800082AA)),
        required=_REQUIRED_NEW, **{**_BM1366_LIKE, "core_bits": 4}),
    "bm1370": ChipInfo(
        "bm1370", 0x1370, 0x13700000, 128, 2040, 525.0, 24, job_interval=0.5,
        pll_fb_range=(160, 239), pre_enumerate=((REG_VERSION_MASK, _VR),) * 3,
        broadcast_init=((REG_A8, 0x00070000), (REG_MISC, 0xF000C100), (REG_CORE_CTRL, 0x80008B00),
                        (REG_CORE_CTRL, 0x8000800C), (REG_IO_DRIVER, 0x00011111)),
        per_chip_init=((REG_A8, 0x000701F0), (REG_MISC, 0xF000C100), (REG_CORE_CTRL, 0x80008B00),
                       (REG_CORE_CTRL, 0x8000800C), (REG_CORE_CTRL, 0x800082AA), (REG_B9, 0x00004480),
                       (REG_ANALOG_MUX, 0x00000002), (REG_B9, 0x00004480), (REG_CORE_CTRL, 0x80008DEE)),
        required=_REQUIRED_NEW, **{**_BM1366_LIKE, "core_bits": 4}),
    # Legacy framing (§2.4; cgminer driver-gekko.c is the only source). BM1387: NewPac / R606, four
    # host-rolled midstates per job like BM1397, job ids 0x10..0x7C in steps of 4 so that the
    # reply's b5 reads the same whether the chip sends job + midstate or job | midstate (§4.3,
    # [unconfirmed]). Fast baud: 0x1C divider 1 → chip 1 562 500, FTDI 1 500 000 (§1.1).
    # Decisions where the facts stop [unconfirmed]: chip id 0x1387 in reg 0x00 (cgminer checks only
    # the 13), the ticket mask in 0x14 with the BM1397 encoding (no source gives a BM1387 mask
    # register), b4/b5 of a register reply = chip address / register as on BM1397.
    "bm1387": ChipInfo(
        "bm1387", 0x1387, 0x13870000, 114, 114, 100.0, 4, 2, False, (1, 0xFFF), False,
        REG_BM1387_BAUD, 0x00200100, 1_500_000, None, framing="bm1387", pll_reg=REG_BM1387_PLL,
        job_ids=(0x10, 0x80), required=frozenset({REG_BM1387_PLL})),
    # BM1384: Compac / 2Pac / Terminus; one midstate per 64-byte job, job ids 0x10..0x1F, ticket
    # mask in the job, UART stays at 115 200 (§1.1, §2.4).
    "bm1384": ChipInfo(
        "bm1384", 0x1384, 0x13840000, 55, 55, 150.0, 1, 0, False, (1, 0xFFFF), False,
        -1, 0, 115_200, None, framing="bm1384", pll_reg=REG_BM1384_PLL, job_ids=(0x10, 0x20), midstates=1,
        ticket_in_job=True, required=frozenset({REG_BM1384_PLL})),
}

RAMP_START_MHZ = 56.25
RAMP_STEP_MHZ = 6.25


def frequency_ramp(start: float, target: float, step: float = RAMP_STEP_MHZ) -> list[float]:
    """PLL steps from start to target in `step` MHz increments, ending exactly on target (§3.7)."""
    out: list[float] = []
    f = start
    direction = 1 if target >= start else -1
    while (target - f) * direction > step:
        f += step * direction
        out.append(f)
    out.append(target)
    return out


# ==================================================================================== legacy framing
# BM1387 and BM1384 (bm13xx.md §2.4, from cgminer's driver-gekko.c only [1 src]): no preamble either
# way, other command codes. The abstract Command (CMD_* codes above) is shared; only the bytes differ.



def encode_bm1387_command(command: Command) -> bytes:
    """BM1397 command minus 55 AA, with BM1387 codes: HDR LEN data CRC5 (LEN = whole frame)."""
    hdr = TYPE_CMD | (ALL if command.broadcast else 0) | BM1387_CODES[command.cmd]
    data = bytes([0 if command.broadcast else command.chip, command.reg])
    if command.value is not None:
        data += struct.pack(">I", command.value)
    body = bytes([hdr, len(data) + 3]) + data
    return body + bytes([crc5(body)])


def decode_bm1387_command(frame: bytes) -> Command:
    if len(frame) not in (5, 9) or frame[1] != len(frame) or frame[0] & 0xE0 != TYPE_CMD:
        raise ValueError(f"bm1387 command: bad frame {frame.hex(' ')}")
    if crc5(frame[:-1]) != frame[-1]:
        raise ValueError(f"bm1387 command: CRC-5 mismatch in {frame.hex(' ')}")
    codes = {v: k for k, v in BM1387_CODES.items()}
    if frame[0] & 0x0F not in codes:
        raise ValueError(f"bm1387 command: unknown code {frame[0] & 0x0F}")
    value = struct.unpack_from(">I", frame, 4)[0] if len(frame) == 9 else None
    return Command(codes[frame[0] & 0x0F], bool(frame[0] & ALL), frame[2], frame[3], value)


def encode_bm1384_command(command: Command) -> bytes:
    """4 bytes: code (bit 7 broadcast), two data bytes, CRC-5 of the first 27 bits in the low 5 bits
    of byte 3. BM1384 has no general register write: a write means "set PLL" (word in bytes 1..2)."""
    code = BM1384_CODES[command.cmd] | (BM1384_BROADCAST if command.broadcast else 0)
    if command.cmd == CMD_WRITE:
        if command.reg != REG_BM1384_PLL or command.value is None or command.value > 0xFFFF or not command.broadcast:
            raise ValueError("bm1384: the only write is a broadcast set-PLL with a 16-bit word")
        data = struct.pack(">H", command.value)
    elif command.cmd == CMD_SET_ADDRESS:
        data = bytes([command.chip, 0])
    else:
        data = bytes([0 if command.broadcast else command.chip, command.reg])
    body = bytes([code]) + data
    return body + bytes([crc5(body + b"\0", 27)])


def decode_bm1384_command(frame: bytes) -> Command:
    if len(frame) != 4 or frame[3] & 0xE0 or crc5(frame, 27) != frame[3]:
        raise ValueError(f"bm1384 command: bad frame or CRC {frame.hex(' ')}")
    codes = {v: k for k, v in BM1384_CODES.items()}
    code, broadcast = frame[0] & 0x7F, bool(frame[0] & BM1384_BROADCAST)
    if code not in codes:
        raise ValueError(f"bm1384 command: unknown code {code}")  # 6 (gate block) is not used here
    cmd = codes[code]
    if cmd == CMD_WRITE:
        return Command(cmd, broadcast, 0, REG_BM1384_PLL, frame[1] << 8 | frame[2])
    return Command(cmd, broadcast, frame[1], 0 if cmd == CMD_SET_ADDRESS else frame[2])


# ------------------------------------------------------------------------------------ legacy jobs
def encode_bm1387_job(job: MidstateJob) -> bytes:
    """21 LEN job_id n 00000000 nbits ntime merkle_tail midstate×n CRC16: the BM1397 job minus
    55 AA; LEN = whole frame (54 for one midstate)."""
    payload = job.payload()
    body = bytes([BM1387_JOB_HDR, len(payload) + 4]) + payload
    return body + struct.pack(">H", crc16(body))


def decode_bm1387_job(frame: bytes) -> MidstateJob:
    if len(frame) < 6 or frame[0] != BM1387_JOB_HDR or frame[1] != len(frame):
        raise ValueError("bm1387 job: not a 21 LEN frame of LEN bytes")
    return decode_midstate_job(PREAMBLE + frame)


@dataclass(frozen=True, slots=True)
class Bm1384Job:
    """The 64-byte BM1384 work block (§2.4): one midstate, ticket mask byte, hash-counting number."""

    job_id: int
    nbits: int
    ntime: int
    merkle_tail: bytes
    midstate: bytes
    ticket: int = 0xFF  # byte 39: low-bits mask, ticket difficulty - 1 [unconfirmed encoding]
    hcn: int = 0

    def __post_init__(self) -> None:
        if len(self.midstate) != 32 or len(self.merkle_tail) != 4:
            raise ValueError("bm1384 job: midstate is 32 bytes, merkle tail 4")
        if not 0x10 <= self.job_id <= 0x1F or not 0 <= self.ticket <= 0xFF:
            raise ValueError("bm1384 job: job id is 0x10..0x1F, ticket one byte")

    @property
    def midstates(self) -> tuple[bytes, ...]:
        return (self.midstate,)

    @property
    def tail(self) -> bytes:
        return self.merkle_tail + struct.pack("<II", self.ntime, self.nbits)

    @property
    def ticket_difficulty(self) -> int:
        return self.ticket + 1

    def encode(self) -> bytes:
        out = word_reverse(self.midstate) + bytes(7) + bytes([self.ticket]) + struct.pack(">I", self.hcn)
        out += bytes(7) + bytes([self.job_id]) + struct.pack("<II", self.nbits, self.ntime) + self.merkle_tail
        return out


def decode_bm1384_job(frame: bytes) -> Bm1384Job:
    if not looks_like_bm1384_job(frame):
        raise ValueError(f"bm1384 job: not a 64-byte work block ({len(frame)} bytes)")
    nbits, ntime = struct.unpack_from("<II", frame, 52)
    return Bm1384Job(frame[51], nbits, ntime, frame[60:64], word_reverse(frame[:32]), frame[39],
                     struct.unpack_from(">I", frame, 40)[0])


def looks_like_bm1384_job(frame: bytes) -> bool:
    """The work block has no header or CRC; its zero bytes and job id range tell it from commands."""
    return (len(frame) == BM1384_JOB and not any(frame[32:39]) and not any(frame[44:51])
            and 0x10 <= frame[51] <= 0x1F)


def bm1384_ticket(difficulty: int) -> int:
    return min(256, ticket_difficulty(difficulty)) - 1


# ------------------------------------------------------------------------------------ legacy replies
def decode_bm1387_reply(frame: bytes) -> Reply:
    """7 bytes: value/nonce(4) b4 b5 T|CRC5 (CRC over 51 bits): the BM1397 reply minus AA 55. b4 of a
    register reply is taken as the chip address and b5 as the register, as on BM1397 [unconfirmed]."""
    if len(frame) != BM1387_REPLY:
        raise ValueError(f"bm1387 reply: 7 bytes, got {len(frame)}")
    if crc5(frame, 51) != frame[-1] & 0x1F:
        raise ValueError(f"bm1387 reply: CRC-5 mismatch in {frame.hex(' ')}")
    if frame[-1] & REPLY_NONCE:
        return NonceReply(struct.unpack_from("<I", frame)[0], frame[5], None, frame[4])
    return RegisterReply(struct.unpack_from(">I", frame)[0], frame[4], frame[5])


def encode_bm1384_reply(reply: Reply) -> bytes:
    """5 bytes: nonce (header order) + 0x80|job id, no CRC; or value (big-endian) + CRC-5 of 35 bits."""
    if isinstance(reply, NonceReply):
        return struct.pack("<I", reply.nonce) + bytes([0x80 | reply.job_byte])
    value = struct.pack(">I", reply.value)
    return value + bytes([crc5(value + b"\0", 35)])


def decode_bm1384_reply(frame: bytes) -> Reply:
    """The reply carries no chip or register: a value starting 13 is the chip id (register 0), any
    other the PLL word read back (register 4); the chip is 0 (Compac sticks are single-chip)."""
    if len(frame) != BM1384_REPLY:
        raise ValueError(f"bm1384 reply: 5 bytes, got {len(frame)}")
    last = frame[4]
    if last & 0x80:
        if not 0x10 <= last & 0x7F <= 0x1F:
            raise ValueError(f"bm1384 reply: job id {last & 0x7F:#x} outside 0x10..0x1F")
        return NonceReply(struct.unpack_from("<I", frame)[0], last & 0x7F)
    if last & 0xE0 or crc5(frame, 35) != last:
        raise ValueError(f"bm1384 reply: CRC-5 mismatch in {frame.hex(' ')}")
    value = struct.unpack_from(">I", frame)[0]
    return RegisterReply(value, 0, REG_CHIP_ID if value >> 24 == 0x13 else REG_BM1384_PLL)


class LegacyReplyParser:
    """Fixed-size replies with no preamble. A frame that fails while the frames after it (up to
    LOOKAHEAD, waiting for them to arrive) decode in step is a "crc" error, skipped whole; when none
    of them does, the stream is out of step and the parser slides a byte at a time ("garbage") until
    a frame decodes and so does the one after it (or nothing follows yet). Garbage that happens to
    pass a CRC (1 in 32 on BM1387) still reads as a reply, and BM1384 nonces have no CRC at all:
    the driver's check of every nonce against its work is what keeps a misread out of the shares."""

    LOOKAHEAD = 3

    def __init__(self, size: int, decode):
        self.frame_size = size
        self._decode = decode
        self._buf = bytearray()
        self._in_step = True

    def feed(self, data: bytes) -> Iterator[Reply | BadFrame]:
        self._buf += data
        size = self.frame_size
        while len(self._buf) >= size:
            frame = bytes(self._buf[:size])
            try:
                reply = self._decode(frame)
            except ValueError:
                if self._in_step:
                    verdict = self._later_frames_decode(1, self.LOOKAHEAD)
                    if verdict is None:
                        return  # wait for the frames that tell a bad CRC from a slip
                    if verdict:
                        yield BadFrame(frame, "crc")
                        del self._buf[:size]
                        continue
                    self._in_step = False
                yield BadFrame(frame[:1], "garbage")
                del self._buf[:1]
                continue
            if not self._in_step:
                # Out of step: take a frame only when the one after it decodes too, or none follows yet.
                verdict = self._later_frames_decode(1, 1)
                if verdict is None and len(self._buf) > size:
                    return
                if verdict is False:
                    yield BadFrame(frame[:1], "garbage")
                    del self._buf[:1]
                    continue
            self._in_step = True
            del self._buf[:size]
            yield reply

    def _later_frames_decode(self, first: int, count: int) -> bool | None:
        """Whether one of frames first..first+count-1 after the buffer's start decodes in step (None:
        not all of them are here yet and none of those here decodes)."""
        size = self.frame_size
        for k in range(first, first + count):
            frame = bytes(self._buf[k * size : (k + 1) * size])
            if len(frame) < size:
                return None
            try:
                self._decode(frame)
            except ValueError:
                continue
            return True
        return False

    def clear(self) -> None:
        self._buf.clear()
        self._in_step = True


class Bm1387CommandParser:
    """Host → BM1387 stream: 21 LEN jobs (CRC-16) and HDR LEN commands (CRC-5)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[Command | MidstateJob | BadFrame]:
        self._buf += data
        while len(self._buf) >= 2:
            hdr, length = self._buf[0], self._buf[1]
            is_job = hdr == BM1387_JOB_HDR and length >= 54 and (length - 54) % 32 == 0
            if not is_job and not (hdr & 0xE0 == TYPE_CMD and length in (5, 9)):
                yield BadFrame(bytes(self._buf[:1]), "garbage")
                del self._buf[:1]
                continue
            if len(self._buf) < length:
                return
            frame = bytes(self._buf[:length])
            try:
                item: Command | MidstateJob = decode_bm1387_job(frame) if is_job else decode_bm1387_command(frame)
            except ValueError:
                yield BadFrame(frame[:1], "crc")
                del self._buf[:1]
                continue
            del self._buf[:length]
            yield item


class Bm1384CommandParser:
    """Host → BM1384 stream: 4-byte commands and 64-byte work blocks, neither with a header that
    says which. A work block is recognised by its zero bytes and job id (looks_like_bm1384_job)
    once 64 bytes are in; otherwise 4 bytes with a good CRC are a command. The host writes each
    frame whole, so a work block does not arrive cut short behind a command-looking start."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[Command | Bm1384Job | BadFrame]:
        self._buf += data
        while len(self._buf) >= 4:
            if len(self._buf) >= BM1384_JOB and looks_like_bm1384_job(bytes(self._buf[:BM1384_JOB])):
                yield decode_bm1384_job(bytes(self._buf[:BM1384_JOB]))
                del self._buf[:BM1384_JOB]
                continue
            try:
                command = decode_bm1384_command(bytes(self._buf[:4]))
            except ValueError:
                if len(self._buf) < BM1384_JOB:
                    return  # maybe the start of a work block
                yield BadFrame(bytes(self._buf[:1]), "garbage")
                del self._buf[:1]
                continue
            del self._buf[:4]
            yield command


# ------------------------------------------------------------------------------------ legacy PLL
def bm1387_pll(mhz: float) -> Pll:
    """Reg 0x0C = 00 FB 02 PP (§3.7): REFDIV 2 and post dividers 4×1 (PP 0x41) below 400 MHz, 2×1
    (PP 0x21) from 400; FB = f×8/25 or f×4/25, so steps of 3.125 / 6.25 MHz."""
    if not BM1387_MHZ[0] <= mhz <= BM1387_MHZ[1]:
        raise ValueError(f"frequency {mhz} MHz is out of the BM1387's range {BM1387_MHZ[0]:g}..{BM1387_MHZ[1]:g}")
    p1 = 4 if mhz < 400 else 2
    return Pll(round(mhz * 2 * p1 / 25), 2, p1, 1)


def bm1387_pll_register(pll: Pll) -> int:
    return pll.fbdiv << 16 | pll.refdiv << 8 | pll.postdiv1 << 4 | pll.postdiv2


def bm1384_pll_word(mhz: float) -> int:
    """The 16-bit word of the BM1384 set-PLL command (§3.7, cgminer's formula, reproduced not
    understood): below 100 MHz 0x0783 − 0x80 per 6.25 MHz under 100; else with r = floor(log2(f/25))
    0x0785 − r + (0x200 >> r) per 6.25 MHz above 25·2^r. 150 MHz → 0x0B83. cgminer's alternate word
    for frequencies that are not multiples of 25 is not described well enough to follow, so this
    formula serves every multiple of 6.25 MHz [decision]."""
    steps = mhz / 6.25
    if not BM1384_MHZ[0] <= mhz <= BM1384_MHZ[1] or steps != int(steps):
        raise ValueError(f"frequency {mhz} MHz: the BM1384 takes multiples of 6.25 MHz in "
                         f"{BM1384_MHZ[0]:g}..{BM1384_MHZ[1]:g}")
    if mhz < 100:
        return 0x0783 - 0x80 * int((100 - mhz) / 6.25)
    r = int(math.floor(math.log2(mhz / 25)))
    return 0x0785 - r + (0x200 >> r) * int((mhz - 25 * 2**r) / 6.25)


def bm1384_pll_mhz(word: int) -> float:
    """Inverse of bm1384_pll_word (0.0 for a word no accepted frequency gives)."""
    return _BM1384_WORDS().get(word, 0.0)


_bm1384_words: dict[int, float] = {}


def _BM1384_WORDS() -> dict[int, float]:  # noqa: N802 - a lazily built constant table
    if not _bm1384_words:
        f = BM1384_MHZ[0]
        while f <= BM1384_MHZ[1]:
            _bm1384_words[bm1384_pll_word(f)] = f
            f += 6.25
    return _bm1384_words
