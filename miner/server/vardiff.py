"""Per-connection variable difficulty, sans-I/O: the time comes in as an argument (docs/serve.md §4).

The rules follow ckpool (stratifier.c add_submit and suggest_diff): a retarget is considered only
after enough shares or enough time since the last change (ckpool: 72 shares or 240 s at its 0.3
shares/s), nothing changes while the measured rate is within a hysteresis band around the target,
a miner's `mining.suggest_difficulty` is both the start and the floor, and the result is clamped
to [minimum, source difficulty] (ckpool clamps to the network difficulty, in proxy mode the
upstream's). A new difficulty applies from the next job the miner is sent; shares for older jobs
are judged at the lower of the old and the new difficulty (ckpool's diff_change_job_id).
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_DIFFICULTY = 0.0001
DEFAULT_SHARES_PER_MINUTE = 6.0
DEFAULT_START_DIFFICULTY = 0.001
RETARGET_SHARES = 12  # ckpool waits for 72 at 18/min; we wait for 2 minutes' worth at the default 6/min
RETARGET_SECONDS = 120.0
BAND = (0.5, 2.0)  # measured / target share rate inside this band: leave the difficulty alone
IDLE_FACTOR = 4.0  # no share for this many target intervals: lower the difficulty without waiting


@dataclass
class VarDiff:
    shares_per_minute: float = DEFAULT_SHARES_PER_MINUTE
    minimum: float = MIN_DIFFICULTY
    start: float = DEFAULT_START_DIFFICULTY
    maximum: float | None = None  # the source's share difficulty; None: unbounded
    difficulty: float = 0.0
    suggested: float | None = None
    since: float = 0.0  # when the difficulty last changed
    shares: int = 0  # accepted since then

    def __post_init__(self) -> None:
        self.difficulty = self.clamp(self.start)

    @property
    def interval(self) -> float:
        """Seconds between shares at the target rate."""
        return 60.0 / self.shares_per_minute

    def clamp(self, difficulty: float) -> float:
        floor = max(self.minimum, self.suggested or 0.0)
        value = max(floor, difficulty)
        if self.maximum is not None:
            value = min(value, self.maximum)
        return max(value, self.minimum)

    def reset(self, now: float) -> None:
        self.since, self.shares = now, 0

    def suggest(self, difficulty: float, now: float) -> float | None:
        """mining.suggest_difficulty: the new difficulty when it changes (ckpool suggest_diff)."""
        self.suggested = max(self.minimum, difficulty)
        return self._change(self.clamp(difficulty), now)

    def set_maximum(self, maximum: float | None, now: float) -> float | None:
        self.maximum = maximum
        return self._change(self.clamp(self.difficulty), now)

    def on_share(self, now: float) -> float | None:
        """An accepted share; the new difficulty when it is time to retarget."""
        self.shares += 1
        elapsed = now - self.since
        if self.shares < RETARGET_SHARES and elapsed < RETARGET_SECONDS:
            return None
        return self._retarget(elapsed)

    def on_tick(self, now: float) -> float | None:
        """Called now and then: a miner that went quiet (difficulty far too high) is eased at once."""
        elapsed = now - self.since
        if self.shares == 0 and elapsed >= IDLE_FACTOR * self.interval:
            return self._retarget(elapsed)
        return None

    def _retarget(self, elapsed: float) -> float | None:
        now = self.since + elapsed
        rate = self.shares / max(elapsed, 1e-3)  # shares per second at the current difficulty
        ratio = rate * self.interval
        if self.shares and BAND[0] <= ratio <= BAND[1]:
            self.reset(now)
            return None
        # No share at all: the rate is below 1/elapsed, so scale by that bound (at most /IDLE_FACTOR**2).
        ratio = ratio if self.shares else max(self.interval / max(elapsed, 1e-3), 1 / IDLE_FACTOR ** 2)
        return self._change(self.clamp(self.difficulty * ratio), now)

    def _change(self, difficulty: float, now: float) -> float | None:
        self.reset(now)
        if difficulty == self.difficulty:
            return None
        self.difficulty = difficulty
        return difficulty
