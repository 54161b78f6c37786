"""What every device (CPU, USB stick, hashing board) is to the rest of the miner.

The core hands a device `Work` through `get_work()` and hears of every nonce it finds through
`on_nonce()`. The share path checks each nonce against `target_for(work)` and reports back with
`note_valid_nonce` / `note_hw_error`, so statistics live in one place for every driver.

Like the seven calls every chip gets in ESP-Miner's `asic.h`, a driver implements a handful of
methods: start/stop (which include open, identify and init), restart_work (a clean job),
set_frequency, job_interval, and `details()` for the API. Everything else is shared here.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from miner.core.stats import RateMeter, ShareStats
from miner.core.targets import chip_target
from miner.core.work import Nonce, Work
from miner.drivers.kit.usb import UsbId

log = logging.getLogger(__name__)

GetWork = Callable[..., Work | None]  # dispatcher.next_work(device_rolls_version=False)
OnNonce = Callable[[Nonce], None]


class DeviceState(enum.Enum):
    """cgminer's words, so API clients read them unchanged."""

    INIT = "Initialising"
    ALIVE = "Alive"
    SICK = "Sick"
    DEAD = "Dead"
    NO_DEVICE = "NoDevice"
    DISABLED = "Disabled"


class DeviceError(Exception):
    """A device problem told in one line (the message names the port and the fix)."""


class NotThisDevice(DeviceError):
    """The port answers, but not as this driver's hardware does: never mine with it."""


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


class Device:
    """Shared bookkeeping for every device; drivers subclass it."""

    driver: ClassVar[str] = "device"
    # True when the device counts the hashes it does (the CPU). Otherwise its hash rate is
    # estimated from valid nonces: each one stands for `difficulty * 2**32` hashes on average.
    counts_hashes: ClassVar[bool] = False
    # True when the hardware rolls version bits itself: its units must not share a merkle root
    # with units the dispatcher rolled, or two devices could hash the same header.
    rolls_version: ClassVar[bool] = False

    def __init__(self, get_work: GetWork, on_nonce: OnNonce, name: str, port: str | None = None,
                 difficulty: float = 1.0):
        self._get_work = get_work
        self._on_nonce = on_nonce
        self.name = name
        self.port = port
        self.difficulty = difficulty
        self.nonce_target = chip_target(difficulty)
        self.state = DeviceState.INIT
        self.enabled = True
        self.model = ""
        self.serial_number = ""
        self.temperature: float | None = None
        self.frequency: float | None = None  # MHz
        self.voltage: float | None = None  # volts
        self.hashes = RateMeter()
        self.source_hashes: dict[str, RateMeter] = {}
        self.shares = ShareStats()  # found / hw_errors here; accepted / rejected filled by the share path
        self.nonces_found = 0
        self.last_valid_at: float | None = None
        self.started_at = time.monotonic()
        self.alive_since = self.started_at  # when the device last became Alive
        self.reinits = 0
        self.last_error = ""
        self._lock = threading.Lock()

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
        rate = self.nominal_hashrate() or self.hashes.rate(60.0)
        return (1 << 32) / rate if rate > 0 else 1.0

    def reinitialise(self) -> None:
        """Reset the hardware after it went sick; the default is a stop and start."""
        self.stop()
        self.start()

    def details(self) -> dict[str, Any]:
        """Extra facts for `devdetails` / `stats` (model, chips, frequency...)."""
        return {}

    # ------------------------------------------------------------ shared behaviour
    def target_for(self, work: Work) -> int:
        """The target the device reports nonces at; a hash above it is a hardware error."""
        return self.nonce_target

    def expected_nonce_interval(self) -> float | None:
        """Mean seconds between valid nonces at the nominal rate (None when the rate is unknown)."""
        rate = self.nominal_hashrate()
        if not rate:
            return None
        return self.difficulty * (1 << 32) / rate

    def report_nonce(self, nonce: Nonce) -> None:
        """Drivers call this for every nonce the hardware returns."""
        with self._lock:
            self.nonces_found += 1
            self.shares.found += 1
        self._on_nonce(nonce)

    def note_valid_nonce(self, work: Work, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.last_valid_at = now
        if not self.counts_hashes:
            self.add_hashes(self.difficulty * (1 << 32), work.job.source, now)

    def note_hw_error(self) -> None:
        with self._lock:
            self.shares.hw_errors += 1

    @property
    def hw_errors(self) -> int:
        return self.shares.hw_errors

    def add_hashes(self, count: float, source: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.hashes.add(count, now)
        self.source_meter(source).add(count, now)

    def source_meter(self, source: str) -> RateMeter:
        with self._lock:
            meter = self.source_hashes.get(source)
            if meter is None:
                meter = self.source_hashes[source] = RateMeter()
                meter.started = self.hashes.started
            return meter

    def source_rate(self, source: str, window: float | None) -> float:
        meter = self.source_hashes.get(source)
        if meter is None:
            return 0.0
        return meter.average() if window is None else meter.rate(window)

    def zero_stats(self) -> None:
        self.hashes.reset()
        with self._lock:
            self.source_hashes.clear()
            self.shares = ShareStats()
            self.nonces_found = 0

    def set_state(self, state: DeviceState, why: str = "") -> None:
        if state is DeviceState.ALIVE and self.state is not DeviceState.ALIVE:
            self.alive_since = time.monotonic()
        if state is not self.state:
            if why:
                self.last_error = why if state is not DeviceState.ALIVE else self.last_error
                log.log(logging.INFO if state is DeviceState.ALIVE else logging.WARNING, "%s: %s (%s)",
                        self.name, state.value, why)
            else:
                log.info("%s: %s", self.name, state.value)
        self.state = state


class Driver(Protocol):
    """What a driver package registers in the `miner.drivers` entry point group."""

    name: str  # the family, e.g. "icarus"
    aliases: tuple[str, ...]  # other names `--device` and `miner emulate` accept, e.g. chip names
    usb_ids: tuple[UsbId, ...]  # ids auto-detection claims for this driver
    description: str

    def create(self, spec: DeviceSpec, get_work: GetWork, on_nonce: OnNonce, index: int) -> Device:
        """A device for `spec` (not started). `index` numbers devices of this driver: ICA0, ICA1."""
        ...

    def emulator_main(self, name: str, argv: list[str]) -> int:
        """`miner emulate NAME ...` (NAME is the driver name or the alias used, e.g. a chip name):
        run the device emulator; its first stdout line is the pty path."""
        ...
