"""Payout addresses: BIP173/BIP350/Base58Check vectors, round trips, and the errors users see."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miner.sources.node.address import (
    BECH32_CONST,
    BECH32M_CONST,
    AddressError,
    base58check_encode,
    bech32_encode,
    convert_bits,
    decode_address,
    encode_address,
)

# docs/gbt.md §2.8 (from BIP173, BIP350 and well-known addresses)
VECTORS = [
    ("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "p2wpkh", "0014751e76e8199196d454941c45d1b3a323f1433bd6", "main"),
    ("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7", "p2wsh",
     "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262", "test"),
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0", "p2tr",
     "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", "main"),
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "p2pkh", "76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac", "main"),
    ("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", "p2wpkh", "0014751e76e8199196d454941c45d1b3a323f1433bd6",
     "regtest"),
    ("mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r", "p2pkh", "76a914751e76e8199196d454941c45d1b3a323f1433bd688ac", "regtest"),
    ("2N3vVYSK5XRgVSGWy21PnsRmBUywSQNdCsf", "p2sh", "a914751e76e8199196d454941c45d1b3a323f1433bd687", "regtest"),
]


@pytest.mark.parametrize(("text", "kind", "script", "family"), VECTORS)
def test_known_addresses(text, kind, script, family):
    address = decode_address(text)
    assert address.kind == kind
    assert address.script.hex() == script
    assert family in address.families


def test_base58_testnet_prefixes_serve_testnet_signet_and_regtest_but_bech32_prefixes_do_not():
    legacy = decode_address("mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r")
    for chain in ("test", "testnet4", "signet", "regtest", "testnet"):
        legacy.check_chain(chain)
    with pytest.raises(AddressError, match="is a regtest or test address, but the node is on 'main'"):
        legacy.check_chain("main")
    tb = decode_address(VECTORS[1][0])
    tb.check_chain("signet")
    with pytest.raises(AddressError, match="is a test address, but the node is on 'regtest'"):
        tb.check_chain("regtest")
    with pytest.raises(AddressError, match="does not know"):
        tb.check_chain("liquidv1")


@pytest.mark.parametrize(("text", "reason"), [
    ("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt08q", "bad checksum"),
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb", "bad checksum"),
    ("bcrt1qw508d6qejxtdg4y5r3zarvaRY0c5xw7kygt080", "mixes upper and lower case"),
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfN0", "'0' is not a base58 character"),
    ("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt08b", "'b' is not a bech32 character"),
    ("", "empty"),
    ("ltc1qw508d6qejxtdg4y5r3zarvary0c5xw7kgmn4n9", "not a base58 character"),  # another coin
])
def test_bad_addresses_are_one_line_errors(text, reason):
    with pytest.raises(AddressError, match=reason) as info:
        decode_address(text)
    assert "\n" not in str(info.value)


def _segwit(hrp: str, version: int, program: bytes, const: int) -> str:
    return bech32_encode(hrp, [version, *convert_bits(program, 8, 5, True)], const)


def test_witness_version_must_use_its_checksum_constant():
    program = bytes(range(32))
    with pytest.raises(AddressError, match="v0 must use the bech32 checksum"):
        decode_address(_segwit("bcrt", 0, program[:20], BECH32M_CONST))
    with pytest.raises(AddressError, match="v1 must use the bech32m checksum"):
        decode_address(_segwit("bcrt", 1, program, BECH32_CONST))


def test_unknown_witness_programs_are_refused():
    with pytest.raises(AddressError, match="v0 program of 25 bytes"):
        decode_address(_segwit("bc", 0, bytes(25), BECH32_CONST))
    with pytest.raises(AddressError, match="witness v2 .* is not a known address type"):
        decode_address(_segwit("bc", 2, bytes(32), BECH32M_CONST))
    with pytest.raises(AddressError, match="unknown Base58 version byte 0x80"):
        decode_address(base58check_encode(b"\x80" + bytes(20)))  # a WIF-like payload
    with pytest.raises(AddressError, match="33-byte payload"):
        decode_address(base58check_encode(b"\x80" + bytes(32)))


KINDS = {"p2pkh": 20, "p2sh": 20, "p2wpkh": 20, "p2wsh": 32, "p2tr": 32}
SCRIPT_PREFIX = {"p2pkh": "76a914", "p2sh": "a914", "p2wpkh": "0014", "p2wsh": "0020", "p2tr": "5120"}
SCRIPT_SUFFIX = {"p2pkh": "88ac", "p2sh": "87"}


@st.composite
def addresses(draw):
    kind = draw(st.sampled_from(sorted(KINDS)))
    payload = draw(st.binary(min_size=KINDS[kind], max_size=KINDS[kind]))
    family = draw(st.sampled_from(["main", "test", "regtest"]))
    return kind, payload, family


@given(addresses(), st.booleans())
def test_encode_decode_round_trip(address, upper):
    kind, payload, family = address
    text = encode_address(kind, payload, family)
    bech32 = kind not in ("p2pkh", "p2sh")
    assert text.startswith({"main": "bc1", "test": "tb1", "regtest": "bcrt1"}[family]) or not bech32
    shown = text.upper() if upper and bech32 else text  # bech32 may come all in upper case (QR codes)
    decoded = decode_address(shown)
    assert decoded.kind == kind
    assert decoded.script.hex() == SCRIPT_PREFIX[kind] + payload.hex() + SCRIPT_SUFFIX.get(kind, "")
    assert family in decoded.families


@given(addresses(), st.data())
def test_any_single_character_change_is_caught(address, data):
    kind, payload, family = address
    text = encode_address(kind, payload, family)
    pos = data.draw(st.integers(0, len(text) - 1))
    alphabet = "qpzry9x8gf2tvdw0s3jn54khce6mua7l" if kind.startswith("p2w") or kind == "p2tr" else \
        "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    replacement = data.draw(st.sampled_from([c for c in alphabet if c != text[pos]]))
    changed = text[:pos] + replacement + text[pos + 1 :]
    try:
        decoded = decode_address(changed)
    except AddressError:
        return
    # Base58Check's 4-byte checksum lets about one change in 2**32 through; bech32 guarantees it
    # for any single substitution, except inside the prefix where the change makes another prefix.
    assert decoded.script != decode_address(text).script or decoded.families != decode_address(text).families
    assert kind in ("p2pkh", "p2sh") or pos < len(text) - len(text.split("1", 1)[1])
