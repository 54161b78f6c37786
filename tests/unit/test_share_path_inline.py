"""The share path inline: a nonce from a device mining on the loop (an Icarus stick, LoopHost) is
checked where it arrives when the share path is idle, with no queue, Future or task step per
nonce (docs/architecture.md, "Host cost"); what must be submitted still goes out in order."""

from __future__ import annotations

import asyncio

from miner.core.dispatch import Dispatcher
from miner.core.engine import Miner
from miner.core.work import Nonce
from tests.unit.test_hostile_pool import Recorder, easy_job


async def started(miner: Miner) -> asyncio.Task:
    run = asyncio.create_task(miner.run())
    async with asyncio.timeout(5):
        while not miner.share_path_idle:
            await asyncio.sleep(0)
    return run


async def test_a_nonce_from_the_loop_is_checked_before_on_nonce_returns_and_shares_keep_their_order():
    source = Recorder()
    dispatcher = Dispatcher()
    miner = Miner(source, [], dispatcher, status_interval=0)
    works = [dispatcher.register_work(easy_job(f"j{i}"), bytes([0, 0, 0, i])) for i in range(4)]
    run = await started(miner)
    miner.on_nonce(Nonce(works[0].work_id, 5, device="cpu0"))
    assert miner.totals.found == 1 and len(miner.nonces) == 0 and miner.nonces.wakes == 0  # inline
    for work in works[1:]:  # the first one's submit is pending: these queue behind it
        miner.on_nonce(Nonce(work.work_id, 5, device="cpu0"))
    assert miner.totals.found == 1 and len(miner.nonces) == 3
    async with asyncio.timeout(10):
        while len(source.submitted) < 4:
            await asyncio.sleep(0.01)
    assert [s.work.job.job_id for s in source.submitted] == ["j0", "j1", "j2", "j3"]
    assert miner.totals.found == 4
    miner.request_stop()
    await run


async def test_a_nonce_from_a_device_thread_goes_through_the_queue():
    source = Recorder()
    dispatcher = Dispatcher()
    miner = Miner(source, [], dispatcher, status_interval=0)
    work = dispatcher.register_work(easy_job("t"), b"\0\0\0\1")
    run = await started(miner)
    await asyncio.to_thread(miner.on_nonce, Nonce(work.work_id, 5, device="cpu0"))
    async with asyncio.timeout(10):
        while not source.submitted:
            await asyncio.sleep(0.01)
    assert miner.totals.found == 1 and miner.nonces.wakes == 1  # queued and woken, as before
    miner.request_stop()
    await run


async def test_a_share_left_by_an_inline_check_is_submitted_at_stop():
    source = Recorder()
    dispatcher = Dispatcher()
    miner = Miner(source, [], dispatcher, status_interval=0)
    work = dispatcher.register_work(easy_job("last"), b"\0\0\0\1")
    run = await started(miner)
    miner.on_nonce(Nonce(work.work_id, 5, device="cpu0"))
    miner.request_stop()  # before the share path ran: the stop's drain submits it
    await run
    assert [s.work.job.job_id for s in source.submitted] == ["last"]
