"""The Icarus driver mining on an event loop (devices/serialport.py, LoopHost), as it does in a
running miner: started from the loop (as `Miner.run` starts devices), its port is read with the
loop's add_reader and its work goes out on the loop's timer while the device thread is parked.
The threaded tests' scenarios run again here on the loop (against the same pty emulator), plus
what only the loop has: stop from the loop's own thread, a loop that ends under a mining stick.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from miner.drivers.icarus.driver import IcarusDevice

from miner.core.work import Nonce
from miner.devices.base import DeviceState
from tests.devices.test_icarus_driver import emulator
from tests.devices.test_icarus_driver import test_clean_job_next_nonce_belongs_to_new_work as clean_job
from tests.devices.test_icarus_driver import test_each_fault_is_counted_and_survived as faults
from tests.devices.test_icarus_driver import test_frequency_change_through_the_driver as frequency_change
from tests.devices.test_icarus_driver import (
    test_init_identifies_the_model_and_mining_finds_the_expected_nonces as identifies_and_mines,
)
from tests.devices.test_icarus_driver import (
    test_stick_that_stops_at_its_first_find_gets_new_work_after_each_nonce as first_find,
)
from tests.devices.test_icarus_driver import test_unplug_is_nodevice_and_replug_is_alive_again as unplug_replug
from tests.helpers.icarus_rig import Harness, wait_for


class LoopHarness(Harness):
    """The rig's share path, with every device started from a running loop in its own thread;
    it notes the thread each nonce was reported from."""

    def __init__(self):
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self.thread.start()
        self.reported_from: set[int] = set()

    def device(self, path: str, options: str = "", index: int = 0) -> IcarusDevice:
        device = super().device(path, options, index)
        start = device.start
        device.start = lambda: self.on_loop(start)  # type: ignore[method-assign]
        return device

    def on_loop(self, call):
        done = asyncio.run_coroutine_threadsafe(self._call(call), self.loop)
        return done.result(5)

    @staticmethod
    async def _call(call):
        return call()

    def on_nonce(self, nonce: Nonce) -> None:
        self.reported_from.add(threading.get_ident())
        super().on_nonce(nonce)

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def harness():
    h = LoopHarness()
    yield h
    for device in h.devices.values():
        device.stop(timeout=2.0)
    h.close()


def mined_on_the_loop(h: LoopHarness) -> bool:
    return bool(h.reported_from) and h.reported_from == {h.thread.ident}


@pytest.mark.parametrize("model, options", [("u1", ""), ("u3", "model=u3")])
def test_identifies_and_mines_on_the_loop(harness, model, options):
    identifies_and_mines(harness, model, options)
    assert mined_on_the_loop(harness)


def test_clean_job_on_the_loop(harness):
    clean_job(harness)
    assert mined_on_the_loop(harness)


def test_first_find_gets_new_work_on_the_loop(harness):
    first_find(harness)
    assert mined_on_the_loop(harness)


def test_frequency_change_hands_the_thread_back_and_mines_on(harness):
    frequency_change(harness)  # ends with nonces at the new clock
    assert mined_on_the_loop(harness)


def test_faults_are_counted_and_survived_on_the_loop(harness):
    faults(harness)  # wrong nonce, junk, a short read (partial reply dropped on the timer), silence
    assert mined_on_the_loop(harness)


def test_unplug_and_replug_on_the_loop(harness, tmp_path):
    unplug_replug(harness, tmp_path)
    assert mined_on_the_loop(harness)


def test_stop_from_the_loops_own_thread_is_quick(harness):
    """The manager disables a sick device from the loop's thread (check_health): the mining is
    taken off the loop there and then, not by a callback the blocked loop could never run."""
    with emulator("u1") as emu:
        device = harness.device(emu.device_path)
        device.start()
        wait_for(lambda: len(harness.valid()) >= 1, what="first nonce")
        began = time.monotonic()
        harness.on_loop(lambda: device.stop(timeout=2.0))
        took = time.monotonic() - began
        assert took < 2.0, took
        assert not any(t.name == f"dev-{device.name}" for t in threading.enumerate())
        found = len(harness.nonces)
        time.sleep(0.3)
        assert len(harness.nonces) == found  # nothing read from the port any more


def test_stop_from_another_thread_is_quick(harness):
    with emulator("u3") as emu:
        device = harness.device(emu.device_path, "model=u3")
        device.start()
        wait_for(lambda: len(harness.valid()) >= 1, what="first nonce")
        began = time.monotonic()
        device.stop(timeout=2.0)
        assert time.monotonic() - began < 2.0
        assert device.stats.state is DeviceState.INIT


def test_a_loop_that_ends_under_a_mining_stick_leaves_it_mining_in_its_thread(harness):
    with emulator("u1") as emu:
        device = harness.device(emu.device_path)
        device.start()
        wait_for(lambda: len(harness.valid()) >= 1, what="first nonce on the loop")
        harness.loop.call_soon_threadsafe(harness.loop.stop)
        harness.thread.join(5)
        # The parked thread notices within its 1 s wait and mines on by itself.
        cut = len(harness.valid())
        wait_for(lambda: len(harness.valid()) > cut + 1, what="mining on in the device thread")
        assert len(harness.reported_from) == 2  # the loop's thread, then the device's
        assert device.stats.state is DeviceState.ALIVE
