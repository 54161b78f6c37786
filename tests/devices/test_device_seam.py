"""The device seam end to end, over a pty: a nonce is hashed once in the whole process (by the
share path), and a chain's per-chip counters follow the share path's verdicts."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import pytest
from miner.drivers.bm13xx import DRIVER
from miner.drivers.bm13xx.emulator import Bm13xxEmulator

from miner.core import hashing
from miner.core.dispatch import Dispatcher
from miner.core.engine import Miner
from miner.devices.base import DeviceSpec
from miner.devices.work_source import DispatcherWorkSource
from miner.sources.sandbox import SandboxSource

RATE = 6e6  # emulated H/s: light on a shared CPU
SCALE = 0.0001  # nonces every ~430k hashes at ticket 1: ~14 a second
CHIPS = 2


async def until(predicate, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def mining_chain(monkeypatch):
    """A BM1366 chain mining the sandbox job through the real `Miner`, with every sha256d call in
    the process recorded (the emulator scans with its own midstate calls, not sha256d)."""
    hashed: list[bytes] = []
    real = hashing.sha256d

    def counting(data: bytes) -> bytes:
        hashed.append(bytes(data))
        return real(data)

    monkeypatch.setattr(hashing, "sha256d", counting)
    emulator = Bm13xxEmulator("bm1366", chips=CHIPS, rate=RATE, difficulty=SCALE).start()
    dispatcher = Dispatcher()
    source = SandboxSource(1000.0)  # shares are rare: the nonces are checked, hardly any submitted
    reported = []
    miner: Miner

    def sink(nonce):
        reported.append(nonce)
        miner.on_nonce(nonce)

    spec = DeviceSpec.parse(f"bm1366:{emulator.device_path},difficulty={SCALE},ticket=1,ramp_delay=0,poll=0.3,"
                            "enumerate=0.3")
    device = DRIVER.create(spec, DispatcherWorkSource(dispatcher), sink, 0)
    miner = Miner(source, [device], dispatcher, status_interval=0)
    task = asyncio.create_task(miner.run())
    try:
        yield miner, device, hashed, reported
    finally:
        miner.request_stop()
        await asyncio.wait_for(task, 30)
        emulator.stop()


async def test_every_nonce_is_hashed_exactly_once_and_chips_count_the_verdicts(monkeypatch):
    async with mining_chain(monkeypatch) as (miner, device, hashed, reported):
        await until(lambda: miner.totals.found >= 20 and all(c.nonces for c in device.chip_stats), 30,
                    "nonces from both chips checked")
    # After the run every reported nonce has been checked (the engine drains its queue on stop).
    assert miner.totals.found == len(reported) >= 20
    assert len(hashed) == len(reported), "one sha256d per nonce in the whole process"
    assert all(count == 1 for count in Counter(hashed).values()), "no header hashed twice"
    assert miner.totals.hw_errors == 0 and device.stats.hw_errors == 0
    # The per-chip counters come from the verdicts: every valid nonce of a chip added its hashes.
    assert sum(c.nonces for c in device.chip_stats) == len(reported)
    for chip in device.chip_stats:
        assert chip.hw_errors == 0
        assert chip.hashes.total == pytest.approx(chip.nonces * device.difficulty * (1 << 32))


async def test_a_hardware_error_the_share_path_finds_shows_on_the_chip_that_sent_it(monkeypatch):
    async with mining_chain(monkeypatch) as (miner, device, hashed, reported):
        await until(lambda: miner.totals.found >= 3, 30, "valid nonces first")
        # From now on the chain's nonces miss the target the share path holds them to, as a
        # failing chip's would: the driver does not hash them, so only the verdicts can say so.
        device.nonce_target = 1
        before = {c.address: c.nonces for c in device.chip_stats}
        await until(lambda: miner.totals.hw_errors >= 10 and all(c.nonces > before[c.address] + 2
                                                                for c in device.chip_stats), 30,
                    "hardware errors from both chips")
    assert len(hashed) == len(reported) == miner.totals.found
    assert device.stats.hw_errors == miner.totals.hw_errors == sum(c.hw_errors for c in device.chip_stats)
    assert all(c.hw_errors > 0 for c in device.chip_stats), "each chip's own errors are on that chip"
    assert device.details()["Per Chip"][0]["HW Errors"] == device.chip_stats[0].hw_errors
