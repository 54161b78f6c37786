"""A Bitaxe (or emberOne) running bitaxe-raw: the BM13xx chain on the data port, driven by the
bm13xx driver, and the board around it on the control port (docs/bitaxe-raw.md).

Power-up, as mujina's bitaxe.rs and ESP-Miner do it: hold the ASIC in reset (GPIO 0 low), I2C at
100 kHz, regulator off, VOUT_COMMAND to the core voltage, regulator on, read the voltage back (a
board that reads back something else is not mined with), check the ASIC temperature, release reset,
then the chain's own init. While mining, the EMC2101's ASIC-diode temperature is read every
THERMAL_POLL seconds; at or above the cut-off (default 75 °C) the chain is idled within that time:
reset held and regulator off. It stays idle until the diode reads CUTOFF_HYSTERESIS below the limit.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import serial
from miner.drivers.bitaxe_raw import control as c
from miner.drivers.bm13xx import protocol as bp
from miner.drivers.bm13xx.driver import DEFAULT_TICKET, Bm13xxDevice

from miner.devices.base import DeviceError, DeviceIdled, DeviceSpec, NonceSink, WorkSource
from miner.devices.serialport import open_serial, read_exactly

log = logging.getLogger(__name__)

DEFAULT_CUTOFF = 75.0  # °C: --temp-cutoff (cgminer's --temp-cutoff idea; the Gamma's ASIC limit is higher)
CUTOFF_HYSTERESIS = 5.0  # °C below the cut-off before the chain is powered again
THERMAL_POLL = 0.25  # s between temperature reads while mining: the cut-off acts within this
REPLY_TIMEOUT = 0.5  # s for one control answer
I2C_HZ = 100_000
DEFAULT_MILLIVOLTS = {"bm1370": 1150, "bm1368": 1166, "bm1366": 1200, "bm1397": 1400}  # ESP-Miner defaults
VOUT_TOLERANCE = 0.05  # volts between the voltage set and the voltage read back


class Overheated(DeviceIdled):
    """The ASIC is at or above the cut-off: the chain is idled until it cools."""


class BitaxeRawDevice(Bm13xxDevice):
    driver = "bitaxe_raw"

    def __init__(self, chip: bp.ChipInfo, work: WorkSource, sink: NonceSink, name: str, control_port: str,
                 data_port: str, millivolts: int | None = None, temp_cutoff: float = DEFAULT_CUTOFF,
                 framing: str = c.FRAMING_PACKET, **chain_options: Any):
        super().__init__(chip, work, sink, name, data_port, **chain_options)
        self.control_port = control_port
        self.millivolts = millivolts or DEFAULT_MILLIVOLTS.get(chip.name, 1200)
        if not 0 < self.millivolts < 5000:
            raise DeviceError(f"{name}: core voltage {self.millivolts} mV is out of range (1..4999)")
        self.temp_cutoff = temp_cutoff
        self._control: serial.Serial | None = None
        self._control_parser = c.ResponseParser(framing)  # the firmware generation's answers (§2.1)
        self._ident = 0
        self._next_thermal = 0.0
        self._pending_millivolts: int | None = None
        self._vout_exponent = -9
        self.vout: float | None = None
        self.fan_rpm: int | None = None
        self.thermal_cutoffs = 0
        self.control_errors = 0

    # ------------------------------------------------------------ the control port
    def _request(self, request: c.Request) -> bytes:
        port = self._control
        if port is None:
            raise DeviceError(f"{self.control_port}: control port not open")
        port.reset_input_buffer()
        self._control_parser.clear()
        port.write(request.encode())
        deadline = time.monotonic() + REPLY_TIMEOUT
        while time.monotonic() < deadline:
            data = read_exactly(port, 1, deadline - time.monotonic())
            if not data:
                break
            data += port.read(port.in_waiting or 0)
            for item in self._control_parser.feed(data):
                if isinstance(item, c.Garbage):
                    self.control_errors += 1
                elif item.id == request.id:
                    return item.check()
                else:
                    self.control_errors += 1  # an answer to an earlier request that timed out
        raise DeviceError(f"{self.control_port}: no answer from the board's control port "
                          f"(page {request.page:#04x}, command {request.command:#04x})")

    def _id(self) -> int:
        self._ident = (self._ident + 1) & 0xFF
        return self._ident

    def _reg_read(self, address: int, reg: int, count: int) -> bytes:
        data = self._request(c.i2c_write_read(self._id(), address, bytes([reg]), count))
        if len(data) != count:
            raise DeviceError(f"{self.control_port}: I2C {address:#04x} register {reg:#04x}: {len(data)} bytes, "
                              f"expected {count}")
        return data

    def _reg_write(self, address: int, payload: bytes) -> None:
        self._request(c.i2c_write(self._id(), address, payload))

    def set_reset(self, released: bool) -> None:
        self._request(c.gpio_set(self._id(), c.GPIO_ASIC_RESET, 1 if released else 0))

    def set_regulator(self, on: bool) -> None:
        self._reg_write(c.TPS546_ADDRESS, bytes([c.PMBUS_OPERATION, c.OPERATION_ON if on else c.OPERATION_OFF]))

    def read_temperature(self) -> float | None:
        msb = self._reg_read(c.EMC2101_ADDRESS, c.EMC2101_EXTERNAL_TEMP_MSB, 1)[0]
        lsb = self._reg_read(c.EMC2101_ADDRESS, c.EMC2101_EXTERNAL_TEMP_LSB, 1)[0]
        return c.emc2101_temperature(msb, lsb)

    def read_vout(self) -> float:
        word = int.from_bytes(self._reg_read(c.TPS546_ADDRESS, c.PMBUS_READ_VOUT, 2), "little")
        return c.ulinear16_to_volts(word, self._vout_exponent)

    def _set_voltage(self, millivolts: int) -> None:
        volts = millivolts / 1000
        word = c.volts_to_ulinear16(volts, self._vout_exponent)
        self._reg_write(c.TPS546_ADDRESS, bytes([c.PMBUS_VOUT_COMMAND]) + word.to_bytes(2, "little"))

    def _check_vout(self, millivolts: int) -> None:
        self.vout = self.read_vout()
        self.stats.voltage = self.vout
        if abs(self.vout - millivolts / 1000) > VOUT_TOLERANCE:
            raise DeviceError(f"{self.control_port}: core voltage reads {self.vout:.3f} V after setting "
                              f"{millivolts / 1000:.3f} V; not powering the chain (regulator fault?)")

    def _idle_chain(self) -> None:
        """Reset held, regulator off (best effort: this is also the path after a control error)."""
        for step in (lambda: self.set_reset(False), lambda: self.set_regulator(False)):
            try:
                step()
            except DeviceError as exc:
                log.warning("%s: while idling the chain: %s", self.name, exc)

    # ------------------------------------------------------------ SerialDevice
    def port_closed(self) -> None:
        if self._control is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._control.close()
            self._control = None

    def open_port(self) -> serial.Serial:
        self.port_closed()
        self._control = open_serial(self.control_port, 115200, timeout=0.05)
        try:
            return super().open_port()
        except DeviceError:
            self._control.close()
            self._control = None
            raise

    def initialise(self, port: serial.Serial) -> None:
        self.set_reset(False)
        self._request(c.i2c_frequency(self._id(), I2C_HZ))
        self.set_regulator(False)
        self._vout_exponent = c.vout_exponent(self._reg_read(c.TPS546_ADDRESS, c.PMBUS_VOUT_MODE, 1)[0])
        temperature = self.read_temperature()
        self.stats.temperature = temperature
        if temperature is not None and temperature >= self.temp_cutoff - CUTOFF_HYSTERESIS * (self.thermal_cutoffs > 0):
            raise Overheated(f"ASIC at {temperature:.1f} °C: waiting for it to cool below "
                             f"{self.temp_cutoff - CUTOFF_HYSTERESIS * (self.thermal_cutoffs > 0):.0f} °C")
        self._set_voltage(self.millivolts)
        self.set_regulator(True)
        self._check_vout(self.millivolts)
        self.set_reset(True)
        super().initialise(port)
        self._next_thermal = time.monotonic()

    def between_reads(self) -> None:
        now = time.monotonic()
        if self._pending_millivolts is not None:
            millivolts, self._pending_millivolts = self._pending_millivolts, None
            self._set_voltage(millivolts)
            self._check_vout(millivolts)
            self.millivolts = millivolts
        if now < self._next_thermal:
            return
        self._next_thermal = now + THERMAL_POLL
        temperature = self.read_temperature()
        self.stats.temperature = temperature
        if temperature is not None and temperature >= self.temp_cutoff:
            self._idle_chain()
            self.thermal_cutoffs += 1
            raise Overheated(f"ASIC at {temperature:.1f} °C, at or above the {self.temp_cutoff:g} °C cut-off: "
                             f"chain idled until it cools below {self.temp_cutoff - CUTOFF_HYSTERESIS:g} °C")

    def idle(self, port: serial.Serial) -> None:
        super().idle(port)
        self._idle_chain()

    def set_voltage(self, millivolts: int) -> None:
        """Core voltage at run time (applied between reads, then read back)."""
        if not 0 < millivolts < 5000:
            raise DeviceError(f"{self.name}: core voltage {millivolts} mV is out of range (1..4999)")
        self._pending_millivolts = int(millivolts)

    def details(self) -> dict[str, Any]:
        return {**super().details(), "Board": "bitaxe-raw", "Control Port": self.control_port,
                "Core Voltage": self.vout, "Core mV Set": self.millivolts, "Temp Cutoff": self.temp_cutoff,
                "Thermal Cutoffs": self.thermal_cutoffs, "Control Errors": self.control_errors}


def create(spec: DeviceSpec, work: WorkSource, sink: NonceSink, index: int) -> BitaxeRawDevice:
    """`--device bitaxe-raw:CONTROL,data=DATA[,chip=bm1370][,voltage=mV][,temp_cutoff=C][,framing=v0]` and the bm13xx
    chain options (chips=, frequency=, ticket=, difficulty=, ...)."""
    if not spec.port:
        raise DeviceError("bitaxe-raw: give the control port, e.g. --device bitaxe-raw:/dev/ttyACM0,data=/dev/ttyACM1")
    data = spec.option("data", str)
    if not data:
        raise DeviceError(f"bitaxe-raw:{spec.port}: give the data port too (data=/dev/ttyACM1: the second port)")
    chip = (spec.option("chip", str) or spec.option("model", str) or "bm1370").lower()
    if chip not in bp.CHIPS:
        raise DeviceError(f"bitaxe-raw:{spec.port}: unknown chip {chip!r} (have: {', '.join(bp.CHIPS)})")
    framing = (spec.option("framing", str) or c.FRAMING_PACKET).lower()
    if framing not in c.FRAMINGS:
        raise DeviceError(f"bitaxe-raw:{spec.port}: framing={framing} is not one of {', '.join(c.FRAMINGS)} "
                          f"(v0 for the original firmware, docs/bitaxe-raw.md §2.1)")
    cutoff = spec.option("temp_cutoff", float, DEFAULT_CUTOFF)
    if not 0 < cutoff < 150:
        raise DeviceError(f"bitaxe-raw:{spec.port}: temp_cutoff={cutoff} is out of range (0..150 °C)")
    return BitaxeRawDevice(
        bp.CHIPS[chip], work, sink, f"BXR{index}", spec.port, data, spec.option("voltage", int), cutoff, framing,
        scale=spec.difficulty(), chips=spec.option("chips", int), frequency=spec.option("frequency", float),
        ticket=spec.option("ticket", float, DEFAULT_TICKET), ramp_delay=spec.option("ramp_delay", float, 0.1),
        poll_interval=spec.option("poll", float, 1.0), enumerate_timeout=spec.option("enumerate", float, 0.5),
        counter_interval=spec.option("counters", float, 5.0))
