"""The Stratum client and pool manager against the test pool on real 127.0.0.1 sockets, mining
with the real CPU device."""

import asyncio
import contextlib
import logging
import time

import pytest

from miner.core.dispatch import Dispatcher
from miner.core.engine import Miner
from miner.devices.cpu import CpuDevice
from miner.devices.work_source import DispatcherWorkSource
from miner.sources.stratum.client import PoolConfig, PoolManager, PoolState, Timeouts
from tests.helpers.stratum_pool import StratumTestPool

FAST = Timeouts(connect=2, reply=2, silence=30, work=60, backoff_base=0.2, backoff_cap=1.0)


@contextlib.asynccontextmanager
async def mining(pools: list[StratumTestPool], threads: int = 1, timeouts: Timeouts = FAST,
                 switch_delay: float = 0.0, **config):
    dispatcher = Dispatcher()
    scheme = "stratum+ssl" if pools[0].ssl_context else "stratum+tcp"
    configs = [PoolConfig(f"{scheme}://localhost:{p.port}", "worker.1", "x", **config) for p in pools]
    manager = PoolManager(configs, timeouts, switch_delay=switch_delay)
    miner: Miner
    device = CpuDevice(DispatcherWorkSource(dispatcher), lambda n: miner.on_nonce(n), threads=threads, chunk=1 << 16,
                       nonces_per_work=1 << 22)
    miner = Miner(manager, [device], dispatcher, status_interval=1.0)
    task = asyncio.create_task(miner.run())
    try:
        yield manager, miner
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(predicate, timeout: float = 10.0, what: str = "condition") -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_full_session_with_version_rolling_and_accepted_shares():
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    async with mining([pool]) as (manager, miner):
        accepted = await pool.wait_submits(4, accepted=True)
        session = pool.sessions[0]
        methods = [m.get("method") for m in session.received]
        # BIP310: configure first, then subscribe, authorize
        assert methods[:3] == ["mining.configure", "mining.subscribe", "mining.authorize"]
        assert session.received[0]["params"][1]["version-rolling.mask"] == "1fffe000"
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


async def test_rejected_share_is_counted_with_its_reason():
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    pool.reject_next = [[23, "Low difficulty share", None], "Invalid job_id"]
    async with mining([pool]) as (manager, miner):
        await pool.wait_submits(3)
        p = manager.pools[0]
        await until(lambda: p.stats.rejected_total == 2, what="two rejects")
        assert p.stats.rejected["Low difficulty share"] == 1
        assert p.stats.rejected["Invalid job_id"] == 1
    await pool.stop()


async def test_difficulty_change_mid_job_and_clean_jobs():
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    async with mining([pool], threads=2) as (manager, miner):
        await pool.wait_submits(2, accepted=True)
        pool.set_difficulty(0.02)
        pool.notify(clean=False)
        p = manager.pools[0]
        await until(lambda: p.current_job is not None and p.current_job.share_difficulty > 0.019,
                    what="new difficulty on the next job")
        before = len(pool.submits)
        # a clean job: old jobs are dead, shares for them are stale (not sent)
        job_id = pool.notify(clean=True, new_block=True)
        await until(lambda: p.current_job.job_id == job_id, what="clean job")
        assert list(p.live_jobs) == [job_id]
        new = await pool.wait_submits(before + 2, timeout=30)
        # after the clean job every submit the pool saw is for a live job and is accepted
        late = new[before:]
        assert late and all(s.accepted for s in late[1:]), [s.reason for s in late]
        assert all(s.params[1] == job_id for s in late[1:])
        assert p.stats.rejected_total <= 1  # at most one share in flight across the switch
    await pool.stop()


