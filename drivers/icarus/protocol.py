"""The Icarus wire format (Block Erupter, Antminer U1/U2/U3, the original Icarus): pure encode and
decode, shared by the driver and its emulator. No serial port, no clock.

Facts from docs/icarus.md (section numbers in the comments):
- host -> device: one 64-byte work packet (§A2): the midstate with its 32 bytes reversed as a whole,
  20 zero bytes (byte 51 carries an Antminer work id), then header bytes 72..76, 68..72, 64..68.
- device -> host: 4 bytes per nonce, header bytes 76..80 verbatim (§A3); Antminers add a fifth byte
  whose low 5 bits echo the work id. Nothing else: silence is the only "no nonce".
- 4-byte commands for the Antminers' clock and voltage (§A8), with a 5-bit CRC.
- The "golden" packet whose first nonce identifies a working device (§A7.1).

Nonce conventions: `N` is the big-endian reading of header bytes 76..80, what the device counts
and sends; the header's own (little-endian) nonce integer is bswap32(N).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from miner.drivers.kit.bits import bswap32, reverse_words
from miner.drivers.kit.crc import crc5
from miner.drivers.kit.usb import UsbId

from miner.core.targets import NONCE_SPACE, chip_target, difficulty_to_target

WORK_SIZE = 64
REPLY_SIZE = 4  # Icarus, Block Erupter
ANT_REPLY_SIZE = 5  # Antminer U1/U2/U3: nonce + work id
WORK_ID_COUNT = 31  # Antminer work ids cycle 0..30 (§A2)
WORK_ID_MASK = 0x1F
WORK_ID_OFFSET = 51

# §A7.1: block 171874 in device order; its first nonce from 0 is N = 0x000187a2 (100 258 hashes in).
GOLDEN_WORK = bytes.fromhex(
    "4679ba4ec99876bf4bfe086082b400254df6c356451471139a3afa71e48f544a"
    "0000000000000000000000000000000000000000"
    "87320b1a1426674f2fa722ce"
)
GOLDEN_NONCE = 0x000187A2
GOLDEN_REPLY = GOLDEN_NONCE.to_bytes(4, "big")


# Command first bytes (§A8): 0x82 write register (clock), 0x84 read register, 0xAA voltage.
FREQ_COMMAND = 0x82
READ_COMMAND = 0x84
VOLT_COMMAND = 0xAA
COMMAND_SIZE = 4


def nonce_target(difficulty: float) -> int:
    """The target a device (or its emulator at `--difficulty D`) reports nonces at. "Difficulty 1"
    to these chips (§0) is the top 32 bits of the hash zero, chip_target(1): a little easier than the
    pool's difficulty-1 target, so a true device reports a few hashes (1 in 65536) that the pool
    target would call hardware errors."""
    return chip_target(1) if difficulty == 1 else difficulty_to_target(difficulty)


# ------------------------------------------------------------------------------------ work
@dataclass(frozen=True, slots=True)
class WorkPacket:
    """One 64-byte job. `midstate` is the 8 state words S0..S7 each big-endian (what
    `miner.core.hashing.midstate` returns); `tail` is header bytes 64..76 (merkle tail, ntime, nbits)."""

    midstate: bytes
    tail: bytes
    work_id: int = 0

    def __post_init__(self) -> None:
        if len(self.midstate) != 32 or len(self.tail) != 12:
            raise ValueError(f"work: need a 32-byte midstate and 12-byte tail, got {len(self.midstate)}/"
                             f"{len(self.tail)}")
        if not 0 <= self.work_id <= 0xFF:
            raise ValueError(f"work id must fit a byte, got {self.work_id}")

    def encode(self) -> bytes:
        body = bytearray(WORK_SIZE)
        body[0:32] = reverse_words(self.midstate)  # S7 first; each word stays big-endian
        body[WORK_ID_OFFSET] = self.work_id
        t = self.tail
        body[52:64] = t[8:12] + t[4:8] + t[0:4]
        return bytes(body)

    @classmethod
    def decode(cls, data: bytes) -> WorkPacket:
        if len(data) != WORK_SIZE:
            raise ValueError(f"work packet: need {WORK_SIZE} bytes, got {len(data)}")
        tail = data[60:64] + data[56:60] + data[52:56]
        return cls(reverse_words(bytes(data[0:32])), bytes(tail), data[WORK_ID_OFFSET])


def work_packet(midstate: bytes, header: bytes, work_id: int = 0) -> bytes:
    """The packet for an 80-byte header whose midstate the caller computed (the C core does it)."""
    if len(header) < 76:
        raise ValueError(f"header: need at least 76 bytes, got {len(header)}")
    return WorkPacket(midstate, header[64:76], work_id).encode()


# ------------------------------------------------------------------------------------ replies
@dataclass(frozen=True, slots=True)
class Reply:
    """One nonce from the device: `n` as the device counts it, and the Antminer work id."""

    n: int
    work_id: int | None = None

    @property
    def header_nonce(self) -> int:
        """The nonce as the header's little-endian integer (what `Nonce.nonce` carries)."""
        return bswap32(self.n)

    def encode(self) -> bytes:
        data = self.n.to_bytes(4, "big")
        if self.work_id is not None:
            # The top 3 bits of the fifth byte are not documented anywhere we could find (docs/icarus.md,
            # uncertainty 1); drivers mask them off, so the emulator sends them as zero.
            data += bytes([self.work_id & WORK_ID_MASK])
        return data

    @classmethod
    def decode(cls, data: bytes) -> Reply:
        if len(data) == REPLY_SIZE:
            return cls(int.from_bytes(data, "big"))
        if len(data) == ANT_REPLY_SIZE:
            return cls(int.from_bytes(data[:4], "big"), data[4] & WORK_ID_MASK)
        raise ValueError(f"reply: need {REPLY_SIZE} or {ANT_REPLY_SIZE} bytes, got {len(data)}")


