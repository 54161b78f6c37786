"""More host drivers that are not ours against the emulators (issue 16, "a test that plays the host
side exactly as cgminer's or bfgminer's driver does"): ESP-Miner's BM1397, BM1366, BM1368 and
BM1370 bring-up (components/asic/bm13xx.c BMxxxx_init: every register write in its order, the
chip-id count, the max-baud switch, then the first job), cgminer's gekko driver on a BM1387 2Pac,
and bfgminer's icarus driver on the two-FPGA Icarus and the Avalon nano 1.0. The host's bytes are
written out literally; each CRC-5 agrees with the frame ESP-Miner quotes in its own comments
(docs/bm13xx.md §3.2 to §3.5).

Every nonce that comes back is checked as the host checks it (job id and version bits decoded the
host's way) and then hashed with the C core against the full header.
"""

from __future__ import annotations

import binascii
import time

import serial
from miner.drivers.bm13xx.emulator import Bm13xxEmulator
from miner.drivers.icarus.emulator import IcarusEmulator
from miner.drivers.kit.bits import reverse_words
from miner.drivers.kit.crc import crc5

from miner.core import hashing
from miner.core.targets import difficulty_to_target
from tests.devices.test_foreign_hosts import (
    GOLDEN_NONCE,
    HEADER,
    MINE_DIFFICULTY,
    bfgminer_detect,
    bfgminer_job,
    check_replies,
    open_like_bfgminer,
    read_for,
)
from tests.helpers.icarus_rig import wait_for

# The genesis block header (docs/bm13xx.md §8): the jobs below are its frames from §8.1 / §8.2.
GENESIS = bytes.fromhex(
    "01000000" + "00" * 32
    + "3ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a" + "29ab5f49ffff001d1dac2b7c")
ESP_TICKET_DIFFICULTY = 256  # BM13xx_ASIC_DIFFICULTY: every init below sends the diff-256 mask
COUNT_TIMEOUT = 1.0  # common.c count_asic_chips: reads chip-id frames until 1 s of silence


def frames(text: str) -> list[bytes]:
    return [bytes.fromhex(line) for line in text.strip().splitlines()]


def send_all(port: serial.Serial, script: list[bytes]) -> None:
    for frame in script:
        port.write(frame)
        port.flush()


def count_chips(port: serial.Serial, size: int) -> list[bytes]:
    """count_asic_chips: one `size`-byte frame per chip until a read times out."""
    replies = []
    while reply := read_for(port, size, COUNT_TIMEOUT):
        assert len(reply) == size, f"a chip-id frame cut short: {reply.hex()}"
        replies.append(reply)
    return replies


def esp_nonces(port: serial.Serial, size: int, want: int, timeout: float = 30.0) -> list[bytes]:
    replies: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(replies) < want and time.monotonic() < deadline:
        reply = read_for(port, size, 0.2)
        if reply:
            assert len(reply) == size and reply[:2] == b"\xaa\x55", reply.hex()
            assert reply[-1] & 0x80, f"not a job response: {reply.hex()}"  # bitfield is_job_response
            replies.append(reply)
    assert len(replies) >= want, f"only {len(replies)} nonces in {timeout} s"
    return replies


def verifies(header: bytes, version: int, nonce: bytes, difficulty: float) -> bool:
    full = version.to_bytes(4, "little") + header[4:76] + nonce
    return int.from_bytes(hashing.sha256d(full), "little") <= difficulty_to_target(difficulty)


