"""mujina (256foundation/mujina, the Rust host written for bitaxe-raw boards) against the bitaxe-raw
emulator's two real ptys, its bytes written out literally (issue 16: "a test that plays the host
side exactly as [its] driver does"). Sources, as stored at these commits:

- mujina-miner/src/board/bitaxe.rs (00bb8cc): BitaxeDevice::attach (reset low, I2C at 100 kHz,
  init_fan_controller, init_power_controller), the BM13xxThread's reset assert, BitaxeMonitor's
  monitor_tick; the control channel in ResponseFormat::V0.
- mgmt_protocol/bitaxe_raw/mod.rs (c17ceac): request packet, V0 answer (LEN counts the data only);
  channel.rs (497ee95): ids from 0, one request in flight, 1 s timeout; gpio.rs, i2c.rs: the
  page/command/data of each call.
- peripheral/emc2101.rs (2a9ab58): Emc2101::init (identity reads, CONFIG | TACH, FAN_CONFIG 0x23,
  the PWM writes) and set_pwm_percent(100) = 255; its register names put TACH_HIGH at 0x46,
  the reverse of the datasheet's (docs/bitaxe-raw.md §3), which the emulator does not copy.
- peripheral/tps546.rs (06533d2) Tps546::init, write_config, set_vout_target, clear_faults,
  dump_configuration, enable_output; bitaxe.rs' Tps546Config values; pmbus.rs (2b24811): command
  codes, ON_OFF_CONFIG bits, SLINEAR11 (the best-error exponent search) and ULINEAR16 encoders.
- asic/bm13xx/thread.rs (00bb8cc) Actor::initialize_chain: regulator on (with its OPERATION
  read-back), reset released, the chain bring-up, the frequency ramp (generate_frequency_ramp_steps,
  6.25 MHz steps from 56.25 to 525 MHz, ChipConfig::calculate_pll with bm1370()'s bounds, its
  values in chip_config.rs), the hash-counting number 0x1EB5, the version mask, and the read-back
  check (MiscControl, TicketMask, PllDivider with its lock bit 31).

Where a value comes from a capture rather than code (mujina's BM1370 MiscControl, AnalogMux,
AdcCtrl1 and core-register values are "from the Bitaxe capture", chip_config.rs, not in the
stored register.rs), the bytes are the Gamma's, i.e. ESP-Miner's BM1370_init frames
(test_foreign_hosts_asic.BM1370_INIT), which mujina's order repeats. mujina sleeps between steps
(500 ms after power, 200 ms after reset, 100 ms per ramp step); the emulator needs no settling,
so the script does not. Not replayed: the hash thread's job-id tracker (the job below uses id
24) and the first monitor tick, which races the thread's reset assert in mujina.

Every answer is framed as the V0 firmware frames it and checked against what mujina expects
(lengths, identity, read-backs of what it wrote); every nonce is checked with the C core.
"""

from __future__ import annotations

import serial
from miner.drivers.bitaxe_raw import control as c
from miner.drivers.bitaxe_raw.emulator import BitaxeRawEmulator

from tests.devices.test_foreign_hosts import read_for
from tests.devices.test_foreign_hosts_asic import (
    BM1370_GENESIS_JOB,
    BM1370_READ_CHIP_ID,
    BM1370_VERSION_MASK,
    count_chips,
    esp_header_chip_mines,
    frames,
    send_all,
)
from tests.helpers.icarus_rig import wait_for

# tps546.rs constants::DEVICE_ID1..3, the ids verify_device_id accepts (TPS546D24A, TPS546D24S)
TPS546_DEVICE_IDS = tuple(bytes.fromhex(h) for h in ("5449546b2441", "5449546d2441", "5449546d2462"))
CONTROL_TIMEOUT = 1.0  # channel.rs send_packet: time::timeout(Duration::from_secs(1), ...)

