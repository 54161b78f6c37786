import hashlib
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miner.core import hashing
from miner.core.targets import nbits_to_target
from miner.devices.cpu import scan_threaded, split_range
from tests.conftest import load_vectors
from tests.helpers import reference_sha256

GENESIS = load_vectors("headers.json")["genesis"]
GENESIS_HEADER = bytes.fromhex(GENESIS["header"])


def dsha(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def brute_force(header: bytes, start: int, count: int, target: int) -> list[int]:
    prefix = header[:76]
    return [n for n in range(start, start + count)
            if int.from_bytes(dsha(prefix + n.to_bytes(4, "little")), "little") <= target]


@given(st.binary(max_size=300))
def test_sha256d_matches_hashlib(data):
    assert hashing.sha256d(data) == dsha(data)


@given(st.binary(max_size=200))
def test_reference_sha256_matches_hashlib(data):
    assert reference_sha256.sha256(data) == hashlib.sha256(data).digest()


@given(st.binary(min_size=64, max_size=80))
def test_midstate_matches_reference(header):
    assert hashing.midstate(header) == reference_sha256.midstate(header[:64])


def test_genesis_vector():
    assert hashing.sha256d(GENESIS_HEADER)[::-1].hex() == GENESIS["hash"]
    words = [hashing.midstate(GENESIS_HEADER)[4 * i : 4 * i + 4].hex() for i in range(8)]
    assert words == GENESIS["midstate_words_S0_S7"]
    assert int.from_bytes(GENESIS_HEADER[76:], "little") == GENESIS["nonce"]


def test_genesis_scan_finds_exactly_its_nonce(engine):
    nonce = GENESIS["nonce"]
    target = nbits_to_target(0x1D00FFFF)
    # the header's own nonce bytes are ignored: zero them to prove it
    header = GENESIS_HEADER[:76] + bytes(4)
    assert hashing.scan(header, nonce - 100_000, 200_001, target, engine) == [nonce]
    assert hashing.scan(header, nonce - 1000, 1000, target, engine) == []
    assert hashing.scan(header, nonce + 1, 1000, target, engine) == []
    assert hashing.scan(header, nonce, 1, target, engine) == [nonce]


targets = st.one_of(
    st.integers(min_value=248, max_value=256).map(lambda bits: (1 << bits) - 1),
    st.integers(min_value=1, max_value=(1 << 256) - 1),
)
starts = st.one_of(
    st.just(0),
    st.integers(min_value=0, max_value=300).map(lambda back: (1 << 32) - 1 - back),
    st.integers(min_value=0, max_value=(1 << 32) - 1),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.binary(min_size=80, max_size=80), start=starts,
       count=st.integers(min_value=0, max_value=300), target=targets)
def test_scan_matches_brute_force(engine, header, start, count, target):
    count = min(count, (1 << 32) - start)
    assert hashing.scan(header, start, count, target, engine) == brute_force(header, start, count, target)


def test_scan_touching_both_ends_of_nonce_space(engine):
    header = bytes(range(80))
    target = (1 << 252) - 1  # about one nonce in 16
    last = (1 << 32) - 37
    assert hashing.scan(header, last, 37, target, engine) == brute_force(header, last, 37, target)
    assert hashing.scan(header, 0, 37, target, engine) == brute_force(header, 0, 37, target)
    assert hashing.scan(header, 12, 0, target, engine) == []


def test_scan_returns_more_results_than_one_c_call_holds(engine):
    # every nonce meets the largest target: the binding must resume past its result buffer
    found = hashing.scan(bytes(80), 1000, 3000, (1 << 256) - 1, engine)
    assert found == list(range(1000, 4000))


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"header": bytes(79)}, "header"),
        ({"header": bytes(81)}, "header"),
        ({"start": -1}, "start"),
        ({"start": 1 << 32}, "start"),
        ({"count": -5}, "count"),
        ({"start": (1 << 32) - 10, "count": 11}, "count"),
        ({"target": 0}, "target"),
        ({"target": -3}, "target"),
        ({"target": 1 << 256}, "target"),
        ({"engine": "quantum"}, "engine"),
    ],
)
def test_scan_rejects_bad_arguments(kwargs, names):
    args = {"header": bytes(80), "start": 0, "count": 10, "target": 1 << 250, "engine": None} | kwargs
    with pytest.raises(ValueError, match=names):
        hashing.scan(**args)


def test_midstate_rejects_short_header():
    with pytest.raises(ValueError, match="header"):
        hashing.midstate(bytes(63))


