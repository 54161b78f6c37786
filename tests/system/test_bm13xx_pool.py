"""End to end: an emulated BM1366 on a pty, the driver, the Miner's share path and the Stratum test
pool. The chip rolls version bits itself; the validating pool must accept its shares."""

import asyncio
import contextlib

from miner.drivers.bm13xx import DRIVER
from miner.drivers.bm13xx.emulator import Bm13xxEmulator

from miner.core.dispatch import Dispatcher
from miner.core.engine import Miner
from miner.devices.base import DeviceSpec
from miner.devices.work_source import DispatcherWorkSource
from miner.sources.stratum.failover import PoolManager
from miner.sources.stratum.url import PoolConfig
from tests.helpers.stratum_pool import StratumTestPool
from tests.helpers.waiting import FAST, until


async def test_emulated_bm1366_shares_with_version_bits_are_accepted():
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    emulator = Bm13xxEmulator("bm1366", chips=2, rate=10e6, difficulty=0.0005).start()
    dispatcher = Dispatcher()
    manager = PoolManager([PoolConfig(f"stratum+tcp://localhost:{pool.port}", "worker.1", "x")], FAST)
    miner: Miner
    spec = DeviceSpec.parse(f"bm1366:{emulator.device_path},difficulty=0.0005,ramp_delay=0,enumerate=0.3")
    device = DRIVER.create(spec, DispatcherWorkSource(dispatcher), lambda n: miner.on_nonce(n), 0)
    miner = Miner(manager, [device], dispatcher, status_interval=1.0)
    task = asyncio.create_task(miner.run())
    try:
        # the pool's difficulty is under 1: the driver lowers the ticket mask to difficulty 1
        await until(lambda: device.ticket == 1 and emulator.ticket_difficulty == 1, 10, "ticket mask lowered")
        accepted = await pool.wait_submits(4, accepted=True, timeout=30)
        assert all(len(s.params) == 6 for s in accepted)
        def rolled():
            return [s for s in pool.submits if s.accepted and int(s.params[5], 16)]

        await until(lambda: rolled(), 20, "a version-rolled share")
        assert all(s.version & ~0x1FFFE000 == 0x20000000 for s in rolled())
        assert emulator.version_mask == 0x1FFFE000
        await until(lambda: device.stats.shares.accepted >= 4, 10, "accepts counted for the device")
        assert not [s for s in pool.submits if not s.accepted]
        assert miner.totals.hw_errors == 0 and device.stats.hw_errors == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(device.stop)
        emulator.stop()
        await pool.stop()
