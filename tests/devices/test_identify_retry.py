"""Issue 14 fault 9: serial noise during a health re-init must not make a device Dead for good.
A device that identified once is the same hardware having a bad moment when it answers wrongly
later (noise on the golden-nonce answer, one register reply whose 5-bit CRC let a corrupted chip id
through): it is retried with backoff until it answers right again. A port that never identified is
still given up on at once (tests/devices/test_icarus_driver.py, the wrong golden nonce)."""

from __future__ import annotations

import pytest
from miner.drivers.bm13xx import DRIVER as BM13XX
from miner.drivers.bm13xx.emulator import Bm13xxEmulator
from miner.drivers.icarus.emulator import IcarusEmulator

from miner.core.dispatch import Dispatcher
from miner.devices.base import DeviceSpec, DeviceState
from miner.devices.work_source import DispatcherWorkSource
from miner.sources.sandbox import sandbox_job
from tests.helpers.icarus_rig import DIFF, RATE, Harness, wait_for


def test_noise_on_the_golden_answer_during_a_reinit_is_retried_not_dead():
    with IcarusEmulator("u1", rate_ghs=RATE, difficulty=DIFF) as emu:
        harness = Harness()
        device = harness.device(emu.device_path)
        device.identify_retry_first = 0.1
        device.start()
        try:
            wait_for(lambda: device.stats.state is DeviceState.ALIVE, what="init")
            emu.inject_wrong_nonce(6)  # more than the driver's two tries: the re-init fails outright
            device.reinitialise()
            wait_for(lambda: device.identify_failures > 0, what="a failed re-identification")
            assert device.stats.state is not DeviceState.DEAD
            assert "retrying" in device.stats.last_error
            found = len(harness.valid())
            wait_for(lambda: device.stats.state is DeviceState.ALIVE and device.identify_failures == 0, 20,
                     "the stick back")
            wait_for(lambda: len(harness.valid()) > found, 20, "valid nonces again")
        finally:
            device.stop(timeout=2.0)


def test_the_retry_delay_doubles_up_to_its_longest():
    device = Harness().device("/dev/null")
    delays = []
    for failures in range(8):
        device.identify_failures = failures
        delays.append(device.identify_retry_delay())
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]


@pytest.mark.parametrize("chip", ["bm1366", "bm1397"])
def test_a_wrong_chip_id_during_a_reinit_is_retried_not_dead(chip):
    with Bm13xxEmulator(chip, chips=2, rate=6e6, difficulty=0.0001) as emulator:
        dispatcher = Dispatcher()
        dispatcher.set_job(sandbox_job(difficulty=1000))
        nonces = []
        spec = DeviceSpec.parse(f"{chip}:{emulator.device_path},difficulty=0.0001,ramp_delay=0,poll=0.3,"
                                "enumerate=0.3,ticket=1")
        device = BM13XX.create(spec, DispatcherWorkSource(dispatcher), nonces.append, 0)
        device.identify_retry_first = 0.1
        device.start()
        try:
            wait_for(lambda: device.stats.state is DeviceState.ALIVE, what="init")
            emulator.wrong_chip_ids(1)
            device.reinitialise()
            wait_for(lambda: device.identify_failures > 0, what="the wrong chip id seen")
            assert device.stats.state is not DeviceState.DEAD and "answers id" in device.stats.last_error
            wait_for(lambda: device.stats.state is DeviceState.ALIVE and device.identify_failures == 0, 20,
                     "the chain back")
            count = len(nonces)
            wait_for(lambda: len(nonces) > count, 20, "nonces again")
            assert device.chip_count == 2
        finally:
            device.stop(timeout=2.0)