def available_engines() -> set[str]:
    return {name for name in hashing.all_engines() if hashing._available(hashing._ENGINE_IDS[name])}


def test_cpu_without_extensions_runs_portable(monkeypatch):
    hashing.engines()  # calibrated with what the CPU really has; narrowing it afterwards must still hold
    monkeypatch.setattr(hashing, "_available", lambda engine_id: engine_id == hashing._ENGINE_IDS["portable"])
    assert hashing.engines() == ["portable"]
    assert hashing.best_engine() == "portable"
    for name in ("avx2", "avx512", "sha-ni", "neon", "armv8-sha2"):
        with pytest.raises(ValueError, match="engine: this CPU cannot run"):
            hashing.scan(bytes(80), 0, 10, 1 << 255, name)
    nonce = GENESIS["nonce"]
    assert hashing.scan(GENESIS_HEADER, nonce - 50, 100, nbits_to_target(0x1D00FFFF)) == [nonce]


def test_engines_are_the_available_ones_in_measured_order_and_always_portable():
    names = hashing.engines()
    assert sorted(names) == sorted(available_engines())
    assert "portable" in names
    rates = hashing.engine_rates()
    assert list(rates) == names
    assert all(mhs > 0 for mhs in rates.values())
    assert list(rates.values()) == sorted(rates.values(), reverse=True)
    assert hashing.best_engine() == names[0]


@pytest.fixture
def fake_calibration(monkeypatch):
    """A fresh, uncalibrated process whose engines measure at made-up speeds (portable fastest,
    which no real CPU gives: so the order can only have come from the measurement)."""
    made_up = {"portable": 50.0, "avx2": 40.0, "sha-ni": 30.0, "avx512": 20.0, "neon": 45.0, "armv8-sha2": 35.0}
    calls: list[tuple[str, int]] = []

    def measure(engine: str, nonces: int) -> float:
        calls.append((engine, nonces))
        return made_up[engine]

    monkeypatch.setattr(hashing, "_rates", None)
    monkeypatch.setattr(hashing, "_measure_mhs", measure)
    return made_up, calls


def test_engine_order_follows_the_measurement(fake_calibration):
    made_up, calls = fake_calibration
    expected = sorted(available_engines(), key=lambda name: -made_up[name])
    assert hashing.engines() == expected
    assert hashing.best_engine() == "portable"
    assert hashing.check_engine(None) == "portable"
    assert hashing.engine_rates() == {name: made_up[name] for name in expected}
    assert {engine for engine, _ in calls} == available_engines()


