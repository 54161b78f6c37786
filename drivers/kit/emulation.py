"""Pieces every device emulator shares: the pseudo-terminal it owns, hashing real work at a
chosen rate, and the `miner emulate` command shell.

An emulator is a real device to its driver: the driver opens the pty's slave path with pyserial
and talks the hardware's bytes. "Unplug" closes the pty (the driver's reads fail as they do when
a USB stick is pulled) and "replug" opens a new one; when the emulator was given a `link` path,
that symlink follows the new pty so the driver finds the device at the same path again, as a
stick re-plugged into the same USB port would be.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from miner.core import hashing
from miner.core.targets import NONCE_SPACE


class Unplugged(Exception):
    """The emulated device is unplugged: nothing can be read or written."""


class PtyPort:
    """The device side of a pseudo-terminal, raw mode, with unplug and replug."""

    def __init__(self, link: str | os.PathLike[str] | None = None):
        self.link = Path(link) if link is not None else None
        self._master: int | None = None
        self._slave: int | None = None
        self._lock = threading.Lock()
        self._users = 0  # threads inside read()/write() with the master descriptor in hand
        self._retired: list[int] = []  # hung-up master descriptors waiting for those threads to leave
        self.path = ""
        self.plug()

    @property
    def device_path(self) -> str:
        """What a driver should open: the stable link if there is one, else the pty itself."""
        return str(self.link) if self.link is not None else self.path

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def plug(self) -> None:
        with self._lock:
            if self._master is not None:
                return
            master, slave = os.openpty()
            # Raw on both sides: the driver's bytes must arrive unchanged (no echo, no CR/LF mapping).
            tty.setraw(master)
            tty.setraw(slave)
            attrs = termios.tcgetattr(slave)
            attrs[3] &= ~termios.ECHO
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            self._master, self._slave = master, slave
            self.path = os.ttyname(slave)
            if self.link is not None:
                tmp = self.link.with_name(self.link.name + ".new")
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                tmp.symlink_to(self.path)
                tmp.replace(self.link)

    def unplug(self) -> None:
        """Hang up the pty: the driver's next read or write fails as with a pulled USB stick."""
        with self._lock:
            if self.link is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.link.unlink()
            if self._master is not None:
                # Closing the master hangs up the driver's side at once. The descriptor number is
                # kept (pointing at /dev/null) while another thread may still select on it: were
                # it freed, the next openpty could take the number and that thread would read
                # another emulator's bytes.
                devnull = os.open(os.devnull, os.O_RDWR)
                os.dup2(devnull, self._master)
                os.close(devnull)
                self._retired.append(self._master)
            if self._slave is not None:
                with contextlib.suppress(OSError):
                    os.close(self._slave)
            self._master = self._slave = None
            self._close_retired()

    def _close_retired(self) -> None:
        if self._users == 0:
            for fd in self._retired:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._retired.clear()

    def _enter(self) -> int:
        with self._lock:
            if self._master is None:
                raise Unplugged()
            self._users += 1
            return self._master

    def _leave(self) -> None:
        with self._lock:
            self._users -= 1
            self._close_retired()

    def replug(self) -> None:
        self.unplug()
        self.plug()

    close = unplug

    def read(self, size: int, timeout: float) -> bytes:
        """Up to `size` bytes the driver wrote, waiting at most `timeout` seconds for the first."""
        try:
            master = self._enter()
        except Unplugged:
            time.sleep(min(timeout, 0.05))
            raise
        try:
            ready, _, _ = select.select([master], [], [], timeout)
            data = os.read(master, size) if ready else b""
        except OSError:  # EIO: nobody has the driver's side open right now
            data = b""
            if self._master == master:
                time.sleep(min(timeout, 0.05))
        finally:
            self._leave()
        if not data and self._master != master:
            raise Unplugged()
        return data

    def read_exactly(self, size: int, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        data = bytearray()
        while len(data) < size:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            data += self.read(size - len(data), left)
        return bytes(data)

    def write(self, data: bytes) -> None:
        master = self._enter()
        try:
            view = memoryview(data)
            while view:
                if self._master != master:
                    raise Unplugged()
                try:
                    written = os.write(master, view)
                except BlockingIOError:
                    select.select([], [master], [], 0.1)
                    continue
                except OSError:
                    if self._master != master:
                        raise Unplugged() from None
                    raise
                view = view[written:]
        finally:
            self._leave()

    def has_input(self) -> bool:
        """Whether the driver wrote bytes not read yet (False when unplugged)."""
        try:
            master = self._enter()
        except Unplugged:
            return False
        try:
            return bool(select.select([master], [], [], 0)[0])
        except OSError:
            return False
        finally:
            self._leave()

    def drain_input(self) -> None:
        """Forget bytes the driver sent that were not read yet."""
        while self.read(4096, 0):
            pass


CHUNK_SECONDS = 0.05  # paced_scan's default chunk: this much of the emulated device's time
CHUNK_MIN = 1 << 12
CHUNK_MAX = 1 << 18


@dataclass(frozen=True, slots=True)
class FoundNonce:
    nonce: int
    due: float  # time.monotonic() at which a device of the emulated rate would have found it


def paced_scan(header: bytes, target: int, rate: float, start: int = 0, count: int = NONCE_SPACE,
               stop: Callable[[], bool] = lambda: False, chunk: int | None = None,
               engine: str | None = None,
               scanner: Callable[[int, int], list[int]] | None = None,
               first_chunk: int | None = None) -> Iterator[FoundNonce]:
    """Scan [start, start+count) of `header` with the C core, yielding every nonce at or under
    `target` together with the moment a device hashing `rate` H/s would have reached it.

    Hashing runs ahead of the emulated clock when the CPU is faster than the device, and the
    caller waits until `due` before answering; when the CPU is slower, nonces come as found.
    `stop()` is polled between chunks (a new job, an unplug). `scanner(start, count)` replaces the
    header scan for devices that hash from what their chip is given (a midstate, say).
    `first_chunk` makes the scan adaptive: the first chunk is that small and each next one twice
    the last, up to `chunk`, so an early nonce (a golden test's) is answered after a few ms of
    hashing instead of a whole chunk's.
    By default a chunk is what the emulated device hashes in CHUNK_SECONDS (within CHUNK_MIN and
    CHUNK_MAX): the first chunk is hashed before any pacing, so a slow emulated stick that gets new
    work every 72 ms (a U3 the driver still times by its nominal rate) does not hash 2**18 nonces
    of each job it is about to abandon.
    """
    if chunk is None:
        chunk = min(CHUNK_MAX, max(CHUNK_MIN, int(rate * CHUNK_SECONDS)))
    began = time.monotonic()
    pos, end = start, start + count
    step = min(first_chunk, chunk) if first_chunk else chunk
    while pos < end and not stop():
        size = min(step, end - pos)
        # Don't hash far ahead of the emulated device: a restart would waste the work.
        lead = began + (pos - start) / rate - time.monotonic()
        if lead > 0.25:
            time.sleep(min(lead - 0.2, 0.1))
            continue
        found = scanner(pos, size) if scanner is not None else hashing.scan(header, pos, size, target, engine)
        for nonce in found:
            yield FoundNonce(nonce, began + (nonce - start) / rate)
        pos += size
        step = min(step * 2, chunk)


def wait_until(moment: float, stop: Callable[[], bool], step: float = 0.02) -> bool:
    """Sleep until `moment` unless `stop()` turns true first; returns False if stopped."""
    while True:
        if stop():
            return False
        left = moment - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, step))


