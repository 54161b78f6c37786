"""What a device may ask of the dispatcher: the next work unit, the current job, and, for
hardware that builds its own headers from a job (Avalon modules roll extranonce2), a reserved
range of extranonce2 counters and a work id for each header it built.

Drivers get a `WorkSource`, never the dispatcher itself, so the dispatcher's other duties
(setting jobs, listeners, lookups for the share path) stay out of their reach.
"""

from __future__ import annotations

from typing import Protocol

from miner.core.dispatch import Dispatcher
from miner.core.work import Job, Work


class WorkSource(Protocol):
    @property
    def job(self) -> Job | None:
        """The current job (None before the first)."""
        ...

    def job_for(self, device: str) -> Job | None:
        """The job `device` mines: its own (a Stratum V2 standard channel's), else the current one."""
        ...

    def next_work(self, device_rolls_version: bool = False, device: str = "") -> Work | None:
        """A fresh unit, or None when there is no job. A device that rolls version bits itself
        says so, and gets a merkle root no other unit shares. `device` (the device's name) picks
        the job a source made for that device alone, if there is one (docs/sv2.md §8)."""
        ...

    def reserve_extranonce2(self, count: int) -> int:
        """The first of `count` extranonce2 counters no other unit will use."""
        ...

    def register_work(self, job: Job, extranonce2: bytes, version: int | None = None) -> Work:
        """A unit (with a work id the share path can look up) for a header the device built."""
        ...


class DispatcherWorkSource:
    """The `WorkSource` every device of a running miner shares."""

    def __init__(self, dispatcher: Dispatcher):
        self._dispatcher = dispatcher

    @property
    def job(self) -> Job | None:
        return self._dispatcher.job

    def job_for(self, device: str) -> Job | None:
        return self._dispatcher.job_for(device)

    def next_work(self, device_rolls_version: bool = False, device: str = "") -> Work | None:
        return self._dispatcher.next_work(device_rolls_version=device_rolls_version, device=device)

    def reserve_extranonce2(self, count: int) -> int:
        return self._dispatcher.reserve_extranonce2(count)

    def register_work(self, job: Job, extranonce2: bytes, version: int | None = None) -> Work:
        return self._dispatcher.register_work(job, extranonce2, version)


class NoWork:
    """A `WorkSource` with no job ever: for building devices that will not mine (tests, `miner devices`)."""

    job = None

    def job_for(self, device: str) -> Job | None:
        return None

    def next_work(self, device_rolls_version: bool = False, device: str = "") -> Work | None:
        return None

    def reserve_extranonce2(self, count: int) -> int:
        raise RuntimeError("reserve_extranonce2: there is no job")

    def register_work(self, job: Job, extranonce2: bytes, version: int | None = None) -> Work:
        raise RuntimeError("register_work: there is no job")
