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
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

REG_ERROR_COUNT = 0x4C
REG_DOMAIN_COUNT = (0x88, 0x89, 0x8A, 0x8B)
REG_TOTAL_COUNT = 0x8C
COUNTER_REGISTERS = (REG_TOTAL_COUNT, *REG_DOMAIN_COUNT, REG_ERROR_COUNT)
HASHES_PER_COUNT = 1 << 32
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

    def counter(self, reg: int) -> Counter | None:
        if reg == REG_TOTAL_COUNT:
            return self.total
        if reg == REG_ERROR_COUNT:
            return self.errors
        if reg in REG_DOMAIN_COUNT:
            return self.domains[REG_DOMAIN_COUNT.index(reg)]
        return None


class ChainCounters:
    """Every chip's counters; rates in H/s at `hashes_per_count` hashes per count."""

    def __init__(self, chips: int, hashes_per_count: float = HASHES_PER_COUNT):
        self.hashes_per_count = hashes_per_count
        self.chips = [ChipCounters() for _ in range(chips)]

    def feed(self, chip: int, reg: int, value: int, now: float) -> bool:
        """A register reply from chip `chip` (its index in the chain); False if it is no counter."""
        if not 0 <= chip < len(self.chips):
            return False
        counter = self.chips[chip].counter(reg)
        if counter is None:
            return False
        counter.feed(value, now)
        return True

    def reset(self) -> None:
        """After a clock change or re-init: the old counts describe another rate (ESP-Miner clears its
        measurements when the frequency changes)."""
        for chip in self.chips:
            for counter in (chip.total, *chip.domains, chip.errors):
                counter.reset()

    def rate(self, counter: Counter) -> float | None:
        seconds, counts = counter.span()
        return counts * self.hashes_per_count / seconds if seconds > 0 else None

    def chip_rate(self, chip: int) -> float | None:
        return self.rate(self.chips[chip].total)

    def domain_rates(self, chip: int) -> list[float | None]:
        return [self.rate(d) for d in self.chips[chip].domains]

    def error_percent(self, chip: int | None = None) -> float | None:
        chips = self.chips if chip is None else [self.chips[chip]]
        good = sum(c.total.span()[1] for c in chips)
        bad = sum(c.errors.span()[1] for c in chips)
        return 100.0 * bad / (good + bad) if good + bad else None

    def chain_rate(self) -> float | None:
        rates = [self.chip_rate(i) for i in range(len(self.chips))]
        known = [r for r in rates if r is not None]
        return sum(known) if known else None

    def counted_hashes(self) -> float:
        """Hashes the chain's total counters have counted since their first read (all chips)."""
        return sum(c.total.total for c in self.chips) * self.hashes_per_count
