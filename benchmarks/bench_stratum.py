"""Stratum job path speed: notify bytes in -> a Work unit in the hands of every device, and work
units cut per second from one job on one core.

    python benchmarks/bench_stratum.py [--rounds N]

Prints a table; the bars (issue 3) are < 5 ms notify-to-work for 50 devices and >= 50,000 units/s.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time

from miner.core.dispatch import Dispatcher
from miner.core.targets import difficulty_to_target
from miner.core.work import Job
from miner.sources.stratum.session import PublishJob, StratumSession
from miner.sources.stratum.url import PoolConfig

BRANCHES = 12  # a block of ~3000 transactions
COINB1 = os.urandom(60)
COINB2 = os.urandom(180)


def notify_line(n: int, clean: bool) -> bytes:
    params = [f"{n:x}", os.urandom(32).hex(), COINB1.hex(), COINB2.hex(),
              [os.urandom(32).hex() for _ in range(BRANCHES)], "20000000", "17034219", f"{0x6553F100 + n:08x}", clean]
    return json.dumps({"id": None, "method": "mining.notify", "params": params}).encode() + b"\n"


def notify_to_work_latency(devices: int, rounds: int) -> float:
    """Median seconds from receive_data(notify) until every device listener holds a new unit."""
    dispatcher = Dispatcher()
    held: list = [None] * devices
    for i in range(devices):
        def listener(job, restart, i=i):
            held[i] = dispatcher.next_work()
        dispatcher.add_listener(listener)
    # The pool's session (codec and rules) straight into the dispatcher, as the engine does with
    # the active pool's jobs; no socket.
    session = StratumSession(PoolConfig("stratum+tcp://127.0.0.1:1", "u", version_rolling=False), "pool0")
    session.connection_made(0.0)
    session.data_to_send()

    def feed(data: bytes) -> None:
        for event in session.receive_data(data, 0.0):
            if isinstance(event, PublishJob):
                dispatcher.set_job(event.job)

    feed(b'{"id":1,"result":[[],"0800a1b2",4],"error":null}\n{"id":2,"result":true,"error":null}\n')
    lines = [notify_line(n, clean=True) for n in range(rounds)]
    samples = []
    for line in lines:
        t0 = time.perf_counter()
        feed(line)
        samples.append(time.perf_counter() - t0)
        current = session.current_job
        assert current is not None and all(w is not None and w.job.ntime == current.ntime for w in held)
    return statistics.median(samples)


def units_per_second(version_mask: int, seconds: float = 1.5) -> float:
    dispatcher = Dispatcher()
    dispatcher.set_job(Job("1", os.urandom(32), COINB1, COINB2, tuple(os.urandom(32) for _ in range(BRANCHES)),
                           0x20000000, 0x17034219, 0x6553F100, True, os.urandom(4), 4,
                           difficulty_to_target(1024), version_mask, "bench"))
    count = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(1000):
            dispatcher.next_work()
        count += 1000
    return count / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=300)
    args = p.parse_args()
    logging.disable(logging.WARNING)  # the pool manager's "mining on" lines are not results
    print(f"{'measure':<52} {'value':>12}  bar")
    print("-" * 76)
    for devices in (1, 50):
        median = notify_to_work_latency(devices, args.rounds)
        bar = "< 5 ms" if devices == 50 else ""
        print(f"{f'notify -> work, {devices} devices (median)':<52} {median * 1000:>9.3f} ms  {bar}")
    for label, mask in (("no version rolling", 0), ("version rolling, 16 per root", 0x1FFFE000)):
        print(f"{f'work units/s, one core, {label}':<52} {units_per_second(mask):>12,.0f}  >= 50,000")


if __name__ == "__main__":
    main()
