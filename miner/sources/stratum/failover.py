"""The job source made of the configured pools (cgminer's failover strategy): which pool's jobs the
devices mine, and every share routed back to the pool that made its job.

All pools stay connected, so a failover is immediate; only the active pool's jobs reach the engine.
Going back up the priority list waits `switch_delay` seconds of the better pool being alive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from miner import USER_AGENT
from miner.core.shares import CheckedNonce
from miner.core.source import JobSink, ResultSink
from miner.core.stats import ShareStats, format_difficulty
from miner.core.work import Job
from miner.sources.stratum.connection import PoolConnection
from miner.sources.stratum.strategy import PoolPicker
from miner.sources.stratum.url import PoolConfig, Timeouts, parse_pool_url
from miner.sources.sv2.connection import Sv2Connection

log = logging.getLogger(__name__)

# May this pool's job be mined, and its shares sent? (the payout check's enforce mode, docs/payout.md §2)
JobCheck = Callable[[PoolConnection, Job], bool]


def connection_class(url: str) -> type[PoolConnection]:
    """The shell for a pool's URL scheme, so V1 and V2 pools share one priority list (docs/sv2.md §6)."""
    try:
        parsed = parse_pool_url(url)
    except ValueError:
        return PoolConnection  # it reports the bad URL itself, as before
    if parsed.protocol == "stratum2":
        return Sv2Connection
    return PoolConnection


