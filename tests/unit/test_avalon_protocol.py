"""The Avalon codec against the byte-exact vectors in avalon.json, and hypothesis round trips of
every packet type."""

import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from miner.drivers.avalon import protocol as p
from miner.drivers.avalon import sha256
from miner.drivers.kit.crc import crc16_xmodem

from miner.core import hashing
from miner.core.dispatch import Dispatcher
from miner.core.targets import DIFF1_TARGET
from miner.core.work import Job, build_header, dsha256
from tests.conftest import load_vectors

V = load_vectors("avalon.json")
GENESIS = load_vectors("headers.json")["genesis"]
GENESIS_HEADER = bytes.fromhex(GENESIS["header"])
STRATUM = {x["name"]: bytes.fromhex(x["packet"]) for x in V["avalon7_8_genesis_stratum_job"]["packets"]}
AVALONM = {x["name"]: bytes.fromhex(x["packet"]) for x in V["avalonm_genesis_work_id_1"]}


def genesis_coinbase() -> bytes:
    tail = b"".join(STRATUM[f"COINBASE{i}"][6:38] for i in range(2, 9))
    return tail[:204]


def genesis_job() -> p.StratumJob:
    zero_root = build_header(1, bytes(32), bytes(32), 0x495FAB29, 0x1D00FFFF, 0)
    return p.StratumJob(genesis_coinbase(), 43, 4, (), p.header_bin(zero_root), p.job_id_crc("1"))


# ------------------------------------------------------------------------------------ vectors
def test_crc_check_value():
    assert crc16_xmodem(V["crc16_xmodem_check"]["data_ascii"].encode()) == int(V["crc16_xmodem_check"]["crc"], 16)
    assert crc16_xmodem(bytes(32)) == 0
    assert p.job_id_crc("1") == 0x2672


def test_sha256_with_state_matches_hashlib():
    data = bytes(range(256)) * 3
    assert sha256.finish(sha256.IV, data, len(data)) == hashlib.sha256(data).digest()
    state = sha256.state_after(data[:128])
    assert sha256.finish(state, data[128:], len(data)) == hashlib.sha256(data).digest()
    assert sha256.state_bytes(sha256.state_after(GENESIS_HEADER[:64])) == hashing.midstate(GENESIS_HEADER)


def test_avalonm_genesis_work_packets():
    first, second = p.work_packets(1, p.icarus_work(GENESIS_HEADER))
    assert first.encode() == AVALONM["WORK1"]
    assert second.encode() == AVALONM["WORK2"]
    work = p.MidstateWork.from_packets(p.decode_packet(AVALONM["WORK1"]), p.decode_packet(AVALONM["WORK2"]))
    assert work.work_id == 1 and work.work64 == p.icarus_work(GENESIS_HEADER)


def test_avalonm_nonce_and_commands():
    packet = p.decode_packet(AVALONM["NONCE_M"])
    (report,) = p.decode_nonce_m(packet)
    assert (report.work_id, report.chip, report.ntime_roll) == (1, 0, 0)
    assert p.header_nonce(report.nonce, p.NONCE_OFFSET_A3222) == GENESIS["nonce"]
    genesis_report = p.MidstateNonce(1, 0, 0, p.n_field(GENESIS["nonce"], 0x4000))
    assert p.nonce_m_packet(genesis_report).encode() == AVALONM["NONCE_M"]
    assert p.avalonm_set_volt_packet(6500).encode() == AVALONM["SET_VOLT_6500"]
    assert p.setm_packet(1_000_000).encode() == AVALONM["SETM_1000000"]
    assert p.polling_packet().encode() == AVALONM["POLLING"]
    assert p.Packet(p.DETECT).encode() == bytes.fromhex("434e10000101") + bytes(34)
    assert p.avalonm_set_freq_packet(200).encode().hex().endswith("1e2784471e2784471e278447" + "00" * 20 + "21e4")


