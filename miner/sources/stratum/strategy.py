"""cgminer's pool strategies other than failover, as a sans-I/O picker the `PoolManager` consults.

cgminer (ckolivas/cgminer `cgminer.c`: `enum pool_strategy`, `select_pool`, `select_balanced`,
`switch_pools`, `watchpool_thread`, `set_quota`, `adjust_quota_gcd`) has five strategies:

- failover (`POOL_FAILOVER`): the first usable pool by priority. `failover.py` keeps doing that
  itself (with its switch-back delay); this module is not consulted.
- round robin (`POOL_ROUNDROBIN`, `--round-robin`): `switch_pools` moves to the *next* usable pool
  by pool number when the current one fails, and does not go back when a better one returns.
- rotate (`POOL_ROTATE`, `--rotate N`): the same, and `watchpool_thread` also moves to the next
  usable pool every N minutes.
- load balance (`POOL_LOADBALANCE`, `--load-balance`, `--quota N;URL`): `select_pool` hands each
  work item to the pool at `rotating_pool` while its `quota_used < quota_gcd` (each quota divided
  by the greatest common divisor of all quotas); when no pool has quota left, every `quota_used` is
  reset and the rotation moves on. A pool with quota that is unusable is skipped; with
  `--failover-only` its unused quota goes to priority pool 0 (`priority_pool(0)->quota_used--`).
  If no usable pool has quota, the first usable pool by priority.
- balance (`POOL_BALANCE`, `--balance`): `select_balanced` hands the work to the usable pool with
  the fewest `shares` (it counts its picks), the current pool on a tie.

Where cgminer picks a pool per work item, this miner's dispatcher mines one job at a time, so the
manager asks for a pick once per *slice* (a few seconds of work; `PoolManager.slice_seconds`): with
quotas 2 and 1, pool 0 gets two slices for each of pool 1's. docs/cli.md §3 says the same.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field


class Strategy(enum.Enum):
    FAILOVER = "failover"
    ROUND_ROBIN = "round-robin"
    ROTATE = "rotate"
    LOAD_BALANCE = "load-balance"
    BALANCE = "balance"


# A usable pool is alive, enabled and has a job (cgminer `pool_unusable`/`pool_unworkable`).
Usable = Sequence[bool]


def parse_quota(text: str) -> tuple[int, str]:
    """`N;URL` (cgminer `set_quota`): the quota and the URL; ValueError with cgminer's reasons."""
    quota_text, sep, url = text.partition(";")
    if not sep:
        raise ValueError(f"--quota {text!r}: no semicolon separated quota;URL pair found")
    if not quota_text.strip():
        raise ValueError(f"--quota {text!r}: no parameter for quota found")
    if not url.strip():
        raise ValueError(f"--quota {text!r}: no parameter for URL found")
    try:
        quota = int(quota_text)
    except ValueError:
        raise ValueError(f"--quota {text!r}: the quota must be a whole number, e.g. 2;{url}") from None
    if quota < 0:
        raise ValueError(f"--quota {text!r}: invalid negative parameter for quota set")
    return quota, url.strip()


