"""The miner against test pools that follow real pools' rules, on real 127.0.0.1 sockets with the
real CPU device (issue 13): ckpool's message order, each pool's version-bits rule, a difficulty
enforced at once, vardiff down to 1e-9, clean jobs 5 times a second, KB coinbases and extranonce2
sizes 1-16. Each checks that the shares the pool saw equal what the miner reports, with none
invalid (except the one share a BIP310 pool refuses before the miner learns its rule, counted as
such on both sides).

Difficulties are picked for a fixed expected number of hashes per share; waits are on conditions."""

import asyncio
import contextlib
import time

import pytest

from miner.core.dispatch import Dispatcher
from miner.core.engine import Miner
from miner.devices.cpu import CpuDevice
from miner.devices.work_source import DispatcherWorkSource
from miner.sources.stratum.failover import PoolManager
from miner.sources.stratum.url import PoolConfig
from tests.helpers.stratum_pool import StratumTestPool
from tests.helpers.waiting import FAST, until

EASY = 2.0**-16  # a share per ~65,536 hashes


@contextlib.asynccontextmanager
async def mining(pool: StratumTestPool, threads: int = 1, **config):
    dispatcher = Dispatcher()
    manager = PoolManager([PoolConfig(f"stratum+tcp://localhost:{pool.port}", "worker.1", "x", **config)], FAST)
    miner: Miner
    device = CpuDevice(DispatcherWorkSource(dispatcher), lambda n: miner.on_nonce(n), threads=threads,
                       nonces_per_work=1 << 16)  # a new work unit (and version) every share or so
    miner = Miner(manager, [device], dispatcher, status_interval=0)
    task = asyncio.create_task(miner.run())
    try:
        yield manager, miner, task
    finally:
        miner.request_stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)
        await pool.stop()


def pool_counts(pool: StratumTestPool) -> tuple[int, int]:
    return sum(s.accepted for s in pool.submits), sum(not s.accepted for s in pool.submits)


async def stop_and_compare(pool: StratumTestPool, manager: PoolManager, miner: Miner, task: asyncio.Task) -> float:
    """Stop the miner; the pool's counts must equal the miner's. Returns the stop latency."""
    began = time.monotonic()
    miner.request_stop()
    await asyncio.wait_for(task, 15)
    took = time.monotonic() - began
    accepted, rejected = pool_counts(pool)
    assert (manager.stats.accepted, manager.stats.rejected_total) == (accepted, rejected)
    return took


async def test_ckpool_order_the_job_before_the_authorize_reply_is_mined():
    # ckpool sends its only job before the authorize reply and no other for 30 s: it must be mined
    pool = StratumTestPool(difficulty=EASY, ckpool_order=True)
    await pool.start()
    async with mining(pool) as (manager, miner, task):
        await pool.wait_submits(3, accepted=True)
        assert len(pool.jobs) == 1  # the early job was the only one
        await stop_and_compare(pool, manager, miner, task)
        assert pool_counts(pool)[1] == 0


@pytest.mark.parametrize("rule", ["bip310", "or", "xor"])
@pytest.mark.parametrize("job_version", [0x20000000, 0x30000003])
async def test_each_pools_version_rule(rule, job_version):
    pool = StratumTestPool(difficulty=EASY, version_rule=rule, job_version=job_version)
    await pool.start()
    async with mining(pool) as (manager, miner, task):
        await pool.wait_submits(6, accepted=True)
        await until(lambda: any(s.accepted and s.version != job_version for s in pool.submits), timeout=30,
                    what="an accepted share with rolled bits")
        await stop_and_compare(pool, manager, miner, task)
    accepted, rejected = pool_counts(pool)
    # the version the pool rebuilt keeps the job's bits (bit 28 of regtest's 0x30000003 included)
    assert all(s.version & job_version == job_version for s in pool.submits if s.accepted)
    if rule == "bip310" and job_version & 0x1FFFE000:
        # the miner starts with the rule ckpool and public-pool follow; this pool refuses one share
        # as over target, the miner switches and sends it again
        assert rejected == 1 and manager.pools[0].session.version_rule == "bits"
        assert pool.submits[0].reason == "Low difficulty share" and pool.submits[1].accepted
    else:
        assert rejected == 0
    assert miner.totals.hw_errors == 0


async def test_a_difficulty_enforced_at_once_rejects_nothing():
    pool = StratumTestPool(difficulty=EASY, enforce_at_once=True)
    await pool.start()
    async with mining(pool) as (manager, miner, task):
        await pool.wait_submits(2, accepted=True)
        pool.set_difficulty(EASY * 4)  # no new job: the pool enforces it on the job being mined
        before = len(pool.submits)
        await until(lambda: sum(s.accepted for s in pool.submits[before:]) >= 3, timeout=60,
                    what="shares at the new difficulty")
        await stop_and_compare(pool, manager, miner, task)
    assert pool_counts(pool)[1] == 0


