"""The port pump's shell: native/portpump.c sends each stick's work packets when its range ends and
reads what the stick answered, in one C thread for all the ports of an event loop; this module
hands its records to the loop. Why: a Python wake costs 100-250 us of CPU on the machines measured,
a C wake ~50 us (benchmarks/bench_wake_cost.py), and a U3 wants work every 72 ms; with the pump the
loop wakes once every few ranges per stick (docs/architecture.md, "Host cost").

The pump knows no protocol: packets are the driver's bytes, reads are bytes with their times.

    port = PumpPort(loop, fd, range_time, watch, on_records)
    port.send(packet, seq)        # sent at the next range end (a few are queued ahead)
    port.send_now(packet, seq)    # a clean job: the queue dropped (their seqs returned), sent now
    port.pace(range_time, watch)  # the range time, and whether replies are read as they come
    port.close()                  # what the port holds is read first: the last records returned

`on_records(records, error)` runs on the loop whenever the pump wakes it (a port's queue is
down to one packet, a watched read, an error: any port's, so that one wake serves them all) with
the port's records (maybe none) in the order things happened:
`(SENT, t, seq, b"")` for a packet written at t, `(READ, t, watched, data)` for bytes read at t
(watched: read as they came; else at a range's end, so only known to have come by t), and `error`
(a serial exception, or None) when the port failed after them.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Callable

import serial

from miner._portpump import ffi, lib

SENT = lib.PUMP_WRITE
READ = lib.PUMP_READ
QUEUE_MAX = lib.PUMP_QUEUE_MAX
PACKET_MAX = lib.PUMP_PACKET_MAX
_RECORDS = 256  # portpump.c PORT_RECORDS
_DATA = 4096  # portpump.c PORT_DATA

Record = tuple[int, float, int, bytes]
OnRecords = Callable[[list[Record], BaseException | None], None]


class _Pump:
    """One pump (its C thread) per event loop, alive while it has ports."""

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pump] = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop):
        handle = lib.pump_new()
        if handle == ffi.NULL:
            raise OSError(ffi.errno, f"cannot start the port pump: {os.strerror(ffi.errno)}")
        self.loop = loop
        self.handle = handle
        self.ports: dict[int, PumpPort] = {}
        self._ids = ffi.new("int32_t[]", 64)
        self._records = ffi.new("pump_record[]", _RECORDS)
        self._data = ffi.new("uint8_t[]", _DATA)
        self._data_len = ffi.new("uint32_t *")
        self._notify_fd = lib.pump_notify_fd(handle)
        loop.add_reader(self._notify_fd, self._dispatch)

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Pump:
        pump = cls._by_loop.get(loop)
        if pump is None:
            pump = cls._by_loop[loop] = cls(loop)
        return pump

    def drop(self, port_id: int) -> None:
        self.ports.pop(port_id, None)
        if not self.ports:  # no port left: the thread ends, and the loop forgets the pipe
            self._by_loop.pop(self.loop, None)
            if not self.loop.is_closed():
                self.loop.remove_reader(self._notify_fd)
            lib.pump_free(self.handle)
            self.handle = ffi.NULL

    def collect(self, port_id: int) -> tuple[list[Record], BaseException | None]:
        n = lib.pump_collect(self.handle, port_id, self._records, _RECORDS, self._data, _DATA, self._data_len)
        records: list[Record] = []
        error = None
        if n <= 0:
            return records, error
        data = ffi.buffer(self._data, self._data_len[0])[:] if self._data_len[0] else b""
        for i in range(n):
            r = self._records[i]
            kind = r.kind
            if kind == SENT:
                records.append((SENT, r.t_ns / 1e9, r.seq, b""))
            elif kind == READ:
                records.append((READ, r.t_ns / 1e9, r.detail, data[r.offset:r.offset + r.length]))
            else:
                error = _error(r.detail, r.err)
        return records, error

    def _dispatch(self) -> None:
        """A port has records: every port is served in this one wake (its records, and its queue
        topped up), so ports whose ranges end at different times share the loop's wakes instead
        of each waking it on its own: at 10 sticks, ~3x fewer wakes."""
        if self.handle == ffi.NULL:
            return
        lib.pump_ready(self.handle, self._ids, 64)  # clears the pipe; which ports does not matter
        for port in list(self.ports.values()):
            port.deliver()


def _error(detail: int, err: int) -> BaseException:
    """Worded as pyserial words it: the device's state line says this (serialport.py)."""
    if detail == lib.PUMP_ERR_WRITE_FULL:
        # A full output buffer (64 bytes into kilobytes: flow control stuck): the port has stopped
        # taking work. Not waited for: the pump sends to every port.
        return serial.SerialTimeoutException("Write timeout (the port takes no more bytes)")
    if detail == lib.PUMP_ERR_WRITE:
        return serial.SerialException(f"write failed: [Errno {err}] {os.strerror(err)}")
    if err:
        return serial.SerialException(f"read failed: [Errno {err}] {os.strerror(err)}")
    return serial.SerialException("device reports readiness to read but returned no data (device disconnected?)")


class PumpPort:
    """One port in its loop's pump (see the module's doc). Used on the loop's thread only."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, range_time: float, watch: bool,
                 on_records: OnRecords):
        self._pump = _Pump.of(loop)
        self._on_records = on_records
        self._pace = (range_time, watch)
        self.id = lib.pump_add(self._pump.handle, fd, _ns(range_time), int(watch))
        if self.id < 0:
            self._pump.drop(self.id)  # a pump left with no port ends
            raise OSError("the port pump is full (256 ports)")
        self._pump.ports[self.id] = self
        self._flushed = ffi.new("uint64_t[]", QUEUE_MAX)
        self.closed = False

    def send(self, packet: bytes, seq: int) -> bool:
        """Queue a packet for the next range end; False when QUEUE_MAX are queued already (or closed)."""
        if self.closed:  # the pump may be gone with its last port: never a call into freed memory
            return False
        return bool(lib.pump_queue(self._pump.handle, self.id, packet, len(packet), seq))

    def send_now(self, packet: bytes, seq: int) -> list[int]:
        """Send this packet now, once the port is read; returns the seqs of the queued packets
        dropped for it (never sent)."""
        if self.closed:
            return []
        count = lib.pump_restart(self._pump.handle, self.id, packet, len(packet), seq, self._flushed, QUEUE_MAX)
        return [self._flushed[i] for i in range(max(0, count))]

    def pace(self, range_time: float, watch: bool) -> None:
        if not self.closed and (range_time, watch) != self._pace:
            self._pace = (range_time, watch)
            lib.pump_set(self._pump.handle, self.id, _ns(range_time), int(watch))

    def deliver(self) -> None:
        """Its records (maybe none) to `on_records`, which tops the queue up."""
        if not self.closed:
            records, error = self._pump.collect(self.id)
            self._on_records(records, error)

    def close(self) -> tuple[list[Record], BaseException | None]:
        """Take the port out of the pump; what it held is read first and returned (not delivered)."""
        if self.closed:
            return [], None
        self.closed = True
        lib.pump_remove(self._pump.handle, self.id)
        try:
            return self._pump.collect(self.id)
        finally:
            self._pump.drop(self.id)


def _ns(seconds: float) -> int:
    return max(1_000_000, int(seconds * 1e9))


def now() -> float:
    """The pump's clock in seconds: time.monotonic's on Linux and macOS."""
    return lib.pump_now_ns() / 1e9

