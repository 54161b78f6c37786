"""A Bitaxe on bitaxe-raw (drivers/bitaxe_raw, docs/bitaxe-raw.md) against its two-pty emulator:
power-up order, voltage set and read back, mining through the data port, the thermal cut-off (idle
within 1 s of the temperature crossing it, back when cooled), voltage at run time, and the faults
(garbage and silence on the control port, CRC errors on the data port, an unplug)."""

from __future__ import annotations

import contextlib
import time

import pytest
from miner.drivers.bitaxe_raw import DRIVER
from miner.drivers.bitaxe_raw import control as c
from miner.drivers.bitaxe_raw.emulator import BitaxeRawEmulator

from miner.core.dispatch import Dispatcher
from miner.devices.base import DeviceError, DeviceSpec, DeviceState
from miner.devices.work_source import DispatcherWorkSource, NoWork
from miner.sources.sandbox import sandbox_job
from tests.helpers.icarus_rig import wait_for

SCALE = 0.0001


@contextlib.contextmanager
def board(options: str = "", **emulator):
    emu = BitaxeRawEmulator("bm1370", 1, 6e6, SCALE, **emulator).start()
    dispatcher = Dispatcher()
    dispatcher.set_job(sandbox_job(difficulty=1000))
    nonces = []
    spec = DeviceSpec.parse(f"bitaxe-raw:{emu.control_path},data={emu.data_path},difficulty={SCALE},ticket=1,"
                            f"ramp_delay=0,enumerate=0.3,poll=0.3{options}")
    device = DRIVER.create(spec, DispatcherWorkSource(dispatcher), nonces.append, 0)
    device.reopen_interval = 0.2
    try:
        yield emu, device, nonces
    finally:
        device.stop(timeout=2.0)
        emu.stop()


def test_power_up_in_order_then_the_chain_mines():
    with board() as (emu, device, nonces):
        device.start()
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, 15, "init")
        wait_for(lambda: len(nonces) >= 2, 15, "nonces through the data port")
        pages = [(r.page, r.command, r.data) for r in emu.requests]
        # reset held first, regulator set up and on before reset is released (mujina bitaxe.rs order)
        reset_low = pages.index((c.PAGE_GPIO, c.GPIO_ASIC_RESET, b"\x00"))
        regulator_on = pages.index((c.PAGE_I2C, c.I2C_WRITE, bytes([c.TPS546_ADDRESS, c.PMBUS_OPERATION,
                                                                    c.OPERATION_ON])))
        reset_high = pages.index((c.PAGE_GPIO, c.GPIO_ASIC_RESET, b"\x01"))
        assert reset_low < regulator_on < reset_high
        assert emu.i2c_hz == 100_000
        assert emu.vout == pytest.approx(1.15, abs=2**-9)  # ESP-Miner's BM1370 default, read back
        assert device.details()["Core Voltage"] == pytest.approx(1.15, abs=2**-9)
        assert device.stats.temperature == 45.0


def test_a_board_on_the_original_v0_firmware_is_driven_with_framing_v0():
    # the answer framing mujina's Gamma support speaks (ResponseFormat::V0, docs/bitaxe-raw.md §2.1)
    with board(",framing=v0", framing=c.FRAMING_V0) as (emu, device, nonces):
        device.start()
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, 15, "init over V0 answers")
        wait_for(lambda: len(nonces) >= 1, 15, "nonces")
        assert emu.vout == pytest.approx(1.15, abs=2**-9) and device.control_errors == 0


def test_thermal_cutoff_idles_the_chain_within_a_second_and_recovers():
    with board(",temp_cutoff=70") as (emu, device, nonces):
        device.start()
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, 15, "init")
        crossed = time.monotonic()
        emu.set_temperature(71.0)
        wait_for(lambda: emu.chain.held, 5, "the chain idled")
        assert emu.idled_at is not None and emu.idled_at - crossed < 1.0
        wait_for(lambda: not emu.regulator_on, 2, "the regulator off")
        wait_for(lambda: device.stats.state is DeviceState.INIT, 5, "Initialising while hot")
        assert "cut-off" in device.stats.last_error or "cool" in device.stats.last_error
        time.sleep(0.6)
        assert emu.chain.held, "stays idle while hot (hysteresis: 5 °C below the cut-off)"
        emu.set_temperature(66.0)  # under the cut-off, not yet under the hysteresis
        time.sleep(0.6)
        assert emu.chain.held
        emu.set_temperature(50.0)
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, 15, "mining again")
        count = len(nonces)
        wait_for(lambda: len(nonces) > count, 15, "nonces again")
        assert device.thermal_cutoffs == 1


def test_voltage_at_run_time_is_set_and_read_back():
    with board(",voltage=1200") as (emu, device, nonces):
        device.start()
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, 15, "init")
        assert emu.vout == pytest.approx(1.2, abs=2**-9)
        device.set_voltage(1100)
        wait_for(lambda: device.millivolts == 1100, 5, "the new voltage")
        assert emu.vout == pytest.approx(1.1, abs=2**-9) and device.stats.voltage == pytest.approx(1.1, abs=2**-9)
        with pytest.raises(DeviceError, match="out of range"):
            device.set_voltage(0)


def test_control_port_faults_are_survived(tmp_path):
    # links: a replugged board comes back behind the same paths, as udev's by-id names do
    with board(link=tmp_path / "ctl", data_link=tmp_path / "data") as (emu, device, nonces):
        emu.inject_garbage(3)
        device.start()
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, 15, "init despite garbage")
        assert device.control_errors >= 1
        emu.chain.corrupt_replies(3)  # CRC errors on the data port: counted by the chain driver
        emu.inject_silence(1.0)  # the control port stalls: the device gives up this run and reopens
        wait_for(lambda: device.stats.state is not DeviceState.ALIVE, 10, "the stall noticed")
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, 20, "back after the stall")
        emu.unplug()
        wait_for(lambda: device.stats.state is DeviceState.NO_DEVICE, 10, "unplugged")
        emu.replug()
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, 20, "back after the replug")
        assert device.stats.state is not DeviceState.DEAD


def test_bad_options_are_one_line_errors():
    for text, message in (("bitaxe-raw:/dev/x", "data port"), ("bitaxe-raw:/dev/x,data=/dev/y,chip=bm9999",
                                                                 "unknown chip"),
                          ("bitaxe-raw:/dev/x,data=/dev/y,temp_cutoff=500", "out of range"),
                          ("bitaxe-raw:/dev/x,data=/dev/y,framing=v7", "framing")):
        with pytest.raises(DeviceError, match=message):
            DRIVER.create(DeviceSpec.parse(text), NoWork(), lambda n: None, 0)
