"""The Icarus driver against its emulator through pyserial on real pseudo-terminals: identification,
mining, timing, clean jobs, faults, unplug/replug, many sticks, and bad input."""

from __future__ import annotations

import errno
import os
import time

import pytest
import serial
from miner.drivers.icarus import DRIVER
from miner.drivers.icarus import protocol as p
from miner.drivers.icarus.driver import IcarusDevice, expected_golden
from miner.drivers.icarus.emulator import IcarusEmulator

from miner.core import hashing
from miner.core.shares import Verdict
from miner.devices import serialport
from miner.devices.base import DeviceError, DeviceSpec, DeviceState
from miner.devices.work_source import DispatcherWorkSource, NoWork
from tests.helpers.icarus_rig import DIFF, RATE, Harness, make_job, wait_for


@pytest.fixture
def harness():
    h = Harness()
    yield h
    for device in h.devices.values():
        device.stop(timeout=2.0)


def emulator(model: str = "u1", **kw) -> IcarusEmulator:
    kw.setdefault("rate_ghs", RATE)
    kw.setdefault("difficulty", DIFF)
    return IcarusEmulator(model, **kw).start()


# ------------------------------------------------------------------------------------ the emulator alone
def test_emulator_answers_golden_and_real_work_as_hardware(tmp_path):
    with IcarusEmulator("erupter", rate_ghs=0.01, difficulty=0.001) as emu, \
            serial.Serial(emu.device_path, 115200, timeout=2) as port:
        port.write(p.GOLDEN_WORK)
        assert port.read(4) == p.GOLDEN_REPLY
        assert port.read(1) == b"" or True  # more golden-job nonces may follow at this difficulty
        # real work: every nonce it returns verifies with the C core against the full header
        header = bytes(range(80))
        port.reset_input_buffer()
        port.write(p.work_packet(hashing.midstate(header), header))
        deadline = time.monotonic() + 3
        replies = []
        while time.monotonic() < deadline and len(replies) < 5:
            data = port.read(4)
            if len(data) == 4:
                replies.append(p.Reply.decode(data))
    assert len(replies) >= 3
    target = p.nonce_target(0.001)
    for reply in replies:
        full = header[:76] + reply.encode()
        assert int.from_bytes(hashing.sha256d(full), "little") <= target
    assert [r.n for r in replies] == sorted(r.n for r in replies)  # counted upward


def test_u3_emulator_hashes_at_power_on_and_echoes_work_ids():
    # A U3 answers before any voltage command, at its power-on rate (luke-jr/bfgminer #628); the
    # voltage command brings the full rate, and 0 mV stops it (docs/icarus.md §A8.3).
    with IcarusEmulator("u3", rate_ghs=0.01, difficulty=0.001) as emu, \
            serial.Serial(emu.device_path, 115200, timeout=2) as port:
        assert not emu.voltage_set and emu.rate == pytest.approx(0.01e9 * 5 / 63)
        port.write(p.GOLDEN_WORK[:51] + b"\x03" + p.GOLDEN_WORK[52:])
        assert port.read(5) == p.GOLDEN_REPLY + b"\x03"
        port.write(p.voltage_command(775))
        time.sleep(0.05)
        assert emu.voltage_set and emu.rate == pytest.approx(0.01e9)
        port.reset_input_buffer()
        port.write(p.GOLDEN_WORK[:51] + b"\x07" + p.GOLDEN_WORK[52:])
        assert port.read(5) == p.GOLDEN_REPLY + b"\x07"
        port.write(p.voltage_command(0))
        time.sleep(0.05)
        port.reset_input_buffer()
        port.write(p.GOLDEN_WORK)
        assert port.read(5) == b""  # switched off
    assert p.VoltageCommand(775) in emu.commands


def test_an_unnamed_u3_is_taken_for_a_u1_as_cgminer_and_bfgminer_do(harness):
    # A U3 answers the bare golden packet in 5 bytes at power-on, as a U1/U2 does; nothing in its
    # answer tells the chips apart, so without model=u3 (or a product string naming the BM1382) it is
    # an Antminer U1/U2 to us, to cgminer (ANU) and to bfgminer (chip= option) alike.
    with emulator("u3") as emu:
        device = harness.device(emu.device_path)
        device.start()
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, what="init")
        assert device.model == p.MODELS["u1"].name
        assert emu.commands and not any(isinstance(c, p.VoltageCommand) for c in emu.commands)


def test_frequency_command_scales_the_rate():
    # The golden job's first nonce is 100 258 hashes in: at 0.2 MH/s that takes ~0.5 s at 225 MHz.
    def time_to_golden(port) -> float:
        port.reset_input_buffer()
        start = time.monotonic()
        port.write(p.GOLDEN_WORK)
        assert port.read(5)[:4] == p.GOLDEN_REPLY
        return time.monotonic() - start

    with IcarusEmulator("u3", rate_ghs=0.0002) as emu, serial.Serial(emu.device_path, 115200, timeout=5) as port:
        port.write(p.voltage_command(775))
        time.sleep(0.05)
        u3 = p.MODELS["u3"]
        port.write(u3.frequency_setting(100)[1])
        time.sleep(0.05)
        slow = time_to_golden(port)
        assert emu.frequency == 100 and emu.rate == pytest.approx(0.2e6 * 100 / 225)
        port.write(u3.frequency_setting(250)[1])
        time.sleep(0.05)
        fast = time_to_golden(port)
        assert emu.frequency == 250
    assert slow > 1.6 * fast, (slow, fast)  # 2.5x in theory


