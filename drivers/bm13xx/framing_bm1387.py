"""The BM1387 framing (NewPac, R606; docs/bm13xx.md §2.4, from cgminer's driver-gekko.c only
[1 src]): the BM1397 frames minus their 55 AA / AA 55 preamble, with other command codes. LEN
counts the whole frame; a reply is 7 bytes, its CRC-5 over the first 51 bits."""

from __future__ import annotations

import struct
from collections.abc import Iterator

from miner.drivers.bm13xx.framing import Framing
from miner.drivers.bm13xx.framing_55aa import ALL, REPLY_NONCE, TYPE_CMD, encode_reply
from miner.drivers.bm13xx.framing_legacy import LegacyReplyParser
from miner.drivers.bm13xx.jobs import PREAMBLE, MidstateJob, decode_midstate_job
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
from miner.drivers.kit.crc import crc5
from miner.drivers.kit.crc import crc16_ccitt_false as crc16

BM1387_JOB_HDR = 0x21
BM1387_REPLY = 7
BM1387_CODES = {CMD_SET_ADDRESS: 1, CMD_READ: 4, CMD_INACTIVE: 5, CMD_WRITE: 8}


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


class Bm1387Framing(Framing):
    name = "bm1387"
    legacy = True

    def encode_command(self, command: Command) -> bytes:
        return encode_bm1387_command(command)

    def decode_command(self, frame: bytes) -> Command:
        return decode_bm1387_command(frame)

    def encode_midstate_job(self, job: MidstateJob, ticket: int = 1, hcn: int = 0) -> bytes:
        return encode_bm1387_job(job)

    def encode_reply(self, reply: Reply, long: bool = False) -> bytes:
        return encode_reply(reply)[2:]  # the BM1397 reply minus AA 55 (§2.4)

    def reply_parser(self, long: bool = False) -> LegacyReplyParser:
        return LegacyReplyParser(BM1387_REPLY, decode_bm1387_reply)

    def command_parser(self, header_jobs: bool = False) -> Bm1387CommandParser:
        return Bm1387CommandParser()


FRAMING_BM1387 = Bm1387Framing()
