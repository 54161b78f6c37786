"""The status view rendered at a fixed width from fixed numbers, compared with the text expected."""

import re
from collections import Counter
from dataclasses import replace

from miner.frontends.status import render_text
from miner.frontends.view import DeviceSnapshot, PoolSnapshot, Summary


def device(index, name, driver, port, state, rates, accepted, rejected, hw, temperature=None, frequency=None):
    five, minute, avg = rates
    return DeviceSnapshot(index=index, name=name, driver=driver, port=port, model="", state=state, enabled=True,
                          rate_5s=five, rate_1m=minute, rate_5m=0.0, rate_15m=0.0, rate_avg=avg, total_hashes=0.0,
                          accepted=accepted, rejected=Counter(rejected), hw_errors=hw, found=0,
                          accepted_difficulty=0.0, best_difficulty=0.0, temperature=temperature,
                          frequency=frequency, voltage=None, elapsed=100.0, last_valid_age=None)


def pool(index, url, state, active, difficulty, accepted, rejected, stale, latency, rolling):
    return PoolSnapshot(index=index, name=f"pool{index}", url=url, user="me", state=state, active=active,
                        priority=index, difficulty=difficulty, accepted=accepted, rejected=Counter(rejected),
                        stale=stale, accepted_difficulty=0.0, best_difficulty=0.0, latency=latency,
                        version_rolling=rolling)


SUMMARY = Summary(elapsed=3725.0, rate_5s=61.23e6, rate_1m=60.0e6, rate_5m=0.0, rate_15m=0.0, rate_avg=59.5e6,
                  total_hashes=0.0, accepted=12, rejected=Counter({"Low diff": 2, "Stale": 1}), stale=1,
                  hw_errors=3, found=20, blocks=0, accepted_difficulty=0.0, best_session=1234.5,
                  best_all_time=98765.0, pool_difficulty=512.0)
DEVICES = [device(0, "cpu0", "cpu", None, "Alive", (45.1e6, 44.0e6, 43.21e6), 10, {"x": 1}, 0),
           device(1, "ICA0", "icarus", "/dev/ttyUSB0", "NoDevice", (16.13e6, 16.0e6, 16.29e6), 2, {}, 3,
                  temperature=48.5, frequency=200.0)]
POOLS = [pool(0, "stratum+tcp://a.example:3333", "Alive", True, 512.0, 12,
              {"Low diff": 2, "Stale": 1}, 1, 0.0423, True),
         pool(1, "stratum+tcp://b.example:3333", "Dead", False, 1.0, 0, {}, 0, None, False)]

# Written out from the numbers above: 3725 s is 1h02m; MH/s with two decimals; best 1234.5 -> 1.23k and
# 98765 -> 98.8k; latency 0.0423 s -> 42 ms; a share every D * 2^32 / 59.5 MH/s: 512 -> 36959 s = 10h15m.
# The dead pool's difficulty (1.0, the default it never changed) is not shown: "-".
EXPECTED = """\
pyminer/0.1.0 | up 1h02m | 61.23 MH/s (5s) 59.50 MH/s (avg)
A:12 R:3 S:1 HW:3 | pool diff 512 | best 1.23k (all time 98.8k)
devices
device  state     MH/s 5s  MH/s avg   A  R  HW   temp    freq  port
cpu0    Alive       45.10     43.21  10  1   0      -       -  -
ICA0    NoDevice    16.13     16.29   2  0   3  48.5C  200MHz  /dev/ttyUSB0
pools
pool  address         state  diff   A  R  S  latency  share every
*0    a.example:3333  Alive   512  12  3  1    42 ms       10h15m
1     b.example:3333  Dead      -   0  0  0        -            -
pool0 rejected: Low diff: 2, Stale: 1
"""


def lines(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def test_status_view_snapshot():
    assert lines(render_text(SUMMARY, DEVICES, POOLS, "pyminer/0.1.0", width=80)) == EXPECTED


def test_80_columns_keep_every_state_and_count_and_shorten_only_the_address():
    long = [replace(POOLS[0], url="stratum+tcp://public-pool.example.io:21496", state="Connecting"), POOLS[1]]
    text = render_text(SUMMARY, DEVICES, long, "pyminer/0.1.0", width=80)
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    row = next(line for line in text.splitlines() if line.startswith("*0"))
    assert row.split()[1].endswith("\u2026") and row.split()[2:7] == ["Connecting", "-", "12", "3", "1"]
    assert "NoDevice" in text and "/dev/ttyUSB0" in text


def test_the_final_frame_shows_the_stopped_miner():
    text = render_text(SUMMARY, DEVICES, POOLS, "pyminer/0.1.0", stopped=True)
    assert "stopped after 1h02m" in text and " up " not in text
    states = {line.split()[0]: line.split()[1] for line in text.splitlines() if line.startswith(("cpu0", "ICA0"))}
    assert states == {"cpu0": "Stopped", "ICA0": "NoDevice"}  # what was running stopped; the unplugged stays so
    pool_states = [line.split()[2] for line in text.splitlines() if line.startswith(("*0", "1 "))]
    assert pool_states == ["Stopped", "Dead"]


def test_one_log_format_names_only_warnings_and_errors():
    import logging

    from miner.app.logformat import LineFormatter

    formatter = LineFormatter()
    record = logging.LogRecord("miner", logging.INFO, __file__, 1, "mining on %s", ("pool0",), None)
    warning = logging.LogRecord("miner", logging.WARNING, __file__, 1, "pool0 dead", (), None)
    info, warn = formatter.format(record), formatter.format(warning)
    assert re.fullmatch(r"\d\d:\d\d:\d\d mining on pool0", info), info
    assert re.fullmatch(r"\d\d:\d\d:\d\d warning: pool0 dead", warn), warn


def test_a_changed_number_changes_the_view():
    DEVICES[1].hw_errors = 4
    try:
        text = render_text(SUMMARY, DEVICES, POOLS, "pyminer/0.1.0", width=80)
    finally:
        DEVICES[1].hw_errors = 3
    assert lines(text) != EXPECTED


def test_without_pools_only_devices_are_shown():
    text = render_text(SUMMARY, DEVICES[:1], [], "pyminer/0.1.0", width=140)
    assert "pools" not in text and "cpu0" in text
