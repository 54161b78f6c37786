"""The avalonm protocol of the Avalon nano 2.0 and Avalon4 mini over USB HID (docs/avalon.md §B4):
midstate work in two WORK packets, NONCE_M and STATUS_M replies, SETM / SET_VOLT / SET_FREQ."""

from __future__ import annotations

from dataclasses import dataclass

from miner.drivers.avalon import sha256
from miner.drivers.avalon.cpm import cpm_word
from miner.drivers.avalon.packets import (
    GET_FREQ,
    NONCE,
    SET_FREQ,
    SET_VOLT,
    SETM,
    STATUS,
    STATUS_FREQ,
    WORK,
    EightWords,
    Family,
    Packet,
    PacketError,
    be32_words,
    expect_type,
)


@dataclass(frozen=True, slots=True)
class StatusM(EightWords):
    """avalonm STATUS_M: eight BE32 fields (nano 2.0: [0] is the current frequency in MHz,
    [20] the temperature in °C; a zero voltage is a power-off notice)."""

    PACKET_TYPE = STATUS

    spi_speed: int
    led: int
    fan: int
    voltage: int
    vcore_adc: int
    temperature: int
    adc: int
    power_good: int



def avalonm_voltage_word(mv: int) -> int:
    if mv == 0:
        return 0x00FF
    return (((0x59 - (mv - 5000) // 125) << 1) | 1) & 0xFFFF


def avalonm_voltage_value(word: int) -> int:
    if word == 0x00FF:
        return 0
    return (0x59 - ((word & 0xFF) >> 1)) * 125 + 5000


# ------------------------------------------------------------------------------------ work
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
        expect_type(first, WORK)
        expect_type(second, WORK)
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
    expect_type(packet, NONCE)
    reports = [MidstateNonce.decode(packet.data[:16])]
    if packet.data[22] != 0xFF:  # the second report's chip id; 0xFF = absent
        reports.append(MidstateNonce.decode(packet.data[16:]))
    return reports


# ------------------------------------------------------------------------------------ configuration
def setm_packet(spi_speed: int = 1_000_000) -> Packet:
    return Packet(SETM, be32_words(spi_speed | 0x80000000))


def avalonm_set_volt_packet(mv: int) -> Packet:
    return Packet(SET_VOLT, avalonm_voltage_word(mv).to_bytes(2, "big"))


def avalonm_set_freq_packet(mhz: int, chip: int = 0) -> Packet:
    word = cpm_word(Family.AVALONM, mhz)
    return Packet(SET_FREQ, be32_words(word, word, word), opt=chip)


def avalonm_get_freq_packet(chip: int = 0) -> Packet:
    return Packet(GET_FREQ, opt=chip)


@dataclass(frozen=True, slots=True)
class StatusFreq:
    """avalonm STATUS_FREQ: the three PLL words of chip `chip` (0 = all)."""

    chip: int
    words: tuple[int, int, int]

    def to_packet(self) -> Packet:
        return Packet(STATUS_FREQ, be32_words(*self.words), opt=self.chip)

    @classmethod
    def from_packet(cls, packet: Packet) -> StatusFreq:
        expect_type(packet, STATUS_FREQ)
        return cls(packet.opt, (packet.word(0), packet.word(4), packet.word(8)))
