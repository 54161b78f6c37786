"""1,100 idle connections against a miner with a 1,024-descriptor limit (issue 14, fault 10): each
listener holds only its share and closes idle clients, so the pool connection survives (and can be
made again), the cgminer API and REST answer, the log stays short and the statistics are saved."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import sys
import time

import aiohttp

from tests.helpers.api_helpers import api
from tests.helpers.bcoin_node import ROOT, free_port
from tests.helpers.stratum_pool import StratumTestPool

LIMIT = 1024
IDLE = 1100


def lower_descriptor_limit() -> None:  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


def open_idle(port: int, count: int) -> list[socket.socket]:
    held = []
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect(("127.0.0.1", port))
        held.append(s)
    return held


async def api_answers(port: int, deadline: float) -> dict:
    while True:
        try:
            return await api(port, "summary")
        except (OSError, ValueError, asyncio.IncompleteReadError, AssertionError):  # refused: an empty reply
            assert time.monotonic() < deadline, "the cgminer API never answered"
            await asyncio.sleep(0.2)


async def test_a_thousand_idle_connections_do_not_starve_the_miner(tmp_path):
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    api_port, http_port = free_port(), free_port()
    stats = tmp_path / "stats.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "miner", "-o", f"stratum+tcp://127.0.0.1:{pool.port}", "-u", "w.1", "-p", "x",
        "--cpu", "-t", "1", "--hotplug", "0", "--no-tui", "--stats-file", str(stats), "--api-listen",
        "--api-port", str(api_port), "--http", f"127.0.0.1:{http_port}",
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=lower_descriptor_limit)
    held: list[socket.socket] = []
    try:
        await api_answers(api_port, time.monotonic() + 60)
        await pool.wait_submits(1, timeout=60)
        held = open_idle(http_port, IDLE // 2) + open_idle(api_port, IDLE - IDLE // 2)
        await asyncio.sleep(0.5)  # let the miner accept (and close) what is over each listener's cap
        # The pool is dropped while the idle clients are held: the reconnect needs a descriptor.
        sessions = len(pool.sessions)
        pool.drop_clients()
        deadline = time.monotonic() + 30
        summary = await api_answers(api_port, deadline)
        assert summary["STATUS"][0]["STATUS"] == "S"
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(f"http://127.0.0.1:{http_port}/api/summary") as response:
                        assert response.status == 200
                        break
                except aiohttp.ClientError:
                    assert time.monotonic() < deadline, "REST never answered"
                    await asyncio.sleep(0.2)
        while not (len(pool.sessions) > sessions and pool.active):
            assert time.monotonic() < deadline, "the pool connection was not made again"
            await asyncio.sleep(0.1)
        before = len(pool.submits)
        await pool.wait_submits(before + 1, timeout=30)
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 15)
    finally:
        for s in held:
            s.close()
        if process.returncode is None:
            process.kill()
            await process.wait()
        await pool.stop()
    log = err.decode()
    assert process.returncode == 0, log[-3000:]
    assert len(log) < 64_000, f"the log grew to {len(log)} bytes: {log[-2000:]}"
    assert "Too many open files" not in log and "Traceback" not in log, log[-3000:]
    assert "connections open, the most it serves" in log
    assert json.loads(stats.read_text())["format"] == 1
