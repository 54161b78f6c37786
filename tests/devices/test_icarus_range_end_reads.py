"""A fast Icarus stick on the event loop has its replies read at the range's end (docs/icarus.md
§A5.2): once the timing fit's learning window closes, the port is no longer watched and each work
tick reads what came before it sends the next work. These tests drive the real driver on a real
loop against the pty emulator and check what that must not change: no reply is lost (also not at
stop), a part-read reply is still dropped on its deadline, an unplug is still seen, a learning
window opens again (after RELEARN_SECONDS, after a clock change), and the sticks it does not suit
(a long range, a stick that stops at its first find) keep reading each reply as it comes.

The emulated U3 reports at difficulty 2**-20 (a nonce every 4096 hashes) at ~20 kH/s: its nonces
all come in the first hashes of a range, which the fit ignores (MIN_FIT_HASHES), so the range
stays the U3's nominal 72 ms (under HOLD_LIMIT) and the window closes after LEARN_REPLIES replies,
made small here. Nothing depends on how fast the machine hashes: every wait is for an event.
"""

from __future__ import annotations

import os
import select

import pytest
from hypothesis import given
from hypothesis import strategies as st
from miner.drivers.icarus import driver as icarus
from miner.drivers.icarus import protocol as p
from miner.drivers.icarus.emulator import IcarusEmulator

from miner.core.shares import Verdict
from miner.devices.base import DeviceState
from miner.devices.portpump import QUEUE_MAX
from tests.devices.test_icarus_on_loop import LoopHarness
from tests.helpers.icarus_rig import wait_for

GOLDEN_MIDSTATE = p.WorkPacket.decode(p.GOLDEN_WORK).midstate
TINY = 2.0 ** -20
RATE = 2e-5  # GH/s: ~5 nonces a second at TINY; the golden job's second nonce comes 128 ms after its first
RANGE_END = "at range end"
AS_THEY_COME = "as they come"


@pytest.fixture
def harness(monkeypatch):
    monkeypatch.setattr(icarus, "LEARN_REPLIES", 8)
    h = LoopHarness()
    yield h
    for device in h.devices.values():
        device.stop(timeout=2.0)
    h.close()


def start(h: LoopHarness, emu: IcarusEmulator, model: str = "u3", path: str | None = None):
    device = h.device(path or emu.device_path, f"model={model},difficulty={TINY!r}")
    device.start()
    return device


def reads(device) -> str:
    return device.details()["Reply reads"]


def sent_nonces(emu: IcarusEmulator) -> list[int]:
    """The stick's replies to real work. At this difficulty the golden job has more nonces than
    the golden-nonce test reads; one of them may come after it and be counted a hardware error,
    which a real stick at difficulty 1 (one golden nonce) never sends."""
    return [s.reply.header_nonce for s in list(emu.sent) if s.packet.midstate != GOLDEN_MIDSTATE]


def golden_leftovers(emu: IcarusEmulator) -> set[int]:
    return {s.reply.header_nonce for s in list(emu.sent) if s.packet.midstate == GOLDEN_MIDSTATE}


def reported_nonces(h: LoopHarness, emu: IcarusEmulator) -> list[int]:
    leftovers = golden_leftovers(emu)
    return [n.nonce for n, _ in list(h.nonces) if n.nonce not in leftovers]


def hw_errors(h: LoopHarness, emu: IcarusEmulator) -> list[int]:
    leftovers = golden_leftovers(emu)
    return [n.nonce for n, v in list(h.nonces) if v is Verdict.HW_ERROR and n.nonce not in leftovers]


