"""Events worth telling a person about, and the bus that carries them to the alert sinks
(docs/alerts.md §1).

`EventBus.publish` never blocks and never raises: each subscriber has a bounded queue and, when a
slow sink's queue is full, its oldest event is dropped (and counted), so the mining path and the
loop never wait for a webhook or a broker. Publishing from another thread hops onto the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Every kind, so sinks and docs agree on the names (docs/alerts.md §1 says when each fires).
BLOCK_FOUND = "block_found"
BEST_SHARE = "best_share"  # fields: scope = "session" | "all_time", difficulty
DEVICE_SICK = "device_sick"
DEVICE_DEAD = "device_dead"
DEVICE_UNPLUGGED = "device_unplugged"
DEVICE_BACK = "device_back"
POOL_FAILOVER = "pool_failover"
POOL_RETURN = "pool_return"
PAYOUT_FAILED = "payout_failed"
PAYOUT_OK = "payout_ok"
HASHRATE_LOW = "hashrate_low"
HASHRATE_OK = "hashrate_ok"
OVER_TEMPERATURE = "over_temperature"
TEMPERATURE_OK = "temperature_ok"
KINDS = (BLOCK_FOUND, BEST_SHARE, DEVICE_SICK, DEVICE_DEAD, DEVICE_UNPLUGGED, DEVICE_BACK, POOL_FAILOVER,
         POOL_RETURN, PAYOUT_FAILED, PAYOUT_OK, HASHRATE_LOW, HASHRATE_OK, OVER_TEMPERATURE, TEMPERATURE_OK)
SEVERITY = {BLOCK_FOUND: "info", BEST_SHARE: "info", DEVICE_SICK: "warning", DEVICE_DEAD: "critical",
            DEVICE_UNPLUGGED: "warning", DEVICE_BACK: "info", POOL_FAILOVER: "warning", POOL_RETURN: "info",
            PAYOUT_FAILED: "critical", PAYOUT_OK: "info", HASHRATE_LOW: "warning", HASHRATE_OK: "info",
            OVER_TEMPERATURE: "critical", TEMPERATURE_OK: "info"}
QUEUE_SIZE = 256


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    message: str  # one line for a person
    subject: str = ""  # the device or pool it is about ("" for the whole miner)
    fields: Mapping[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)  # unix time

    @property
    def severity(self) -> str:
        return SEVERITY.get(self.kind, "info")


class Subscription:
    """One sink's bounded view of the bus."""

    def __init__(self, size: int):
        self.queue: asyncio.Queue[Event] = asyncio.Queue(size)
        self.dropped = 0

    def offer(self, event: Event) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def get(self) -> Event:
        return await self.queue.get()


class EventBus:
    def __init__(self, queue_size: int = QUEUE_SIZE):
        self.queue_size = queue_size
        self.subscriptions: list[Subscription] = []
        self.published = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    def subscribe(self) -> Subscription:
        """Call on the loop; events published before are not replayed."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        sub = Subscription(self.queue_size)
        self.subscriptions.append(sub)
        return sub

    def publish(self, event: Event) -> None:
        """From any thread; returns at once."""
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
                self._loop.call_soon_threadsafe(self._deliver, event)
            return
        self._deliver(event)

    def _deliver(self, event: Event) -> None:
        self.published += 1
        for sub in self.subscriptions:
            sub.offer(event)