@dataclass
class ReplyFramer:
    """Cuts the reply stream into replies. Replies have no delimiter, so a byte lost or added
    would shift every later one; the device writes each reply in one go, so a partial reply
    followed by silence (`flush_partial`) is dropped and framing starts afresh."""

    size: int = REPLY_SIZE
    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Reply]:
        if not self._buffer and len(data) == self.size:  # the usual read: one whole reply, nothing kept
            return [Reply.decode(data)]
        self._buffer += data
        count = len(self._buffer) // self.size
        replies = [Reply.decode(bytes(self._buffer[i * self.size:(i + 1) * self.size])) for i in range(count)]
        del self._buffer[:count * self.size]
        return replies

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def flush_partial(self) -> bytes:
        """Drop (and return) the bytes of an incomplete reply."""
        dropped = bytes(self._buffer)
        self._buffer.clear()
        return dropped


# ------------------------------------------------------------------------------------ commands
def frequency_command(reg: int) -> bytes:
    """Write the PLL register: 82 HI LO CRC5 (the CRC covers 27 bits, its own top 3 bits zero)."""
    if not 0 <= reg <= 0xFFFF:
        raise ValueError(f"PLL register must be 16 bits, got {reg:#x}")
    head = bytes([FREQ_COMMAND, reg >> 8, reg & 0xFF])
    return head + bytes([crc5(head + b"\0", 27)])


def voltage_command(millivolts: int) -> bytes:
    """U3 core voltage (§A8.3): the decimal millivolts read as hex nibbles, e.g. 775 -> b7 75."""
    if not 0 <= millivolts <= 999:
        raise ValueError(f"voltage must be 0..999 mV, got {millivolts}")
    digits = bytes.fromhex(f"{millivolts:04d}")
    head = bytes([VOLT_COMMAND, 0xB0 | (digits[0] & 0x0F), digits[1]])
    return head + bytes([crc5(head + b"\0", 27) | 0xC0])


@dataclass(frozen=True, slots=True)
class FrequencyCommand:
    reg: int


@dataclass(frozen=True, slots=True)
class VoltageCommand:
    millivolts: int


@dataclass(frozen=True, slots=True)
class ReadCommand:
    data: bytes


Command = FrequencyCommand | VoltageCommand | ReadCommand


def is_command_start(byte: int) -> bool:
    return byte in (FREQ_COMMAND, READ_COMMAND, VOLT_COMMAND)


def decode_command(data: bytes) -> Command | None:
    """A 4-byte command, or None when the bytes are not one (wrong first byte or CRC)."""
    if len(data) != COMMAND_SIZE or not is_command_start(data[0]):
        return None
    head = bytes(data[:3])
    if data[0] == VOLT_COMMAND:
        if data[3] != crc5(head + b"\0", 27) | 0xC0:
            return None
        text = f"{data[1] & 0x0F:02x}{data[2]:02x}"
        return VoltageCommand(int(text)) if text.isdigit() else None
    if data[3] != crc5(head + b"\0", 27):
        return None
    if data[0] == READ_COMMAND:
        return ReadCommand(bytes(data))
    return FrequencyCommand((data[1] << 8) | data[2])


# ------------------------------------------------------------------------------------ PLLs
def bm1380_frequency(reg: int) -> float:
    """U1/U2 (BM1380) PLL register to MHz (§A8.1): 25 * (M+1) / ((N+1) * 2**OD)."""
    m, n, od = (reg >> 7) & 0x3F, (reg >> 2) & 0x0F, reg & 0x03
    return 25.0 * (m + 1) / ((n + 1) * (1 << od))