def quota_gcds(quotas: Sequence[int]) -> list[int]:
    """Each quota divided by the gcd of the non-zero quotas (cgminer `adjust_quota_gcd`)."""
    divisor = 0
    for quota in quotas:
        if quota:
            divisor = math.gcd(divisor, quota)
    return [q // divisor if divisor else 0 for q in quotas]


@dataclass
class PoolPicker:
    """Which pool (by pool number, the order pools were added) to mine next.

    `priority` lists pool numbers best first; `usable[i]` says whether pool i can be mined now.
    Every call returns a pool number or None when nothing is usable.
    """

    strategy: Strategy
    quotas: list[int] = field(default_factory=list)  # one per pool; 1 when not given
    rotate_seconds: float = 0.0
    failover_only: bool = False
    _used: list[int] = field(default_factory=list)
    _gcd: list[int] = field(default_factory=list)
    _shares: list[int] = field(default_factory=list)
    _rotating: int = 0
    _rotated_at: float | None = None

    def __post_init__(self) -> None:
        self.resize(len(self.quotas))

    def resize(self, count: int) -> None:
        """Pools were added (quota 1, as cgminer's `add_pool`) or removed."""
        self.quotas = (self.quotas + [1] * count)[:count]
        self._used = (self._used + [0] * count)[:count]
        self._shares = (self._shares + [0] * count)[:count]
        self._gcd = quota_gcds(self.quotas)
        self._rotating %= max(count, 1)

    def set_quotas(self, quotas: list[int]) -> None:
        """New quotas (the API's poolquota); the gcd is taken again, as adjust_quota_gcd does."""
        self.quotas = list(quotas)
        self.resize(len(quotas))

    def on_change(self, current: int | None, usable: Usable, priority: Sequence[int]) -> int | None:
        """A pool came up, went down, was enabled or disabled: keep the current pool if it is usable."""
        if len(usable) != len(self.quotas):
            self.resize(len(usable))
        if current is not None and current < len(usable) and usable[current]:
            return current
        if self.strategy in (Strategy.ROUND_ROBIN, Strategy.ROTATE):
            return self._next_after(current, usable)
        if self.strategy is Strategy.LOAD_BALANCE:
            return self._load_balance(usable, priority)
        if self.strategy is Strategy.BALANCE:
            return self._balance(current, usable)
        return self._first_by_priority(usable, priority)

    def on_slice(self, now: float, current: int | None, usable: Usable, priority: Sequence[int]) -> int | None:
        """A slice of work is done: the pool for the next one."""
        if len(usable) != len(self.quotas):
            self.resize(len(usable))
        if self.strategy is Strategy.LOAD_BALANCE:
            return self._load_balance(usable, priority)
        if self.strategy is Strategy.BALANCE:
            return self._balance(current, usable)
        if self.strategy is Strategy.ROTATE and self.rotate_seconds > 0:
            if self._rotated_at is None:
                self._rotated_at = now
            elif now - self._rotated_at >= self.rotate_seconds:  # cgminer watchpool_thread
                self._rotated_at = now
                return self._next_after(current, usable)
        return self.on_change(current, usable, priority)

    # ------------------------------------------------------------ cgminer's rules
    def _first_by_priority(self, usable: Usable, priority: Sequence[int]) -> int | None:
        return next((i for i in priority if i < len(usable) and usable[i]), None)

    def _next_after(self, current: int | None, usable: Usable) -> int | None:
        """switch_pools for POOL_ROUNDROBIN/POOL_ROTATE: the next usable pool number, cycling."""
        count = len(usable)
        start = -1 if current is None else current
        for step in range(1, count + 1):
            candidate = (start + step) % count
            if usable[candidate]:
                return candidate
        return None

    def _load_balance(self, usable: Usable, priority: Sequence[int]) -> int | None:
        """select_pool for POOL_LOADBALANCE."""
        count = len(usable)
        if not count:
            return None
        if not any(self._used[i] < self._gcd[i] for i in range(count)):
            self._used = [0] * count  # no pool has quota left: reset them
            self._rotating = (self._rotating + 1) % count
        for _ in range(count):
            i = self._rotating
            had_quota = self._used[i] < self._gcd[i]
            self._used[i] += 1
            if had_quota:
                if usable[i]:
                    return i
                if self.failover_only:  # unused quota of a dead pool goes to priority pool 0
                    top = priority[0] if priority else 0
                    self._used[top] -= 1
            self._rotating = (self._rotating + 1) % count
        return self._first_by_priority(usable, priority)

    def _balance(self, current: int | None, usable: Usable) -> int | None:
        """select_balanced: the usable pool with the fewest picks, the current one on a tie."""
        best = current if current is not None and current < len(usable) and usable[current] else None
        for i, ok in enumerate(usable):
            if ok and (best is None or self._shares[i] < self._shares[best]):
                best = i
        if best is not None:
            self._shares[best] += 1
        return best

    @property
    def balances(self) -> bool:
        """Work moves between pools all the time (no "switching" to tell the user about)."""
        return self.strategy in (Strategy.LOAD_BALANCE, Strategy.BALANCE)

    def quota_of(self, pool: int) -> int:
        return self.quotas[pool] if pool < len(self.quotas) else 1
