"""The BM1366/68/70 hash and error counters (docs/bm13xx.md §7.1, drivers/bm13xx/counters.py)
against the emulator, whose counters count what it really hashes.

The windows are set by counted results, not by the clock: the test waits until the driver's
counters span COUNTS difficulty-D results (Poisson: 1/sqrt(20 000) = 0.7 %, so the ±2 % bar is
2.8 sigma), however fast this machine hashes. The true rate is the emulator's own tally of hashes
over the same interval (sampled every 20 ms and interpolated at the driver's read times)."""

from __future__ import annotations

import bisect
import threading
import time

import pytest
from miner.drivers.bm13xx import DRIVER
from miner.drivers.bm13xx.counters import HASHES_PER_COUNT, HASHRATE_UNIT
from miner.drivers.bm13xx.emulator import Bm13xxEmulator

from miner.core.dispatch import Dispatcher
from miner.devices.base import DeviceSpec, DeviceState
from miner.devices.work_source import DispatcherWorkSource
from miner.sources.sandbox import sandbox_job
from tests.helpers.icarus_rig import wait_for

SCALE = 1e-6  # a counted result per ~4 295 hashes
COUNTS = 20_000
TICKET = 256  # nonces sent: one per ~1.1M hashes; the counters see every result


class HashLog:
    """(time, emulator.hashes_done) every 20 ms, for the true hash count at any moment."""

    def __init__(self, emulator: Bm13xxEmulator):
        self.emulator = emulator
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.emulator.hashes_done))
            self._stop.wait(0.02)

    def at(self, moment: float) -> float:
        times = [t for t, _ in self.samples]
        i = bisect.bisect_left(times, moment)
        if i == 0:
            return self.samples[0][1]
        if i >= len(self.samples):
            return self.samples[-1][1]
        (t0, h0), (t1, h1) = self.samples[i - 1], self.samples[i]
        return h0 + (h1 - h0) * (moment - t0) / (t1 - t0) if t1 > t0 else h1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1.0)


def counted(device) -> tuple[float, float, int, int]:
    """(first read time, last read time, results, errors) over the chain, from the driver's counters."""
    chips = device.counters.chips
    first = min(c.total.samples[0][0] for c in chips)
    last = max(c.total.samples[-1][0] for c in chips)
    results = sum(c.total.span()[1] for c in chips)
    errors = sum(c.errors.span()[1] for c in chips)
    return first, last, results, errors


@pytest.mark.parametrize("chip, error_rate", [("bm1370", 0.05)])
def test_counter_rate_and_error_percent_match_what_the_emulator_did(chip, error_rate):
    emulator = Bm13xxEmulator(chip, chips=2, rate=20e6, difficulty=SCALE).start()
    emulator.inject_error_rate(error_rate)
    hashes = HashLog(emulator)
    dispatcher = Dispatcher()
    dispatcher.set_job(sandbox_job(difficulty=1e6))
    spec = DeviceSpec.parse(f"{chip}:{emulator.device_path},difficulty={SCALE},ticket={TICKET},ramp_delay=0,"
                            "poll=0.5,enumerate=0.3,counters=0.5")
    device = DRIVER.create(spec, DispatcherWorkSource(dispatcher), lambda n: None, 0)
    device.start()
    try:
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, 15, "init")
        wait_for(lambda: all(len(c.total.samples) >= 2 for c in device.counters.chips), 15, "two counter reads")
        # WINDOW (30 s) of samples is kept: the span is whatever part of the run the driver still holds.
        wait_for(lambda: counted(device)[2] + counted(device)[3] >= COUNTS, 240, f"{COUNTS} counted results")
        first, last, results, errors = counted(device)
        true = hashes.at(last) - hashes.at(first)
        from_counters = (results + errors) * device.counters.hashes_per_count
        assert from_counters == pytest.approx(true, rel=0.02), (from_counters, true)
        if error_rate:
            assert abs(100 * errors / (results + errors) - 100 * error_rate) <= 0.5
        # details(): the chain and each chip, domains splitting each chip's rate
        details = device.details()
        assert details["Counter Hashrate"] > 0
        assert abs(details["Counter Error %"] - 100 * error_rate) <= 0.5
        per_chip = details["Per Chip"]
        assert len(per_chip) == 2
        for c in per_chip:
            assert c["Counter Hashrate"] == pytest.approx(details["Counter Hashrate"] / 2, rel=0.1)
            assert len(c["Domain Hashrates"]) == 4
            assert sum(c["Domain Hashrates"]) == pytest.approx(c["Counter Hashrate"], rel=0.02)
            for d in c["Domain Hashrates"]:
                assert d == pytest.approx(c["Counter Hashrate"] / 4, rel=0.2)
    finally:
        device.stop(timeout=2.0)
        hashes.stop()
        emulator.stop()


def test_bm1397_rate_register_and_error_counter_match_what_the_emulator_did():
    """The BM1397's own rate register (0x04, 2^20 H/s units, docs/bm13xx.md §7.1.1) and its error
    counter 0x4C: the rate the driver integrates from the readings within ±2 % of what the emulator
    hashed over the same reads, the error % within ±0.5 points of the injected rate."""
    error_rate = 0.05
    emulator = Bm13xxEmulator("bm1397", chips=2, rate=20e6, difficulty=SCALE).start()
    emulator.inject_error_rate(error_rate)
    hashes = HashLog(emulator)
    dispatcher = Dispatcher()
    dispatcher.set_job(sandbox_job(difficulty=1e6))
    spec = DeviceSpec.parse(f"bm1397:{emulator.device_path},difficulty={SCALE},ticket={TICKET},ramp_delay=0,"
                            "poll=0.5,enumerate=0.3,counters=0.5")
    device = DRIVER.create(spec, DispatcherWorkSource(dispatcher), lambda n: None, 0)
    device.start()

    def reported() -> tuple[float, float, float]:
        """(first, last reading time, results those readings stand for) over the chain."""
        chips = device.counters.chips
        first = min(c.reported.samples[0][0] for c in chips)
        last = max(c.reported.samples[-1][0] for c in chips)
        units = sum(c.reported.span()[1] for c in chips)
        return first, last, units * HASHRATE_UNIT / HASHES_PER_COUNT

    try:
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, 15, "init")
        wait_for(lambda: all(len(c.reported.samples) >= 2 for c in device.counters.chips), 15, "two rate readings")
        wait_for(lambda: reported()[2] >= COUNTS, 240, f"readings worth {COUNTS} results")
        first, last, results = reported()
        true = hashes.at(last) - hashes.at(first)
        errors = sum(c.errors.span()[1] for c in device.counters.chips)
        from_register = results * device.counters.hashes_per_count
        # the chips' errors are hashes too, but not in their rate: compare the sum with the true count
        with_errors = from_register + errors * device.counters.hashes_per_count
        assert with_errors == pytest.approx(true, rel=0.02), (with_errors, true)
        details = device.details()
        assert details["Counter Hashrate"] > 0
        assert abs(details["Counter Error %"] - 100 * error_rate) <= 0.5
        per_chip = details["Per Chip"]
        assert len(per_chip) == 2 and all("Domain Hashrates" not in c for c in per_chip)  # no domains
        for c in per_chip:
            assert c["Counter Hashrate"] == pytest.approx(details["Counter Hashrate"] / 2, rel=0.1)
        # the readings themselves: 2^20-hash units; 0x04 reads 0x80000000 ("long": no rate) at first
        assert device.counters.hashes_per_unit == HASHRATE_UNIT * SCALE
    finally:
        device.stop(timeout=2.0)
        hashes.stop()
        emulator.stop()
