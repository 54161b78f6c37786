"""Counters and rates that the status line, the logs and the APIs read."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

BUCKET = 0.25  # seconds one RateMeter sample may span


class RateMeter:
    """Events (hashes, or difficulty-1 shares) per second over a sliding window and since start.

    Safe to feed from worker threads.
    """

    def __init__(self, keep_seconds: float = 900.0, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._keep = keep_seconds
        self._samples: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()
        self.started = clock()
        self.total = 0.0

    def add(self, amount: float, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        with self._lock:
            self.total += amount
            # Events within BUCKET s of the newest sample join it: a CPU thread adds every ~4 ms,
            # and 900 s of those were 225,000 samples (15 MB of RSS growth per device in a
            # 10-minute soak, issue 14 item 7); at most keep / BUCKET samples now, and a 5 s rate
            # is off by BUCKET / 5 s at worst.
            if self._samples and now - self._samples[-1][0] < BUCKET:
                started, sum_ = self._samples[-1]
                self._samples[-1] = (started, sum_ + amount)
            else:
                self._samples.append((now, amount))
            while self._samples and self._samples[0][0] < now - self._keep:
                self._samples.popleft()

    def rate(self, window: float, now: float | None = None) -> float:
        """Mean rate over the last `window` seconds (or since start, if that is shorter)."""
        now = self._clock() if now is None else now
        span = min(window, now - self.started)
        if span <= 0:
            return 0.0
        with self._lock:
            amount = sum(a for t, a in self._samples if t > now - window)
        return amount / span

    def average(self, now: float | None = None) -> float:
        now = self._clock() if now is None else now
        span = now - self.started
        return self.total / span if span > 0 else 0.0

    def reset(self) -> None:
        with self._lock:
            self._samples.clear()
            self.total = 0.0
            self.started = self._clock()


@dataclass
class ShareStats:
    """Share outcomes of one pool, one device, or everything."""

    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    stale: int = 0
    hw_errors: int = 0
    found: int = 0
    best_difficulty: float = 0.0
    accepted_difficulty: float = 0.0
    blocks: int = 0
    # What cgminer's API reports beyond the counts (docs/cgminer-api.md): the difficulty of what was
    # rejected, difficulty-1 work done (valid nonces weighted by the difficulty they were checked at),
    # and when the last answered share came (wall clock, for the API) at which share difficulty.
    rejected_difficulty: float = 0.0
    stale_difficulty: float = 0.0
    diff1: float = 0.0
    last_share_at: float = 0.0
    last_share_difficulty: float = 0.0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def note_best(self, difficulty: float) -> None:
        self.best_difficulty = max(self.best_difficulty, difficulty)

    def note_result(self, accepted: bool, reason: str | None, difficulty: float, best: float, when: float) -> None:
        """A share the source answered: `difficulty` is the share target's, `best` the hash's own."""
        if accepted:
            self.accepted += 1
            self.accepted_difficulty += difficulty
            self.note_best(best)
        else:
            self.rejected[reason or "rejected"] += 1
            self.rejected_difficulty += difficulty
        self.last_share_at = when
        self.last_share_difficulty = difficulty


def format_hashrate(hashes_per_second: float) -> str:
    """"61.23 MH/s", scaled to the unit that keeps 1-3 integer digits."""
    value = hashes_per_second
    for unit in ("H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s"):
        if abs(value) < 1000 or unit == "PH/s":
            return f"{value:.2f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def format_difficulty(difficulty: float) -> str:
    """Short form of a difficulty: 0.0123, 512, 1.2k, 3.4M, 5.6G, 7.8T."""
    if difficulty == float("inf"):
        return "inf"
    if difficulty < 1000:
        return f"{difficulty:.4g}"
    for unit in ("k", "M", "G", "T", "P", "E"):
        difficulty /= 1000
        if difficulty < 1000 or unit == "E":
            return f"{difficulty:.3g}{unit}"
    raise AssertionError("unreachable")
