"""The miner against the Stratum V2 test pool in its standard-only mode (tests/helpers/sv2_pool.py,
docs/sv2.md §8) on real 127.0.0.1 sockets with real CPU devices: one standard channel per device,
each device mining its own channel's jobs, >= 1,000 shares accepted, none invalid, no header twice,
batched successes counted exactly per channel, and a hot-plugged device getting its own channel
(closed again when it goes). Difficulties are picked for a fixed expected number of hashes per
share; waits are on conditions."""

import asyncio
import contextlib
import time
from collections import Counter

from miner.core.dispatch import Dispatcher
from miner.core.engine import Miner
from miner.devices.cpu import CpuDevice
from miner.devices.work_source import DispatcherWorkSource
from miner.sources.stratum.failover import PoolManager
from miner.sources.stratum.url import PoolConfig
from miner.sources.sv2 import codec as c
from tests.helpers.sv2_pool import Sv2TestPool
from tests.helpers.waiting import FAST, until

FLOOD = 2.0**-20  # a share per ~4,096 hashes: 1,000 shares in a few million hashes
EASY = 2.0**-16


@contextlib.asynccontextmanager
async def mining(url: str, devices: int):
    dispatcher = Dispatcher()
    manager = PoolManager([PoolConfig(url, "worker.1", "x")], FAST)
    miner: Miner
    work = DispatcherWorkSource(dispatcher)
    cpus = [CpuDevice(work, lambda n: miner.on_nonce(n), threads=1, nonces_per_work=1 << 16, index=i)
            for i in range(devices)]
    miner = Miner(manager, cpus, dispatcher, status_interval=0)
    manager.local_devices = lambda: tuple(d.name for d in miner.devices if d.enabled)  # what compose wires
    task = asyncio.create_task(miner.run())
    try:
        yield manager, miner, task, work
    finally:
        miner.request_stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)


async def test_two_devices_on_standard_channels_a_thousand_shares_none_invalid_no_header_twice():
    pool = Sv2TestPool(difficulty=FLOOD, share_batch_size=7, standard_only=True)
    await pool.start()
    try:
        async with mining(pool.url(), 2) as (manager, miner, task, _):
            await until(lambda: pool.accepted >= 1000, timeout=90, what="1,000 accepted shares")
            session = manager.pools[0].session
            channel_of = {ch.device: ch.channel_id for ch in session.standard.values()}
            pool.share_batch_size = 1  # from here every share is answered at once, so the stop's wait gets all
            pool.flush()
            began = time.monotonic()
            miner.request_stop()
            await asyncio.wait_for(task, 15)
            assert time.monotonic() - began < 2.5
        assert pool.extended_refusals == 1 and session.standard_only
        first, second = pool.clients[:2]
        assert not first.setup.flags & c.REQUIRES_STANDARD_JOBS and second.setup.flags == c.REQUIRES_STANDARD_JOBS
        # one standard channel per device, each with its own request id; no group channel (SRI with the flag)
        opens = [m for m in second.received if isinstance(m, c.OpenStandardMiningChannel)]
        assert len(opens) == 2 and len({m.request_id for m in opens}) == 2 and second.group_channel_id == 0
        assert pool.rejected == 0
        assert len(set(pool.headers)) == len(pool.headers) == pool.accepted  # no header hashed twice
        assert pool.acknowledged == pool.accepted == manager.stats.accepted >= 1000
        # successes counted exactly, per channel and per device
        by_channel = Counter()
        for success in pool.successes:
            by_channel[success.channel_id] += success.new_submits_accepted_count
        for device in miner.devices:
            channel_id = channel_of[device.name]
            assert device.stats.shares.accepted == by_channel[channel_id] > 0
        assert sum(s.message.version != 0x20000000 for s in pool.shares) > 0  # version bits rolled per channel
        assert all(isinstance(s.message, c.SubmitSharesStandard) for s in pool.shares)
    finally:
        await pool.stop()


