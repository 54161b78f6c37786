from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miner.core import hashing
from miner.core.shares import Verdict, check_nonce
from miner.core.targets import (
    DIFF1_TARGET,
    difficulty_to_target,
    display_hash,
    hash_difficulty,
    nbits_to_target,
    target_to_difficulty,
    target_to_nbits,
)
from miner.core.work import (
    Nonce,
    build_header,
    dsha256,
    merkle_branch,
    merkle_root,
    parse_header,
    roll_version,
    swap_words,
)
from miner.sources.sandbox import GENESIS_EXTRANONCE2, GENESIS_HASH, GENESIS_NONCE, genesis_job
from tests.conftest import load_vectors


# docs/stratum.md §1.5
@pytest.mark.parametrize(
    ("difficulty", "target_hex"),
    [
        (1, "00000000ffff0000000000000000000000000000000000000000000000000000"),
        (512, "00000000007fff80000000000000000000000000000000000000000000000000"),
        (1000, "00000000004188f5c28f5c280000000000000000000000000000000000000000"),
        (65536, "000000000000ffff000000000000000000000000000000000000000000000000"),
        ("0.001", "000003e7fc180000000000000000000000000000000000000000000000000000"),
    ],
)
def test_difficulty_to_target_table(difficulty, target_hex):
    # The table was made with double precision (as cgminer and ckpool compute it); ours is the
    # exact floor, so the two agree to the 53 bits a double holds.
    exact = difficulty_to_target(difficulty)
    table = int(target_hex, 16)
    assert exact >= table
    assert exact - table <= exact >> 52


def test_diff1_and_known_nbits():
    assert DIFF1_TARGET == 0x00000000FFFF0000000000000000000000000000000000000000000000000000
    assert nbits_to_target(0x1D00FFFF) == DIFF1_TARGET
    assert nbits_to_target(0x1A44B9F2) == 0x44B9F2 << (8 * 23)
    assert round(target_to_difficulty(nbits_to_target(0x1A44B9F2)), 2) == 244112.49
    assert nbits_to_target(0x207FFFFF) == 0x7FFFFF << (8 * 29)


@given(st.integers(min_value=1, max_value=(1 << 255)))
def test_nbits_round_trip_loses_only_low_bits(target):
    compact = target_to_nbits(target)
    back = nbits_to_target(compact)
    assert back <= target
    # the compact form keeps the top 23 bits or more
    assert target - back < (1 << max(0, target.bit_length() - 15))
    assert target_to_nbits(back) == compact


@given(st.fractions(min_value=Fraction(1, 10**6), max_value=10**12))
def test_difficulty_target_round_trip(difficulty):
    target = difficulty_to_target(difficulty)
    assert abs(target_to_difficulty(target) - float(difficulty)) <= float(difficulty) * 1e-9


def test_bad_difficulty_and_nbits():
    with pytest.raises(ValueError, match="difficulty"):
        difficulty_to_target(0)
    with pytest.raises(ValueError, match="nbits"):
        nbits_to_target(0x1D80FFFF)


def test_block_125552_header():
    # docs/stratum.md §1.7(b)
    prev_stratum = bytes.fromhex("ab02cd818b9e567ee21793cddef299feb29ad444a41b85b8000008a300000000")
    prev = swap_words(prev_stratum)
    assert prev == bytes.fromhex("00000000000008a3a41b85b8b29ad444def299fee21793cd8b9e567eab02cd81")[::-1]
    root = bytes.fromhex("2b12fcf1b09288fcaff797d71e950e71ae42b91e8bdb2304758dfcffc2b620e3")[::-1]
    header = build_header(1, prev, root, 1305998791, 0x1A44B9F2, 2504433986)
    assert display_hash(hashing.sha256d(header)) == (
        "00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d"
    )
    fields = parse_header(header)
    assert (fields.version, fields.ntime, fields.nbits, fields.nonce) == (
        1, 1305998791, 0x1A44B9F2, 2504433986)


def test_genesis_as_a_stratum_job_rebuilds_the_genesis_header():
    job = genesis_job()
    work = job.make_work(1, GENESIS_EXTRANONCE2)
    assert display_hash(dsha256(job.coinbase(GENESIS_EXTRANONCE2))) == (
        "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
    )
    header = work.header_for(GENESIS_NONCE)
    assert header.hex() == load_vectors("headers.json")["genesis"]["header"]
    checked = check_nonce(work, Nonce(1, GENESIS_NONCE))
    assert display_hash(checked.digest) == GENESIS_HASH
    assert checked.verdict is Verdict.BLOCK
    assert check_nonce(work, Nonce(1, GENESIS_NONCE + 1)).verdict is Verdict.HW_ERROR


def full_merkle_root(leaves: list[bytes]) -> bytes:
    level = list(leaves)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [dsha256(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40))
def test_merkle_branch_gives_the_full_tree_root(leaves):
    branch = merkle_branch(leaves[1:])
    assert merkle_root(leaves[0], branch) == full_merkle_root(leaves)


@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF))
def test_roll_version_only_touches_the_mask(base, mask, bits):
    rolled = roll_version(base, mask, bits)
    assert rolled & ~mask & 0xFFFFFFFF == base & ~mask & 0xFFFFFFFF
    assert rolled & mask == bits & mask


def test_roll_version_bip310_example():
    assert roll_version(0x20000000, 0x1FFFE000, 0x00006000) == 0x20006000


@given(st.binary(min_size=32, max_size=32))
def test_hash_difficulty_matches_target(digest):
    value = int.from_bytes(digest, "little")
    if value:
        assert hash_difficulty(digest) == pytest.approx(DIFF1_TARGET / value)


@given(st.integers(min_value=0, max_value=2**64), st.integers(min_value=1, max_value=8))
def test_extranonce2_counter_bytes(counter, size):
    job = genesis_job()
    job = type(job)(**{**{f: getattr(job, f) for f in job.__slots__}, "extranonce2_size": size})
    en2 = job.extranonce2_for(counter)
    assert len(en2) == size
    assert int.from_bytes(en2, "little") == counter % (1 << (8 * size))


def test_share_verdicts():
    job = genesis_job(share_target=difficulty_to_target(0.0001))
    work = job.make_work(7, GENESIS_EXTRANONCE2)
    # find nonces at a low difficulty, then classify them against tighter device targets
    found = hashing.scan(work.header, 0, 2_000_000, difficulty_to_target(0.0001))
    assert found
    for nonce in found:
        checked = check_nonce(work, Nonce(7, nonce), device_target=difficulty_to_target(0.0001))
        assert checked.verdict is Verdict.SHARE
        assert checked.difficulty >= 0.0001
    # a rolled version outside the job's mask (the genesis job allows none) is a hardware error
    assert check_nonce(work, Nonce(7, found[0], version=0x20002000)).verdict is Verdict.HW_ERROR


@pytest.mark.parametrize("field", ["version", "ntime", "nbits"])
@pytest.mark.parametrize("value", [-1, 1 << 32, 1 << 33])
def test_a_job_whose_header_fields_do_not_fit_32_bits_cannot_be_made(field, value):
    from miner.core.work import Job

    fields = dict(job_id="j", prevhash=bytes(32), coinb1=b"", coinb2=b"", merkle_branch=(), version=1,
                  nbits=0x207FFFFF, ntime=1)
    with pytest.raises(ValueError, match=f"{field} {value} does not fit"):
        Job(**{**fields, field: value})
