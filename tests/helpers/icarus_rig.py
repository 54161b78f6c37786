"""An Icarus stick's test rig, shared by the device and system tiers: the emulator's rate and
difficulty, a job, and the share path in miniature (`Harness`)."""

from __future__ import annotations

import threading
import time

from miner.drivers.icarus import DRIVER
from miner.drivers.icarus.driver import IcarusDevice

from miner.core.dispatch import Dispatcher
from miner.core.shares import Verdict, check_reported
from miner.core.work import Job, Nonce
from miner.devices.base import DeviceSpec
from miner.devices.work_source import DispatcherWorkSource

RATE = 0.004  # GH/s: well under one CPU thread, so the emulated rate holds on a busy machine
DIFF = 0.0002  # one nonce per ~860 000 hashes: ~4.7 per second at RATE


def make_job(name: str = "1", clean: bool = True) -> Job:
    return Job(name, bytes.fromhex(f"{int(name):064x}"), b"\x01" * 40, b"\x02" * 30, (), 0x20000000, 0x1D00FFFF,
               0x5F5E1000, clean=clean, extranonce1=b"\0\0\0\1", share_target=1 << 250, source="test")


class Harness:
    """The share path in miniature: every nonce is checked with the C core against the device's
    target and the device is told, as `Miner` does."""

    def __init__(self):
        self.dispatcher = Dispatcher()
        self.dispatcher.set_job(make_job())
        self.nonces: list[tuple[Nonce, Verdict]] = []
        self.devices: dict[str, IcarusDevice] = {}
        self._lock = threading.Lock()

    def device(self, path: str, options: str = "", index: int = 0) -> IcarusDevice:
        spec = DeviceSpec.parse(f"icarus:{path},difficulty={DIFF}" + (f",{options}" if options else ""))
        device = DRIVER.create(spec, DispatcherWorkSource(self.dispatcher), self.on_nonce, index)
        self.devices[device.name] = device
        return device

    def on_nonce(self, nonce: Nonce) -> None:
        device = self.devices[nonce.device]
        share = check_reported(nonce, self.dispatcher.lookup, device.target_for)
        device.on_verdict(share)
        with self._lock:
            self.nonces.append((share.nonce, share.verdict))

    def valid(self, device: str | None = None) -> list[Nonce]:
        with self._lock:
            return [n for n, v in self.nonces if v is not Verdict.HW_ERROR and device in (None, n.device)]


def wait_for(predicate, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