def test_genesis_stratum_job_packet_set():
    packets = [pkt.encode() for pkt in p.job_packets(p.Family.AVALON7, genesis_job())]
    names = ["STATIC", "TARGET", "JOB_ID"] + [f"COINBASE{i}" for i in range(1, 9)] + [
        f"HEADER{i}" for i in range(1, 5)] + ["JOB_FIN"]
    assert packets == [STRATUM[n] for n in names]
    assert p.job_packets(p.Family.AVALON8, genesis_job())[-1].encode() == STRATUM["JOB_FIN"]


def test_genesis_job_rebuilt_on_the_device_side():
    assembler = p.JobAssembler(p.Family.AVALON7)
    done = [assembler.feed(p.decode_packet(raw)) for raw in STRATUM.values() if raw[2] != p.NONCE]
    job = done[-1]
    assert job is not None and job.job_id_crc == 0x2672 and job.target == DIFF1_TARGET
    header = job.header(0x1D00FFFF, nonce=GENESIS["nonce"])
    assert header == GENESIS_HEADER
    assert hashing.sha256d(header)[::-1].hex() == GENESIS["hash"]


def test_nonce_replies_of_both_generations():
    av78 = p.NonceReport.from_packet(p.Family.AVALON7, p.decode_packet(STRATUM["NONCE_AV78"]))
    assert av78 == p.NonceReport(0, 0, 0x1D00FFFF, 0, 0x1DAC2B7C, 0x2672, 0)
    assert p.header_nonce(av78.nonce) == GENESIS["nonce"]
    assert av78.to_packet(p.Family.AVALON8).encode() == STRATUM["NONCE_AV78"]
    raw4 = bytes.fromhex(V["avalon4_nonce_reply"]["packet"])
    with pytest.raises(p.PacketError):
        p.decode_packet(raw4)  # CRC low byte first: only the Avalon4 order accepts it
    av4 = p.NonceReport.from_packet(p.Family.AVALON4, p.decode_packet(raw4, crc_little_endian=True))
    assert av4 == p.NonceReport(0, 0, 0x1D00FFFF, 0, 0x1DAC6B7C, 0x2672, 0)
    assert p.header_nonce(av4.nonce, p.NONCE_OFFSET_A3222) == GENESIS["nonce"]
    assert av4.to_packet(p.Family.AVALON4).encode(p.Family.AVALON4.reply_crc_little_endian) == raw4


def test_auc_frames():
    assert p.auc_init() == bytes.fromhex("0c0000a1801a0600004b0000") + bytes(52)
    version = p.parse_auc_reply(bytes.fromhex("10000000") + b"AUC-20151208")
    assert p.auc_version(version) == "AUC-20151208"
    fin = p.Packet(p.JOB_FIN).encode()
    assert p.auc_xfer(0, fin, 0) == bytes.fromhex("300000a528000000") + fin
    assert p.auc_xfer(1, fin, 40)[:8] == bytes.fromhex("300000a528280001")
    with pytest.raises(p.PacketError):
        p.auc_version(p.parse_auc_reply(bytes.fromhex("10000000") + b"NOT-20151208"))
    with pytest.raises(p.PacketError):
        p.parse_auc_reply(bytes.fromhex("2c000000") + bytes(10))


def test_pll_tables_and_voltage_encodings():
    assert p.cpm_word(p.Family.AVALON7, 600) == 0x01363813
    assert p.cpm_word(p.Family.AVALON8, 850) == 0x00908421
    assert p.cpm_word(p.Family.AVALONM, 300) == 0x2E2B8447
    with pytest.raises(ValueError, match="MHz"):
        p.cpm_word(p.Family.AVALON7, 2000)
    assert p.avalonm_voltage_word(6500) == 0x009B and p.avalonm_voltage_word(0) == 0x00FF
    assert p.av4_voltage_word(0) == 0xFF00
    for mv in range(5000, 9001, 125):
        assert p.av4_voltage_value(p.av4_voltage_word(mv)) == mv
        assert p.avalonm_voltage_value(p.avalonm_voltage_word(mv)) == mv
    assert p.av8_voltage_level(p.av8_voltage_word(-7)) == -7


