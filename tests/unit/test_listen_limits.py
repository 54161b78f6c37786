"""Listener limits and the repeat filter for foreign loggers (issue 14, fault 10)."""

import logging

from hypothesis import given
from hypothesis import strategies as st

from miner.core.lograte import RepeatFilter
from miner.frontends.listen_limits import SHARE_OF_DESCRIPTORS, ConnectionGate, connection_cap


@given(st.integers(1, 10_000), st.integers(0, 1 << 20))
def test_a_listener_holds_at_most_its_share_of_the_descriptors(wanted, limit):
    cap = connection_cap(wanted, limit)
    assert min(4, wanted) <= cap <= wanted
    assert cap <= max(4, limit // SHARE_OF_DESCRIPTORS)
    assert connection_cap(wanted, 1 << 30) == wanted


def test_the_gate_refuses_over_its_cap_and_logs_that_once(caplog):
    caplog.set_level(logging.WARNING)
    gate = ConnectionGate("HTTP x", 3)
    assert [gate.admit() for _ in range(5)] == [True, True, True, False, False]
    assert gate.refused == 2 and gate.active == 3
    gate.release()
    assert gate.admit() and not gate.admit()
    assert len([r for r in caplog.records if "the most it serves" in r.getMessage()]) == 1


def test_repeats_of_a_foreign_message_pass_once_per_interval_with_a_count():
    now = [0.0]
    repeat = RepeatFilter(10.0, clock=lambda: now[0])

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, None, None)

    passed = []
    for i in range(1000):
        now[0] = i * 0.05  # 20 a second for 50 s
        r = record("socket.accept() out of system resource")
        if repeat.filter(r):
            passed.append(r.getMessage())
    assert 5 <= len(passed) <= 6
    assert passed[0] == "socket.accept() out of system resource"
    assert "(and 199 more like it in the last 10 s)" in passed[1]
    assert repeat.filter(record("another message"))  # other messages have their own clock

