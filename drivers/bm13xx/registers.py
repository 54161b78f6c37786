"""BM13xx registers (docs/bm13xx.md §3.6) and the values the host writes to them: ticket mask and
version mask. Numbers only, no framing: every framing family reads and writes these."""

from __future__ import annotations

import math
from fractions import Fraction

from miner.drivers.kit.bits import rev8

from miner.core.targets import chip_target

REG_CHIP_ID = 0x00
REG_PLL0 = 0x08
REG_HASH_COUNTING = 0x10
REG_TICKET_MASK = 0x14
REG_MISC = 0x18
REG_ORDERED_CLOCK = 0x20
REG_FAST_UART = 0x28
REG_UART_RELAY = 0x2C
REG_CORE_CTRL = 0x3C
REG_ANALOG_MUX = 0x54
REG_IO_DRIVER = 0x58
REG_PLL3 = 0x68
REG_PLL0_DIVIDER = 0x70
REG_CLOCK_ORDER0 = 0x80
REG_CLOCK_ORDER1 = 0x84
REG_VERSION_MASK = 0xA4
REG_A8 = 0xA8
REG_B9 = 0xB9
REG_MISC_ADD = 0x19  # BM1372/BM1373 "MISC_CONTROL_ADD" (ESP-Miner bm1373.c)
REG_ROSC_PAD = 0x68  # BM1372/BM1373 "ROSC_PAD_DISABLE", the address the older chips' PLL3 has
REG_AUTO_WORK = 0xC4  # BM1372/BM1373 "AUTO_WORK_CONFIGURATION" (ESP-Miner bm1373.c)

# The legacy chips' registers (§2.4)
REG_BM1387_PLL = 0x0C
REG_BM1387_BAUD = 0x1C
REG_BM1384_PLL = 0x04  # read back as "register 4" (frequency ping); written with the set-PLL command


# ------------------------------------------------------------------------------------ ticket mask
def ticket_difficulty(difficulty: float) -> int:
    """The power of two a ticket mask can express for a requested difficulty (§3.6): the request
    rounded up to an integer, then down to a power of two; at least 1."""
    d = max(1, math.ceil(difficulty))
    return 1 << (d.bit_length() - 1)


def ticket_mask(difficulty: float) -> int:
    """Register 0x14 value for a difficulty: mask d-1, each byte bit-reversed."""
    m = ticket_difficulty(difficulty) - 1
    return int.from_bytes(bytes(rev8((m >> s) & 0xFF) for s in (24, 16, 8, 0)), "big")


def ticket_mask_difficulty(register: int) -> int:
    """Inverse of ticket_mask: the difficulty a 0x14 value selects."""
    m = int.from_bytes(bytes(rev8(b) for b in register.to_bytes(4, "big")), "big")
    return m + 1


def report_target(difficulty: float | Fraction) -> int:
    """The largest hash (little-endian int) a chip reports at this difficulty. Chips test zero
    bits: H < 2**(224 - log2 d) (§3.6), a little looser than the pool's diff-1 target / d."""
    return chip_target(difficulty)


# ------------------------------------------------------------------------------------ version mask
def version_mask_register(mask: int) -> int:
    """0xA4: enable (bit 31), bit 28 as every captured write, bits 15..0 = mask >> 13 (§3.6)."""
    return 0x90000000 | ((mask >> 13) & 0xFFFF)


def register_version_mask(register: int) -> int:
    """The version bits a 0xA4 value lets the chip roll (0 when rolling is off)."""
    return ((register & 0xFFFF) << 13) if register & 0x80000000 else 0


def rolled_version(base: int, version_bits: int) -> int:
    """A BM1366+ reply's version: hosts OR V << 13 into the job's version (§5.1)."""
    return base | (version_bits << 13)


def increment_in_mask(version: int, mask: int) -> int:
    """The next version within the mask: add the lowest mask bit, carrying only through mask bits
    (how BM1397 midstates 1..3 get their versions, §4.1)."""
    if not mask:
        return version
    rolled = ((version | ~mask) + (mask & -mask)) & mask
    return (version & ~mask & 0xFFFFFFFF) | rolled