# ------------------------------------------------------------------------------ the control port
# (packet, what mujina is doing). Packet ids count from 0 as ControlChannel assigns them.
ATTACH = [
    ("07000000060000", "attach: reset_pin.write(Low)"),
    ("0a0001000510a0860100", "i2c.set_frequency(100_000)"),
    ("0900020005404cfe01", "Emc2101::init read MFG_ID"),
    ("0900030005404cfd01", "Emc2101::init read PRODUCT_ID"),
    ("0900040005404cff01", "Emc2101::init read REVISION"),
    ("0900050005404c0301", "Emc2101::init read CONFIG"),
    ("0900060005204c0304", "CONFIG |= TACH enable (0x04)"),
    ("0900070005204c4a23", "FAN_CONFIG = 0x23 (PWM mode)"),
    ("0900080005204c4c1f", "PWM_FREQ (0x4C in that file) = 0x1F"),
    ("0900090005204c4d01", "PWM_DIV (0x4D) = 0x01"),
    ("09000a0005204c4cff", "fan to 100 %: FAN_SETTING = 255 (set_pwm_percent(100))"),
    ("09000b00054024ad07", "Tps546::init verify_device_id: IC_DEVICE_ID, 7 bytes"),
    ("09000c000520240100", "OPERATION = OffImmediate"),
    ("09000d00052024021b", "ON_OFF_CONFIG = DELAY|POLARITY|CMD|PU"),
    ("09000e000540242001", "read VOUT_MODE"),
    ("09000f000520240400", "write_config: PHASE 0"),
    ("0a001000052024338a02", "FREQUENCY_SWITCH 650 kHz"),
    ("0a0011000520243566ca", "VIN_ON 4.8 V"),
    ("0a0012000520243640ca", "VIN_OFF 4.5 V"),
    ("0a0013000520245540cb", "VIN_OV_FAULT_LIMIT 6.5 V"),
    ("0900140005202456b7", "VIN_OV_FAULT_RESPONSE 0xB7"),
    ("0a0015000520242900aa", "VOUT_SCALE_LOOP 0.25"),
    ("090016000540242001", "encode_voltage -> get_vout_mode: VOUT_MODE again (not cached yet)"),
    ("0a001700052024214d02", "VOUT_COMMAND 1.15 V"),
    ("0a001800052024240004", "VOUT_MAX 2.0 V"),
    ("0a0019000520242b0002", "VOUT_MIN 1.0 V"),
    ("0a001a00052024408002", "VOUT_OV_FAULT_LIMIT x1.25"),
    ("0a001b00052024425202", "VOUT_OV_WARN_LIMIT x1.16"),
    ("0a001c00052024253302", "VOUT_MARGIN_HIGH x1.10"),
    ("0a001d0005202426cd01", "VOUT_MARGIN_LOW x0.90"),
    ("0a001e0005202443cd01", "VOUT_UV_WARN_LIMIT x0.90"),
    ("0a001f00052024448001", "VOUT_UV_FAULT_LIMIT x0.75"),
    ("0a0020000520244a20db", "IOUT_OC_WARN_LIMIT 25 A"),
    ("0a00210005202446c0db", "IOUT_OC_FAULT_LIMIT 30 A"),
    ("0900220005202447c0", "IOUT_OC_FAULT_RESPONSE 0xC0"),
    ("0a0023000520245148eb", "OT_WARN_LIMIT 105 C"),
    ("0a0024000520244f44f2", "OT_FAULT_LIMIT 145 C"),
    ("0900250005202450ff", "OT_FAULT_RESPONSE 0xFF"),
    ("0a002600052024600000", "TON_DELAY 0"),
    ("0a0027000520246100c3", "TON_RISE 3 ms"),
    ("0a002800052024620000", "TON_MAX_FAULT_LIMIT 0"),
    ("09002900052024633b", "TON_MAX_FAULT_RESPONSE 0x3B"),
    ("0a002a00052024640000", "TOFF_DELAY 0"),
    ("0a002b00052024650000", "TOFF_FALL 0"),
    ("0a002c00052024eeffff", "PIN_DETECT_OVERRIDE 0xFFFF"),
    ("09002d000540247902", "STATUS_WORD after config"),
    ("0a002e00052024214d02", "init_power_controller: set_vout_target(1.15 V)"),
    ("08002f0005202403", "clear_faults"),
    ("090030000540243502", "dump_configuration: VIN_ON"),
    ("090031000540243602", "dump_configuration: VIN_OFF"),
    ("090032000540245502", "dump_configuration: VIN_OV_FAULT_LIMIT"),
    ("090033000540245802", "dump_configuration: VIN_UV_WARN_LIMIT"),
    ("090034000540245601", "dump_configuration: VIN_OV_FAULT_RESPONSE"),
    ("090035000540242402", "dump_configuration: VOUT_MAX"),
    ("090036000540244002", "dump_configuration: VOUT_OV_FAULT_LIMIT"),
    ("090037000540244202", "dump_configuration: VOUT_OV_WARN_LIMIT"),
    ("090038000540242502", "dump_configuration: VOUT_MARGIN_HIGH"),
    ("090039000540242102", "dump_configuration: VOUT_COMMAND"),
    ("09003a000540242602", "dump_configuration: VOUT_MARGIN_LOW"),
    ("09003b000540244302", "dump_configuration: VOUT_UV_WARN_LIMIT"),
    ("09003c000540244402", "dump_configuration: VOUT_UV_FAULT_LIMIT"),
    ("09003d000540242b02", "dump_configuration: VOUT_MIN"),
    ("09003e000540244a02", "dump_configuration: IOUT_OC_WARN_LIMIT"),
    ("09003f000540244602", "dump_configuration: IOUT_OC_FAULT_LIMIT"),
    ("090040000540244701", "dump_configuration: IOUT_OC_FAULT_RESPONSE"),
    ("090041000540245102", "dump_configuration: OT_WARN_LIMIT"),
    ("090042000540244f02", "dump_configuration: OT_FAULT_LIMIT"),
    ("090043000540245001", "dump_configuration: OT_FAULT_RESPONSE"),
    ("090044000540248802", "dump_configuration: READ_VIN"),
    ("090045000540248b02", "dump_configuration: READ_VOUT"),
    ("090046000540248c02", "dump_configuration: READ_IOUT"),
    ("090047000540248d02", "dump_configuration: READ_TEMPERATURE_1"),
    ("090048000540246002", "dump_configuration: TON_DELAY"),
    ("090049000540246102", "dump_configuration: TON_RISE"),
    ("09004a000540246202", "dump_configuration: TON_MAX_FAULT_LIMIT"),
    ("09004b000540246301", "dump_configuration: TON_MAX_FAULT_RESPONSE"),
    ("09004c000540246402", "dump_configuration: TOFF_DELAY"),
    ("09004d000540246502", "dump_configuration: TOFF_FALL"),
    ("09004e000540240401", "dump_configuration: PHASE"),
    ("09004f00054024ec02", "dump_configuration: STACK_CONFIG"),
    ("09005000054024e401", "dump_configuration: SYNC_CONFIG"),
    ("090051000540243702", "dump_configuration: INTERLEAVE"),
    ("090052000540241901", "dump_configuration: CAPABILITY"),
    ("090053000540240101", "dump_configuration: OPERATION"),
    ("090054000540240201", "dump_configuration: ON_OFF_CONFIG"),
    ("09005500054024b106", "dump_configuration: COMPENSATION_CONFIG (block of 5)"),
    ("090056000540247902", "dump_configuration: STATUS_WORD"),
]
# ^ dump_configuration's detail reads (STATUS_VOUT and the like) follow only when STATUS_WORD
#   flags a fault; the emulated regulator is off and flags only OFF (bit 6) here, which
#   dump_configuration does not follow up.