def test_a_fast_stick_is_read_at_the_range_end_once_the_fit_has_learned_and_loses_no_reply(harness):
    with IcarusEmulator("u3", rate_ghs=RATE, difficulty=TINY).start() as emu:
        device = start(harness, emu)
        wait_for(lambda: reads(device) == RANGE_END, timeout=60, what="reads at the range's end")
        assert device.range_time() <= icarus.HOLD_LIMIT
        cut = len(harness.nonces)
        wait_for(lambda: len(harness.nonces) >= cut + 10, timeout=60, what="10 replies read at the range's end")
        emu.inject_silence()
        jobs = device.jobs_sent
        wait_for(lambda: device.jobs_sent >= jobs + 2, what="two ticks after the last reply")  # both read the port
        # Every reply the stick wrote was reported, once, valid, and from the loop's thread.
        assert sorted(reported_nonces(harness, emu)) == sorted(sent_nonces(emu))
        assert hw_errors(harness, emu) == []
        assert harness.reported_from == {harness.thread.ident}
        # Read at the range's end, a reply has no arrival time: it gives the fit no sample.
        assert [n.tag for n, _ in harness.nonces[cut:]] == [None] * (len(harness.nonces) - cut)
        assert reads(device) == RANGE_END


def test_stop_at_the_range_end_reports_what_the_port_holds(harness):
    """A reply waiting in the port when the stick is stopped is valid work: it is read at release.
    The test stops the stick while the port is seen readable (select on a second descriptor of
    the same tty, which reads nothing), so the tick cannot have taken that reply first."""
    with IcarusEmulator("u3", rate_ghs=RATE, difficulty=TINY).start() as emu:
        device = start(harness, emu)
        wait_for(lambda: reads(device) == RANGE_END, timeout=60, what="reads at the range's end")
        watcher = os.open(emu.device_path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            held = False
            for _ in range(50):  # a reply the tick did not take first: most tries, on any machine
                count = len(emu.sent)
                wait_for(lambda count=count: len(emu.sent) > count, timeout=30, what="a reply")
                if select.select([watcher], [], [], 0)[0]:
                    emu.inject_silence()  # nothing more: what the port holds now is what stop must read
                    held = True
                    break
        finally:
            os.close(watcher)
        assert held, "the tick took every reply before the test could stop the stick"
        device.stop(timeout=2.0)
        assert sorted(reported_nonces(harness, emu)) == sorted(sent_nonces(emu))


def test_a_learning_window_opens_again_after_relearn_seconds_and_after_a_clock_change(harness, monkeypatch):
    monkeypatch.setattr(icarus, "RELEARN_SECONDS", 1.0)
    with IcarusEmulator("u3", rate_ghs=RATE, difficulty=TINY).start() as emu:
        device = start(harness, emu)
        wait_for(lambda: reads(device) == RANGE_END, timeout=60, what="reads at the range's end")
        wait_for(lambda: reads(device) == AS_THEY_COME, timeout=30, what="a new learning window")
        wait_for(lambda: reads(device) == RANGE_END, timeout=60, what="the window closed again")
        monkeypatch.setattr(icarus, "RELEARN_SECONDS", 3600.0)  # takes effect when the window closes
        wait_for(lambda: reads(device) == AS_THEY_COME, timeout=30, what="the last short window")
        wait_for(lambda: reads(device) == RANGE_END, timeout=60, what="the window closed")
        jobs = device.jobs_sent
        device.set_frequency(200)
        wait_for(lambda: device.stats.frequency == 200 and device.jobs_sent > jobs + 1, timeout=30,
                 what="mining at the new clock")
        assert device.details()["Timing fit"] == "learning"  # the clock change reset the fit, opened a window
        wait_for(lambda: reads(device) == RANGE_END, timeout=60, what="read at the range's end at the new clock")
        assert hw_errors(harness, emu) == []


def test_a_part_read_reply_at_the_range_end_is_dropped_on_its_deadline(harness):
    with IcarusEmulator("u3", rate_ghs=RATE, difficulty=TINY).start() as emu:
        device = start(harness, emu)
        wait_for(lambda: reads(device) == RANGE_END, timeout=60, what="reads at the range's end")
        emu.inject_short_read()  # two bytes, then a quiet line
        wait_for(lambda: device.comm_errors["Short reads"] == 1, what="the partial reply dropped")
        cut = len(harness.valid())
        wait_for(lambda: len(harness.valid()) >= cut + 3, timeout=60, what="valid replies after it")
        wait_for(lambda: reads(device) == RANGE_END, what="back to reading at the range's end")
        assert hw_errors(harness, emu) == []


def test_unplug_at_the_range_end_is_nodevice_and_replug_mines_again(harness, tmp_path):
    link = tmp_path / "ttyUSB0"
    with IcarusEmulator("u3", rate_ghs=RATE, difficulty=TINY, link=link).start() as emu:
        device = start(harness, emu, path=str(link))
        device.reopen_interval = 0.2
        wait_for(lambda: reads(device) == RANGE_END, timeout=60, what="reads at the range's end")
        emu.unplug()
        wait_for(lambda: device.stats.state is DeviceState.NO_DEVICE, what="NoDevice")
        assert reads(device) == AS_THEY_COME  # the loop's mining ended with the port
        emu.replug()
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, timeout=30, what="Alive again")
        cut = len(harness.valid())
        wait_for(lambda: len(harness.valid()) > cut, timeout=60, what="mining again")