def emulator_arguments(prog: str, description: str, default_rate_ghs: float) -> argparse.ArgumentParser:
    """The flags every `miner emulate FAMILY` shares; drivers add their own (--model, --chips)."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--rate", type=float, default=default_rate_ghs, metavar="GH/s",
                   help=f"hash rate to emulate (default {default_rate_ghs}); the CPU hashes for real, so "
                   "nonces come no faster than this machine finds them")
    p.add_argument("--difficulty", type=float, default=1.0, metavar="D",
                   help="report nonces at this difficulty instead of the device's true one (e.g. 0.001 "
                   "for quick tests; give the driver the same value: --device FAMILY:PATH,difficulty=D)")
    p.add_argument("--link", metavar="PATH",
                   help="also make PATH a symlink to the pty, kept across emulated unplug/replug")
    return p


def serve_until_stopped(path: str, run: Callable[[threading.Event], None]) -> int:
    """Print the pty path as the first stdout line, then run the emulator until SIGINT/SIGTERM."""
    stop = threading.Event()
    print(path, flush=True)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    worker = threading.Thread(target=run, args=(stop,), daemon=True)
    worker.start()
    while worker.is_alive() and not stop.is_set():
        stop.wait(0.2)
    stop.set()
    worker.join(2.0)
    print(f"emulator on {path} stopped", file=sys.stderr)
    return 0
