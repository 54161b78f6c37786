"""The BM1362 chip table (drivers/bm13xx/chips.py, docs/bm13xx.md §3.10) against its emulator:
cgminer's GSA1 (Compac A1) chip set-up written out byte for byte (kanoi/cgminer driver-gekko.c,
compac_send_chain_inactive's BM1362 branch and calc_gsa1_freq's writes), nonces decoded as
compac_gsa1_nonce does; then this project's driver on a two-chip chain."""

from __future__ import annotations

import serial
from miner.drivers.bm13xx import DRIVER
from miner.drivers.bm13xx import protocol as p
from miner.drivers.bm13xx.emulator import Bm13xxEmulator
from miner.drivers.kit.crc import crc16_ccitt_false

from miner.core.dispatch import Dispatcher
from miner.devices.base import DeviceSpec, DeviceState
from miner.devices.work_source import DispatcherWorkSource
from miner.sources.sandbox import sandbox_job
from tests.devices.test_foreign_hosts_asic import (
    BM1370_GENESIS_JOB,
    ESP_TICKET_DIFFICULTY,
    count_chips,
    esp_header_chip_mines,
    frames,
    send_all,
)
from tests.helpers.icarus_rig import wait_for

# Not cgminer's: its detection (the version mask, then the broadcast chip-id read, so that the
# reply is the 11-byte form of cgminer's capture `AA 55 13 62 03 00 00 00 00 00 1E`) and the
# ticket mask, which cgminer's set_ticket takes from its own table (256 here, the helper's).
DETECT = frames("""
55aa510900a49000ffff1c
55aa520500000a
""")
# compac_send_chain_inactive, BM1362, one chip (CHIPPY1362 = CHIPPY1397: 0x100 / chips x i):
# chain inactive; chippy 0; init3 (core reg 5 = 0x40, clock select) and init4 (core reg 0 = 0x08);
# [ticket]; init5 analog mux 3; init6 IO strength 0x00011111; (the 3 Mbaud write is commented out
# in cgminer); per chip core0 A8 = 2, core1 0x18 = 0xB000C100, core2..core4 core regs 5, 0, 2;
# calc_gsa1_freq: 0x70 = 0x0F0F0F00, then 0x08 (its 200 MHz default word 40 F0 02 24); hcn
# 0x10 = 0x12C9; init0 0xA4 = 0x9000FFFF.
GSA1_INIT = frames("""
55aa5305000003
55aa400500001c
55aa5109003c800085400c
55aa5109003c8000800805
55aa51090014000000ff08
55aa51090054000000031d
55aa51090058000111110d
55aa410900a80000000203
55aa41090018b000c1001c
55aa4109003c8000854004
55aa4109003c800080080d
55aa4109003c800082aa05
55aa510900700f0f0f0019
55aa5109000840f0022401
55aa51090010000012c91e
55aa510900a49000ffff1c
""")


def job_with_id(job: bytes, job_id: int) -> bytes:
    body = job[:4] + bytes([job_id]) + job[5:-2]
    return body + crc16_ccitt_false(body[2:]).to_bytes(2, "big")


def test_cgminer_gsa1_set_up_and_nonces():
    with Bm13xxEmulator("bm1362", rate=1e9, difficulty=1.0) as emu, \
            serial.Serial(emu.device_path, 115200, timeout=0) as port:
        send_all(port, DETECT)
        assert count_chips(port, 11) == [bytes.fromhex("aa5513620300000000001e")]  # cgminer's capture
        send_all(port, GSA1_INIT)
        # wait until the emulator has applied the frames (what the asserts below read), not a fixed time
        wait_for(lambda: (emu.initialised
                          and emu.frequency == 200.0
                          and emu.ticket_difficulty == ESP_TICKET_DIFFICULTY
                          and emu.baud == 115_740
                          and emu.chips[0].registers[p.REG_HASH_COUNTING] == 0x12C9),
                 10, "the host's set-up applied")
        assert emu.initialised and emu.frequency == 200.0  # 25 x 240 / (2 x 3 x 5)
        assert emu.ticket_difficulty == ESP_TICKET_DIFFICULTY and emu.baud == 115_740  # no baud switch
        assert emu.chips[0].registers[p.REG_HASH_COUNTING] == 0x12C9
        # compac_gsa1_nonce: job = rx[7] & 0xF8 (ids 0x10..0x78 in steps of 8), version bits b8..b9
        esp_header_chip_mines(emu, port, job_with_id(BM1370_GENESIS_JOB, 0x10), 0x10, job_of=lambda b7: b7 & 0xF8)


def test_driver_mines_a_two_chip_bm1362_chain():
    emulator = Bm13xxEmulator("bm1362", chips=2, rate=6e6, difficulty=0.0001).start()
    dispatcher = Dispatcher()
    dispatcher.set_job(sandbox_job(difficulty=1000))
    nonces = []
    spec = DeviceSpec.parse(f"bm1362:{emulator.device_path},difficulty=0.0001,ticket=1,ramp_delay=0,poll=0.3,"
                            "enumerate=0.3")
    device = DRIVER.create(spec, DispatcherWorkSource(dispatcher), nonces.append, 0)
    device.start()
    try:
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, 15, "init")
        assert device.chip_count == 2 and sorted(c.address for c in emulator.chips) == [0x00, 0x80]
        assert emulator.initialised and emulator.frequency == 525.0 and device.serial.baudrate == 115_200
        assert emulator.chips[1].registers[p.REG_MISC] == 0xB000C100  # per chip, at its own address
        wait_for(lambda: len(nonces) >= 4, 20, "nonces")
        assert "Counter Hashrate" not in device.details()  # no counters are known for this chip
    finally:
        device.stop(timeout=2.0)
        emulator.stop()