async def test_set_extranonce_applies_from_the_next_job():
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    async with mining([pool], xnsub=True) as (manager, miner):
        await pool.wait_submits(1, accepted=True)
        assert any(m.get("method") == "mining.extranonce.subscribe" for m in pool.sessions[0].received)
        pool.set_extranonce(bytes.fromhex("cafe0001"), 3)
        job_id = pool.notify(clean=False)
        p = manager.pools[0]
        await until(lambda: p.current_job.job_id == job_id, what="job after set_extranonce")
        assert p.current_job.extranonce1 == bytes.fromhex("cafe0001")
        assert p.current_job.extranonce2_size == 3
        count = len(pool.submits)
        subs = await pool.wait_submits(count + 3, timeout=30)
        after = [s for s in subs[count:] if s.params[1] == job_id]
        assert after and all(s.accepted and len(s.params[2]) == 6 for s in after)
    await pool.stop()


async def test_set_version_mask_is_honoured():
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    async with mining([pool]) as (manager, miner):
        await pool.wait_submits(1, accepted=True)
        pool.set_version_mask(0x00006000)
        p = manager.pools[0]
        await until(lambda: p.version_mask == 0x00006000, what="new mask")
        count = len(pool.submits)
        subs = await pool.wait_submits(count + 6, timeout=30)
        later = subs[count + 1:]
        assert all(int(s.params[5], 16) & ~0x00006000 == 0 for s in later)
        assert all(s.accepted for s in later), [s.reason for s in later]
    await pool.stop()


async def test_pool_closing_the_socket_holds_shares_and_sends_them_after_reconnect(caplog):
    caplog.set_level(logging.INFO)
    pool = StratumTestPool(difficulty=0.001)
    await pool.start()
    async with mining([pool], threads=2) as (manager, miner):
        await pool.wait_submits(1, accepted=True)
        p = manager.pools[0]
        # the pool goes away for a while; the devices keep hashing the same job
        port = pool.port
        await pool.stop()
        await until(lambda: p.held, timeout=15, what="a share held while the pool is down")
        held = list(p.held)
        await pool.start(port)
        await until(lambda: p.alive and not p.held, timeout=15, what="reconnect and held shares sent")
        count_keys = {(s.params[2], s.params[4]) for s in pool.submits}
        sent = [h for h in held if (h.work.extranonce2.hex(), f"{h.nonce.nonce:08x}") in count_keys]
        assert sent, "the held shares were not sent after reconnect"
        # A submit in flight when the socket died may have reached the pool; resending it then gets
        # "Duplicate share", which is right: the miner cannot know, and a lost share is worse.
        await until(lambda: all(s.accepted or s.reason == "Duplicate share" for s in pool.submits[-len(sent):]),
                    what="held accepted")
        assert any(s.accepted for s in pool.submits[-len(sent):])
        assert "held" in caplog.text
    await pool.stop()


async def test_failover_to_backup_and_back_to_primary():
    primary = StratumTestPool(difficulty=0.002)
    backup = StratumTestPool(difficulty=0.002)
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
    old = StratumTestPool(difficulty=0.002)
    new = StratumTestPool(difficulty=0.002)
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


async def test_client_reconnect_to_another_domain_is_refused(caplog):
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    async with mining([pool]) as (manager, miner):
        await pool.wait_submits(1, accepted=True)
        pool.reconnect(3333, host="evil.example.net")
        await until(lambda: "REFUSED client.reconnect to evil.example.net:3333" in caplog.text, what="refusal")
        count = len(pool.submits)
        await pool.wait_submits(count + 1, accepted=True)
        assert manager.pools[0].host == f"localhost:{pool.port}" and manager.pools[0].sessions == 1
    await pool.stop()


