"""The bounded queue between device threads and the share path.

Device threads put nonces in from any thread; the event loop takes them out in batches. The loop
is woken once per batch (not once per nonce), so a flood at a tiny difficulty costs the loop one
callback per batch, and the queue never holds more than `limit` nonces: when it is full the
oldest nonce is shed (the one most likely to be stale by now) and counted. Below the limit
nothing is ever dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque

from miner.core.work import Nonce

DEFAULT_LIMIT = 10_000


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # a device thread
        return None


class NonceQueue:
    def __init__(self, limit: int = DEFAULT_LIMIT):
        if limit < 1:
            raise ValueError(f"limit: must be >= 1, got {limit}")
        self.limit = limit
        self.shed = 0  # nonces dropped because the queue was full
        self.wakes = 0  # times the loop was woken (batches), for the flood test and the numbers
        self._items: deque[Nonce] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self._wake_pending = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop that takes nonces out (call from that loop)."""
        self._loop = loop
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def put(self, nonce: Nonce) -> bool:
        """From any thread. False when the oldest queued nonce was shed to make room."""
        with self._lock:
            kept = len(self._items) < self.limit
            if not kept:
                self._items.popleft()
                self.shed += 1
            self._items.append(nonce)
            wake = not self._wake_pending
            self._wake_pending = True
        if wake and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing takes nonces any more
                if _running_loop() is self._loop:
                    # A device mining on the loop (devices/serialport.py, LoopHost): the loop is
                    # awake already; the self-pipe write and its read would be two system calls
                    # and one more pass of the loop for every nonce, and a call_soon of the wake
                    # one more pass still. Setting the event here only schedules the share path.
                    self._wake()
                else:
                    self._loop.call_soon_threadsafe(self._wake)
        return kept

    def _wake(self) -> None:
        assert self._ready is not None
        self.wakes += 1
        self._ready.set()

    def nudge(self) -> None:
        """Wake the waiting share path without a nonce (on the loop: it has other work, a submit)."""
        if self._ready is not None:
            self._ready.set()

    def take(self, most: int) -> list[Nonce]:
        """Up to `most` nonces, oldest first, without waiting."""
        with self._lock:
            batch = [self._items.popleft() for _ in range(min(most, len(self._items)))]
            if not self._items:
                self._wake_pending = False
            return batch

    async def wait(self) -> None:
        """Until a nonce may be waiting (the loop that was bound)."""
        assert self._ready is not None
        with self._lock:
            if self._items:
                return
            self._wake_pending = False  # the next put wakes us
        self._ready.clear()
        with self._lock:
            if self._items:
                return
        await self._ready.wait()