# ------------------------------------------------------------------------------ ESP-Miner BM1370 (Gamma)
# BM1370_init as of ESP-Miner commit 01913a7 (asic_count 1, difficulty 256), then do_frequency_ramp_up's last step, the
# hash-counting register, and asic.c's ASIC_set_max_baud -> BM1370_set_max_baud.
BM1370_VERSION_MASK = "55aa510900a49000ffff1c"  # BM1370_set_version_mask(0x1fffe000): 0xA4 = 90 00 FF FF
BM1370_READ_CHIP_ID = "55aa520500000a"  # read reg 0x00 on all chips
BM1370_INIT = frames("""
55aa510900a49000ffff1c
55aa510900a800070000 03
55aa51090018f000c100 04
55aa53050000 03
55aa40050000 1c
55aa5109003c80008b00 12
55aa5109003c8000800c 11
55aa51090014000000ff 08
55aa51090058000111 11 0d
55aa410900a8000701f0 15
55aa41090018f000c100 0c
55aa4109003c80008b00 1a
55aa4109003c8000800c 19
55aa4109003c800082aa 05
55aa510900b900004480 0d
55aa51090054000000 02 18
55aa510900b900004480 0d
55aa5109003c80008dee 1b
55aa5109000850bd0122 18
55aa5109001000001eb5 0f
55aa51090028113002 00 03
""".replace(" ", ""))
# ^ 0x08 = 50 BD 01 22 is BM1370_send_hash_frequency(525): fb 189, ref 1, post dividers 3 and 3
#   (stored less one), 0x50 because the VCO (4725 MHz) is at least 2400. 0x10 = 00 00 1E B5 is the
#   "S21 Pro-Stock Default"; 0x28 = 11 30 02 00 the 1 Mbaud frame BM1370_set_max_baud sends.
# BM1370_send_work's first job: id (0 + 24) % 128 = 24, the genesis header (docs/bm13xx.md §8.2).
BM1370_GENESIS_JOB = bytes.fromhex(
    "55aa2156" "18" "01" "00000000" "ffff001d" "29ab5f49"
    "4b1e5e4a3a9fb8aa888a51327fc81bc367768f617ac72c3e7a7b12b23ba3edfd" + "00" * 32 + "01000000" "fb42")
# ^ id 24, one midstate, start nonce 0, nbits, ntime, merkle root and prev hash word-reversed,
#   version, CRC-16/CCITT-FALSE big-endian


def esp_header_chip_mines(emu: Bm13xxEmulator, port: serial.Serial, job: bytes, job_id: int,
                          job_of=lambda b7: (b7 & 0xF0) >> 1) -> None:
    """BMxxxx_send_work's job, then BMxxxx_process_work on each 11-byte reply: job id `job_of(b7)`,
    version bits ntohs(b8..b9) << 13 OR'd into the job's version; then the full header hashed."""
    emu.scale = MINE_DIFFICULTY / ESP_TICKET_DIFFICULTY  # nonces at difficulty 0.001 for a CPU's pace
    port.reset_input_buffer()
    port.write(job)
    for reply in esp_nonces(port, 11, want=2):
        assert job_of(reply[7]) == job_id, reply.hex()
        version = 1 | int.from_bytes(reply[8:10], "big") << 13
        assert version & ~0x1FFFE000 == 1, "rolled bits outside the mask ESP-Miner set"
        assert verifies(GENESIS, version, reply[2:6], MINE_DIFFICULTY), f"{reply.hex()} does not verify"


def test_esp_miner_bm1370_init_sequence_and_first_job():
    with Bm13xxEmulator("bm1370", rate=1e9, difficulty=1.0) as emu, \
            serial.Serial(emu.device_path, 115200, timeout=0) as port:
        send_all(port, frames("\n".join([BM1370_VERSION_MASK] * 3 + [BM1370_READ_CHIP_ID])))
        # "should respond AA 55 13 70 00 00 00 00 00 00 ..": 11 bytes (version rolling is on), chip id
        # in bytes 2..3 (count_asic_chips compares them with BM1370_CHIP_ID), address 0, CRC-5 good.
        assert count_chips(port, 11) == [bytes.fromhex("aa55137000000000000010")]
        send_all(port, BM1370_INIT)
        # wait until the emulator has applied the frames (what the asserts below read), not a fixed time
        wait_for(lambda: (emu.initialised
                          and emu.frequency == 525.0
                          and abs(emu.baud / 1_000_000 - 1) < 0.05
                          and emu.ticket_difficulty == ESP_TICKET_DIFFICULTY),
                 10, "the host's set-up applied")
        # The chip decodes BT8D = 2 as 25 MHz / 24 = 1 041 666 baud; ESP-Miner opens its UART at
        # 1 000 000, 4 % off and inside a UART's tolerance (docs/bm13xx.md §1.1).
        assert emu.initialised and emu.frequency == 525.0 and abs(emu.baud / 1_000_000 - 1) < 0.05
        assert emu.ticket_difficulty == ESP_TICKET_DIFFICULTY
        esp_header_chip_mines(emu, port, BM1370_GENESIS_JOB, 24)


