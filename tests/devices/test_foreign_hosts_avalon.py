"""cgminer's Avalon drivers, played against the emulator over its pty byte for byte (issue 16, "a
test that plays the host side exactly as cgminer's or bfgminer's driver does"). Each script is one
published driver at its default options, in its order and with its pauses:

- Avalon7: driver-avalon7.c as in jameshilliard/cgminer a8bb6e8e (the 2016 Mikeqin / Con Kolivas
  driver for the 711/721/741): avalon7_auc_init, detect_modules (DETECT, SYNC, the next id), avalon7_scanhash step 3
  (avalon7_init_setting SET, avalon7_set_voltage, avalon7_set_freq per miner, avalon7_set_ss_param,
  avalon7_set_finish), polling (with the fan word every 2 s), avalon7_sswork_update (the stratum
  packets, AUC INFO, JOB_FIN), decode_pkg for every reply.
- Avalon8: driver-avalon8.c as in XzxEmbedded/cgminer 07b5aaec (Canaan's 821/841 driver, four PLLs):
  the same flow with its own SET (freq-sel 3, flags 7, nonce mask 24, mux and h2ltime words),
  SET_VOLT level 5, SET_PLL 0:0:0:650 MHz, SET_SS with th_add.
- Avalon4: driver-avalon4.c as in wareck/cgminer-gekko dd28e5f9 (ckolivas cgminer 4.x): the first
  poll after a 600 ms pause finds no module and detects (DETECT with the frequency limits and NTC B),
  avalon4_update sends the job, then per module avalon4_stratum_set (SET), avalon4_adjust_vf
  (SET_VOLT, SET_FREQ) and the broadcast FINISH; replies carry little-endian CRCs and N + 0x4000. The
  same script drives an MM60 (Avalon6: no adjust_vf, plain N, STATUS [8] summed over its chips).

The settings and job packets are literals below (built once from those sources' formulas with their
defaults; docs/avalon.md §B7.1 to §B7.3 shows the arithmetic); DETECT, SYNC, POLLING and TARGET are
built per call by `mm_packet`, the layout of avalon7_init_pkg, from the fields the driver fills in.
Every reply is parsed the way the driver's decode_pkg does, and every nonce is rebuilt the host's
way (nonce2 into the genesis coinbase little-endian, the txid as merkle root, N as header bytes
76..79) and hashed with the C core.

The nano 2.0 / Avalon4 mini (avalonm, driver-avalon-miner.c) are USB HID sticks with no pty emulator
(tests/devices/test_avalon_hid.py plays them against an in-process report fake), so no script here.
"""

from __future__ import annotations

import binascii
import time

import pytest
import serial
from miner.drivers.avalon import emulator as avalon_emulator
from miner.drivers.avalon.emulator import AvalonEmulator

from miner.core import hashing
from miner.core.targets import difficulty_to_target
from tests.devices.test_foreign_hosts import MINE_DIFFICULTY, read_for

# How long a reply may take before it counts as none (cgminer's USB read timeout, in usbutils.c, was
# not read; the emulated AUC answers within milliseconds and NAKs an I2C read nobody answers).
READ_TIMEOUT = 0.5
XDELAY = 19200  # AVA7_AUC_XDELAY, AVA8_AUC_XDELAY, AVA4_AUC_XDELAY: cgsleep_ms(xdelay / 4800 + 1) per xfer
POLLING_DELAY = 0.020  # AVA7/8/4_DEFAULT_POLLING_DELAY 20 ms before each module's POLLING
FAN_INTERVAL = 2.0  # polling(): the fan word goes out when more than 2 s passed since the last one


def lines(text: str) -> list[bytes]:
    return [bytes.fromhex(line.replace(" ", "")) for line in text.strip().splitlines()]


