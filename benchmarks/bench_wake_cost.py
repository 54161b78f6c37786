"""What one wake costs this process, in CPU time, by how much code it runs: the reason a stick on
the event loop has its replies read at the range's end (docs/icarus.md §A5.2).

    python benchmarks/bench_wake_cost.py [--hz 14] [--seconds 6]

Each row sleeps and wakes `hz` times a second for `seconds` and divides the process's CPU time
(`time.process_time`: the scheduler's own count, kernel time included) by the wakes. The same
call run back to back, with no sleep in between, is the "hot" figure: what it costs with warm
caches. On a VM the difference is large: after a sleep the caches and TLBs are cold, and the
vCPU's wake from idle is charged to the task that woke. The rows grow with the code a wake runs,
so fewer wakes save more than faster code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import selectors
import time


def per_wake(wait, hz: float, seconds: float) -> float:
    count = int(hz * seconds)
    began = time.process_time()
    for _ in range(count):
        wait(1.0 / hz)
    return (time.process_time() - began) / count


def hot(call, count: int = 2000) -> float:
    began = time.process_time()
    for _ in range(count):
        call()
    return (time.process_time() - began) / count


def asyncio_timer(hz: float, seconds: float, work: int = 0) -> tuple[float, float]:
    """An asyncio timer that reschedules itself (as a stick's tick does); per wake, hot."""

    def spin() -> int:
        total = 0
        for i in range(work):
            total += i * i
        return total

    async def main() -> float:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        left = int(hz * seconds)

        def tick() -> None:
            nonlocal left
            spin()
            left -= 1
            if left:
                loop.call_later(1.0 / hz, tick)
            else:
                done.set_result(None)

        began = time.process_time()
        loop.call_later(1.0 / hz, tick)
        await done
        return (time.process_time() - began) / int(hz * seconds)

    async def hot_main() -> float:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        left = 2000

        def tick() -> None:
            nonlocal left
            spin()
            left -= 1
            if left:
                loop.call_soon(tick)
            else:
                done.set_result(None)

        began = time.process_time()
        loop.call_soon(tick)
        await done
        return (time.process_time() - began) / 2000

    return asyncio.run(main()), asyncio.run(hot_main())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hz", type=float, default=14.0, help="wakes a second (default 14: a U3's work rate)")
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    hz, seconds = args.hz, args.seconds
    epoll = select.epoll()
    selector = selectors.EpollSelector()
    rows: list[tuple[str, float, float]] = [
        ("time.sleep", per_wake(time.sleep, hz, seconds), hot(lambda: time.sleep(0))),
        ("select.epoll().poll", per_wake(epoll.poll, hz, seconds), hot(lambda: epoll.poll(0))),
        ("selectors.EpollSelector.select", per_wake(selector.select, hz, seconds), hot(lambda: selector.select(0))),
    ]
    for work, name in ((0, "asyncio timer, empty callback"), (1000, "asyncio timer, ~50 us of Python")):
        woke, warm = asyncio_timer(hz, seconds, work)
        rows.append((name, woke, warm))
    print(f"command: python benchmarks/bench_wake_cost.py --hz {hz:g} --seconds {seconds:g}")
    print(f"load average {os.getloadavg()[0]:.2f}; CPU time per wake at {hz:g} wakes/s, and the same call run hot")
    print()
    print(f"{'operation':34} {'us/wake':>9} {'us hot':>8} {'ratio':>7} {'% core at hz':>13}")
    for name, woke, warm in rows:
        ratio = woke / warm if warm > 0 else float("inf")
        print(f"{name:34} {woke * 1e6:9.1f} {warm * 1e6:8.1f} {ratio:7.1f} {woke * hz * 100:13.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