# ------------------------------------------------------------------------------ ESP-Miner BM1368 (Supra)
# BM1368_init as of ESP-Miner commit 026718e (components/asic/bm1368.c): the version mask four
# times, the chip-id read; then chain inactive, seven broadcast writes (the diff-256 ticket mask
# among them), the address, the five per-chip writes, the ticket mask again (get_difficulty_mask),
# the ramp's last step (pll.c pll_get_parameters(490, 144, 235): fb 196, ref 2, post dividers 5
# and 1, VCO 2450 MHz so 0x50), BM1368_set_nonce_space(1.0, 490, 1 chip, 80 cores -> 128):
# HCN = 2^32 / 128 x 25 / 490 x 0.5 = 0x000D0FAC, the version mask, then BM1368_set_max_baud.
BM1368_INIT = frames("""
55aa53050000 03
55aa510900a800070000 03
55aa51090018ff0fc100 00
55aa5109003c80008b00 12
55aa5109003c80008018 1f
55aa51090014000000ff 08
55aa51090054000000 03 1d
55aa510900580211 1111 06
55aa40050000 1c
55aa410900a8000701f0 15
55aa41090018f000c100 0c
55aa4109003c80008b00 1a
55aa4109003c80008018 17
55aa4109003c800082aa 05
55aa51090014000000ff 08
55aa5109000850c40240 06
55aa51090010000d0fac 1b
55aa510900a49000ffff 1c
55aa51090028113002 00 03
""".replace(" ", ""))
# BM1368_send_work's first job: id 24, identical to the BM1370's (docs/bm13xx.md §8.2).
BM1368_GENESIS_JOB = BM1370_GENESIS_JOB


def test_esp_miner_bm1368_init_sequence_and_first_job():
    with Bm13xxEmulator("bm1368", rate=1e9, difficulty=1.0) as emu, \
            serial.Serial(emu.device_path, 115200, timeout=0) as port:
        send_all(port, frames("\n".join([BM1370_VERSION_MASK] * 4 + [BM1370_READ_CHIP_ID])))
        # bm1370.c quotes this very frame: "should respond AA 55 13 68 00 00 00 00 00 00 0F"
        assert count_chips(port, 11) == [bytes.fromhex("aa5513680000000000000f")]
        send_all(port, BM1368_INIT)
        # wait until the emulator has applied the frames (what the asserts below read), not a fixed time
        wait_for(lambda: (emu.initialised
                          and emu.frequency == 490.0
                          and abs(emu.baud / 1_000_000 - 1) < 0.05
                          and emu.ticket_difficulty == ESP_TICKET_DIFFICULTY),
                 10, "the host's set-up applied")
        assert emu.initialised and emu.frequency == 490.0 and abs(emu.baud / 1_000_000 - 1) < 0.05
        assert emu.ticket_difficulty == ESP_TICKET_DIFFICULTY
        esp_header_chip_mines(emu, port, BM1368_GENESIS_JOB, 24)