# docs/avalon.md §B10.3: the genesis block as a Stratum job (job id "1", CRC 0x2672, pool 0, nonce2
# 4 bytes at coinbase offset 43, no merkle branches), the packets avalon7/8_stratum_pkgs send for it.
# TARGET is replaced below by the one for MINE_DIFFICULTY (a CPU-paced emulator).
GENESIS_STATIC_78 = bytes.fromhex("434e11000101000000cc0000002b00000004000000240000000000000000ffffffff000000009545")
GENESIS_JOB_ID_78 = bytes.fromhex("434e1200010126720000000000000000000000000000000000000000000000000000000000006884")
GENESIS_COINBASE_PKTS = lines("""
434e130001086a09e667bb67ae853c6ef372a54ff53a510e527f9b05688c1f83d9ab5be0cd19f9a9
434e1300020801000000010000000000000000000000000000000000000000000000000000007dd2
434e130003080000000000ffffffff4d04ffff001d0104455468652054696d65732030332f4a0d09
434e13000408616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f662073110f
434e1300050865636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a3ff0
434e1300060801000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a6792f49
434e1300070862e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a12b5
434e130008084c702b6bf11d5fac0000000000000000000000000000000000000000000000008177
""")
GENESIS_HEADER_PKTS = lines("""
434e150001040000000100000000000000000000000000000000000000000000000000000000f0e6
434e1500020400000000000000000000000000000000000000000000000000000000000000000000
434e1500030400000000495fab291d00ffff00000000000000800000000000000000000000006fdd
434e150004040000000000000000000000000000000000000000000000000000000080020000b358
""")
JOB_FIN = bytes.fromhex("434e1700010100000000000000000000000000000000000000000000000000000000000000000000")
# The genesis coinbase is COINBASE packets 2..8 (packet 1 is the SHA-256 state before it: the IV).
GENESIS_COINBASE = b"".join(pkt[6:38] for pkt in GENESIS_COINBASE_PKTS[1:])[:204]
POLLING = bytes.fromhex("434e3000010100000000000000000000000000000000000000000000000000000000000000000000")

# avalon7_scanhash step 3 for a new 721 module at cgminer's defaults (driver-avalon7.h):
# SET: [4..7] freq_sel 0, [8] = smart speed 1 | nonce check 2 | asic_debug (true) << 2 = 7, [9] mask 29;
# SET_VOLT: encode_voltage(4981, the 721's set_voltage) = 0x8000 | (4981 - 3889) / 78 = 0x800e a miner;
# SET_PLL idx 1..4 of 4: cpm_table[f / 12 - 2] for 600 636 672 708 744 780 MHz, then
# (0x2000000 / 780) * 40 / 4 = 0x69064 and 0x2000000 / 780 * 98 / 100 = 0xa4ad;
# SET_SS: th_pass 162, th_fail 10921, th_init 0xffff / 2, th_ms 1, th_timeout 0; SET_FIN.
AVALON7_SETTINGS = lines("""
434e200001010000000000000000071d000000000000000000000000000000000000000000004c42
434e220001010000800e0000800e0000800e0000800e000000000000000000000000000000001bdb
434e2500010401363813013698130136f813013758130137b81301240813000690640000a4adfbf7
434e2500020401363813013698130136f813013758130137b81301240813000690640000a4adfbf7
434e2500030401363813013698130136f813013758130137b81301240813000690640000a4adfbf7
434e2500040401363813013698130136f813013758130137b81301240813000690640000a4adfbf7
434e26000101000000a200002aa900007fff0000000100000000000000000000000000000000b38a
434e2100010100000000000000000000000000000000000000000000000000000000000000000000
""")
AVALON7_DEFAULT_FREQS = (600, 636, 672, 708, 744, 780)
AVALON7_721_SET_VOLTAGE = 4981
# adjust_fan on the first fan tick: fan_pct starts at 5 + (5 + 100) / 3 = 40, the module is below the
# 90 C target with no change, so 40 - 1 = 39 % -> get_fan_pwm(39) = 0x3ff - 39 * 0x3ff / 100 = 0x271.
AVALON7_FAN_WORD = 0x80000271

# avalon8_scanhash step 3 for an 841 at XzxEmbedded 07b5aaec's defaults (driver-avalon8.h):
# SET: [4..7] freq_sel 3, [8] = smart speed 1 | nonce check 1 << 1 | roll enable 1 << 2 = 7, [9] mask 24,
# [10..13] mux_l2h 0, [14..17] mux_h2l 1, [18..21] h2ltime0_spd 3; SET_VOLT level 5 -> 0x8005 a miner;
# SET_PLL idx 1..4 of 4: cpm_table[f / 25] for 0 0 0 650 MHz, then 100 and 419430400 / 650 * 83 / 100;
# SET_SS: th_pass 160, th_fail 8000, th_init 32767, th_ms 5, th_timeout 20000, th_add 1; SET_FIN.
AVALON8_SETTINGS = lines("""
434e200001010000000000000003071800000000000000010000000300000000000000000000b59e
434e2200010100008005000080050000800500008005000000000000000000000000000000003942
434e2500010404400000044000000440000000998e610000006400082c1b00000000000000009ab1
434e2500020404400000044000000440000000998e610000006400082c1b00000000000000009ab1
434e2500030404400000044000000440000000998e610000006400082c1b00000000000000009ab1
434e2500040404400000044000000440000000998e610000006400082c1b00000000000000009ab1
434e26000101000000a000001f4000007fff0000000500004e2000000001000000000000000056b0
434e2100010100000000000000000000000000000000000000000000000000000000000000000000
""")
AVALON8_DEFAULT_FREQS = (0, 0, 0, 650)
# fan_pct starts at fan_min 5; below the 70 C target with no change it would go to 4, clamped to 5:
# get_fan_pwm(5) = 0x3ff - 5 * 0x3ff / 100 = 0x3cc.
AVALON8_FAN_WORD = 0x800003CC


