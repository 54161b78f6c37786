"""What the miner counts about one device: rates, share outcomes, state and what the hardware
last reported. The device owns one `DeviceStats`; its driver fills the hardware readings, the
share path its verdicts, and the front ends (through `MinerView`) read it.

Safe to update from the device's threads and the share path's at once.
"""

from __future__ import annotations

import enum
import logging
import threading
import time

from miner.core.stats import RateMeter, ShareStats

log = logging.getLogger(__name__)


class DeviceState(enum.Enum):
    """cgminer's words, so API clients read them unchanged."""

    INIT = "Initialising"
    ALIVE = "Alive"
    SICK = "Sick"
    DEAD = "Dead"
    NO_DEVICE = "NoDevice"
    DISABLED = "Disabled"


class DeviceStats:
    def __init__(self, name: str):
        self.name = name  # for the log lines of state changes
        self.state = DeviceState.INIT
        self.temperature: float | None = None
        self.frequency: float | None = None  # MHz
        self.voltage: float | None = None  # volts
        self.hashes = RateMeter()
        self.source_hashes: dict[str, RateMeter] = {}
        # found / hw_errors from the device and its verdicts; accepted / rejected from the pool
        self.shares = ShareStats()
        self.nonces_found = 0
        self.last_valid_at: float | None = None
        self.last_share_source = ""  # the source (pool name) of the last share answered
        self.started_at = time.monotonic()
        self.alive_since = self.started_at  # when the device last became Alive
        self.reinits = 0
        self.last_error = ""
        self._lock = threading.Lock()

    @property
    def hw_errors(self) -> int:
        return self.shares.hw_errors

    def note_found(self) -> None:
        """The device reported a nonce (before the share path has checked it)."""
        with self._lock:
            self.nonces_found += 1
            self.shares.found += 1

    def note_hw_error(self) -> None:
        with self._lock:
            self.shares.hw_errors += 1

    def note_valid(self, now: float, hashes: float, source: str) -> None:
        """A valid nonce found at `now`, standing for `hashes` hashes (0 when the device counts its own)."""
        self.last_valid_at = now
        if hashes:
            self.add_hashes(hashes, source, now)

    def add_hashes(self, count: float, source: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.hashes.add(count, now)
        self.source_meter(source).add(count, now)

    def source_meter(self, source: str) -> RateMeter:
        meter = self.source_hashes.get(source)  # once a nonce: the lock only to add one (a dict get is atomic)
        if meter is not None:
            return meter
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

    def zero(self) -> None:
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
