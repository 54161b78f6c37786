"""The CPU device: worker threads scanning nonce ranges with the native core.

Each work unit's nonce space is cut into one slice per thread; a thread that finishes its slice
takes the next slice waiting, fetching a new unit when none is left. A clean job bumps the
generation, which makes every thread drop its slice after the chunk it is hashing. Each thread
sizes its chunks from its own measured rate to last about SCAN_SECONDS, so work in flight stops
within ~10 ms of a clean job on any machine and with any number of threads (a thread sharing a
core with many others measures a lower rate and scans less), while the C calls still dominate.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass

from miner.core import hashing
from miner.core.lograte import LogLimiter
from miner.core.stats import RateMeter
from miner.core.targets import NONCE_SPACE
from miner.core.work import Nonce, Work
from miner.devices.base import Device, DeviceSpec, DeviceState, DriverInfo, NonceSink, WorkSource

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 1 << 21  # the largest scan: ~70 ms at 30 MH/s per thread
FIRST_CHUNK = 1 << 12  # before a thread has measured its rate
MIN_CHUNK = 1 << 10
SCAN_SECONDS = 0.004  # a clean job waits at most about this long for a thread to notice it


@dataclass(frozen=True, slots=True)
class Slice:
    work: Work
    start: int
    count: int
    generation: int


def split_range(start: int, count: int, parts: int) -> list[tuple[int, int]]:
    """Cut [start, start+count) into `parts` contiguous pieces, sizes differing by at most one."""
    if parts < 1:
        raise ValueError("parts must be >= 1")
    base, extra = divmod(count, parts)
    pieces = []
    pos = start
    for i in range(parts):
        size = base + (1 if i < extra else 0)
        pieces.append((pos, size))
        pos += size
    return pieces


def scan_threaded(header: bytes, start: int, count: int, target: int, threads: int,
                  engine: str | None = None) -> list[int]:
    """One scan done by `threads` threads over disjoint slices; the same result as one scan."""
    results: list[list[int]] = [[] for _ in range(threads)]

    def worker(index: int, piece_start: int, piece_count: int) -> None:
        results[index] = hashing.scan(header, piece_start, piece_count, target, engine)

    workers = [threading.Thread(target=worker, args=(i, s, c))
               for i, (s, c) in enumerate(split_range(start, count, threads))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return [n for part in results for n in part]


def chunk_for(rate: float | None, largest: int = DEFAULT_CHUNK) -> int:
    """Nonces for one scan: about SCAN_SECONDS at a thread's measured rate (hashes per second of
    wall time), at most `largest`; FIRST_CHUNK before the rate is known."""
    if rate is None:
        return min(FIRST_CHUNK, largest)
    return max(MIN_CHUNK, min(largest, int(rate * SCAN_SECONDS)))


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class CpuDevice(Device):
    """Hashes on `threads` CPU threads; reports every nonce at or under the work's share target."""

    driver = "cpu"
    counts_hashes = True

    def __init__(self, work: WorkSource, sink: NonceSink,
                 threads: int | None = None, engine: str | None = None, chunk: int = DEFAULT_CHUNK,
                 nonces_per_work: int = NONCE_SPACE, index: int = 0):
        self.threads = threads or default_threads()
        if self.threads < 1:
            raise ValueError(f"threads: must be >= 1, got {threads}")
        self.engine = hashing.check_engine(engine)
        super().__init__(work, sink, f"cpu{index}")
        cores = default_threads()
        if self.threads > cores:
            log.warning("%s: %d threads on %d core(s): more threads than cores only add switching; "
                        "-t %d is enough", self.name, self.threads, cores, cores)
        self.model = f"{self.threads}T {self.engine}"
        self._chunk = chunk
        # Less than the whole nonce space per unit makes units (and rolled versions) turn over faster.
        self._nonces_per_work = nonces_per_work
        self._slices: deque[Slice] = deque()
        self._lock = threading.Lock()  # the slice queue and the generation
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._generation = 0
        self._workers: list[threading.Thread] = []
        self.thread_hashes = [RateMeter() for _ in range(self.threads)]
        self._errors = LogLimiter(log, 10.0)  # a job that fails for every unit: one line per 10 s

    def target_for(self, work: Work) -> int:
        # The CPU reports exactly the nonces under the share target it was given.
        return work.target

    def nominal_hashrate(self) -> float | None:
        return self.stats.hashes.rate(60.0) or None

    def expected_nonce_interval(self) -> float | None:
        return None  # share-target nonces come as rarely as the pool's difficulty says

    def details(self) -> dict[str, object]:
        return {"Threads": self.threads, "Engine": self.engine}

    # -------------------------------------------------------------------- control
    def start(self) -> None:
        self._stop.clear()
        self.stats.set_state(DeviceState.ALIVE)
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index,), name=f"cpu-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop every thread; waits `timeout` s in all (not per thread), whatever the thread count."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        stuck = sum(worker.is_alive() for worker in self._workers)
        if stuck:
            log.warning("%s: %d thread(s) still in a scan at stop; they end with the process", self.name, stuck)
        self._workers.clear()

    def restart_work(self) -> None:
        """Drop everything queued or in progress (a clean job); threads fetch new work."""
        with self._lock:
            self._generation += 1
            self._slices.clear()
        self._wake.set()

    def work_available(self) -> None:
        """Wake idle threads: there is work again after a time with none."""
        self._wake.set()

    # -------------------------------------------------------------------- workers
    def _current(self, piece: Slice) -> bool:
        """The slice is still worth hashing: no clean job since, and its job is the source's current
        one. cgminer's rule for work not yet hashed (cgminer.c `stale_work(work, share=false)`: a
        Stratum job id other than the pool's current one is stale): a non-clean job leaves the
        shares already found valid, but new hashing moves to it, so a flood of non-clean notifies
        can never leave a thread on a job the pool's window (session.py MAX_LIVE_JOBS) has dropped."""
        if piece.generation != self._generation:
            return False
        job, current = piece.work.job, self.work_source.job_for(self.name)
        return job is current or job == current

    def _next_slice(self) -> Slice | None:
        with self._lock:
            while self._slices and not self._current(self._slices[0]):
                self._slices.popleft()  # cut from a job that has been replaced meanwhile
            if not self._slices:
                work = self.work_source.next_work(device=self.name)
                if work is None:
                    return None
                for start, count in split_range(0, self._nonces_per_work, self.threads):
                    self._slices.append(Slice(work, start, count, self._generation))
            return self._slices.popleft()

    def _run(self, index: int) -> None:
        """A hashing thread, supervised: an unexpected error (a unit that cannot be built, a scan
        that raises) is logged with its traceback once per kind, the slices in hand are dropped and
        the thread goes on with fresh work after a short pause, so one bad job never leaves the
        device at 0 H/s."""
        while not self._stop.is_set():
            try:
                self._hash(index)
                return
            except Exception as exc:  # noqa: BLE001 - the supervisor's job is to outlive anything
                if self._errors.log(time.monotonic(), logging.DEBUG, type(exc).__name__, "cpu error"):
                    log.error("%s: hashing thread %d: unexpected %s; dropping its work and going on (at most one "
                              "line per 10 s for this)", self.name, index, type(exc).__name__, exc_info=True)
                self.restart_work()
                self._stop.wait(0.05)  # a job that fails for every unit costs 20 tries a second, no more

    def _hash(self, index: int) -> None:
        meter = self.thread_hashes[index]
        rate: float | None = None  # this thread's hashes per second, wall time (sharing a core included)
        while not self._stop.is_set():
            piece = self._next_slice()
            if piece is None:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            pos, end = piece.start, piece.start + piece.count
            work = piece.work
            while pos < end and self._current(piece) and not self._stop.is_set():
                count = min(chunk_for(rate, self._chunk), end - pos)
                began = time.monotonic()
                found = hashing.scan(work.header, pos, count, work.target, self.engine)
                now = time.monotonic()
                if now > began:
                    measured = count / (now - began)
                    rate = measured if rate is None else 0.7 * rate + 0.3 * measured
                meter.add(count, now)
                self.stats.add_hashes(count, work.job.source, now)
                for nonce in found:
                    self.report_nonce(Nonce(work.work_id, nonce, device=self.name, found_at=now))
                pos += count


def create(spec: DeviceSpec, work: WorkSource, sink: NonceSink, index: int) -> CpuDevice:
    """`--device cpu,threads=N,engine=E` (the -t/--engine flags do the same)."""
    return CpuDevice(work, sink, threads=spec.option("threads", int), engine=spec.option("engine", str), index=index)


def emulator_main(name: str, argv: list[str]) -> int:
    print("the CPU needs no emulator: it is real", file=sys.stderr)
    return 2


DRIVER = DriverInfo(name="cpu", description="this computer's CPU, with the native sha256d core", create=create,
                    emulator_main=emulator_main)
