"""The dispatcher: holds the current job and cuts work units from it for every device.

Each unit gets a fresh extranonce2, so no two devices (or two units of one device) ever hash the
same header. Units are remembered by id so the share path can find the work a nonce belongs to.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from miner.core.work import Job, Work, roll_version, spread_bits

JobListener = Callable[[Job, bool], None]  # (job, restart: devices drop what they hold)
VERSIONS_PER_ROOT = 16


class Dispatcher:
    def __init__(self, remember: int = 100_000):
        self._lock = threading.Lock()
        self._job: Job | None = None
        self._next_work_id = 1
        # The next extranonce2 counter no unit has used, and how many versions the newest root has
        # served; never reset, so no two units (or reserved ranges) share a header.
        self._counter = 0
        self._roll = 0
        self._root_key: tuple[Job, bytes] | None = None
        self._root = b""
        self._works: OrderedDict[int, Work] = OrderedDict()
        self._remember = remember
        self._listeners: list[JobListener] = []
        self.generation = 0  # bumped on every clean job

    @property
    def job(self) -> Job | None:
        return self._job

    def add_listener(self, listener: JobListener) -> None:
        """Called (in the caller's thread) with every new job and whether devices must drop old
        work (a clean job, or a switch to another source)."""
        self._listeners.append(listener)

    def set_job(self, job: Job | None) -> None:
        """A new current job (None: no work until the next one). Listeners hear of it at once."""
        with self._lock:
            previous = self._job
            self._job = job
            restart = job is None or job.clean or previous is None or previous.source != job.source
            if restart:
                self.generation += 1
        if job is not None:
            for listener in self._listeners:
                listener(job, restart)

    def next_work(self, device_rolls_version: bool = False) -> Work | None:
        """A new unit from the current job, or None when there is no job.

        When the job lets versions roll, each merkle root serves up to VERSIONS_PER_ROOT units
        with different version bits before the next extranonce2 is taken: cheaper than a new root.
        A device that rolls version bits itself gets a merkle root of its own at the job's base
        version instead, so its rolled headers can never equal another unit's.
        """
        with self._lock:
            job = self._job
            if job is None:
                return None
            work_id = self._next_work_id
            self._next_work_id += 1
            rolls = min(VERSIONS_PER_ROOT, 1 << bin(job.version_mask).count("1"))
            if device_rolls_version or self._roll == 0 or self._roll >= rolls:
                counter, roll = self._counter, 0  # the next unused root
                self._counter += 1
                self._roll = 0 if device_rolls_version else 1
            else:
                counter, roll = self._counter - 1, self._roll
                self._roll += 1
            extranonce2 = job.extranonce2_for(counter)
            key = self._root_key
            cached = self._root if roll and key and key[0] is job and key[1] == extranonce2 else None
        version = roll_version(job.version, job.version_mask, spread_bits(roll, job.version_mask))
        if cached is None:
            work = job.make_work(work_id, extranonce2, version)
            with self._lock:
                self._root_key, self._root = (job, extranonce2), work.merkle_root
        else:
            work = job.work_from_root(work_id, extranonce2, cached, version)
        with self._lock:
            self._works[work_id] = work
            while len(self._works) > self._remember:
                self._works.popitem(last=False)
        return work

    def reserve_extranonce2(self, count: int) -> int:
        """Reserve `count` consecutive extranonce2 counters for a device that rolls extranonce2
        itself (an Avalon module builds its own merkle roots from a Stratum job): no unit the
        dispatcher cuts afterwards uses them, so no other device hashes the same headers.

        Returns the first counter; the block is aligned to a multiple of `count` so that, for a
        power of two, it never straddles a wrap of the low bytes the device rolls. The counter
        maps to bytes with `job.extranonce2_for(counter)`, as every unit's does.
        """
        if count < 1:
            raise ValueError(f"reserve_extranonce2: count must be >= 1, got {count}")
        with self._lock:
            start = -(-self._counter // count) * count
            self._counter = start + count
            self._roll = 0
            return start

    def register_work(self, job: Job, extranonce2: bytes, version: int | None = None) -> Work:
        """A work unit for headers a device built itself (from a reserved extranonce2), stored
        under a fresh work id so the share path can look it up like any other unit."""
        work = job.make_work(0, extranonce2, version)
        with self._lock:
            work_id = self._next_work_id
            self._next_work_id += 1
            work = job.work_from_root(work_id, extranonce2, work.merkle_root, work.version)
            self._works[work_id] = work
            while len(self._works) > self._remember:
                self._works.popitem(last=False)
        return work

    def lookup(self, work_id: int) -> Work | None:
        with self._lock:
            return self._works.get(work_id)
