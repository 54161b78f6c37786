"""The drivers' shared kit: CRC vectors from tests/vectors/*.json and the docs, the C-backed CRC-16s
against a bitwise reference written here, and the bit helpers."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from miner.drivers.kit.bits import bswap32, rev8, reverse_words
from miner.drivers.kit.crc import crc5, crc16_ccitt_false, crc16_xmodem

from tests.conftest import load_vectors

BM13XX = load_vectors("bm13xx.json")
BM13XX_LATER = load_vectors("bm13xx_sources.json")["command_frames"]
ICARUS = load_vectors("icarus.json")
AVALON = load_vectors("avalon.json")


def reference_crc16(data: bytes, init: int) -> int:
    """Poly 0x1021, MSB first, no reflection or final XOR, one bit at a time (the loop the codecs
    used before binascii.crc_hqx)."""
    crc = init
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def reference_crc5(data: bytes, bits: int) -> int:
    """CRC-5 as polynomial arithmetic over GF(2): (init * x^bits + message * x^5) mod x^5 + x^2 + 1."""
    message = int.from_bytes(data, "big") >> (len(data) * 8 - bits)
    value = (0x1F << bits) ^ (message << 5)
    for shift in range(value.bit_length() - 6, -1, -1):
        if value >> (shift + 5) & 1:
            value ^= 0b100101 << shift
    return value


# ------------------------------------------------------------------------------------ CRC-5
def test_crc5_check_value_and_the_worked_example():
    assert crc5(b"123456789") == int(BM13XX["crc_checks"]["crc5_123456789"], 16)
    assert crc5(bytes.fromhex("53050000")) == 0x03  # docs/bm13xx.md §2.1: chain inactive


@pytest.mark.parametrize("vector", BM13XX["command_frames"] + BM13XX_LATER, ids=lambda v: v["name"])
def test_crc5_of_every_bm13xx_command_vector(vector):
    frame = bytes.fromhex(vector["frame"])
    assert crc5(frame[2:-1]) == frame[-1]


@pytest.mark.parametrize("vector", BM13XX["nonce_replies_genesis"], ids=lambda v: v["name"])
def test_crc5_of_the_bm13xx_reply_vectors_over_all_bits_but_the_last_five(vector):
    body = bytes.fromhex(vector["frame"])[2:]
    assert crc5(body, len(body) * 8 - 5) == body[-1] & 0x1F


@pytest.mark.parametrize("case", ICARUS["crc5"], ids=lambda c: c["data"])
def test_crc5_of_the_antminer_command_vectors(case):
    data = bytes.fromhex(case["data"]) + b"\0"  # 27 bits: the bits past the 3 bytes count as zero
    assert crc5(data, case["bits"]) == int(case["crc"], 16)


def test_crc5_refuses_more_bits_than_it_has():
    with pytest.raises(ValueError):
        crc5(b"\x00", 9)


@given(st.binary(max_size=16), st.data())
def test_crc5_equals_polynomial_division(data, draw):
    bits = draw.draw(st.integers(0, len(data) * 8))
    assert crc5(data, bits) == reference_crc5(data, bits)


# ------------------------------------------------------------------------------------ CRC-16
def test_crc16_check_values():
    assert crc16_ccitt_false(b"123456789") == int(BM13XX["crc_checks"]["crc16_ccitt_false_123456789"], 16)
    check = AVALON["crc16_xmodem_check"]
    assert crc16_xmodem(check["data_ascii"].encode()) == int(check["crc"], 16)
    assert crc16_xmodem(bytes(32)) == 0  # docs/avalon.md §B2: all-zero data has a zero CRC


@pytest.mark.parametrize("name", list(BM13XX["job_frames"]))
def test_crc16_of_the_bm13xx_job_vectors(name):
    frame = bytes.fromhex(BM13XX["job_frames"][name])
    assert crc16_ccitt_false(frame[2:-2]) == struct.unpack(">H", frame[-2:])[0]


@given(st.binary(max_size=300))
def test_crc_hqx_equals_the_bitwise_loop(data):
    assert crc16_ccitt_false(data) == reference_crc16(data, 0xFFFF)
    assert crc16_xmodem(data) == reference_crc16(data, 0)


# ------------------------------------------------------------------------------------ bits
def test_rev8_examples():
    assert [rev8(b) for b in (0x00, 0x01, 0x80, 0x0F, 0xA5, 0xFF)] == [0x00, 0x80, 0x01, 0xF0, 0xA5, 0xFF]


@given(st.integers(0, 255))
def test_rev8_is_an_involution_that_keeps_the_bit_count(byte):
    assert rev8(rev8(byte)) == byte
    assert bin(rev8(byte)).count("1") == bin(byte).count("1")
    assert rev8(byte) >> 7 == byte & 1


def test_reverse_words_example_and_refusal():
    assert reverse_words(bytes(range(8))) == bytes([4, 5, 6, 7, 0, 1, 2, 3])
    with pytest.raises(ValueError):
        reverse_words(b"abc")


@given(st.binary(max_size=64).map(lambda b: b[: len(b) // 4 * 4]))
def test_reverse_words_is_an_involution(data):
    assert reverse_words(reverse_words(data)) == data
    assert sorted(reverse_words(data)) == sorted(data)


@given(st.binary(max_size=128).map(lambda b: b[: len(b) // 4 * 4]))
def test_reverse_words_matches_the_word_by_word_definition(data):
    """The C-speed version (array of machine words) against the definition, word by word."""
    words = [data[i : i + 4] for i in range(0, len(data), 4)]
    assert reverse_words(data) == b"".join(reversed(words))
    assert reverse_words(bytearray(data)) == reverse_words(memoryview(data)) == reverse_words(data)


def test_bswap32_maps_the_wire_nonce_to_the_header_nonce():
    # The genesis nonce 0x7c2bac1d sits in the header as 1d ac 2b 7c; chips send those bytes in order.
    assert bswap32(0x1DAC2B7C) == 0x7C2BAC1D


@given(st.integers(0, 0xFFFFFFFF))
def test_bswap32_is_the_byte_reversal(value):
    assert bswap32(value).to_bytes(4, "big") == value.to_bytes(4, "big")[::-1]
    assert bswap32(bswap32(value)) == value