BRING_UP = [
    ("07005700060000", "BM13xxThread actor start: reset_line.assert()"),
    ("090058000520240180", "initialize_chain: voltage_regulator.enable(): OPERATION = On"),
    ("090059000540240101", "write_operation reads OPERATION back"),
    ("07005a00060001", "reset_line.release()"),
]

MONITOR = [
    ("09005b0005404c0101", "monitor_tick: get_external_temperature high"),
    ("09005c0005404c1001", "low"),
    ("09005d0005404c4c01", "get_fan_speed: FAN_SETTING"),
    ("09005e0005404c4601", "get_rpm: TACH (mujina names 0x46 TACH_HIGH)"),
    ("09005f0005404c4701", "0x47 (TACH_LOW in mujina's names)"),
    ("090060000540247902", "check_status: STATUS_WORD"),
    ("090061000540248802", "get_vin"),
    ("090062000540248b02", "get_vout"),
    ("0900630005202404ff", "get_iout: PHASE = all"),
    ("090064000540248c02", "READ_IOUT"),
    ("090065000540248d02", "get_temperature"),
]
# ^ get_power repeats get_vout and get_iout; left out.

# ------------------------------------------------------------------------------ the data port
# initialize_chain after the reset release: three version masks and the chip-id read are the
# frames test_foreign_hosts_asic plays for ESP-Miner (MidstateConfig::full_rolling = 0x9000FFFF);
# then, in initialize_chain's order:
CHAIN_CONFIG = frames("""
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
""".replace(" ", ""))
# ^ SoftResetControl::defaults(BM1370) 0x00070000, MiscControl, ChainInactive, SetChipAddress 0,
#   clock select and clock delay, the ticket mask (Log2Difficulty of 1 nonce/s at the 1.2 TH/s
#   nameplate: 2^8, 00 00 00 FF), IoDriverStrength::normal 0x00011111; per chip core_reset
#   0x000701F0, MiscControl, clock select, clock delay, core enable 0xAA; AdcCtrl1, AnalogMux,
#   AdcCtrl1, nonce_bin_overflow.
# The ramp, 76 broadcast PLL writes: calculate_pll picks, for each frequency, the least error and
# then the lowest VCO with fb_div 0xA0..0xEF, VCO 1600..3200 MHz, ref_div 2 before 1, post
# dividers from 7 down; flag 0x50 from a 2400 MHz VCO (PllDivider::new). First 56.25 MHz
# (A2/2/6x6), last 525 MHz (A8/2/4x1).
RAMP = frames("""
55aa5109000840a202550f
55aa5109000840af026408
55aa5109000840a5025408
55aa5109000840a8026311
55aa5109000840b602630c
55aa5109000840a802531a
55aa5109000840b4025312
55aa5109000840a002431e
55aa5109000840aa024315
55aa5109000840a2025214
55aa5109000840ab025212
55aa5109000840a0023312
55aa5109000840a802330c
55aa5109000840a502420c
55aa5109000840a102611d
55aa5109000840a802611b
55aa5109000840af026119
55aa5109000840b6026106
55aa5109000840a202511b
55aa5109000840a8025110
55aa5109000840ae02510a
55aa5109000840b4025118
55aa5109000840ba02511c
55aa5109000840a0024114
55aa5109000840a5024103
55aa5109000840aa02411f
55aa5109000840af024108
55aa5109000840a2022218
55aa5109000840b902410b
55aa5109000840ab02221e
55aa5109000850c3024101
55aa5109000840a0023118
55aa5109000840a4023117
55aa5109000840a8023106
55aa5109000840ac023109
55aa5109000840b0023101
55aa5109000840b402310e
55aa5109000840a1026018
55aa5109000840bc023110
55aa5109000840a802601e
55aa5109000850c402310f
55aa5109000840af02601c
55aa5109000850cc023111
55aa5109000840b6026003
55aa5109000850d4023116
55aa5109000840a202501e
55aa5109000840a502501c
55aa5109000840a8025015
55aa5109000840ab025018
55aa5109000840ae02500f
55aa5109000840b102500a
55aa5109000840b402501d
55aa5109000840b7025010
55aa5109000840ba025019
55aa5109000840bd02501b
55aa5109000840a0024011
55aa5109000850c302501e
55aa5109000840a5024006
55aa5109000850c9025015
55aa5109000840aa02401a
55aa5109000850cf02500f
55aa5109000840af02400d
55aa5109000850d502501d
55aa5109000840b4024007
55aa5109000850db025019
55aa5109000840b902400e
55aa5109000850e102501c
55aa5109000840be02400c
55aa5109000850e7025006
55aa5109000850c3024004
55aa5109000850ed02500d
55aa5109000840a002301d
55aa5109000840a2023008
55aa5109000840a4023012
55aa5109000840a6023007
55aa5109000840a8023003
""")
FINAL = frames("""
55aa5109001000001eb50f
55aa510900a49000ffff1c
""")
# ^ HashCountingNumber 0x1EB5 (bm1370()'s "factory value observed in captures"), MidstateConfig.
READBACK = [  # RegisterClient::read(address 0, register): what a healthy chip answers
    ("55aa4205001819", 0x18, "f000c100"),  # MiscControl, as written
    ("55aa4205001400", 0x14, "000000ff"),  # TicketMask, as written
    ("55aa4205000803", 0x08, "c0a80230"),  # PllDivider 40 A8 02 30 with bit 31 (LOCKED) set
]


