"""Cutting one extranonce range per downstream out of the job source's extranonce2 (docs/serve.md §2).

The source's coinbase is `coinb1 | extranonce1 | extranonce2 (N bytes) | coinb2`. The server keeps
the first P bytes of extranonce2 for itself, one value per downstream connection (prefix 0 for the
local devices), and leaves the other D = N - P bytes to the downstream. A downstream is told
`coinb1 + extranonce1` as its coinb1 and its prefix as its extranonce1, so its extranonce1 never
changes when the upstream's does (a failover to a backup pool): only the coinbase text does. When
a later upstream gives more extranonce2 than N, the spare bytes are zeros kept by the server (sent
as the start of coinb2); when it gives fewer than P + D, downstreams must be told new sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from miner.core.work import Job

LOCAL_PREFIX = 0  # the local devices' range


def prefix_size(extranonce2_size: int) -> int:
    """Bytes of the upstream's extranonce2 the server keeps for downstream prefixes.

    ckpool's proxy (stratifier.c update_subscribe, its `clientsvspeed` branch) keeps 2 bytes when the
    upstream gives more than 3 and 1 byte below that; we stop at 2 bytes (65,535 downstreams, more
    than the connection cap), so a downstream keeps N - 2 bytes: 2 of a solo template's 4, which at
    2**32 nonces times 2**16 version rolls per root is more than any LAN miner exhausts between jobs.
    """
    if extranonce2_size >= 4:
        return 2
    if extranonce2_size >= 2:
        return 1
    return 0


@dataclass(frozen=True, slots=True)
class Layout:
    """How a source job's extranonce2 is split: prefix bytes for the server, the rest for the miner."""

    prefix_size: int
    downstream_size: int

    @property
    def capacity(self) -> int:
        """Prefixes available to downstreams (prefix 0 is the local devices')."""
        return (1 << (8 * self.prefix_size)) - 1

    def fits(self, job: Job) -> bool:
        return job.extranonce2_size >= self.prefix_size + self.downstream_size

    def prefix_bytes(self, prefix: int) -> bytes:
        return prefix.to_bytes(self.prefix_size, "big")

    def cut(self, job: Job, prefix: int) -> Job:
        """The job as one downstream (or the local devices) mines it: its coinbase bytes are the
        source's with this prefix at the start of extranonce2."""
        if not self.fits(job):
            raise ValueError(f"job {job.job_id}: extranonce2 {job.extranonce2_size} bytes, need "
                             f"{self.prefix_size + self.downstream_size}")
        return replace(job, coinb1=job.coinb1 + job.extranonce1, extranonce1=self.prefix_bytes(prefix),
                       extranonce2_size=self.downstream_size, coinb2=self.padding(job) + job.coinb2)

    def padding(self, job: Job) -> bytes:
        """The spare extranonce2 bytes of a job with more than prefix + downstream: zeros, ours."""
        return bytes(job.extranonce2_size - self.prefix_size - self.downstream_size)

    def upstream_extranonce2(self, job: Job, prefix: bytes, extranonce2: bytes) -> bytes:
        """A downstream's extranonce2 as the source's job counts it."""
        return prefix + extranonce2 + self.padding(job)


def layout_for(job: Job) -> Layout:
    p = prefix_size(job.extranonce2_size)
    return Layout(p, job.extranonce2_size - p)


class PrefixPool:
    """Hands out prefixes 1..capacity; a closed connection's prefix is kept for its session id for
    `resume_seconds`, so a miner that reconnects with `mining.subscribe [agent, session]` gets it back."""

    def __init__(self, capacity: int, resume_seconds: float = 300.0):
        self.capacity = capacity
        self.resume_seconds = resume_seconds
        self._next = 1
        self._free: list[int] = []
        self._in_use: set[int] = set()
        self._parked: dict[int, float] = {}  # prefix -> when it was released (resumable until + resume_seconds)

    def __len__(self) -> int:
        return len(self._in_use)

    def take(self, now: float, resume: int | None = None) -> int | None:
        """A prefix: the resumed one when it is still parked, else a fresh one; None when all are taken."""
        self._expire(now)
        if resume is not None and resume in self._parked:
            del self._parked[resume]
            self._in_use.add(resume)
            return resume
        if self._free:
            prefix = self._free.pop()
        elif self._next <= self.capacity:
            prefix, self._next = self._next, self._next + 1
        elif self._parked:  # full: the oldest parked prefix is given up for a live connection
            prefix = min(self._parked, key=self._parked.__getitem__)
            del self._parked[prefix]
        else:
            return None
        self._in_use.add(prefix)
        return prefix

    def release(self, prefix: int, now: float) -> None:
        if prefix in self._in_use:
            self._in_use.discard(prefix)
            self._parked[prefix] = now

    def _expire(self, now: float) -> None:
        for prefix, since in list(self._parked.items()):
            if now - since > self.resume_seconds:
                del self._parked[prefix]
                self._free.append(prefix)
