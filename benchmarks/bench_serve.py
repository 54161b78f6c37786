"""`miner serve` under load (issue 19, docs/serve.md): a real `miner serve --no-cpu` process in proxy
mode against the test pool, 500 downstream connections from this process (tests/helpers/stratum_load.py).

- notify fan-out: the pool sends a job; the time until each of the 500 connections has it (p50, p99);
  bar p99 < 50 ms;
- submits checked per second on one core: the session alone (in this process), every submit a valid
  share found beforehand with the C core, so each is parsed, rebuilt, hashed, deduplicated, counted;
  timed in this thread's CPU time (a shared machine's other processes do not count); bar >= 5,000/s;
- the server's own part of a fan-out: one publish() to the 500 sockets, in CPU time;
- memory per idle connection: the server's RSS growth from 0 to 500 subscribed, idle connections,
  divided by 500; bar < 50 KB;
- server CPU at 500 workers each submitting 1 share/s (random nonces: each fully checked, hashed and
  answered "Low difficulty", as a real share costs the server the same check; shares meeting the
  pool's difficulty would add one forward each); bar < 25 % of a core.

    python benchmarks/bench_serve.py [--connections 500] [--seconds 10]

Prints a table and the command that made it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from miner.core import hashing  # noqa: E402
from miner.core.targets import difficulty_to_target  # noqa: E402
from miner.sources.stratum.protocol import NewJob, Subscribed  # noqa: E402
from tests.helpers.bcoin_node import free_port  # noqa: E402
from tests.helpers.stratum_load import close_downstreams, open_downstreams  # noqa: E402
from tests.helpers.stratum_pool import StratumTestPool  # noqa: E402
from tests.unit.test_serve_session import logged_in  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def submits_per_second(count: int = 5000) -> float:
    """The session's share check alone: `count` valid submits, timed on this one core."""
    miner, _ = logged_in()
    job = miner.of(NewJob)[-1]
    sub = miner.of(Subscribed)[-1]
    en2 = b"\x00\x01"
    coinbase = job.coinb1 + sub.extranonce1 + en2 + job.coinb2
    root = hashlib.sha256(hashlib.sha256(coinbase).digest()).digest()
    for sibling in job.merkle_branch:
        root = hashlib.sha256(hashlib.sha256(root + sibling).digest()).digest()
    header = (job.version.to_bytes(4, "little") + job.prevhash + root + job.ntime.to_bytes(4, "little")
              + job.nbits.to_bytes(4, "little") + bytes(4))
    target = difficulty_to_target(miner.session.vardiff.difficulty)
    nonces: list[int] = []
    start = 0
    while len(nonces) < count:
        nonces += hashing.scan(header, start, 1 << 22, target)
        start += 1 << 22
    lines = b"".join(json.dumps({"id": i, "method": "mining.submit", "params": [
        "alice.1", job.job_id, en2.hex(), f"{job.ntime:08x}", f"{n:08x}"]}).encode() + b"\n"
        for i, n in enumerate(nonces[:count]))
    miner.session.rules.messages_per_second = miner.session.rules.burst = 1e9  # the limiter is not measured
    # CPU time of this thread: on a shared machine, wall time would count other processes' turns
    began = time.thread_time()
    events = miner.session.receive_data(lines, 1.0)
    took = time.thread_time() - began
    accepted = sum(type(e).__name__ == "ShareAccepted" for e in events)
    assert accepted == count, f"only {accepted} of {count} accepted"
    return count / took


async def publish_cost(connections: int) -> tuple[str, str, str]:
    """The server's own share of a fan-out, in this process: one publish() to `connections`
    subscribed sessions (one notify line encoded, written to every socket), timed 20 times."""
    from dataclasses import replace

    from miner.server.extranonce import PrefixPool, layout_for
    from miner.server.server import StratumServer
    from miner.server.session import Rules
    from miner.server.workers import WorkerBook
    from tests.unit.test_serve_session import source_job

    job = source_job()
    layout = layout_for(job)
    server = StratumServer(Rules(layout, PrefixPool(layout.capacity), WorkerBook()), "127.0.0.1", 0,
                           max_connections=connections)
    await server.start()
    server.publish(job)
    downstreams = await open_downstreams(server.port, connections)
    try:
        deadline = time.monotonic() + 60
        while not all(d.jobs for d in downstreams):
            assert time.monotonic() < deadline, "not every connection got a job"
            await asyncio.sleep(0.05)
        took = []
        for i in range(20):
            began = time.thread_time()  # CPU time: the server's own cost, not the machine's load
            server.publish(replace(job, job_id=f"p{i}", clean=True))
            took.append(time.thread_time() - began)
            await asyncio.sleep(0.1)
    finally:
        await close_downstreams(downstreams)
        await server.stop()
    took.sort()
    return (f"server publish() to {connections} sockets, CPU time (p50 / max)",
            f"{statistics.median(took) * 1000:.2f} / {took[-1] * 1000:.2f} ms", "the server's part of the fan-out")


