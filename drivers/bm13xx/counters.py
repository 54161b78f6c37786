"""The BM1366/BM1368/BM1370 hash and error counters, read as ESP-Miner reads them (docs/bm13xx.md
§7.1): pure bookkeeping, no I/O. The driver feeds it register replies with the time they came.

Facts (ESP-Miner `main/tasks/hashrate_monitor_task.c`, `hashrate_monitor_register_read`,
`update_hash_counter`, `hash_counter_to_ghs`; the register map of its BM13xx drivers): register
0x8C counts the chip's difficulty-1 results, 0x88..0x8B the same per hash domain (four domains on
these chips, `hash_domains = 4` in `main/device_config.h`), 0x4C its errors. Each is a free-running
uint32 that adds one per difficulty-1 result, i.e. per 2^32 hashes on average (`HASH_CNT_LSB`), and
wraps: the host takes the difference modulo 2^32 between two reads. The rate over a window is the
counts in it times 2^32 over its length. This settles in tens of seconds, while a rate from shares at
a ticket mask of 256 or more needs many minutes.

An emulator at `difficulty=D` (a CPU cannot hash fast enough to count difficulty-1 results) counts
results at D, so a count is worth 2^32 * D hashes; the driver is given the same D.

Error percentage [decision; ESP-Miner shows the raw 0x4C count]: errors / (errors + results) in the
window, both counted in the same units, as a share of what the chip produced.

The BM1397 has no result counters but a hash-rate register, 0x04 (ESP-Miner bm1397.c REGISTER_MAP
`[0x04] = REGISTER_HASHRATE`, `[0x4C] = REGISTER_ERROR_COUNT`; docs/bm13xx.md §7.1.1): the chip's
own rate in units of HASHRATE_UNIT = 2^20 H/s (`update_hashrate`: `value & 0x7FFFFFFF` times
`HASHRATE_UNIT 0x100000`), not valid while bit 31 (the "long" flag; the register resets to
0x80000000) is set or the value is 0x007FFFFF. Here each valid reading is integrated over the time
since the previous one, so its window rate is the time-weighted mean of the readings; its 0x4C
errors count like the newer chips' (2^32 hashes each, `update_hash_counter`).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

REG_HASHRATE = 0x04  # BM1397: the chip's measured rate
REG_ERROR_COUNT = 0x4C
REG_DOMAIN_COUNT = (0x88, 0x89, 0x8A, 0x8B)
REG_TOTAL_COUNT = 0x8C
COUNTER_REGISTERS = (REG_TOTAL_COUNT, *REG_DOMAIN_COUNT, REG_ERROR_COUNT)
HASHES_PER_COUNT = 1 << 32
HASHRATE_UNIT = 1 << 20  # H/s per unit of the BM1397's 0x04 (ESP-Miner HASHRATE_UNIT 0x100000)
HASHRATE_LONG = 0x80000000  # 0x04 bit 31: no valid reading (its reset value, skot/BM1397 registers.md)
HASHRATE_INVALID = 0x007FFFFF  # a value ESP-Miner's update_hashrate skips
WRAP = 1 << 32
WINDOW = 30.0  # seconds of samples the reported rates cover
MAX_SAMPLES = 256  # per register: bounded however often the host polls


@dataclass
class Counter:
    """One register of one chip: cumulative (wrap-corrected) counts with the time of each read."""

    last_raw: int | None = None
    total: int = 0  # counts since the first read
    samples: collections.deque[tuple[float, int]] = field(default_factory=lambda: collections.deque(maxlen=MAX_SAMPLES))

    def feed(self, value: int, now: float) -> None:
        value &= WRAP - 1
        if self.last_raw is not None:
            self.total += (value - self.last_raw) % WRAP  # uint32 difference, as ESP-Miner's
        self.last_raw = value
        self.samples.append((now, self.total))
        while len(self.samples) > 2 and now - self.samples[1][0] >= WINDOW:
            self.samples.popleft()  # keep one sample at or before the window's start

    def feed_rate(self, units: float, now: float) -> None:
        """A rate reading (units per second): integrated over the time since the previous reading."""
        if self.samples:
            self.total += units * (now - self.samples[-1][0])
        self.samples.append((now, self.total))
        while len(self.samples) > 2 and now - self.samples[1][0] >= WINDOW:
            self.samples.popleft()

    def span(self) -> tuple[float, int]:
        """(seconds, counts) between the oldest and newest sample kept."""
        if len(self.samples) < 2:
            return 0.0, 0
        (t0, c0), (t1, c1) = self.samples[0], self.samples[-1]
        return t1 - t0, c1 - c0

    def reset(self) -> None:
        self.last_raw = None
        self.total = 0
        self.samples.clear()


@dataclass
class ChipCounters:
    """The counters of one chip."""

    total: Counter = field(default_factory=Counter)
    domains: tuple[Counter, ...] = field(default_factory=lambda: tuple(Counter() for _ in REG_DOMAIN_COUNT))
    errors: Counter = field(default_factory=Counter)
    reported: Counter = field(default_factory=Counter)  # BM1397: its 0x04 readings, integrated over time

    def counter(self, reg: int) -> Counter | None:
        if reg == REG_TOTAL_COUNT:
            return self.total
        if reg == REG_ERROR_COUNT:
            return self.errors
        if reg in REG_DOMAIN_COUNT:
            return self.domains[REG_DOMAIN_COUNT.index(reg)]
        return None


def hashrate_units(value: int) -> int | None:
    """The BM1397's 0x04 reading in HASHRATE_UNITs, or None while it holds no valid rate."""
    if value & HASHRATE_LONG or value & 0x7FFFFFFF == HASHRATE_INVALID:
        return None
    return value & 0x7FFFFFFF