async def test_wrong_password_is_one_clear_line_and_no_shares(caplog):
    pool = StratumTestPool(difficulty=0.002, password="right")
    await pool.start()
    async with mining([pool]) as (manager, miner):
        await until(lambda: "authorization of 'worker.1' refused" in caplog.text, what="auth error")
        assert manager.pools[0].state is not PoolState.ALIVE
        assert not pool.submits
    await pool.stop()


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (b"this is not json\n", "invalid JSON"),
        (b"x" * (65 * 1024) + b"\n", "line longer than"),
        (b'{"id":null,"method":"mining.notify","params":["j1","00"]}\n', "mining.notify"),
        (b'{"id":null,"method":"mining.notify","params":["j1",' + b'"zz"' * 1 + b',"","",[],"20000000","1d00ffff",'
         b'"6553f100",true]}\n', "prevhash"),
        (b'{"id":4242,"result":true,"error":null}\n', "id never sent"),
    ],
)
async def test_bad_input_from_the_pool_is_one_line_and_a_reconnect(caplog, bad, expected):
    caplog.set_level(logging.WARNING)
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    async with mining([pool]) as (manager, miner):
        await pool.wait_submits(1, accepted=True)
        sessions = len(pool.sessions)
        pool.send_raw(bad)
        await until(lambda: len(pool.sessions) > sessions, what="reconnect after bad input")
        lines = [r.getMessage() for r in caplog.records if expected in r.getMessage()]
        assert len(lines) == 1 and len(lines[0]) < 300, lines
        await until(lambda: manager.pools[0].alive, what="alive again")
        # never an unchecked share: everything the pool saw validated
        assert all(s.accepted or s.reason in ("Job not found", "Duplicate share") for s in pool.submits)
        assert miner.totals.hw_errors == 0
    await pool.stop()


async def test_silent_pool_times_out_and_fails_over(caplog):
    silent = StratumTestPool()
    silent.silent = True
    backup = StratumTestPool(difficulty=0.002)
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
    pool = StratumTestPool(difficulty=0.002, ssl_context=server_context)
    await pool.start()
    async with mining([pool], ca_file=str(ca_file)) as (manager, miner):
        await pool.wait_submits(1, accepted=True)
    # without the CA the certificate is refused: no session, one clear line per attempt
    async with mining([pool]) as (manager, miner):
        await until(lambda: "CERTIFICATE_VERIFY_FAILED" in caplog.text, what="verification failure")
        assert not manager.pools[0].alive
    await pool.stop()


def test_pool_urls():
    from miner.sources.stratum.client import parse_pool_url

    u = parse_pool_url("stratum+ssl://pool.example:4333#xnsub")
    assert (u.host, u.port, u.tls, u.xnsub) == ("pool.example", 4333, True, True)
    assert parse_pool_url("pool.example:3333").tls is False
    for scheme in ("stratum+tls", "stratum+tcps"):
        assert parse_pool_url(f"{scheme}://h:1").tls
    for bad in ("http://h:1", "stratum+tcp://h", "stratum+tcp://:3333"):
        with pytest.raises(ValueError, match="pool url"):
            parse_pool_url(bad)


def test_backoff_is_capped_and_jittered():
    import random

    from miner.sources.stratum.client import backoff_delay

    rng = random.Random(1)
    delays = [backoff_delay(n, 1.0, 60.0, rng) for n in range(1, 12)]
    assert all(0.5 <= d <= 1.0 for d in delays[:1])
    assert all(d <= 60.0 for d in delays) and max(delays) >= 30.0
    assert len({round(d, 6) for d in delays[8:]}) == 3  # jitter: capped steps still differ


async def test_pool_that_stops_sending_work_fails_over(caplog):
    stalled = StratumTestPool(difficulty=0.002)
    backup = StratumTestPool(difficulty=0.002)
    await stalled.start()
    await backup.start()
    timeouts = Timeouts(connect=2, reply=2, silence=30, work=1.5, backoff_base=5, backoff_cap=5)
    async with mining([stalled, backup], timeouts=timeouts) as (manager, miner):
        await stalled.wait_submits(1, accepted=True)
        # the backup keeps sending jobs, the primary does not
        for _ in range(20):
            backup.notify(clean=False)
            if manager.active is manager.pools[1]:
                break
            await asyncio.sleep(0.25)
        assert manager.active is manager.pools[1]
        assert "no new work for 1.5 s" in caplog.text
        await backup.wait_submits(1, accepted=True)
    await stalled.stop()
    await backup.stop()
