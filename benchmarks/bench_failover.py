"""Time to fail over (issue 14, fault 6), against two test pools on 127.0.0.1 with the real CPU device:
the miner mines on pool0, pool0 turns bad, and the clock runs until the devices mine on pool1.

- frozen: pool0 stops sending anything (the socket stays open);
- trickle: pool0 sends one byte a second and answers nothing;
- ignores submits: pool0 keeps sending a job a second but never answers a mining.submit.

Bar: < 10 s each. The miner's default timeouts (Timeouts(): line 5 s, answer 5 s, 3 unanswered).

    python benchmarks/bench_failover.py [--threads N]

Prints a table and the command that made it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from miner.core.dispatch import Dispatcher  # noqa: E402
from miner.core.engine import Miner  # noqa: E402
from miner.devices.cpu import CpuDevice  # noqa: E402
from miner.devices.work_source import DispatcherWorkSource  # noqa: E402
from miner.sources.stratum.failover import PoolManager  # noqa: E402
from miner.sources.stratum.url import PoolConfig, Timeouts  # noqa: E402
from tests.helpers.stratum_pool import StratumTestPool  # noqa: E402

EASY = 2.0**-16  # a share per ~65,536 hashes: submits go out every few ms on one CPU thread
BAR = 10.0
# Only the backoff is shortened (pool0 reconnects quickly but it is never mined on again here).
TIMEOUTS = replace(Timeouts(), connect=2, reply=2, backoff_base=0.2, backoff_cap=1.0)


async def misbehave(pool: StratumTestPool, mode: str) -> None:
    """Until cancelled: what pool0 does in this mode."""
    if mode == "frozen":
        pool.silent = True
        pool.auto_job = False
        await asyncio.Event().wait()
    if mode == "trickle":
        pool.silent = True
        pool.auto_job = False
        line = b'{"id":null,"method":"mining.notify","params":["ff","' + b"00" * 32 + b'"]}\n'
        while True:
            for byte in line:
                pool.send_raw(bytes([byte]))
                await asyncio.sleep(1.0)
    if mode == "ignores submits":
        pool.ignore_submits = True
        while True:
            pool.notify(clean=False)
            await asyncio.sleep(1.0)


async def one(mode: str, threads: int) -> tuple[float, str]:
    bad, good = StratumTestPool(difficulty=EASY), StratumTestPool(difficulty=EASY)
    await bad.start()
    await good.start()
    manager = PoolManager([PoolConfig(f"stratum+tcp://127.0.0.1:{p.port}", "worker.1", "x") for p in (bad, good)],
                          TIMEOUTS)
    dispatcher = Dispatcher()
    miner: Miner
    device = CpuDevice(DispatcherWorkSource(dispatcher), lambda n: miner.on_nonce(n), threads=threads)
    miner = Miner(manager, [device], dispatcher, status_interval=0)
    task = asyncio.create_task(miner.run())
    pool0, pool1 = manager.pools
    behaviour: asyncio.Task | None = None
    try:
        while not (manager.active is pool0 and pool1.alive and pool0.stats.accepted > 0):
            await asyncio.sleep(0.01)
        began = time.monotonic()
        behaviour = asyncio.create_task(misbehave(bad, mode))
        while manager.active is not pool1:
            await asyncio.sleep(0.01)
            if time.monotonic() - began > 120:
                return float("inf"), "no failover in 120 s"
        return time.monotonic() - began, pool0.last_error
    finally:
        if behaviour is not None:
            behaviour.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await behaviour
        miner.request_stop()
        await asyncio.wait_for(task, 15)
        await bad.stop()
        await good.stop()


async def main(threads: int) -> int:
    rows = []
    for mode in ("frozen", "trickle", "ignores submits"):
        took, why = await one(mode, threads)
        rows.append((mode, took, why))
    print(f"{'pool0 turns':<17} {'failover':>9}  {'bar':>5}  why")
    ok = True
    for mode, took, why in rows:
        passed = took < BAR
        ok &= passed
        print(f"{mode:<17} {took:>8.2f}s  {'ok' if passed else 'FAIL':>5}  {why}")
    print(f"\ncommand: python {' '.join(sys.argv)}")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sys.exit(asyncio.run(main(args.threads)))