async def test_a_hot_plugged_device_gets_its_own_standard_channel_and_loses_it_when_it_goes():
    pool = Sv2TestPool(difficulty=EASY, share_batch_size=1, standard_only=True)
    await pool.start()
    try:
        async with mining(pool.url(), 1) as (manager, miner, task, work):
            await pool.wait_shares(3, timeout=60)
            client = pool.clients[-1]
            assert len(client.standard) == 1
            plugged = CpuDevice(work, miner.on_nonce, threads=1, nonces_per_work=1 << 16, index=1)
            miner.devices.append(plugged)
            plugged.start()
            await until(lambda: len(client.standard) == 2, timeout=15, what="a channel for the new device")
            new_channel = max(client.standard)
            await until(lambda: any(s.accepted and s.message.channel_id == new_channel for s in pool.shares),
                        timeout=60, what="a share on the new device's channel")
            assert plugged.stats.shares.accepted >= 1
            plugged.enabled = False  # the device goes
            await asyncio.to_thread(plugged.stop)
            await until(lambda: new_channel in pool.closed_channels, timeout=15, what="CloseChannel for it")
            before = pool.accepted
            await until(lambda: pool.accepted >= before + 2, timeout=60, what="mining goes on on the first channel")
        assert pool.rejected == 0 and len(set(pool.headers)) == len(pool.headers)
    finally:
        await pool.stop()


async def test_the_command_line_opens_a_standard_channel_for_its_cpu_device(tmp_path):
    import os
    import signal
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    pool = Sv2TestPool(difficulty=EASY, share_batch_size=2, standard_only=True)
    await pool.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "miner", "-o", pool.url(), "-u", "bc1qworker.rig", "-t", "1", "--cpu",
        "--status-interval", "2", "--no-tui", "--stats-file", str(tmp_path / "stats.json"),
        cwd=root, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
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
    assert "offers no extended channel (unsupported-extended-channels)" in text
    assert "extensions negotiated: none" in text
    opened = [line for line in text.splitlines() if "standard channel" in line and "open for" in line]
    assert len(opened) == 1 and "Traceback" not in text
    assert pool.rejected == 0 and all(isinstance(s.message, c.SubmitSharesStandard) for s in pool.shares)


async def test_failover_from_standard_channels_to_sv1_and_back():
    from tests.helpers.stratum_pool import StratumTestPool

    sv2 = Sv2TestPool(difficulty=EASY, share_batch_size=1, standard_only=True)
    sv1 = StratumTestPool(difficulty=EASY)
    port = await sv2.start()
    await sv1.start()
    dispatcher = Dispatcher()
    manager = PoolManager([PoolConfig(sv2.url(), "worker.1", "x"),
                           PoolConfig(f"stratum+tcp://localhost:{sv1.port}", "worker.1", "x")], FAST)
    miner: Miner
    work = DispatcherWorkSource(dispatcher)
    cpus = [CpuDevice(work, lambda n: miner.on_nonce(n), threads=1, nonces_per_work=1 << 16, index=i)
            for i in range(2)]
    miner = Miner(manager, cpus, dispatcher, status_interval=0)
    manager.local_devices = lambda: tuple(d.name for d in miner.devices if d.enabled)
    task = asyncio.create_task(miner.run())
    try:
        await sv2.wait_shares(4, timeout=60)
        assert set(dispatcher.device_jobs) == {"cpu0", "cpu1"}
        await sv2.stop()
        await until(lambda: manager.active is manager.pools[1], timeout=15, what="failover to SV1")
        await sv1.wait_submits(3, accepted=True)
        assert dispatcher.device_jobs == {}  # the shared V1 job ended the devices' own jobs
        before = sv2.accepted
        await sv2.start(port)
        await until(lambda: manager.active is manager.pools[0], timeout=15, what="back to SV2")
        await until(lambda: sv2.accepted >= before + 4, timeout=60, what="shares on standard channels again")
        await until(lambda: set(dispatcher.device_jobs) == {"cpu0", "cpu1"}, what="a job per device again")
    finally:
        miner.request_stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)
        await sv2.stop()
        await sv1.stop()
    assert sv2.rejected == 0 and all(s.accepted for s in sv1.submits)
    assert len(set(sv2.headers)) == len(sv2.headers)


