"""The dispatcher: holds the current job and cuts work units from it for every device.

Each unit gets a fresh extranonce2, so no two devices (or two units of one device) ever hash the
same header. Units are remembered by id so the share path can find the work a nonce belongs to.

A source may also give a device a job of its own (`Job.device`: a Stratum V2 standard channel per
device, docs/sv2.md §8). Such a job has a fixed merkle root and no extranonce, so its units differ
in version bits and then ntime only; the device's job goes before the shared one for that device.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from miner.core.work import Job, Work, roll_version, spread_bits

log = logging.getLogger(__name__)

JobListener = Callable[[Job, bool], None]  # (job, restart: devices drop what they hold)
VERSIONS_PER_ROOT = 16


@dataclass
class _FixedRootUnits:
    """How much of one standard job's work space (version bits x ntime) a device was given."""

    # what the headers are made of besides version and ntime: a new job id with the same makings
    # (a pool resending a template) goes on in the same space instead of hashing it again
    key: tuple[bytes | None, bytes, bytes, bytes, int, int, int]
    started: float  # monotonic time the job arrived: ntime may run ahead by the seconds since
    root: bytes  # the one merkle root
    next_unit: int = 0
    starved_logged: bool = False


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
        self._device_jobs: dict[str, Job] = {}  # device name -> its own job (a standard channel's)
        self._fixed_units: dict[str, _FixedRootUnits] = {}
        self.clock: Callable[[], float] = time.monotonic

    @property
    def job(self) -> Job | None:
        return self._job

    def add_listener(self, listener: JobListener) -> None:
        """Called (in the caller's thread) with every new job and whether devices must drop old
        work (a clean job, or a switch to another source)."""
        self._listeners.append(listener)

    def job_for(self, device: str) -> Job | None:
        """The job `device` mines: its own (a standard channel's), else the shared one."""
        with self._lock:
            return self._device_jobs.get(device, self._job)

    @property
    def shown_job(self) -> Job | None:
        """The job a status line shows: the shared one, else one of the devices' own."""
        with self._lock:
            if self._job is not None or not self._device_jobs:
                return self._job
            return next(reversed(self._device_jobs.values()))

    @property
    def device_jobs(self) -> dict[str, Job]:
        with self._lock:
            return dict(self._device_jobs)

    def set_job(self, job: Job | None) -> None:
        """A new current job (None: no work until the next one). Listeners hear of it at once.

        A job with `device` set is that device's alone; a shared job (or None) ends every device's.
        """
        with self._lock:
            if job is not None and job.device:
                previous = self._device_jobs.get(job.device)
                self._device_jobs[job.device] = job
            else:
                previous = self._job
                self._job = job
                if self._device_jobs:
                    self._device_jobs.clear()
                    previous = None  # every device had its own job: all of them restart
            restart = job is None or job.clean or previous is None or previous.source != job.source
            if restart:
                self.generation += 1
        if job is not None:
            for listener in self._listeners:
                listener(job, restart)

    def next_work(self, device_rolls_version: bool = False, device: str = "") -> Work | None:
        """A new unit from the current job (`device`'s own, if it has one), or None when there is no job.

        When the job lets versions roll, each merkle root serves up to VERSIONS_PER_ROOT units
        with different version bits before the next extranonce2 is taken: cheaper than a new root.
        A device that rolls version bits itself gets a merkle root of its own at the job's base
        version instead, so its rolled headers can never equal another unit's.
        """
        with self._lock:
            job = self._device_jobs.get(device, self._job)
            if job is None:
                return None
            if job.fixed_merkle_root is not None or job.extranonce2_size == 0:
                return self._fixed_root_unit(job, device_rolls_version)
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

    def _fixed_root_unit(self, job: Job, device_rolls_version: bool) -> Work | None:
        """A unit of a job with one merkle root, under the lock: a standard job (docs/sv2.md §8), or
        one whose extranonce2 is 0 bytes (so every unit had the same root, and 16 version rolls in
        the headers would repeat). The n-th unit of the job takes version roll n mod 2^bits and
        ntime + n div 2^bits (a device rolling versions itself: ntime + n), so no two units of it
        share a header, whichever devices take them. ntime never runs ahead of the seconds since
        the job came (05-Mining-Protocol.md §5.3.11: at most min_ntime plus the time since
        SetNewPrevHash); when that space is used up, None until the clock allows the next second."""
        space = job.device  # a device's own job, or "" for the one shared by every device
        key = (job.fixed_merkle_root, job.coinb1 + job.extranonce1 + job.coinb2, b"".join(job.merkle_branch),
               job.prevhash, job.version, job.nbits, job.ntime)
        units = self._fixed_units.get(space)
        now = self.clock()
        if units is None or units.key != key:
            root = job.fixed_merkle_root
            if root is None:
                root = job.make_work(0, b"").merkle_root
            units = self._fixed_units[space] = _FixedRootUnits(key, now, root)
        rolls = 1 if device_rolls_version else 1 << bin(job.version_mask).count("1")
        n = units.next_unit
        ahead = n // rolls
        if ahead > now - units.started:
            if not units.starved_logged:
                units.starved_logged = True
                log.warning("%s: job %s: every version and ntime allowed so far is mined; waiting for the "
                            "clock (the job has no extranonce to give more work)", job.source, job.job_id)
            return None
        units.next_unit += 1
        version = roll_version(job.version, job.version_mask, spread_bits(n % rolls, job.version_mask))
        work_id = self._next_work_id
        self._next_work_id += 1
        work = job.work_from_root(work_id, b"", units.root, version, (job.ntime + ahead) & 0xFFFFFFFF)
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
