import threading
import time

from miner.core import hashing
from miner.core.dispatch import Dispatcher
from miner.core.shares import Verdict, check_nonce
from miner.devices.cpu import CpuDevice
from miner.devices.work_source import DispatcherWorkSource
from miner.sources.sandbox import sandbox_job


def run_device(dispatcher: Dispatcher, seconds: float, until_nonces: int | None = None, **kwargs):
    """Mine for `seconds`; with `until_nonces`, keep going (up to 20 s) until that many are found,
    so a machine busy with other work still gets its sample."""
    nonces = []
    lock = threading.Lock()

    def on_nonce(n):
        with lock:
            nonces.append(n)

    device = CpuDevice(DispatcherWorkSource(dispatcher), on_nonce, chunk=1 << 16, **kwargs)
    device.start()
    time.sleep(seconds)
    deadline = time.monotonic() + 20
    while until_nonces is not None and len(nonces) < until_nonces and time.monotonic() < deadline:
        time.sleep(0.05)
    device.stop()
    return device, nonces


def test_every_reported_nonce_is_a_share_of_its_work():
    dispatcher = Dispatcher()
    dispatcher.set_job(sandbox_job(difficulty=0.0005))
    device, nonces = run_device(dispatcher, 1.0, until_nonces=6, threads=2)
    assert device.stats.hashes.total > 0
    assert len(nonces) > 5
    for n in nonces:
        work = dispatcher.lookup(n.work_id)
        assert check_nonce(work, n, device_target=work.target).verdict is Verdict.SHARE
    # two threads each report their own hashes
    assert all(m.total > 0 for m in device.thread_hashes)
    assert device.stats.hashes.total == sum(m.total for m in device.thread_hashes)


def test_no_job_means_idle_then_work_resumes():
    dispatcher = Dispatcher()
    found = []
    device = CpuDevice(DispatcherWorkSource(dispatcher), found.append, threads=1, engine="portable", chunk=1 << 12)
    device.start()
    time.sleep(0.3)
    assert device.stats.hashes.total == 0
    dispatcher.set_job(sandbox_job(difficulty=0.001))
    device.work_available()
    deadline = time.monotonic() + 20  # waits on the hashes, not a fixed time: a busy machine is slow to start
    while device.stats.hashes.total == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    device.stop()
    assert device.stats.hashes.total > 0


def test_clean_job_drops_old_work():
    dispatcher = Dispatcher()
    first = sandbox_job(difficulty=0.0005)
    dispatcher.set_job(first)
    nonces = []
    device = CpuDevice(DispatcherWorkSource(dispatcher), nonces.append, threads=2, chunk=1 << 16)
    dispatcher.add_listener(lambda job, restart: device.restart_work() if restart else None)
    device.start()
    time.sleep(0.5)
    second = sandbox_job(difficulty=0.0005)
    dispatcher.set_job(second)
    switched = time.monotonic()
    # at least 1.5 s, and until a nonce of the new job has come (a busy machine finds it later)
    deadline = switched + 20
    while time.monotonic() < deadline and (time.monotonic() < switched + 1.5 or not any(
            dispatcher.lookup(n.work_id).job is second for n in list(nonces))):
        time.sleep(0.05)
    device.stop()
    late_old = [n for n in nonces
                if dispatcher.lookup(n.work_id).job is first and n.found_at > switched + 0.5]
    assert not late_old
    assert any(dispatcher.lookup(n.work_id).job is second for n in nonces)


def test_units_never_share_a_header():
    dispatcher = Dispatcher()
    dispatcher.set_job(sandbox_job())
    headers = {dispatcher.next_work().header for _ in range(1000)}
    assert len(headers) == 1000


def test_default_engine_is_the_fastest():
    device = CpuDevice(lambda: None, lambda n: None, threads=1)
    assert device.engine == hashing.engines()[0]


def test_scans_are_sized_from_the_measured_rate():
    from miner.devices.cpu import DEFAULT_CHUNK, FIRST_CHUNK, MIN_CHUNK, SCAN_SECONDS, chunk_for
    assert chunk_for(None) == FIRST_CHUNK
    assert chunk_for(30e6) == int(30e6 * SCAN_SECONDS)  # ~4 ms of hashing
    assert chunk_for(1e12) == DEFAULT_CHUNK and chunk_for(1e12, 1 << 16) == 1 << 16
    assert chunk_for(10.0) == MIN_CHUNK  # 500 threads on 2 cores: tiny scans, stop stays quick


class RecordingWork(DispatcherWorkSource):
    """Notes when a unit of each job is first handed out."""

    def __init__(self, dispatcher: Dispatcher):
        super().__init__(dispatcher)
        self.first_unit: dict[str, float] = {}
        self.new_job = threading.Event()

    def next_work(self, device_rolls_version: bool = False, device: str = ""):
        work = super().next_work(device_rolls_version, device)
        if work is not None and work.job.job_id not in self.first_unit:
            self.first_unit[work.job.job_id] = time.monotonic()
            self.new_job.set()
        return work


