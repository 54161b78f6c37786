"""Serial-port devices: opening a port with errors a person can act on, and the thread that keeps
one device going through unplugs, re-inits and faults.

A `SerialDevice` subclass implements `open_port` (baud rate and timeouts), `initialise` (identify
and set the hardware up; raise `NotThisDevice` when it answers wrongly) and `mine` (send work,
read results until told to stop or restart). This class turns a vanished port into NoDevice and
reopens it when it comes back, and a failed identification into Dead (for a device that never
identified; one that did is retried with backoff until it answers right again).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import stat
import threading
import time

import serial

from miner.core.work import Work
from miner.devices.base import Device, DeviceError, DeviceIdled, DeviceState, NotThisDevice

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
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"dev-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.stats.state is not DeviceState.DEAD and self.enabled:
            self.stats.state = DeviceState.INIT

    def restart_work(self) -> None:
        self._restart.set()
        self._wake.set()

    def work_available(self) -> None:
        self._wake.set()

    def reinitialise(self) -> None:
        self.stats.reinits += 1
        self._reinit.set()
        self._wake.set()

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
