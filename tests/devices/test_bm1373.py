"""The BM1372 / BM1373 chip table (drivers/bm13xx/chips.py, docs/bm13xx.md §3.9) against its
emulator: ESP-Miner's own BM1373_init written out byte for byte (bitaxeorg/ESP-Miner @ 13b59eb,
components/asic/bm1373.c), then this project's driver on a two-chip chain, whose chips take
addresses 0x10 apart and answer per-chip commands at address >> 2 (the BM1372's "distinct
command/response address encodings")."""

from __future__ import annotations

import time

import pytest
import serial
from miner.drivers.bm13xx import DRIVER
from miner.drivers.bm13xx import protocol as p
from miner.drivers.bm13xx.emulator import Bm13xxEmulator

from miner.core.dispatch import Dispatcher
from miner.devices.base import DeviceSpec, DeviceState
from miner.devices.work_source import DispatcherWorkSource
from miner.sources.sandbox import sandbox_job
from tests.devices.test_foreign_hosts import read_for
from tests.devices.test_foreign_hosts_asic import (
    BM1370_GENESIS_JOB,
    ESP_TICKET_DIFFICULTY,
    count_chips,
    esp_header_chip_mines,
    frames,
    send_all,
)
from tests.helpers.icarus_rig import wait_for

# BM1373_init for asic_count 2, one voltage domain, difficulty 256: the broadcast chip-id read at
# the reset baud (no version mask first, so 9-byte replies: BM1372_CHIP_ID_RESPONSE_LENGTH 9),
# counted against 0x1372 or its alias 0x1373; then chain inactive, _set_chip_address(chip * 0x10),
# core 0x0D = 0x04, the ticket mask, IO strength, the domain's last chip (chip 1, command address
# 1 * (0x10 >> 2) = 4) at 0x0001F111, ROSC pads, 0xC4, 0x28 = 3 Mbaud, 0xA8, 0x18, 0x19, core
# 0x0B / 0x00 / 0x02, analog mux; the ramp's first (50 MHz) and last (327 MHz) PLL writes; HCN
# 0x1EB5; the version mask 0x90000000 | 0x1FFFE000 >> 13.
READ_CHIP_ID = bytes.fromhex("55aa520500000a")
BM1373_INIT = frames("""
55aa5305000003
55aa400500001c
55aa400510000f
55aa5109003c80008d0404
55aa51090014000000ff08
55aa51090058000111110d
55aa410904580001f11117
55aa510900685aa55aa51c
55aa510900c4000000001f
55aa510900288000000018
55aa510900a8f00701f004
55aa51090018ff00c1001c
55aa510900190000000001
55aa5109003c80008b0012
55aa5109003c8000805a12
55aa5109003c800082aa0d
55aa510900540000000218
55aa5109000840a802650f
55aa5109000840b702601b
55aa5109001000001eb50f
55aa510900a49000ffff1c
""")


@pytest.mark.parametrize("chip, answer", [("bm1372", "1372"), ("bm1373", "1373")])
def test_esp_miner_bm1373_init_sequence_and_first_job(chip, answer):
    with Bm13xxEmulator(chip, chips=2, rate=1e9, difficulty=1.0) as emu, \
            serial.Serial(emu.device_path, 115200, timeout=0) as port:
        send_all(port, [READ_CHIP_ID])
        # count_asic_chips_with_id_alias: bytes 2..3 are 0x1372 or 0x1373, one 9-byte frame a chip
        replies = count_chips(port, 9)
        assert [r[2:4].hex() for r in replies] == [answer, answer] and all(r[:2] == b"\xaa\x55" for r in replies)
        send_all(port, BM1373_INIT)
        port.baudrate = 3_000_000  # SERIAL_set_baud(BM1372_ASIC_BAUD) after the 0x28 write
        # wait until the emulator has applied the frames (what the asserts below read), not a fixed time
        wait_for(lambda: (sorted(c.address for c in emu.chips) == [0x00, 0x10]
                          and [c.registers.get(p.REG_IO_DRIVER) for c in emu.chips] == [0x00011111, 0x0001F111]
                          and emu.initialised and abs(emu.baud / 3_000_000 - 1) < 0.05
                          and emu.frequency == pytest.approx(326.79, abs=0.01)
                          and emu.ticket_difficulty == ESP_TICKET_DIFFICULTY),
                 10, "the host's set-up applied")
        assert sorted(c.address for c in emu.chips) == [0x00, 0x10]
        # the per-chip write to command address 4 reached the chip at 0x10, and only it
        assert [c.registers.get(p.REG_IO_DRIVER) for c in emu.chips] == [0x00011111, 0x0001F111]
        # 0x28 = 0x80000000: the chip's divider 0 gives 25 MHz / 8, 3.125 Mbaud, 4 % from the host's 3 M
        assert emu.initialised and abs(emu.baud / 3_000_000 - 1) < 0.05
        assert emu.frequency == pytest.approx(326.79, abs=0.01)  # 183 / 2 / 7 / 1
        assert emu.ticket_difficulty == ESP_TICKET_DIFFICULTY
        # BM1373_send_work's first job is id 24 in the BM1370 layout; BM1373_process_work decodes
        # b7 as (id & 0xF0) >> 1, the version bits as ntohs(b8..b9) << 13
        esp_header_chip_mines(emu, port, BM1370_GENESIS_JOB, 24)
        # a register read: replies carry the response address (chip * 0x10, asic_nr = address / 0x10)
        emu.scale = 1.0  # quiet: no more nonces between the register replies
        time.sleep(0.2)
        port.reset_input_buffer()
        port.write(bytes.fromhex("55aa5205008c1d"))  # BM1373_read_registers: 0x8C, the total counter
        replies = []
        deadline = time.monotonic() + 2.0
        while len(replies) < 2 and time.monotonic() < deadline:
            reply = read_for(port, 11, 0.5)
            if len(reply) == 11 and not reply[10] & 0x80:  # is_job_response clear: a register reply
                replies.append(reply)
        assert sorted(r[6] for r in replies) == [0x00, 0x10] and all(r[7] == 0x8C for r in replies)


def test_driver_mines_a_two_chip_bm1373_chain():
    emulator = Bm13xxEmulator("bm1373", chips=2, rate=6e6, difficulty=0.0001).start()
    dispatcher = Dispatcher()
    dispatcher.set_job(sandbox_job(difficulty=1000))
    nonces = []
    spec = DeviceSpec.parse(f"bm1373:{emulator.device_path},difficulty=0.0001,ticket=1,ramp_delay=0,poll=0.3,"
                            "enumerate=0.3,counters=0.5")
    device = DRIVER.create(spec, DispatcherWorkSource(dispatcher), nonces.append, 0)
    device.start()
    try:
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, 15, "init")
        assert device.chip_count == 2 and [s.address for s in device.chip_stats] == [0x00, 0x10]
        assert sorted(c.address for c in emulator.chips) == [0x00, 0x10]
        # the per-chip init went to command addresses 0 and 4; none to 0x10, which no chip answers
        per_chip = {c.chip for c in emulator.commands if not c.broadcast and c.cmd == p.CMD_WRITE}
        assert per_chip <= {0x00, 0x04}
        assert emulator.chips[0].registers[p.REG_HASH_COUNTING] == 0x1EB5
        assert device.serial.baudrate == 3_000_000 and emulator.initialised
        wait_for(lambda: len(nonces) >= 4, 20, "nonces")
        wait_for(lambda: all(c.present for c in device.chip_stats) and device.details()["Counter Hashrate"], 15,
                 "both chips answering the presence poll and counters")
    finally:
        device.stop(timeout=2.0)
        emulator.stop()