async def test_an_emulated_bm1366_and_a_cpu_device_each_on_their_own_standard_channel(caplog):
    import logging

    from miner.drivers.bm13xx import DRIVER
    from miner.drivers.bm13xx.emulator import Bm13xxEmulator

    from miner.devices.base import DeviceSpec

    pool = Sv2TestPool(difficulty=0.002, share_batch_size=1, standard_only=True)
    await pool.start()
    emulator = Bm13xxEmulator("bm1366", chips=2, rate=10e6, difficulty=0.0005).start()
    dispatcher = Dispatcher()
    manager = PoolManager([PoolConfig(pool.url(), "worker.1", "x")], FAST)
    miner: Miner
    work = DispatcherWorkSource(dispatcher)
    spec = DeviceSpec.parse(f"bm1366:{emulator.device_path},difficulty=0.0005,ramp_delay=0,enumerate=0.3")
    chip = DRIVER.create(spec, work, lambda n: miner.on_nonce(n), 0)
    cpu = CpuDevice(work, lambda n: miner.on_nonce(n), threads=1, nonces_per_work=1 << 16, index=0)
    miner = Miner(manager, [chip, cpu], dispatcher, status_interval=0)
    manager.local_devices = lambda: tuple(d.name for d in miner.devices if d.enabled)
    task = asyncio.create_task(miner.run())
    try:
        with caplog.at_level(logging.WARNING):
            await until(lambda: chip.stats.shares.accepted >= 3 and cpu.stats.shares.accepted >= 3, timeout=60,
                        what="shares from the chip and the CPU")
        client = pool.clients[-1]
        assert len(client.standard) == 2
        by_channel = Counter(s.message.channel_id for s in pool.shares if s.accepted)
        assert len(by_channel) == 2  # each device on its own channel
        assert any(s.message.version != 0x20000000 for s in pool.shares if s.accepted)  # the chip rolls versions
    finally:
        miner.request_stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)
        emulator.stop()
        await pool.stop()
    assert pool.rejected == 0 and miner.totals.hw_errors == 0
    assert len(set(pool.headers)) == len(pool.headers)
    assert not [r for r in caplog.records if "waiting for the clock" in r.message]


async def test_a_pool_that_ignores_request_extensions_is_mined_after_the_wait_and_an_error_is_one_line(caplog):
    import logging

    from miner.sources.sv2.session import EXTENSIONS_WAIT

    silent = Sv2TestPool(difficulty=EASY, share_batch_size=1, extensions="ignore")  # §4.3: does not know it
    strict = Sv2TestPool(difficulty=EASY, share_batch_size=1, required_extensions=(0x0002,))
    for pool in (silent, strict):
        await pool.start()
        try:
            with caplog.at_level(logging.INFO, logger="miner.sources.sv2.session"):
                began = time.monotonic()
                async with mining(pool.url(), 1):
                    await pool.wait_shares(2, timeout=60)
                    took = time.monotonic() - began
            asks = [m for m in pool.clients[0].received if isinstance(m, c.RequestExtensions)]
            assert len(asks) == 1 and asks[0].requested_extensions == ()
            assert pool.clients[0].received.index(asks[0]) == 1  # right after SetupConnection
            if pool is silent:
                assert took >= EXTENSIONS_WAIT * 0.9  # the channel waited for the answer that never came
        finally:
            await pool.stop()
    lines = [r.message for r in caplog.records if r.name == "miner.sources.sv2.session"]
    assert any("no answer to RequestExtensions" in line for line in lines)
    assert any("requires 0x0002" in line for line in lines)
