"""The MM module protocol of Avalon4/4.1/6 (MM 4.x firmware) and Avalon7/8 (docs/avalon.md §B6, §B7):
whole Stratum jobs that the module turns into headers itself by rolling extranonce2, its NONCE
reports, status and configuration packets. The packets travel inside AUC transfers (auc.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from miner.drivers.avalon import sha256
from miner.drivers.avalon.cpm import PLL_COUNT, cpm_frequency, cpm_word
from miner.drivers.avalon.packets import (
    COINBASE,
    DATA_SIZE,
    FINISH,
    HEADER,
    JOB_FIN,
    JOB_ID,
    MERKLES,
    NONCE,
    SET,
    SET_PLL,
    SET_VOLT,
    STATIC,
    STATUS,
    STATUS_HW,
    STATUS_LW,
    SYNC,
    TARGET,
    EightWords,
    Family,
    Packet,
    be32_words,
    expect_type,
)
from miner.drivers.kit.bits import rev8

from miner.core.targets import DIFF1_TARGET, MAX_TARGET
from miner.core.work import merkle_root, swap_words

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
    head = be32_words(len(job.coinbase), job.nonce2_offset, job.nonce2_size, 36, len(job.merkles))
    if family is Family.AVALON4:
        return Packet(STATIC, head + be32_words(job.difficulty, job.pool))
    return Packet(STATIC, head + be32_words(job.nonce2_start, job.nonce2_range, 1 if job.restart else 0))


def target_packet(target: int) -> Packet:
    return Packet(TARGET, min(target, MAX_TARGET).to_bytes(32, "little"))


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


def sync_packet(dna: bytes) -> Packet:
    """Avalon7/8: sent to a newly found module's address with its DNA."""
    return Packet(SYNC, dna[:8])


# ------------------------------------------------------------------------------------ nonces
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
        lead = be32_words(self.miner & 0xFFFF | (self.chip & 0xFFFF) << 16)
        if family is Family.AVALON4:
            data = (lead + be32_words(self.pool, self.nonce2, self.ntime_roll, self.nonce)
                    + self.job_id_crc.to_bytes(2, "big"))
        else:
            data = (lead + be32_words(self.nonce2, self.ntime_roll, self.nonce) + self.job_id_crc.to_bytes(2, "big")
                    + self.pool.to_bytes(2, "little"))
        return Packet(NONCE, data, opt)

    @classmethod
    def from_packet(cls, family: Family, packet: Packet) -> NonceReport:
        expect_type(packet, NONCE)
        lead = packet.word(0)
        miner, chip = lead & 0xFFFF, lead >> 16
        if family is Family.AVALON4:
            return cls(miner, chip, packet.word(8), packet.word(12), packet.word(16),
                       int.from_bytes(packet.data[20:22], "big"), packet.word(4))
        return cls(miner, chip, packet.word(4), packet.word(8), packet.word(12),
                   int.from_bytes(packet.data[16:18], "big"), int.from_bytes(packet.data[18:20], "little"))


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
        return Packet(STATUS, be32_words(self.temperature, self.fan, self.local_works, self.hw_errors, self.error_code,
                                     self.slot_error_code, self.crc_errors), opt, self.miner, self.slot)

    @classmethod
    def from_packet(cls, packet: Packet) -> Status7:
        expect_type(packet, STATUS)
        t = packet.word(0)
        temperature = t - (1 << 32) if t & 0x80000000 else t
        return cls(temperature, *(packet.word(i) for i in range(4, 28, 4)), miner=packet.idx, slot=packet.cnt)


@dataclass(frozen=True, slots=True)
class Status4(EightWords):
    """Avalon4/4.1/6 STATUS. `frequency` is as sent (×3968/65 gives MHz); `voltage` is encoded."""

    PACKET_TYPE = STATUS

    temperature: int
    fan: int
    frequency: int
    voltage: int
    local_works: int
    hw_errors: int
    power_good: int
    error_code: int


    @property
    def frequency_mhz(self) -> float:
        return self.frequency * 3968 / 65

    def frequency_mhz_of(self, model_name: str, total_asics: int) -> float:
        """cgminer decode_pkg AVA4_P_STATUS: an MM60 sends the sum of its chips' MHz (divided by the
        ACKDETECT ASIC count), the MM40/41/50 a value that x 3968 / 65 gives MHz (docs/avalon.md §B7.3)."""
        if model_name == "MM60":
            return self.frequency / total_asics if total_asics else 0.0
        return self.frequency_mhz


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
        return Packet(self.type, be32_words(*self.words), opt, self.idx, self.cnt)

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
        expect_type(packet, STATUS_LW, STATUS_HW)
        return cls(packet.type, tuple(int.from_bytes(packet.data[3 * i : 3 * i + 3], "big") for i in range(count)))


# ------------------------------------------------------------------------------------ configuration
AV7_VOLT_MIN, AV7_VOLT_MAX, AV7_VOLT_STEP = 3889, 5059, 78


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
    return Packet(SET_PLL, be32_words(*words), idx=miner + 1, cnt=miners)


def set_pll_frequencies(family: Family, packet: Packet) -> tuple[int | None, ...]:
    expect_type(packet, SET_PLL)
    return tuple(cpm_frequency(family, packet.word(4 * i)) for i in range(PLL_COUNT[family]))


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
        return Packet(SET, bytes(4) + be32_words(self.freq_select) + bytes((flags, self.nonce_mask)))

    @classmethod
    def from_packet(cls, family: Family, packet: Packet) -> Set78:
        expect_type(packet, SET)
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
        fields = be32_words(roll, self.voltage, f0 | f1 << 10 | f2 << 20, self.nonce2_start, self.nonce2_range)
        return Packet(SET, fields + bytes((self.flags, self.bingo, self.error)))

    @classmethod
    def from_packet(cls, packet: Packet) -> Set4:
        expect_type(packet, SET)
        roll, voltage, freq, start, rng = (packet.word(i) for i in range(0, 20, 4))
        freqs = (freq & 0x3FF, (freq >> 10) & 0x3FF, (freq >> 20) & 0x3FF)
        return cls(voltage, freqs, start, rng, roll & 0x7FFFFFFF if roll & 0x80000000 else None,
                   packet.data[20], packet.data[21], packet.data[22])
