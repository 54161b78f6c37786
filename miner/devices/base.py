"""What every device (CPU, USB stick, hashing board) is to the rest of the miner.

A driver gets a `WorkSource` (next work, the current job, extranonce2 ranges for hardware that
rolls it) and a `NonceSink`; it reports every nonce the hardware finds with `report_nonce`,
tagged with the chip that found it. The share path hashes each nonce once, against
`target_for(work)`, and hands the `CheckedNonce` back through `on_verdict`, so the device's
statistics (`stats`, a `DeviceStats`) and its per-chip counters come from one verdict.

Like the calls every chip gets in ESP-Miner's `asic.h`, a driver implements a handful of
methods: start/stop (which include open, identify and init), restart_work (a clean job),
work_available, set_frequency, nominal_hashrate or job_interval, and `details()` for the API;
`on_verdict` when it keeps per-chip counters. Drivers register as one `DriverInfo` each.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from miner.core.shares import CheckedNonce, Verdict
from miner.core.targets import chip_target
from miner.core.work import Nonce, Work
from miner.devices.bookkeeping import DeviceState, DeviceStats
from miner.devices.work_source import WorkSource
from miner.drivers.kit.usb import UsbId

log = logging.getLogger(__name__)

NonceSink = Callable[[Nonce], None]  # the engine's on_nonce: queues the nonce for the share path

__all__ = ["Device", "DeviceError", "DeviceSpec", "DeviceState", "DeviceStats", "Driver", "DriverInfo", "check_options",
           "NonceSink", "NotThisDevice", "DeviceIdled", "UsbId", "WorkSource", "options_read"]


# The option names drivers ask a spec for while a device is created (`options_read`): whatever a
# spec holds beyond them is a typo, reported with the known names (`check_options`).
_asked: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("asked", default=None)


class DeviceError(Exception):
    """A device problem told in one line (the message names the port and the fix)."""


class NotThisDevice(DeviceError):
    """The port answers, but not as this driver's hardware does: never mine with it."""


class DeviceIdled(DeviceError):
    """The device idled itself for the reason given (a thermal cut-off): it is Initialising, not
    gone, and is tried again until the reason passes."""


@dataclass(frozen=True)
class DeviceSpec:
    """`--device DRIVER[:PORT][,key=value...]`, e.g. `icarus:/dev/ttyUSB0` or
    `bm1397:/dev/ttyACM0,chips=1,difficulty=0.001`."""

    driver: str
    port: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> DeviceSpec:
        head, *pairs = text.split(",")
        driver, _, port = head.partition(":")
        driver = driver.strip().lower()
        if not driver:
            raise ValueError(f"--device {text!r}: expected DRIVER[:PORT][,key=value...]")
        options: dict[str, str] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"--device {text!r}: option {pair!r} is not key=value")
            options[key.strip().lower()] = value.strip()
        return cls(driver, port.strip() or None, options)

    def option(self, name: str, convert: Callable[[str], Any], default: Any = None) -> Any:
        """An option converted to its type; a bad value is a one-line error naming the option."""
        asked = _asked.get()
        if asked is not None:
            asked.add(name)
        if name not in self.options:
            return default
        try:
            return convert(self.options[name])
        except ValueError as exc:
            raise DeviceError(f"{self.driver}:{self.port}: option {name}={self.options[name]!r}: {exc}") from None

    def difficulty(self) -> float:
        """The difficulty the device reports nonces at (`difficulty=D`; 1 is what real ASICs do)."""
        value = self.option("difficulty", float, 1.0)
        if not value > 0:
            raise DeviceError(f"{self.driver}:{self.port}: difficulty must be positive, got {value}")
        return value


@contextlib.contextmanager
def options_read() -> Iterator[set[str]]:
    """Collects the option names drivers ask for (through `DeviceSpec.option`) inside the block."""
    asked: set[str] = set()
    token = _asked.set(asked)
    try:
        yield asked
    finally:
        _asked.reset(token)


def check_options(spec: DeviceSpec, known: set[str], given_as: str = "--device") -> None:
    """DeviceError naming each option of `spec` its driver never asked for, the close known name
    and the known names (`model` is set by USB detection and may go unread)."""
    unknown = sorted(set(spec.options) - known - {"model"})
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]}?)" if close else ""))
    where = f"{spec.driver}:{spec.port}" if spec.port else spec.driver
    raise DeviceError(f"{given_as} {where}: unknown option {', '.join(hints)}; {spec.driver} takes: "
                      f"{', '.join(sorted(known))}")


