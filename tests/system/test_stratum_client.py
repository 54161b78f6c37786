"""Smoke tests of the Stratum connection and pool manager against the test pool on real 127.0.0.1
sockets, mining with the real CPU device: a whole session, failover, a redirect, a refused
authorization, a handshake timeout and TLS. The session's rules are transcript tests in
tests/unit/test_stratum_session.py.

The share difficulty is so low that a share takes ~65,000 hashes on average: each test needs a
few of them, so no test depends on how fast this machine hashes, and every wait is on an event or
a condition, never a sleep."""

import asyncio
import contextlib

import pytest

from miner.core.dispatch import Dispatcher
from miner.core.engine import Miner
from miner.devices.cpu import CpuDevice
from miner.devices.work_source import DispatcherWorkSource
from miner.sources.stratum.connection import PoolState
from miner.sources.stratum.failover import PoolManager
from miner.sources.stratum.url import PoolConfig, Timeouts
from tests.helpers.stratum_pool import StratumTestPool
from tests.helpers.waiting import FAST, until

EASY = 2.0**-16  # a share per ~65,536 hashes


@contextlib.asynccontextmanager
async def mining(pools: list[StratumTestPool], threads: int = 1, timeouts: Timeouts = FAST,
                 switch_delay: float = 0.0, **config):
    dispatcher = Dispatcher()
    scheme = "stratum+ssl" if pools[0].ssl_context else "stratum+tcp"
    configs = [PoolConfig(f"{scheme}://localhost:{p.port}", "worker.1", "x", **config) for p in pools]
    manager = PoolManager(configs, timeouts, switch_delay=switch_delay)
    miner: Miner
    device = CpuDevice(DispatcherWorkSource(dispatcher), lambda n: miner.on_nonce(n), threads=threads, chunk=1 << 13,
                       nonces_per_work=1 << 16)  # a new work (and version) every share or so
    miner = Miner(manager, [device], dispatcher, status_interval=1.0)
    task = asyncio.create_task(miner.run())
    try:
        yield manager, miner
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_full_session_with_version_rolling_and_accepted_shares():
    pool = StratumTestPool(difficulty=EASY)
    await pool.start()
    async with mining([pool]) as (manager, miner):
        accepted = await pool.wait_submits(4, accepted=True)
        # some with rolled bits: each unit of work has its own version, a share takes about one unit
        await until(lambda: any(int(s.params[5], 16) for s in pool.submits if s.accepted), what="rolled bits")
        accepted = [s for s in pool.submits if s.accepted]
        session = pool.sessions[0]
        methods = [m.get("method") for m in session.received]
        # BIP310: configure first, then subscribe, authorize
        assert methods[:3] == ["mining.configure", "mining.subscribe", "mining.authorize"]
        # we ask for BIP323's bits 5-28 and roll what the pool grants
        assert session.received[0]["params"][1]["version-rolling.mask"] == "1fffffe0"
        # version rolling used: six params, some with bits set, all accepted by the validating pool
        assert all(len(s.params) == 6 for s in accepted)
        assert any(int(s.params[5], 16) != 0 for s in accepted)
        assert all(s.version & ~0x1FFFE000 == 0x20000000 for s in accepted)
        pool0 = manager.pools[0]
        await until(lambda: pool0.stats.accepted >= 4, what="accepts counted")
        assert pool0.version_mask == 0x1FFFE000
        assert pool0.stats.rejected_total == 0
        assert miner.totals.hw_errors == 0
        assert "pool0" in miner.status_line() and "A:" in miner.status_line()
    await pool.stop()


async def test_failover_to_backup_and_back_to_primary():
    primary = StratumTestPool(difficulty=EASY)
    backup = StratumTestPool(difficulty=EASY)
    await primary.start()
    await backup.start()
    async with mining([primary, backup]) as (manager, miner):
        await primary.wait_submits(1, accepted=True)
        assert manager.active is manager.pools[0]
        port = primary.port
        await primary.stop()
        took = await until(lambda: manager.active is manager.pools[1], timeout=5, what="failover")
        assert took < 5
        await backup.wait_submits(1, accepted=True)
        await primary.start(port)
        await until(lambda: manager.active is manager.pools[0], timeout=10, what="back to the primary")
        count = len(primary.submits)
        await primary.wait_submits(count + 1)
    await primary.stop()
    await backup.stop()


async def test_client_reconnect_to_a_new_port():
    old = StratumTestPool(difficulty=EASY)
    new = StratumTestPool(difficulty=EASY)
    await old.start()
    await new.start()
    async with mining([old]) as (manager, miner):
        await old.wait_submits(1, accepted=True)
        old.reconnect(new.port)
        await new.wait_submits(1, accepted=True)
        assert manager.pools[0].host == f"localhost:{new.port}"
        assert manager.pools[0].sessions == 2
    await old.stop()
    await new.stop()


async def test_wrong_password_is_one_clear_line_and_no_shares(caplog):
    pool = StratumTestPool(difficulty=EASY, password="right")
    await pool.start()
    async with mining([pool]) as (manager, miner):
        await until(lambda: "authorization of 'worker.1' refused" in caplog.text, what="auth error")
        assert manager.pools[0].state is not PoolState.ALIVE
        assert not pool.submits
    await pool.stop()


async def test_silent_pool_times_out_and_fails_over(caplog):
    silent = StratumTestPool()
    silent.silent = True
    backup = StratumTestPool(difficulty=EASY)
    await silent.start()
    await backup.start()
    async with mining([silent, backup]) as (manager, miner):
        await backup.wait_submits(1, accepted=True)
        assert manager.active is manager.pools[1]
        await until(lambda: "no reply to subscribe/authorize" in caplog.text, what="silence noticed")
    await silent.stop()
    await backup.stop()


async def test_tls_pool_with_certificate_verification(tmp_path, caplog):
    trustme = pytest.importorskip("trustme")
    import ssl

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    pool = StratumTestPool(difficulty=EASY, ssl_context=server_context)
    await pool.start()
    async with mining([pool], ca_file=str(ca_file)) as (manager, miner):
        await pool.wait_submits(1, accepted=True)
    # without the CA the certificate is refused: no session, one clear line per attempt
    async with mining([pool]) as (manager, miner):
        await until(lambda: "CERTIFICATE_VERIFY_FAILED" in caplog.text, what="verification failure")
        assert not manager.pools[0].alive
    await pool.stop()