def mm_packet(kind: int, data: bytes, idx: int = 1, cnt: int = 1) -> bytes:
    """avalon7_init_pkg: "CN", type, opt 0, idx, cnt, 32 data bytes, CRC-16/XMODEM of the data BE."""
    data = data.ljust(32, b"\0")
    return b"CN" + bytes((kind, 0, idx, cnt)) + data + binascii.crc_hqx(data, 0).to_bytes(2, "big")


def polling(led: int = 0, fan_word: int = 0) -> bytes:
    """polling(): [0..3] red LED, [4..7] fan PWM | 0x80000000 on a fan tick, else 0."""
    return mm_packet(0x30, led.to_bytes(4, "big") + fan_word.to_bytes(4, "big"))


def target_packet(difficulty: float) -> bytes:
    """set_target(pool->sdiff): the share target as a little-endian 256-bit integer."""
    return mm_packet(0x16, difficulty_to_target(difficulty).to_bytes(32, "little"))


def be32(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "big")


class CgminerAuc:
    """cgminer's AUC I/O as avalon7_auc_xfer / avalon8_auc_xfer / avalon4_auc_xfer do it: clear the
    input, write (RESET/DEINIT/INIT/INFO padded to 64 bytes, XFER only its length), sleep
    xdelay / 4800 + 1 ms, read rx + 4 bytes."""

    def __init__(self, port: serial.Serial):
        self.port = port

    def request(self, code: int, payload: bytes = b"", rx: int = 0) -> bytes:
        frame = bytes((4 + len(payload), 0, 0, code)) + payload
        return self._exchange(frame.ljust(64, b"\0"), rx)

    def xfer(self, address: int, packet: bytes, rx: int) -> bytes:
        """avalon7_auc_init_pkg AVA7_IIC_XFER: [0] 8 + 40, [3] 0xa5, [4] tx 40, [5] rx, [7] address."""
        return self._exchange(bytes((8 + len(packet), 0, 0, 0xA5, len(packet), rx, 0, address)) + packet, rx)

    def _exchange(self, frame: bytes, rx: int) -> bytes:
        self.port.reset_input_buffer()  # usb_buffer_clear
        self.port.write(frame)
        time.sleep((XDELAY // 4800 + 1) / 1000)  # cgsleep_ms(opt_aucxdelay / 4800 + 1)
        return read_for(self.port, rx + 4, READ_TIMEOUT)

    def init(self) -> bytes:
        """avalon7_auc_init: drain, RESET, DEINIT, INIT(400 kHz, xdelay) -> "AUC-YYYYMMDD"."""
        self.port.reset_input_buffer()
        read_for(self.port, 64, 0.05)  # "Try to clean the AUC buffer": one read, whatever comes
        for code in (0xA0, 0xA2):
            assert self.request(code) == bytes((4, 0, 0, 0)), f"AUC request {code:#x}"
        reply = self.request(0xA1, (400_000).to_bytes(4, "little") + XDELAY.to_bytes(4, "little"), 12)
        assert reply[:4] == bytes((16, 0, 0, 0)) and reply[4:8] == b"AUC-", reply.hex()
        return reply[4:16]

    def info(self) -> bytes:
        """avalon7_auc_getinfo: INFO, rlen 7 -> tempADC(2) reqcnt respcnt txflag(2) state."""
        reply = self.request(0xA6, rx=7)
        assert len(reply) == 11 and reply[0] == 11, f"AUC INFO {reply.hex()}"
        return reply[4:]

    def packet(self, address: int, packet: bytes, crc_little_endian: bool = False) -> bytes | None:
        """avalon7_iic_xfer_pkg with a reply: the 40-byte packet if the whole reply came and its CRC is
        right (decode_pkg's checks), None when the module did not answer."""
        reply = self.xfer(address, packet, 40)
        if len(reply) != 44 or reply[0] != 44:
            return None
        ret = reply[4:]
        assert ret[:2] == b"CN", ret.hex()
        crc = int.from_bytes(ret[38:40], "little" if crc_little_endian else "big")
        assert binascii.crc_hqx(ret[6:38], 0) == crc, f"reply CRC: {ret.hex()}"
        return ret

    def send(self, address: int, packet: bytes) -> None:
        """avalon7_iic_xfer_pkg(addr, pkg, NULL) / send_bc_pkgs: rx 0, a bare header back."""
        assert self.xfer(address, packet, 0) == bytes((4, 0, 0, 0))


def detect(host: CgminerAuc, module_id: int, data: bytes = b"", crc_le: bool = False) -> bytes | None:
    """detect_modules: DETECT to the broadcast address with the id at [28..31], rx 40."""
    return host.packet(0, mm_packet(0x10, data.ljust(28, b"\0") + module_id.to_bytes(4, "big")), crc_le)


def genesis_header(nonce2: bytes, n: bytes) -> bytes:
    """submit_nonce2_nonce: nonce2 into the coinbase little-endian, the txid as the merkle root (no
    branches), N as header bytes 76..79."""
    coinbase = GENESIS_COINBASE[:43] + nonce2[::-1] + GENESIS_COINBASE[47:]
    return bytes.fromhex("01000000") + bytes(32) + hashing.sha256d(coinbase) + bytes.fromhex("29ab5f49ffff001d") + n


def verifies(header: bytes) -> bool:
    return int.from_bytes(hashing.sha256d(header), "little") <= difficulty_to_target(MINE_DIFFICULTY)


# ------------------------------------------------------------------------------ Avalon7 / Avalon8
class Av78Host:
    """What decode_pkg keeps per module (driver-avalon7.c / driver-avalon8.c)."""

    def __init__(self, dna: bytes, miners: int, asics: int, vout_ratio: int, freqs: tuple[int, ...],
                 freq_divisor: int):
        self.dna, self.miners, self.asics, self.vout_ratio = dna, miners, asics, vout_ratio
        self.set_frequency = freqs  # the same for every miner at the defaults
        self.freq_divisor = freq_divisor  # avalon7_api_stats: 128; avalon8_api_stats: 172
        self.temp_mm: int | None = None
        self.fan_cpm: int | None = None
        self.local_works = [0] * miners
        self.hw_works = [0] * miners
        self.error_code = [None] * (miners + 1)
        self.error_crc = [0] * miners
        self.get_voltage: list[int | None] = [None] * miners
        self.get_pll: list[tuple[int, ...] | None] = [None] * miners
        self.nonces = 0
        self.statuses = 0
        self.fan_after_pwm: int | None = None  # STATUS fan of a reply after the host sent a fan word
        self.pwm_sent = False

    def decode(self, ret: bytes) -> None:
        kind, opt, idx, cnt, data = ret[2], ret[3], ret[4], ret[5], ret[6:38]
        assert opt == self.dna[7], f"reply opt {opt:#x} is not DNA[7] (polling: Dup address)"
        if kind == 0x42:  # AVA7_P_NONCE
            miner, nonce2, ntime, n = be32(data, 0), data[4:8], be32(data, 8), data[12:16]
            assert miner & 0xFFFF < self.miners and data[18] | data[19] << 8 == 0, data.hex()  # miner, pool 0
            assert data[16:18] == bytes.fromhex("2672"), "job_idcmp: the CRC of job id \"1\""
            assert ntime == 0  # ntime roll; the emulator does not roll
            assert verifies(genesis_header(nonce2, n)), f"{ret.hex()} does not verify"
            self.nonces += 1
        elif kind == 0x41:  # AVA7_P_STATUS
            assert idx < self.miners and cnt == self.miners, (idx, cnt)
            temp = be32(data, 0)
            self.temp_mm = temp - (1 << 32) if temp & 0x80000000 else temp
            self.fan_cpm = be32(data, 4)
            if self.pwm_sent:
                self.fan_after_pwm = self.fan_cpm
            self.local_works[idx] += be32(data, 8)
            self.hw_works[idx] += be32(data, 12)
            self.error_code[idx] = be32(data, 16)
            self.error_code[cnt] = be32(data, 20)
            self.error_crc[idx] += be32(data, 24)
            self.statuses += 1
        elif kind == 0x46:  # AVA7_P_STATUS_VOLT: decode_voltage, integer arithmetic as in C
            for i in range(self.miners):
                self.get_voltage[i] = be32(data, 4 * i) * self.vout_ratio // self.asics // 100
        elif kind == 0x49:  # AVA7_P_STATUS_PLL: get_pll[idx][0..PLL_CNT)
            assert idx < self.miners, idx
            self.get_pll[idx] = tuple(be32(data, 4 * i) for i in range(len(self.set_frequency)))
        else:
            pytest.fail(f"a reply decode_pkg does not know: {ret.hex()}")

    def ghs_and_freq(self) -> tuple[float, float]:
        """avalon7_hash_cal and the GHSmm / Freq of avalon7_api_stats."""
        mhs = sum(c * f for counts in self.get_pll if counts for c, f in zip(counts, self.set_frequency, strict=True))
        return mhs / 1000, mhs / (self.asics * self.miners * self.freq_divisor)


def play_av78(model: str, versions: tuple[bytes, ...], settings: list[bytes], fan_word: int,
              vout_ratio: int, freq_divisor: int, defaults: tuple[int, ...]) -> tuple[AvalonEmulator, Av78Host]:
    with AvalonEmulator(model, rate_ghs=1.0, difficulty=MINE_DIFFICULTY) as emu, \
            serial.Serial(emu.path, 115200, timeout=0) as port:
        host = CgminerAuc(port)
        host.init()
        # avalon7_auc_detect -> detect_modules: id 1 answers, SYNC to it (with a reply buffer, which
        # the driver ignores), one AUC read drained; the loop goes on to id 2, which nobody answers.
        ack = detect(host, 1)
        assert ack is not None and ack[2] == 0x40 and ack[3] == 0, "ACKDETECT, opt 0"
        dna, version, asics_total = ack[6:14], ack[14:29], be32(ack[6:38], 23)
        assert version[:3] in versions, version  # the dev table, by the first three characters
        module = emu.modules[0]
        miners, asics = module.model.miners, module.model.asics
        assert asics_total == miners * asics
        host.xfer(1, mm_packet(0x31, dna), 40)  # AVA7_P_SYNC
        read_for(port, 64, 0.05)
        assert detect(host, 2) is None
        # avalon7_scanhash, first pass: mm_count is 0, so detect_modules again (only id 2 is tried).
        assert detect(host, 2) is None
        prepared = time.monotonic()  # avalon7_prepare set last_fan_adj just before
        for packet in settings:  # step 3, FREQ_INIT_MODE: the module's settings, no replies
            host.send(1, packet)
        assert module.settings == [0x20, 0x22] + [0x25] * miners + [0x26, 0x21], module.settings
        assert module.configured and module.miner_freqs == [defaults] * miners
        assert module.set_words is not None and module.set_words.smart_speed and module.set_words.nonce_check

        parsed = Av78Host(dna, miners, asics, vout_ratio, defaults, freq_divisor)
        time.sleep(POLLING_DELAY)
        first = host.packet(1, POLLING)  # step 4
        assert first is not None
        parsed.decode(first)

        # avalon7_sswork_update: the stratum packets to the broadcast address, AUC INFO, JOB_FIN.
        for packet in [GENESIS_STATIC_78, target_packet(MINE_DIFFICULTY), GENESIS_JOB_ID_78,
                       *GENESIS_COINBASE_PKTS, *GENESIS_HEADER_PKTS]:
            host.send(0, packet)
        temp_adc = int.from_bytes(host.info()[:2], "little")
        assert 0 < temp_adc < 1024, temp_adc  # auc_sensor = 3.3 * adc * 10000 / 1023
        host.send(0, JOB_FIN)

        last_fan = prepared
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
                parsed.nonces >= 2 and parsed.fan_after_pwm is not None and None not in parsed.get_pll):
            fan = 0
            if time.monotonic() - last_fan > FAN_INTERVAL:
                last_fan, fan = time.monotonic(), fan_word
            time.sleep(POLLING_DELAY)
            ret = host.packet(1, polling(0, fan))
            assert ret is not None, "a module that stops answering polls is detached after 10"
            parsed.pwm_sent |= bool(fan)
            parsed.decode(ret)
        assert parsed.nonces >= 2, f"only {parsed.nonces} NONCE packets in 30 s"
        assert parsed.fan_after_pwm is not None and None not in parsed.get_pll, "status rotation incomplete"
    return emu, parsed


def check_av78_status(emu: AvalonEmulator, parsed: Av78Host, fan_word: int, defaults: tuple[int, ...]) -> None:
    module = emu.modules[0]
    assert -40 < parsed.temp_mm < 125
    # The fan answers the PWM cgminer sent (0x3ff off .. 0 full): the duty cgminer asked for, in RPM.
    duty = (0x3FF - (fan_word & 0x3FF)) / 0x3FF
    assert parsed.fan_after_pwm == round(avalon_emulator.FAN_FULL_RPM * duty)
    assert sum(parsed.hw_works) == 0 and sum(parsed.error_crc) == 0
    assert parsed.error_code == [0] * (parsed.miners + 1)
    assert 0 < sum(parsed.local_works) <= module.nonce2_done  # works started, as counted by the module
    # STATUS_PLL: every core of every miner sits at a PLL that runs, so cgminer's Freq[] is the mean
    # of the frequencies that are set (not 0) and GHSmm is cores x that.
    running = [f for f in defaults if f]
    ghs, freq = parsed.ghs_and_freq()
    assert freq == pytest.approx(sum(running) / len(running), rel=1e-6)
    assert ghs == pytest.approx(parsed.miners * parsed.asics * parsed.freq_divisor * freq / 1000, rel=1e-6)


def test_cgminer_avalon7_driver_configures_polls_and_mines_an_emulated_avalon7():
    # AVA7_MM721_VOUT_ADC_RATIO = 3.3 / 1024 * 125 / 43 * 10000 * 100, kept in a uint16_t: 9368.
    emu, parsed = play_av78("avalon7", (b"711", b"721", b"741"), AVALON7_SETTINGS, AVALON7_FAN_WORD, 9368, 128,
                            AVALON7_DEFAULT_FREQS)
    check_av78_status(emu, parsed, AVALON7_FAN_WORD, AVALON7_DEFAULT_FREQS)
    # Vo[]: the voltage SET_VOLT chose (level 14 -> 3889 + 14 * 78 = 4981), read back through the ADC;
    # one ADC step is 9368 / 18 / 100 = 5 units.
    assert all(abs(v - AVALON7_721_SET_VOLTAGE) <= 6 for v in parsed.get_voltage), parsed.get_voltage


def test_cgminer_avalon8_driver_configures_polls_and_mines_an_emulated_avalon8():
    # AVA8_MM841_VOUT_ADC_RATIO = 3.3 / 4095 * 63 / 20 * 10000 * 100 -> 2538 in the uint16_t.
    emu, parsed = play_av78("avalon8", (b"821", b"841"), AVALON8_SETTINGS, AVALON8_FAN_WORD, 2538, 172,
                            AVALON8_DEFAULT_FREQS)
    check_av78_status(emu, parsed, AVALON8_FAN_WORD, AVALON8_DEFAULT_FREQS)
    assert emu.modules[0].set_words is not None and emu.modules[0].set_words.ntime_roll
    assert emu.modules[0].smart_speed == (160, 8000, 32767, 5, 20000, 1)
    # Vo[]: the chip voltage the emulator states for every level (AV8_CHIP_VOLTS), within one ADC step.
    assert all(abs(v - avalon_emulator.AV8_CHIP_VOLTS * 10000) <= 10 for v in parsed.get_voltage)


def test_cgminer_avalon7_options_show_in_the_status_and_the_hash_rate():
    """--avalon7-freq 360:396:432:468:504:540 --avalon7-voltage 4200: the same SET_PLL / SET_VOLT
    builders with other values. The module runs at the new clock (its emulated rate scales with the
    summed PLL frequencies) and its replies show what was set: Freq[] the new mean, Vo[] the voltage
    of the level cgminer's encode_voltage picked (0x8000 | (4200 - 3889) / 78 = level 3 -> 4123)."""
    freqs = (360, 396, 432, 468, 504, 540)
    cpm = (0x01477813, 0x01341813, 0x01347813, 0x0134D813, 0x01353813, 0x01359813)  # cpm_table[f / 12 - 2]
    timeout = ((0x2000000 // 540) * 40 // 4, 0x2000000 // 540 * 98 // 100)
    with AvalonEmulator("avalon7", rate_ghs=1.0, difficulty=MINE_DIFFICULTY) as emu, \
            serial.Serial(emu.path, 115200, timeout=0) as port:
        host = CgminerAuc(port)
        host.init()
        ack = detect(host, 1)
        assert ack is not None
        dna = ack[6:14]
        host.xfer(1, mm_packet(0x31, dna), 40)
        module = emu.modules[0]
        base = module.rate
        host.send(1, AVALON7_SETTINGS[0])
        host.send(1, mm_packet(0x22, (0x8003).to_bytes(4, "big") * 4))
        for miner in range(4):
            host.send(1, mm_packet(0x25, b"".join(w.to_bytes(4, "big") for w in cpm + timeout), miner + 1, 4))
        host.send(1, AVALON7_SETTINGS[6])
        host.send(1, AVALON7_SETTINGS[7])
        parsed = Av78Host(dna, 4, 18, 9368, freqs, 128)
        while None in parsed.get_pll or None in parsed.get_voltage:
            time.sleep(POLLING_DELAY)
            ret = host.packet(1, POLLING)
            assert ret is not None
            parsed.decode(ret)
        _, freq = parsed.ghs_and_freq()
        assert freq == pytest.approx(sum(freqs) / 6)
        assert all(abs(v - 4123) <= 6 for v in parsed.get_voltage), parsed.get_voltage
        assert module.rate == pytest.approx(base * sum(freqs) / sum(AVALON7_DEFAULT_FREQS))


# ------------------------------------------------------------------------------ Avalon4 (MM41)
# detect_modules: [0..3] freq_min 100, [4..7] freq_max 1000, [8..9] NTC B 3450, [28..31] the id.
AVALON4_DETECT_DATA = bytes.fromhex("00000064000003e80d7a")
# avalon4_stratum_pkgs: STATIC [20] (int) pool diff (0 at 0.001), [24] pool 0; JOB_ID with no pool.
AVALON4_STATIC = bytes.fromhex("434e11000101000000cc0000002b000000040000002400000000000000000000000000000000aa6b")
AVALON4_JOB_ID = bytes.fromhex("434e1200010126720000000000000000000000000000000000000000000000000000000000006884")
# avalon4_stratum_set: [0..3] 0 (ntime_offset = min(40, 4 ASICs) = the ASIC count: no roll word),
# [4..7] encode_voltage_ncp5392p(6875) = 0xa900, [8..11] 200 | 200 << 10 | 200 << 20, [12..15] nonce2
# start 0, [16..19] range 0xffffffff (one device, 4-byte nonce2), [20] smart speed 1 | nonce check 2,
# [21] speed bingo 255, [22] speed error 3. avalon4_adjust_vf (MM41, version >= "1501"): SET_VOLT opt 0
# with ten BE16 0xa900 (the order permuted by miner, all equal here), SET_FREQ opt 0 (all chips) with
# g_freq_array's 200 MHz word 0x1e278447 for the three PLLs and [12] miner 0 (all). Then FINISH.
AVALON4_SETTINGS = lines("""
434e20000101000000000000a9000c8320c800000000ffffffff03ff030000000000000000005508
434e22000101a900a900a900a900a900a900a900a900a900a9000000000000000000000000006449
434e230001011e2784471e2784471e278447000000000000000000000000000000000000000021e4
""")
AVALON4_FINISH = bytes.fromhex("434e2100010100000000000000000000000000000000000000000000000000000000000000000000")
AVALON4_FIRST_POLL_PAUSE = 0.6  # polling(): polling_first -> cgsleep_ms(600)


def decode_ncp5392p(word: int) -> int:
    """driver-avalon4.c decode_voltage_ncp5392p."""
    if word == 0xFF00:
        return 0
    code = int(f"{(word >> 8) & 0xFF:08b}"[::-1], 2)  # rev8
    return (0x59 - (code >> 1)) * 125 + 5000


def avalon4_fan_word(temp: int) -> int:
    """adjust_fan (MM41): fan_pct = fan_min + (max - min) * clamp(t - 65 + 30, 0, 32)^2 / 1024."""
    diff = min(max(temp - 65 + 30, 0), 32) ** 2
    pct = 10 + (100 - 10) * diff // 1024
    return 0x80000000 | (0x3FF - pct * 0x3FF // 100)


@pytest.mark.parametrize("model", ["avalon4", "avalon6"])
def test_cgminer_avalon4_driver_detects_sets_and_mines_an_emulated_module(model):
    """MM41 (avalon4) and MM60 (avalon6): detect_modules sets 10 x 4 or 2 x 40; an MM60 gets no
    avalon4_adjust_vf (its frequency goes in SET), reports plain N and STATUS [8] as the sum of its
    chips' MHz, and sends no STATUS_HW."""
    mm60 = model == "avalon6"
    miners, asics = (2, 40) if mm60 else (10, 4)
    with AvalonEmulator(model, rate_ghs=1.0, difficulty=MINE_DIFFICULTY) as emu, \
            serial.Serial(emu.path, 115200, timeout=0) as port:
        host = CgminerAuc(port)
        host.init()
        prepared = time.monotonic()  # avalon4_prepare: last_fan
        time.sleep(AVALON4_FIRST_POLL_PAUSE)
        # polling() with no module enabled -> detect_modules: ids from 1 until one gets no ACKDETECT.
        ack = detect(host, 1, AVALON4_DETECT_DATA, crc_le=True)
        assert ack is not None and ack[2] == 0x40, "ACKDETECT (its CRC little-endian)"
        dna, version = ack[6:14], ack[14:29]
        if mm60:
            assert version[:2] == b"60" and version[2:6] >= b"1512", version  # mm_cmp_1512: PLLADJ mode
        else:
            assert version[:2] == b"41" and version[2:6] >= b"1501", version  # mm_cmp_1501: adjust_vf
        assert be32(ack[6:38], 23) == miners * asics  # total ASICs
        assert detect(host, 2, AVALON4_DETECT_DATA, crc_le=True) is None
        # avalon4_update: detect_modules once more (id 2), the job, then the module's SET etc., FINISH.
        assert detect(host, 2, AVALON4_DETECT_DATA, crc_le=True) is None
        for packet in [AVALON4_STATIC, target_packet(MINE_DIFFICULTY), AVALON4_JOB_ID,
                       *GENESIS_COINBASE_PKTS, *GENESIS_HEADER_PKTS]:
            host.send(0, packet)
        host.info()
        for packet in AVALON4_SETTINGS[:1] if mm60 else AVALON4_SETTINGS:
            host.send(1, packet)
        host.send(0, AVALON4_FINISH)
        module = emu.modules[0]
        assert module.settings == ([0x20] if mm60 else [0x20, 0x22]) and module.freqs == (200, 200, 200)

        nonces, statuses, lw, hw_seen, temp, fan_word, fan_after = 0, 0, 0, 0, None, 0, None
        last_fan = prepared
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (nonces >= 2 and fan_after is not None and lw):
            fan = 0
            if temp is not None and time.monotonic() - last_fan > FAN_INTERVAL:
                last_fan, fan = time.monotonic(), avalon4_fan_word(temp)
                fan_word = fan_word or fan
            time.sleep(POLLING_DELAY)
            ret = host.packet(1, polling(0, fan), crc_little_endian=True)
            assert ret is not None
            assert ret[3] == dna[7], "polling: Dup address found"
            data = ret[6:38]
            if ret[2] == 0x42:  # AVA4_P_NONCE
                miner, pool, nonce2, ntime, n = (be32(data, i) for i in range(0, 20, 4))
                assert miner & 0xFFFF < miners and pool == 0 and ntime == 0
                assert data[20:22] == bytes.fromhex("2672")
                if not mm60:
                    n -= 0x4000  # MM40/41/50: the chip reports N + 0x4000
                assert verifies(genesis_header(nonce2.to_bytes(4, "big"), n.to_bytes(4, "big"))), ret.hex()
                nonces += 1
            elif ret[2] == 0x41:  # AVA4_P_STATUS
                temp = be32(data, 0)
                if fan_word:
                    fan_after = be32(data, 4)
                if mm60:
                    assert be32(data, 8) // (miners * asics) == 200  # get_frequency: sum / total_asics
                else:
                    assert abs(be32(data, 8) * 3968 // 65 - 200) < 3968 / 65  # one step of its unit
                assert decode_ncp5392p(be32(data, 12)) == 6875  # Vol[0.6875]: what SET set
                assert be32(data, 20) == 0 and be32(data, 24) == 1 and be32(data, 28) == 0  # HW, PG, error
                statuses += 1
            elif ret[2] == 0x44:  # AVA4_P_STATUS_LW: a 24-bit count a miner, added to the totals
                lw += sum(int.from_bytes(data[3 * i : 3 * i + 3], "big") for i in range(miners))
            elif ret[2] == 0x45 and not mm60:  # AVA4_P_STATUS_HW
                hw_seen += sum(int.from_bytes(data[3 * i : 3 * i + 3], "big") for i in range(miners))
            else:
                pytest.fail(f"a reply decode_pkg does not expect from {model}: {ret.hex()}")
        assert nonces >= 2, f"only {nonces} NONCE packets in 30 s"
        assert fan_after is not None and statuses >= 2 and 0 < lw <= module.nonce2_done and hw_seen == 0
        # The fan answers the first PWM word (temperature steady, so every later one is the same).
        assert fan_after == round(avalon_emulator.FAN_FULL_RPM * (0x3FF - (fan_word & 0x3FF)) / 0x3FF)