class Device:
    """The contract drivers implement, and the little every driver shares."""

    driver: ClassVar[str] = "device"
    # True when the device counts the hashes it does (the CPU). Otherwise its hash rate is
    # estimated from valid nonces: each one stands for `difficulty * 2**32` hashes on average.
    counts_hashes: ClassVar[bool] = False
    # True when the hardware rolls version bits itself: its units must not share a merkle root
    # with units the dispatcher rolled, or two devices could hash the same header.
    rolls_version: ClassVar[bool] = False

    def __init__(self, work_source: WorkSource, sink: NonceSink, name: str, port: str | None = None,
                 difficulty: float = 1.0):
        self.work_source = work_source
        self._sink = sink
        self.name = name
        self.port = port
        self.difficulty = difficulty
        self.nonce_target = chip_target(difficulty)
        self.enabled = True
        self.model = ""
        self.serial_number = ""
        self.stats = DeviceStats(name)

    # ------------------------------------------------------------ what drivers implement
    def start(self) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 5.0) -> None:
        raise NotImplementedError

    def restart_work(self) -> None:
        """A clean job: drop the work the device holds and take new work as soon as possible."""

    def work_available(self) -> None:
        """There is work again after a time with none."""

    def set_frequency(self, mhz: float) -> None:
        raise DeviceError(f"{self.name}: {self.driver} devices have no frequency setting")

    def nominal_hashrate(self) -> float | None:
        """Hashes per second the device should do at its settings (None when not known)."""
        return None

    def job_interval(self) -> float:
        """Seconds one work unit lasts at the current hash rate."""
        rate = self.nominal_hashrate() or self.stats.hashes.rate(60.0)
        return (1 << 32) / rate if rate > 0 else 1.0

    def reinitialise(self) -> None:
        """Reset the hardware after it went sick; the default is a stop and start."""
        self.stop()
        self.start()

    def details(self) -> dict[str, Any]:
        """Extra facts for `devdetails` / `stats` (model, chips, frequency...)."""
        return {}

    def on_verdict(self, share: CheckedNonce) -> None:
        """The share path's verdict on a nonce this device reported (in the share path's thread).
        Drivers with per-chip counters extend this; `share.nonce.chip` says which chip."""
        if share.verdict is Verdict.HW_ERROR:
            self.stats.note_hw_error()
        else:
            hashes = 0.0 if self.counts_hashes else self.hashes_per_nonce(share.work)
            self.stats.note_valid(share.nonce.found_at, hashes, share.work.job.source)

    # ------------------------------------------------------------ shared behaviour
    def target_for(self, work: Work) -> int:
        """The target the device reports nonces at; a hash above it is a hardware error."""
        return self.nonce_target

    def hashes_per_nonce(self, work: Work) -> float:
        """The hashes one valid nonce stands for on average (for devices that do not count hashes)."""
        return self.difficulty * (1 << 32)

    def expected_nonce_interval(self) -> float | None:
        """Mean seconds between valid nonces at the nominal rate (None when the rate is unknown)."""
        rate = self.nominal_hashrate()
        if not rate:
            return None
        return self.difficulty * (1 << 32) / rate

    def report_nonce(self, nonce: Nonce) -> None:
        """Drivers call this for every nonce the hardware returns."""
        self.stats.note_found()
        self._sink(nonce)


class Driver(Protocol):
    """What the `miner.drivers` entry point group holds: a `DriverInfo`, or anything shaped like one
    (the config file wraps drivers to add its per-driver options)."""

    name: str
    aliases: tuple[str, ...]
    usb_ids: tuple[UsbId, ...]
    description: str

    def create(self, spec: DeviceSpec, work: WorkSource, sink: NonceSink, index: int) -> Device: ...

    def emulator_main(self, name: str, argv: list[str]) -> int: ...


def no_emulator(name: str, argv: list[str]) -> int:
    """`miner emulate` for a driver that has no emulator."""
    import sys

    print(f"miner emulate {name}: this driver has no emulator", file=sys.stderr)
    return 2


@dataclass(frozen=True)
class DriverInfo:
    """One driver, as every driver package exports it (`DRIVER = DriverInfo(...)`) and the
    `miner.drivers` entry point group names it."""

    name: str  # the family, e.g. "icarus"
    description: str
    # `create(spec, work, sink, index)`: a device for `spec` (not started); `index` numbers devices
    # of this driver: ICA0, ICA1.
    create: Callable[[DeviceSpec, WorkSource, NonceSink, int], Device]
    aliases: tuple[str, ...] = ()  # other names `--device` and `miner emulate` accept, e.g. chip names
    usb_ids: tuple[UsbId, ...] = ()  # ids auto-detection claims for this driver
    # `miner emulate NAME ...` (NAME is the driver name or the alias used): run the device
    # emulator; its first stdout line is the pty path.
    emulator_main: Callable[[str, list[str]], int] = no_emulator
    # A board behind two serial ports of one USB device (bitaxe-raw: control, then data): detection
    # creates one device for the first interface and passes the next one's path as this option.
    companion_option: str = ""
