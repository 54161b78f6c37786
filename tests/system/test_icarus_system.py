"""The framework with a real driver: USB detection, hot-plug and health in the DeviceManager with
emulated sticks, the pool -> job -> emulated U3 -> accepted share path, and the command line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from miner.drivers.icarus import DRIVER
from miner.drivers.icarus.emulator import IcarusEmulator

from miner.core.dispatch import Dispatcher
from miner.core.engine import Miner
from miner.devices.base import DeviceSpec, DeviceState
from miner.devices.manager import DeviceManager, HealthPolicy, PortInfo, load_drivers
from miner.devices.work_source import DispatcherWorkSource
from miner.sources.stratum.failover import PoolManager
from miner.sources.stratum.url import PoolConfig, Timeouts
from tests.helpers.icarus_rig import DIFF, RATE, Harness, wait_for
from tests.helpers.stratum_pool import StratumTestPool

ROOT = Path(__file__).resolve().parents[2]


def test_entry_point_registers_the_driver_and_its_aliases():
    drivers = load_drivers()
    assert drivers["icarus"] is DRIVER and drivers["u3"] is DRIVER and drivers["erupter"] is DRIVER


def test_manager_detects_a_claimed_usb_id_and_follows_unplug_and_replug(tmp_path):
    harness = Harness()
    link = tmp_path / "ttyUSB3"
    emu = IcarusEmulator("u3", rate_ghs=RATE, difficulty=DIFF, link=link).start()
    ports = [PortInfo(str(link), 0x10C4, 0xEA60, "Antminer U3", "0001", "CP2102 USB to UART")]
    manager = DeviceManager(DispatcherWorkSource(harness.dispatcher), harness.on_nonce, [DeviceSpec("cpu")], cpu=False,
                            list_ports=lambda: list(ports))
    try:
        devices = manager.setup()
        assert [d.driver for d in devices] == ["icarus"] and devices[0].serial_number == "0001"
        device = devices[0]
        device.difficulty = DIFF  # detected sticks report at difficulty 1; this emulator is easier
        device.nonce_target = emu.target
        harness.devices[device.name] = device
        device.reopen_interval = 0.2
        manager.start()
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, what="detected stick alive")
        assert device.model == "Antminer U3"
        wait_for(lambda: len(harness.valid()) >= 1, what="a nonce")
        # unplugged: gone from the port list
        emu.unplug()
        ports.clear()
        assert manager.rescan() == []
        assert device.stats.state is DeviceState.NO_DEVICE
        # plugged back into the same port: the same device (and name) comes back
        emu.replug()
        ports.append(PortInfo(str(link), 0x10C4, 0xEA60, "Antminer U3", "0001", "CP2102 USB to UART"))
        assert manager.rescan() == []
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, what="Alive after replug")
        assert manager.devices == [device]
    finally:
        manager.stop()
        emu.stop()


def test_health_check_marks_a_silent_stick_sick_reinitialises_then_disables():
    harness = Harness()
    emu = IcarusEmulator("u1", rate_ghs=RATE, difficulty=DIFF).start()
    manager = DeviceManager(DispatcherWorkSource(harness.dispatcher), harness.on_nonce,
                            [DeviceSpec.parse(f"icarus:{emu.device_path},difficulty={DIFF}")], scan_usb=False,
                            cpu=False, health=HealthPolicy(silent_intervals=2, min_silence=0.5, hw_burst=1000,
                                                           grace=1.0))
    try:
        device = manager.setup()[0]
        harness.devices[device.name] = device
        manager.start()
        wait_for(lambda: len(harness.valid()) >= 1, what="a nonce")
        emu.inject_silence()
        silent_from = time.monotonic()
        interval = device.expected_nonce_interval()
        assert interval is not None and interval < 2.0
        # nothing wrong yet
        manager.check_health()
        assert device.stats.state is DeviceState.ALIVE
        quiet_for = max(2 * interval, 0.5) + 0.2
        time.sleep(max(0.0, silent_from + quiet_for - time.monotonic()))
        device.stats.last_valid_at = min(device.stats.last_valid_at or silent_from, silent_from)
        manager.check_health()
        assert device.stats.state is DeviceState.SICK and device.stats.reinits == 1
        # the re-init gets no golden answer either; it mines on, and health decides
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, what="re-initialised")
        deadline = time.monotonic() + 10
        while device.stats.state is not DeviceState.DISABLED and time.monotonic() < deadline:
            time.sleep(0.2)
            manager.check_health()
        assert device.stats.state is DeviceState.DISABLED and not device.enabled
    finally:
        manager.stop()
        emu.stop()


async def test_pool_job_emulated_u3_share_accepted():
    pool = StratumTestPool(difficulty=0.001)
    await pool.start()
    emu = IcarusEmulator("u3", rate_ghs=RATE, difficulty=DIFF).start()
    dispatcher = Dispatcher()
    fast = Timeouts(connect=2, reply=2, silence=30, work=60, backoff_base=0.2, backoff_cap=1.0)
    manager = PoolManager([PoolConfig(f"stratum+tcp://localhost:{pool.port}", "worker.1", "x")], fast)
    miner: Miner
    device = DRIVER.create(DeviceSpec.parse(f"u3:{emu.device_path},difficulty={DIFF}"),
                           DispatcherWorkSource(dispatcher),
                           lambda n: miner.on_nonce(n), 0)
    miner = Miner(manager, [device], dispatcher, status_interval=1.0)
    task = asyncio.create_task(miner.run())
    try:
        assert await pool.wait_submits(1, timeout=30, accepted=True)
        for _ in range(100):  # the pool's answer reaches the device's statistics a moment later
            if device.stats.shares.accepted:
                break
            await asyncio.sleep(0.05)
        assert device.stats.shares.accepted >= 1
        assert device.model == "Antminer U3" and device.stats.hw_errors == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pool.stop()
        emu.stop()


def test_command_line_emulator_and_miner():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    emu = subprocess.Popen([sys.executable, "-m", "miner", "emulate", "icarus", "--model", "u1", "--rate", "0.004",
                            "--difficulty", "0.001"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           cwd=ROOT, env=env)
    try:
        path = emu.stdout.readline().strip()
        assert path.startswith("/dev/"), path
        proc = subprocess.run([sys.executable, "-m", "miner", "--device", f"icarus:{path},difficulty=0.001",
                               "--no-cpu", "--sandbox-diff", "0.001", "--time-limit", "6", "--status-interval", "1"],
                              capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    finally:
        emu.terminate()
        emu.wait(10)
    assert proc.returncode == 0, proc.stderr
    log = proc.stdout + proc.stderr
    assert "ICA0" in log and "Antminer U1" in log, log
    assert "HW:0" in log
