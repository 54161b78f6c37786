"""The 55 AA framing of BM1397, BM1366, BM1368 and BM1370 (docs/bm13xx.md §2.1-§2.3): command
frames, replies, and the parsers that resynchronise on a preamble. The job frames are in jobs.py.

Host → chip:  55 AA | HDR | LEN | data | CRC5 (commands) or CRC16 hi lo (jobs)
Chip → host:  AA 55 | value/nonce (4) | b6 | b7 | [2 bytes once version rolling is on] | TYPE|CRC5
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from miner.drivers.bm13xx.framing import Framing
from miner.drivers.bm13xx.jobs import (
    HEADER_JOB_FRAME,
    JOB_HDR,
    PREAMBLE,
    HeaderJob,
    MidstateJob,
    decode_header_job,
    decode_midstate_job,
)
from miner.drivers.bm13xx.messages import (
    BadFrame,
    Command,
    NonceReply,
    RegisterReply,
    Reply,
)
from miner.drivers.kit.crc import crc5

REPLY_PREAMBLE = b"\xaa\x55"


# HDR bits (§2.1): TYPE in bits 7..5, ALL in bit 4, CMD in bits 3..0 (TYPE_JOB: jobs.py).
TYPE_CMD = 0x40
ALL = 0x10
REPLY_NONCE = 0x80  # TYPE bits of a reply's last byte: nonce (else register value)


SHORT_REPLY = 9
LONG_REPLY = 11  # BM1366+ once version rolling is enabled in 0xA4
COMMAND_SHORT = 7  # LEN 5
COMMAND_LONG = 11  # LEN 9


# ------------------------------------------------------------------------------------ commands
def encode_command(command: Command) -> bytes:
    """55 AA HDR LEN data CRC5, LEN counting HDR to CRC (§2.1)."""
    hdr = TYPE_CMD | (ALL if command.broadcast else 0) | command.cmd
    data = bytes([0 if command.broadcast else command.chip, command.reg])
    if command.value is not None:
        data += struct.pack(">I", command.value)
    body = bytes([hdr, len(data) + 3]) + data
    return PREAMBLE + body + bytes([crc5(body)])


def decode_command(frame: bytes) -> Command:
    if frame[:2] != PREAMBLE or len(frame) not in (COMMAND_SHORT, COMMAND_LONG) or frame[3] != len(frame) - 2:
        raise ValueError(f"command: bad frame {frame.hex(' ')}")
    if crc5(frame[2:-1]) != frame[-1]:
        raise ValueError(f"command: CRC-5 mismatch in {frame.hex(' ')}")
    hdr = frame[2]
    cmd, broadcast = hdr & 0x0F, bool(hdr & ALL)
    value = struct.unpack_from(">I", frame, 6)[0] if len(frame) == COMMAND_LONG else None
    return Command(cmd, broadcast, frame[4], frame[5], value)


# ------------------------------------------------------------------------------------ replies
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


class Framing55Aa(Framing):
    """BM1397 and newer: 55 AA / AA 55 preambles; replies grow by two bytes once version rolling is on."""

    name = "55aa"
    legacy = False

    def encode_command(self, command: Command) -> bytes:
        return encode_command(command)

    def decode_command(self, frame: bytes) -> Command:
        return decode_command(frame)

    def encode_midstate_job(self, job: MidstateJob, ticket: int = 1, hcn: int = 0) -> bytes:
        return job.encode()

    def encode_reply(self, reply: Reply, long: bool = False) -> bytes:
        return encode_reply(reply, long)

    def reply_parser(self, long: bool = False) -> ReplyParser:
        return ReplyParser(long)

    def command_parser(self, header_jobs: bool = False) -> CommandParser:
        return CommandParser(header_jobs)


FRAMING_55AA = Framing55Aa()
