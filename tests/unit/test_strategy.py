"""cgminer's pool strategies (miner/sources/stratum/strategy.py) against the rules of cgminer.c:
select_pool (load balance with quotas), select_balanced, switch_pools (round robin, rotate),
watchpool_thread (rotate period), set_quota and adjust_quota_gcd. docs/cli.md §3."""

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from miner.sources.stratum.strategy import PoolPicker, Strategy, parse_quota, quota_gcds

ALL = [True, True, True]
PRIORITY = [0, 1, 2]


def picks(picker: PoolPicker, count: int, usable=ALL, priority=PRIORITY) -> list:
    out, current = [], None
    for _ in range(count):
        current = picker.on_slice(0.0, current, usable, priority)
        out.append(current)
    return out


def test_load_balance_gives_each_pool_its_quota_in_turn():
    # quotas 2, 1, 1: pool 0 twice, then 1, then 2, then round again (quota_used < quota_gcd)
    picker = PoolPicker(Strategy.LOAD_BALANCE, [2, 1, 1])
    got = picks(picker, 12)
    assert Counter(got) == {0: 6, 1: 3, 2: 3}
    assert got[:4] in ([0, 0, 1, 2], [1, 2, 0, 0], [2, 0, 0, 1])  # the rotation point moves on each reset


def test_load_balance_divides_quotas_by_their_gcd():
    assert quota_gcds([4, 2, 0]) == [2, 1, 0]
    picker = PoolPicker(Strategy.LOAD_BALANCE, [40, 20])
    got = picks(picker, 30, usable=[True, True], priority=[0, 1])
    assert Counter(got) == {0: 20, 1: 10}
    # the gcd keeps the runs short: never more than two slices of pool 0 in a row
    assert "0,0,0" not in ",".join(map(str, got))


def test_quota_zero_gets_no_work_and_a_dead_pool_is_skipped():
    picker = PoolPicker(Strategy.LOAD_BALANCE, [1, 0, 1])
    assert set(picks(picker, 10)) == {0, 2}
    picker = PoolPicker(Strategy.LOAD_BALANCE, [1, 1, 1])
    assert set(picks(picker, 10, usable=[True, False, True])) == {0, 2}


def test_failover_only_gives_a_dead_pools_quota_to_priority_pool_0():
    # cgminer: "Failover-only flag for load-balance means distribute unused quota to priority pool 0"
    usable, priority = [True, False, True], [2, 0, 1]  # pool 2 is priority pool 0
    plain = Counter(picks(PoolPicker(Strategy.LOAD_BALANCE, [1, 1, 1]), 30, usable, priority))
    fail_only = Counter(picks(PoolPicker(Strategy.LOAD_BALANCE, [1, 1, 1], failover_only=True), 30, usable, priority))
    assert plain == {0: 15, 2: 15}
    assert fail_only[2] == 2 * fail_only[0]  # pool 1's slot goes to pool 2


def test_nothing_with_quota_usable_falls_back_to_priority():
    picker = PoolPicker(Strategy.LOAD_BALANCE, [1, 1, 0])
    assert picks(picker, 3, usable=[False, False, True], priority=[1, 2, 0]) == [2, 2, 2]
    assert picker.on_slice(0, None, [False, False, False], PRIORITY) is None


def test_balance_picks_the_pool_with_fewest_picks_current_on_a_tie():
    picker = PoolPicker(Strategy.BALANCE, [1, 1, 1])
    got = picks(picker, 9)
    assert Counter(got) == {0: 3, 1: 3, 2: 3}
    picker = PoolPicker(Strategy.BALANCE, [1, 1, 1])
    assert picker.on_slice(0, 1, ALL, PRIORITY) == 1  # all tied: the current pool
    assert picker.on_slice(0, 1, ALL, PRIORITY) == 0  # now pool 1 has more


def test_round_robin_moves_to_the_next_pool_and_stays():
    picker = PoolPicker(Strategy.ROUND_ROBIN, [1, 1, 1])
    assert picker.on_change(None, ALL, PRIORITY) == 0
    assert picker.on_change(0, [False, True, True], PRIORITY) == 1  # pool 0 failed: the next one
    assert picker.on_change(1, ALL, PRIORITY) == 1  # pool 0 is back: round robin stays
    assert picker.on_change(2, [True, True, False], PRIORITY) == 0  # cycles past the end
    assert picker.on_slice(100.0, 1, ALL, PRIORITY) == 1  # no rotation without --rotate


def test_rotate_moves_on_every_period():
    picker = PoolPicker(Strategy.ROTATE, [1, 1, 1], rotate_seconds=60.0)
    assert picker.on_slice(0.0, 0, ALL, PRIORITY) == 0
    assert picker.on_slice(59.0, 0, ALL, PRIORITY) == 0
    assert picker.on_slice(60.0, 0, ALL, PRIORITY) == 1
    assert picker.on_slice(100.0, 1, ALL, PRIORITY) == 1
    assert picker.on_slice(121.0, 1, [True, True, False], PRIORITY) == 0  # the next usable one


def test_added_pools_get_quota_1():
    picker = PoolPicker(Strategy.LOAD_BALANCE, [2])
    picker.resize(2)
    assert picker.quotas == [2, 1]
    assert Counter(picks(picker, 9, usable=[True, True], priority=[0, 1])) == {0: 6, 1: 3}


@pytest.mark.parametrize("text, reason", [
    ("2stratum+tcp://h:1", "no semicolon"), (";stratum+tcp://h:1", "no parameter for quota"),
    ("2;", "no parameter for URL"), ("-1;stratum+tcp://h:1", "negative"), ("x;stratum+tcp://h:1", "whole number")])
def test_bad_quotas_say_what_cgminer_says(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_quota(text)


@given(hs.integers(0, 10**6), hs.from_regex(r"stratum\+tcp://[a-z]{1,10}:[0-9]{1,5}", fullmatch=True))
def test_quota_round_trip(quota, url):
    assert parse_quota(f"{quota};{url}") == (quota, url)


@given(hs.lists(hs.integers(0, 50), min_size=1, max_size=5), hs.lists(hs.booleans(), min_size=5, max_size=5))
def test_load_balance_only_ever_picks_usable_pools(quotas, usable):
    usable = usable[:len(quotas)]
    picker = PoolPicker(Strategy.LOAD_BALANCE, quotas)
    priority = list(range(len(quotas)))
    for _ in range(20):
        pick = picker.on_slice(0, None, usable, priority)
        assert (pick is None) == (not any(usable))
        assert pick is None or usable[pick]


def test_the_apis_poolquota_steers_load_balance():
    """api.c poolquota sets pool->quota and adjust_quota_gcd: the next slices follow it."""
    from miner.sources.stratum.failover import PoolManager
    from miner.sources.stratum.url import PoolConfig

    picker = PoolPicker(Strategy.LOAD_BALANCE, [1, 1])
    manager = PoolManager([PoolConfig("stratum+tcp://a.example:1", "w"), PoolConfig("stratum+tcp://b.example:1", "w")],
                          picker=picker)
    manager.set_quota(1, 3)
    assert [p.config.quota for p in manager.pools] == [1, 3] and picker.quotas == [1, 3]
    assert Counter(picks(picker, 8, usable=[True, True], priority=[0, 1])) == {0: 2, 1: 6}