# ------------------------------------------------------------------------------ ESP-Miner BM1366 (Ultra)
# BM1366_init as of ESP-Miner commit 026718e (components/asic/bm1366.c), after the three version
# mask writes and the chip-id read: 0xA8, 0x18 broadcast, chain inactive, the address, 0x3C twice,
# the diff-256 ticket mask, 0x54, 0x58, 0x2C on chip 0, the five per-chip writes, the ramp's last
# step (pll_get_parameters(485, 144, 235): fb 194, ref 2, post dividers 5 and 1, VCO 2425 MHz so
# 0x50), BM1366_set_nonce_space(1.0, 485, 1 chip, 112 cores -> 128): HCN 0x000D3224, the version
# mask again, then BM1366_set_max_baud.
BM1366_INIT = frames("""
55aa510900a800070000 03
55aa51090018ff0fc100 00
55aa53050000 03
55aa40050000 1c
55aa5109003c80008540 0c
55aa5109003c80008020 19
55aa51090014000000ff 08
55aa51090054000000 03 1d
55aa510900580211 1111 06
55aa4109002c007c0003 03
55aa410900a8000701f0 15
55aa41090018f000c100 0c
55aa4109003c80008540 04
55aa4109003c80008020 11
55aa4109003c800082aa 05
55aa5109000850c20240 1c
55aa51090010000d3224 10
55aa510900a49000ffff 1c
55aa51090028113002 00 03
""")
# BM1366_send_work's first job: id (0 + 8) % 128 = 8, the genesis header (docs/bm13xx.md §8.2).
BM1366_GENESIS_JOB = bytes.fromhex(
    "55aa2156" "08" "01" "00000000" "ffff001d" "29ab5f49"
    "4b1e5e4a3a9fb8aa888a51327fc81bc367768f617ac72c3e7a7b12b23ba3edfd" + "00" * 32 + "01000000" "28b7")


def test_esp_miner_bm1366_init_sequence_and_first_job():
    with Bm13xxEmulator("bm1366", rate=1e9, difficulty=1.0) as emu, \
            serial.Serial(emu.device_path, 115200, timeout=0) as port:
        send_all(port, frames("\n".join([BM1370_VERSION_MASK] * 3 + [BM1370_READ_CHIP_ID])))
        assert count_chips(port, 11) == [bytes.fromhex("aa551366000000000000 05")]
        send_all(port, BM1366_INIT)
        # wait until the emulator has applied the frames (what the asserts below read), not a fixed time
        wait_for(lambda: (emu.initialised
                          and emu.frequency == 485.0
                          and abs(emu.baud / 1_000_000 - 1) < 0.05
                          and emu.ticket_difficulty == ESP_TICKET_DIFFICULTY),
                 10, "the host's set-up applied")
        assert emu.initialised and emu.frequency == 485.0 and abs(emu.baud / 1_000_000 - 1) < 0.05
        assert emu.ticket_difficulty == ESP_TICKET_DIFFICULTY
        # BM1366_process_work reads the job id as b7 & 0xf8 (8 small cores), not (b7 & 0xf0) >> 1
        esp_header_chip_mines(emu, port, BM1366_GENESIS_JOB, 8, lambda b7: b7 & 0xF8)


# ------------------------------------------------------------------------------ ESP-Miner BM1397 (Max)
# BM1397_init as of ESP-Miner commit 026718e (components/asic/bm1397.c) for one chip, after the
# chip-id read: chain inactive, the address, 0x80, 0x84, 0x20, 0x3C, the diff-256 ticket mask,
# 0x68 once (cgminer sends it twice), 0x28, BM1397_set_default_baud; the ramp's last step
# (BM1397_send_hash_frequency: 0x70 twice, then 0x08 twice); then BM1397_set_max_baud.
BM1397_INIT = frames("""
55aa53050000 03
55aa40050000 1c
55aa51090080000000 00 1c
55aa51090084000000 00 11
55aa51090020000000 01 02
55aa5109003c80008074 10
55aa51090014000000ff 08
55aa51090068c0700111 00
55aa510900280600000f 18
55aa51090018000 07a31 15
55aa510900700f0f0f00 19
55aa510900700f0f0f00 19
55aa510900084044 0221 07
55aa510900084044 0221 07
55aa51090018000 06031 00
""".replace(" ", ""))
# ^ 0x08 = 40 44 02 21 is pll_get_parameters(425, 60, 200): fb 68, ref 2, post dividers 2 and 1
#   (stored as they are on the BM1397); the last 0x18 write is BM1397_set_max_baud (3.125 Mbaud).
BM1397_GENESIS_JOB = bytes.fromhex(  # BM1397_send_work: job id 4, one midstate (docs/bm13xx.md §8.1)
    "55aa2136" "04" "01" "00000000" "ffff001d" "29ab5f49" "4b1e5e4a"
    "4719f91b96b187364f0103c8c3c8d8e91e59caa890ccac7d6358bff0bc909a33" "ea6a")
