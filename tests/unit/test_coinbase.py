"""Coinbase decoding: real coinbases against Bitcoin Core's own decoding (tests/vectors/coinbase.json),
round trips of every output kind through the serialiser in tests/helpers, and clear errors."""

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miner.core.work import Job
from miner.sources.coinbase import CoinbaseError, job_coinbase, parse_coinbase
from miner.sources.node.address import classify_script, decode_address, encode_address
from tests.helpers.coinbase_build import WITNESS_COMMITMENT, coinbase, coinbase_halves
from tests.unit.test_address import VECTORS as ADDRESS_VECTORS

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "coinbase.json").read_text())["coinbases"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"][:40] for v in VECTORS])
def test_real_coinbases_decode_as_bitcoin_core_does(vector):
    tx = parse_coinbase(bytes.fromhex(vector["hex"]), vector["family"])
    if vector["txid"]:
        assert tx.txid[::-1].hex() == vector["txid"]  # the legacy serialisation was found exactly
    assert tx.segwit is vector["segwit"]
    if vector["height"] is not None:
        assert tx.height == vector["height"]
    if "tag_contains" in vector:
        assert vector["tag_contains"] in tx.tag
    assert [(o.value, o.kind) for o in tx.outputs] == [(o["value"], o["kind"]) for o in vector["outputs"]]
    for got, want in zip(tx.outputs, vector["outputs"], strict=True):
        if want["address"]:
            assert got.address == want["address"]


@pytest.mark.parametrize(("text", "kind", "script", "family"), ADDRESS_VECTORS)
def test_classify_script_inverts_the_address_vectors(text, kind, script, family):
    info = classify_script(bytes.fromhex(script), family)
    assert info.kind == kind
    assert info.address is not None and info.address.lower() == text.lower()


KINDS = {"p2pkh": 20, "p2sh": 20, "p2wpkh": 20, "p2wsh": 32, "p2tr": 32}


@given(st.sampled_from(sorted(KINDS)), st.sampled_from(["main", "test", "regtest"]), st.data())
def test_every_kind_round_trips_through_a_script(kind, family, data):
    payload = data.draw(st.binary(min_size=KINDS[kind], max_size=KINDS[kind]))
    address = decode_address(encode_address(kind, payload, family))
    info = classify_script(address.script, family)
    assert (info.kind, info.address) == (kind, address.text)


output_strategy = st.tuples(st.integers(0, 21_000_000 * 10**8),
                            st.one_of(st.binary(max_size=80), st.just(WITNESS_COMMITMENT)))


@given(st.lists(output_strategy, min_size=1, max_size=300), st.booleans(), st.integers(1, 16))
def test_any_coinbase_round_trips(outputs, segwit, extranonce_size):
    raw = coinbase(outputs, segwit=segwit, extranonce_size=extranonce_size)
    tx = parse_coinbase(raw)
    assert [(o.value, o.script) for o in tx.outputs] == outputs
    assert tx.segwit is segwit and tx.height == 840_000 and tx.total == sum(v for v, _ in outputs)


@given(st.binary(max_size=400))
def test_garbage_is_refused_with_a_reason_never_a_crash(data):
    try:
        parse_coinbase(data)
    except CoinbaseError as exc:
        assert str(exc).startswith("coinbase: ")


def test_truncations_say_where_they_end():
    raw = coinbase([(5_000_000_000, decode_address("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa").script)])
    for cut in range(1, len(raw)):
        with pytest.raises(CoinbaseError, match="coinbase: "):
            parse_coinbase(raw[:cut])
    with pytest.raises(CoinbaseError, match="after the locktime"):
        parse_coinbase(raw + b"\0")


def test_a_spending_transaction_is_not_a_coinbase():
    raw = bytearray(coinbase([(1, b"\x51")]))
    raw[5] = 1  # the previous output's txid is no longer all zeros
    with pytest.raises(CoinbaseError, match="spends a real output"):
        parse_coinbase(bytes(raw))


def test_a_jobs_coinbase_is_decoded_around_its_extranonces():
    script = decode_address("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0").script
    coinb1, coinb2 = coinbase_halves([(312_500_000, script), (0, WITNESS_COMMITMENT)], extranonce_size=12)
    job = Job("1", bytes(32), coinb1, coinb2, (), 0x20000000, 0x1D00FFFF, 0, extranonce1=b"\xaa" * 4,
              extranonce2_size=8)
    tx = job_coinbase(job)
    assert [(o.value, o.kind) for o in tx.outputs] == [(312_500_000, "p2tr"), (0, "op_return")]
    assert tx.outputs[0].address == "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"
