"""The AUC, Canaan's USB-to-I2C converter in front of Avalon4/6/7/8 modules (docs/avalon.md §B5,
§B10.4): the 64-byte request frames (reset, init, transfer, info) and their replies. An XFER
carries one MM packet (packets.py) to a module's I2C address and brings one back."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from miner.drivers.avalon.packets import BadBytes, PacketError

AUC_RESET = 0xA0
AUC_INIT = 0xA1
AUC_DEINIT = 0xA2
AUC_XFER = 0xA5
AUC_INFO = 0xA6
AUC_REQUESTS = {AUC_RESET: "RESET", AUC_INIT: "INIT", AUC_DEINIT: "DEINIT", AUC_XFER: "XFER", AUC_INFO: "INFO"}
AUC_FRAME = 64  # every request but XFER is written as a padded 64-byte frame
AUC_VERSION_LEN = 12
AUC_INFO_LEN = 7
AUC_DEFAULT_CLOCK = 400_000
AUC_DEFAULT_XDELAY = 19_200  # 4800 = about 1 ms
BROADCAST = 0

AUC_OK = 0
AUC_STATUS = {0: "ok", 1: "error", 2: "NAK", 3: "bus error", 4: "slave NAK", 5: "arbitration lost",
              0x10: "timeout", 0x11: "invalid command", 0x12: "invalid parameter", 0x13: "partial"}
AUC_SLAVE_NAK = 4


def auc_command(request: int) -> bytes:
    """RESET, DEINIT or INFO: a 4-byte request padded to 64 bytes."""
    return bytes((4, 0, 0, request)).ljust(AUC_FRAME, b"\0")


def auc_init(clock: int = AUC_DEFAULT_CLOCK, xdelay: int = AUC_DEFAULT_XDELAY) -> bytes:
    return (bytes((12, 0, 0, AUC_INIT)) + struct.pack("<II", clock, xdelay)).ljust(AUC_FRAME, b"\0")


def auc_xfer(address: int, packet: bytes, rx: int) -> bytes:
    """An I2C transfer: `packet` to module `address` (0 = broadcast), then read `rx` bytes."""
    if not 0 <= address <= 0x7F or not 0 <= rx <= 60 or len(packet) > 56:
        raise ValueError(f"AUC XFER: bad address {address}, rx {rx} or length {len(packet)}")
    return bytes((8 + len(packet), 0, 0, AUC_XFER, len(packet), rx, 0, address)) + packet


@dataclass(frozen=True, slots=True)
class AucRequest:
    request: int
    address: int = 0
    rx: int = 0
    payload: bytes = b""  # XFER: the bytes for the I2C slave
    clock: int = 0  # INIT
    xdelay: int = 0  # INIT

    def encode(self) -> bytes:
        if self.request == AUC_XFER:
            return auc_xfer(self.address, self.payload, self.rx)
        if self.request == AUC_INIT:
            return auc_init(self.clock, self.xdelay)
        return auc_command(self.request)


def parse_auc_request(buffer: bytes) -> tuple[AucRequest | BadBytes | None, int]:
    """The first request in `buffer` and how many bytes it used; (None, 0) when incomplete.

    Framing is by the length byte for XFER (the host writes only `length` bytes) and 64 bytes for
    every other request (the host pads them). Anything else is skipped a byte at a time."""
    if len(buffer) < 4:
        return None, 0
    length, request = buffer[0], buffer[3]
    if request not in AUC_REQUESTS or not 4 <= length <= AUC_FRAME:
        return BadBytes(bytes(buffer[:1]), "not an AUC request"), 1
    size = length if request == AUC_XFER else AUC_FRAME
    if len(buffer) < size:
        return None, 0
    frame = bytes(buffer[:size])
    if request == AUC_XFER:
        if length < 8 or frame[4] != length - 8:
            return BadBytes(frame[:1], "AUC XFER with inconsistent sizes"), 1
        return AucRequest(AUC_XFER, frame[7], frame[5], frame[8:length]), size
    if request == AUC_INIT:
        clock, xdelay = struct.unpack_from("<II", frame, 4)
        return AucRequest(AUC_INIT, clock=clock, xdelay=xdelay), size
    return AucRequest(request), size


def auc_reply(payload: bytes = b"", status: int = AUC_OK) -> bytes:
    return bytes((4 + len(payload), 0, 0, status)) + payload


@dataclass(frozen=True, slots=True)
class AucReply:
    status: int
    payload: bytes

    @property
    def ok(self) -> bool:
        return self.status == AUC_OK


def parse_auc_reply(frame: bytes) -> AucReply:
    if len(frame) < 4 or frame[0] != len(frame):
        raise PacketError(f"AUC reply: length byte {frame[:1].hex() or 'missing'} but {len(frame)} bytes")
    return AucReply(frame[3], frame[4:])


def auc_version(reply: AucReply) -> str:
    """The converter's version string, e.g. 'AUC-20151208'; anything else is not an AUC."""
    text = reply.payload[:AUC_VERSION_LEN].decode("ascii", "replace")
    if not reply.ok or not text.startswith("AUC-"):
        raise PacketError(f"AUC INIT: answered {reply.payload[:AUC_VERSION_LEN]!r}, not an 'AUC-' version")
    return text


@dataclass(frozen=True, slots=True)
class AucInfo:
    temp_adc: int
    requests: int
    responses: int
    tx_flags: int
    state: int

    def encode(self) -> bytes:
        return struct.pack("<HBBHB", self.temp_adc, self.requests, self.responses, self.tx_flags, self.state)

    @classmethod
    def decode(cls, payload: bytes) -> AucInfo:
        if len(payload) < AUC_INFO_LEN:
            raise PacketError(f"AUC INFO: need {AUC_INFO_LEN} bytes, got {len(payload)}")
        return cls(*struct.unpack_from("<HBBHB", payload))