def control(port: serial.Serial, packet: str) -> bytes:
    """ControlChannel::send_packet in V0: write, then one answer, LEN (data only) ID DATA, whose id
    must be the request's; returns the data."""
    request = bytes.fromhex(packet)
    port.write(request)
    head = read_for(port, 3, CONTROL_TIMEOUT)
    assert len(head) == 3, f"no answer to {packet} within {CONTROL_TIMEOUT} s"
    length, ident = head[0] | head[1] << 8, head[2]
    assert ident == request[2], f"answer id {ident} to request {request[2]}"
    data = read_for(port, length, CONTROL_TIMEOUT)
    assert len(data) == length, f"{packet}: answer cut short"
    assert not (data[:1] == b"\xff" and data[1:2] in (b"\x10", b"\x11", b"\x12")), f"{packet}: error {data.hex()}"
    return data


def play(port: serial.Serial, script: list[tuple[str, str]]) -> dict[str, bytes]:
    return {what: control(port, packet) for packet, what in script}


def test_mujina_brings_up_a_gamma_on_the_v0_firmware_and_mines():
    with BitaxeRawEmulator("bm1370", 1, 1e9, 1.0, framing=c.FRAMING_V0) as emu, \
            serial.Serial(emu.control_path, 115200, timeout=0) as ctl, \
            serial.Serial(emu.data_path, 115200, timeout=0) as data:
        answers = play(ctl, ATTACH)
        # What mujina checks: EMC2101 manufacturer 0x5D and product 0x16/0x28, the TPS546 block
        # read (a count, then an id in DEVICE_ID1..3), VOUT_MODE's exponent, the writes it reads back.
        assert answers["Emc2101::init read MFG_ID"] == b"\x5d"
        assert answers["Emc2101::init read PRODUCT_ID"] in (b"\x16", b"\x28")
        device_id = answers["Tps546::init verify_device_id: IC_DEVICE_ID, 7 bytes"]
        assert device_id[0] == 6 and device_id[1:] in TPS546_DEVICE_IDS
        assert answers["read VOUT_MODE"][0] & 0x1F == 0x17  # exponent -9
        assert answers["dump_configuration: VOUT_COMMAND"] == (589).to_bytes(2, "little")  # 1.15 V
        assert answers["dump_configuration: VOUT_MAX"] == (1024).to_bytes(2, "little")
        assert answers["dump_configuration: VIN_ON"] == (0xCA66).to_bytes(2, "little")  # SLINEAR11 4.8 V
        assert answers["dump_configuration: ON_OFF_CONFIG"] == b"\x1b"
        assert answers["dump_configuration: OPERATION"] == b"\x00"
        assert answers["dump_configuration: READ_VOUT"] == b"\x00\x00", "no core voltage while off"
        assert answers["dump_configuration: COMPENSATION_CONFIG (block of 5)"][0] in (0, 5)
        assert emu.i2c_hz == 100_000 and emu.fan_percent == 100 and not emu.regulator_on
        assert emu.chain.held, "reset low and regulator off: the chain is idle"

        answers = play(ctl, BRING_UP)
        assert answers["write_operation reads OPERATION back"] == b"\x80", "Tps546 enable_output's check"
        assert not emu.chain.held and abs(emu.vout - 1.15) < 2**-9

        send_all(data, frames("\n".join([BM1370_VERSION_MASK] * 3 + [BM1370_READ_CHIP_ID])))
        assert count_chips(data, 11) == [bytes.fromhex("aa55137000000000000010")]
        send_all(data, CHAIN_CONFIG + RAMP + FINAL)
        assert len(RAMP) == 76
        # wait until the emulator has applied the frames (what the asserts below read), not a fixed time
        wait_for(lambda: (emu.chain.initialised
                          and emu.chain.frequency == 525.0
                          and emu.chain.ticket_difficulty == 256),
                 10, "the host's set-up applied")
        assert emu.chain.initialised and emu.chain.frequency == 525.0 and emu.chain.ticket_difficulty == 256
        for packet, reg, value in READBACK:
            data.reset_input_buffer()
            data.write(bytes.fromhex(packet))
            reply = read_for(data, 11, 1.0)
            assert reply[:2] == b"\xaa\x55" and reply[2:6].hex() == value and reply[6] == 0 and reply[7] == reg, \
                f"register {reg:#04x} reads back {reply.hex()}"
        esp_header_chip_mines(emu.chain, data, BM1370_GENESIS_JOB, 24)

        answers = play(ctl, MONITOR)
        msb, lsb = answers["monitor_tick: get_external_temperature high"][0], answers["low"][0]
        assert c.emc2101_temperature(msb, lsb) == 45.0
        assert answers["check_status: STATUS_WORD"] == b"\x00\x00", "no fault while hashing"
        assert abs(c.linear11_to_float(int.from_bytes(answers["get_vin"], "little")) - 5.0) < 0.25
        assert answers["get_vout"] == (589).to_bytes(2, "little")
        assert c.linear11_to_float(int.from_bytes(answers["READ_IOUT"], "little")) > 0
        tach = answers["get_rpm: TACH (mujina names 0x46 TACH_HIGH)"][0] \
            | answers["0x47 (TACH_LOW in mujina's names)"][0] << 8
        assert c.emc2101_rpm(tach) == emu.rpm  # the datasheet's order: 0x46 low byte, 0x47 high
