"""The chips' clocks from the 25 MHz CLKI: the PLL register (docs/bm13xx.md §3.6, §3.7) and the
UART divider (§1.1), whose encodings differ by chip generation. A `Clocks` object per generation
owns them; ChipInfo.clocks picks it."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

CLKI_HZ = 25_000_000

BM1387_MHZ = (50.0, 800.0)  # the range accepted (R606 runs 550 in cgminer); not a chip limit we know
BM1384_MHZ = (50.0, 400.0)

RAMP_START_MHZ = 56.25
RAMP_STEP_MHZ = 6.25


@dataclass(frozen=True, slots=True)
class Pll:
    fbdiv: int
    refdiv: int
    postdiv1: int  # the divider itself (not the register nibble)
    postdiv2: int

    @property
    def vco_mhz(self) -> float:
        return 25.0 * self.fbdiv / self.refdiv

    @property
    def mhz(self) -> float:
        return self.vco_mhz / (self.postdiv1 * self.postdiv2)


def pll_search(mhz: float, fb_range: tuple[int, int]) -> Pll:
    """ESP-Miner's search (§3.6): REFDIV 2 or 1, POSTDIV1 > POSTDIV2 in 7..1, FBDIV in range;
    the closest frequency, then the lowest VCO, then the smallest post-divider product."""
    best: tuple[float, float, int] | None = None
    choice: Pll | None = None
    for refdiv in (2, 1):
        for p1 in range(7, 0, -1):
            for p2 in range(min(p1 - 1, 7), 0, -1):
                fb = round(mhz / 25.0 * refdiv * p1 * p2)
                if not fb_range[0] <= fb <= fb_range[1]:
                    continue
                pll = Pll(fb, refdiv, p1, p2)
                key = (round(abs(pll.mhz - mhz), 9), pll.vco_mhz, p1 * p2)
                if best is None or key < best:
                    best, choice = key, pll
    if choice is None:
        raise ValueError(f"frequency {mhz} MHz is out of the PLL's range")
    return choice


def frequency_ramp(start: float, target: float, step: float = RAMP_STEP_MHZ) -> list[float]:
    """PLL steps from start to target in `step` MHz increments, ending exactly on target (§3.7)."""
    out: list[float] = []
    f = start
    direction = 1 if target >= start else -1
    while (target - f) * direction > step:
        f += step * direction
        out.append(f)
    out.append(target)
    return out


# ------------------------------------------------------------------------------------ legacy PLL
def bm1387_pll(mhz: float) -> Pll:
    """Reg 0x0C = 00 FB 02 PP (§3.7): REFDIV 2 and post dividers 4×1 (PP 0x41) below 400 MHz, 2×1
    (PP 0x21) from 400; FB = f×8/25 or f×4/25, so steps of 3.125 / 6.25 MHz."""
    if not BM1387_MHZ[0] <= mhz <= BM1387_MHZ[1]:
        raise ValueError(f"frequency {mhz} MHz is out of the BM1387's range {BM1387_MHZ[0]:g}..{BM1387_MHZ[1]:g}")
    p1 = 4 if mhz < 400 else 2
    return Pll(round(mhz * 2 * p1 / 25), 2, p1, 1)


def bm1387_pll_register(pll: Pll) -> int:
    return pll.fbdiv << 16 | pll.refdiv << 8 | pll.postdiv1 << 4 | pll.postdiv2


def bm1384_pll_word(mhz: float) -> int:
    """The 16-bit word of the BM1384 set-PLL command (§3.7, cgminer's formula, reproduced not
    understood): below 100 MHz 0x0783 − 0x80 per 6.25 MHz under 100; else with r = floor(log2(f/25))
    0x0785 − r + (0x200 >> r) per 6.25 MHz above 25·2^r. 150 MHz → 0x0B83. cgminer's alternate word
    for frequencies that are not multiples of 25 is not described well enough to follow, so this
    formula serves every multiple of 6.25 MHz [decision]."""
    steps = mhz / 6.25
    if not BM1384_MHZ[0] <= mhz <= BM1384_MHZ[1] or steps != int(steps):
        raise ValueError(f"frequency {mhz} MHz: the BM1384 takes multiples of 6.25 MHz in "
                         f"{BM1384_MHZ[0]:g}..{BM1384_MHZ[1]:g}")
    if mhz < 100:
        return 0x0783 - 0x80 * int((100 - mhz) / 6.25)
    r = int(math.floor(math.log2(mhz / 25)))
    return 0x0785 - r + (0x200 >> r) * int((mhz - 25 * 2**r) / 6.25)


def bm1384_pll_mhz(word: int) -> float:
    """Inverse of bm1384_pll_word (0.0 for a word no accepted frequency gives)."""
    return _BM1384_WORDS().get(word, 0.0)


_bm1384_words: dict[int, float] = {}


def _BM1384_WORDS() -> dict[int, float]:  # noqa: N802 - a lazily built constant table
    if not _bm1384_words:
        f = BM1384_MHZ[0]
        while f <= BM1384_MHZ[1]:
            _bm1384_words[bm1384_pll_word(f)] = f
            f += 6.25
    return _bm1384_words


# ------------------------------------------------------------------------------------ per generation
class Clocks(ABC):
    @abstractmethod
    def pll(self, mhz: float) -> Pll: ...

    def actual_mhz(self, mhz: float) -> float:
        """The clock the chip runs at when asked for `mhz`; ValueError when it cannot."""
        return self.pll(mhz).mhz

    @abstractmethod
    def pll_register(self, mhz: float) -> int: ...

    @abstractmethod
    def pll_mhz(self, register: int) -> float:
        """The hash clock a PLL register value gives (0 if a divider is zero: the PLL is not set up)."""

    @abstractmethod
    def uart_baud(self, register: int) -> int:
        """The chip's UART rate after a write of `register` to its baud register (§1.1)."""