class ChainCounters:
    """Every chip's counters; rates in H/s at `hashes_per_count` hashes per count and, with
    `hashes_per_unit` (the BM1397's rate register), that many H/s per unit of 0x04."""

    def __init__(self, chips: int, hashes_per_count: float = HASHES_PER_COUNT, hashes_per_unit: float | None = None):
        self.hashes_per_count = hashes_per_count
        self.hashes_per_unit = hashes_per_unit
        self.chips = [ChipCounters() for _ in range(chips)]

    def feed(self, chip: int, reg: int, value: int, now: float) -> bool:
        """A register reply from chip `chip` (its index in the chain); False if it is no counter."""
        if not 0 <= chip < len(self.chips):
            return False
        if reg == REG_HASHRATE and self.hashes_per_unit is not None:
            units = hashrate_units(value)
            if units is not None:
                self.chips[chip].reported.feed_rate(units, now)
            return True
        counter = self.chips[chip].counter(reg)
        if counter is None:
            return False
        counter.feed(value, now)
        return True

    def reset(self) -> None:
        """After a clock change or re-init: the old counts describe another rate (ESP-Miner clears its
        measurements when the frequency changes)."""
        for chip in self.chips:
            for counter in (chip.total, *chip.domains, chip.errors, chip.reported):
                counter.reset()

    def rate(self, counter: Counter) -> float | None:
        seconds, counts = counter.span()
        return counts * self.hashes_per_count / seconds if seconds > 0 else None

    def chip_rate(self, chip: int) -> float | None:
        if self.hashes_per_unit is not None:
            seconds, units = self.chips[chip].reported.span()
            return units * self.hashes_per_unit / seconds if seconds > 0 else None
        return self.rate(self.chips[chip].total)

    def domain_rates(self, chip: int) -> list[float | None]:
        return [self.rate(d) for d in self.chips[chip].domains]

    def error_percent(self, chip: int | None = None) -> float | None:
        if self.hashes_per_unit is not None:
            return self._rate_error_percent(range(len(self.chips)) if chip is None else [chip])
        chips = self.chips if chip is None else [self.chips[chip]]
        good = sum(c.total.span()[1] for c in chips)
        bad = sum(c.errors.span()[1] for c in chips)
        return 100.0 * bad / (good + bad) if good + bad else None

    def _rate_error_percent(self, chips) -> float | None:
        """BM1397 [decision]: the error rate (0x4C) over the error rate plus the reported rate (0x04)."""
        good = [self.chip_rate(i) for i in chips]
        bad = [self.rate(self.chips[i].errors) for i in chips]
        if any(r is None for r in good + bad):
            return None
        total = sum(good) + sum(bad)  # type: ignore[arg-type]
        return 100.0 * sum(bad) / total if total else None  # type: ignore[arg-type]

    def chain_rate(self) -> float | None:
        rates = [self.chip_rate(i) for i in range(len(self.chips))]
        known = [r for r in rates if r is not None]
        return sum(known) if known else None

    def counted_hashes(self) -> float:
        """Hashes the chain's total counters have counted since their first read (all chips)."""
        if self.hashes_per_unit is not None:
            return sum(c.reported.total for c in self.chips) * self.hashes_per_unit
        return sum(c.total.total for c in self.chips) * self.hashes_per_count
