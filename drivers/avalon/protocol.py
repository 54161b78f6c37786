"""Canaan Avalon wire formats, with no I/O (docs/avalon.md, part B).

* The 40-byte MM packet: 'C' 'N', type, opt, idx, cnt, 32 data bytes, CRC-16/XMODEM of the data.
  Hosts write the CRC high byte first; Avalon4/4.1/6 modules answer low byte first.
* The AUC (USB-to-I2C converter) frames that carry MM packets to Avalon4/6/7/8 modules.
* The two ways work reaches a device: midstate work (avalonm: nano 2.0, Avalon4 mini) and whole
  Stratum jobs (Avalon4/6/7/8), which the module turns into headers itself by rolling extranonce2.
* Nonce, status and configuration packets of each generation.

Multi-byte fields inside `data` are big-endian unless a comment says otherwise.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from miner.drivers.avalon import sha256
from miner.drivers.kit.bits import rev8
from miner.drivers.kit.crc import crc16_xmodem

from miner.core.targets import DIFF1_TARGET
from miner.core.work import merkle_root, swap_words

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


# ------------------------------------------------------------------------------------ CRC-16/XMODEM (kit.crc)
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


def _words(*values: int) -> bytes:
    return b"".join((v & 0xFFFFFFFF).to_bytes(4, "big") for v in values)


# ------------------------------------------------------------------------------------ AUC framing
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


# ------------------------------------------------------------------------------------ detection
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
        _expect(packet, ACKDETECT)
        version = packet.data[8:23].split(b"\0", 1)[0].decode("ascii", "replace")
        return cls(packet.data[:8], version, packet.word(23))


def detect_packet(family: Family, module_id: int = 0, freq_min: int = 100, freq_max: int = 1000,
                  ntc_b: int = 3450) -> Packet:
    """DETECT: all zero on avalonm; the id to adopt in data[28..31] on the MM modules (Avalon4
    adds its frequency limits and NTC B value)."""
    if family is Family.AVALONM:
        return Packet(DETECT)
    if family is Family.AVALON4:
        return Packet(DETECT, _words(freq_min, freq_max) + ntc_b.to_bytes(2, "big") + bytes(18) + _words(module_id))
    return Packet(DETECT, bytes(28) + _words(module_id))


def detect_module_id(packet: Packet) -> int:
    _expect(packet, DETECT)
    return packet.word(28)


def sync_packet(dna: bytes) -> Packet:
    """Avalon7/8: sent to a newly found module's address with its DNA."""
    return Packet(SYNC, dna[:8])


def polling_packet(led: int = 0, fan_pwm: int | None = None, reboot: bool = False) -> Packet:
    """POLLING (avalonm: all zero). fan_pwm is set when the host adjusts the fan."""
    fan = 0 if fan_pwm is None else (fan_pwm | 0x80000000)
    return Packet(POLLING, _words(led, fan) + bytes((1 if reboot else 0,)))


def _expect(packet: Packet, *types: int) -> None:
    if packet.type not in types:
        names = "/".join(f"0x{t:02x}" for t in types)
        raise PacketError(f"MM packet: type 0x{packet.type:02x}, expected {names}")


# ------------------------------------------------------------------------------------ Stratum jobs
HEADER_PADDING = bytes.fromhex("00000080") + bytes(40) + bytes.fromhex("80020000")
DIFFMAX = {Family.AVALON4: 1024, Family.AVALON7: 500, Family.AVALON8: 2700}
MAX_COINBASE_TAIL = 6208 - 64
MAX_MERKLES = 30


def header_bin(header80: bytes) -> bytes:
    """cgminer's 128-byte header_bin: the header with every word byte-swapped (the Stratum hex
    strings decoded verbatim), then SHA padding in the same word-swapped form."""
    if len(header80) != 80:
        raise ValueError("header: 80 bytes")
    return swap_words(header80) + HEADER_PADDING