async def measure(connections: int, seconds: float) -> list[tuple[str, str, str]]:
    pool = StratumTestPool(difficulty=0.0001)
    await pool.start()
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "miner", "serve", "--listen", f"127.0.0.1:{port}", "-o",
        f"stratum+tcp://127.0.0.1:{pool.port}", "-u", "bench", "-p", "x", "--no-cpu", "--no-tui", "--quiet",
        "--status-interval", "600", cwd=ROOT, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "XDG_DATA_HOME": "/tmp/bench-serve-data"})
    downstreams = []
    rows = []
    try:
        for _ in range(300):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        rss0 = rss_kb(server.pid)
        downstreams = await open_downstreams(port, connections)
        deadline = time.monotonic() + 60
        while not all(d.jobs for d in downstreams):
            assert time.monotonic() < deadline, "not every connection got a job"
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)
        per_conn = (rss_kb(server.pid) - rss0) / connections
        rows.append(("memory per idle connection", f"{per_conn:.1f} KB", f"{per_conn / 50:.2f} of the 50 KB bar"))

        latencies: list[float] = []
        for _ in range(20):
            before = {id(d): len(d.jobs) for d in downstreams}
            sent = time.monotonic()
            job_id = pool.notify(clean=True)
            while not all(len(d.jobs) > before[id(d)] for d in downstreams):
                assert time.monotonic() - sent < 10, "fan-out stuck"
                await asyncio.sleep(0.001)
            latencies += [d.arrived[d.jobs[-1][0]] - sent for d in downstreams]
            assert job_id
            await asyncio.sleep(0.2)
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        rows.append((f"notify fan-out to {connections} (p50)", f"{p50:.1f} ms", ""))
        rows.append((f"notify fan-out to {connections} (p99)", f"{p99:.1f} ms", f"{p99 / 50:.2f} of the 50 ms bar"))

        # every connection submits once a second, spread evenly over the second
        async def submitter(d, offset: float) -> None:
            await asyncio.sleep(offset)
            while True:
                job = d.jobs[-1]
                d.send("mining.submit", [f"load.{d.index}", job[0], os.urandom(d.extranonce2_size).hex(), job[7],
                                         f"{random.getrandbits(32):08x}"])
                await asyncio.sleep(1.0)

        tasks = [asyncio.create_task(submitter(d, i / connections)) for i, d in enumerate(downstreams)]
        await asyncio.sleep(2.0)
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        answered0 = sum(len(d.replies) for d in downstreams)
        await asyncio.sleep(seconds)
        cpu1, t1 = cpu_seconds(server.pid), time.monotonic()
        answered = sum(len(d.replies) for d in downstreams) - answered0
        for t in tasks:
            t.cancel()
        share = (cpu1 - cpu0) / (t1 - t0) * 100
        rows.append((f"server CPU, {connections} workers x 1 share/s ({answered / (t1 - t0):.0f} answers/s)",
                     f"{share:.1f} % of a core", f"{share / 25:.2f} of the 25 % bar"))
    finally:
        await close_downstreams(downstreams)
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
            await asyncio.wait_for(server.wait(), 20)
        await pool.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    rate = submits_per_second()
    rows = [("submits checked per second, one core", f"{rate:,.0f}/s", f"{rate / 5000:.2f} x the 5,000/s bar")]
    rows.append(asyncio.run(publish_cost(args.connections)))
    rows += asyncio.run(measure(args.connections, args.seconds))
    width = max(len(r[0]) for r in rows)
    print(f"{'operation':<{width}}  {'figure':>18}  ratio to bar")
    for name, figure, ratio in rows:
        print(f"{name:<{width}}  {figure:>18}  {ratio}")
    load = os.getloadavg()
    print(f"\nload average while measuring: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
    print(f"command: python benchmarks/bench_serve.py --connections {args.connections} --seconds {args.seconds:g}")


if __name__ == "__main__":
    main()