class PoolManager:
    """The job source made of the configured pools, in priority order (failover strategy)."""

    name = "pools"

    def __init__(self, configs: list[PoolConfig], timeouts: Timeouts | None = None,
                 switch_delay: float = 0.0, user_agent: str = USER_AGENT, picker: PoolPicker | None = None,
                 slice_seconds: float = 2.0):
        if not configs:
            raise ValueError("no pools configured")
        self._sink: JobSink = lambda job: None  # the engine's, once bound
        self.switch_delay = switch_delay
        self.pools = [connection_class(c.url)(c, f"pool{i}", self._on_job, self._on_state, timeouts, user_agent)
                      for i, c in enumerate(configs)]
        self.result_listeners: list[Callable[[CheckedNonce, bool, str | None], None]] = []
        for pool in self.pools:
            pool.result_listeners = self.result_listeners  # one list: listeners added later hear every pool
        self.active: PoolConnection | None = None
        self._switch_timer: asyncio.TimerHandle | None = None
        self.switches = 0
        # `pools` keeps the order pools were added (their API numbers); `order` is the priority.
        self.order = list(self.pools)
        self._timeouts, self._user_agent = timeouts, user_agent
        self._next_id = len(self.pools)
        self._started = False
        self._stopping: set[asyncio.Task] = set()
        # cgminer's other strategies (--load-balance, --quota, --balance, --round-robin, --rotate):
        # the picker decides, once per slice of work; None is failover (docs/cli.md §3).
        self.picker = picker
        self.slice_seconds = slice_seconds
        self._slicer: asyncio.TimerHandle | None = None
        self.job_check: JobCheck = lambda pool, job: True
        # The names of the local devices that mine (compose sets it): a Stratum V2 pool with only
        # standard channels gets one channel per device (docs/sv2.md §8).
        self.local_devices: Callable[[], tuple[str, ...]] = tuple
        for pool in self.pools:
            pool.local_devices = self._local_devices

    @property
    def stats(self) -> ShareStats:
        total = ShareStats()
        for p in self.pools:
            total.accepted += p.stats.accepted
            total.rejected.update(p.stats.rejected)
            total.stale += p.stats.stale
            total.accepted_difficulty += p.stats.accepted_difficulty
            total.note_best(p.stats.best_difficulty)
        return total

    def pool_named(self, name: str) -> PoolConnection | None:
        return next((p for p in self.pools if p.name == name), None)

    def bind(self, on_job: JobSink, on_result: ResultSink) -> None:
        self._sink = on_job
        self.result_listeners.append(on_result)

    async def start(self) -> None:
        self._started = True
        for pool in self.pools:
            pool.start()
        if self.picker is not None:
            self._slicer = asyncio.get_running_loop().call_later(self.slice_seconds, self._next_slice)

    async def stop(self) -> None:
        if self._switch_timer:
            self._switch_timer.cancel()
        if self._slicer:
            self._slicer.cancel()
        await asyncio.gather(*(p.stop() for p in self.pools), *self._stopping)

    # ------------------------------------------------------------ control (the APIs call these)
    def _pool_at(self, index: int) -> PoolConnection:
        if not 0 <= index < len(self.pools):
            raise ValueError(f"no pool {index} (have 0..{len(self.pools) - 1})")
        return self.pools[index]

    def add_pool(self, config: PoolConfig) -> PoolConnection:
        """A new pool at the lowest priority; connects at once when the manager runs."""
        parse_pool_url(config.url)  # a bad URL raises ValueError with its reason
        pool = connection_class(config.url)(config, f"pool{self._next_id}", self._on_job, self._on_state,
                                            self._timeouts, self._user_agent)
        self._next_id += 1
        pool.result_listeners = self.result_listeners
        pool.local_devices = self._local_devices
        self.pools.append(pool)
        self.order.append(pool)
        if self.picker is not None:
            self.picker.resize(len(self.pools))
        if self._started:
            pool.start()
        return pool

    def remove_pool(self, index: int) -> PoolConnection:
        pool = self._pool_at(index)
        if pool is self.active:
            raise ValueError(f"pool {index} is the active pool; switch to another first")
        if len(self.pools) == 1:
            raise ValueError("cannot remove the last pool")
        self.pools.remove(pool)
        self.order.remove(pool)
        if self.picker is not None:
            self.picker.resize(len(self.pools))
        task = asyncio.get_running_loop().create_task(pool.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
        return pool

    def enable_pool(self, index: int) -> PoolConnection:
        pool = self._pool_at(index)
        pool.enabled = True
        self._choose()
        return pool

    def disable_pool(self, index: int) -> PoolConnection:
        pool = self._pool_at(index)
        if pool.enabled and not any(p.enabled for p in self.pools if p is not pool):
            raise ValueError(f"pool {index} is the last enabled pool")
        pool.enabled = False
        self._choose()
        return pool

    def switch_pool(self, index: int) -> PoolConnection:
        """cgminer's switchpool: enable the pool and give it the top priority; it is mined on at
        once if it is alive (no switch-back delay: a person asked for it)."""
        pool = self._pool_at(index)
        pool.enabled = True
        self.order.remove(pool)
        self.order.insert(0, pool)
        if self.picker is not None and self._usable(pool):
            self._mine_on(pool)  # switch_pools(selected): round robin and rotate go on from it
            return pool
        self._choose(immediate=True)
        return pool

    def set_priority(self, indexes: list[int]) -> None:
        """cgminer's poolpriority: the listed pools first, in that order; the rest keep theirs."""
        chosen = [self._pool_at(i) for i in indexes]
        if len(set(map(id, chosen))) != len(chosen):
            raise ValueError("a pool is listed twice")
        self.order = chosen + [p for p in self.order if p not in chosen]
        self._choose()

    def set_quota(self, index: int, quota: int) -> PoolConnection:
        """cgminer's poolquota (api.c poolquota, adjust_quota_gcd): the pool's share of the work
        under --load-balance; kept in its config, so `save` writes it."""
        pool = self._pool_at(index)
        pool.config.quota = quota
        if self.picker is not None:
            self.picker.set_quotas([p.config.quota for p in self.pools])
        return pool

    def priority_of(self, pool: PoolConnection) -> int:
        return self.order.index(pool)

    async def submit(self, share: CheckedNonce) -> None:
        pool = self.pool_named(share.work.job.source)
        if pool is None:
            log.warning("share for unknown source %r dropped", share.work.job.source)
            return
        if not self.job_check(pool, share.work.job):
            log.warning("%s: share for job %s not sent: the job failed the payout check", pool.name,
                        share.work.job.job_id)
            return
        await pool.submit(share)

    def _local_devices(self) -> tuple[str, ...]:
        return tuple(self.local_devices())

    def _on_job(self, pool: PoolConnection, job: Job) -> None:
        if pool not in self.order:  # removed, still closing
            return
        if not self.job_check(pool, job):
            if pool is self.active:
                self._choose()
            return
        if pool is self.active:
            self._sink(job)
        elif self.active is None or (pool.alive and self._rank(pool) < self._rank(self.active)):
            self._choose()

    def _on_state(self, pool: PoolConnection) -> None:
        self._choose()

    def _rank(self, pool: PoolConnection) -> int:
        return self.order.index(pool)

    def _choose(self, immediate: bool = False) -> None:
        """Mine on the first alive enabled pool; go back up the list only after switch_delay of life."""
        if self.picker is not None:
            self._mine_on(self._picked(slice_done=False))
            return
        now = time.monotonic()
        candidate = None
        active_ok = self.active is not None and self.active.alive and self.active.enabled and self.active in self.order
        if active_ok and self.active.current_job is not None \
                and not self.job_check(self.active, self.active.current_job):
            active_ok = False  # its newest job failed the payout check
        for pool in self.order:
            if not pool.alive or pool.current_job is None or not pool.enabled:
                continue
            if not self.job_check(pool, pool.current_job):
                continue
            if (not immediate and active_ok and self._rank(pool) < self._rank(self.active)
                    and now - pool.alive_since < self.switch_delay):
                wait = self.switch_delay - (now - pool.alive_since)
                if self._switch_timer is None:
                    self._switch_timer = asyncio.get_running_loop().call_later(wait, self._switch_due)
                continue
            candidate = pool
            break
        if candidate is None and active_ok:
            candidate = self.active
        self._mine_on(candidate)

    def _mine_on(self, candidate: PoolConnection | None) -> None:
        if candidate is not self.active:
            old, self.active = self.active, candidate
            if candidate is None:
                if old is not None and old.current_job is not None and not self.job_check(old, old.current_job):
                    log.warning("no pool passes the payout check; devices wait for a job that pays")
                    self._sink(None)
                    return
                log.warning("no pool is alive; devices keep hashing the last job and shares are held")
                return
            self.switches += 1
            # cgminer switch_pools says nothing when balancing moves work between pools; otherwise the
            # first pick is news and a switch from another pool a warning ("Switching to pool" is
            # LOG_WARNING only when the pool changes)
            quiet = self.picker is not None and self.picker.balances
            level = logging.DEBUG if quiet else logging.WARNING if old is not None else logging.INFO
            log.log(level, "mining on %s (%s)%s", candidate.name,
                    candidate.host, f", was {old.name}" if old is not None else "")
            assert candidate.current_job is not None
            # a pool with a job per device (standard channels, docs/sv2.md §8) hands over all of them
            for job in list(candidate.current_jobs.values()) or [candidate.current_job]:
                self._sink(replace(job, clean=True))

    def _usable(self, pool: PoolConnection) -> bool:
        return pool.alive and pool.enabled and pool.current_job is not None and pool in self.order

    def _picked(self, slice_done: bool) -> PoolConnection | None:
        assert self.picker is not None
        usable = [self._usable(p) for p in self.pools]
        priority = [self.pools.index(p) for p in self.order]
        current = self.pools.index(self.active) if self.active in self.pools else None
        if slice_done:
            index = self.picker.on_slice(time.monotonic(), current, usable, priority)
        else:
            index = self.picker.on_change(current, usable, priority)
        return None if index is None else self.pools[index]

    def _next_slice(self) -> None:
        self._slicer = asyncio.get_running_loop().call_later(self.slice_seconds, self._next_slice)
        self._mine_on(self._picked(slice_done=True))

    def _switch_due(self) -> None:
        self._switch_timer = None
        self._choose()

    def status(self, rate_of: Callable[[str], str]) -> str:
        """One part per pool: active mark, state, hash rate on its work, difficulty, shares."""
        parts = []
        for p in self.pools:
            s = p.stats
            mark = "*" if p is self.active else ""
            reasons = ",".join(f"{r}:{n}" for r, n in s.rejected.most_common(3))
            parts.append(f"{mark}{p.name} {p.host} {p.state.value} {rate_of(p.name)} "
                         f"diff {format_difficulty(float(p.difficulty))} "
                         f"A:{s.accepted} R:{s.rejected_total}{f' ({reasons})' if reasons else ''} S:{s.stale}")
        return " | ".join(parts)
