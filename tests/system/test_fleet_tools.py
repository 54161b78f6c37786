"""Fleet tools read a real miner process unchanged: pyasic (from PyPI) finds it and reads its numbers.

The `miner` command runs in a subprocess with the cgminer API and the HTTP listener on free ports,
mining a local test pool on the CPU. pyasic's factory probes port 4028 and the web root of the address
it is given, so it gets `127.0.0.1:HTTPPORT` (the 4028 probe then fails at once) and, once it has
picked its backend, that backend's web client is pointed at the same port (pyasic assumes port 80).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.api_helpers import api, api_text, parse_text, until
from tests.helpers.stratum_pool import StratumTestPool

pyasic = pytest.importorskip("pyasic")

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def miner_process(pool: StratumTestPool):
    """`miner` mining `pool` on one CPU thread; yields (api_port, http_port) once both listen."""
    api_port, http_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "miner", "-o", f"stratum+tcp://127.0.0.1:{pool.port}", "-u", "worker.1",
         "-p", "x", "-t", "1", "--no-tui", "--status-interval", "60", "--api-listen", "--api-port", str(api_port),
         "--api-allow", "W:127.0.0.1", "--http", f"127.0.0.1:{http_port}"],
        cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        async def listening() -> bool:
            try:
                return (await api(api_port, "version"))["STATUS"][0]["STATUS"] == "S"
            except OSError:
                return False

        deadline = time.monotonic() + 60
        while not await listening():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the miner's API never came up"
            await asyncio.sleep(0.1)
        yield api_port, http_port
    finally:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


async def frozen_after_shares(api_port: int, pool: StratumTestPool, shares: int) -> None:
    """Mine until `shares` shares are accepted, then disable the CPU so every counter stands still.
    The wait follows the rate the miner measures, never this machine's expected speed."""
    async def rate() -> float:
        return (await api(api_port, "summary"))["SUMMARY"][0]["MHS av"] * 1e6

    await pool.wait_submits(1, timeout=120)  # a cap for a miner that never hashes, not a speed guess
    expected = shares * pool.difficulty * 2**32 / max(await rate(), 1.0)  # seconds for the shares at this rate
    await pool.wait_submits(shares, accepted=True, timeout=10 * expected + 20)
    assert (await api(api_port, "ascdisable", "0"))["STATUS"][0]["Code"] == 111

    async def total_mh() -> float:
        return (await api(api_port, "summary"))["SUMMARY"][0]["Total MH"]

    before = -1.0
    while (now := await total_mh()) != before:  # the device has stopped once two reads agree
        before = now
        await asyncio.sleep(0.5)


async def test_pyasic_identifies_the_miner_and_reads_its_hashrate_pools_and_uptime():
    # difficulty for about 1.7 M hashes a share: a handful of shares in seconds on one busy core
    pool = StratumTestPool(difficulty=0.0004)
    await pool.start()
    async with miner_process(pool) as (api_port, http_port):
        await frozen_after_shares(api_port, pool, 3)
        before = (await api(api_port, "summary"))["SUMMARY"][0]

        found = await pyasic.get_miner(f"127.0.0.1:{http_port}")
        assert found is not None, "pyasic did not recognise the miner"
        from pyasic.miners.backends.espminer import ESPMiner
        assert isinstance(found, ESPMiner)  # found through the AxeOS web API
        found.web.ip, found.web.port = "127.0.0.1", http_port
        data = await found.get_data()
        after = (await api(api_port, "summary"))["SUMMARY"][0]

        # hashRate is total hashes / elapsed, as `MHS av` is: with the device stopped the average only
        # falls, so pyasic's reading lies between the API's reads before and after it (within 5%)
        mhs = float(data.hashrate.into(data.hashrate.unit.MH))
        assert after["MHS av"] * 0.95 <= mhs <= before["MHS av"] * 1.05, (mhs, before["MHS av"], after["MHS av"])
        assert mhs > 0
        assert before["Elapsed"] - 1 <= data.uptime <= after["Elapsed"] + 1
        assert data.fw_ver == data.api_ver == "pyminer 0.1.0"
        assert data.hostname == socket.gethostname()
        # the pool, as pyasic reads it from AxeOS's stratum fields into the miner's config
        (group,) = data.config.pools.groups
        assert [(p.url, p.user) for p in group.pools] == [(f"stratum+tcp://127.0.0.1:{pool.port}", "worker.1")]

        # pyasic's bfgminer backend reads the 4028 API itself: its hash rate (`MHS 20s`) and pools
        from pyasic.miners.backends.bfgminer import BFGMiner
        rpc_miner = BFGMiner("127.0.0.1")
        rpc_miner.rpc.port = api_port
        pools = await rpc_miner._get_pools()
        api_pools = (await api(api_port, "pools"))["POOLS"]
        assert [(p.url.host if p.url else None, p.user, p.accepted, p.alive, p.active) for p in pools] == [
            ("127.0.0.1", "worker.1", api_pools[0]["Accepted"], True, True)]
        assert api_pools[0]["Accepted"] >= 3
        rpc_rate = await rpc_miner._get_hashrate()
        assert rpc_rate is not None and float(rpc_rate.into(rpc_rate.unit.MH)) >= 0
    await pool.stop()


async def test_miner_php_fields_are_filled_after_shares():
    """What cgminer's miner.php shows on its summary, devs and pools pages is computed, not zero."""
    pool = StratumTestPool(difficulty=0.0004)
    await pool.start()
    pool.reject_next = [[23, "Low difficulty share", None]]
    async with miner_process(pool) as (api_port, _):
        await frozen_after_shares(api_port, pool, 3)
        await until(lambda: len(pool.submits) >= 4, what="the rejected share and three accepted")
        joined = await api(api_port, "summary+devs+pools+coin")
        summary = joined["summary"][0]["SUMMARY"][0]
        dev = joined["devs"][0]["DEVS"][0]
        pool_item = joined["pools"][0]["POOLS"][0]
        coin = joined["coin"][0]["COIN"][0]
        now = time.time()
        assert summary["Getworks"] >= 1 and summary["Network Blocks"] >= 1 and summary["Work Utility"] > 0
        assert summary["Difficulty Accepted"] > 0 and summary["Difficulty Rejected"] == pytest.approx(0.0004)
        assert dev["Last Share Pool"] == 0 and now - 120 < dev["Last Share Time"] <= now + 1
        assert dev["Difficulty Rejected"] == pytest.approx(0.0004)
        assert dev["Last Share Difficulty"] == pytest.approx(0.0004)
        assert now - 120 < pool_item["Last Share Time"] <= now + 1 and pool_item["Getworks"] >= 1
        assert pool_item["Difficulty Rejected"] == pytest.approx(0.0004)
        assert pool_item["Last Share Difficulty"] == pytest.approx(0.0004)
        assert pool_item["Current Block Version"] > 0
        assert now - 120 < coin["Current Block Time"] <= now + 1 and coin["Network Difficulty"] > 0
        assert len(coin["Current Block Hash"]) == 64
        # the text form carries no Python reprs
        text = await api_text(api_port, "stats")
        assert "None" not in text and "{'" not in text
        assert parse_text(await api_text(api_port, "summary"))[1]["Best Share"].isdigit()
        assert json.loads(json.dumps(summary))  # sanity: a plain JSON object
    await pool.stop()