def bm1380_register(mhz: float) -> int:
    """The register for a U1/U2 clock: the first exact (M, N, OD) in ascending OD, N, M order,
    else the closest; bit 14 set when the VCO (f * 2**OD) runs in 500..1000 MHz."""
    best: tuple[float, int] | None = None
    for od in range(4):
        for n in range(16):
            for m in range(64):
                f = 25.0 * (m + 1) / ((n + 1) * (1 << od))
                band = 1 if 500 <= f * (1 << od) <= 1000 else 0
                reg = band << 14 | m << 7 | n << 2 | od
                if f == mhz:
                    return reg
                if best is None or abs(f - mhz) < best[0]:
                    best = (abs(f - mhz), reg)
    assert best is not None
    return best[1]


# The low 3 bits of a BM1382 PLL word pick the divider (§A8.2, [inferred] decoding).
_BM1382_DIVIDERS = {1: 1, 2: 2, 5: 2, 3: 4, 6: 4, 7: 8}


def bm1382_frequency(reg: int) -> float:
    """U3 (BM1382) PLL register to MHz: 25 * (N+1) / D."""
    divider = _BM1382_DIVIDERS.get(reg & 0x07)
    if divider is None:
        raise ValueError(f"BM1382 PLL word {reg:#06x}: unknown divider code {reg & 7}")
    return 25.0 * (((reg >> 7) & 0x3F) + 1) / divider


# cgminer's U3 table (§A8.2): MHz -> PLL word.
U3_TABLE: tuple[tuple[float, int], ...] = (
    (100, 0x0783), (125, 0x0983), (150, 0x0B83), (175, 0x0D83), (193.75, 0x0F03), (196.88, 0x1F07),
    (200, 0x0782), (206.25, 0x1006), (212.5, 0x1086), (218.75, 0x1106), (225, 0x0882), (237.5, 0x1286),
    (243.75, 0x1306), (250, 0x0982),
)


def u3_register(mhz: float) -> tuple[float, int]:
    """The last table entry at or below `mhz` (as cgminer picks it): (its MHz, its PLL word)."""
    freqs = [f for f, _ in U3_TABLE]
    index = bisect.bisect_right(freqs, mhz) - 1
    if index < 0:
        raise ValueError(f"{mhz} MHz is below the U3 table (from {freqs[0]} MHz)")
    return U3_TABLE[index]


# ------------------------------------------------------------------------------------ models
@dataclass(frozen=True)
class Model:
    """One stick: its ids, reply size, clock and rate. `seconds_per_hash_mhz` is the driver constant
    Hs (§A1): Hs = that / f for clocked chips; `seconds_per_hash` for fixed-clock ones."""

    key: str
    name: str
    usb_ids: tuple[UsbId, ...]
    reply_size: int
    chips: int = 1
    engines: int = 1  # work division: the nonce range split between engines (§A9)
    seconds_per_hash: float | None = None
    seconds_per_hash_mhz: float | None = None
    pll: str | None = None  # "bm1380" or "bm1382": which frequency command encoding it takes
    default_mhz: float | None = None
    min_mhz: float | None = None
    max_mhz: float | None = None
    default_millivolts: int | None = None  # U3: the voltage command sent before identification
    first_nonce_only: bool = False  # each engine stops at its first find (FPGAs, Avalon nano 1.0)

    @property
    def has_clock(self) -> bool:
        return self.pll is not None

    @property
    def work_ids(self) -> bool:
        return self.reply_size == ANT_REPLY_SIZE

    def hashrate(self, mhz: float | None = None) -> float:
        """Hashes per second at a clock (the default one when None)."""
        if self.seconds_per_hash_mhz is not None:
            mhz = self.default_mhz if mhz is None else mhz
            assert mhz is not None
            return mhz / self.seconds_per_hash_mhz
        assert self.seconds_per_hash is not None
        return 1.0 / self.seconds_per_hash

    def check_frequency(self, mhz: float) -> None:
        if not self.has_clock:
            raise ValueError(f"the {self.name} has a fixed clock; it takes no frequency setting")
        assert self.min_mhz is not None and self.max_mhz is not None
        if not self.min_mhz <= mhz <= self.max_mhz:
            raise ValueError(f"{mhz:g} MHz is outside the {self.name}'s range {self.min_mhz:g}-{self.max_mhz:g} MHz")

    def frequency_setting(self, mhz: float) -> tuple[float, bytes]:
        """(the clock the chip will run at, the command that sets it) for a request in range."""
        self.check_frequency(mhz)
        if self.pll == "bm1382":
            actual, reg = u3_register(mhz)
            return actual, frequency_command(reg)
        reg = bm1380_register(mhz)
        return bm1380_frequency(reg), frequency_command(reg)

    def frequency_of(self, command: FrequencyCommand) -> float:
        """The clock a frequency command sets on this model's chip."""
        if self.pll == "bm1382":
            return bm1382_frequency(command.reg)
        return bm1380_frequency(command.reg)

    def engine_ranges(self) -> list[tuple[int, int]]:
        return engine_ranges(self.engines)


