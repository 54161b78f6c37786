"""The Icarus codec against the byte-exact vectors of icarus.json, hypothesis round trips, the model
table, and the chip-style midstate scan the emulator hashes with."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from miner.drivers.icarus import protocol as p
from miner.drivers.kit.bits import bswap32
from miner.drivers.kit.crc import crc5

from miner.core import hashing
from miner.core.targets import chip_target, difficulty_to_target
from tests.conftest import load_vectors

V = load_vectors("icarus.json")
GENESIS = bytes.fromhex(V["genesis"]["header"])


# ------------------------------------------------------------------------------------ vectors
def test_crc5_vectors():
    for case in V["crc5"]:
        # The commands' CRC covers 27 bits of 3 bytes: the codec pads the bits past the end with zeros.
        data = bytes.fromhex(case["data"]).ljust((case["bits"] + 7) // 8, b"\0")
        assert crc5(data, case["bits"]) == int(case["crc"], 16)


def test_genesis_work_packet_and_reply():
    g = V["genesis"]
    midstate = hashing.midstate(GENESIS)
    assert [midstate[i:i + 4].hex() for i in range(0, 32, 4)] == g["midstate_words_S0_S7"]
    packet = p.work_packet(midstate, GENESIS)
    assert packet.hex() == g["work_packet"]
    decoded = p.WorkPacket.decode(packet)
    assert decoded.midstate == midstate and decoded.tail == GENESIS[64:76] and decoded.work_id == 0
    reply = p.Reply.decode(bytes.fromhex(g["reply"]))
    assert reply.n == 0x1DAC2B7C and reply.header_nonce == int.from_bytes(GENESIS[76:80], "little")
    assert p.Reply(reply.n, 0).encode().hex() == g["reply_antminer_work_id_0"]
    assert p.Reply.decode(bytes.fromhex(g["reply_antminer_work_id_0"])) == p.Reply(0x1DAC2B7C, 0)


def test_genesis_nonce_found_by_the_chip_style_scan():
    # Near the block nonce only: the whole range up to it is half a billion hashes.
    packet = p.WorkPacket.decode(bytes.fromhex(V["genesis"]["work_packet"]))
    found = hashing.scan_midstate(packet.midstate, packet.tail, 0x1DAC0000, 0x10000, chip_target(1),
                                  nonce_be=True)
    assert found == [0x1DAC2B7C]
    eighth = int(V["genesis"]["first_reply_if_8_way_split"], 16)
    assert hashing.scan_midstate(packet.midstate, packet.tail, eighth - 100, 101, chip_target(1),
                                 nonce_be=True) == [eighth]


def test_golden_packet_and_reply():
    assert p.GOLDEN_WORK.hex() == V["golden"]["work_packet"]
    assert p.GOLDEN_REPLY.hex() == V["golden"]["reply"]
    packet = p.WorkPacket.decode(p.GOLDEN_WORK)
    assert packet.encode() == p.GOLDEN_WORK
    # the only difficulty-1 nonce in [0, 0x20000), found counting N upward as the chip does
    assert hashing.scan_midstate(packet.midstate, packet.tail, 0, 0x20000, chip_target(1),
                                 nonce_be=True) == [p.GOLDEN_NONCE]


def test_work_division_probe_first_replies():
    packet = p.WorkPacket.decode(bytes.fromhex(V["work_division_probe"]["work_packet"]))
    assert packet.encode().hex() == V["work_division_probe"]["work_packet"]
    for text in V["work_division_probe"]["first_reply_by_division"].values():
        n = int(text, 16)
        assert hashing.scan_midstate(packet.midstate, packet.tail, n, 1, chip_target(1), nonce_be=True) == [n]
        # their little-endian readings are not nonces (icarus.md §A10.3)
        assert hashing.scan_midstate(packet.midstate, packet.tail, bswap32(n), 1, chip_target(1),
                                     nonce_be=True) == []


def test_command_vectors():
    c = V["commands"]
    assert p.frequency_command(p.bm1380_register(250)).hex() == c["u1_250mhz"]
    assert p.frequency_command(p.bm1380_register(200)).hex() == c["u1_200mhz"]
    u3 = p.MODELS["u3"]
    for mhz in (225, 100, 150, 193.75, 196.88, 250):
        assert u3.frequency_setting(mhz)[1].hex() == c[f"u3_{mhz:g}mhz"]
    assert p.MODELS["u1"].frequency_setting(250) == (250.0, bytes.fromhex(c["u1_250mhz"]))
    assert u3.frequency_setting(100)[1].hex() == c["compac_start_100mhz"]
    for mv in (725, 750, 775, 800, 850):
        assert p.voltage_command(mv).hex() == c[f"u3_volt_{mv}mv"]
        assert p.decode_command(bytes.fromhex(c[f"u3_volt_{mv}mv"])) == p.VoltageCommand(mv)
    assert p.decode_command(bytes.fromhex(c["u3_225mhz"])) == p.FrequencyCommand(0x0882)
    assert p.decode_command(bytes.fromhex("84000400")) == p.ReadCommand(bytes.fromhex("84000400"))


def test_bad_commands_are_not_commands():
    good = bytes.fromhex(V["commands"]["u3_225mhz"])
    assert p.decode_command(good[:3] + bytes([good[3] ^ 1])) is None  # CRC
    assert p.decode_command(b"\x00" + good[1:]) is None
    assert p.decode_command(good[:3]) is None


# ------------------------------------------------------------------------------------ models
def test_u3_table_decodes_to_its_own_frequencies():
    for mhz, reg in p.U3_TABLE:
        assert p.bm1382_frequency(reg) == pytest.approx(mhz, abs=0.01)
    assert p.u3_register(230) == (225, 0x0882)  # the last entry at or below, as cgminer picks


def test_bm1380_register_round_trip():
    for mhz in (125, 200, 250, 300, 400, 500):
        assert p.bm1380_frequency(p.bm1380_register(mhz)) == pytest.approx(mhz)


def test_model_rates_and_ranges():
    u3, u1, be = p.MODELS["u3"], p.MODELS["u1"], p.MODELS["erupter"]
    assert u3.hashrate() == pytest.approx(225 / 3.2e-9)
    assert u3.hashrate(100) / u3.hashrate(200) == pytest.approx(0.5)
    assert u1.hashrate(200) == pytest.approx(1.6e9)
    assert be.hashrate() == pytest.approx(336e6, rel=0.01)
    with pytest.raises(ValueError, match="outside the Antminer U3's range 100-250 MHz"):
        u3.frequency_setting(300)
    with pytest.raises(ValueError, match="fixed clock"):
        be.check_frequency(300)
    assert p.model_named("antminer-u3") is u3
    assert p.model_named("avalon-nano1").usb_ids[0].vid == 0x1FC9
    with pytest.raises(ValueError, match="unknown Icarus model"):
        p.model_named("s9")


def test_engine_split():
    assert p.engine_ranges(1) == [(0, 1 << 32)]
    assert p.engine_ranges(2) == [(0, 1 << 31), (1 << 31, 1 << 31)]
    assert p.hashes_done(0x80000005, 2) == 12
    with pytest.raises(ValueError):
        p.engine_ranges(3)


def test_nonce_target():
    assert p.nonce_target(1) == (1 << 224) - 1
    assert p.nonce_target(0.001) == difficulty_to_target(0.001)


# ------------------------------------------------------------------------------------ round trips
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=12, max_size=12), st.integers(0, 255))
def test_work_packet_round_trip(midstate, tail, work_id):
    packet = p.WorkPacket(midstate, tail, work_id)
    data = packet.encode()
    assert len(data) == p.WORK_SIZE and data[32:51] == bytes(19)
    assert p.WorkPacket.decode(data) == packet


@given(st.integers(0, 0xFFFFFFFF), st.none() | st.integers(0, 30))
def test_reply_round_trip(n, work_id):
    reply = p.Reply(n, work_id)
    assert p.Reply.decode(reply.encode()) == reply
    assert bswap32(reply.header_nonce) == n


@given(st.lists(st.integers(0, 0xFFFFFFFF), max_size=20), st.integers(1, 9))
def test_framer_cuts_any_split_of_the_stream(values, piece):
    stream = b"".join(p.Reply(v, v % 31).encode() for v in values)
    framer = p.ReplyFramer(p.ANT_REPLY_SIZE)
    got = []
    for i in range(0, len(stream), piece):
        got += framer.feed(stream[i:i + piece])
    assert [r.n for r in got] == values and framer.pending == 0


@given(st.integers(0, 0xFFFF))
def test_frequency_command_round_trip(reg):
    assert p.decode_command(p.frequency_command(reg)) == p.FrequencyCommand(reg)


@given(st.integers(0, 999))
def test_voltage_command_round_trip(mv):
    assert p.decode_command(p.voltage_command(mv)) == p.VoltageCommand(mv)


@given(st.binary(min_size=80, max_size=80), st.integers(0, (1 << 32) - 4096))
def test_midstate_scan_matches_the_header_scan(header, start):
    easy = difficulty_to_target(1 / 512)  # about 8 hits in 4096
    ms = hashing.midstate(header)
    le = hashing.scan_midstate(ms, header[64:76], start, 4096, easy, nonce_be=False)
    assert le == hashing.scan(header, start, 4096, easy)
    # counting N (big-endian) finds exactly the headers whose hash meets the target
    for n in hashing.scan_midstate(ms, header[64:76], start, 4096, easy, nonce_be=True):
        full = header[:76] + n.to_bytes(4, "big")
        assert int.from_bytes(hashing.sha256d(full), "little") <= easy


def test_midstate_scan_on_every_engine(engine):
    packet = p.WorkPacket.decode(p.GOLDEN_WORK)
    assert hashing.scan_midstate(packet.midstate, packet.tail, 0, 0x20000, chip_target(1),
                                 engine, nonce_be=True) == [p.GOLDEN_NONCE]
