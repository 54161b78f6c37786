"""The bitaxe-raw control port (docs/bitaxe-raw.md): length-prefixed request/response packets that
tunnel I2C, GPIO, ADC and fan operations, and the two I2C parts a Bitaxe Gamma carries behind them
(the TPS546 core regulator, the EMC2101 fan and temperature chip). Pure encode/decode, shared by the
driver and its emulator; no port, no clock.

Facts (docs/bitaxe-raw.md §1-§3 with their sources): a request is LEN(2, LE, the whole packet) ID
BUS(0) PAGE CMD DATA; the answer is LEN(2, LE, the whole packet) ID DATA, or LEN ID FF CODE [text]
for an error; pages I2C 0x05, GPIO 0x06 (the command byte is the pin), ADC 0x07, fan 0x09.
Answers come in three framings, one per firmware generation (§2.1): FRAMING_PACKET above (the
current firmware), FRAMING_V0 (the original: LEN counts the data only) and FRAMING_V1 (a status byte
after the id); the requests are the same in all three.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

PAGE_I2C = 0x05
PAGE_GPIO = 0x06
PAGE_ADC = 0x07
PAGE_FAN = 0x09
I2C_SET_FREQUENCY = 0x10
I2C_WRITE = 0x20
I2C_READ = 0x30
I2C_WRITE_READ = 0x40
ADC_READ_VDD = 0x50
FAN_SET_SPEED = 0x10
FAN_GET_TACH = 0x20
ERROR_MARKER = 0xFF
ERRORS = {0x10: "timeout", 0x11: "invalid command", 0x12: "denied", 0x13: "fault", 0xFF: "message"}
HEADER = 6  # request: length, id, bus, page, command
MIN_RESPONSE = 3  # length and id
MAX_PACKET = 4096  # the firmware's USB buffer

# Answer framings (docs/bitaxe-raw.md §2.1). PACKET: bitaxeorg/bitaxe-raw src/control/mod.rs
# Controller::run, LEN = len(data) + 3. V0 and V1 as 256foundation/mujina names them
# (mgmt_protocol/bitaxe_raw/mod.rs ResponseFormat): V0 LEN = len(data), the original firmware, whose
# error answers still carry the whole packet's length (CommandError::to_bytes is shared); V1 LEN =
# the whole packet, then a status byte, 0x00 or the error code.
FRAMING_PACKET = "packet"
FRAMING_V0 = "v0"
FRAMING_V1 = "v1"
FRAMINGS = (FRAMING_PACKET, FRAMING_V0, FRAMING_V1)
STATUS_OK = 0x00

GPIO_ASIC_RESET = 0x00  # RST_N, active low (the Gamma's ASIC reset; bitaxe-raw README, mujina bitaxe.rs)


class ControlError(Exception):
    """The board answered a request with an error packet (or an answer that does not fit it)."""


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    page: int
    command: int
    data: bytes = b""
    bus: int = 0

    def encode(self) -> bytes:
        body = bytes([self.id & 0xFF, self.bus, self.page, self.command]) + self.data
        if len(body) + 2 > MAX_PACKET:
            raise ValueError(f"control request of {len(body) + 2} bytes exceeds {MAX_PACKET}")
        return struct.pack("<H", len(body) + 2) + body


@dataclass(frozen=True, slots=True)
class Response:
    id: int
    data: bytes = b""
    error: int | None = None  # an ERRORS code
    message: str = ""

    def encode(self, framing: str = FRAMING_PACKET) -> bytes:
        body = bytes([self.id & 0xFF])
        if framing == FRAMING_V1 and self.error is not None:
            body += bytes([self.error]) + self.message.encode()
        elif framing == FRAMING_V1:
            body += bytes([STATUS_OK]) + self.data
        elif self.error is not None:
            body += bytes([ERROR_MARKER, self.error]) + self.message.encode()
        else:
            body += self.data
            if framing == FRAMING_V0:
                return struct.pack("<H", len(self.data)) + body
        return struct.pack("<H", len(body) + 2) + body

    def check(self) -> bytes:
        if self.error is not None:
            what = ERRORS.get(self.error, f"error {self.error:#04x}")
            raise ControlError(f"board answered {what}" + (f": {self.message}" if self.message else ""))
        return self.data


@dataclass(frozen=True, slots=True)
class Garbage:
    """Bytes that were no packet (a length out of range): dropped one at a time to resynchronise."""

    data: bytes


class _Framer:
    """Cuts a byte stream into length-prefixed packets (both directions use the same length rule)."""

    minimum = MIN_RESPONSE

    def __init__(self) -> None:
        self._buf = bytearray()

    def _total(self, length: int) -> int:
        """The whole packet's size for a LEN field."""
        return length

    def _frames(self, data: bytes) -> Iterator[bytes | Garbage]:
        self._buf += data
        while len(self._buf) >= 2:
            length = self._total(self._buf[0] | self._buf[1] << 8)
            if not self.minimum <= length <= MAX_PACKET:
                yield Garbage(bytes(self._buf[:1]))
                del self._buf[:1]
                continue
            if len(self._buf) < length:
                return
            frame = bytes(self._buf[:length])
            del self._buf[:length]
            yield frame

    @property
    def pending(self) -> int:
        return len(self._buf)

    def clear(self) -> None:
        self._buf.clear()