@dataclass(frozen=True)
class Bm1397Clocks(Clocks):
    """PLL0 = 40 FB REF P1P2 (§3.6), dividers from ESP-Miner's search; baud divider BT8D[4:0] in
    bits 12..8 and BT8D[8:5] in bits 27..24 of 0x18."""

    fb_range: tuple[int, int]

    def pll(self, mhz: float) -> Pll:
        return pll_search(mhz, self.fb_range)

    def pll_register(self, mhz: float) -> int:
        pll = self.pll(mhz)
        return 0x40 << 24 | pll.fbdiv << 16 | pll.refdiv << 8 | pll.postdiv1 << 4 | pll.postdiv2

    def pll_mhz(self, register: int) -> float:
        fb, ref = (register >> 16) & 0xFFF, (register >> 8) & 0x3F
        p1, p2 = (register >> 4) & 7, register & 7
        return 25.0 * fb / (ref * p1 * p2) if ref and p1 and p2 else 0.0

    def uart_baud(self, register: int) -> int:
        divider = ((register >> 8) & 0x1F) | ((register >> 24) & 0x0F) << 5
        return CLKI_HZ // ((divider + 1) * 8)


@dataclass(frozen=True)
class Bm1366Clocks(Clocks):
    """BM1366/68/70: post dividers stored less one, 0x50 in the top byte for a VCO from 2400 MHz
    (§3.6); the baud divider BT8D in bits 15..8 of 0x28."""

    fb_range: tuple[int, int]

    def pll(self, mhz: float) -> Pll:
        return pll_search(mhz, self.fb_range)

    def pll_register(self, mhz: float) -> int:
        pll = self.pll(mhz)
        high = 0x50 if pll.vco_mhz >= 2400 else 0x40
        return high << 24 | pll.fbdiv << 16 | pll.refdiv << 8 | (pll.postdiv1 - 1) << 4 | (pll.postdiv2 - 1)

    def pll_mhz(self, register: int) -> float:
        fb, ref = (register >> 16) & 0xFFF, (register >> 8) & 0x3F
        p1, p2 = ((register >> 4) & 7) + 1, (register & 7) + 1
        return 25.0 * fb / (ref * p1 * p2) if ref and p1 and p2 else 0.0

    def uart_baud(self, register: int) -> int:
        return CLKI_HZ // ((((register >> 8) & 0xFF) + 1) * 8)


class Bm1387Clocks(Clocks):
    """Reg 0x0C = 00 FB 02 PP (§3.7); 0x1C = 00 20 div 00, chip baud 25 MHz / ((div + 1) × 8) (§1.1).
    cgminer's gekko driver follows it with a second 0x1C write, 40 20 80|div 80 (its `gateblk`, in
    compac_send_chain_inactive): bit 7 of the divider byte is the gate-block flag, not divider, so
    the divider is the low 7 bits."""

    def pll(self, mhz: float) -> Pll:
        return bm1387_pll(mhz)

    def pll_register(self, mhz: float) -> int:
        return bm1387_pll_register(self.pll(mhz))

    def pll_mhz(self, register: int) -> float:
        fb, ref, p1, p2 = (register >> 16) & 0xFFF, (register >> 8) & 0xF, (register >> 4) & 0xF, register & 0xF
        return 25.0 * fb / (ref * p1 * p2) if ref and p1 and p2 else 0.0

    def uart_baud(self, register: int) -> int:
        return CLKI_HZ // ((((register >> 8) & 0x7F) + 1) * 8)


class Bm1384Clocks(Clocks):
    """The BM1384's clock is a 16-bit set-PLL word (§3.7), not PLL dividers; its UART stays at
    115 200 (there is no baud register)."""

    def pll(self, mhz: float) -> Pll:
        raise ValueError("BM1384: its clock is a PLL word, see actual_mhz")

    def actual_mhz(self, mhz: float) -> float:
        bm1384_pll_word(mhz)
        return float(mhz)

    def pll_register(self, mhz: float) -> int:
        return bm1384_pll_word(mhz)

    def pll_mhz(self, register: int) -> float:
        return bm1384_pll_mhz(register)

    def uart_baud(self, register: int) -> int:
        raise ValueError("BM1384: no baud register, the UART stays at 115 200")