CP2102 = (0x10C4, 0xEA60)
PL2303 = (0x067B, 0x2303)
NANO1 = (0x1FC9, 0x0083)  # NXP LPC11U14 CDC-ACM (/dev/ttyACM*)

MODELS: dict[str, Model] = {
    m.key: m
    for m in (
        # bfgminer tells an Erupter by its product string; many sell with the CP2102's default one,
        # which the bare id below claims (the golden-nonce test then decides).
        Model("erupter", "ASICMiner Block Erupter", (UsbId(*CP2102, "Erupter", "erupter"),), REPLY_SIZE,
              seconds_per_hash=2.9761e-9),
        Model("u1", "Antminer U1", (), ANT_REPLY_SIZE, seconds_per_hash_mhz=1.25e-7, pll="bm1380",
              default_mhz=250, min_mhz=125, max_mhz=500),
        Model("u2", "Antminer U2", (), ANT_REPLY_SIZE, seconds_per_hash_mhz=1.25e-7, pll="bm1380",
              default_mhz=250, min_mhz=125, max_mhz=500),
        Model("u3", "Antminer U3", (), ANT_REPLY_SIZE, seconds_per_hash_mhz=3.2e-9, pll="bm1382",
              default_mhz=225, min_mhz=100, max_mhz=250, default_millivolts=775),
        Model("icarus", "Icarus (2 FPGAs)", (UsbId(*PL2303, None, "icarus"),), REPLY_SIZE, chips=2, engines=2,
              seconds_per_hash=2.6316e-9, first_nonce_only=True),
        # Plain Icarus over the MCU's CDC-ACM port; Canaan's README: 1 engine, 0.22 ns per hash (its
        # true rate is unconfirmed). The firmware forwards only the first nonce of a job.
        Model("nano1", "Avalon nano 1.0", (UsbId(*NANO1, None, "nano1"),), REPLY_SIZE, seconds_per_hash=0.22e-9,
              first_nonce_only=True),
    )
}

# Ids the driver claims. Most Erupters and Antminers keep the CP2102's default product string
# ("CP2102 USB to UART Bridge Controller", as users' bfgminer logs show), so the bare id is the one
# that usually matches and the golden-nonce test decides (U1/U2 and U3 only differ in behaviour:
# the driver tells them apart while identifying). The Avalon nano 1.0 (1fc9:0083) speaks plain
# Icarus over CDC-ACM (docs/icarus.md §A11).
USB_IDS: tuple[UsbId, ...] = (
    UsbId(*CP2102, "Erupter", "erupter"),
    # A U3 answers the bare golden packet at power-on just as a U1 does (5 bytes), so behaviour
    # cannot tell them apart; bfgminer takes the chip from the product string when it names a BM1382
    # (driver-antminer.c, antminer_chip_has_bm1382_freq_register) and otherwise needs chip=BM1382.
    UsbId(*CP2102, "BM1382", "u3"),
    UsbId(*CP2102, "Antminer U3", "u3"),
    UsbId(*CP2102, "Antminer", None),
    UsbId(*CP2102, None, None),
    UsbId(*PL2303, None, "icarus"),
    UsbId(*NANO1, None, "nano1"),
)

ALIASES = {"erupter": "erupter", "blockerupter": "erupter", "amu": "erupter", "u1": "u1", "antminer-u1": "u1",
           "u2": "u2", "antminer-u2": "u2", "u3": "u3", "antminer-u3": "u3", "au3": "u3", "icarus": "icarus",
           "nano1": "nano1", "avalon-nano1": "nano1"}


def model_named(name: str) -> Model:
    key = ALIASES.get(name.strip().lower())
    if key is None:
        raise ValueError(f"unknown Icarus model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[key]


def engine_ranges(engines: int) -> list[tuple[int, int]]:
    """(start, count) of each engine's share of the nonce range (§A4 item 2)."""
    if engines not in (1, 2, 4, 8):
        raise ValueError(f"work division must be 1, 2, 4 or 8, got {engines}")
    size = NONCE_SPACE // engines
    return [(i * size, size) for i in range(engines)]


def hashes_done(n: int, engines: int = 1) -> int:
    """Hashes a device of `engines` engines has done when one of them reaches nonce `n` (§A5)."""
    mask = NONCE_SPACE // engines - 1
    return ((n & mask) + 1) * engines