class ResponseParser(_Framer):
    """Board -> host, in one of FRAMINGS. A response whose first data byte is FF is an error (the
    firmware's CommandError::to_bytes); a command whose good answer starts with FF cannot be told
    from one, so the driver never issues reads whose first byte may be FF unless it checks the
    length too. V1 has a status byte instead and no such ambiguity."""

    def __init__(self, framing: str = FRAMING_PACKET) -> None:
        if framing not in FRAMINGS:
            raise ValueError(f"bitaxe-raw framing must be one of {', '.join(FRAMINGS)}, got {framing!r}")
        super().__init__()
        self.framing = framing

    def _total(self, length: int) -> int:
        if self.framing != FRAMING_V0:
            return length
        # V0: LEN counts the data, except in an error answer (LEN ID FF CODE: the whole packet).
        if (len(self._buf) >= 5 and self._buf[3] == ERROR_MARKER and self._buf[4] in ERRORS
                and length >= 5):
            return length
        return length + 3

    def feed(self, data: bytes) -> Iterator[Response | Garbage]:
        for frame in self._frames(data):
            if isinstance(frame, Garbage):
                yield frame
                continue
            ident, body = frame[2], frame[3:]
            if self.framing == FRAMING_V1:
                if not body:
                    yield Garbage(frame)
                elif body[0] == STATUS_OK:
                    yield Response(ident, bytes(body[1:]))
                else:
                    yield Response(ident, b"", body[0], body[1:].decode(errors="replace"))
                continue
            if len(body) >= 2 and body[0] == ERROR_MARKER and body[1] in ERRORS:
                yield Response(ident, b"", body[1], body[2:].decode(errors="replace"))
            else:
                yield Response(ident, bytes(body))


class RequestParser(_Framer):
    """Host -> board (the emulator's side)."""

    minimum = HEADER

    def feed(self, data: bytes) -> Iterator[Request | Garbage]:
        for frame in self._frames(data):
            if isinstance(frame, Garbage):
                yield frame
            else:
                yield Request(frame[2], frame[4], frame[5], frame[6:], frame[3])


# ------------------------------------------------------------------------------------ requests
def i2c_frequency(ident: int, hz: int) -> Request:
    return Request(ident, PAGE_I2C, I2C_SET_FREQUENCY, struct.pack("<I", hz))


def i2c_write(ident: int, address: int, payload: bytes) -> Request:
    return Request(ident, PAGE_I2C, I2C_WRITE, bytes([address]) + payload)


def i2c_read(ident: int, address: int, count: int) -> Request:
    return Request(ident, PAGE_I2C, I2C_READ, bytes([address, count]))


def i2c_write_read(ident: int, address: int, payload: bytes, count: int) -> Request:
    return Request(ident, PAGE_I2C, I2C_WRITE_READ, bytes([address]) + payload + bytes([count]))


def gpio_set(ident: int, pin: int, level: int) -> Request:
    return Request(ident, PAGE_GPIO, pin, bytes([1 if level else 0]))


