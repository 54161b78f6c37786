"""The miner against the Stratum V2 test pool (tests/helpers/sv2_pool.py) on real 127.0.0.1 sockets
with the real CPU device: the Noise handshake and certificate, one extended channel cut into work,
batched successes counted exactly, SetTarget and new blocks, and failover SV2 -> SV1 -> SV2.

Difficulties are picked for a fixed expected number of hashes per share; waits are on conditions."""

import asyncio
import contextlib
import logging
import time

from miner.core.dispatch import Dispatcher
from miner.core.engine import Miner
from miner.devices.cpu import CpuDevice
from miner.devices.work_source import DispatcherWorkSource
from miner.sources.stratum.failover import PoolManager
from miner.sources.stratum.url import PoolConfig
from miner.sources.sv2 import codec as c
from miner.sources.sv2.connection import Sv2Connection
from tests.helpers.stratum_pool import StratumTestPool
from tests.helpers.sv2_pool import Sv2TestPool
from tests.helpers.waiting import FAST, until

EASY = 2.0**-16  # a share per ~65,536 hashes
FLOOD = 2.0**-20  # a share per ~4,096 hashes: 1,000 shares in a few million hashes


@contextlib.asynccontextmanager
async def mining(urls: list[str], threads: int = 1, nonces_per_work: int = 1 << 16):
    dispatcher = Dispatcher()
    manager = PoolManager([PoolConfig(url, "worker.1", "x") for url in urls], FAST)
    miner: Miner
    device = CpuDevice(DispatcherWorkSource(dispatcher), lambda n: miner.on_nonce(n), threads=threads,
                       nonces_per_work=nonces_per_work)
    miner = Miner(manager, [device], dispatcher, status_interval=0)
    task = asyncio.create_task(miner.run())
    try:
        yield manager, miner, task
    finally:
        miner.request_stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)


async def test_a_thousand_shares_accepted_none_invalid_and_batches_counted_exactly():
    pool = Sv2TestPool(difficulty=FLOOD, share_batch_size=7)
    await pool.start()
    try:
        async with mining([pool.url()]) as (manager, miner, task):
            sv2 = manager.pools[0]
            assert isinstance(sv2, Sv2Connection) and sv2.protocol == "stratum2"
            await until(lambda: pool.accepted >= 1000, timeout=60, what="1,000 accepted shares")
            batched = len(pool.successes)
            pool.share_batch_size = 1  # from here every share is answered at once, so the stop's wait gets all
            pool.flush()  # the last partial batch
            began = time.monotonic()
            miner.request_stop()
            await asyncio.wait_for(task, 15)
            assert time.monotonic() - began < 2.5
        assert pool.rejected == 0
        assert pool.acknowledged == pool.accepted == manager.stats.accepted >= 1000
        assert sv2.session.batches == len(pool.successes) and batched >= 1000 // 7
        client = pool.clients[0]
        assert client.setup is not None and client.setup.protocol == 0 and client.setup.min_version == 2
        # one extended channel for the host; the devices' work differs in the extranonce after the prefix
        extranonces = {s.message.extranonce for s in pool.shares}
        assert len(extranonces) > 1 and all(len(e) == client.extranonce_size for e in extranonces)
        assert any(s.message.version != 0x20000000 for s in pool.shares)  # rolled within BIP320's bits
    finally:
        await pool.stop()


async def test_set_target_new_blocks_and_future_jobs():
    pool = Sv2TestPool(difficulty=EASY, share_batch_size=1)
    await pool.start()
    try:
        async with mining([pool.url()]) as (manager, miner, task):
            await pool.wait_shares(3)
            pool.set_target(EASY / 3)  # a fractional difficulty, kept exactly
            await until(lambda: abs(float(manager.pools[0].difficulty) - EASY / 3) < 1e-12, what="new target")
            pool.new_block()
            block_job = max(pool.live)
            pool.new_job()
            await until(lambda: any(s.message.job_id > block_job for s in pool.shares if s.accepted),
                        timeout=30, what="a share on the job sent with min_ntime")
        # only a share already on the wire when the new block went out may be refused, as stale
        assert all(s.reason == "stale-share" and s.message.job_id < block_job for s in pool.shares if not s.accepted)
        assert pool.accepted >= 4
    finally:
        await pool.stop()


