"""What host and chips say to each other, whatever the bytes: commands (set address, write or read
a register, chain inactive; docs/bm13xx.md §2.1) and replies (a register value or a nonce, §2.3,
§5.1). Each framing family (framing.py) turns these into its own bytes and back."""

from __future__ import annotations

from dataclasses import dataclass

from miner.drivers.kit.bits import bswap32

# Command codes: the CMD bits of a 55 AA header (§2.1); the legacy framings map them to their own.
CMD_SET_ADDRESS = 0
CMD_WRITE = 1
CMD_READ = 2
CMD_INACTIVE = 3


@dataclass(frozen=True, slots=True)
class Command:
    """A command frame: set address, write/read a register, chain inactive (§2.1).

    `chip` is the addressed chip (for set-address: the new address); broadcast commands send 00.
    """

    cmd: int
    broadcast: bool = False
    chip: int = 0
    reg: int = 0
    value: int | None = None  # writes only

    def __post_init__(self) -> None:
        if self.cmd not in (CMD_SET_ADDRESS, CMD_WRITE, CMD_READ, CMD_INACTIVE):
            raise ValueError(f"command: unknown command code {self.cmd}")
        if not (0 <= self.chip <= 0xFF and 0 <= self.reg <= 0xFF):
            raise ValueError("command: chip and register addresses are bytes")
        if (self.cmd == CMD_WRITE) != (self.value is not None):
            raise ValueError("command: a write carries a value, nothing else does")
        if self.value is not None and not 0 <= self.value <= 0xFFFFFFFF:
            raise ValueError(f"command: value {self.value!r} is not 32 bits")


def read_register(reg: int, chip: int | None = None) -> Command:
    """Read `reg` of one chip, or of every chip (one reply each, in chain order) when chip is None."""
    return Command(CMD_READ, chip is None, chip or 0, reg)


def write_register(reg: int, value: int, chip: int | None = None) -> Command:
    return Command(CMD_WRITE, chip is None, chip or 0, reg, value)


def set_address(address: int) -> Command:
    return Command(CMD_SET_ADDRESS, False, address, 0)


def chain_inactive() -> Command:
    return Command(CMD_INACTIVE, True)


@dataclass(frozen=True, slots=True)
class RegisterReply:
    value: int
    chip: int  # the replying chip's address
    reg: int


@dataclass(frozen=True, slots=True)
class NonceReply:
    nonce: int  # the header's nonce value (wire bytes are header order)
    job_byte: int  # b7: job id with a midstate / small-core index in its low bits
    version_bits: int | None = None  # BM1366+: rolled bits V; the version is base | V << 13
    b6: int = 0  # meaning unknown (§5.1); hosts ignore it

    @property
    def wire_value(self) -> int:
        """The nonce bytes read big-endian (ESP-Miner's ntohl), from which chip and core ids come."""
        return bswap32(self.nonce)


@dataclass(frozen=True, slots=True)
class BadFrame:
    """Bytes the parser had to throw away: a failed CRC or garbage between frames."""

    data: bytes
    reason: str  # "crc" or "garbage"


Reply = RegisterReply | NonceReply
