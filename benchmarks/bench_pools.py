"""Real pools' numbers (issue 13), against the test pool on 127.0.0.1 with the real CPU device:

- time from the authorize reply to the first hash, against a pool in ckpool's order (bar < 1 s);
- peak RSS and stop latency under a flood at difficulty 1e-9 (bar < 200 MB, stop < 2 s);
- stale-unsent share fraction with 5 clean jobs a second (bar < 5 %);
- clean-job to new-work latency on the CPU device (bar < 10 ms).

    python benchmarks/bench_pools.py [--flood-seconds 60] [--clean-seconds 10] [--threads N]

Prints a table and the command that made it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import statistics
import sys
import threading
import time
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from miner.core.dispatch import Dispatcher  # noqa: E402
from miner.core.engine import Miner  # noqa: E402
from miner.devices.cpu import CpuDevice, default_threads  # noqa: E402
from miner.devices.work_source import DispatcherWorkSource  # noqa: E402
from miner.sources.sandbox import sandbox_job  # noqa: E402
from miner.sources.stratum.failover import PoolManager  # noqa: E402
from miner.sources.stratum.url import PoolConfig, Timeouts  # noqa: E402
from tests.helpers.stratum_pool import StratumTestPool  # noqa: E402

EASY = 2.0**-16
TIMEOUTS = Timeouts(connect=2, reply=2, silence=30, work=600, backoff_base=0.2, backoff_cap=1.0)


class FirstWork(DispatcherWorkSource):
    """Notes when the first work unit (the first hash) and the first unit of each job go out."""

    def __init__(self, dispatcher: Dispatcher):
        super().__init__(dispatcher)
        self.first_at: float | None = None
        self.job_first: dict[str, float] = {}
        self.new_job = threading.Event()

    def next_work(self, device_rolls_version: bool = False):
        work = super().next_work(device_rolls_version)
        if work is not None:
            now = time.monotonic()
            if self.first_at is None:
                self.first_at = now
            if work.job.job_id not in self.job_first:
                self.job_first[work.job.job_id] = now
                self.new_job.set()
        return work


@contextlib.asynccontextmanager
async def mining(pool: StratumTestPool, threads: int):
    dispatcher = Dispatcher()
    work = FirstWork(dispatcher)
    manager = PoolManager([PoolConfig(f"stratum+tcp://localhost:{pool.port}", "bench", "x")], TIMEOUTS)
    miner: Miner
    device = CpuDevice(work, lambda n: miner.on_nonce(n), threads=threads, nonces_per_work=1 << 20)
    miner = Miner(manager, [device], dispatcher, status_interval=0)
    task = asyncio.create_task(miner.run())
    try:
        yield manager, miner, task, work
    finally:
        miner.request_stop()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pool.stop()


async def until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.01)


async def authorize_to_first_hash(threads: int) -> float:
    pool = StratumTestPool(difficulty=EASY, ckpool_order=True)
    await pool.start()
    async with mining(pool, threads) as (_, _, _, work):
        await until(lambda: work.first_at is not None and pool.authorized_at is not None, 10)
        assert work.first_at is not None and pool.authorized_at is not None
        return work.first_at - pool.authorized_at


async def flood(seconds: float, threads: int) -> tuple[float, float, int, int, int]:
    """(peak RSS MB, stop latency s, shares the pool saw, shares answered as the miner counts, nonces shed)."""
    pool = StratumTestPool(difficulty=EASY)
    await pool.start()
    async with mining(pool, threads) as (manager, miner, task, _):
        await pool.wait_submits(1, accepted=True)
        pool.set_difficulty(1e-9)
        pool.notify(clean=True)
        await asyncio.sleep(seconds)  # the flood's duration
        began = time.monotonic()
        miner.request_stop()
        await task
        stop = time.monotonic() - began
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        answered = manager.stats.accepted + manager.stats.rejected_total
        return peak, stop, len(pool.submits), answered, miner.nonces.shed


async def stale_fraction(seconds: float, threads: int) -> tuple[float, int, int]:
    # a share per ~65,536 hashes: tens of shares a second on a CPU, as on regtest; the test pool
    # shares this process's loop, so a much lower difficulty would measure the pool, not the miner
    pool = StratumTestPool(difficulty=EASY)
    await pool.start()
    async with mining(pool, threads) as (manager, miner, task, _):
        await pool.wait_submits(1, accepted=True)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pool.notify(clean=True, new_block=True)
            await asyncio.sleep(0.2)  # 5 clean jobs a second
        miner.request_stop()
        await task
        stats = manager.stats
        total = stats.accepted + stats.rejected_total + stats.stale
        return (stats.stale / total if total else 0.0), stats.stale, total


def clean_job_latency(rounds: int, threads: int) -> float:
    dispatcher = Dispatcher()
    job = sandbox_job(difficulty=1e6)
    dispatcher.set_job(job)
    work = FirstWork(dispatcher)
    device = CpuDevice(work, lambda n: None, threads=threads)
    device.start()
    latencies = []
    try:
        time.sleep(0.5)  # let every thread measure its rate
        for n in range(rounds):
            work.new_job.clear()
            job_id = f"clean{n}"
            sent = time.monotonic()
            dispatcher.set_job(replace(job, job_id=job_id, clean=True))
            device.restart_work()
            work.new_job.wait(10)
            latencies.append(work.job_first[job_id] - sent)
            time.sleep(0.05)
    finally:
        device.stop()
    return statistics.median(latencies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood-seconds", type=float, default=60.0)
    parser.add_argument("--clean-seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=default_threads())
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    first = asyncio.run(authorize_to_first_hash(args.threads))
    peak, stop, seen, answered, shed = asyncio.run(flood(args.flood_seconds, args.threads))
    fraction, stale, total = asyncio.run(stale_fraction(args.clean_seconds, args.threads))
    latency = clean_job_latency(21, args.threads)
    rows = [
        ("authorize reply -> first hash (ckpool order)", f"{first * 1000:.1f} ms", "< 1 s"),
        (f"peak RSS, {args.flood_seconds:g} s flood at diff 1e-9", f"{peak:.0f} MB", "< 200 MB"),
        ("stop latency after the flood", f"{stop:.2f} s", "< 2 s"),
        ("  flood: shares the pool saw / answers counted", f"{seen} / {answered}", "equal"),
        ("  flood: nonces shed (queue full)", f"{shed}", "counted"),
        ("stale-unsent fraction, 5 clean jobs/s", f"{fraction * 100:.1f} % ({stale}/{total})", "< 5 %"),
        ("clean job -> new work, CPU device (median)", f"{latency * 1000:.2f} ms", "< 10 ms"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>22}  bar")
    for name, value, bar in rows:
        print(f"{name:<{width}}  {value:>22}  {bar}")
    print(f"\ncommand: python benchmarks/bench_pools.py --flood-seconds {args.flood_seconds:g} "
          f"--clean-seconds {args.clean_seconds:g} --threads {args.threads}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
