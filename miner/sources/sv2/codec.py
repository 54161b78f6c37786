"""The Stratum V2 binary codec, sans-I/O, shared by the client and the test pool (docs/sv2.md §4):
the frame header (sv2-spec 03-Protocol-Overview.md §3.2), the little-endian data types (§3.1)
and the Common and Mining protocol messages (05-Mining-Protocol.md, 08-Message-Types.md).

Each message is a frozen dataclass whose fields are listed, in wire order, with their data type
in `FIELDS`; one generic encoder and decoder walk that list, so a message's layout is written
once. The channel_msg bit of each message type is SRI's (stratum-mining/stratum,
protocols/v2/subprotocols/mining/src/lib.rs, CHANNEL_BIT_*): it differs from the spec's table
for NewMiningJob, which SRI sends with the bit set. Decoding never trusts a length: every read is
bounds-checked and a frame whose payload is not exactly one message is refused (`CodecError`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from typing import ClassVar

HEADER_SIZE = 6
CHANNEL_BIT = 0x8000  # the top bit of extension_type: the message is for a channel
EXTENSION_NONE = 0x0000
EXTENSION_NEGOTIATION = 0x0001  # extensions/0x0001-extensions-negotiation.md
MINING_PROTOCOL = 0  # SetupConnection.protocol (03-Protocol-Overview.md §3.4)
PROTOCOL_VERSION = 2  # min_version = max_version = 2, as SRI and ESP-Miner send

# SetupConnection.flags for the Mining protocol (05-Mining-Protocol.md §5.3.1)
REQUIRES_STANDARD_JOBS = 1 << 0
REQUIRES_WORK_SELECTION = 1 << 1
REQUIRES_VERSION_ROLLING = 1 << 2
# SetupConnection.Success.flags
REQUIRES_FIXED_VERSION = 1 << 0
REQUIRES_EXTENDED_CHANNELS = 1 << 1


class CodecError(ValueError):
    """Bytes that are no valid message."""


# ------------------------------------------------------------------------------------ data types
class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise CodecError(f"message ends {self.pos + n - len(self.data)} byte(s) early")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self, size: int) -> int:
        return int.from_bytes(self.take(size), "little")


def _read(kind: str, r: Reader) -> object:
    match kind:
        case "U8" | "U16" | "U24" | "U32" | "U64":
            return r.int({"U8": 1, "U16": 2, "U24": 3, "U32": 4, "U64": 8}[kind])
        case "BOOL":
            value = r.int(1)
            if value > 1:
                raise CodecError(f"BOOL must be 0 or 1, got {value}")
            return bool(value)
        case "F32":
            return struct.unpack("<f", r.take(4))[0]
        case "U256":
            return r.take(32)
        case "STR0_255":
            raw = r.take(r.int(1))
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                return raw.decode("latin-1")  # "unconstrained sequence of bytes": shown, never refused
        case "B0_32":
            n = r.int(1)
            if n > 32:
                raise CodecError(f"B0_32 of {n} bytes")
            return r.take(n)
        case "B0_255":
            return r.take(r.int(1))
        case "B0_64K":
            return r.take(r.int(2))
        case "SEQ0_255[U256]":
            return tuple(r.take(32) for _ in range(r.int(1)))
        case "SEQ0_64K[U32]":
            return tuple(r.int(4) for _ in range(r.int(2)))
        case "SEQ0_64K[U16]":
            return tuple(r.int(2) for _ in range(r.int(2)))
        case "OPTION[U32]":
            # SRI's Sv2Option is a Seq0_1: a one-byte count (0 or 1), then the value
            n = r.int(1)
            if n > 1:
                raise CodecError(f"OPTION with {n} elements")
            return r.int(4) if n else None
    raise AssertionError(kind)


def _write(kind: str, value: object) -> bytes:
    match kind:
        case "U8" | "U16" | "U24" | "U32" | "U64":
            size = {"U8": 1, "U16": 2, "U24": 3, "U32": 4, "U64": 8}[kind]
            assert isinstance(value, int)
            return value.to_bytes(size, "little")
        case "BOOL":
            return b"\x01" if value else b"\x00"
        case "F32":
            return struct.pack("<f", value)
        case "U256":
            assert isinstance(value, bytes) and len(value) == 32, "U256 is 32 bytes"
            return value
        case "STR0_255":
            assert isinstance(value, str)
            raw = value.encode("utf-8")
            if len(raw) > 255:
                raise CodecError(f"STR0_255 of {len(raw)} bytes")
            return bytes([len(raw)]) + raw
        case "B0_32" | "B0_255" | "B0_64K":
            assert isinstance(value, bytes)
            limit, size = {"B0_32": (32, 1), "B0_255": (255, 1), "B0_64K": (65535, 2)}[kind]
            if len(value) > limit:
                raise CodecError(f"{kind} of {len(value)} bytes")
            return len(value).to_bytes(size, "little") + value
        case "SEQ0_255[U256]":
            assert isinstance(value, tuple) and len(value) <= 255
            return bytes([len(value)]) + b"".join(value)
        case "SEQ0_64K[U32]" | "SEQ0_64K[U16]":
            assert isinstance(value, tuple) and len(value) <= 65535
            width = 4 if kind.endswith("U32]") else 2
            return len(value).to_bytes(2, "little") + b"".join(v.to_bytes(width, "little") for v in value)
        case "OPTION[U32]":
            return b"\x00" if value is None else b"\x01" + value.to_bytes(4, "little")  # type: ignore[union-attr]
    raise AssertionError(kind)


# ------------------------------------------------------------------------------------ messages
class Message:
    MSG_TYPE: ClassVar[int]
    CHANNEL: ClassVar[bool] = False
    EXTENSION: ClassVar[int] = EXTENSION_NONE
    FIELDS: ClassVar[tuple[str, ...]]  # data types, in the dataclass's field order

    def encode_payload(self) -> bytes:
        return b"".join(_write(kind, getattr(self, f.name)) for kind, f in zip(self.FIELDS, fields(self), strict=True))  # type: ignore[arg-type]

    @classmethod
    def decode_payload(cls, payload: bytes) -> Message:
        r = Reader(payload)
        values = [_read(kind, r) for kind in cls.FIELDS]
        if r.pos != len(payload):
            raise CodecError(f"{cls.__name__}: {len(payload) - r.pos} byte(s) after the message")
        return cls(*values)  # type: ignore[call-arg]


def _message(msg_type: int, channel: bool, *kinds: str):
    def wrap(cls):
        cls = dataclass(frozen=True)(cls)
        cls.MSG_TYPE, cls.CHANNEL, cls.FIELDS = msg_type, channel, kinds
        assert len(fields(cls)) == len(kinds), cls
        MESSAGES[(cls.EXTENSION, msg_type)] = cls
        return cls
    return wrap


MESSAGES: dict[tuple[int, int], type[Message]] = {}


# --- common messages (03-Protocol-Overview.md §3.4-3.6)
@_message(0x00, False, "U8", "U16", "U16", "U32", "STR0_255", "U16", "STR0_255", "STR0_255", "STR0_255", "STR0_255")
class SetupConnection(Message):
    protocol: int
    min_version: int
    max_version: int
    flags: int
    endpoint_host: str
    endpoint_port: int
    vendor: str
    hardware_version: str
    firmware: str
    device_id: str


@_message(0x01, False, "U16", "U32")
class SetupConnectionSuccess(Message):
    used_version: int
    flags: int


@_message(0x02, False, "U32", "STR0_255")
class SetupConnectionError(Message):
    flags: int
    error_code: str


@_message(0x03, True, "U32")
class ChannelEndpointChanged(Message):
    channel_id: int


@_message(0x04, False, "STR0_255", "U16")
class Reconnect(Message):
    new_host: str
    new_port: int


# --- mining protocol (05-Mining-Protocol.md §5.3)
@_message(0x10, False, "U32", "STR0_255", "F32", "U256")
class OpenStandardMiningChannel(Message):
    request_id: int
    user_identity: str
    nominal_hash_rate: float
    max_target: bytes


@_message(0x11, False, "U32", "U32", "U256", "B0_32", "U32")
class OpenStandardMiningChannelSuccess(Message):
    request_id: int
    channel_id: int
    target: bytes
    extranonce_prefix: bytes
    group_channel_id: int


@_message(0x12, False, "U32", "STR0_255")
class OpenMiningChannelError(Message):
    request_id: int
    error_code: str


@_message(0x13, False, "U32", "STR0_255", "F32", "U256", "U16")
class OpenExtendedMiningChannel(Message):
    request_id: int
    user_identity: str
    nominal_hash_rate: float
    max_target: bytes
    min_extranonce_size: int


@_message(0x14, False, "U32", "U32", "U256", "U16", "B0_32", "U32")
class OpenExtendedMiningChannelSuccess(Message):
    request_id: int
    channel_id: int
    target: bytes
    extranonce_size: int
    extranonce_prefix: bytes
    group_channel_id: int


@_message(0x15, True, "U32", "U32", "OPTION[U32]", "U32", "U256")
class NewMiningJob(Message):
    channel_id: int
    job_id: int
    min_ntime: int | None
    version: int
    merkle_root: bytes


@_message(0x16, True, "U32", "F32", "U256")
class UpdateChannel(Message):
    channel_id: int
    nominal_hash_rate: float
    maximum_target: bytes


@_message(0x17, True, "U32", "STR0_255")
class UpdateChannelError(Message):
    channel_id: int
    error_code: str


@_message(0x18, True, "U32", "STR0_255")
class CloseChannel(Message):
    channel_id: int
    reason_code: str


@_message(0x19, True, "U32", "B0_32")
class SetExtranoncePrefix(Message):
    channel_id: int
    extranonce_prefix: bytes


@_message(0x1A, True, "U32", "U32", "U32", "U32", "U32", "U32")
class SubmitSharesStandard(Message):
    channel_id: int
    sequence_number: int
    job_id: int
    nonce: int
    ntime: int
    version: int


@_message(0x1B, True, "U32", "U32", "U32", "U32", "U32", "U32", "B0_32")
class SubmitSharesExtended(Message):
    channel_id: int
    sequence_number: int
    job_id: int
    nonce: int
    ntime: int
    version: int
    extranonce: bytes


@_message(0x1C, True, "U32", "U32", "U32", "U64")
class SubmitSharesSuccess(Message):
    channel_id: int
    last_sequence_number: int
    new_submits_accepted_count: int
    new_shares_sum: int


@_message(0x1D, True, "U32", "U32", "STR0_255")
class SubmitSharesError(Message):
    channel_id: int
    sequence_number: int
    error_code: str


@_message(0x1F, True, "U32", "U32", "OPTION[U32]", "U32", "BOOL", "SEQ0_255[U256]", "B0_64K", "B0_64K")
class NewExtendedMiningJob(Message):
    channel_id: int
    job_id: int
    min_ntime: int | None
    version: int
    version_rolling_allowed: bool
    merkle_path: tuple[bytes, ...]
    coinbase_tx_prefix: bytes
    coinbase_tx_suffix: bytes


@_message(0x20, True, "U32", "U32", "U256", "U32", "U32")
class SetNewPrevHash(Message):
    channel_id: int
    job_id: int
    prev_hash: bytes
    min_ntime: int
    nbits: int


@_message(0x21, True, "U32", "U256")
class SetTarget(Message):
    channel_id: int
    maximum_target: bytes


@_message(0x25, False, "U32", "SEQ0_64K[U32]")
class SetGroupChannel(Message):
    group_channel_id: int
    channel_ids: tuple[int, ...]


# --- extension 0x0001, Extensions Negotiation (extensions/0x0001-extensions-negotiation.md §2, §3):
# extension_type 0x0001 in the frame header, channel bit 0; docs/sv2.md §9
class _Negotiation(Message):
    EXTENSION = EXTENSION_NEGOTIATION


@_message(0x00, False, "U16", "SEQ0_64K[U16]")
class RequestExtensions(_Negotiation):
    request_id: int
    requested_extensions: tuple[int, ...]


@_message(0x01, False, "U16", "SEQ0_64K[U16]")
class RequestExtensionsSuccess(_Negotiation):
    request_id: int
    supported_extensions: tuple[int, ...]


@_message(0x02, False, "U16", "SEQ0_64K[U16]", "SEQ0_64K[U16]")
class RequestExtensionsError(_Negotiation):
    request_id: int
    unsupported_extensions: tuple[int, ...]
    required_extensions: tuple[int, ...]


# ------------------------------------------------------------------------------------ frames
@dataclass(frozen=True)
class Header:
    extension_type: int  # without the channel bit
    channel: bool
    msg_type: int
    length: int


def encode_header(extension: int, channel: bool, msg_type: int, length: int) -> bytes:
    if length >= 1 << 24:
        raise CodecError(f"payload of {length} bytes does not fit U24")
    ext = extension | (CHANNEL_BIT if channel else 0)
    return struct.pack("<HB", ext, msg_type) + length.to_bytes(3, "little")


def decode_header(data: bytes) -> Header:
    if len(data) < HEADER_SIZE:
        raise CodecError("a frame header is 6 bytes")
    ext, msg_type = struct.unpack_from("<HB", data)
    return Header(ext & ~CHANNEL_BIT, bool(ext & CHANNEL_BIT), msg_type, int.from_bytes(data[3:6], "little"))


def encode_frame(message: Message) -> bytes:
    payload = message.encode_payload()
    return encode_header(message.EXTENSION, message.CHANNEL, message.MSG_TYPE, len(payload)) + payload


@dataclass(frozen=True)
class UnknownMessage:
    """A frame of a type we do not speak (an extension, another subprotocol): skipped, not fatal."""

    header: Header
    payload: bytes


def decode_frame(frame: bytes) -> Message | UnknownMessage:
    """A whole plaintext frame (header and payload, as `NoiseTransport` gives it) into its message."""
    header = decode_header(frame)
    payload = frame[HEADER_SIZE:]
    if len(payload) != header.length:
        raise CodecError(f"frame says {header.length} payload bytes, has {len(payload)}")
    cls = MESSAGES.get((header.extension_type, header.msg_type))
    if cls is None:
        return UnknownMessage(header, payload)
    return cls.decode_payload(payload)


# ------------------------------------------------------------------------------------ targets
def target_from_u256(raw: bytes) -> int:
    """U256 targets are little-endian 32-byte integers (SetTarget, the channel openings)."""
    return int.from_bytes(raw, "little")


def u256_from_target(target: int) -> bytes:
    return target.to_bytes(32, "little")
