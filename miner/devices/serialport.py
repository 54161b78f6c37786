"""Serial-port devices: opening a port with errors a person can act on, and the thread that keeps
one device going through unplugs, re-inits and faults.

A `SerialDevice` subclass implements `open_port` (baud rate and timeouts), `initialise` (identify
and set the hardware up; raise `NotThisDevice` when it answers wrongly) and `mine` (send work,
read results until told to stop or restart). This class turns a vanished port into NoDevice and
reopens it when it comes back, and a failed identification into Dead (for a device that never
identified; one that did is retried with backoff until it answers right again).

A driver whose mining is a few bytes now and then (an Icarus stick: a work packet every 72 ms, a
nonce now and then) may mine on the event loop instead of in its thread: `host_loop()` is the
running loop the device was started from, and `LoopHost` runs the driver there, its port's bytes
through the loop's port pump (devices/portpump.py: a C thread that writes each packet when its
range ends and reads the replies), while the device thread waits, parked, for the mining to end
(stop, re-init, an error, or the driver asking for its thread back). Opening, identifying, unplugs
and re-opening stay in the thread, unchanged. Why: the loop then wakes a few times a second per
stick instead of at every packet and reply, and no thread competes for the GIL with the loop
(docs/architecture.md, "Host cost").
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import select
import stat
import termios
import threading
import time
from collections.abc import Callable

import serial

from miner.core.work import Work
from miner.devices.base import Device, DeviceError, DeviceIdled, DeviceState, NotThisDevice
from miner.devices.portpump import PumpPort, Record

log = logging.getLogger(__name__)

PERMISSION_FIX = ("add your user to the 'dialout' group (sudo usermod -aG dialout $USER, then log in again) "
                  "or install the udev rules: miner udev-rules | sudo tee /etc/udev/rules.d/70-miner.rules")


def open_serial(port: str, baudrate: int, timeout: float = 0.1, exclusive: bool = True) -> serial.Serial:
    """pyserial's Serial, with the three usual failures turned into one line naming the fix."""
    try:
        st = os.stat(port)
    except FileNotFoundError:
        raise DeviceError(f"{port}: no such device (unplugged? check `miner devices`)") from None
    except PermissionError:
        raise DeviceError(f"{port}: permission denied; {PERMISSION_FIX}") from None
    if not stat.S_ISCHR(st.st_mode):
        raise DeviceError(f"{port}: not a serial device (a {_kind(st.st_mode)}, not a character device)")
    try:
        return serial.Serial(port, baudrate=baudrate, timeout=timeout, write_timeout=2.0, exclusive=exclusive)
    except serial.SerialException as exc:
        cause = exc.__cause__ or exc.__context__
        code = getattr(exc, "errno", None) or getattr(cause, "errno", None)
        if code in (errno.EACCES, errno.EPERM):
            raise DeviceError(f"{port}: permission denied; {PERMISSION_FIX}") from None
        if code == errno.ENOTTY or "Inappropriate ioctl" in str(exc):
            raise DeviceError(f"{port}: not a serial device (it does not answer terminal ioctls)") from None
        if code in (errno.EBUSY, errno.EAGAIN) or "exclusive" in str(exc).lower():
            raise DeviceError(f"{port}: in use by another program (another miner, ModemManager?)") from None
        raise DeviceError(f"{port}: cannot open: {exc}") from None


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "regular file"
    if stat.S_ISBLK(mode):
        return "block device"
    return "special file"


