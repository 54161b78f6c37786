"""The dispatcher: holds the current job and cuts work units from it for every device.

Each unit gets a fresh extranonce2, so no two devices (or two units of one device) ever hash the
same header. Units are remembered by id so the share path can find the work a nonce belongs to.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from miner.work import Job, Work

JobListener = Callable[[Job], None]


class Dispatcher:
    def __init__(self, remember: int = 100_000):
        self._lock = threading.Lock()
        self._job: Job | None = None
        self._next_work_id = 1
        self._extranonce2 = 0
        self._works: OrderedDict[int, Work] = OrderedDict()
        self._remember = remember
        self._listeners: list[JobListener] = []
        self.generation = 0  # bumped on every clean job

    @property
    def job(self) -> Job | None:
        return self._job

    def add_listener(self, listener: JobListener) -> None:
        """Called (from the caller's thread) with every new job; devices drop old work on clean."""
        self._listeners.append(listener)

    def set_job(self, job: Job | None) -> None:
        """A new current job (None: no work until the next one). Listeners hear of it at once."""
        with self._lock:
            previous = self._job
            self._job = job
            if job is None or job.clean or previous is None or previous.source != job.source:
                self.generation += 1
        if job is not None:
            for listener in self._listeners:
                listener(job)

    def next_work(self) -> Work | None:
        """A new unit from the current job, or None when there is no job."""
        with self._lock:
            job = self._job
            if job is None:
                return None
            work_id = self._next_work_id
            self._next_work_id += 1
            extranonce2 = job.extranonce2_for(self._extranonce2)
            self._extranonce2 += 1
        work = job.make_work(work_id, extranonce2)
        with self._lock:
            self._works[work_id] = work
            while len(self._works) > self._remember:
                self._works.popitem(last=False)
        return work

    def lookup(self, work_id: int) -> Work | None:
        with self._lock:
            return self._works.get(work_id)