# ------------------------------------------------------------------------------------ driver <-> emulator
@pytest.mark.parametrize("model, options", [("u1", ""), ("erupter", ""), ("u3", "model=u3")])
def test_init_identifies_the_model_and_mining_finds_the_expected_nonces(harness, model, options):
    with emulator(model) as emu:
        device = harness.device(emu.device_path, options)
        device.start()
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, what="init")
        assert device.model == p.MODELS[model].name
        hashed_before, found_before = emu.hashes_scanned, len(harness.valid())
        began = time.monotonic()
        time.sleep(3.0)
        elapsed = time.monotonic() - began
        found = len(harness.valid()) - found_before
        hashed = emu.hashes_scanned - hashed_before
    assert device.stats.hw_errors == 0
    # Poisson mean rate*t/(2**32*D) ~ 14 at the emulated rate. A loaded CPU hashes less than that, so
    # the floor follows the hashes the emulator really did (it may run up to 0.25 s ahead of its clock).
    expected = RATE * 1e9 * elapsed / (2**32 * DIFF)
    done = min(expected, hashed / (2**32 * DIFF))
    assert 0.25 * done - 1 <= found <= 2.5 * expected, (found, expected, done)
    # the stats side: hash rate from nonces x difficulty
    assert device.stats.hashes.average() > 0


def test_driver_timing_learns_the_range_time(harness):
    with emulator("u3") as emu:
        device = harness.device(emu.device_path, "model=u3")
        assert device.range_time() == pytest.approx(2**32 * 3.2e-9 / 225, rel=0.01)  # nominal: 61 ms
        device.start()
        wait_for(lambda: len(harness.valid()) >= 6, what="nonces")
        full = 2**32 / (RATE * 1e9)  # 1074 s at the emulated rate
        assert 0.3 * full < device.range_time() < 3 * full


def test_clean_job_next_nonce_belongs_to_new_work(harness):
    with emulator("u1") as emu:
        device = harness.device(emu.device_path)
        device.start()
        wait_for(lambda: len(harness.valid()) >= 2, what="first nonces")
        new_job = make_job("2")
        sent = device.jobs_sent
        harness.dispatcher.set_job(new_job)
        device.restart_work()
        wait_for(lambda: device.jobs_sent > sent, timeout=2, what="new work sent at once")
        cut = len(harness.nonces)
        wait_for(lambda: len(harness.nonces) > cut, what="a nonce after the clean job")
        nonce, verdict = harness.nonces[cut]
        assert harness.dispatcher.lookup(nonce.work_id).job is new_job and verdict is not Verdict.HW_ERROR


def test_stick_that_stops_at_its_first_find_gets_new_work_after_each_nonce(harness):
    with emulator("nano1") as emu:
        device = harness.device(emu.device_path, "model=nano1")
        device.start()
        wait_for(lambda: len(harness.valid()) >= 4, what="nonces")
        # one reply per job: every nonce came from a job of its own
        jobs = [s.packet for s in emu.sent]
        assert len(set(jobs)) == len(jobs) and device.stats.hw_errors == 0


def test_frequency_change_through_the_driver(harness):
    with emulator("u3") as emu:
        device = harness.device(emu.device_path, "model=u3")
        device.start()
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, what="init")
        assert emu.frequency == 225 and device.stats.frequency == 225
        with pytest.raises(DeviceError, match=r"outside the Antminer U3's range 100-250 MHz"):
            device.set_frequency(300)
        device.set_frequency(150)
        wait_for(lambda: emu.frequency == 150, what="the clock change")
        assert device.stats.frequency == 150
        assert emu.rate == pytest.approx(RATE * 1e9 * 150 / 225)
        cut = len(harness.nonces)
        wait_for(lambda: len(harness.nonces) > cut + 1, what="nonces at the new clock")


def test_frequency_out_of_range_at_creation_names_the_range(harness):
    with pytest.raises(DeviceError, match=r"ICA0 \(/dev/x\): 90 MHz is outside the Antminer U3's range 100-250"):
        harness.device("/dev/x", "model=u3,freq=90")
    erupter = harness.device("/dev/x", "model=erupter", index=1)
    with pytest.raises(DeviceError, match="fixed clock"):
        erupter.set_frequency(200)


