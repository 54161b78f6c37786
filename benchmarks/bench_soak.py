"""Soak numbers (issue 14): the `miner` command in a subprocess against a test pool on 127.0.0.1.

- RSS over a soak with the pool dropping the connection every 10 s (bar: growth < 2 MB from the
  end of the first minute, when the pools, the API and the code paths have all been touched, to
  the end);
- stop latency under the share flood: pool difficulty 1e-9 (every hash a share), SIGTERM, time
  until the process has exited (bar: < 2 s).

    python benchmarks/bench_soak.py [--seconds 600] [--threads 1]

Prints a table and the command that made it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.helpers.bcoin_node import ROOT, free_port  # noqa: E402
from tests.helpers.stratum_pool import StratumTestPool  # noqa: E402

RECONNECT_EVERY = 10.0
WARM_UP = 60.0
RSS_BAR_MB = 2.0
STOP_BAR = 2.0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def start_miner(pool: StratumTestPool, threads: int, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "miner", "-o", f"stratum+tcp://127.0.0.1:{pool.port}", "-u", "w.1", "-p", "x",
        "--cpu", "-t", str(threads), "--hotplug", "0", "--no-tui", "--api-listen", "--api-port", str(free_port()),
        *extra, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def soak(seconds: float, threads: int, stats: str) -> tuple[float, float, float, int, int]:
    """(RSS after the warm-up MB, RSS at the end MB, largest RSS MB, reconnects, shares the pool saw)."""
    pool = StratumTestPool(difficulty=0.001)
    await pool.start()
    process = await start_miner(pool, threads, "--stats-file", stats)
    began = time.monotonic()
    warm = peak = end = 0.0
    reconnects = 0
    try:
        next_drop = began + RECONNECT_EVERY
        while (now := time.monotonic()) - began < seconds:
            await asyncio.sleep(1.0)
            rss = rss_mb(process.pid)
            peak = max(peak, rss)
            if not warm and now - began >= WARM_UP:
                warm = rss
            end = rss
            if now >= next_drop:
                if pool.active:
                    pool.drop_clients()
                    reconnects += 1
                next_drop += RECONNECT_EVERY
        return warm or end, end, peak, reconnects, len(pool.submits)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 15)
        await pool.stop()


async def stop_under_flood(threads: int, stats: str) -> tuple[float, int, float]:
    """(seconds from SIGTERM to exit, shares the pool saw, RSS just before the signal MB)."""
    pool = StratumTestPool(difficulty=1e-9)
    await pool.start()
    process = await start_miner(pool, threads, "--stats-file", stats)
    try:
        await pool.wait_submits(200, timeout=60)
        await asyncio.sleep(5.0)  # the flood in full swing
        rss = rss_mb(process.pid)
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        return time.monotonic() - began, len(pool.submits), rss
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await pool.stop()


async def main(seconds: float, threads: int) -> int:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        stop, flood_shares, flood_rss = await stop_under_flood(threads, os.path.join(tmp, "flood.json"))
        warm, end, peak, reconnects, shares = await soak(seconds, threads, os.path.join(tmp, "soak.json"))
    growth = end - warm
    rows = [
        (f"RSS growth, {seconds:g} s soak, {reconnects} reconnects", f"{growth:+.2f} MB",
         f"< {RSS_BAR_MB:g} MB", growth < RSS_BAR_MB),
        ("RSS after 60 s / at the end / largest", f"{warm:.1f} / {end:.1f} / {peak:.1f} MB", "", True),
        ("shares the pool saw in the soak", f"{shares}", "", True),
        ("stop latency under the flood (SIGTERM to exit)", f"{stop:.2f} s", f"< {STOP_BAR:g} s", stop < STOP_BAR),
        ("flood: shares seen / RSS before the signal", f"{flood_shares} / {flood_rss:.1f} MB", "", True),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>26}  bar")
    for name, value, bar, ok in rows:
        print(f"{name:<{width}}  {value:>26}  {bar}{'' if ok else '  FAIL'}")
    print(f"\ncommand: python {' '.join(sys.argv)}")
    return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.seconds, args.threads)))
