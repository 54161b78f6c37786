"""The BM1384 framing (Compac, 2Pac, Terminus; docs/bm13xx.md §2.4, from cgminer's driver-gekko.c
only [1 src]): 4-byte commands with their own codes, a 64-byte work block with no header or CRC,
5-byte replies (a nonce without CRC, or a register value with a CRC-5 of 35 bits)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from miner.drivers.bm13xx.framing import Framing
from miner.drivers.bm13xx.framing_legacy import LegacyReplyParser
from miner.drivers.bm13xx.jobs import MidstateJob
from miner.drivers.bm13xx.messages import (
    CMD_INACTIVE,
    CMD_READ,
    CMD_SET_ADDRESS,
    CMD_WRITE,
    BadFrame,
    Command,
    NonceReply,
    RegisterReply,
    Reply,
)
from miner.drivers.bm13xx.registers import REG_BM1384_PLL, REG_CHIP_ID, ticket_difficulty
from miner.drivers.kit.bits import reverse_words
from miner.drivers.kit.crc import crc5

BM1384_REPLY = 5
BM1384_JOB = 64
BM1384_CODES = {CMD_SET_ADDRESS: 1, CMD_WRITE: 2, CMD_READ: 4, CMD_INACTIVE: 5}
BM1384_BROADCAST = 0x80
# Work ids: cgminer's gekko driver cycles job_id = (job_id + 1) % 0x1F, i.e. 0..30 including 0
# (driver-gekko.c, compac_scanwork; max_job_id 0x1f in compac_detect_one), the same ring as the
# Antminer sticks in driver-icarus.c; bfgminer's compac driver (driver-antminer.c, the Icarus code)
# sends 0. The reply echoes the id in its low 5 bits (cgminer: rx[4] ^ 0x80). docs/bm13xx.md §2.4.
BM1384_JOB_ID_MASK = 0x1F


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
        if not 0 <= self.job_id <= BM1384_JOB_ID_MASK or not 0 <= self.ticket <= 0xFF:
            raise ValueError("bm1384 job: job id is 0..31, ticket one byte")

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
        out = reverse_words(self.midstate) + bytes(7) + bytes([self.ticket]) + struct.pack(">I", self.hcn)
        out += bytes(7) + bytes([self.job_id]) + struct.pack("<II", self.nbits, self.ntime) + self.merkle_tail
        return out


def decode_bm1384_job(frame: bytes) -> Bm1384Job:
    if not looks_like_bm1384_job(frame):
        raise ValueError(f"bm1384 job: not a 64-byte work block ({len(frame)} bytes)")
    nbits, ntime = struct.unpack_from("<II", frame, 52)
    return Bm1384Job(frame[51], nbits, ntime, frame[60:64], reverse_words(frame[:32]), frame[39],
                     struct.unpack_from(">I", frame, 40)[0])


def looks_like_bm1384_job(frame: bytes) -> bool:
    """The work block has no header or CRC; its zero bytes and job id range tell it from commands."""
    return (len(frame) == BM1384_JOB and not any(frame[32:39]) and not any(frame[44:51])
            and frame[51] <= BM1384_JOB_ID_MASK)


def bm1384_ticket(difficulty: int) -> int:
    return min(256, ticket_difficulty(difficulty)) - 1


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
        if last & 0x7F > BM1384_JOB_ID_MASK:
            raise ValueError(f"bm1384 reply: job id {last & 0x7F:#x} outside 0..31")
        return NonceReply(struct.unpack_from("<I", frame)[0], last & 0x7F)
    if last & 0xE0 or crc5(frame, 35) != last:
        raise ValueError(f"bm1384 reply: CRC-5 mismatch in {frame.hex(' ')}")
    value = struct.unpack_from(">I", frame)[0]
    return RegisterReply(value, 0, REG_CHIP_ID if value >> 24 == 0x13 else REG_BM1384_PLL)


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


class Bm1384Framing(Framing):
    name = "bm1384"
    legacy = True
    ticket_in_job = True

    def encode_command(self, command: Command) -> bytes:
        return encode_bm1384_command(command)

    def decode_command(self, frame: bytes) -> Command:
        return decode_bm1384_command(frame)

    def encode_midstate_job(self, job: MidstateJob, ticket: int = 1, hcn: int = 0) -> bytes:
        """The work block takes one midstate, and the ticket mask rides in it (not in a register)."""
        if len(job.midstates) != 1:
            raise ValueError(f"bm1384 job: one midstate, got {len(job.midstates)}")
        return Bm1384Job(job.job_id, job.nbits, job.ntime, job.merkle_tail, job.midstates[0], bm1384_ticket(ticket),
                         hcn).encode()

    def encode_reply(self, reply: Reply, long: bool = False) -> bytes:
        return encode_bm1384_reply(reply)

    def reply_parser(self, long: bool = False) -> LegacyReplyParser:
        return LegacyReplyParser(BM1384_REPLY, decode_bm1384_reply)

    def command_parser(self, header_jobs: bool = False) -> Bm1384CommandParser:
        return Bm1384CommandParser()


FRAMING_BM1384 = Bm1384Framing()