async def test_vardiff_down_to_1e_9_floods_but_stays_bounded_and_stops_quickly():
    pool = StratumTestPool(difficulty=EASY)
    await pool.start()
    async with mining(pool, threads=2) as (manager, miner, task):
        await pool.wait_submits(1, accepted=True)
        pool.set_difficulty(1e-9)
        pool.notify(clean=True)  # every hash is a share now
        await until(lambda: len(pool.submits) > 2000, timeout=30, what="a flood of shares")
        assert len(miner.nonces) <= miner.nonces.limit
        took = await stop_and_compare(pool, manager, miner, task)
    assert took < 2 + 2  # the devices stop and the queue drains in under 2 s; answers get up to 2 s
    # none invalid: the only refusals can be shares that crossed the clean notify on the wire
    assert {s.reason for s in pool.submits if not s.accepted} <= {"Job not found"}


async def test_clean_jobs_five_times_a_second():
    pool = StratumTestPool(difficulty=EASY)
    await pool.start()
    async with mining(pool) as (manager, miner, task):
        await pool.wait_submits(1, accepted=True)
        for _ in range(10):
            pool.notify(clean=True, new_block=True)
            await asyncio.sleep(0.2)  # the pool's pace, not a wait for the miner
        await stop_and_compare(pool, manager, miner, task)
    # none invalid: the only refusals are shares that crossed the pool's clean notify on the wire
    assert {s.reason for s in pool.submits if not s.accepted} <= {"Job not found"}
    assert pool_counts(pool)[0] > 0


@pytest.mark.parametrize("extranonce2_size", [1, 8, 16])
async def test_kb_coinbases_and_extranonce2_sizes(extranonce2_size):
    pool = StratumTestPool(difficulty=EASY, coinbase_padding=16_000, extranonce2_size=extranonce2_size)
    await pool.start()
    async with mining(pool) as (manager, miner, task):
        await pool.wait_submits(3, accepted=True)
        assert all(len(bytes.fromhex(s.params[2])) == extranonce2_size for s in pool.submits)
        await stop_and_compare(pool, manager, miner, task)
    assert pool_counts(pool)[1] == 0


async def test_the_command_line_under_a_flood_with_too_many_threads_stops_on_sigterm():
    """Faults 3 and 7 as a user meets them: `-t` far above the cores, a pool at difficulty 1e-9,
    credentials in the URL; SIGTERM ends the process promptly and the log stays short."""
    import os
    import signal
    import sys
    from pathlib import Path

    from miner.devices.cpu import default_threads
    pool = StratumTestPool(difficulty=EASY)
    await pool.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "miner", "-o", f"stratum+tcp://bc1qworker.rig:pw@127.0.0.1:{pool.port}",
        "-t", str(25 * default_threads()), "--status-interval", "1",
        cwd=Path(__file__).resolve().parents[2], stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        await pool.wait_submits(1, accepted=True, timeout=60)
        assert pool.sessions[0].user == "bc1qworker.rig"
        assert pool.sessions[0].received[2]["params"] == ["bc1qworker.rig", "pw"]
        pool.set_difficulty(1e-9)
        pool.notify(clean=True)
        await until(lambda: len(pool.submits) > 1000, timeout=60, what="a flood of shares")
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        took = time.monotonic() - began
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await pool.stop()
    text = err.decode()
    assert took < 2 + 2 + 1.5, text[-3000:]  # devices and queue < 2 s, answers up to 2 s, interpreter exit
    assert text.count("more threads than cores") == 1
    assert len(text.splitlines()) < 200  # a flood of shares is not a flood of log lines


async def test_a_pool_that_sends_jobs_but_never_answers_submits_is_failed_over():
    """Issue 14, fault 6: jobs keep coming, answers never do; before, the pool stayed Alive forever."""
    bad, good = StratumTestPool(difficulty=EASY), StratumTestPool(difficulty=EASY)
    await bad.start()
    await good.start()
    manager = PoolManager([PoolConfig(f"stratum+tcp://127.0.0.1:{p.port}", "worker.1", "x") for p in (bad, good)],
                          FAST)
    dispatcher = Dispatcher()
    miner: Miner
    device = CpuDevice(DispatcherWorkSource(dispatcher), lambda n: miner.on_nonce(n), threads=1)
    miner = Miner(manager, [device], dispatcher, status_interval=0)
    task = asyncio.create_task(miner.run())
    pool0, pool1 = manager.pools
    try:
        await until(lambda: manager.active is pool0 and pool1.alive and pool0.stats.accepted > 0, 30,
                    "mining on pool0")
        # the bad pool answers subscribe and authorize again at once: without a switch delay the
        # manager went back to it before a poll could see it on pool1 (a race on a loaded machine)
        manager.switch_delay = 3600
        bad.ignore_submits = True
        sent_before = len(bad.submits)
        for _ in range(60):  # a job a second while it ignores submits; failover long before the end
            bad.notify(clean=False)
            if manager.active is pool1:
                break
            await asyncio.sleep(0.5)
        assert manager.active is pool1, pool0.last_error
        assert pool0.last_error == f"{FAST.unanswered} submits unanswered for over {FAST.answer:g} s"
        assert len(bad.submits) == sent_before  # none of them was answered
        await good.wait_submits(1, timeout=30, accepted=True)  # and mining goes on on pool1
    finally:
        miner.request_stop()
        await asyncio.wait_for(task, 15)
        await bad.stop()
        await good.stop()
