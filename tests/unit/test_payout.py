"""The payout check on the coinbases the issue names: a ckpool solo split, a testnet4 address, a
donation output, a hijacked output, 100+ outputs; and the monitor's verdicts and modes."""

import logging

import pytest

from miner.core.work import Job
from miner.sources.coinbase import parse_coinbase
from miner.sources.payout import PayoutMonitor, PayoutPolicy, judge, user_address
from miner.sources.stratum.connection import PoolConnection
from miner.sources.stratum.url import PoolConfig
from tests.helpers.coinbase_build import WITNESS_COMMITMENT, coinbase, coinbase_halves, script_of

USER = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"  # BIP173's P2WPKH vector
DONATION = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"
THIEF = "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"  # BIP350's P2TR vector
TESTNET4 = "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7"  # BIP173's testnet P2WSH
REWARD = 312_500_000 + 1_234_567  # the 2024 subsidy plus fees


def ckpool_solo(user: str, donation_percent: float) -> list[tuple[int, bytes]]:
    """ckpool stratifier.c generate_coinbase in solo mode: the user's output, then the donation
    (`donation` percent of the value) and the witness commitment."""
    donation = int(REWARD * donation_percent / 100)
    return [(REWARD - donation, script_of(user)), (donation, script_of(DONATION)), (0, WITNESS_COMMITMENT)]


def verdict(outputs, expected=(USER,), floor=95.0, family="main"):
    policy = PayoutPolicy.parse(tuple(expected), floor)
    return judge(parse_coinbase(coinbase(outputs, segwit=True), family), policy.addresses, policy.min_percent)


def test_a_ckpool_solo_split_pays_the_user_98_percent():
    v = verdict(ckpool_solo(USER, 2.0))
    assert v.checked and v.ok
    assert v.percent == pytest.approx(98.0, abs=1e-6)
    assert f"pays 98.00% of {REWARD / 1e8:.8f} BTC to {USER}" == v.summary
    assert not verdict(ckpool_solo(USER, 2.0), floor=99.0).ok  # a stricter floor refuses the fee


def test_a_donation_output_counts_against_the_floor_the_user_set():
    outputs = ckpool_solo(USER, 1.0)
    assert verdict(outputs, floor=99.0).ok
    assert not verdict(outputs, floor=99.5).ok
    assert "below the 99.5% floor" in verdict(outputs, floor=99.5).summary


def test_a_hijacked_output_fails():
    outputs = [(REWARD, script_of(THIEF)), (0, WITNESS_COMMITMENT)]
    v = verdict(outputs)
    assert v.checked and not v.ok and v.percent == 0.0


def test_a_testnet4_address_is_matched_and_shown_as_testnet():
    policy = PayoutPolicy.parse((TESTNET4,))
    outputs = [(5_000_000_000, script_of(TESTNET4)), (0, WITNESS_COMMITMENT)]
    v = judge(parse_coinbase(coinbase(outputs), "test"), policy.addresses, policy.min_percent)
    assert v.ok and v.percent == 100.0
    assert parse_coinbase(coinbase(outputs), "test").outputs[0].address == TESTNET4


def test_a_coinbase_with_300_outputs_is_summed_over_all_of_them():
    # P2Pool/Ocean-style: many payees; ours are outputs 7 and 250 (a varint count above 252)
    outputs = [(1_000_000, script_of(DONATION))] * 300
    outputs[7] = (100_000_000, script_of(USER))
    outputs[250] = (50_000_000, script_of(USER))
    v = verdict(outputs, floor=30.0)
    total = 298 * 1_000_000 + 150_000_000
    assert v.outputs == 300 and v.total == total
    assert v.percent == pytest.approx(100 * 150_000_000 / total)
    assert v.ok and not verdict(outputs, floor=40.0).ok


def test_without_an_address_the_biggest_output_is_shown_unchecked():
    policy = PayoutPolicy.parse(())
    v = judge(parse_coinbase(coinbase(ckpool_solo(USER, 2.0))), policy.expected_for("worker1"), 95.0)
    assert not v.checked and v.ok
    assert v.address == USER and v.summary.endswith("(not checked)")


@pytest.mark.parametrize(("user", "address"), [
    (USER, USER), (f"{USER}.rig1", USER), (TESTNET4 + ".x", TESTNET4), ("worker.1", None), ("1abc", None),
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5.rig", None)])  # the last has a bad checksum
def test_the_address_in_a_solo_pools_user_name(user, address):
    found = user_address(user)
    assert (found.text if found else None) == address


@pytest.mark.parametrize(("args", "message"), [
    ((("bc1qnot",), 95, "warn"), "--payout-address"), (((), 0, "warn"), "--payout-min"),
    (((), 101, "warn"), "--payout-min"), (((), 95, "block"), "--payout-check")])
def test_bad_settings_are_one_line(args, message):
    with pytest.raises(ValueError, match=message):
        PayoutPolicy.parse(*args)


def job_paying(outputs, job_id="1") -> Job:
    coinb1, coinb2 = coinbase_halves(outputs)
    return Job(job_id, bytes(32), coinb1, coinb2, (), 0x20000000, 0x1D00FFFF, 0, extranonce1=b"\1\2\3\4",
               extranonce2_size=4)


def pool(user: str = f"{USER}.rig") -> PoolConnection:
    return PoolConnection(PoolConfig("stratum+tcp://127.0.0.1:3333", user, "x"), "pool0", lambda p, j: None,
                          lambda p: None)


@pytest.mark.parametrize("mode", ["warn", "alert", "enforce"])
def test_the_monitor_flips_once_per_change_and_only_enforce_refuses(mode, caplog):
    monitor = PayoutMonitor(PayoutPolicy.parse((), 95.0, mode))
    flips = []
    monitor.listeners.append(lambda name, v: flips.append((name, v.ok)))
    p = pool()
    good, bad = job_paying(ckpool_solo(USER, 2.0)), job_paying([(REWARD, script_of(THIEF))], "2")
    caplog.set_level(logging.INFO)
    assert monitor.allows(p, good) and monitor.allows(p, good)
    p.current_job = bad
    assert monitor.allows(p, bad) is (mode != "enforce")
    assert monitor.allows(p, bad) is (mode != "enforce")
    p.current_job = good
    assert monitor.allows(p, good)
    assert flips == [("pool0", True), ("pool0", False), ("pool0", True)]
    assert sum("payout check failed" in r.message for r in caplog.records) == 1
    assert monitor.latest["pool0"].ok


def test_an_unreadable_coinbase_fails_a_checked_pool():
    monitor = PayoutMonitor(PayoutPolicy.parse((), 95.0, "enforce"))
    broken = Job("1", bytes(32), b"\x02\0\0\0", b"", (), 0x20000000, 0x1D00FFFF, 0, extranonce2_size=4)
    p = pool()
    p.current_job = broken
    assert not monitor.allows(p, broken)
    assert "cannot be decoded" in monitor.latest["pool0"].summary
    other = pool("worker.1")  # nothing to check against: shown, never refused
    other.current_job = broken
    assert monitor.allows(other, broken)
