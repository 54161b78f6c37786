"""The BM13xx codec against the byte-exact vectors of tests/vectors/bm13xx.json, the
worked examples of bm13xx.md, and hypothesis round trips of every frame type."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from miner.drivers.bm13xx import protocol as p
from miner.drivers.kit.crc import crc5, crc16_ccitt_false

from miner.core import hashing
from miner.core.targets import hash_to_int
from tests.conftest import load_vectors

V = load_vectors("bm13xx.json")
# The later chips' frames (BM1397 counters, BM1372/73, BM1362), each naming its source, beside the shared copy.
LATER = load_vectors("bm13xx_sources.json")["command_frames"]
GENESIS = load_vectors("headers.json")["genesis"]
HEADER = bytes.fromhex(GENESIS["header"])
NONCE = GENESIS["nonce"]
NEW_CHIPS = ["bm1366", "bm1368", "bm1370"]
ALL_CHIPS = ["bm1397", *NEW_CHIPS]


def test_crc_check_values():
    assert crc5(b"123456789") == int(V["crc_checks"]["crc5_123456789"], 16)
    assert crc16_ccitt_false(b"123456789") == int(V["crc_checks"]["crc16_ccitt_false_123456789"], 16)


def test_scan_from_a_midstate_equals_the_header_scan(engine):
    header = bytes(range(76)) + bytes(4)
    target = 1 << 244
    expected = hashing.scan(header, 0, 1 << 18, target, engine)
    assert expected  # ~4 hits expected per 2**18 at this target; the fixed header has some
    assert hashing.scan_midstate(hashing.midstate(header), header[64:76], 0, 1 << 18, target, engine) == expected


def test_crc5_by_hand_and_partial_bits():
    assert crc5(bytes.fromhex("53050000")) == 0x03
    # a whole reply including its CRC byte leaves a zero register
    reply = bytes.fromhex("aa55139718000000" "06")
    assert crc5(reply[2:]) == 0
    with pytest.raises(ValueError):
        crc5(b"\x00", 9)


@pytest.mark.parametrize("vector", V["command_frames"] + LATER, ids=lambda v: v["name"])
def test_command_frames(vector):
    frame = bytes.fromhex(vector["frame"])
    command = p.decode_command(frame)
    assert p.encode_command(command) == frame


def test_command_constructors_give_the_vector_frames():
    frames = {v["name"]: bytes.fromhex(v["frame"]) for v in V["command_frames"]}
    assert p.encode_command(p.read_register(p.REG_CHIP_ID)) == frames["read_chip_id_all"]
    assert p.encode_command(p.chain_inactive()) == frames["chain_inactive"]
    assert p.encode_command(p.set_address(0x80)) == frames["set_address_0x80"]
    assert p.encode_command(p.read_register(0x1C, chip=0x40)) == frames["read_reg_0x1c_chip_0x40"]
    assert p.encode_command(p.write_register(0x18, 0x7A31, chip=0x40)) == frames["write_chip_0x40_reg_0x18_0x00007a31"]
    assert p.encode_command(p.write_register(p.REG_VERSION_MASK, p.version_mask_register(0x1FFFE000))) == \
        frames["write_all_version_mask_0x9000ffff"]
    assert p.encode_command(p.write_register(p.REG_TICKET_MASK, p.ticket_mask(256))) == \
        frames["write_all_ticket_mask_0xff"]


def test_init_frames_of_the_facts_file():
    # §3.2-3.5 worked frames, rebuilt from the chip tables
    expected = {
        "bm1397": ["55aa51090084000000001 1", "55aa5109002000000001 02", "55aa5109003c80008074 10",
                   "55aa510900 68c0700111 00", "55aa51090028 0600000f 18", "55aa510900 70 0f0f0f00 19"],
        "bm1366": ["55aa510900a800070000 03", "55aa51090018ff0fc100 00", "55aa5109003c80008540 0c",
                   "55aa5109003c80008020 19", "55aa51090054 00000003 1d", "55aa51090058 02111111 06"],
        "bm1370": ["55aa51090018f000c100 04", "55aa5109003c80008b00 12", "55aa5109003c8000800c 11",
                   "55aa51090058 00011111 0d"],
    }
    for name, frames in expected.items():
        chip = p.CHIPS[name]
        built = {p.encode_command(p.write_register(reg, value)) for reg, value in chip.broadcast_init}
        for text in frames:
            assert bytes.fromhex(text.replace(" ", "")) in built, (name, text)
    per_chip = {p.encode_command(p.write_register(reg, value, chip=0))
                for reg, value in p.CHIPS["bm1366"].per_chip_init}
    for text in ["55aa410900a8000701f015", "55aa41090018f000c1000c", "55aa4109003c800085 4004",
                 "55aa4109003c80008020 11", "55aa4109003c800082aa05"]:
        assert bytes.fromhex(text.replace(" ", "")) in per_chip
    bm1370 = {p.encode_command(p.write_register(reg, value)) for reg, value in p.CHIPS["bm1370"].per_chip_init}
    for text in ["55aa510900b900004480 0d", "55aa51090054 00000002 18", "55aa5109003c80008dee 1b"]:
        assert bytes.fromhex(text.replace(" ", "")) in bm1370
    # baud switches
    assert p.encode_command(p.write_register(0x18, p.CHIPS["bm1397"].fast_baud_value)).hex() == "55aa510900180000603100"
    assert p.encode_command(p.write_register(0x28, p.CHIPS["bm1366"].fast_baud_value)).hex() == "55aa510900281130020003"


@pytest.mark.parametrize(("difficulty", "frame"), [
    (1, "55aa51090014000000001c"), (16, "55aa5109001400000 0f01e"), (64, "55aa51090014000000fc07"),
    (256, "55aa51090014000000ff08"), (512, "55aa51090014000080ff04"), (1000, "55aa51090014000080ff04"),
    (1024, "55aa510900140000c0ff02"), (4096, "55aa510900140000f0ff12"), (65536, "55aa510900140000ffff17")])
def test_ticket_mask_frames(difficulty, frame):
    assert p.encode_command(p.write_register(p.REG_TICKET_MASK, p.ticket_mask(difficulty))) == \
        bytes.fromhex(frame.replace(" ", ""))
    assert p.ticket_mask_difficulty(p.ticket_mask(difficulty)) == p.ticket_difficulty(difficulty)


@pytest.mark.parametrize(("chip", "mhz", "frame"), [
    ("bm1397", 425, "55aa510900084044022107"),
    ("bm1366", 56.25, "55aa51090008 40bd0265 01"), ("bm1366", 200, "55aa5109000840a0024114"),
    ("bm1366", 485, "55aa5109000850c202401c"), ("bm1368", 490, "55aa5109000850c4024006"),
    ("bm1370", 525, "55aa5109000840a8023003"), ("bm1370", 600, "55aa5109000850c0023005")])
def test_pll_frames(chip, mhz, frame):
    info = p.CHIPS[chip]
    value = info.pll_register(mhz)
    assert p.encode_command(p.write_register(p.REG_PLL0, value)) == bytes.fromhex(frame.replace(" ", ""))
    assert info.pll_mhz(value) == pytest.approx(mhz)


def test_bm1397_pll_450_matches_esp_miner_unit_test():
    assert p.CHIPS["bm1397"].pll_register(450) == 0x40480221  # FBDIV 72, REFDIV 2, 2, 1


def test_frequency_ramp_steps_and_ends_on_target():
    ramp = p.frequency_ramp(56.25, 485)
    assert ramp[-1] == 485 and all(b - a <= 6.25 + 1e-9 for a, b in zip([56.25, *ramp], ramp, strict=False))
    assert p.frequency_ramp(485, 400)[-1] == 400


def _genesis_midstate_job(job_id=4):
    return p.MidstateJob(job_id, 0x1D00FFFF, 0x495FAB29, HEADER[64:68], (hashing.midstate(HEADER),))


def _genesis_header_job(job_id):
    return p.HeaderJob(job_id, 0x1D00FFFF, 0x495FAB29, HEADER[36:68], HEADER[4:36], 1)


def test_bm1397_genesis_job_frame():
    frame = bytes.fromhex(V["job_frames"]["bm1397_genesis_job4_one_midstate"])
    job = _genesis_midstate_job()
    assert job.encode() == frame
    assert p.decode_midstate_job(frame) == job
    # the midstate words are those of the vector file, and the chip's hash from it is the block's
    assert job.midstates[0].hex() == "".join(GENESIS["midstate_words_S0_S7"])
    assert hashing.scan_midstate(job.midstates[0], job.tail, NONCE, 1, 1 << 256 - 1) == [NONCE]
    # the 152-byte ESP-Miner form with zero slots 1..3 (LEN 0x96, CRC 21 6B)
    four = job.encode(slots=4)
    assert len(four) == 152 and four[3] == 0x96 and four[-2:] == b"\x21\x6b"
    assert p.decode_midstate_job(four) == job  # the count byte says which slots are real


@pytest.mark.parametrize(("name", "job_id"), [("bm1366_genesis_job8", 8), ("bm1368_bm1370_genesis_job24", 24)])
def test_header_job_frames(name, job_id):
    frame = bytes.fromhex(V["job_frames"][name])
    job = _genesis_header_job(job_id)
    assert job.encode() == frame
    decoded = p.decode_header_job(frame)
    assert decoded == job and decoded.header(nonce=NONCE) == HEADER
    # cgminer's LEN 0x36 gives CRC 0C F3 (job 8)
    if job_id == 8:
        assert job.encode(length=0x36)[-2:] == b"\x0c\xf3"


def test_first_job_ids_follow_esp_miner():
    assert p.CHIPS["bm1397"].next_job_id(0) == 4
    assert p.CHIPS["bm1366"].next_job_id(0) == 8
    ids, j = [], 0
    for _ in range(16):
        j = p.CHIPS["bm1370"].next_job_id(j)
        ids.append(j)
    assert ids[:6] == [24, 48, 72, 96, 120, 16] and len(set(ids)) == 16 and ids[-1] == 0


@pytest.mark.parametrize(("vector", "chip", "job_id"), [
    ("bm1397_job4_midstate0", "bm1397", 4), ("bm1366_job8_core0_vbits0", "bm1366", 8),
    ("bm1368_bm1370_job24_core0", "bm1368", 24), ("bm1368_bm1370_job24_core0", "bm1370", 24)])
def test_genesis_nonce_replies(vector, chip, job_id):
    frame = bytes.fromhex(next(v["frame"] for v in V["nonce_replies_genesis"] if v["name"] == vector))
    info = p.CHIPS[chip]
    reply = p.NonceReply(NONCE, info.job_byte(job_id, 0), 0 if info.long_replies else None)
    assert p.encode_reply(reply, info.long_replies) == frame
    decoded = p.decode_reply(frame)
    assert decoded == reply
    assert info.split_job_byte(decoded.job_byte) == (job_id, 0)
    assert crc5(frame[2:]) == 0
    # §8.3: core 14, chip field 0xD6
    assert p.core_field(decoded.wire_value) == 14 and p.chip_field(decoded.wire_value) == 0xD6
    assert p.chip_index(decoded.wire_value, 1) == 0


def test_captured_replies_decode():
    chip_id = p.decode_reply(bytes.fromhex("aa55139718000000" "06"))
    assert chip_id == p.RegisterReply(0x13971800, 0, 0)
    assert p.decode_reply(bytes.fromhex("aa551368000000000000" "0f")) == p.RegisterReply(0x13680000, 0, 0)
    n = p.decode_reply(bytes.fromhex("aa5597c328b60163" "9c"))
    assert p.CHIPS["bm1397"].split_job_byte(n.job_byte) == (0x60, 3)
    n = p.decode_reply(bytes.fromhex("aa552fd596ce029394fb" "86"))
    assert p.CHIPS["bm1366"].split_job_byte(n.job_byte) == (0x90, 3)
    assert p.rolled_version(0, n.version_bits) == 0x129F6000
    n = p.decode_reply(bytes.fromhex("aa550735cdcf025e002e" "96"))
    assert p.CHIPS["bm1370"].split_job_byte(n.job_byte) == (0x28, 14)
    assert p.rolled_version(0, n.version_bits) == 0x0005C000
    for text in ("aa55136600000000000005", "aa55137000000000000010", "aa55136600000000" "0c"):
        frame = bytes.fromhex(text)
        assert p.encode_reply(p.decode_reply(frame), len(frame) == 11) == frame
    with pytest.raises(ValueError):
        p.decode_reply(bytes.fromhex("aa55139718000000" "07"))


def test_ticket_mask_nonce_rule():
    # the genesis hash (share difficulty ~2536) passes ticket masks up to 2048, not 4096
    value = hash_to_int(hashing.sha256d(HEADER))
    assert value <= p.report_target(2048) and value > p.report_target(4096)
    assert p.report_target(1) == (1 << 224) - 1


def test_increment_within_mask():
    assert p.increment_in_mask(0x20000004, 0x00FFFF00) == 0x20000104
    assert p.increment_in_mask(0x20000204, 0x00FFFF00) == 0x20000304
    assert p.increment_in_mask(0x3FFFE000, 0x1FFFE000) == 0x20000000  # wraps inside the mask


# ------------------------------------------------------------------------------------ round trips
byte = st.integers(0, 255)
u32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def commands(draw):
    cmd = draw(st.sampled_from([p.CMD_SET_ADDRESS, p.CMD_WRITE, p.CMD_READ, p.CMD_INACTIVE]))
    broadcast = draw(st.booleans())
    return p.Command(cmd, broadcast, 0 if broadcast else draw(byte), draw(byte),
                     draw(u32) if cmd == p.CMD_WRITE else None)


@given(commands())
def test_command_round_trip(command):
    frame = p.encode_command(command)
    assert p.decode_command(frame) == command
    assert list(p.CommandParser(False).feed(frame)) == [command]


@given(byte, u32, u32, st.binary(min_size=4, max_size=4), st.lists(st.binary(min_size=32, max_size=32),
       min_size=1, max_size=4), u32)
def test_midstate_job_round_trip(job_id, nbits, ntime, tail, mids, start):
    job = p.MidstateJob(job_id, nbits, ntime, tail, tuple(mids), start)
    frame = job.encode()
    assert len(frame) == 24 + 32 * len(mids)
    assert p.decode_midstate_job(frame) == job
    assert list(p.CommandParser(False).feed(frame)) == [job]


@given(byte, u32, u32, st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32), u32,
       st.sampled_from([None, 0x36, 0x56, 0xFF]))
def test_header_job_round_trip(job_id, nbits, ntime, root, prev, version, length):
    job = p.HeaderJob(job_id, nbits, ntime, root, prev, version)
    frame = job.encode(length)
    assert len(frame) == 88
    assert p.decode_header_job(frame) == job
    # the chip takes 88 bytes whatever LEN says
    assert list(p.CommandParser(True).feed(frame + frame)) == [job, job]


@given(st.sampled_from(ALL_CHIPS), u32, st.integers(0, 127), st.integers(0, 15), st.integers(0, 0xFFFF), byte)
def test_nonce_reply_round_trip(chip, nonce, job_id, index, vbits, b6):
    info = p.CHIPS[chip]
    job_id = job_id // info.job_id_step * info.job_id_step if info.core_bits < 4 else job_id & 0x78
    reply = p.NonceReply(nonce, info.job_byte(job_id, index), vbits if info.long_replies else None, b6)
    frame = p.encode_reply(reply, info.long_replies)
    assert p.decode_reply(frame) == reply
    assert info.split_job_byte(reply.job_byte) == (job_id, index & ((1 << info.core_bits) - 1))
    assert list(p.ReplyParser(info.long_replies).feed(frame)) == [reply]


@given(u32, byte, byte, st.booleans())
def test_register_reply_round_trip(value, chip, reg, long):
    reply = p.RegisterReply(value, chip, reg)
    assert p.decode_reply(p.encode_reply(reply, long)) == reply


@given(st.lists(st.tuples(u32, byte, byte), min_size=1, max_size=5), st.binary(max_size=20),
       st.integers(1, 7), st.booleans())
def test_reply_parser_resynchronises(replies, garbage, split, long):
    frames = [p.encode_reply(p.RegisterReply(*r), long) for r in replies]
    stream = garbage.replace(b"\xaa", b"\x00") + frames[0] + b"\x13" + b"".join(frames[1:])
    parser = p.ReplyParser(long)
    out = []
    for i in range(0, len(stream), split):
        out += parser.feed(stream[i : i + split])
    good = [x for x in out if not isinstance(x, p.BadFrame)]
    assert good == [p.RegisterReply(*r) for r in replies]


def test_reply_parser_counts_a_bad_crc_and_finds_the_next_frame():
    good = p.encode_reply(p.RegisterReply(0x13660000, 0, 0), True)
    bad = good[:-1] + bytes([good[-1] ^ 1])
    out = list(p.ReplyParser(True).feed(bad + good))
    assert [type(x).__name__ for x in out if not isinstance(x, p.BadFrame) or x.reason == "crc"] == \
        ["BadFrame", "RegisterReply"]


@given(st.floats(50, 800), st.sampled_from(ALL_CHIPS))
def test_pll_round_trip(mhz, chip):
    info = p.CHIPS[chip]
    value = info.pll_register(mhz)
    got = info.pll_mhz(value)
    assert abs(got - mhz) <= 12.5  # the nearest the dividers reach
    assert info.pll_register(got) == value or abs(info.pll_mhz(info.pll_register(got)) - got) < 1e-6


@given(st.integers(1, 1 << 31))
def test_ticket_mask_round_trip(difficulty):
    assert p.ticket_mask_difficulty(p.ticket_mask(difficulty)) == p.ticket_difficulty(difficulty) <= difficulty


@given(st.integers(0, 0xFFFF).map(lambda v: v << 13))
def test_version_mask_register_round_trip(mask):
    assert p.register_version_mask(p.version_mask_register(mask)) == mask


def test_header_job_rolled_version_hash():
    # the header an emulator hashes for V is the job's header with version base | V << 13
    job = _genesis_header_job(8)
    assert struct.unpack("<I", job.header(p.rolled_version(1, 3))[:4])[0] == 1 | 3 << 13