def gpio_get(ident: int, pin: int) -> Request:
    return Request(ident, PAGE_GPIO, pin)


def fan_speed(ident: int, percent: int) -> Request:
    if not 0 <= percent <= 100:
        raise ValueError(f"fan speed must be 0..100 %, got {percent}")
    return Request(ident, PAGE_FAN, FAN_SET_SPEED, bytes([percent]))


def adc_vdd(ident: int) -> Request:
    return Request(ident, PAGE_ADC, ADC_READ_VDD)


# ------------------------------------------------------------------------------------ TPS546 (PMBus)
TPS546_ADDRESS = 0x24
PMBUS_OPERATION = 0x01
PMBUS_CLEAR_FAULTS = 0x03
PMBUS_VOUT_MODE = 0x20
PMBUS_VOUT_COMMAND = 0x21
PMBUS_READ_VOUT = 0x8B
PMBUS_READ_TEMPERATURE = 0x8D
OPERATION_ON = 0x80
OPERATION_OFF = 0x00


def vout_exponent(vout_mode: int) -> int:
    """VOUT_MODE's low 5 bits: the two's-complement exponent of ULINEAR16 voltages (0x17 -> -9)."""
    e = vout_mode & 0x1F
    return e - 32 if e & 0x10 else e


def volts_to_ulinear16(volts: float, exponent: int) -> int:
    word = round(volts / 2.0**exponent)
    if not 0 <= word <= 0xFFFF:
        raise ValueError(f"{volts} V does not fit ULINEAR16 at exponent {exponent}")
    return word


def ulinear16_to_volts(word: int, exponent: int) -> float:
    return word * 2.0**exponent


def linear11_to_float(word: int) -> float:
    """PMBus LINEAR11: 5-bit signed exponent, 11-bit signed mantissa (READ_TEMPERATURE_1)."""
    exponent = word >> 11
    mantissa = word & 0x7FF
    if exponent & 0x10:
        exponent -= 32
    if mantissa & 0x400:
        mantissa -= 0x800
    return mantissa * 2.0**exponent


def float_to_linear11(value: float, exponent: int = -2) -> int:
    mantissa = round(value / 2.0**exponent)
    if not -1024 <= mantissa <= 1023:
        raise ValueError(f"{value} does not fit LINEAR11 at exponent {exponent}")
    return ((exponent & 0x1F) << 11) | (mantissa & 0x7FF)


# ------------------------------------------------------------------------------------ EMC2101
EMC2101_ADDRESS = 0x4C
EMC2101_INTERNAL_TEMP = 0x00
EMC2101_EXTERNAL_TEMP_MSB = 0x01  # the ASIC's diode
EMC2101_EXTERNAL_TEMP_LSB = 0x10  # bits 7..5: eighths of a degree
EMC2101_TACH_LSB = 0x46
EMC2101_TACH_MSB = 0x47
EMC2101_FAN_SETTING = 0x4C
EMC2101_TACH_NUMERATOR = 5_400_000  # RPM = this / tach count
EMC2101_FAULT_OPEN = 0x3F8  # the 11-bit reading of an open diode, as ESP-Miner's EMC2101.h names it
EMC2101_FAULT_SHORT = 0x3FF


def emc2101_temperature(msb: int, lsb: int) -> float | None:
    """The external (ASIC diode) temperature in °C; None for a diode fault (open or short)."""
    raw11 = (msb << 3) | (lsb >> 5)
    if raw11 in (EMC2101_FAULT_OPEN, EMC2101_FAULT_SHORT):
        return None
    signed = msb - 256 if msb & 0x80 else msb
    return signed + (lsb >> 5) * 0.125


def emc2101_registers(celsius: float) -> tuple[int, int]:
    """(MSB, LSB) the EMC2101 holds for a temperature (the emulator's side)."""
    eighths = round(celsius * 8)
    msb = (eighths >> 3) & 0xFF
    return msb, (eighths & 0x7) << 5


def emc2101_rpm(tach: int) -> int:
    return 0 if tach in (0, 0xFFFF) else EMC2101_TACH_NUMERATOR // tach