@dataclass(frozen=True, slots=True)
class StratumJob:
    """What the host sends to build work on the module (STATIC … HEADER)."""

    coinbase: bytes  # with the extranonce2 field present (the module overwrites its first nonce2_size bytes)
    nonce2_offset: int
    nonce2_size: int  # at most 4: the bytes the module rolls
    merkles: tuple[bytes, ...]
    header_bin: bytes  # 128 bytes; its merkle root field is ignored
    job_id_crc: int
    pool: int = 0
    target: int = DIFF1_TARGET
    nonce2_start: int = 0  # Avalon7/8 (STATIC); Avalon4 carries these in SET
    nonce2_range: int = 0xFFFFFFFF
    restart: bool = False  # Avalon7/8: a clean job
    difficulty: int = 1  # Avalon4 STATIC: the pool difficulty as an integer

    def __post_init__(self) -> None:
        if not 3 <= self.nonce2_size <= 4:
            raise ValueError(f"nonce2 size: the MM rolls 3 or 4 bytes, got {self.nonce2_size}")
        if self.nonce2_offset + self.nonce2_size > len(self.coinbase):
            raise ValueError("nonce2 offset: past the end of the coinbase")
        if len(self.header_bin) != 128:
            raise ValueError("header_bin: 128 bytes")
        if len(self.merkles) > MAX_MERKLES or any(len(m) != 32 for m in self.merkles):
            raise ValueError(f"merkles: at most {MAX_MERKLES} hashes of 32 bytes")
        if len(self.coinbase) - prehash_length(self.nonce2_offset) > MAX_COINBASE_TAIL:
            raise ValueError("coinbase: too long for the MM")


def prehash_length(nonce2_offset: int) -> int:
    """Coinbase bytes the host hashes itself: the whole 64-byte blocks before extranonce2."""
    return nonce2_offset - nonce2_offset % 64


def static_packet(family: Family, job: StratumJob) -> Packet:
    head = _words(len(job.coinbase), job.nonce2_offset, job.nonce2_size, 36, len(job.merkles))
    if family is Family.AVALON4:
        return Packet(STATIC, head + _words(job.difficulty, job.pool))
    return Packet(STATIC, head + _words(job.nonce2_start, job.nonce2_range, 1 if job.restart else 0))


def target_packet(target: int) -> Packet:
    return Packet(TARGET, min(target, (1 << 256) - 1).to_bytes(32, "little"))


def job_id_packet(family: Family, crc: int, pool: int = 0) -> Packet:
    if family is Family.AVALON4:
        return Packet(JOB_ID, crc.to_bytes(2, "big"))
    return Packet(JOB_ID, crc.to_bytes(2, "big") + pool.to_bytes(2, "little"))


def coinbase_packets(coinbase: bytes, nonce2_offset: int) -> list[Packet]:
    pre = prehash_length(nonce2_offset)
    state = sha256.state_after(coinbase[:pre])
    post = coinbase[pre:]
    chunks = [post[i : i + DATA_SIZE] for i in range(0, len(post), DATA_SIZE)]
    cnt = 1 + len(chunks)
    return [Packet(COINBASE, sha256.state_bytes(state), idx=1, cnt=cnt)] + [
        Packet(COINBASE, chunk, idx=i + 2, cnt=cnt) for i, chunk in enumerate(chunks)]


def job_packets(family: Family, job: StratumJob) -> list[Packet]:
    """Everything broadcast for a new job, in order. Avalon7/8 end with JOB_FIN; Avalon4 modules
    then get their SET (nonce2 range, voltage, frequency) and a broadcast FINISH."""
    if family is Family.AVALONM:
        raise ValueError("avalonm devices take midstate work, not Stratum jobs")
    packets = [static_packet(family, job), target_packet(job.target), job_id_packet(family, job.job_id_crc, job.pool)]
    packets += coinbase_packets(job.coinbase, job.nonce2_offset)
    packets += [Packet(MERKLES, m, idx=i + 1, cnt=len(job.merkles)) for i, m in enumerate(job.merkles)]
    packets += [Packet(HEADER, job.header_bin[i * 32 : i * 32 + 32], idx=i + 1, cnt=4) for i in range(4)]
    if family is not Family.AVALON4:
        packets.append(Packet(JOB_FIN))
    return packets