def test_which_sticks_have_each_reply_read_as_it_comes():
    u3, erupter, fpga = p.MODELS["u3"], p.MODELS["erupter"], p.MODELS["icarus"]
    assert not icarus.reads_each_reply(u3, 0.072, part_read=False, learning=False)
    assert icarus.reads_each_reply(u3, 0.072, part_read=True, learning=False)
    assert icarus.reads_each_reply(u3, 0.072, part_read=False, learning=True)
    assert icarus.reads_each_reply(u3, icarus.HOLD_LIMIT * 1.01, part_read=False, learning=False)  # a slow clock
    assert not icarus.reads_each_reply(u3, icarus.HOLD_LIMIT, part_read=False, learning=False)
    # An Erupter's range (12.8 s) is over HOLD_LIMIT; a 2-FPGA Icarus stops at its first find.
    assert icarus.reads_each_reply(erupter, 2 ** 32 / 336e6, part_read=False, learning=False)
    assert icarus.reads_each_reply(fpga, 0.01, part_read=False, learning=False)


def test_a_first_find_stick_reads_each_reply_as_it_comes_after_the_fit_learned(harness):
    """A 2-FPGA Icarus stops at its first find and wants new work at once (§A4 item 3): each of
    its replies ticks, so its window closes soon, and its replies are still read as they come."""
    with IcarusEmulator("icarus", rate_ghs=RATE, difficulty=TINY).start() as emu:
        device = start(harness, emu, "icarus")
        wait_for(lambda: device.details()["Timing fit"] == "learned", timeout=120, what="the window closed")
        cut = len(harness.nonces)
        wait_for(lambda: len(harness.nonces) >= cut + 3, timeout=60, what="replies after it")
        assert reads(device) == AS_THEY_COME
        assert all(n.tag is not None for n, _ in harness.nonces[cut:])  # each timed as it came


@given(range_time=st.floats(min_value=0.01, max_value=20.0))
def test_the_pump_queue_holds_a_nonce_no_longer_than_hold_limit(range_time):
    """The loop takes the pump's records when a port's queue is down to one packet, so a reply
    read at a range's end waits depth - 1 ranges at most: within HOLD_LIMIT whenever a range
    fits in it (longer ranges are read as they come, reads_each_reply), never past QUEUE_MAX, and
    always one packet queued behind the one on the stick, so it never waits for the loop."""
    depth = icarus.queue_depth(range_time)
    assert 2 <= depth <= QUEUE_MAX
    if range_time <= icarus.HOLD_LIMIT:
        assert (depth - 1) * range_time <= icarus.HOLD_LIMIT
    assert icarus.queue_depth(0.072) == 4  # a U3: the loop wakes every third range
