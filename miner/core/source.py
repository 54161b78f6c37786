"""What every job source (Stratum pools, a node over getblocktemplate, the sandbox) is to the engine.

The engine is the only caller of `Dispatcher.set_job`: a source hands its jobs to the `JobSink` it
was bound to, and hears back about every share it answered through nothing but `submit`. The
engine binds, starts, stops and reads a source only through this protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from miner.core.shares import CheckedNonce
from miner.core.stats import ShareStats
from miner.core.work import Job

# The source's new current job; None: no work until the next one (every pool is down).
JobSink = Callable[[Job | None], None]
# (share, accepted, reject reason) for every share the source answered: per-device statistics.
ResultSink = Callable[[CheckedNonce, bool, str | None], None]


class JobSource(Protocol):
    name: str

    @property
    def stats(self) -> ShareStats: ...

    def bind(self, on_job: JobSink, on_result: ResultSink) -> None:
        """Called once by the engine, before `start`: where jobs and share results go."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Close connections; shares in flight get a few seconds to be answered."""
        ...

    async def submit(self, share: CheckedNonce) -> None:
        """A share the share path checked (verdict SHARE or BLOCK) for a job of this source."""
        ...

    def status(self, rate_of: Callable[[str], str]) -> str:
        """The source's part of the status line; rate_of(source name) formats its hash rate."""
        ...