def test_calibration_runs_once_per_process(fake_calibration):
    _, calls = fake_calibration
    threads = [threading.Thread(target=hashing.engines) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    measured = len(calls)
    assert measured == len(available_engines()) * (1 + hashing._CALIBRATION_ROUNDS)
    hashing.engines()
    hashing.best_engine()
    hashing.engine_rates()
    hashing.scan(bytes(80), 0, 10, 1 << 255)
    assert len(calls) == measured


def test_explicit_engines_work_whatever_the_measured_order(fake_calibration, engine):
    # an engine named by the caller (--engine) is used as asked, even when it measured slowest
    assert hashing.check_engine(engine) == engine
    header = bytes(range(80))
    target = (1 << 250) - 1
    assert hashing.scan(header, 0, 500, target, engine) == brute_force(header, 0, 500, target)


@given(st.integers(min_value=0, max_value=1 << 32), st.integers(min_value=1, max_value=16))
def test_split_range_covers_exactly(count, parts):
    pieces = split_range(7, count, parts)
    assert len(pieces) == parts
    assert sum(c for _, c in pieces) == count
    pos = 7
    for start, size in pieces:
        assert start == pos
        pos += size
    sizes = [c for _, c in pieces]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("threads", [2, 3, 5])
def test_threaded_scan_equals_single_scan(engine, threads):
    header = bytes(range(1, 81))
    target = (1 << 246) - 1  # about one nonce in 1024
    single = hashing.scan(header, 5000, 200_000, target, engine)
    assert len(single) > 50
    assert scan_threaded(header, 5000, 200_000, target, threads, engine) == single


def test_scan_releases_the_gil():
    # While one thread is inside a long C scan, this thread must keep running Python code. Were
    # the GIL held, this thread would stall for a whole call; it may only see scheduler-sized gaps.
    import time

    engine = hashing.best_engine()
    count = 1 << 22  # ~0.2 s per call on one core: long against a scheduler slice, short for the tier
    t0 = time.perf_counter()
    hashing.scan(bytes(80), 0, count, 1 << 200, engine)
    one_call = time.perf_counter() - t0

    def long_scans():
        for _ in range(3):
            hashing.scan(bytes(80), 0, count, 1 << 200, engine)

    worker = threading.Thread(target=long_scans)
    worker.start()
    last = time.perf_counter()
    longest_gap = 0.0
    while worker.is_alive():
        now = time.perf_counter()
        longest_gap = max(longest_gap, now - last)
        last = now
    worker.join()
    assert longest_gap < one_call / 2


@given(st.binary(max_size=300), st.integers(0, 4))
def test_sha256_state_after_continues_a_hash_like_hashlib(data, split_blocks):
    # The state after whole blocks, then the rest padded by hand, gives hashlib's digest.
    head = data[: 64 * min(split_blocks, len(data) // 64)]
    rest = data[len(head):]
    state = hashing.sha256_state_after(head)
    padded = rest + b"\x80" + b"\x00" * ((55 - len(rest)) % 64) + (8 * len(data)).to_bytes(8, "big")
    assert hashing.sha256_state_after(padded, state) == hashlib.sha256(data).digest()


def test_sha256_state_after_one_block_is_the_midstate_and_bad_lengths_are_refused():
    header = bytes(range(80))
    assert hashing.sha256_state_after(header[:64]) == hashing.midstate(header)
    assert hashing.sha256_state_after(b"") == hashing.SHA256_IV
    with pytest.raises(ValueError, match="whole number"):
        hashing.sha256_state_after(b"x" * 65)
    with pytest.raises(ValueError, match="32 bytes"):
        hashing.sha256_state_after(b"", b"short")


# Edge cases of the engines' shortcuts: each engine tests only the top word of the hash (H7)
# before a full check, hashes several nonces per batch (SIMD lanes, interleaved SHA-NI streams)
# and hands the leftover tail of a range to scalar code.

def hash_value(header: bytes, nonce: int) -> int:
    return int.from_bytes(dsha(header[:76] + nonce.to_bytes(4, "little")), "little")


@pytest.mark.parametrize("position", range(17))  # every lane/stream slot of every engine's batch
def test_targets_at_the_top_word_boundary(engine, position):
    # Targets that share the top 32 bits with a nonce's hash: the H7 prefilter passes them all,
    # only the full comparison can decide, and it must decide exactly (<= target).
    header = bytes(range(3, 83))
    start = 1000
    nonce = start + position
    value = hash_value(header, nonce)
    top = value >> 224
    for target, hit in [(value, True), (value - 1, False), (value + 1, True),
                        ((top << 224) | ((1 << 224) - 1), True), (top << 224, value == top << 224),
                        (((top - 1) << 224) | ((1 << 224) - 1), False)]:
        if target <= 0:
            continue
        found = hashing.scan(header, start, 17, target, engine)
        assert (nonce in found) == hit, (target, hit)
        assert found == brute_force(header, start, 17, target)


def test_ranges_that_are_not_a_multiple_of_the_batch(engine):
    header = bytes(range(7, 87))
    target = (1 << 254) - 1  # about one nonce in four
    for start in (0, 5, 1 << 31):
        for count in range(1, 40):
            assert hashing.scan(header, start, count, target, engine) == brute_force(header, start, count, target)


def test_ranges_that_end_at_the_top_of_the_nonce_space(engine):
    header = bytes(range(11, 91))
    target = (1 << 254) - 1
    for back in range(1, 40):
        start = (1 << 32) - back
        assert hashing.scan(header, start, back, target, engine) == brute_force(header, start, back, target)
    # big-endian counting (USB sticks) wraps at the same place
    ms, tail = hashing.midstate(header), header[64:76]
    for back in (1, 2, 3, 5, 17):
        start = (1 << 32) - back
        expected = [n for n in range(start, 1 << 32)
                    if int.from_bytes(dsha(header[:76] + n.to_bytes(4, "big")), "little") <= target]
        assert hashing.scan_midstate(ms, tail, start, back, target, engine, nonce_be=True) == expected


def test_result_buffer_fills_in_the_middle_of_a_batch(engine):
    # the C side stops when its buffer is full, wherever that is in a batch, and the binding resumes
    # there: no nonce lost or repeated at the seam
    for start in range(5):
        found = hashing.scan(bytes(80), start, 256 * 3 + 7, (1 << 256) - 1, engine)
        assert found == list(range(start, start + 256 * 3 + 7))
