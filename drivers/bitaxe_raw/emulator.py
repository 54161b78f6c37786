"""A Bitaxe board running bitaxe-raw, on two pseudo-terminals: the control port (control.py packets:
I2C to a TPS546 and an EMC2101, the ASIC reset GPIO, the VDD ADC, the fan) and the data port, a
real emulated BM13xx chain (drivers/bm13xx/emulator.py) that hashes only while the regulator is on
and the reset line is high, as the chips on the board do (docs/bitaxe-raw.md §4).

The TPS546 and the EMC2101 are register files that answer what a host reads (identity, status,
what it wrote; docs/bitaxe-raw.md §3), so other hosts' init sequences (mujina's) run too; `framing`
picks the firmware generation's answer framing (§2.1).

Faults for tests: garbage and silence on the control port, CRC errors on the data port (the chain's
own fault), an unplug of both ports, and the temperature (an over-temperature is set_temperature).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time

from miner.drivers.bitaxe_raw import control as c
from miner.drivers.bm13xx.emulator import Bm13xxEmulator
from miner.drivers.kit.emulation import PtyPort, Unplugged, emulator_arguments, serve_until_stopped

log = logging.getLogger(__name__)

# VOUT_MODE: exponent -9 (ULINEAR16 LSB = 1/512 V) with the REL bit (0x80) set, as a TPS546D24A
# reports it (mujina peripheral/tps546.rs: "The REL bit in VOUT_MODE is set on this part"; its
# test double in mgmt_protocol/bitaxe_raw/i2c.rs answers 0x97). Hosts use the low five bits.
VOUT_MODE = 0x97
# IC_DEVICE_ID (0xAD), a PMBus block read: the count, then TI's id for the TPS546D24A
# (mujina tps546.rs constants::DEVICE_ID1, the id verify_device_id accepts first).
TPS546_DEVICE_ID = bytes([6, 0x54, 0x49, 0x54, 0x6B, 0x24, 0x41])
# The PMBus commands a TPS546 answers (mujina peripheral/pmbus.rs PmbusCommand, the set its driver
# reads and writes); anything else is not acknowledged, and the firmware answers a timeout.
TPS546_COMMANDS = frozenset({
    0x01, 0x02, 0x03, 0x04, 0x19, 0x20, 0x21, 0x24, 0x25, 0x26, 0x29, 0x2B, 0x33, 0x35, 0x36, 0x37, 0x40, 0x42,
    0x43, 0x44, 0x46, 0x47, 0x4A, 0x4F, 0x50, 0x51, 0x55, 0x56, 0x58, 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x79,
    0x7A, 0x7B, 0x7C, 0x7D, 0x7E, 0x7F, 0x80, 0x88, 0x8B, 0x8C, 0x8D, 0x99, 0x9A, 0x9B, 0xAD, 0xB1, 0xE4, 0xEC,
    0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xFC, 0xFD})
PMBUS_STATUS_WORD = 0x79
PMBUS_READ_VIN = 0x88
PMBUS_READ_IOUT = 0x8C
PMBUS_IC_DEVICE_ID = 0xAD
STATUS_WORD_OFF = 0x0040  # PMBus STATUS_WORD bit 6, "unit is off" (mujina pmbus.rs status_word::OFF)
VIN = 5.0  # V: a Gamma's input supply
AMPS_AT_1V15 = 10.0  # core current while hashing [decision: a plausible figure, nothing reads it as fact]
# EMC2101 identity registers (mujina peripheral/emc2101.rs Emc2101::init checks them): manufacturer
# 0x5D (SMSC/Microchip), product 0x16 (EMC2101; 0x28 is the -R part), revision.
EMC2101_IDENTITY = {0xFE: 0x5D, 0xFD: 0x16, 0xFF: 0x01}
EMC2101_FAN_FULL = 63  # the fan setting's six bits: 63 is 100 % (ESP-Miner EMC2101_set_fan_speed)


class BitaxeRawEmulator:
    def __init__(self, chip: str = "bm1370", chips: int = 1, rate: float = 20e6, difficulty: float = 1.0,
                 link: str | os.PathLike[str] | None = None, data_link: str | os.PathLike[str] | None = None,
                 temperature: float = 45.0, framing: str = c.FRAMING_PACKET):
        if framing not in c.FRAMINGS:
            raise ValueError(f"framing must be one of {', '.join(c.FRAMINGS)}, got {framing!r}")
        self.framing = framing  # which firmware generation's answers (docs/bitaxe-raw.md §2.1)
        self.chain = Bm13xxEmulator(chip, chips, rate, difficulty, data_link)
        self.control = PtyPort(link)
        self.temperature = temperature
        self.gpio = {c.GPIO_ASIC_RESET: 0}  # reset held at power-on
        self.regulator_on = False
        self.vout_word = 0
        self.fan_percent = 100
        self.i2c_hz = 0
        self.pmbus: dict[int, bytes] = {}  # what the host wrote to the TPS546, by command
        self.emc2101: dict[int, int] = {}  # what the host wrote to the EMC2101, by register
        self.idled_at: float | None = None  # when the chain was last held (reset low or power off)
        self.requests: list[c.Request] = []
        self._garbage = 0
        self._silent_until = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.chain.hold(True)

    # ------------------------------------------------------------ life
    @property
    def control_path(self) -> str:
        return self.control.device_path

    @property
    def data_path(self) -> str:
        return self.chain.device_path

    @property
    def vout(self) -> float:
        return c.ulinear16_to_volts(self.vout_word, c.vout_exponent(VOUT_MODE)) if self.regulator_on else 0.0

    def start(self) -> BitaxeRawEmulator:
        self.chain.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="bitaxe-raw-emu", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        self.chain.stop()
        self.control.close()

    def __enter__(self) -> BitaxeRawEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ faults and the world
    def set_temperature(self, celsius: float) -> None:
        self.temperature = celsius

    def inject_garbage(self, count: int = 1) -> None:
        """The next `count` answers come after bytes that are no packet."""
        self._garbage += count

    def inject_silence(self, seconds: float) -> None:
        self._silent_until = time.monotonic() + seconds

    def unplug(self) -> None:
        self.control.unplug()
        self.chain.unplug()

    def replug(self) -> None:
        """A power cycle: regulator off, reset held, both ports back."""
        self.regulator_on, self.gpio[c.GPIO_ASIC_RESET] = False, 0
        self._update_chain()
        self.control.plug()
        self.chain.replug()

    # ------------------------------------------------------------ the control port
    def _serve(self) -> None:
        parser = c.RequestParser()
        while not self._stop.is_set():
            try:
                data = self.control.read(4096, 0.05)
            except Unplugged:
                parser.clear()
                continue
            for item in parser.feed(data):
                if isinstance(item, c.Garbage):
                    continue
                self.requests.append(item)
                answer = self._answer(item)
                if time.monotonic() < self._silent_until:
                    continue
                with contextlib.suppress(Unplugged, OSError):
                    if self._garbage:
                        self._garbage -= 1
                        self.control.write(b"\x01\x00\xee")  # a length of 1: no packet
                    self.control.write(answer.encode(self.framing))

    def _answer(self, r: c.Request) -> c.Response:
        if r.page == c.PAGE_GPIO:
            if r.data:
                self.gpio[r.command] = r.data[0] & 1
                self._update_chain()
            return c.Response(r.id, bytes([self.gpio.get(r.command, 0)]))
        if r.page == c.PAGE_I2C:
            return self._i2c(r)
        if r.page == c.PAGE_FAN and r.command == c.FAN_SET_SPEED and r.data:
            self.fan_percent = min(100, r.data[0])
            return c.Response(r.id, bytes([self.fan_percent]))
        if r.page == c.PAGE_FAN and r.command == c.FAN_GET_TACH:
            return c.Response(r.id, (self.rpm).to_bytes(2, "little"))
        if r.page == c.PAGE_ADC and r.command == c.ADC_READ_VDD:
            return c.Response(r.id, (3300).to_bytes(2, "little"))  # millivolts [decision: the unit is not documented]
        return c.Response(r.id, error=0x11)

    @property
    def rpm(self) -> int:
        return 60 * self.fan_percent  # a fan that makes 6000 RPM at 100 %

    def _i2c(self, r: c.Request) -> c.Response:
        if r.command == c.I2C_SET_FREQUENCY:
            self.i2c_hz = int.from_bytes(r.data[:4], "little")
            return c.Response(r.id, r.data[:4])
        if not r.data:
            return c.Response(r.id, error=0x11)
        address, rest = r.data[0], r.data[1:]
        if r.command == c.I2C_WRITE:
            return self._i2c_write(r.id, address, rest)
        if r.command == c.I2C_WRITE_READ and len(rest) >= 2:
            return self._i2c_read(r.id, address, rest[0], rest[-1])
        return c.Response(r.id, error=0x11)

    def _i2c_write(self, ident: int, address: int, payload: bytes) -> c.Response:
        if address == c.TPS546_ADDRESS and payload and payload[0] in TPS546_COMMANDS:
            reg, value = payload[0], payload[1:]
            if reg == c.PMBUS_OPERATION and value:
                self.regulator_on = value[0] == c.OPERATION_ON
                self._update_chain()
            elif reg == c.PMBUS_VOUT_COMMAND and len(value) == 2:
                self.vout_word = int.from_bytes(value, "little")
            if value:
                self.pmbus[reg] = bytes(value)
            return c.Response(ident)
        if address == c.EMC2101_ADDRESS and len(payload) == 2:
            reg, value = payload
            if reg == c.EMC2101_FAN_SETTING:
                value &= EMC2101_FAN_FULL  # six bits; a host writing 0xFF asks for 100 %
                self.fan_percent = round(value * 100 / EMC2101_FAN_FULL)
            self.emc2101[reg] = value
            return c.Response(ident)
        return c.Response(ident, error=0x10)  # nobody acknowledges the address: the bus times out

    def _i2c_read(self, ident: int, address: int, reg: int, count: int) -> c.Response:
        if address == c.TPS546_ADDRESS:
            if reg not in TPS546_COMMANDS:
                return c.Response(ident, error=0x10)  # not acknowledged
            return c.Response(ident, self._pmbus_value(reg).ljust(count, b"\0")[:count])
        if address == c.EMC2101_ADDRESS:
            msb, lsb = c.emc2101_registers(self.temperature)
            tach = c.EMC2101_TACH_NUMERATOR // max(1, self.rpm)
            values = {**self.emc2101, **EMC2101_IDENTITY,
                      c.EMC2101_EXTERNAL_TEMP_MSB: msb, c.EMC2101_EXTERNAL_TEMP_LSB: lsb,
                      c.EMC2101_INTERNAL_TEMP: int(self.temperature - 10) & 0xFF,
                      c.EMC2101_TACH_LSB: tach & 0xFF, c.EMC2101_TACH_MSB: tach >> 8,
                      c.EMC2101_FAN_SETTING: round(self.fan_percent * EMC2101_FAN_FULL / 100)}
            # The register pointer auto-increments: a multi-byte read walks on (EMC2101 datasheet's
            # block read); unimplemented registers read 0.
            return c.Response(ident, bytes(values.get((reg + i) & 0xFF, 0) for i in range(count)))
        return c.Response(ident, error=0x10)

    def _pmbus_value(self, reg: int) -> bytes:
        """A TPS546 command's answer: the measured and identity values, else what was written
        (a register file that powers up at 0)."""
        on = self.regulator_on
        word = {c.PMBUS_READ_VOUT: self.vout_word if on else 0,
                c.PMBUS_READ_TEMPERATURE: c.float_to_linear11(self.temperature - 5),
                PMBUS_READ_VIN: c.float_to_linear11(VIN),
                PMBUS_READ_IOUT: c.float_to_linear11(AMPS_AT_1V15 * self.vout / 1.15 if on else 0.0),
                PMBUS_STATUS_WORD: 0 if on else STATUS_WORD_OFF}.get(reg)
        if word is not None:
            return word.to_bytes(2, "little")
        if reg == c.PMBUS_VOUT_MODE:
            return bytes([VOUT_MODE])
        if reg == c.PMBUS_OPERATION:
            return bytes([c.OPERATION_ON if on else c.OPERATION_OFF])
        if reg == PMBUS_IC_DEVICE_ID:
            return TPS546_DEVICE_ID
        return self.pmbus.get(reg, b"")

    def _update_chain(self) -> None:
        held = not (self.regulator_on and self.gpio.get(c.GPIO_ASIC_RESET, 0))
        if held and not self.chain.held:
            self.idled_at = time.monotonic()
        self.chain.hold(held)


def main(name: str, argv: list[str]) -> int:
    """`miner emulate bitaxe-raw [--chip bm1370] [--chips N] [--rate GH/s] [--difficulty D]`: prints the
    control port's path, then the data port's."""
    parser = emulator_arguments(f"miner emulate {name}", "Emulate a Bitaxe running bitaxe-raw on two ptys.", 1.0)
    parser.add_argument("--chip", default="bm1370", help="the chain's chip (default bm1370, the Gamma's)")
    parser.add_argument("--chips", type=int, default=1, metavar="N")
    parser.add_argument("--temperature", type=float, default=45.0, metavar="C", help="ASIC temperature")
    parser.add_argument("--framing", choices=c.FRAMINGS, default=c.FRAMING_PACKET,
                        help="answer framing of the firmware generation to emulate (docs/bitaxe-raw.md §2.1)")
    args = parser.parse_args(argv)
    try:
        emulator = BitaxeRawEmulator(args.chip, args.chips, args.rate * 1e9, args.difficulty, args.link,
                                     temperature=args.temperature, framing=args.framing)
    except ValueError as exc:
        print(f"miner emulate {name}: {exc}", file=sys.stderr)
        return 2

    def run(stop: threading.Event) -> None:
        with emulator:
            print(emulator.data_path, flush=True)
            stop.wait()

    return serve_until_stopped(emulator.control_path, run)