def test_model_from_version():
    assert p.model_for_version("7211804-abcdef0").family is p.Family.AVALON7
    assert p.model_for_version("8511811-abcdef0").family is p.Family.AVALON8
    assert p.model_for_version("4115070-abcdef0").nonce_offset == 0x4000
    assert p.model_for_version("3U1505-12345670").family is p.Family.AVALONM
    with pytest.raises(p.PacketError, match="not a known"):
        p.model_for_version("XX")


def test_packet_stream_resynchronises_and_drops_bad_crc():
    good = p.polling_packet().encode()
    bad = bytearray(p.Packet(p.STATUS, b"\x01").encode())
    bad[-1] ^= 1
    stream = p.PacketStream()
    events = list(stream.feed(b"\x00junk" + good[:10])) + list(stream.feed(good[10:] + bytes(bad) + good))
    packets = [e for e in events if isinstance(e, p.Packet)]
    assert packets == [p.polling_packet(), p.polling_packet()]
    assert any(isinstance(e, p.BadBytes) and "CRC" in e.reason for e in events)


# ------------------------------------------------------------------------------------ round trips
u32 = st.integers(0, 0xFFFFFFFF)
u16 = st.integers(0, 0xFFFF)
byte = st.integers(0, 255)
families = st.sampled_from([p.Family.AVALON4, p.Family.AVALON7, p.Family.AVALON8])


@given(byte, st.binary(max_size=32), byte, byte, byte, st.booleans())
def test_packet_round_trip(kind, data, opt, idx, cnt, little):
    packet = p.Packet(kind, data, opt, idx, cnt)
    raw = packet.encode(little)
    assert len(raw) == 40 and p.decode_packet(raw, little) == packet


@given(st.binary(min_size=40, max_size=40))
def test_decoding_random_bytes_never_crashes(raw):
    with contextlib.suppress(p.PacketError):
        p.decode_packet(raw)


@given(families, u16, u16, u32, u32, u32, u16, u16)
def test_nonce_report_round_trip(family, miner, chip, nonce2, roll, nonce, crc, pool):
    report = p.NonceReport(miner, chip, nonce2, roll, nonce, crc, pool)
    raw = report.to_packet(family).encode(family.reply_crc_little_endian)
    assert p.NonceReport.from_packet(family, p.decode_packet(raw, family.reply_crc_little_endian)) == report


midstate_nonces = st.builds(p.MidstateNonce, u32, st.integers(0, 254), byte, u32, byte, byte, byte)


@given(midstate_nonces, st.none() | midstate_nonces)
def test_nonce_m_round_trip(first, second):
    packet = p.decode_packet(p.nonce_m_packet(first, second).encode())
    assert p.decode_nonce_m(packet) == [first] + ([second] if second else [])


@given(u32, st.binary(min_size=64, max_size=64), byte)
def test_midstate_work_round_trip(work_id, work64, roll):
    work64 = work64[:32] + bytes(20) + work64[52:]
    a, b = p.work_packets(work_id, work64, roll)
    got = p.MidstateWork.from_packets(p.decode_packet(a.encode()), p.decode_packet(b.encode()))
    assert got == p.MidstateWork(work_id, roll, work64)


@given(st.integers(-(1 << 31), (1 << 31) - 1), *[u32] * 6, byte, byte)
def test_status7_round_trip(temp, fan, works, hw, err, slot_err, crc, miner, slot):
    status = p.Status7(temp, fan, works, hw, err, slot_err, crc, miner, slot)
    assert p.Status7.from_packet(p.decode_packet(status.to_packet().encode())) == status


@given(st.tuples(*[u32] * 8))
def test_status4_and_status_m_round_trip(fields):
    s4 = p.Status4(*fields)
    assert p.Status4.from_packet(p.decode_packet(s4.to_packet().encode(True), True)) == s4
    sm = p.StatusM(*fields)
    assert p.StatusM.from_packet(p.decode_packet(sm.to_packet().encode())) == sm


@given(st.sampled_from([p.STATUS_VOLT, p.STATUS_PLL, p.SET_VOLT, p.SET_SS]), st.lists(u32, max_size=8), byte, byte)
def test_word_list_round_trip(kind, words, idx, cnt):
    packet = p.WordList(kind, tuple(words), idx, cnt).to_packet()
    back = p.WordList.from_packet(p.decode_packet(packet.encode()), len(words))
    assert back == p.WordList(kind, tuple(words), idx, cnt)