def test_each_fault_is_counted_and_survived(harness):
    with emulator("u1") as emu:
        device = harness.device(emu.device_path)
        device.start()
        wait_for(lambda: len(harness.valid()) >= 1, what="first nonce")

        def mines_again() -> None:
            cut = len(harness.valid())
            wait_for(lambda: len(harness.valid()) > cut, what="a valid nonce after the fault")

        emu.inject_wrong_nonce()
        wait_for(lambda: device.stats.hw_errors >= 1, what="the wrong nonce counted")
        mines_again()
        hw = device.stats.hw_errors
        emu.inject_garbage(bytes(range(1, 8)))  # a 5-byte reply of junk and 2 stray bytes
        wait_for(lambda: device.comm_errors["Short reads"] >= 1, what="the stray bytes dropped")
        assert device.stats.hw_errors == hw + 1  # the junk reply is a hardware error, never a share
        mines_again()
        emu.inject_short_read()
        wait_for(lambda: device.comm_errors["Short reads"] >= 2, what="the short read counted")
        mines_again()
        emu.inject_silence(1.0)
        time.sleep(1.0)
        mines_again()
        assert device.stats.state is DeviceState.ALIVE


def test_unplug_is_nodevice_and_replug_is_alive_again(harness, tmp_path):
    link = tmp_path / "ttyUSB0"
    with emulator("u1", link=link) as emu:
        device = harness.device(str(link))
        device.reopen_interval = 0.2
        device.start()
        wait_for(lambda: len(harness.valid()) >= 1, what="first nonce")
        emu.unplug()
        wait_for(lambda: device.stats.state is DeviceState.NO_DEVICE, what="NoDevice")
        emu.replug()
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, what="Alive again")
        cut = len(harness.valid())
        wait_for(lambda: len(harness.valid()) > cut, what="mining again")


def test_eight_sticks_at_once(harness):
    emus = [IcarusEmulator("u1" if i % 2 else "erupter", rate_ghs=0.001, difficulty=0.0001).start()
            for i in range(8)]
    try:
        devices = []
        for i, emu in enumerate(emus):
            spec = DeviceSpec.parse(f"icarus:{emu.device_path},difficulty=0.0001")
            device = DRIVER.create(spec, DispatcherWorkSource(harness.dispatcher), harness.on_nonce, i)
            harness.devices[device.name] = device
            devices.append(device)
            device.start()
        wait_for(lambda: all(len(harness.valid(d.name)) >= 2 for d in devices), timeout=30, what="all eight")
        assert all(d.stats.hw_errors == 0 for d in devices)
        assert len({d.name for d in devices}) == 8
    finally:
        for emu in emus:
            emu.stop()


# ------------------------------------------------------------------------------------ bad input
def test_wrong_golden_nonce_is_dead_and_never_mined(harness):
    with emulator("erupter") as emu:
        emu.inject_wrong_nonce(5)
        device = harness.device(emu.device_path)
        device.start()
        wait_for(lambda: device.stats.state is DeviceState.DEAD, what="Dead")
        assert "not an Icarus-family stick" in device.stats.last_error
        assert "instead of 000187a2" in device.stats.last_error
        time.sleep(0.3)
        assert harness.nonces == [] and len(emu.jobs) <= 4  # golden packets only (2 bare tries, 2 as a U3)


def test_silent_port_is_not_an_icarus(harness):
    with emulator("erupter") as emu:
        emu.inject_silence()
        device = harness.device(emu.device_path, "model=erupter")
        device.start()
        wait_for(lambda: device.stats.state is DeviceState.DEAD, what="Dead")
        assert "no answer to the golden-nonce test" in device.stats.last_error


@pytest.mark.parametrize("path, message", [("/dev/null", "not a serial device"),
                                           ("REGULAR", "not a serial device (a regular file"),
                                           ("/nonexistent/ttyUSB9", "no such device")])
def test_port_that_is_not_a_device(harness, tmp_path, path, message):
    if path == "REGULAR":
        path = str(tmp_path / "file")
        open(path, "w").close()
    device = harness.device(path)
    device.start()
    wait_for(lambda: device.stats.state is DeviceState.NO_DEVICE, what="NoDevice")
    assert message in device.stats.last_error


def test_permission_denied_names_the_fix(harness, tmp_path, monkeypatch):
    if os.geteuid() != 0:
        emu = emulator("erupter")
        try:
            os.chmod(emu.port.path, 0)
            device = harness.device(emu.port.path)
            device.start()
            wait_for(lambda: device.stats.state is DeviceState.NO_DEVICE, what="NoDevice")
        finally:
            emu.stop()
        message = device.stats.last_error
    else:
        # root opens anything: check how the open error maps instead (pyserial's EACCES).
        def denied(*args, **kwargs):
            raise serial.SerialException(errno.EACCES, "could not open port: [Errno 13] Permission denied")

        with IcarusEmulator("erupter") as emu:
            monkeypatch.setattr(serialport.serial, "Serial", denied)
            with pytest.raises(DeviceError) as info:
                IcarusDevice(NoWork(), lambda n: None, "ICA0", emu.device_path).open_port()
        message = str(info.value)
    assert "permission denied" in message and "dialout" in message and "udev" in message


def test_golden_expectation_is_the_true_nonce_at_every_test_difficulty():
    for difficulty in (1, 0.001, 0.0002, 0.0001):
        assert expected_golden(p.nonce_target(difficulty)) == p.GOLDEN_NONCE
