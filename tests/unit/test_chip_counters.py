"""The chip hash/error counter bookkeeping (drivers/bm13xx/counters.py, docs/bm13xx.md §7.1):
uint32 wrap, rates over the kept window, error share, and their way to /metrics."""

from __future__ import annotations

from collections import Counter as Tally

import pytest
from hypothesis import given
from hypothesis import strategies as st
from miner.drivers.bm13xx.counters import (
    HASHES_PER_COUNT,
    HASHRATE_UNIT,
    REG_DOMAIN_COUNT,
    REG_ERROR_COUNT,
    REG_HASHRATE,
    REG_TOTAL_COUNT,
    WINDOW,
    ChainCounters,
    Counter,
    hashrate_units,
)

from miner.frontends.http import chip_counter_metrics
from miner.frontends.view import DeviceSnapshot


def test_a_counter_takes_the_uint32_difference_across_the_wrap():
    c = Counter()
    c.feed(0xFFFFFFF0, 0.0)
    c.feed(0x00000010, 5.0)
    assert c.total == 0x20 and c.span() == (5.0, 0x20)


@given(st.integers(0, 0xFFFFFFFF), st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=50))
def test_the_total_is_the_sum_of_the_increments_whatever_the_start(start, steps):
    c = Counter()
    value = start
    c.feed(value, 0.0)
    for i, step in enumerate(steps):
        value = (value + step) & 0xFFFFFFFF
        c.feed(value, float(i + 1))
    assert c.total == sum(steps)


def test_rates_cover_the_window_and_each_count_is_two_to_the_32_hashes():
    chain = ChainCounters(2)
    for t in range(0, 61, 5):  # a read every 5 s, as ESP-Miner's monitor
        chain.feed(0, REG_TOTAL_COUNT, 10 * t, float(t))  # 2 counts a second
        chain.feed(1, REG_TOTAL_COUNT, 5 * t, float(t))
        for k, reg in enumerate(REG_DOMAIN_COUNT):
            chain.feed(0, reg, (k + 1) * t, float(t))
        chain.feed(0, REG_ERROR_COUNT, t // 5, float(t))
    assert chain.chip_rate(0) == pytest.approx(10 * HASHES_PER_COUNT)
    assert chain.chain_rate() == pytest.approx(15 * HASHES_PER_COUNT)
    assert chain.domain_rates(0) == pytest.approx([(k + 1) * HASHES_PER_COUNT for k in range(4)])
    seconds, _ = chain.chips[0].total.span()
    assert WINDOW <= seconds < WINDOW + 5  # one sample at or before the window's start is kept
    assert chain.error_percent(0) == pytest.approx(100 * 0.2 / 10.2)
    assert chain.error_percent(1) == 0.0  # results and no errors
    assert ChainCounters(1).error_percent() is None  # nothing counted yet
    chain.reset()
    assert chain.chain_rate() is None and chain.counted_hashes() == 0


def test_a_reply_from_no_chip_or_for_another_register_is_not_a_counter():
    chain = ChainCounters(1)
    assert not chain.feed(3, REG_TOTAL_COUNT, 1, 0.0)
    assert not chain.feed(0, 0x00, 1, 0.0)
    assert chain.feed(0, REG_ERROR_COUNT, 1, 0.0)


def test_metrics_carry_each_chips_counter_figures():
    snapshot = DeviceSnapshot(
        index=0, name="bm1370-0", driver="bm13xx", port="/dev/ttyACM1", model="BM1370", state="Alive",
        enabled=True, rate_5s=0.0, rate_1m=0.0, rate_5m=0.0, rate_15m=0.0, rate_avg=0.0, total_hashes=0.0,
        accepted=0, rejected=Tally(), hw_errors=0, found=0, accepted_difficulty=0.0, best_difficulty=0.0,
        temperature=None, frequency=None, voltage=None, elapsed=61.0, last_valid_age=None,
        details={"Per Chip": [{"Counter Hashrate": 4e11, "Domain Hashrates": [1e11, 1e11, 1e11, 1e11],
                               "Error %": 0.5},
                              {"Counter Hashrate": None, "Domain Hashrates": [None] * 4, "Error %": None}]})
    families = {f.name: f for f in chip_counter_metrics([snapshot])}
    rates = families["miner_chip_counter_hashrate_hertz"].samples
    assert [(s.labels, s.value) for s in rates] == [({"device": "bm1370-0", "chip": "0"}, 4e11)]
    assert len(families["miner_chip_domain_hashrate_hertz"].samples) == 4
    assert families["miner_chip_error_percent"].samples[0].value == 0.5


def test_the_bm1397_rate_register_decodes_as_esp_miners_update_hashrate():
    # bit 31 ("long", the reset value 0x80000000) and 0x007FFFFF carry no rate; else value x 2^20 H/s
    assert hashrate_units(0x80000000) is None and hashrate_units(0x80001234) is None
    assert hashrate_units(0x007FFFFF) is None
    assert hashrate_units(0x00044A3D) == 0x44A3D  # ~294 GH/s: a BM1397 at 437 MHz x 672 cores
    assert HASHRATE_UNIT == 0x100000


def test_bm1397_readings_are_integrated_and_their_errors_are_a_share_of_all_results():
    chain = ChainCounters(1, HASHES_PER_COUNT, HASHRATE_UNIT)
    assert chain.feed(0, REG_HASHRATE, 0x80000000, 0.0)  # a counter register, but no reading yet
    assert chain.chip_rate(0) is None
    for t in range(1, 61, 5):
        chain.feed(0, REG_HASHRATE, 4096 if t < 30 else 2048, float(t))  # 2^32 H/s, then half
        chain.feed(0, REG_ERROR_COUNT, t // 5, float(t))  # 0.2 counts a second: 0.2 x 2^32 H/s
    seconds, units = chain.chips[0].reported.span()
    assert units / seconds == pytest.approx(2048, rel=0.2)  # the window holds mostly the later rate
    assert chain.chip_rate(0) == pytest.approx(units / seconds * HASHRATE_UNIT)
    good, bad = chain.chip_rate(0), 0.2 * HASHES_PER_COUNT
    assert chain.error_percent(0) == pytest.approx(100 * bad / (good + bad), rel=0.1)
    assert not ChainCounters(1).feed(0, REG_HASHRATE, 1, 0.0)  # only on a chain with the register


@given(st.lists(st.tuples(st.integers(0, 0x7FFFFFFF), st.floats(0.01, 10.0)), min_size=2, max_size=40))
def test_integrated_readings_are_the_time_weighted_sum(readings):
    c, now, expected = Counter(), 0.0, 0.0
    c.feed_rate(0, now)
    for units, dt in readings:
        now += dt
        c.feed_rate(units, now)
        expected += units * dt
    assert c.total == pytest.approx(expected, rel=1e-9)