async def test_wrong_authority_key_and_expired_certificate_are_refused_with_one_line(caplog):
    pool = Sv2TestPool(difficulty=EASY)
    expired = Sv2TestPool(difficulty=EASY, cert_offset=-7200, cert_validity_sec=60)
    await pool.start()
    await expired.start()
    other_key = Sv2TestPool().authority_key
    try:
        with caplog.at_level(logging.WARNING):
            async with mining([pool.url(other_key), expired.url()]) as (manager, miner, task):
                await until(lambda: all(p.last_error for p in manager.pools), what="both refused")
        wrong, old = (p.last_error for p in manager.pools)
        assert "not signed by the authority key" in wrong
        assert "certificate expired" in old
        assert pool.shares == [] and expired.shares == []
        assert not any(cl.received for cl in pool.clients + expired.clients)  # nothing sent past the handshake
    finally:
        await pool.stop()
        await expired.stop()


async def test_failover_sv2_to_sv1_and_back():
    sv2 = Sv2TestPool(difficulty=EASY, share_batch_size=1)
    sv1 = StratumTestPool(difficulty=EASY)
    port = await sv2.start()
    await sv1.start()
    try:
        async with mining([sv2.url(), f"stratum+tcp://localhost:{sv1.port}"]) as (manager, miner, task):
            await sv2.wait_shares(3)
            assert manager.active is manager.pools[0]
            await sv2.stop()  # the V2 pool dies: mining goes on at the V1 pool
            await until(lambda: manager.active is manager.pools[1], timeout=15, what="failover to SV1")
            await sv1.wait_submits(3, accepted=True)
            before = sv2.accepted
            await sv2.start(port)  # back: the V2 pool has the top priority again
            await until(lambda: manager.active is manager.pools[0], timeout=15, what="back to SV2")
            await until(lambda: sv2.accepted >= before + 3, timeout=30, what="shares at SV2 again")
        assert sv2.rejected == 0 and all(s.accepted for s in sv1.submits)
        assert [p.protocol for p in manager.pools] == ["stratum2", "stratum1"]
    finally:
        await sv2.stop()
        await sv1.stop()


async def test_the_api_rest_and_metrics_show_the_protocol_per_pool():
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    from miner.frontends.http import HttpServer
    from tests.helpers.api_helpers import api, running_miner

    sv2 = Sv2TestPool(difficulty=EASY, share_batch_size=1)
    sv1 = StratumTestPool(difficulty=EASY)
    await sv2.start()
    await sv1.start()
    try:
        async with running_miner([sv2, sv1]) as (miner, view, server):
            http = HttpServer(view, "127.0.0.1", 0)
            port = await http.start()
            try:
                await sv2.wait_shares(2)
                rows = (await api(server.port, "pools"))["POOLS"]
                v1_url = f"stratum+tcp://127.0.0.1:{sv1.port}"
                assert [(r["URL"], r["Protocol"]) for r in rows] == [(sv2.url(), "stratum2"), (v1_url, "stratum1")]
                assert rows[0]["Status"] == "Alive" and rows[0]["Stratum Active"] and rows[0]["Accepted"] >= 1
                async with aiohttp.ClientSession() as session:
                    async with session.get(f"http://127.0.0.1:{port}/api/pools") as response:
                        rest = await response.json()
                    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                        text = await response.text()
                assert [p["protocol"] for p in rest] == ["stratum2", "stratum1"]
                info = {s.labels["pool"]: s.labels["protocol"] for f in text_string_to_metric_families(text)
                        for s in f.samples if s.name == "miner_pool_info"}
                assert info == {"pool0": "stratum2", "pool1": "stratum1"}
            finally:
                await http.stop()
    finally:
        await sv2.stop()
        await sv1.stop()


async def test_the_command_line_mines_a_stratum2_pool_and_refuses_a_bad_key_with_one_line(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    bad = subprocess.run([sys.executable, "-m", "miner", "-o", "stratum2+tcp://127.0.0.1:1/9bXiEd8boQVhq7WddEcERU",
                          "-u", "w"], capture_output=True, text=True, timeout=60, cwd=root, env=env)
    assert bad.returncode == 2 and "authority key" in bad.stderr and "Traceback" not in bad.stderr
    pool = Sv2TestPool(difficulty=EASY, share_batch_size=2)
    await pool.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "miner", "-o", pool.url(), "-u", "bc1qworker.rig", "-t", "1", "--cpu",
        "--status-interval", "2", "--no-tui", "--stats-file", str(tmp_path / "stats.json"),
        cwd=root, stderr=asyncio.subprocess.PIPE, env=env)
    try:
        await pool.wait_shares(4, timeout=60)
        await until(lambda: pool.acknowledged >= 4, what="two batches answered")
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await pool.stop()
    text = err.decode()
    assert proc.returncode == 0, text
    assert "Noise handshake done" in text and "extended channel 1 open" in text
    opened = [m for m in pool.clients[0].received if isinstance(m, c.OpenExtendedMiningChannel)]
    assert opened[0].user_identity == "bc1qworker.rig"
    assert pool.rejected == 0