@given(st.sampled_from([p.STATUS_LW, p.STATUS_HW]), st.lists(st.integers(0, 0xFFFFFF), max_size=10))
def test_counters24_round_trip(kind, values):
    c = p.Counters24(kind, tuple(values))
    assert p.Counters24.from_packet(p.decode_packet(c.to_packet().encode()), len(values)) == c


@given(st.builds(p.DetectAck, st.binary(min_size=8, max_size=8),
                 st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=15), u32))
def test_detect_ack_round_trip(ack):
    assert p.DetectAck.from_packet(p.decode_packet(ack.to_packet().encode())) == ack


@given(families, st.integers(0, 127))
def test_detect_round_trip(family, module_id):
    assert p.detect_module_id(p.decode_packet(p.detect_packet(family, module_id).encode())) == module_id


@given(st.builds(p.Set78, u32, st.booleans(), st.booleans(), st.just(False), st.booleans(), byte))
def test_set7_round_trip(s):
    assert p.Set78.from_packet(p.Family.AVALON7, p.decode_packet(s.to_packet(p.Family.AVALON7).encode())) == s


@given(st.builds(p.Set78, st.just(0), st.booleans(), st.booleans(), st.booleans(), st.just(False), byte))
def test_set8_round_trip(s):
    assert p.Set78.from_packet(p.Family.AVALON8, p.decode_packet(s.to_packet(p.Family.AVALON8).encode())) == s


@given(st.builds(p.Set4, u32, st.tuples(*[st.integers(0, 1023)] * 3), u32, u32,
                 st.none() | st.integers(0, 0x7FFFFFFF), byte, byte, byte))
def test_set4_round_trip(s):
    assert p.Set4.from_packet(p.decode_packet(s.to_packet().encode())) == s