@dataclass(frozen=True, slots=True)
class DeviceJob:
    """A Stratum job as a module holds it: the SHA-256 state of the coinbase head and the tail."""

    coinbase_length: int
    nonce2_offset: int
    nonce2_size: int
    state: tuple[int, ...]
    tail: bytes
    merkles: tuple[bytes, ...]
    header_bin: bytes
    job_id_crc: int
    pool: int
    target: int
    nonce2_start: int
    nonce2_range: int
    restart: bool
    difficulty: int

    def header(self, nonce2: int, ntime_roll: int = 0, nonce: int = 0) -> bytes:
        """The 80-byte header the module hashes for this nonce2 (as the MM firmware builds it:
        nonce2 little-endian into the coinbase, SHA-256 continued from the state)."""
        pos = self.nonce2_offset - prehash_length(self.nonce2_offset)
        tail = (self.tail[:pos] + (nonce2 % (1 << (8 * self.nonce2_size))).to_bytes(self.nonce2_size, "little")
                + self.tail[pos + self.nonce2_size :])
        first = sha256.finish(self.state, tail, self.coinbase_length)
        # `first` is the coinbase's first SHA-256; the second makes its txid, then the branch.
        root = merkle_root(hashlib.sha256(first).digest(), self.merkles)
        real = bytearray(swap_words(self.header_bin[:80]))
        real[36:68] = root
        ntime = int.from_bytes(real[68:72], "little") + ntime_roll
        real[68:72] = (ntime & 0xFFFFFFFF).to_bytes(4, "little")
        real[76:80] = nonce.to_bytes(4, "little")
        return bytes(real)


class JobAssembler:
    """Module side: collects STATIC … HEADER and gives the job at JOB_FIN (Avalon7/8) or FINISH
    (Avalon4, whose nonce2 range comes in a SET packet in between)."""

    def __init__(self, family: Family):
        self.family = family
        self.reset()

    def reset(self) -> None:
        self._static: Packet | None = None
        self._target = DIFF1_TARGET
        self._crc = 0
        self._pool = 0
        self._coinbase: dict[int, bytes] = {}
        self._coinbase_cnt = 0
        self._merkles: dict[int, bytes] = {}
        self._header: dict[int, bytes] = {}
        self.nonce2_start = 0
        self.nonce2_range = 0xFFFFFFFF

    def feed(self, packet: Packet) -> DeviceJob | None:
        t = packet.type
        if t == STATIC:
            self.reset()
            self._static = packet
            if self.family is Family.AVALON4:
                self._pool = packet.word(24)
        elif t == TARGET:
            self._target = int.from_bytes(packet.data, "little")
        elif t == JOB_ID:
            self._crc = int.from_bytes(packet.data[:2], "big")
            if self.family is not Family.AVALON4:
                self._pool = int.from_bytes(packet.data[2:4], "little")
        elif t == COINBASE:
            self._coinbase[packet.idx] = packet.data
            self._coinbase_cnt = packet.cnt
        elif t == MERKLES:
            self._merkles[packet.idx] = packet.data
        elif t == HEADER:
            self._header[packet.idx] = packet.data
        elif (t == JOB_FIN and self.family is not Family.AVALON4) or (t == FINISH and self.family is Family.AVALON4):
            return self.build()
        return None

    def build(self) -> DeviceJob | None:
        s = self._static
        if s is None:
            return None
        length, offset, size, _, merkle_count = (s.word(i) for i in range(0, 20, 4))
        if not 3 <= size <= 4 or len(self._header) != 4 or sorted(self._coinbase) != list(
                range(1, self._coinbase_cnt + 1)) or sorted(self._merkles) != list(range(1, merkle_count + 1)):
            return None
        pre = prehash_length(offset)
        tail = b"".join(self._coinbase[i] for i in range(2, self._coinbase_cnt + 1))[: length - pre]
        if len(tail) != length - pre:
            return None
        if self.family is Family.AVALON4:
            start, rng, restart, diff = self.nonce2_start, self.nonce2_range, False, s.word(20)
        else:
            start, rng, restart, diff = s.word(20), s.word(24), bool(s.word(28)), 1
        return DeviceJob(length, offset, size, sha256.state_from_bytes(self._coinbase[1]), tail,
                         tuple(self._merkles[i] for i in range(1, merkle_count + 1)),
                         b"".join(self._header[i] for i in range(1, 5)), self._crc, self._pool, self._target,
                         start, rng, restart, diff)


# ------------------------------------------------------------------------------------ nonces
NONCE_OFFSET_A3222 = 0x4000  # avalonm and MM40/41/50 report N + 0x4000


