"""The bitaxe-raw control-port codec (drivers/bitaxe_raw/control.py, docs/bitaxe-raw.md) against
its vectors (tests/vectors/bitaxe_raw.json, each from the source it names) and property tests."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from miner.drivers.bitaxe_raw import control as c

from tests.conftest import ROOT

VECTORS = json.loads((ROOT / "tests" / "vectors" / "bitaxe_raw.json").read_text())


@pytest.mark.parametrize("v", VECTORS["requests"], ids=lambda v: v["name"])
def test_requests_are_the_firmware_readmes_bytes(v):
    request = c.Request(v["id"], v["page"], v["command"], bytes.fromhex(v["data"]))
    assert request.encode().hex() == v["packet"]
    assert list(c.RequestParser().feed(bytes.fromhex(v["packet"]))) == [request]


@pytest.mark.parametrize("v", VECTORS["responses"], ids=lambda v: v["name"])
def test_responses_frame_as_the_firmware_builds_them(v):
    response = c.Response(v["id"], bytes.fromhex(v.get("data", "")), v.get("error"))
    assert response.encode().hex() == v["packet"]
    assert list(c.ResponseParser().feed(bytes.fromhex(v["packet"]))) == [response]
    if response.error is not None:
        with pytest.raises(c.ControlError):
            response.check()


def test_the_helpers_build_the_readme_examples():
    assert c.i2c_frequency(1, 400_000).encode().hex() == "0a0001000510801a0600"
    assert c.i2c_write(1, 0x4F, b"\xde").encode().hex() == "0800010005204fde"
    assert c.i2c_read(1, 0x4C, 1).encode().hex() == "0800010005304c01"
    assert c.i2c_write_read(1, 0x32, b"\xfe", 2).encode().hex() == "09000100054032fe02"
    assert c.gpio_set(0, 0, 0).encode().hex() == "07000000060000"
    assert c.adc_vdd(0).encode().hex() == "060000000750"
    assert c.fan_speed(0, 50).encode().hex() == "07000000091032"
    with pytest.raises(ValueError):
        c.fan_speed(0, 101)


@pytest.mark.parametrize("v", VECTORS["tps546_vout"], ids=lambda v: str(v["volts"]))
def test_tps546_ulinear16(v):
    assert c.vout_exponent(0x17) == -9
    assert c.volts_to_ulinear16(v["volts"], v["exponent"]) == v["word"]
    assert c.ulinear16_to_volts(v["word"], v["exponent"]) == pytest.approx(v["volts"], abs=2**-9)


@pytest.mark.parametrize("v", VECTORS["emc2101_temperature"], ids=lambda v: str(v["celsius"]))
def test_emc2101_temperature(v):
    assert c.emc2101_temperature(v["msb"], v["lsb"]) == v["celsius"]
    assert c.emc2101_registers(v["celsius"]) == (v["msb"], v["lsb"])


def test_a_diode_fault_is_no_temperature():
    # ESP-Miner's EMC2101.h: 0x3F8 open circuit, 0x3FF short (the 11-bit reading)
    assert c.emc2101_temperature(0x7F, 0x00) is None
    assert c.emc2101_temperature(0x7F, 0xE0) is None
    assert c.emc2101_temperature(0x7E, 0xE0) == 126.875


requests = st.builds(c.Request, st.integers(0, 255), st.sampled_from([5, 6, 7, 9]), st.integers(0, 255),
                     st.binary(max_size=300))


@given(st.lists(requests, max_size=8), st.binary(max_size=40))
def test_request_stream_roundtrips_and_resynchronises_after_noise(items, noise):
    stream = b"".join(r.encode() for r in items)
    assert [x for x in c.RequestParser().feed(stream) if not isinstance(x, c.Garbage)] == items
    parser = c.RequestParser()
    out = list(parser.feed(noise + stream))  # never raises; whatever it makes of the noise, it ends
    assert all(isinstance(x, c.Request | c.Garbage) for x in out)


@given(st.integers(-1024, 1023), st.integers(-16, 15))
def test_linear11_roundtrip(mantissa, exponent):
    value = mantissa * 2.0**exponent
    assert c.linear11_to_float(c.float_to_linear11(value, exponent)) == value


def test_temp_cutoff_flag_is_the_default_of_bitaxe_raw_devices_only():
    from miner.drivers.bitaxe_raw import DRIVER
    from miner.drivers.icarus import DRIVER as ICARUS

    from miner.app.compose import with_temp_cutoff
    from miner.devices.base import DeviceSpec

    drivers = {"bitaxe-raw": DRIVER, "bitaxe_raw": DRIVER, "icarus": ICARUS}
    spec = with_temp_cutoff(DeviceSpec.parse("bitaxe-raw:/dev/a,data=/dev/b"), 68.0, drivers)
    assert spec.option("temp_cutoff", float) == 68.0
    own = with_temp_cutoff(DeviceSpec.parse("bitaxe-raw:/dev/a,data=/dev/b,temp_cutoff=60"), 68.0, drivers)
    assert own.option("temp_cutoff", float) == 60.0  # the device's own setting wins
    assert "temp_cutoff" not in with_temp_cutoff(DeviceSpec.parse("icarus:/dev/c"), 68.0, drivers).options


def test_detection_pairs_the_two_ports_of_one_board():
    from miner.drivers.bitaxe_raw import DRIVER

    from miner.devices.manager import DeviceManager, PortInfo, companion_port
    from miner.devices.work_source import NoWork

    # pyserial's view of a Gamma on bitaxe-raw: two CDC-ACM interfaces (0 and 2) of one USB device
    ports = [PortInfo("/dev/ttyACM1", 0xC0DE, 0xCAFE, "Bitaxe", "a1b2", "", "1-1.4:1.2"),
             PortInfo("/dev/ttyACM0", 0xC0DE, 0xCAFE, "Bitaxe", "a1b2", "", "1-1.4:1.0"),
             PortInfo("/dev/ttyUSB0", 0x10C4, 0xEA60, "CP2102 USB to UART Bridge Controller", None, "", "1-2:1.0")]
    assert companion_port(ports[1], ports) is ports[0]
    assert companion_port(ports[0], ports) is None
    manager = DeviceManager(NoWork(), lambda n: None, drivers={"bitaxe_raw": DRIVER}, list_ports=lambda: ports)
    [device] = manager.rescan()
    assert (device.control_port, device.port, device.info.name) == ("/dev/ttyACM0", "/dev/ttyACM1", "bm1370")
    # the data interface alone (its control interface not listed yet) makes no device
    alone = DeviceManager(NoWork(), lambda n: None, drivers={"bitaxe_raw": DRIVER}, list_ports=lambda: ports[:1])
    assert alone.rescan() == []


def test_a_board_is_paired_through_the_config_files_and_the_cgminer_flags_driver_wrappers():
    """The config file's [devices.DRIVER] options and cgminer's per-driver flags wrap a driver; the
    wrapper must keep `companion_option`, or every hot-plug scan raised (and, unsupervised, ended
    detection for the rest of the run)."""
    from miner.drivers.bitaxe_raw import DRIVER

    from miner.app.cgminer_flags import DefaultedDriver, ModelDefaults
    from miner.app.config import ConfiguredDriver
    from miner.devices.manager import DeviceManager, PortInfo
    from miner.devices.work_source import NoWork

    ports = [PortInfo("/dev/ttyACM1", 0xC0DE, 0xCAFE, "Bitaxe", "a1b2", "", "1-1.4:1.2"),
             PortInfo("/dev/ttyACM0", 0xC0DE, 0xCAFE, "Bitaxe", "a1b2", "", "1-1.4:1.0")]
    for wrapped in (ConfiguredDriver(DRIVER, {"difficulty": 0.5}), DefaultedDriver(DRIVER, ModelDefaults({}, {}))):
        manager = DeviceManager(NoWork(), lambda n: None, drivers={"bitaxe_raw": wrapped}, list_ports=lambda: ports)
        [device] = manager.rescan()
        assert (device.control_port, device.port) == ("/dev/ttyACM0", "/dev/ttyACM1")


async def test_the_device_managers_loop_survives_a_failing_scan():
    import asyncio

    from miner.devices.manager import DeviceManager
    from miner.devices.work_source import NoWork

    manager = DeviceManager(NoWork(), lambda n: None, drivers={}, hotplug=0.01, list_ports=lambda: [])
    calls = []
    second = asyncio.Event()

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a driver bug")
        second.set()

    manager.check_health = flaky
    task = asyncio.create_task(manager.run())
    try:
        await asyncio.wait_for(second.wait(), 10)
    finally:
        task.cancel()
    assert len(calls) >= 2


@pytest.mark.parametrize("framing", [c.FRAMING_V0, c.FRAMING_V1])
def test_the_older_answer_framings_as_mujina_reads_them(framing):
    for v in VECTORS[f"responses_{framing}"]["cases"]:
        response = c.Response(v["id"], bytes.fromhex(v.get("data", "")), v.get("error"), v.get("message", ""))
        assert response.encode(framing).hex() == v["packet"], v["name"]
        assert list(c.ResponseParser(framing).feed(bytes.fromhex(v["packet"]))) == [response], v["name"]


def test_an_unknown_framing_is_refused():
    with pytest.raises(ValueError, match="framing"):
        c.ResponseParser("v9")


answers = st.builds(c.Response, st.integers(0, 255), st.binary(max_size=256))


@given(st.sampled_from(c.FRAMINGS), st.lists(answers, max_size=8))
def test_answer_streams_roundtrip_in_every_framing(framing, items):
    # good answers only: in the two FF-marker framings an answer whose data starts FF 10..13/FF is
    # an error by the firmware's own rule (docs/bitaxe-raw.md §2), so those are not data
    items = [r for r in items if framing == c.FRAMING_V1 or not (r.data[:1] == b"\xff" and len(r.data) > 1
                                                                 and r.data[1] in c.ERRORS)]
    stream = b"".join(r.encode(framing) for r in items)
    parsed = [x for x in c.ResponseParser(framing).feed(stream) if not isinstance(x, c.Garbage)]
    assert parsed == items