@given(st.sampled_from([p.Family.AVALON7, p.Family.AVALON8]), st.data())
def test_set_pll_round_trip(family, data):
    step, low, count = p.FREQ_STEP[family], (24 if family is p.Family.AVALON7 else 50), p.PLL_COUNT[family]
    table = p.CPM_AVALON7 if family is p.Family.AVALON7 else p.CPM_AVALON8
    top = low + step * (len(table) - 1 - (0 if family is p.Family.AVALON7 else 2))
    freqs = data.draw(st.lists(st.integers(low // step, top // step).map(lambda k: k * step),
                               min_size=count, max_size=count))
    packet = p.decode_packet(p.set_pll_packet(family, 0, 4, freqs).encode())
    back = p.set_pll_frequencies(family, packet)
    # a few table words repeat; the decoded frequency then sets the same word
    assert [p.cpm_word(family, f) for f in back] == [p.cpm_word(family, f) for f in freqs]


@given(byte, st.tuples(u32, u32, u32))
def test_status_freq_round_trip(chip, words):
    s = p.StatusFreq(chip, words)
    assert p.StatusFreq.from_packet(p.decode_packet(s.to_packet().encode())) == s


@given(st.builds(p.AucInfo, u16, byte, byte, u16, byte))
def test_auc_info_round_trip(info):
    assert p.AucInfo.decode(info.encode()) == info


@given(st.sampled_from([p.AUC_RESET, p.AUC_DEINIT, p.AUC_INFO, p.AUC_INIT, p.AUC_XFER]), st.integers(0, 127),
       st.integers(0, 60), st.binary(max_size=56), u32, u32)
def test_auc_request_round_trip(request, address, rx, payload, clock, xdelay):
    if request == p.AUC_XFER:
        req = p.AucRequest(request, address, rx, payload)
    elif request == p.AUC_INIT:
        req = p.AucRequest(request, clock=clock, xdelay=xdelay)
    else:
        req = p.AucRequest(request)
    raw = req.encode()
    got, used = p.parse_auc_request(raw + b"\x00")
    assert got == req and used == len(raw)
    assert p.parse_auc_request(raw[:-1]) == (None, 0) or request == p.AUC_XFER and len(raw) <= 4


@given(st.binary(max_size=60), byte)
def test_auc_reply_round_trip(payload, status):
    assert p.parse_auc_reply(p.auc_reply(payload, status)) == p.AucReply(status, payload)


@settings(max_examples=30, deadline=None)
@given(families, st.binary(min_size=0, max_size=150), st.binary(min_size=0, max_size=100), st.integers(3, 8),
       st.lists(st.binary(min_size=32, max_size=32), max_size=4), u32, u32, st.integers(0, 0xFFFF),
       st.integers(1, (1 << 256) - 1), st.booleans(), st.data())
def test_stratum_job_round_trip_rebuilds_the_dispatchers_headers(family, coinb1, coinb2, size, branch, version, ntime,
                                                                 pool, target, restart, data):
    """Host packets -> module job -> the header the module hashes equals the one the miner core
    builds for that extranonce2 (so the share path will agree with the device)."""
    job = Job("j", bytes(range(32)), coinb1, coinb2, tuple(branch), version, 0x1D00FFFF, ntime,
              extranonce1=b"\xaa\xbb", extranonce2_size=size)
    rolled = min(size, 4)
    nonce2 = data.draw(st.integers(0, (1 << (8 * rolled)) - 1))
    high = data.draw(st.binary(min_size=size - rolled, max_size=size - rolled))
    template = bytes(rolled) + high
    header = build_header(version, job.prevhash, bytes(32), ntime, job.nbits, 0)
    sj = p.StratumJob(job.coinbase(template), len(coinb1) + 2, rolled, job.merkle_branch, p.header_bin(header),
                      p.job_id_crc("j"), pool if family is not p.Family.AVALON4 else pool, target,
                      0 if family is p.Family.AVALON4 else nonce2, 1 << 20, restart and family is not p.Family.AVALON4,
                      7)
    assembler = p.JobAssembler(family)
    results = [assembler.feed(p.decode_packet(pkt.encode())) for pkt in p.job_packets(family, sj)]
    if family is p.Family.AVALON4:
        results.append(assembler.feed(p.Packet(p.FINISH)))
    device_job = results[-1]
    assert device_job is not None and device_job.target == target and device_job.pool == pool
    assert device_job.restart == sj.restart
    expected = job.make_work(1, nonce2.to_bytes(rolled, "little") + high).header
    assert device_job.header(nonce2) == expected
    rolled_ntime = ((ntime + 5) & 0xFFFFFFFF).to_bytes(4, "little")  # wraps like the 32-bit field does
    assert dsha256(device_job.header(nonce2, 5, 77)) == dsha256(expected[:68] + rolled_ntime
                                                                + expected[72:76] + (77).to_bytes(4, "little"))


# ------------------------------------------------------------------------------------ dispatcher
def test_reserved_extranonce2_ranges_are_never_handed_out_again():
    dispatcher = Dispatcher()
    job = Job("j", bytes(32), b"\x01" * 40, b"\x02" * 20, (), 0x20000000, 0x1D00FFFF, 1, extranonce2_size=4,
              version_mask=0x1FFFE000)
    dispatcher.set_job(job)
    before = {dispatcher.next_work().extranonce2 for _ in range(40)}
    start = dispatcher.reserve_extranonce2(1 << 10)
    assert start % (1 << 10) == 0
    reserved = {job.extranonce2_for(c) for c in range(start, start + (1 << 10))}
    after = {dispatcher.next_work().extranonce2 for _ in range(100)}
    after |= {dispatcher.next_work(device_rolls_version=True).extranonce2 for _ in range(10)}
    assert not (before | after) & reserved
    second = dispatcher.reserve_extranonce2(1 << 10)
    assert second >= start + (1 << 10)
    work = dispatcher.register_work(job, job.extranonce2_for(start + 5))
    assert dispatcher.lookup(work.work_id) is work
    assert work.header == job.make_work(0, job.extranonce2_for(start + 5)).header
    assert work.work_id not in {w for w in range(1, 151)} or work.work_id > 150
    with pytest.raises(ValueError):
        dispatcher.reserve_extranonce2(0)