@dataclass(frozen=True, slots=True)
class NonceReport:
    """A NONCE packet from an MM module. `nonce` is the N field as sent (header bytes 76..79 read
    big-endian, plus 0x4000 on MM40/41/50)."""

    miner: int
    chip: int
    nonce2: int
    ntime_roll: int
    nonce: int
    job_id_crc: int
    pool: int

    def to_packet(self, family: Family, opt: int = 0) -> Packet:
        lead = _words(self.miner & 0xFFFF | (self.chip & 0xFFFF) << 16)
        if family is Family.AVALON4:
            data = (lead + _words(self.pool, self.nonce2, self.ntime_roll, self.nonce)
                    + self.job_id_crc.to_bytes(2, "big"))
        else:
            data = (lead + _words(self.nonce2, self.ntime_roll, self.nonce) + self.job_id_crc.to_bytes(2, "big")
                    + self.pool.to_bytes(2, "little"))
        return Packet(NONCE, data, opt)

    @classmethod
    def from_packet(cls, family: Family, packet: Packet) -> NonceReport:
        _expect(packet, NONCE)
        lead = packet.word(0)
        miner, chip = lead & 0xFFFF, lead >> 16
        if family is Family.AVALON4:
            return cls(miner, chip, packet.word(8), packet.word(12), packet.word(16),
                       int.from_bytes(packet.data[20:22], "big"), packet.word(4))
        return cls(miner, chip, packet.word(4), packet.word(8), packet.word(12),
                   int.from_bytes(packet.data[16:18], "big"), int.from_bytes(packet.data[18:20], "little"))


def header_nonce(n_field: int, offset: int = 0) -> int:
    """The nonce as work.py keeps it (the header's little-endian field) from a reported N."""
    return int.from_bytes(((n_field - offset) & 0xFFFFFFFF).to_bytes(4, "big"), "little")


def n_field(header_nonce_value: int, offset: int = 0) -> int:
    """The reverse of header_nonce: what the chip reports for a nonce found in the header."""
    return (int.from_bytes(header_nonce_value.to_bytes(4, "little"), "big") + offset) & 0xFFFFFFFF


# ------------------------------------------------------------------------------------ status
@dataclass(frozen=True, slots=True)
class Status7:
    """Avalon7/8 STATUS for miner `miner` (packet idx); the counters are increments since the last."""

    temperature: int
    fan: int
    local_works: int
    hw_errors: int
    error_code: int
    slot_error_code: int
    crc_errors: int
    miner: int = 0
    slot: int = 0  # packet cnt: the miner whose error code [20] is

    def to_packet(self, opt: int = 0) -> Packet:
        return Packet(STATUS, _words(self.temperature, self.fan, self.local_works, self.hw_errors, self.error_code,
                                     self.slot_error_code, self.crc_errors), opt, self.miner, self.slot)

    @classmethod
    def from_packet(cls, packet: Packet) -> Status7:
        _expect(packet, STATUS)
        t = packet.word(0)
        temperature = t - (1 << 32) if t & 0x80000000 else t
        return cls(temperature, *(packet.word(i) for i in range(4, 28, 4)), miner=packet.idx, slot=packet.cnt)


@dataclass(frozen=True, slots=True)
class Status4:
    """Avalon4/4.1/6 STATUS. `frequency` is as sent (×3968/65 gives MHz); `voltage` is encoded."""

    temperature: int
    fan: int
    frequency: int
    voltage: int
    local_works: int
    hw_errors: int
    power_good: int
    error_code: int

    def to_packet(self, opt: int = 0) -> Packet:
        return Packet(STATUS, _words(self.temperature, self.fan, self.frequency, self.voltage, self.local_works,
                                     self.hw_errors, self.power_good, self.error_code), opt)

    @classmethod
    def from_packet(cls, packet: Packet) -> Status4:
        _expect(packet, STATUS)
        return cls(*(packet.word(i) for i in range(0, 32, 4)))

    @property
    def frequency_mhz(self) -> float:
        return self.frequency * 3968 / 65


@dataclass(frozen=True, slots=True)
class StatusM:
    """avalonm STATUS_M: eight BE32 fields (nano 2.0: [0] is the current frequency in MHz,
    [20] the temperature in °C; a zero voltage is a power-off notice)."""

    spi_speed: int
    led: int
    fan: int
    voltage: int
    vcore_adc: int
    temperature: int
    adc: int
    power_good: int

    def to_packet(self, opt: int = 0) -> Packet:
        return Packet(STATUS, _words(self.spi_speed, self.led, self.fan, self.voltage, self.vcore_adc,
                                     self.temperature, self.adc, self.power_good), opt)

    @classmethod
    def from_packet(cls, packet: Packet) -> StatusM:
        _expect(packet, STATUS)
        return cls(*(packet.word(i) for i in range(0, 32, 4)))


