"""Block templates without a node: BIP34 heights, the coinbase, the witness commitment, blocks."""

import hashlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miner.core.work import build_header
from miner.sources.node.template import (
    EXTRANONCE2_SIZE,
    MAX_HEIGHT,
    MAX_TAG,
    TemplateError,
    bip34_height,
    parse_template,
    prepare,
    script_number,
    with_witness,
)

PAYOUT = bytes.fromhex("0014751e76e8199196d454941c45d1b3a323f1433bd6")
EMPTY_COMMITMENT = "6a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf9"  # gbt.md §2.3


def dsha(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


# ------------------------------------------------------------------------------------ BIP34
# docs/gbt.md §2.2: heights and the first bytes Core expects
@pytest.mark.parametrize(("height", "prefix"), [
    (1, "51"), (2, "52"), (16, "60"), (17, "0111"), (127, "017f"), (128, "028000"), (255, "02ff00"),
    (256, "020001"), (32767, "02ff7f"), (32768, "03008000"), (791433, "0389130c"), (840000, "0340d10c"),
])
def test_bip34_height_table(height, prefix):
    assert bip34_height(height).hex() == prefix


def decode_script_number(data: bytes) -> int:
    """The reading side of script numbers (as the interpreter does it), independent of the encoder."""
    if not data:
        return 0
    value = int.from_bytes(data, "little")
    if data[-1] & 0x80:
        return -(value & ~(0x80 << (8 * (len(data) - 1))))
    return value


@given(st.integers(0, 2**31))
def test_bip34_height_follows_script_number_rules(height):
    encoded = bip34_height(height)
    if height == 0:
        assert encoded == b"\x00"  # OP_0
    elif height <= 16:
        assert encoded == bytes([0x50 + height])  # OP_1 .. OP_16, as Core's script builder writes them
    else:
        size = encoded[0]
        assert 1 <= size <= 5 and len(encoded) == 1 + size  # a direct push of the number
        number = encoded[1:]
        assert decode_script_number(number) == height
        # minimal: no byte could be dropped and still read the same number
        assert decode_script_number(number[:-1]) != height
        assert not (number[-1] == 0 and not number[-2] & 0x80)


@given(st.integers(-(2**40), 2**40))
def test_script_number_round_trips_both_signs(n):
    assert decode_script_number(script_number(n)) == n


# ------------------------------------------------------------------------------------ templates
def template(**overrides):
    raw = {
        "version": 0x20000000, "previousblockhash": "11" * 32, "bits": "207fffff", "curtime": 1_700_000_000,
        "height": 1, "coinbasevalue": 5_000_000_000, "transactions": [], "rules": [], "longpollid": "x" * 72,
        "default_witness_commitment": EMPTY_COMMITMENT,
    }
    raw.update(overrides)
    return parse_template(raw)


def parse_tx(data: bytes, pos: int = 0):
    """Minimal transaction reader: (inputs, outputs, witness items, end, stripped bytes)."""
    def varint():
        nonlocal pos
        n = data[pos]
        pos += 1
        if n < 0xFD:
            return n
        size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[n]
        pos += size
        return int.from_bytes(data[pos - size : pos], "little")

    def take(n):
        nonlocal pos
        pos += n
        return data[pos - n : pos]

    start = pos
    version = take(4)
    segwit = data[pos : pos + 2] == b"\x00\x01"
    if segwit:
        take(2)
    body_start = pos
    inputs = []
    for _ in range(varint()):
        prevout = take(36)
        script = take(varint())
        inputs.append((prevout, script, take(4)))
    outputs = []
    for _ in range(varint()):
        value = struct.unpack("<q", take(8))[0]
        outputs.append((value, take(varint())))
    body_end = pos
    witness = []
    if segwit:
        for _ in inputs:
            witness.append([take(varint()) for _ in range(varint())])
    locktime = take(4)
    stripped = version + data[body_start:body_end] + locktime
    return inputs, outputs, witness, pos, stripped if segwit else data[start:pos]


def test_coinbase_layout_before_segwit():
    prepared = prepare(template(height=300, rules=[]), PAYOUT, b"/tag/")
    job = prepared.job("j", b"\xaa" * 4, "node", clean=True)
    coinbase = job.coinbase(b"\xbb" * EXTRANONCE2_SIZE)
    inputs, outputs, witness, end, _ = parse_tx(coinbase)
    assert end == len(coinbase) and not witness
    prevout, script_sig, sequence = inputs[0]
    assert prevout == bytes(32) + b"\xff" * 4 and sequence == b"\xff" * 4
    extranonce = bytes([4 + EXTRANONCE2_SIZE]) + b"\xaa" * 4 + b"\xbb" * EXTRANONCE2_SIZE
    assert script_sig == bytes.fromhex("022c01") + extranonce + b"\x05/tag/"
    assert outputs == [(5_000_000_000, PAYOUT)]  # bcoin offers a commitment before activation; not used
    assert prepared.commitment is None
    assert job.share_target == job.network_target == 0x7FFFFF << 232
    assert job.prevhash == b"\x11" * 32 and job.height == 300 and job.ntime == 1_700_000_000


def test_coinbase_after_segwit_commits_and_carries_the_reserved_value():
    prepared = prepare(template(rules=["csv", "!segwit"]), PAYOUT)
    assert prepared.commitment.hex() == EMPTY_COMMITMENT
    job = prepared.job("j", bytes(4), "node", clean=True)
    coinbase = job.coinbase(bytes(EXTRANONCE2_SIZE))
    _, outputs, _, _, _ = parse_tx(coinbase)
    assert outputs[1] == (0, bytes.fromhex(EMPTY_COMMITMENT))
    inputs, outputs2, witness, end, stripped = parse_tx(with_witness(coinbase))
    assert stripped == coinbase and outputs2 == outputs and witness == [[bytes(32)]]


def test_scriptsig_stays_within_consensus_limits_at_the_extremes():
    for height, tag in ((1, b""), (MAX_HEIGHT, b"x" * MAX_TAG)):
        job = prepare(template(height=height), PAYOUT, tag).job("j", bytes(4), "node", True)
        script_sig = parse_tx(job.coinbase(bytes(EXTRANONCE2_SIZE)))[0][0][1]
        assert 2 <= len(script_sig) <= 100
    with pytest.raises(ValueError, match="at most 64"):
        prepare(template(), PAYOUT, b"x" * (MAX_TAG + 1))


def fake_tx(n: int, witness: bool) -> dict:
    stripped = struct.pack("<I", 2) + bytes([1]) + bytes([n]) * 32 + b"\0\0\0\0" + b"\0" + b"\xff" * 4 + \
        b"\x01" + struct.pack("<q", 1000) + b"\x01\x51" + b"\0\0\0\0"
    data = stripped[:4] + b"\0\x01" + stripped[4:-4] + b"\x01\x01\x01" + stripped[-4:] if witness else stripped
    return {"data": data.hex(), "txid": dsha(stripped)[::-1].hex(), "hash": dsha(data)[::-1].hex()}


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_block_serialization_merkle_root_and_witness_commitment(count):
    txs = [fake_tx(i, witness=i % 2 == 0) for i in range(count)]
    prepared = prepare(template(transactions=txs, rules=["!segwit"]), PAYOUT)
    job = prepared.job("j", b"\x01\x02\x03\x04", "node", clean=True)
    extranonce2 = bytes(range(5, 5 + EXTRANONCE2_SIZE))
    work = job.make_work(1, extranonce2)
    header = work.header_for(12345)
    block = prepared.block(header, job.coinbase(extranonce2))
    assert block[:80] == header and block[80] == count + 1
    pos, txids, wtxids = 81, [], []
    for i in range(count + 1):
        _, outputs, witness, end, stripped = parse_tx(block, pos)
        txids.append(dsha(stripped))
        wtxids.append(bytes(32) if i == 0 else dsha(block[pos:end]))
        if i == 0:
            coinbase_outputs, coinbase_witness = outputs, witness
        pos = end
    assert pos == len(block)
    assert [t[::-1].hex() for t in txids[1:]] == [t["txid"] for t in txs]

    def root(leaves):
        while len(leaves) > 1:
            if len(leaves) % 2:
                leaves = [*leaves, leaves[-1]]
            leaves = [dsha(leaves[i] + leaves[i + 1]) for i in range(0, len(leaves), 2)]
        return leaves[0]

    assert header == build_header(job.version, job.prevhash, root(txids), job.ntime, job.nbits, 12345)
    assert coinbase_witness == [[bytes(32)]]
    commitment = b"\x6a\x24\xaa\x21\xa9\xed" + dsha(root(wtxids) + bytes(32))
    assert coinbase_outputs[-1] == (0, commitment)


def test_a_witness_transaction_needs_the_commitment_even_if_the_rules_do_not_say_segwit():
    assert prepare(template(transactions=[fake_tx(1, True)], rules=[]), PAYOUT).commitment is not None
    assert prepare(template(transactions=[fake_tx(1, False)], rules=[]), PAYOUT).commitment is None


@pytest.mark.parametrize(("overrides", "message"), [
    ({"coinbasevalue": None}, "no coinbasevalue"),
    ({"rules": ["!signet"]}, "does not implement: !signet"),
    ({"previousblockhash": "zz"}, "previousblockhash is not hex"),
    ({"bits": "nothex"}, "bits is not 8 hex digits"),
])
def test_unusable_templates_are_one_line_errors(overrides, message):
    raw = {"version": 1, "previousblockhash": "11" * 32, "bits": "207fffff", "curtime": 1, "height": 1,
           "coinbasevalue": 1, "transactions": []}
    raw.update(overrides)
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(TemplateError, match=message):
        parse_template(raw)


def test_cpu_chunks_shrink_only_where_blocks_are_cheap():
    from miner.core.targets import DIFF1_TARGET, nbits_to_target
    from miner.sources.node.gbt import MAX_CHUNK, MIN_CHUNK, chunk_for_target

    regtest = chunk_for_target(nbits_to_target(0x207FFFFF))  # a block every ~2 hashes
    assert MIN_CHUNK <= regtest <= 1 << 14
    assert chunk_for_target(DIFF1_TARGET) == MAX_CHUNK  # testnet's minimum difficulty and up
    assert chunk_for_target(nbits_to_target(0x17034219)) == MAX_CHUNK
