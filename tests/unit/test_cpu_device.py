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
    time.sleep(0.5)
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
    time.sleep(1.5)
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