@dataclass(frozen=True, slots=True)
class WordList:
    """Packets that are a list of BE32 words: STATUS_VOLT (per miner), STATUS_PLL (six PLL counters
    of miner idx), SET_VOLT on Avalon7/8 (per-miner level words), SET_SS."""

    type: int
    words: tuple[int, ...]
    idx: int = 1
    cnt: int = 1

    def to_packet(self, opt: int = 0) -> Packet:
        if len(self.words) > 8:
            raise ValueError("at most 8 words in a packet")
        return Packet(self.type, _words(*self.words), opt, self.idx, self.cnt)

    @classmethod
    def from_packet(cls, packet: Packet, count: int) -> WordList:
        return cls(packet.type, tuple(packet.word(4 * i) for i in range(count)), packet.idx, packet.cnt)


@dataclass(frozen=True, slots=True)
class Counters24:
    """Avalon4 STATUS_LW / STATUS_HW: a 24-bit big-endian counter per miner (up to 10)."""

    type: int
    values: tuple[int, ...]

    def to_packet(self, opt: int = 0) -> Packet:
        if len(self.values) > 10:
            raise ValueError("at most 10 counters")
        return Packet(self.type, b"".join((v & 0xFFFFFF).to_bytes(3, "big") for v in self.values), opt)

    @classmethod
    def from_packet(cls, packet: Packet, count: int) -> Counters24:
        _expect(packet, STATUS_LW, STATUS_HW)
        return cls(packet.type, tuple(int.from_bytes(packet.data[3 * i : 3 * i + 3], "big") for i in range(count)))


# ------------------------------------------------------------------------------------ configuration
# PLL "CPM" words by frequency, from cgminer's tables (the words are opaque to the host).
# Avalon7: index = MHz/12 - 2, 24..1404 MHz.
CPM_AVALON7 = (
    0x0173F813, 0x0175F813, 0x0163F813, 0x0164F813, 0x0165F813, 0x0166F813, 0x0153F813, 0x01547813,
    0x0154F813, 0x01557813, 0x0155F813, 0x01567813, 0x0156F813, 0x01577813, 0x0143F813, 0x01443813,
    0x01447813, 0x0144B813, 0x0144F813, 0x01453813, 0x01457813, 0x0145B813, 0x0145F813, 0x01463813,
    0x01467813, 0x0146B813, 0x0146F813, 0x01473813, 0x01477813, 0x0147B813, 0x0133F813, 0x01341813,
    0x01343813, 0x01345813, 0x01347813, 0x01349813, 0x0134B813, 0x0134D813, 0x0134F813, 0x01351813,
    0x01353813, 0x01355813, 0x01357813, 0x01359813, 0x0135B813, 0x0135D813, 0x0135F813, 0x01361813,
    0x01363813, 0x01365813, 0x01367813, 0x01369813, 0x0136B813, 0x0136D813, 0x0136F813, 0x01371813,
    0x01373813, 0x01375813, 0x01377813, 0x01379813, 0x0137B813, 0x0123E813, 0x0123F813, 0x01240813,
    0x01241813, 0x01242813, 0x01243813, 0x01244813, 0x01245813, 0x01246813, 0x01247813, 0x01248813,
    0x01249813, 0x0124A813, 0x0124B813, 0x0124C813, 0x0124D813, 0x0124E813, 0x0124F813, 0x01250813,
    0x01251813, 0x01252813, 0x01253813, 0x01254813, 0x01255813, 0x01256813, 0x01257813, 0x01258813,
    0x01259813, 0x0125A813, 0x0125B813, 0x0125C813, 0x0125D813, 0x0125E813, 0x0125F813, 0x01260813,
    0x01261813, 0x01262813, 0x01263813, 0x01264813, 0x01265813, 0x01266813, 0x01267813, 0x01268813,
    0x01269813, 0x0126A813, 0x0126B813, 0x0126C813, 0x0126D813, 0x0126E813, 0x0126F813, 0x01270813,
    0x01271813, 0x01272813, 0x01273813, 0x01274813,
)
# Avalon8: index = MHz/25, 0..1200 MHz.
CPM_AVALON8 = (
    0x04400000, 0x04000000, 0x008FFBE1, 0x0097FDE1, 0x009FFFE1, 0x009DDF61, 0x009DCF61, 0x009F47C1,
    0x009FBFE1, 0x009F37C1, 0x009DAF61, 0x009B26C1, 0x009DA761, 0x00999E61, 0x009B9EE1, 0x009D9F61,
    0x009F9FE1, 0x00991641, 0x009A96A1, 0x009C1701, 0x009D9761, 0x009F17C1, 0x00958D61, 0x00968DA1,
    0x00978DE1, 0x00988E21, 0x00998E61, 0x009A8EA1, 0x009B8EE1, 0x009C8F21, 0x009D8F61, 0x009E8FA1,
    0x009F8FE1, 0x00900401, 0x00908421, 0x00910441, 0x00918461, 0x00920481, 0x009284A1, 0x009304C1,
    0x009384E1, 0x00940501, 0x00948521, 0x00950541, 0x00958561, 0x00960581, 0x009685A1, 0x009705C1,
    0x009785E1,
)
# avalonm (A3222/A3233): only the words the research confirmed; the full 12.5 MHz table is cgminer's.
CPM_AVALONM = {100: 0x1E678447, 200: 0x1E278447, 300: 0x2E2B8447, 400: 0x1E078447}