def test_a_clean_job_reaches_every_thread_long_before_a_full_chunk_would_end():
    """The bound comes from this machine's measured rate: the old fixed 2^21-nonce scan would keep a
    thread on the dead job for DEFAULT_CHUNK / rate seconds."""
    from dataclasses import replace

    from miner.devices.cpu import DEFAULT_CHUNK
    dispatcher = Dispatcher()
    job = sandbox_job(difficulty=1e6)  # no nonces: only the work turnover is watched
    dispatcher.set_job(job)
    work = RecordingWork(dispatcher)
    device = CpuDevice(work, lambda n: None, threads=1)
    device.start()
    try:
        deadline = time.monotonic() + 20
        while device.thread_hashes[0].total < 4 * DEFAULT_CHUNK // 64 and time.monotonic() < deadline:
            time.sleep(0.05)
        began = time.monotonic()
        hashed = device.thread_hashes[0].total
        time.sleep(0.3)
        rate = (device.thread_hashes[0].total - hashed) / (time.monotonic() - began)
        latencies = []
        for n in range(5):
            work.new_job.clear()
            job_id = f"clean{n}"
            sent = time.monotonic()
            dispatcher.set_job(replace(job, job_id=job_id, clean=True))
            device.restart_work()
            assert work.new_job.wait(10)
            latencies.append(work.first_unit[job_id] - sent)
    finally:
        device.stop()
    full_chunk = DEFAULT_CHUNK / rate
    assert sorted(latencies)[2] < max(0.02, full_chunk / 4), (latencies, full_chunk)


def test_many_more_threads_than_cores_warn_and_still_stop_quickly(caplog):
    """`-t 500` on 2 cores: one warning, and stop within its 2 s bound (old 2^21-nonce scans shared
    by hundreds of threads kept each thread in one scan for many seconds)."""
    import logging

    from miner.devices.cpu import default_threads
    caplog.set_level(logging.WARNING)
    dispatcher = Dispatcher()
    dispatcher.set_job(sandbox_job(difficulty=1e6))
    threads = 100 * default_threads()
    device = CpuDevice(DispatcherWorkSource(dispatcher), lambda n: None, threads=threads)
    assert sum("more threads than cores" in r.getMessage() for r in caplog.records) == 1
    device.start()
    deadline = time.monotonic() + 20
    while device.stats.hashes.total < threads * 4096 and time.monotonic() < deadline:
        time.sleep(0.05)  # every thread is into its scans
    began = time.monotonic()
    device.stop()
    assert time.monotonic() - began < 3.0


def test_a_unit_that_cannot_be_built_is_logged_once_and_hashing_goes_on(caplog):
    """Supervision (issue 14, fault 8): a work source that raises (here as struct.pack did on a
    node's curtime 2^33) costs the thread its slice, not its life."""
    import logging
    import struct

    dispatcher = Dispatcher()
    dispatcher.set_job(sandbox_job(difficulty=0.001))
    inner = DispatcherWorkSource(dispatcher)
    failures = {"left": 20}

    class Failing:
        @property
        def job(self):
            return inner.job

        def job_for(self, device):
            return inner.job_for(device)

        def next_work(self, device_rolls_version=False, device=""):
            if failures["left"]:
                failures["left"] -= 1
                raise struct.error("argument out of range")
            return inner.next_work(device_rolls_version, device)

        def reserve_extranonce2(self, count):
            return inner.reserve_extranonce2(count)

        def register_work(self, job, extranonce2, version=None):
            return inner.register_work(job, extranonce2, version)

    caplog.set_level(logging.INFO)
    device = CpuDevice(Failing(), lambda n: None, threads=1, engine="portable", chunk=1 << 12)
    device.start()
    deadline = time.monotonic() + 30
    while device.stats.hashes.total == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    device.stop()
    assert failures["left"] == 0 and device.stats.hashes.total > 0  # the one thread lived on
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "unexpected error; dropping its work" in errors[0].getMessage() and errors[0].exc_info


def test_a_flood_of_non_clean_jobs_moves_hashing_to_the_newest_job():
    """Issue 14, fault 7: at 1000 non-clean notifies a second the CPU device kept hashing a unit of
    a job that had left the pool's 64-job window, and its valid shares were counted stale."""
    from dataclasses import replace

    dispatcher = Dispatcher()
    first = sandbox_job(difficulty=0.0005)
    dispatcher.set_job(first)
    found = []
    device = CpuDevice(DispatcherWorkSource(dispatcher), found.append, threads=2, engine="portable", chunk=1 << 12)
    device.start()
    deadline = time.monotonic() + 30
    while not found and time.monotonic() < deadline:
        time.sleep(0.01)
    jobs = [replace(first, job_id=f"j{i}", ntime=first.ntime + i, clean=False) for i in range(200)]
    for job in jobs:
        dispatcher.set_job(job)
        time.sleep(0.001)
    published = time.monotonic()
    newest = jobs[-1]
    deadline = published + 30

    def settled() -> bool:
        """A nonce on the newest job, and a few found well after the flood (a chunk is ~4 ms): waited
        for, not slept for, as a loaded machine's portable engine finds one every second or so."""
        now_found = list(found)
        return (any(n.found_at > published and dispatcher.lookup(n.work_id).job == newest for n in now_found)
                and sum(n.found_at > published + 0.1 for n in now_found) >= 3)

    while time.monotonic() < deadline and not settled():
        time.sleep(0.01)
    device.stop()
    later = [n for n in found if n.found_at > published + 0.1]
    assert later, "no nonce after the flood"
    window = {job.job_id for job in jobs[-64:]}
    old = [n for n in later if dispatcher.lookup(n.work_id).job.job_id not in window]
    assert not old, f"{len(old)} of {len(later)} nonces found on jobs out of the 64-job window"