# ^ id 4, one midstate, start nonce, nbits, ntime, merkle tail, midstate H7..H0, CRC-16


def test_esp_miner_bm1397_init_sequence_and_first_job():
    with Bm13xxEmulator("bm1397", rate=1e9, difficulty=1.0) as emu, \
            serial.Serial(emu.device_path, 115200, timeout=0) as port:
        port.write(bytes.fromhex("55aa520500000a"))  # read reg 0x00 on all chips
        # 9-byte frame AA 55 13 97 18 00 00 00 06 (CORE_NUM 0x18, address 0)
        assert count_chips(port, 9) == [bytes.fromhex("aa5513971800000006")]
        send_all(port, BM1397_INIT)
        # wait until the emulator has applied the frames (what the asserts below read), not a fixed time
        wait_for(lambda: (emu.initialised
                          and emu.frequency == 425.0
                          and emu.baud == 3_125_000
                          and emu.ticket_difficulty == ESP_TICKET_DIFFICULTY),
                 10, "the host's set-up applied")
        assert emu.initialised and emu.frequency == 425.0 and emu.baud == 3_125_000
        assert emu.ticket_difficulty == ESP_TICKET_DIFFICULTY
        emu.scale = MINE_DIFFICULTY / ESP_TICKET_DIFFICULTY
        port.reset_input_buffer()
        port.write(BM1397_GENESIS_JOB)
        for reply in esp_nonces(port, 9, want=2):
            # BM1397_process_work: job id = b7 & 0xfc, midstate = b7 & 3 (one midstate sent: 0)
            assert reply[7] & 0x7F == 0x04, reply.hex()
            assert verifies(GENESIS, 1, reply[2:6], MINE_DIFFICULTY), f"{reply.hex()} does not verify"


# ------------------------------------------------------------------------------ bfgminer icarus (2 FPGAs)
def test_bfgminer_icarus_driver_detects_and_mines_a_two_fpga_icarus():
    """driver-icarus.c icarus_detect_one: 4-byte golden answer, nothing after it. Mining: the two
    FPGAs split the range (0..7FFFFFFF, 80000000..FFFFFFFF, docs/icarus.md §A4) and each stops at
    its first find, so one job brings one nonce from each half."""
    with IcarusEmulator("icarus", difficulty=1.0) as emu, open_like_bfgminer(emu.device_path) as port:
        assert bfgminer_detect(port) == (GOLDEN_NONCE, 0)
        emu.set_difficulty(MINE_DIFFICULTY)
        port.reset_input_buffer()
        port.write(bfgminer_job(HEADER))
        replies = check_replies(port, HEADER, 4, want=2)
        assert sorted(r[0] >> 7 for r in replies) == [0, 1], [r.hex() for r in replies]


# ------------------------------------------------------------------------------ Avalon nano 1.0
def test_bfgminer_icarus_driver_detects_and_mines_an_avalon_nano1():
    """The nano 1.0 is plain Icarus over CDC-ACM (cgminer IDENT_AVA in driver-icarus.c; Canaan's
    firmware cdc_main.c answers the golden packet and forwards a job's first nonce only), so a new
    job is what brings the next nonce."""
    with IcarusEmulator("nano1", difficulty=1.0) as emu, open_like_bfgminer(emu.device_path) as port:
        assert bfgminer_detect(port) == (GOLDEN_NONCE, 0)
        emu.set_difficulty(MINE_DIFFICULTY)
        for ntime in (b"\x5f\x5e\x10\x00", b"\x60\x5e\x10\x00"):
            header = HEADER[:68] + ntime + HEADER[72:]
            port.reset_input_buffer()
            port.write(bfgminer_job(header))
            check_replies(port, header, 4, want=1)