PLL_COUNT = {Family.AVALON7: 6, Family.AVALON8: 4}
FREQ_STEP = {Family.AVALON7: 12, Family.AVALON8: 25}


def cpm_word(family: Family, mhz: int) -> int:
    if family is Family.AVALON7:
        index = mhz // 12 - 2
        table = CPM_AVALON7
    elif family is Family.AVALON8:
        index = mhz // 25
        table = CPM_AVALON8
    elif family is Family.AVALONM:
        if mhz not in CPM_AVALONM:
            raise ValueError(f"frequency {mhz} MHz: known avalonm settings are {sorted(CPM_AVALONM)} MHz")
        return CPM_AVALONM[mhz]
    else:
        raise ValueError(f"{family.value}: no CPM table (SET carries plain MHz)")
    if not 0 <= index < len(table):
        step = FREQ_STEP[family]
        low = (2 * step) if family is Family.AVALON7 else 0
        raise ValueError(f"frequency {mhz} MHz: {family.value} takes {low}..{low + step * (len(table) - 1)} MHz")
    return table[index]


def cpm_frequency(family: Family, word: int) -> int | None:
    """The frequency a CPM word stands for (the lowest when a word repeats), None if unknown."""
    if family is Family.AVALON7 and word in CPM_AVALON7:
        return (CPM_AVALON7.index(word) + 2) * 12
    if family is Family.AVALON8 and word in CPM_AVALON8:
        return CPM_AVALON8.index(word) * 25
    if family is Family.AVALONM:
        return next((f for f, w in CPM_AVALONM.items() if w == word), None)
    return None


