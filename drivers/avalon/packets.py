"""The 40-byte MM packet every Canaan Avalon speaks (docs/avalon.md §B2, §B3): 'C' 'N', type, opt,
idx, cnt, 32 data bytes, CRC-16/XMODEM of the data. Hosts write the CRC high byte first; Avalon4/4.1/6
modules answer low byte first. Also the packets every generation shares: DETECT / ACKDETECT and
POLLING. Multi-byte fields inside `data` are big-endian unless a comment says otherwise."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from typing import ClassVar, Self

from miner.drivers.kit.crc import crc16_xmodem

HEAD = b"CN"
PACKET_SIZE = 40
DATA_SIZE = 32


class Family(enum.Enum):
    AVALONM = "avalonm"  # nano 2.0, Avalon4 mini: midstate work over USB HID
    AVALON4 = "avalon4"  # Avalon4/4.1/6 MM 4.x modules behind an AUC
    AVALON7 = "avalon7"
    AVALON8 = "avalon8"

    @property
    def reply_crc_little_endian(self) -> bool:
        """Avalon4/4.1/6 firmware writes its reply CRC low byte first; every other one high first."""
        return self is Family.AVALON4

    @property
    def stratum(self) -> bool:
        return self is not Family.AVALONM


class PacketError(ValueError):
    """Bytes that are not a valid MM packet (bad header, length or CRC)."""


# ------------------------------------------------------------------------------------ type codes
DETECT = 0x10
STATIC = 0x11
JOB_ID = 0x12
COINBASE = 0x13
MERKLES = 0x14
HEADER = 0x15
TARGET = 0x16
JOB_FIN = 0x17  # Avalon7/8
SET = 0x20
FINISH = 0x21  # Avalon4; SET_FIN on Avalon7/8
SET_FIN = 0x21
SET_VOLT = 0x22
SET_FREQ = 0x23  # avalonm, Avalon4
WORK = 0x24  # avalonm
SET_PMU = 0x24  # Avalon7/8
SETM = 0x25  # avalonm (SPI speed)
SET_PLL = 0x25  # Avalon7/8
SET_SS = 0x26
SET_FAC = 0x28
SET_OC = 0x29
POLLING = 0x30
REQUIRE = 0x31  # avalonm, Avalon4
SYNC = 0x31  # Avalon7/8
TEST = 0x32
GET_FREQ = 0x33  # avalonm
RSTMMTX = 0x33  # Avalon4/7/8
GET_VOLT = 0x34
ACKDETECT = 0x40
STATUS = 0x41  # STATUS_M on avalonm
NONCE = 0x42  # NONCE_M on avalonm
TEST_RET = 0x43
STATUS_FREQ = 0x44  # avalonm
STATUS_LW = 0x44  # Avalon4
STATUS_HW = 0x45  # Avalon4
STATUS_VOLT = 0x46
STATUS_MA = 0x47  # Avalon4 (MM50/60)
STATUS_ADC = 0x48  # Avalon4 "STATUS_M"
STATUS_PMU = 0x48  # Avalon7/8
STATUS_PLL = 0x49
STATUS_LOG = 0x4A
STATUS_ASIC = 0x4B
STATUS_PVT = 0x4C
STATUS_FAC = 0x4D
STATUS_OC = 0x4E  # Avalon8
STATUS_OTP = 0x4F
SET_ASIC_OTP = 0x50

_COMMON = {DETECT: "DETECT", POLLING: "POLLING", TEST: "TEST", ACKDETECT: "ACKDETECT", STATUS: "STATUS",
           NONCE: "NONCE", TEST_RET: "TEST_RET", SET_VOLT: "SET_VOLT"}
_STRATUM = {STATIC: "STATIC", JOB_ID: "JOB_ID", COINBASE: "COINBASE", MERKLES: "MERKLES", HEADER: "HEADER",
            TARGET: "TARGET", SET: "SET", RSTMMTX: "RSTMMTX", GET_VOLT: "GET_VOLT", STATUS_VOLT: "STATUS_VOLT"}
_AV78 = {**_COMMON, **_STRATUM, JOB_FIN: "JOB_FIN", SET_FIN: "SET_FIN", SET_PMU: "SET_PMU", SET_PLL: "SET_PLL",
         SET_SS: "SET_SS", SET_FAC: "SET_FAC", SYNC: "SYNC", STATUS_PMU: "STATUS_PMU", STATUS_PLL: "STATUS_PLL",
         STATUS_LOG: "STATUS_LOG", STATUS_ASIC: "STATUS_ASIC", STATUS_PVT: "STATUS_PVT", STATUS_FAC: "STATUS_FAC"}
TYPE_NAMES: dict[Family, dict[int, str]] = {
    Family.AVALONM: {**_COMMON, SET_FREQ: "SET_FREQ", WORK: "WORK", SETM: "SETM", REQUIRE: "REQUIRE",
                     GET_FREQ: "GET_FREQ", STATUS: "STATUS_M", NONCE: "NONCE_M", STATUS_FREQ: "STATUS_FREQ"},
    Family.AVALON4: {**_COMMON, **_STRATUM, FINISH: "FINISH", SET_FREQ: "SET_FREQ", REQUIRE: "REQUIRE",
                     STATUS_LW: "STATUS_LW", STATUS_HW: "STATUS_HW", STATUS_MA: "STATUS_MA", STATUS_ADC: "STATUS_M"},
    Family.AVALON7: _AV78,
    Family.AVALON8: {**_AV78, SET_OC: "SET_OC", STATUS_OC: "STATUS_OC", STATUS_OTP: "STATUS_OTP",
                     SET_ASIC_OTP: "SET_ASIC_OTP"},
}


def type_name(family: Family, code: int) -> str:
    return TYPE_NAMES[family].get(code, f"0x{code:02x}")


def job_id_crc(job_id: str) -> int:
    """What JOB_ID and NONCE packets carry instead of the job id string."""
    return crc16_xmodem(job_id.encode())


# ------------------------------------------------------------------------------------ the packet
@dataclass(frozen=True, slots=True)
class Packet:
    type: int
    data: bytes = bytes(DATA_SIZE)  # shorter data is zero-padded to 32 bytes
    opt: int = 0
    idx: int = 1
    cnt: int = 1

    def __post_init__(self) -> None:
        if len(self.data) > DATA_SIZE:
            raise ValueError(f"packet data: at most {DATA_SIZE} bytes, got {len(self.data)}")
        if len(self.data) < DATA_SIZE:
            object.__setattr__(self, "data", bytes(self.data) + bytes(DATA_SIZE - len(self.data)))
        for name in ("type", "opt", "idx", "cnt"):
            if not 0 <= getattr(self, name) <= 0xFF:
                raise ValueError(f"packet {name}: not a byte: {getattr(self, name)!r}")

    def encode(self, crc_little_endian: bool = False) -> bytes:
        crc = crc16_xmodem(self.data)
        order = "little" if crc_little_endian else "big"
        return HEAD + bytes((self.type, self.opt, self.idx, self.cnt)) + self.data + crc.to_bytes(2, order)

    def word(self, offset: int) -> int:
        """The big-endian 32-bit field at data[offset]."""
        return int.from_bytes(self.data[offset : offset + 4], "big")


def decode_packet(raw: bytes, crc_little_endian: bool = False) -> Packet:
    if len(raw) != PACKET_SIZE:
        raise PacketError(f"MM packet: need {PACKET_SIZE} bytes, got {len(raw)}")
    if raw[:2] != HEAD:
        raise PacketError(f"MM packet: header {raw[:2].hex()} is not 434e ('CN')")
    data = raw[6:38]
    got = int.from_bytes(raw[38:40], "little" if crc_little_endian else "big")
    want = crc16_xmodem(data)
    if got != want:
        raise PacketError(f"MM packet type 0x{raw[2]:02x}: CRC {got:04x}, expected {want:04x}")
    return Packet(raw[2], data, raw[3], raw[4], raw[5])


@dataclass(frozen=True, slots=True)
class BadBytes:
    """Bytes a stream reader skipped: not a packet, or a packet with a bad CRC."""

    raw: bytes
    reason: str


class PacketStream:
    """Back-to-back 40-byte packets from a byte stream (avalonm over a pty), resynchronising on
    'C' 'N' after garbage and dropping packets whose CRC fails, as the Canaan firmware does."""

    def __init__(self, crc_little_endian: bool = False):
        self._buffer = bytearray()
        self._crc_le = crc_little_endian

    def feed(self, data: bytes) -> Iterator[Packet | BadBytes]:
        self._buffer += data
        while True:
            start = self._buffer.find(HEAD)
            if start < 0:
                keep = 1 if self._buffer.endswith(HEAD[:1]) else 0
                if len(self._buffer) > keep:
                    yield BadBytes(bytes(self._buffer[: len(self._buffer) - keep]), "no 'CN' header")
                    del self._buffer[: len(self._buffer) - keep]
                return
            if start:
                yield BadBytes(bytes(self._buffer[:start]), "bytes before a 'CN' header")
                del self._buffer[:start]
            if len(self._buffer) < PACKET_SIZE:
                return
            raw = bytes(self._buffer[:PACKET_SIZE])
            try:
                packet = decode_packet(raw, self._crc_le)
            except PacketError as exc:
                # Skip just the header: the real packet may start inside what we took for one.
                del self._buffer[:2]
                yield BadBytes(raw[:2], str(exc))
                continue
            del self._buffer[:PACKET_SIZE]
            yield packet


def be32_words(*values: int) -> bytes:
    """Big-endian 32-bit fields, as most packet data is laid out."""
    return b"".join((v & 0xFFFFFFFF).to_bytes(4, "big") for v in values)


def expect_type(packet: Packet, *types: int) -> None:
    if packet.type not in types:
        names = "/".join(f"0x{t:02x}" for t in types)
        raise PacketError(f"MM packet: type 0x{packet.type:02x}, expected {names}")


class EightWords:
    """A frozen dataclass whose eight int fields are a packet's 32 data bytes, BE32 each, in field
    order (the STATUS replies of several generations). Subclasses set PACKET_TYPE."""

    __slots__ = ()
    PACKET_TYPE: ClassVar[int]

    def to_packet(self, opt: int = 0) -> Packet:
        return Packet(self.PACKET_TYPE, be32_words(*astuple(self)), opt)  # type: ignore[call-overload]

    @classmethod
    def from_packet(cls, packet: Packet) -> Self:
        expect_type(packet, cls.PACKET_TYPE)
        return cls(*(packet.word(i) for i in range(0, 32, 4)))


# ------------------------------------------------------------------------------------ detection, polling
@dataclass(frozen=True, slots=True)
class DetectAck:
    """ACKDETECT: the module's DNA, its 15-character version (the first characters name the
    model: "3U" nano 2.0, "4M" Avalon4 mini, "41"/"60" Avalon4/6, "721" Avalon7, "851" Avalon8)
    and its ASIC count."""

    dna: bytes
    version: str
    asic_count: int

    def to_packet(self) -> Packet:
        if len(self.dna) != 8:
            raise ValueError("DNA: 8 bytes")
        version = self.version.encode("ascii")[:15].ljust(15, b"\0")
        return Packet(ACKDETECT, self.dna + version + self.asic_count.to_bytes(4, "big"))

    @classmethod
    def from_packet(cls, packet: Packet) -> DetectAck:
        expect_type(packet, ACKDETECT)
        version = packet.data[8:23].split(b"\0", 1)[0].decode("ascii", "replace")
        return cls(packet.data[:8], version, packet.word(23))


def detect_packet(family: Family, module_id: int = 0, freq_min: int = 100, freq_max: int = 1000,
                  ntc_b: int = 3450) -> Packet:
    """DETECT: all zero on avalonm; the id to adopt in data[28..31] on the MM modules (Avalon4
    adds its frequency limits and NTC B value)."""
    if family is Family.AVALONM:
        return Packet(DETECT)
    if family is Family.AVALON4:
        limits = be32_words(freq_min, freq_max) + ntc_b.to_bytes(2, "big")
        return Packet(DETECT, limits + bytes(18) + be32_words(module_id))
    return Packet(DETECT, bytes(28) + be32_words(module_id))


def detect_module_id(packet: Packet) -> int:
    expect_type(packet, DETECT)
    return packet.word(28)


def polling_packet(led: int = 0, fan_pwm: int | None = None, reboot: bool = False) -> Packet:
    """POLLING (avalonm: all zero). fan_pwm is set when the host adjusts the fan."""
    fan = 0 if fan_pwm is None else (fan_pwm | 0x80000000)
    return Packet(POLLING, be32_words(led, fan) + bytes((1 if reboot else 0,)))