# ------------------------------------------------------------------------------ cgminer gekko (BM1387, 2Pac)
def gekko_bm1387_task(job_id: int, header: bytes | None) -> bytes:
    """driver-gekko.c init_task (BM1387, one midstate: no version rolling from the pool): 21 LEN id
    01 00000000, stuff_reverse(data + 64, 12) = nbits, ntime, merkle tail in header order,
    stuff_reverse(midstate, 32) = H7..H0 big-endian, CRC-16/CCITT-FALSE big-endian. Before
    MINER_MINING (the open-core ramp) bytes 8..19 are FF and the midstate zero."""
    task = bytearray(54)
    task[0:4] = bytes((0x21, 54, job_id, 0x01))
    if header is None:
        task[8:20] = b"\xff" * 12
    else:
        task[8:20] = header[72:76] + header[68:72] + header[64:68]
        task[20:52] = reverse_words(hashing.midstate(header))
    task[52:54] = binascii.crc_hqx(bytes(task[:52]), 0xFFFF).to_bytes(2, "big")
    return bytes(task)


def test_cgminer_gekko_driver_brings_up_an_emulated_2pac():
    """driver-gekko.c, BM1387 with expected_chips 2 (IDENT_GSH, the 2Pac): compac_listen's
    MINER_CHIP_COUNT sends read-all 54 05 00 00 19 and reads 1000 ms, counting 7-byte replies
    whose rx[0] is 0x13 and whose CRC-5 over 51 bits matches; compac_send_chain_inactive sends
    chain inactive 55 05 00 00 10 three times, set address (0x100 / chips) x i, the 1.5 Mbaud
    divider 58 09 00 1C 00 20 01 00 1B and the gate block 58 09 00 1C 40 20 81 80 09; the
    MINER_OPEN_CORE ramp sends 116 open-core tasks (job ids 0..115); then work, job ids counting
    on by one. No PLL write comes before mining: the first (compac_set_frequency_single) waits
    for GHNONCENEEDED nonces in the ramp, so the chip must hash at its power-on clock.
    compac_check_nonce: job id = rx[5], nonce = rx[0..3] (header bytes 76..79), chip rx[0] / 0x80."""
    with Bm13xxEmulator("bm1387", chips=2, rate=1e9, difficulty=1.0) as emu, \
            serial.Serial(emu.device_path, 115200, timeout=0) as port:
        port.write(bytes.fromhex("5405000019"))
        replies = count_chips(port, 7)
        assert len(replies) == 2, [r.hex() for r in replies]
        for reply in replies:
            assert reply[0] == 0x13 and reply[6] <= 0x1F and crc5(reply, 51) == reply[6], reply.hex()
        send_all(port, frames("""
            5505000010
            5505000010
            5505000010
            4105000015
            4105800019
            5809001c00200100 1b
            5809001c40208180 09
        """))
        for ramping in range(116):
            port.write(gekko_bm1387_task(ramping, None))
        time.sleep(0.1)
        assert emu.initialised and emu.baud == 1_562_500  # 25 MHz / ((1 + 1) x 8); FTDI side 1.5 M
        emu.scale = MINE_DIFFICULTY
        for job_id in (116, 117):
            port.reset_input_buffer()
            port.write(gekko_bm1387_task(job_id, HEADER))
            got = 0
            deadline = time.monotonic() + 30
            while got < 2 and time.monotonic() < deadline:
                reply = read_for(port, 7, 0.02)  # compac_listen: rx_len bytes, 20 ms
                if not reply:
                    continue
                # compac_listen: not a command response (last byte <= 0x1F with a good CRC), so a nonce
                assert not (reply[6] <= 0x1F and crc5(reply, 51) == reply[6]), reply.hex()
                assert reply[5] == job_id, f"job id {reply[5]:#x}, sent {job_id:#x}"
                assert int(reply[0] / (0x100 / 2)) < 2
                full = HEADER[:76] + reply[:4]
                target = difficulty_to_target(MINE_DIFFICULTY)
                assert int.from_bytes(hashing.sha256d(full), "little") <= target, f"{reply.hex()} does not verify"
                got += 1
            assert got == 2, f"only {got} nonces for job {job_id}"