class SerialDevice(Device):
    """A device behind one port, driven by one thread. The port is a pyserial port for every
    serial driver; `open_port` may return any transport with `close()` (the Avalon nano's HID)."""

    reopen_interval = 1.0  # seconds between attempts to reopen a port that vanished
    # A device that identified itself once and then answers wrongly (noise during a re-init, one
    # corrupted reply whose 5-bit CRC passed) is the same hardware having a bad moment, not another
    # device: it is retried with this backoff, doubling from the first to the longest, for as long
    # as it takes (issue 14 fault 9). Only a device never identified is given up on (Dead).
    identify_retry_first = 1.0
    identify_retry_longest = 30.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._restart = threading.Event()  # a clean job: drop the current work
        self._wake = threading.Event()  # work is available again
        self._reinit = threading.Event()
        self.serial: serial.Serial | None = None
        self.identified_once = False  # initialise() has succeeded at least once on this device
        self.identify_failures = 0  # wrong answers in a row since it last identified
        self._host_loop: asyncio.AbstractEventLoop | None = None  # the loop start() was called from
        self._hosted: LoopHost | None = None  # mining on that loop now

    # ------------------------------------------------------------ for subclasses
    def open_port(self) -> serial.Serial:
        raise NotImplementedError

    def initialise(self, port: serial.Serial) -> None:
        raise NotImplementedError

    def mine(self, port: serial.Serial) -> None:
        """Mine until `self.stopping()` or `self.reinit_requested()`; return to leave the loop."""
        raise NotImplementedError

    def idle(self, port: serial.Serial) -> None:
        """Leave the hardware idle before the port closes (best effort)."""

    # ------------------------------------------------------------ control
    def start(self) -> None:
        with contextlib.suppress(RuntimeError):  # kept: a re-plug may start it again from a worker thread
            self._host_loop = asyncio.get_running_loop()
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"dev-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._release_host()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.stats.state is not DeviceState.DEAD and self.enabled:
            self.stats.state = DeviceState.INIT

    def restart_work(self) -> None:
        self._restart.set()
        self._wake.set()
        self._poke_host()

    def work_available(self) -> None:
        self._wake.set()
        self._poke_host()

    def reinitialise(self) -> None:
        self.stats.reinits += 1
        self._reinit.set()
        self._wake.set()
        self._release_host()

    # ------------------------------------------------------------ mining on the event loop
    def host_loop(self) -> asyncio.AbstractEventLoop | None:
        """The running event loop this device was started from, where `mine` may run its I/O
        (`mine_on_loop`); None outside one (a device driven without a loop: tests, tools)."""
        loop = self._host_loop
        return loop if loop is not None and loop.is_running() else None

    def mine_on_loop(self, host: LoopHost) -> bool:
        """Mine on the loop until the mining ends; False when the loop could not take it (it
        stopped meanwhile: mine in the thread then). Raises what ended it with an error."""
        self._hosted = host
        try:
            if self.stopping() or self.reinit_requested():
                return True
            return host.run()
        finally:
            self._hosted = None

    def _release_host(self) -> None:
        host = self._hosted
        if host is not None:
            host.release()

    def _poke_host(self) -> None:
        host = self._hosted
        if host is not None:
            host.poke()

    def stopping(self) -> bool:
        return self._stop.is_set()

    def pause(self, seconds: float) -> bool:
        """Wait `seconds`, or less if the device is told to stop (then True)."""
        return self._stop.wait(seconds)

    def reinit_requested(self) -> bool:
        return self._reinit.is_set()

    def take_restart(self) -> bool:
        """True once after each clean job (the driver drops its work then)."""
        if self._restart.is_set():
            self._restart.clear()
            return True
        return False

    def next_work(self, wait: float = 0.5) -> Work | None:
        """A work unit, or None after waiting `wait` seconds for one (no job yet)."""
        work = self.work_source.next_work(device_rolls_version=self.rolls_version, device=self.name)
        if work is None:
            self._wake.wait(wait)
            self._wake.clear()
        return work

    # ------------------------------------------------------------ the device thread
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                port = self.open_port()
            except DeviceError as exc:
                self.stats.set_state(DeviceState.NO_DEVICE, str(exc))
                self._stop.wait(self.reopen_interval)
                continue
            self.serial = port
            try:
                self._reinit.clear()
                self.initialise(port)
                self.identified_once = True
                self.identify_failures = 0
                self.stats.set_state(DeviceState.ALIVE, "initialised")
                self.mine(port)
            except NotThisDevice as exc:
                self._close(port)
                if not self.identified_once:
                    self.stats.set_state(DeviceState.DEAD, str(exc))
                    log.error("%s: %s; not mining with it", self.name, exc)
                    return
                delay = self.identify_retry_delay()
                self.identify_failures += 1
                why = f"{exc}; it identified before, retrying in {delay:g} s"
                if self.stats.state is DeviceState.INIT:  # already Initialising (a re-init): say why
                    self.stats.last_error = why
                    log.warning("%s: %s", self.name, why)
                else:
                    self.stats.set_state(DeviceState.INIT, why)  # logs it
                self._stop.wait(delay)
                continue
            except DeviceIdled as exc:
                self._close(port)
                if self.stats.state is DeviceState.INIT:
                    self.stats.last_error = str(exc)
                self.stats.set_state(DeviceState.INIT, str(exc))
                self._stop.wait(self.reopen_interval)
                continue
            except (serial.SerialException, OSError, DeviceError) as exc:
                self.stats.set_state(DeviceState.NO_DEVICE, f"{self.port}: {_one_line(exc)}")
                self._close(port)
                self._stop.wait(self.reopen_interval)
                continue
            if self._reinit.is_set():
                log.info("%s: re-initialising", self.name)
                self.stats.set_state(DeviceState.INIT)
            else:
                with contextlib.suppress(serial.SerialException, OSError, DeviceError):
                    self.idle(port)
            self._close(port)

    def identify_retry_delay(self) -> float:
        """Seconds before the next identification attempt after `identify_failures` wrong answers."""
        return min(self.identify_retry_longest, self.identify_retry_first * 2 ** self.identify_failures)

    def _close(self, port: serial.Serial) -> None:
        self.serial = None
        with contextlib.suppress(serial.SerialException, OSError):
            port.close()
        self.port_closed()

    def port_closed(self) -> None:
        """After the port closed (any reason): a device with a second port closes that one here."""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def read_exactly(port: serial.Serial, size: int, timeout: float) -> bytes:
    """Up to `size` bytes, waiting at most `timeout` seconds in all (a short answer on timeout)."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while len(data) < size:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        port.timeout = min(left, 0.1)
        chunk = port.read(size - len(data))
        if chunk:
            data += chunk
    return bytes(data)


def read_available(port: serial.Serial, timeout: float) -> bytes:
    """Whatever has arrived within `timeout` seconds (at least one byte, or nothing), in one select
    and one read, leaving the port's settings alone.

    Why not `port.timeout = t; port.read(1)`: pyserial's timeout setter reconfigures the whole
    port on every change (flock, tcgetattr, tcsetattr: pyserial serialposix.py,
    Serial._reconfigure_port), and a driver whose wait changes on every pass paid that, plus the
    Python around it, tens of times a second per stick (benchmarks/bench_host_cost.py).
    A port that says it is readable and gives no bytes is gone (pyserial raises the same).
    """
    fd = port.fileno()
    ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
    if not ready:
        return b""
    data = os.read(fd, 4096)
    if not data:
        raise serial.SerialException("device reports readiness to read but returned no data (device disconnected?)")
    return data


def write_all(port: serial.Serial, data: bytes, timeout: float = 2.0) -> None:
    """Write every byte and wait until the port has sent them (pyserial's `write` then `flush`),
    in two system calls when the port takes the bytes at once, as it does for a work packet.

    Why not `port.write(data); port.flush()`: pyserial's write with a write timeout selects for
    writability after every write, whole or not, and builds a Timeout around it (pyserial
    serialposix.py, Serial.write); with flush's `tcdrain` (Serial.flush) a work packet cost
    three system calls and ~50 lines of Python, 14 times a second per U3
    (benchmarks/bench_host_cost.py). The port is non-blocking (pyserial opens it O_NONBLOCK), so a
    full output buffer is waited for with select, for `timeout` seconds in all, as pyserial does;
    a port that stays full raises pyserial's SerialTimeoutException, one that is gone OSError.
    """
    fd = port.fileno()
    view = memoryview(data)
    deadline = None
    while view:
        try:
            view = view[os.write(fd, view):]
            continue
        except BlockingIOError:
            pass
        except OSError as exc:  # worded as pyserial words it: the device's state line says this
            raise serial.SerialException(f"write failed: {exc}") from exc
        if deadline is None:
            deadline = time.monotonic() + timeout
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([], [fd], [], left)[1]:
            raise serial.SerialTimeoutException("Write timeout")
    try:
        termios.tcdrain(fd)
    except termios.error as exc:
        raise serial.SerialException(f"write failed: {exc}") from exc


class LoopHost:
    """One port's mining on the event loop, for the device thread that waits meanwhile.

    The port's bytes go through the loop's port pump (devices/portpump.py): its C thread sends
    the packets the driver queued (`send`, `send_now`) when each range ends (`pace`) and reads
    what the stick answered; the driver's `on_records` gets them, in order, a few times a second.
    `on_poke` runs once attached and whenever the device is told of work or a clean job; one
    timer a port (`call_later`). `on_release` gets what the port still held when the mining ends
    (stop, re-init, or `finish`: the driver wants its thread back), so nothing the stick found is
    lost. Everything the driver does runs on the loop, one callback at a time. An exception from a
    callback, or a port error the pump saw, ends the mining, and `run` raises it in the device
    thread, where the SerialDevice loop handles it as it handles one from a threaded `mine`
    (NoDevice, reopen).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, port: serial.Serial,
                 on_records: Callable[[list[Record]], None], on_poke: Callable[[], None],
                 on_release: Callable[[list[Record]], None] | None = None):
        self.loop = loop
        self.port = port
        self.fd = port.fileno()
        self._on_records = on_records
        self._on_poke = on_poke
        self._on_release = on_release
        self._pumped: PumpPort | None = None
        self._attached = False
        self._ended = threading.Event()
        self._error: BaseException | None = None
        self._timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------ from the device thread
    def run(self) -> bool:
        try:
            self.loop.call_soon_threadsafe(self._attach)
        except RuntimeError:  # the loop has closed
            return False
        # Parked: woken by the end of the mining. The timeout only notices a loop that stopped
        # running without stopping its devices (then nothing would ever end it).
        while not self._ended.wait(1.0):
            if not self.loop.is_running():
                self._detach()
                if self._error is not None:
                    raise self._error
                return False  # the loop ended under the mining: the thread mines on
        if self._error is not None:
            raise self._error
        return True

    # ------------------------------------------------------------ from any thread
    def release(self) -> None:
        """End the mining (stop, re-init): at once on the loop's thread, else as the loop's next job."""
        if self._on_loop_thread():
            self._release()
            return
        try:
            self.loop.call_soon_threadsafe(self._release)
        except RuntimeError:  # the loop has closed: nothing of it runs any more
            self._ended.set()

    def poke(self) -> None:
        """Run the driver's `on_poke` soon, on the loop."""
        try:
            if self._on_loop_thread():
                self.loop.call_soon(self._guarded, self._on_poke)
            else:
                self.loop.call_soon_threadsafe(self._guarded, self._on_poke)
        except RuntimeError:
            pass

    # ------------------------------------------------------------ for the driver, on the loop
    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """`callback` after `delay` seconds; replaces the timer set before (one timer a port)."""
        self.cancel_timer()
        self._timer = self.loop.call_later(delay, self._guarded, callback) if self._attached else None

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def send(self, packet: bytes, seq: int) -> bool:
        """Queue a packet for the next range end (False: QUEUE_MAX queued already)."""
        return self._pumped is not None and self._pumped.send(packet, seq)

    def send_now(self, packet: bytes, seq: int) -> list[int]:
        """Send this packet now, after the port is read; the queued packets it replaces (their seqs)."""
        return self._pumped.send_now(packet, seq) if self._pumped is not None else []

    def pace(self, range_time: float, watch: bool) -> None:
        """The range time (seconds from one packet to the next) and whether replies are read as
        they come (watch) or at each range's end."""
        if self._pumped is not None:
            self._pumped.pace(range_time, watch)

    def finish(self) -> None:
        """The driver wants its thread back (a command that needs pauses): end the mining."""
        self._release()

    # ------------------------------------------------------------ internals, on the loop
    def _attach(self) -> None:
        if self._ended.is_set():
            return
        try:
            self._pumped = PumpPort(self.loop, self.fd, 1.0, True, self._delivered)
        except (OSError, ValueError) as exc:  # no thread to be had, or the fd closed under us
            self._error = serial.SerialException(f"cannot watch the port: {exc}")
            self._ended.set()
            return
        self._attached = True
        self._guarded(self._on_poke)

    def _delivered(self, records: list[Record], error: BaseException | None) -> None:
        def handle() -> None:
            self._on_records(records)  # none: the pump woke the loop for another port; top up
            if error is not None:
                raise error
        self._guarded(handle)

    def _guarded(self, callback: Callable[[], None]) -> None:
        if not self._attached:
            return
        try:
            callback()
        except Exception as exc:  # noqa: BLE001 - handed to the device thread, which decides
            self._error = exc
            self._detach()

    def _release(self) -> None:
        if self._attached and self._pumped is not None:
            # What the port holds is the stick's valid work: reported before the mining ends. A
            # port gone meanwhile has nothing to give; the re-init that follows says so.
            records, _ = self._pumped.close()
            if records and self._on_release is not None:
                try:
                    self._on_release(records)
                except Exception:  # noqa: BLE001 - a bug in the driver must not keep the mining attached
                    log.exception("reporting what the port held at release failed")
        self._detach()

    def _detach(self) -> None:
        if self._attached:
            self._attached = False
            self.cancel_timer()
            if self._pumped is not None:
                self._pumped.close()  # after an error: nothing more to read from it
        self._ended.set()

    def _on_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False
