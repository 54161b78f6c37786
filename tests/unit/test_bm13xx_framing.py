"""Every chip's Framing and Clocks through the interface the driver and the emulator use: what the
host encodes, the chip's parser reads back; what the chip encodes, the host's parser reads back.
Byte-exact frames are in test_bm13xx_protocol.py and test_bm13xx_legacy_protocol.py."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from miner.drivers.bm13xx import protocol as p

CHIPS = sorted(p.CHIPS)
FAMILY = {"bm1397": p.FRAMING_55AA, "bm1366": p.FRAMING_55AA, "bm1368": p.FRAMING_55AA,
          "bm1370": p.FRAMING_55AA, "bm1372": p.FRAMING_55AA, "bm1373": p.FRAMING_55AA,
          "bm1362": p.FRAMING_55AA,
          "bm1387": p.FRAMING_BM1387, "bm1384": p.FRAMING_BM1384}
# The chip UART rate after the driver's fast-baud write (docs/bm13xx.md §1.1; BM1384 has none).
FAST_BAUD = {"bm1397": 3_125_000, "bm1366": 1_041_666, "bm1368": 1_041_666, "bm1370": 1_041_666,
             "bm1372": 3_125_000, "bm1373": 3_125_000, "bm1387": 1_562_500}


def commands_for(chip: str):
    """Commands the chip's framing can carry: BM1384's only write is a broadcast set-PLL word."""
    reg = st.integers(0, 0xFF)
    addr = st.integers(0, 0xFF)
    reads = st.builds(p.read_register, reg, st.one_of(st.none(), addr))
    others = st.one_of(st.builds(p.set_address, addr), st.just(p.chain_inactive()))
    if chip == "bm1384":
        writes = st.builds(lambda v: p.write_register(p.REG_BM1384_PLL, v), st.integers(0, 0xFFFF))
        reads = st.builds(p.read_register, st.sampled_from([p.REG_CHIP_ID, p.REG_BM1384_PLL]),
                          st.one_of(st.none(), addr))
    else:
        writes = st.builds(p.write_register, reg, st.integers(0, 0xFFFFFFFF), st.one_of(st.none(), addr))
    return st.one_of(reads, writes, others)


def test_each_chip_has_its_familys_framing():
    assert {chip: p.CHIPS[chip].framing for chip in CHIPS} == FAMILY
    assert [chip for chip in CHIPS if p.CHIPS[chip].legacy] == ["bm1384", "bm1387"]
    assert [chip for chip in CHIPS if p.CHIPS[chip].ticket_in_job] == ["bm1384"]


@pytest.mark.parametrize("chip", CHIPS)
def test_commands_survive_the_chips_parser(chip):
    info = p.CHIPS[chip]

    @settings(max_examples=40)  # per chip; six chips
    @given(st.lists(commands_for(chip), min_size=1, max_size=6))
    def check(commands):
        stream = b"".join(info.encode_command(c) for c in commands)
        assert list(info.command_parser().feed(stream)) == commands

    check()


@pytest.mark.parametrize("chip", [c for c in CHIPS if not p.CHIPS[c].header_jobs])
def test_midstate_jobs_survive_the_chips_parser(chip):
    info = p.CHIPS[chip]
    low, high = info.job_ids

    @settings(max_examples=40)  # per chip; six chips
    @given(st.integers(low, high - 1), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF),
           st.binary(min_size=4, max_size=4),
           st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=info.midstates))
    def check(job_id, nbits, ntime, tail, mids):
        job = p.MidstateJob(job_id, nbits, ntime, tail, tuple(mids))
        [got] = info.command_parser().feed(info.framing.encode_midstate_job(job, ticket=1))
        assert (got.job_id, got.nbits, got.ntime, got.tail, got.midstates) == \
            (job_id, nbits, ntime, job.tail, tuple(mids))

    check()


def test_the_bm1384_job_carries_the_ticket_and_one_midstate_only():
    job = p.MidstateJob(0x12, 1, 2, bytes(4), (bytes(range(32)),))
    [got] = p.FRAMING_BM1384.command_parser().feed(p.FRAMING_BM1384.encode_midstate_job(job, ticket=64, hcn=7))
    assert (got.ticket_difficulty, got.hcn) == (64, 7)
    with pytest.raises(ValueError):
        p.FRAMING_BM1384.encode_midstate_job(p.MidstateJob(0x12, 1, 2, bytes(4), (bytes(32),) * 2))


@pytest.mark.parametrize("chip", CHIPS)
def test_replies_survive_the_hosts_parser(chip):
    info = p.CHIPS[chip]
    low, high = info.job_ids
    # BM1384 replies carry no chip or register: only a chip id or a PLL word read by chip 0 (§2.4).
    if chip == "bm1384":
        registers = st.one_of(
            st.builds(lambda v: p.RegisterReply(0x13840000 | v, 0, p.REG_CHIP_ID), st.integers(0, 0xFFFF)),
            st.builds(lambda v: p.RegisterReply(v, 0, p.REG_BM1384_PLL), st.integers(0, 0x12FFFFFF)))
        nonces = st.builds(lambda n, j: p.NonceReply(n, j), st.integers(0, 0xFFFFFFFF), st.integers(low, high - 1))
    else:
        registers = st.builds(p.RegisterReply, st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFF), st.integers(0, 0xFF))
        vbits = st.integers(0, 0xFFFF) if info.long_replies else st.none()
        nonces = st.builds(p.NonceReply, st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFF), vbits, st.integers(0, 0xFF))

    @settings(max_examples=40)  # per chip; six chips
    @given(st.lists(st.one_of(registers, nonces), min_size=1, max_size=6))
    def check(replies):
        stream = b"".join(info.encode_reply(r, info.long_replies) for r in replies)
        got = list(info.reply_parser().feed(stream))
        assert got == replies
        assert len(stream) == len(replies) * info.reply_parser().frame_size

    check()


@pytest.mark.parametrize("chip", CHIPS)
def test_the_pll_register_reads_back_as_the_clock_the_chip_runs_at(chip):
    info = p.CHIPS[chip]
    for mhz in (100.0, 150.0, 200.0, 400.0, info.default_mhz):
        try:
            actual = info.actual_mhz(mhz)
        except ValueError:
            continue  # out of this chip's range
        assert info.pll_mhz(info.pll_register(mhz)) == pytest.approx(actual)
        assert abs(actual - mhz) <= 6.25


@pytest.mark.parametrize("chip", sorted(FAST_BAUD))
def test_the_fast_baud_write_gives_the_documented_chip_rate(chip):
    info = p.CHIPS[chip]
    assert info.clocks.uart_baud(info.fast_baud_value) == FAST_BAUD[chip]


def test_the_bm1384_has_no_baud_register_and_no_pll_dividers():
    with pytest.raises(ValueError):
        p.CHIPS["bm1384"].clocks.uart_baud(0)
    with pytest.raises(ValueError):
        p.CHIPS["bm1384"].pll(150.0)
