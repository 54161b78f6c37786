"""The dashboard's arithmetic, its same-origin rule and the share-log ring, without a browser."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miner.core.recent_shares import RecentShares
from miner.frontends.dashboard.server import cross_site_refusal, is_loopback_name
from miner.frontends.dashboard.state import chance_within, expected_seconds, pool_row, sub_rows
from miner.frontends.persist import StatsStore
from miner.frontends.view import PoolSnapshot


def test_expected_time_is_difficulty_times_2_32_over_the_rate():
    # a 1 TH/s Bitaxe at share difficulty 1000: 1000 * 4294967296 / 1e12 = 4.294967296 s
    assert expected_seconds(1000, 1e12) == pytest.approx(4.294967296)
    assert expected_seconds(1000, 0.0) is None and expected_seconds(0.0, 1e12) is None


def test_chance_per_day_follows_the_poisson_law():
    # a rate that makes one block a day on average has 1 - 1/e of a chance within the day
    difficulty = 100.0
    rate = difficulty * 2**32 / 86400
    assert chance_within(86400, difficulty, rate) == pytest.approx(1 - math.exp(-1))
    # tiny chances stay exact (expm1), not 0 from 1 - 0.9999999...
    tiny = chance_within(86400, 1e14, 1e12)
    assert tiny == pytest.approx(86400 / (1e14 * 2**32 / 1e12), rel=1e-6) and tiny > 0
    assert chance_within(86400, 1e14, 0.0) == 0.0


def test_sub_rows_read_bm13xx_chips_and_avalon_modules():
    chips = sub_rows({"Per Chip": [{"Address": 0, "Present": True, "Nonces": 7, "HW Errors": 1, "Hashrate": 5e8},
                                   {"Address": 2, "Present": False, "Nonces": 0, "HW Errors": 0, "Hashrate": 0.0}]})
    assert [(c["kind"], c["id"], c["present"], c["nonces"]) for c in chips] == [("chip", 0, True, 7),
                                                                                ("chip", 2, False, 0)]
    modules = sub_rows({"Modules": [{"address": 1, "model": "A3222", "asics": 4, "temperature": 41,
                                     "frequency": [500, 500, 600], "valid_nonces": 9, "hw_errors": 0,
                                     "hashrate": 2e9}]})
    assert modules[0]["kind"] == "module" and modules[0]["frequency"] == 533 and modules[0]["temperature"] == 41
    assert sub_rows({"Chips": 4}) == []


def _pool(state: str, difficulty: float) -> PoolSnapshot:
    return PoolSnapshot(index=0, name="pool0", url="stratum+tcp://h:1", user="u", state=state, active=False,
                        priority=0, difficulty=difficulty, accepted=0, rejected=Counter(), stale=0,
                        accepted_difficulty=0.0, best_difficulty=0.0, latency=None, version_rolling=False)


def test_a_dead_pool_shows_no_difficulty():
    assert pool_row(_pool("Dead", 1.0))["difficulty"] is None
    assert pool_row(_pool("Alive", 512.0))["difficulty"] == 512.0


@pytest.mark.parametrize(("headers", "bound", "refused"), [
    ({"Host": "127.0.0.1:8080"}, "127.0.0.1", False),  # curl: no Origin, the token decides
    ({"Host": "127.0.0.1:8080", "Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}, "127.0.0.1",
     False),
    ({"Host": "127.0.0.1:8080", "Origin": "http://evil.example"}, "127.0.0.1", True),
    ({"Host": "127.0.0.1:8080", "Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "cross-site"}, "127.0.0.1",
     True),
    # DNS rebinding: same origin as far as the browser knows, but not a loopback name
    ({"Host": "evil.example:8080", "Origin": "http://evil.example:8080"}, "127.0.0.1", True),
    ({"Host": "miner.lan:8080", "Origin": "http://miner.lan:8080"}, "0.0.0.0", False),
    ({"Host": "[::1]:8080", "Origin": "http://[::1]:8080"}, "::1", False),
])
def test_cross_site_writes_are_refused(headers, bound, refused):
    assert (cross_site_refusal("POST", headers, bound) is not None) is refused
    assert cross_site_refusal("GET", headers, bound) is None  # reads carry no CORS headers instead


def test_loopback_names():
    assert all(map(is_loopback_name, ["127.0.0.1", "127.0.0.1:80", "localhost:8080", "[::1]:1", "::1"]))
    assert not any(map(is_loopback_name, ["10.0.0.2:80", "example.com", "0.0.0.0"]))


@given(st.lists(st.booleans(), max_size=600), st.integers(min_value=1, max_value=300))
def test_recent_shares_keep_the_newest_in_order(results, keep):
    ring = RecentShares(keep)
    for i, accepted in enumerate(results):
        ring.add(float(i), "d", "pool0", 1.0, 2.0, accepted, None if accepted else "low diff")
    kept = ring.since(0)
    assert len(kept) == min(len(results), keep) == len(ring)
    assert [r.seq for r in kept] == list(range(len(results) - len(kept) + 1, len(results) + 1))
    assert all(r.reason == ("" if r.accepted else "low diff") for r in kept)
    assert ring.since(ring.last_seq) == []


def test_the_5s_ring_is_sampled_and_survives_a_restart(tmp_path):
    path = tmp_path / "stats.json"
    store = StatsStore(path)
    kept = [store.record("5s", float(i), now=1000.0 + i) for i in range(0, 20)]
    assert kept.count(True) == 4  # one sample per 5 s from a 1 s ticker: at 0, 5, 10, 15
    store.save()
    again = StatsStore(path)
    again.load()
    assert list(again.history["5s"]) == [(1000.0, 0.0), (1005.0, 5.0), (1010.0, 10.0), (1015.0, 15.0)]
    assert again.record("5s", 1.0, now=1016.0) is False  # the interval counts on across the restart


def test_a_downstream_worker_row_carries_its_last_share_as_an_age():
    from miner.frontends.dashboard.state import worker_row
    from miner.server.workers import WorkerStats

    worker = WorkerStats("alice.1", last_share=1_000.0)
    row = worker_row(worker.as_dict(1_000.0), now=1_012.5)
    assert (row["name"], row["last_share_ago"]) == ("alice.1", 12.5)
    assert worker_row(WorkerStats("bob.1").as_dict(0.0), now=5.0)["last_share_ago"] is None