def av7_pll_timeout(family: Family, f_max: int) -> tuple[int, int]:
    """The two words after the CPM words in SET_PLL (ASIC timeouts derived from the top frequency)."""
    if family is Family.AVALON7:
        return (0x2000000 // f_max) * 40 // 4, (0x2000000 // f_max) * 98 // 100
    return 100, (419430400 // f_max) * 83 // 100


def set_pll_packet(family: Family, miner: int, miners: int, freqs: Sequence[int]) -> Packet:
    """SET_PLL to one module, for miner `miner` (0-based) of `miners`."""
    count = PLL_COUNT[family]
    if len(freqs) != count:
        raise ValueError(f"{family.value}: {count} PLL frequencies, got {len(freqs)}")
    words = [cpm_word(family, f) for f in freqs] + list(av7_pll_timeout(family, max(freqs)))
    return Packet(SET_PLL, _words(*words), idx=miner + 1, cnt=miners)


def set_pll_frequencies(family: Family, packet: Packet) -> tuple[int | None, ...]:
    _expect(packet, SET_PLL)
    return tuple(cpm_frequency(family, packet.word(4 * i)) for i in range(PLL_COUNT[family]))


AV7_VOLT_MIN, AV7_VOLT_MAX, AV7_VOLT_STEP = 3889, 5059, 78


def av7_voltage_word(value: int) -> int:
    """Avalon7 SET_VOLT level word for a voltage in cgminer's --avalon7-voltage units."""
    value = min(max(value, AV7_VOLT_MIN), AV7_VOLT_MAX)
    return 0x8000 | (value - AV7_VOLT_MIN) // AV7_VOLT_STEP


def av7_voltage_value(word: int) -> int:
    return AV7_VOLT_MIN + (word & 0x7FFF) * AV7_VOLT_STEP


def av8_voltage_word(level: int) -> int:
    if not -15 <= level <= 15:
        raise ValueError(f"voltage level {level}: Avalon8 takes -15..15")
    return 0x8000 | level if level >= 0 else 0x8080 | -level


def av8_voltage_level(word: int) -> int:
    return -(word & 0x7F) if word & 0x80 else word & 0x7F


def set_volt_packet(family: Family, words: Sequence[int]) -> Packet:
    """Avalon7/8 SET_VOLT: one level word per miner."""
    return WordList(SET_VOLT, tuple(words)).to_packet()


def av4_voltage_word(mv: int) -> int:
    """MM41/50/60 (NCP5392P) voltage encoding; 0 means off. Units as cgminer's (0.1 mV [inferred])."""
    if mv == 0:
        return 0xFF00
    return rev8((((0x59 - (mv - 5000) // 125) << 1) | 1) & 0xFF) << 8


def av4_voltage_value(word: int) -> int:
    code = rev8((word >> 8) & 0xFF)
    if code == 0xFF:
        return 0
    return (0x59 - (code >> 1)) * 125 + 5000


def avalonm_voltage_word(mv: int) -> int:
    if mv == 0:
        return 0x00FF
    return (((0x59 - (mv - 5000) // 125) << 1) | 1) & 0xFFFF


def avalonm_voltage_value(word: int) -> int:
    if word == 0x00FF:
        return 0
    return (0x59 - ((word & 0xFF) >> 1)) * 125 + 5000


@dataclass(frozen=True, slots=True)
class Set78:
    """Avalon7/8 SET (once per module, before SET_FIN)."""

    freq_select: int = 0  # Avalon7 [4..7]
    smart_speed: bool = True
    nonce_check: bool = True
    ntime_roll: bool = False  # Avalon8 flag bit 2
    asic_debug: bool = False  # Avalon7 flag bit 2
    nonce_mask: int = 29

    def to_packet(self, family: Family) -> Packet:
        flags = int(self.smart_speed) | int(self.nonce_check) << 1
        if family is Family.AVALON8:
            flags |= int(self.ntime_roll) << 2
            return Packet(SET, bytes(8) + bytes((flags, self.nonce_mask)))
        flags |= int(self.asic_debug) << 2
        return Packet(SET, bytes(4) + _words(self.freq_select) + bytes((flags, self.nonce_mask)))

    @classmethod
    def from_packet(cls, family: Family, packet: Packet) -> Set78:
        _expect(packet, SET)
        flags = packet.data[8]
        bit2 = bool(flags & 4)
        if family is Family.AVALON8:
            return cls(0, bool(flags & 1), bool(flags & 2), bit2, False, packet.data[9])
        return cls(packet.word(4), bool(flags & 1), bool(flags & 2), False, bit2, packet.data[9])


@dataclass(frozen=True, slots=True)
class Set4:
    """Avalon4 SET to one module before FINISH: its nonce2 range, voltage and three PLL MHz values."""

    voltage: int  # encoded (av4_voltage_word)
    freqs: tuple[int, int, int]
    nonce2_start: int
    nonce2_range: int
    ntime_offset: int | None = None
    flags: int = 0
    bingo: int = 0
    error: int = 0

    def to_packet(self) -> Packet:
        roll = 0 if self.ntime_offset is None else (self.ntime_offset | 0x80000000)
        f0, f1, f2 = self.freqs
        return Packet(SET, _words(roll, self.voltage, f0 | f1 << 10 | f2 << 20, self.nonce2_start, self.nonce2_range)
                      + bytes((self.flags, self.bingo, self.error)))

    @classmethod
    def from_packet(cls, packet: Packet) -> Set4:
        _expect(packet, SET)
        roll, voltage, freq, start, rng = (packet.word(i) for i in range(0, 20, 4))
        freqs = (freq & 0x3FF, (freq >> 10) & 0x3FF, (freq >> 20) & 0x3FF)
        return cls(voltage, freqs, start, rng, roll & 0x7FFFFFFF if roll & 0x80000000 else None,
                   packet.data[20], packet.data[21], packet.data[22])


# ------------------------------------------------------------------------------------ avalonm work
def icarus_work(header80: bytes) -> bytes:
    """The 64-byte Icarus work (docs/icarus.md §A2): the midstate words S7..S0 (each
    big-endian), 20 zero bytes, then header bytes 64..75 with the word order reversed and the bytes
    kept."""
    if len(header80) != 80:
        raise ValueError("header: 80 bytes")
    state = sha256.state_after(header80[:64])
    tail = header80[64:76]
    return sha256.state_bytes(state[::-1]) + bytes(20) + tail[8:12] + tail[4:8] + tail[0:4]


def work_packets(work_id: int, work64: bytes, ntime_roll: int = 0) -> tuple[Packet, Packet]:
    """avalonm WORK: the Icarus work in two packets, the work id in the second."""
    if len(work64) != 64:
        raise ValueError("work: 64 bytes")
    second = work_id.to_bytes(4, "big") + bytes(4) + bytes((ntime_roll & 0xFF,)) + bytes(11) + work64[52:64]
    return Packet(WORK, work64[:32], idx=1, cnt=2), Packet(WORK, second, idx=2, cnt=2)


@dataclass(frozen=True, slots=True)
class MidstateWork:
    """A work item as the avalonm firmware reassembles it from the two WORK packets."""

    work_id: int
    ntime_roll: int
    work64: bytes

    @classmethod
    def from_packets(cls, first: Packet, second: Packet) -> MidstateWork:
        _expect(first, WORK)
        _expect(second, WORK)
        if (first.idx, second.idx) != (1, 2):
            raise PacketError("avalonm WORK: packets out of order")
        return cls(second.word(0), second.data[8], first.data + bytes(20) + second.data[20:32])


@dataclass(frozen=True, slots=True)
class MidstateNonce:
    """One report inside NONCE_M. `nonce` is as sent (N + 0x4000)."""

    work_id: int
    chip: int
    ntime_roll: int
    nonce: int
    usb_fifo: int = 0
    work_fifo: int = 0
    nonce_fifo: int = 0

    def encode(self) -> bytes:
        return (self.work_id.to_bytes(4, "big") + bytes(2) + bytes((self.chip, self.ntime_roll))
                + self.nonce.to_bytes(4, "big") + bytes((0, self.usb_fifo, self.work_fifo, self.nonce_fifo)))

    @classmethod
    def decode(cls, data: bytes) -> MidstateNonce:
        return cls(int.from_bytes(data[0:4], "big"), data[6], data[7], int.from_bytes(data[8:12], "big"),
                   data[13], data[14], data[15])


def nonce_m_packet(first: MidstateNonce, second: MidstateNonce | None = None) -> Packet:
    """NONCE_M; without a second report its half is 0xFF-filled, as the nano firmware leaves it."""
    return Packet(NONCE, first.encode() + (second.encode() if second else b"\xff" * 16))


def decode_nonce_m(packet: Packet) -> list[MidstateNonce]:
    _expect(packet, NONCE)
    reports = [MidstateNonce.decode(packet.data[:16])]
    if packet.data[22] != 0xFF:  # the second report's chip id; 0xFF = absent
        reports.append(MidstateNonce.decode(packet.data[16:]))
    return reports


def setm_packet(spi_speed: int = 1_000_000) -> Packet:
    return Packet(SETM, _words(spi_speed | 0x80000000))


def avalonm_set_volt_packet(mv: int) -> Packet:
    return Packet(SET_VOLT, avalonm_voltage_word(mv).to_bytes(2, "big"))


def avalonm_set_freq_packet(mhz: int, chip: int = 0) -> Packet:
    word = cpm_word(Family.AVALONM, mhz)
    return Packet(SET_FREQ, _words(word, word, word), opt=chip)


def avalonm_get_freq_packet(chip: int = 0) -> Packet:
    return Packet(GET_FREQ, opt=chip)


@dataclass(frozen=True, slots=True)
class StatusFreq:
    """avalonm STATUS_FREQ: the three PLL words of chip `chip` (0 = all)."""

    chip: int
    words: tuple[int, int, int]

    def to_packet(self) -> Packet:
        return Packet(STATUS_FREQ, _words(*self.words), opt=self.chip)

    @classmethod
    def from_packet(cls, packet: Packet) -> StatusFreq:
        _expect(packet, STATUS_FREQ)
        return cls(packet.opt, (packet.word(0), packet.word(4), packet.word(8)))


# Model facts used by the driver and the emulator.
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
