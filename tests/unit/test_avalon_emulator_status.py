"""The Avalon emulator's status replies decoded the way cgminer's decode_pkg does (docs/avalon.md
§B7.1 to §B7.4): STATUS_VOLT gives back the voltage set, STATUS_PLL's core counts give back the mean
set frequency, the fan follows its PWM word, Avalon4 STATUS_LW counts add up, MM60 frequencies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from miner.drivers.avalon import emulator as emu
from miner.drivers.avalon import protocol as p

from miner.core.targets import DIFF1_TARGET

# driver-avalon7.h: AVA7_MM7x1_VOUT_ADC_RATIO as kept in the uint16_t vout_adc_ratio.
AV7_RATIO_U16 = {"711": 9368, "721": 9368, "741": 10151}
AV8_RATIO_U16 = 2538  # driver-avalon8.h AVA8_MM841_VOUT_ADC_RATIO


def module(version: str) -> emu.Module:
    # stop() is already true, so the hashing thread ends at once: only the packet side is exercised.
    return emu.Module(1, version, 1e9, DIFF1_TARGET, lambda: True)


def status_of(m: emu.Module, kind: int, miner: int | None = None) -> p.Packet:
    """Poll until the rotation hands out a `kind` packet (for miner `miner`: its idx on Avalon7/8)."""
    for _ in range(64):
        packet = m.addressed(p.Packet(p.POLLING))
        assert packet is not None
        if packet.type == kind and (miner is None or packet.idx == miner):
            return packet
    raise AssertionError(f"no {kind:#x} for miner {miner} in 64 polls")


@pytest.mark.parametrize("head", ["711", "721", "741"])
@pytest.mark.parametrize("level", range(16))
def test_avalon7_status_volt_decodes_to_the_voltage_set(head, level):
    m = module(f"{head}1804-abcde00")
    word = 0x8000 | level  # encode_voltage's level word
    m.addressed(p.WordList(p.SET_VOLT, (word,) * 4).to_packet())
    packet = status_of(m, p.STATUS_VOLT)
    step = AV7_RATIO_U16[head] // m.model.asics // 100 + 1
    for i in range(4):
        vo = packet.word(4 * i) * AV7_RATIO_U16[head] // m.model.asics // 100  # decode_voltage
        assert abs(vo - (3889 + level * 78)) <= step, (head, level, vo)


def test_avalon8_status_volt_decodes_to_a_real_chip_voltage():
    m = module("8411811-abcde00")
    packet = status_of(m, p.STATUS_VOLT)
    vo = packet.word(0) * AV8_RATIO_U16 // m.model.asics // 100
    assert abs(vo - emu.AV8_CHIP_VOLTS * 10000) <= AV8_RATIO_U16 // m.model.asics // 100 + 1


av7_freq = st.sampled_from(range(24, 1405, 12))  # AVA7_DEFAULT_FREQUENCY_MIN 24: no 0 MHz PLL
av8_freq = st.sampled_from(range(0, 1201, 25))


@settings(max_examples=30, deadline=None)  # a module (and its thread) an example; a busy box is slow
@given(st.tuples(*[av7_freq] * 6), st.integers(0, 3))
def test_avalon7_status_pll_gives_cgminers_freq_the_mean_set_frequency(freqs, miner):
    m = module("7211804-abcde00")
    m.addressed(p.set_pll_packet(p.Family.AVALON7, miner, 4, freqs))
    counts = [status_of(m, p.STATUS_PLL, miner).word(4 * j) for j in range(6)]
    assert sum(counts) == m.model.asics * 128
    mhs = sum(c * f for c, f in zip(counts, freqs, strict=True))  # avalon7_hash_cal for this miner
    assert mhs / (m.model.asics * 128) == pytest.approx(sum(freqs) / 6, rel=0.01)


@settings(max_examples=30, deadline=None)  # a module (and its thread) an example; a busy box is slow
@given(st.tuples(*[av8_freq] * 4))
def test_avalon8_status_pll_counts_only_running_plls(freqs):
    m = module("8411811-abcde00")
    if not any(freqs):
        return
    m.addressed(p.set_pll_packet(p.Family.AVALON8, 0, 4, freqs))
    counts = [status_of(m, p.STATUS_PLL, 0).word(4 * j) for j in range(4)]
    assert sum(counts) == m.model.asics * 172
    assert all(c == 0 for c, f in zip(counts, freqs, strict=True) if f == 0)


@settings(max_examples=30, deadline=None)  # a module (and its thread) an example; a busy box is slow
@given(st.tuples(*[av7_freq] * 6))
def test_avalon7_rate_follows_the_summed_pll_frequencies(freqs):
    m = module("7211804-abcde00")
    for miner in range(4):
        m.addressed(p.set_pll_packet(p.Family.AVALON7, miner, 4, freqs))
    assert m.rate == pytest.approx(m.base_rate * sum(freqs) / sum(m.model.default_freqs))


@settings(max_examples=30, deadline=None)  # a module (and its thread) an example; a busy box is slow
@given(st.integers(0, 0x3FF), st.integers(0, 0x3FF))
def test_the_fan_follows_its_pwm_word_inverted(a, b):
    m = module("7211804-abcde00")
    speeds = []
    for pwm in (a, b):
        m.addressed(p.Packet(p.POLLING, (0).to_bytes(4, "big") + (0x80000000 | pwm).to_bytes(4, "big")))
        speeds.append(m.fan_rpm())
    assert speeds[0] >= speeds[1] if a <= b else speeds[0] <= speeds[1]  # more PWM, slower fan
    # a POLLING without bit 31 in [4..7] leaves the fan as it is
    m.addressed(p.Packet(p.POLLING))
    assert m.fan_rpm() == speeds[1]


def test_the_fan_ends_of_the_pwm_range():
    m = module("7211804-abcde00")
    assert m.fan_rpm() == emu.FAN_POWER_ON_RPM
    for pwm, rpm in ((0x3FF, 0), (0, emu.FAN_FULL_RPM)):
        m.addressed(p.Packet(p.POLLING, bytes(4) + (0x80000000 | pwm).to_bytes(4, "big")))
        assert m.fan_rpm() == rpm


@settings(max_examples=30, deadline=None)  # a module (and its thread) an example; a busy box is slow
@given(st.lists(st.integers(0, 5000), min_size=1, max_size=6))
def test_avalon4_status_lw_counts_add_up_to_the_works_started(steps):
    m = module("4115070-abcde00")
    seen = 0
    for step in steps:
        m.nonce2_done += step
        packet = status_of(m, p.STATUS_LW)
        seen += sum(p.Counters24.from_packet(packet, 10).values)
    assert seen == m.nonce2_done  # cgminer adds every STATUS_LW to its totals


@given(st.integers(100, 1000), st.integers(1, 200))
def test_mm60_status_frequency_is_the_sum_over_its_chips(mhz, chips):
    s4 = p.Status4(40, 3000, mhz * chips, 0xA900, 0, 0, 1, 0)
    assert s4.frequency_mhz_of("MM60", chips) == mhz
    assert s4.frequency_mhz_of("MM41", chips) == s4.frequency_mhz


def test_emulated_mm60_reports_the_sum_of_its_chips_mhz():
    m = module("6015120-abcde00")
    assert m.model.name == "MM60" and m.model.nonce_offset == 0
    m.addressed(p.Set4(0xA900, (300, 300, 300), 0, 0xFFFFFFFF).to_packet())
    s4 = p.Status4.from_packet(status_of(m, p.STATUS))
    assert s4.frequency_mhz_of("MM60", m.model.miners * m.model.asics) == 300
    kinds = {m.addressed(p.Packet(p.POLLING)).type for _ in range(6)}
    assert kinds == {p.STATUS, p.STATUS_LW}  # an Avalon6 sends no STATUS_HW
