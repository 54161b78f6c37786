"""What happened since the last look: the events (miner.core.events) derived from the snapshots
every front end reads (docs/alerts.md §1).

`EventWatcher.step` is sans-I/O: the miner's summary, devices and pools in, events out; it keeps
only the previous look. `watch` runs it on the loop every half second, so an event reaches the
bus within a second of the engine, device manager or pool manager changing state, and the
mining path never calls an alert sink. The payout check publishes its own events as each job
arrives (compose wires `PayoutMonitor.listeners` to the bus).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from miner.core import events as ev
from miner.core.stats import format_difficulty, format_hashrate
from miner.frontends.view import DeviceSnapshot, MinerView, PoolSnapshot, Summary

log = logging.getLogger(__name__)

WATCH_INTERVAL = 0.5
TEMPERATURE_HYSTERESIS = 5.0  # °C below the limit before "temperature ok"
UNWELL = {"Sick": ev.DEVICE_SICK, "Dead": ev.DEVICE_DEAD, "NoDevice": ev.DEVICE_UNPLUGGED}


@dataclass(frozen=True)
class Thresholds:
    hashrate_below: float | None = None  # H/s; None: no hash rate alert
    hashrate_minutes: float = 5.0
    temperature: float | None = 85.0  # °C (cgminer's --temp-overheat default); None: no alert


class EventWatcher:
    def __init__(self, thresholds: Thresholds = Thresholds()):
        self.thresholds = thresholds
        self._primed = False
        self._blocks = 0
        self._best = 0.0
        self._best_all_time = 0.0
        self._states: dict[str, str] = {}
        self._hot: set[str] = set()
        self._active: tuple[str, int, str] | None = None  # (name, priority, url)
        self._low_since: float | None = None
        self._low_reported = False

    def step(self, summary: Summary, devices: Sequence[DeviceSnapshot], pools: Sequence[PoolSnapshot],
             now: float) -> list[ev.Event]:
        """now: a monotonic clock, for the hash rate window."""
        out: list[ev.Event] = []
        active = next(((p.name, p.priority, p.url) for p in pools if p.active), None)
        if not self._primed:
            self._primed = True
            self._blocks, self._best, self._best_all_time = summary.blocks, summary.best_session, summary.best_all_time
            self._states = {d.name: d.state for d in devices}
            self._active = active
            floor = self.thresholds.hashrate_below
            self._low_since = now if floor is not None and summary.rate_1m < floor else None
            self._temperatures(devices, out)
            return out
        if summary.blocks > self._blocks:
            out.append(ev.Event(ev.BLOCK_FOUND, f"block found at height {summary.block_height or '?'}",
                                fields={"height": summary.block_height, "blocks": summary.blocks,
                                        "network_difficulty": summary.network_difficulty}))
        self._blocks = summary.blocks
        if summary.best_session > self._best:
            if summary.best_all_time > self._best_all_time and summary.best_all_time <= summary.best_session:
                scope, text = "all_time", "new best share of all time"
            else:
                scope, text = "session", "new best share this session"
            out.append(ev.Event(ev.BEST_SHARE, f"{text}: difficulty {format_difficulty(summary.best_session)}",
                                fields={"scope": scope, "difficulty": summary.best_session,
                                        "previous": self._best_all_time if scope == "all_time" else self._best}))
            self._best = summary.best_session
        self._best_all_time = max(self._best_all_time, summary.best_all_time)
        self._devices(devices, out)
        self._temperatures(devices, out)
        self._pools(active, out)
        self._hashrate(summary, now, out)
        return out

    def _devices(self, devices: Sequence[DeviceSnapshot], out: list[ev.Event]) -> None:
        seen = {d.name: d for d in devices}
        for name, before in self._states.items():
            if name not in seen and before != "NoDevice":
                out.append(ev.Event(ev.DEVICE_UNPLUGGED, f"{name} is gone (unplugged?)", name,
                                    {"state": "NoDevice", "previous": before}))
        for name, d in seen.items():
            before = self._states.get(name)
            if d.state == before:
                continue
            if d.state in UNWELL:
                why = f": {d.last_error}" if d.last_error else ""
                out.append(ev.Event(UNWELL[d.state], f"{name} is {d.state}{why}", name,
                                    {"state": d.state, "previous": before or "", "error": d.last_error,
                                     "driver": d.driver, "port": d.port or ""}))
            elif d.state == "Alive" and (before is None or before in UNWELL):
                what = "is back" if before is not None else "was plugged in"
                out.append(ev.Event(ev.DEVICE_BACK, f"{name} ({d.model or d.driver}) {what}", name,
                                    {"state": d.state, "previous": before or "", "driver": d.driver,
                                     "port": d.port or ""}))
        self._states = {name: d.state for name, d in seen.items()} | {
            name: "NoDevice" for name in self._states if name not in seen}

    def _temperatures(self, devices: Sequence[DeviceSnapshot], out: list[ev.Event]) -> None:
        limit = self.thresholds.temperature
        if limit is None:
            return
        for d in devices:
            t = d.temperature
            if t is None:
                continue
            if t >= limit and d.name not in self._hot:
                self._hot.add(d.name)
                out.append(ev.Event(ev.OVER_TEMPERATURE, f"{d.name} at {t:.1f} °C (limit {limit:g} °C)", d.name,
                                    {"temperature": t, "limit": limit}))
            elif t < limit - TEMPERATURE_HYSTERESIS and d.name in self._hot:
                self._hot.discard(d.name)
                out.append(ev.Event(ev.TEMPERATURE_OK, f"{d.name} cooled to {t:.1f} °C", d.name,
                                    {"temperature": t, "limit": limit}))

    def _pools(self, active: tuple[str, int, str] | None, out: list[ev.Event]) -> None:
        before = self._active
        self._active = active
        if active is None or (before is not None and active[0] == before[0]):
            if active is None and before is not None:
                out.append(ev.Event(ev.POOL_FAILOVER, f"no pool to mine on (was {before[0]} {before[2]})", before[0],
                                    {"from": before[0], "from_url": before[2], "to": "", "to_url": ""}))
            return
        fields = {"from": before[0] if before else "", "from_url": before[2] if before else "",
                  "to": active[0], "to_url": active[2]}
        if before is not None and active[1] < before[1]:
            out.append(ev.Event(ev.POOL_RETURN, f"back on {active[0]} ({active[2]}), was {before[0]}", active[0],
                                fields))
        else:
            was = f", was {before[0]} ({before[2]})" if before else ""
            out.append(ev.Event(ev.POOL_FAILOVER, f"mining on {active[0]} ({active[2]}){was}", active[0], fields))

    def _hashrate(self, summary: Summary, now: float, out: list[ev.Event]) -> None:
        floor = self.thresholds.hashrate_below
        if floor is None:
            return
        rate = summary.rate_1m
        if rate >= floor:
            if self._low_reported:
                out.append(ev.Event(ev.HASHRATE_OK, f"hash rate back to {format_hashrate(rate)}",
                                    fields={"hashrate": rate, "threshold": floor}))
            self._low_since, self._low_reported = None, False
            return
        if self._low_since is None:
            self._low_since = now
        minutes = self.thresholds.hashrate_minutes
        if not self._low_reported and now - self._low_since >= minutes * 60:
            self._low_reported = True
            text = f"hash rate {format_hashrate(rate)} below {format_hashrate(floor)} for {minutes:g} min"
            out.append(ev.Event(ev.HASHRATE_LOW, text, fields={"hashrate": rate, "threshold": floor,
                                                                "minutes": minutes}))


async def watch(view: MinerView, watcher: EventWatcher, bus: ev.EventBus, interval: float = WATCH_INTERVAL) -> None:
    """Look every `interval` seconds until cancelled; a failing look is logged, not fatal."""
    loop = asyncio.get_running_loop()
    failures = 0
    while True:
        try:
            for event in watcher.step(view.summary(), view.device_snapshots(), view.pool_snapshots(), loop.time()):
                bus.publish(event)
            failures = 0
        except Exception:  # a bug here must not stop the miner; say it once
            failures += 1
            if failures == 1:
                log.exception("event watcher failed (alerts may be missed)")
        await asyncio.sleep(interval)
