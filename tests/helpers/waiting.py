"""Waiting in socket tests: on a condition, polled, with a deadline that only ends a stuck test,
and the short timeouts that keep reconnects and failovers quick."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from miner.sources.stratum.url import Timeouts

FAST = Timeouts(connect=2, reply=2, silence=30, work=60, backoff_base=0.2, backoff_cap=1.0)


async def until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> float:
    """Wait until predicate() is true; how long it took. Raises AssertionError after timeout."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start
