"""The driver framework: device specs, USB claiming, the device manager (detection, hot-plug,
health), the serial-device thread over a real pty, opening ports, and the emulation helpers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time

import pytest
import serial
from hypothesis import given
from hypothesis import strategies as st
from miner.drivers.kit.emulation import CHUNK_MAX, CHUNK_MIN, CHUNK_SECONDS, PtyPort, Unplugged, paced_scan
from miner.drivers.kit.usb import UsbId

from miner.core import hashing
from miner.core.dispatch import Dispatcher
from miner.core.shares import CheckedNonce, Verdict
from miner.core.targets import difficulty_to_target, hash_to_int
from miner.core.work import Nonce
from miner.devices.base import Device, DeviceError, DeviceSpec, DeviceState, DriverInfo, NotThisDevice
from miner.devices.manager import DeviceManager, HealthPolicy, PortInfo, claim, load_drivers
from miner.devices.serialport import SerialDevice, open_serial, read_available, read_exactly
from miner.devices.work_source import DispatcherWorkSource, NoWork
from miner.sources.sandbox import sandbox_job

# ---------------------------------------------------------------- specs

_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=10)
_value = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_./-", max_size=12)


@given(driver=_word, port=st.one_of(st.none(), st.text(alphabet="/abcdefgtyUSB0123456789", min_size=1,
                                                              max_size=20)),
       options=st.dictionaries(_word, _value, max_size=4))
def test_device_spec_round_trip(driver, port, options):
    text = driver + (f":{port}" if port else "") + "".join(f",{k}={v}" for k, v in options.items())
    spec = DeviceSpec.parse(text)
    assert spec.driver == driver
    assert spec.port == port
    assert dict(spec.options) == options


def test_device_spec_options_and_errors():
    spec = DeviceSpec.parse("BM1397:/dev/ttyACM0,chips=4,difficulty=0.001")
    assert spec.driver == "bm1397"
    assert spec.option("chips", int) == 4
    assert spec.difficulty() == pytest.approx(0.001)
    assert spec.option("freq", float, 525.0) == 525.0
    with pytest.raises(DeviceError, match="option chips='x'"):
        DeviceSpec.parse("icarus:/dev/x,chips=x").option("chips", int)
    with pytest.raises(DeviceError, match="difficulty must be positive"):
        DeviceSpec.parse("icarus:/dev/x,difficulty=0").difficulty()
    with pytest.raises(ValueError, match="not key=value"):
        DeviceSpec.parse("icarus:/dev/x,chips")
    with pytest.raises(ValueError, match="expected DRIVER"):
        DeviceSpec.parse(":/dev/x")


# ---------------------------------------------------------------- a test driver

class LoopbackDevice(SerialDevice):
    """A minimal serial device for framework tests: init writes b"ID?" and expects b"OK"; mining
    reads one 4-byte little-endian nonce at a time for the current work."""

    driver = "loop"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reopen_interval = 0.05
        self.inits = 0
        self.unit = None

    def open_port(self):
        return open_serial(self.port, 115200, timeout=0.05)

    def initialise(self, port):
        port.write(b"ID?")
        answer = read_exactly(port, 2, timeout=3.0)  # generous: the answering thread may be slow under load
        if answer != b"OK":
            raise NotThisDevice(f"{self.port}: answered {answer!r}, not OK")
        self.inits += 1

    def mine(self, port):
        while not self.stopping() and not self.reinit_requested():
            if self.unit is None or self.take_restart():
                self.unit = self.next_work(wait=0.05)
                continue
            data = port.read(4)
            if len(data) == 4:
                from miner.core.work import Nonce
                self.report_nonce(Nonce(self.unit.work_id, int.from_bytes(data, "little"), device=self.name))

    def nominal_hashrate(self):
        return 1e6


def create_loop(spec, work, sink, index):
    device = LoopbackDevice(work, sink, f"LOOP{index}", spec.port, spec.difficulty())
    device.model = spec.options.get("model", "")
    return device


# A third-party driver, registered in the one shape every driver has.
LOOP_DRIVER = DriverInfo(name="loop", aliases=("loopback",), description="test driver", create=create_loop,
                         usb_ids=(UsbId(0x1234, 0x5678, "Loop Stick", "loop-1"), UsbId(0x1234, 0x9999)),
                         emulator_main=lambda name, argv: 0)


class Answerer:
    """The far side of a pty: answers "ID?" with `reply`, then sends queued nonces."""

    def __init__(self, pty: PtyPort, reply: bytes = b"OK"):
        self.pty = pty
        self.reply = reply
        self.nonces: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        buffer = b""
        while not self.stop.is_set():
            try:
                buffer += self.pty.read(64, 0.05)
                if b"ID?" in buffer:
                    buffer = buffer.split(b"ID?", 1)[1]
                    self.pty.write(self.reply)
                while self.nonces:
                    self.pty.write(self.nonces.pop(0).to_bytes(4, "little"))
            except Unplugged:
                time.sleep(0.02)


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def pty(tmp_path):
    port = PtyPort(link=tmp_path / "ttyLOOP0")
    yield port
    port.unplug()


# ---------------------------------------------------------------- claiming and detection

def test_claim_prefers_product_string_match():
    class Generic:
        name = "generic"
        usb_ids = (UsbId(0x1234, 0x5678),)

    drivers = [Generic(), LOOP_DRIVER]
    assert claim(PortInfo("/dev/a", 0x1234, 0x5678, "Loop Stick v2"), drivers)[0].name == "loop"
    assert claim(PortInfo("/dev/a", 0x1234, 0x5678, "Other"), drivers)[0].name == "generic"
    assert claim(PortInfo("/dev/a", 0x1234, 0x9999, None), drivers)[0].name == "loop"
    assert claim(PortInfo("/dev/a", 0x1234, 0x0001, None), drivers) is None
    assert claim(PortInfo("/dev/a", None, None, None), drivers) is None


def test_registered_drivers_include_the_cpu():
    drivers = load_drivers()
    assert drivers["cpu"].name == "cpu"


def make_manager(dispatcher, ports, specs=(), **kwargs):
    drivers = {"loop": LOOP_DRIVER, "loopback": LOOP_DRIVER, **{k: v for k, v in load_drivers().items()
                                                                  if k == "cpu"}}
    nonces = []
    manager = DeviceManager(DispatcherWorkSource(dispatcher), nonces.append, specs, drivers=drivers, hotplug=0.1,
                            list_ports=lambda: list(ports), **kwargs)
    return manager, nonces


def test_manager_detects_hotplugs_and_survives_unplug(pty):
    dispatcher = Dispatcher()
    dispatcher.set_job(sandbox_job(0.001))
    answerer = Answerer(pty)
    ports = [PortInfo(pty.device_path, 0x1234, 0x5678, "Loop Stick", "SN1")]
    manager, nonces = make_manager(dispatcher, ports)
    devices = manager.setup()
    assert [d.name for d in devices] == ["LOOP0"]  # a board was found: no CPU
    device = devices[0]
    assert device.model == "loop-1" and device.serial_number == "SN1"
    manager.start()
    try:
        assert wait_for(lambda: device.stats.state is DeviceState.ALIVE)
        answerer.nonces.append(0x11223344)
        assert wait_for(lambda: nonces), "the nonce reached on_nonce"
        assert nonces[0].nonce == 0x11223344 and nonces[0].device == "LOOP0"
        # Unplugged: gone from the port list and from the system.
        pty.unplug()
        ports.clear()
        assert manager.rescan() == []
        assert device.stats.state is DeviceState.NO_DEVICE
        # Replugged at the same path: the same device (name, stats) comes back.
        pty.plug()
        ports.append(PortInfo(pty.device_path, 0x1234, 0x5678, "Loop Stick", "SN1"))
        assert manager.rescan() == []
        assert wait_for(lambda: device.stats.state is DeviceState.ALIVE)
        assert device.inits == 2
        # A second stick appears.
        other = PtyPort()
        ports.append(PortInfo(other.device_path, 0x1234, 0x9999))
        new = manager.rescan()
        assert [d.name for d in new] == ["LOOP1"]
        other.unplug()
    finally:
        manager.stop()
        answerer.stop.set()


def test_manager_cpu_fallback_and_flags():
    dispatcher = Dispatcher()
    manager, _ = make_manager(dispatcher, [])
    assert [d.driver for d in manager.setup()] == ["cpu"]
    manager, _ = make_manager(dispatcher, [], cpu=False)
    with pytest.raises(DeviceError, match="no devices"):
        manager.setup()
    with pytest.raises(DeviceError, match="no such driver"):
        make_manager(dispatcher, [], specs=[DeviceSpec.parse("nosuch:/dev/x")])


def test_explicit_device_and_cpu_together(pty):
    dispatcher = Dispatcher()
    manager, _ = make_manager(dispatcher, [], specs=[DeviceSpec.parse(f"loopback:{pty.device_path}")], cpu=True)
    assert [d.driver for d in manager.setup()] == ["loop", "cpu"]


def test_wrong_answer_is_dead_not_mined(pty):
    dispatcher = Dispatcher()
    dispatcher.set_job(sandbox_job(0.001))
    answerer = Answerer(pty, reply=b"NO")
    manager, _ = make_manager(dispatcher, [], specs=[DeviceSpec.parse(f"loop:{pty.device_path}")])
    device = manager.setup()[0]
    manager.start()
    try:
        assert wait_for(lambda: device.stats.state is DeviceState.DEAD)
        assert "answered b'NO'" in device.stats.last_error
    finally:
        manager.stop()
        answerer.stop.set()


def test_health_sick_then_reinit_then_disabled(pty):
    dispatcher = Dispatcher()
    dispatcher.set_job(sandbox_job(0.001))
    answerer = Answerer(pty)
    policy = HealthPolicy(silent_intervals=1, min_silence=0.0, grace=0.5)
    manager, _ = make_manager(dispatcher, [], specs=[DeviceSpec.parse(f"loop:{pty.device_path}")], health=policy)
    device = manager.setup()[0]
    manager.start()
    try:
        assert wait_for(lambda: device.stats.state is DeviceState.ALIVE), (
            device.stats.state, device.stats.last_error, [t.name for t in threading.enumerate()])
        now = time.monotonic()
        manager.check_health(now)  # 1 MH/s at difficulty 1: a nonce every ~4295 s, none yet
        assert device.stats.state is DeviceState.ALIVE
        manager.check_health(now + 5000)
        assert device.stats.state is DeviceState.SICK and device.stats.reinits == 1
        assert wait_for(lambda: device.inits == 2), "re-initialised"
        manager.check_health(now + 5000 + 0.1)  # still inside the grace period
        assert device.enabled
        manager.check_health(now + 20000)
        assert device.stats.state is DeviceState.DISABLED and not device.enabled
    finally:
        manager.stop()
        answerer.stop.set()


def test_health_hardware_error_burst():
    dispatcher = Dispatcher()
    manager, _ = make_manager(dispatcher, [], specs=[DeviceSpec.parse("loop:/dev/null")],
                              health=HealthPolicy(hw_burst=5, grace=100))
    device = manager.setup()[0]
    device.stats.state = DeviceState.ALIVE
    device.stats.last_valid_at = time.monotonic()
    manager.check_health()
    for _ in range(5):
        device.stats.note_hw_error()
    device.reinitialise = lambda: None  # the port is /dev/null: nothing to re-init
    manager.check_health(time.monotonic() + 1)
    assert device.stats.state is DeviceState.SICK
    manager.check_health(time.monotonic() + 2)
    assert device.stats.state is DeviceState.SICK, "no valid nonce since the re-init: still sick"
    device.stats.last_valid_at = time.monotonic() + 3
    manager.check_health(time.monotonic() + 4)
    assert device.stats.state is DeviceState.ALIVE, "a valid nonce and no new errors: recovered"


# ---------------------------------------------------------------- opening ports

@pytest.mark.parametrize("path, message", [
    ("/nonexistent/ttyUSB9", "no such device"),
    ("/etc/hostname", "not a serial device (a regular file"),
    ("/tmp", "not a serial device (a directory"),
    ("/dev/null", "not a serial device (it does not answer terminal ioctls)"),
])
def test_open_serial_errors(path, message):
    with pytest.raises(DeviceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        open_serial(path, 115200)


def test_open_serial_permission_denied_names_the_fix(pty):
    os.chmod(pty.path, 0o600)
    # Import everything first: the unprivileged user may not read the Python install.
    code = ("import sys, os, serial, serial.serialposix\nfrom miner.devices.serialport import open_serial\n"
            "os.setgid(65534); os.setuid(65534)\n"
            "try:\n    open_serial(sys.argv[1], 115200)\nexcept Exception as e:\n    print(e)\n")
    if os.getuid() != 0:  # not root: the pty belongs to us, so take away our own access
        os.chmod(pty.path, 0o000)
        code = code.replace("os.setgid(65534); os.setuid(65534)", "pass")
    out = subprocess.run([sys.executable, "-c", code, pty.path], capture_output=True, text=True, timeout=30)
    assert "permission denied" in out.stdout
    assert "dialout" in out.stdout and "udev" in out.stdout


def test_open_serial_refuses_a_port_in_use(pty):
    first = open_serial(pty.path, 115200)
    try:
        with pytest.raises(DeviceError, match="in use"):
            open_serial(pty.path, 115200)
    finally:
        first.close()


# ---------------------------------------------------------------- emulation helpers

def test_pty_carries_bytes_both_ways_and_unplug_fails_the_reader(pty):
    port = serial.Serial(pty.device_path, 115200, timeout=0.5)
    every_byte = bytes(range(256))
    port.write(every_byte)
    assert pty.read_exactly(256, 2.0) == every_byte  # raw: no echo, no newline mapping
    pty.write(every_byte)
    assert port.read(256) == every_byte
    pty.unplug()
    assert not os.path.exists(pty.device_path)
    with pytest.raises(serial.SerialException):
        port.read(1)
    port.close()
    with pytest.raises(Unplugged):
        pty.write(b"x")
    pty.replug()
    assert os.path.realpath(pty.device_path) == pty.path
    again = serial.Serial(pty.device_path, 115200, timeout=0.5)
    pty.write(b"back")
    assert again.read(4) == b"back"
    again.close()


def test_paced_scan_finds_exactly_what_scan_finds_and_paces():
    header = sandbox_job(1).make_work(1, b"\0" * 4).header
    target = difficulty_to_target(0.0005)
    expected = hashing.scan(header, 0, 1 << 20, target)
    started = time.monotonic()
    found = list(paced_scan(header, target, rate=4e6, start=0, count=1 << 20))
    assert [f.nonce for f in found] == expected
    for f in found:
        assert hash_to_int(hashing.sha256d(header[:76] + f.nonce.to_bytes(4, "little"))) <= target
        assert f.due == pytest.approx(started + f.nonce / 4e6, abs=0.05)


def test_paced_scan_stops_when_told():
    header = sandbox_job(1).make_work(1, b"\0" * 4).header
    calls = iter(range(100))
    every = (1 << 256) - 1  # every nonce meets it: what comes back shows how far the scan went
    found = list(paced_scan(header, every, rate=1e12, stop=lambda: next(calls) >= 2, chunk=1 << 10))
    assert [f.nonce for f in found] == list(range(2 << 10)), "two chunks, then stopped"


@pytest.mark.parametrize("rate", [1e3, 1e5, 4e6, 1e12])
def test_paced_scan_chunks_follow_the_emulated_rate(rate):
    """A slow emulated stick (re-sent work every 72 ms) must not hash 2**18 nonces per job up front."""
    sizes: list[int] = []

    def scanner(first: int, size: int) -> list[int]:
        sizes.append(size)
        return []

    calls = iter(range(100))
    list(paced_scan(b"", 0, rate=rate, count=1 << 30, stop=lambda: next(calls) >= 1, scanner=scanner))
    assert sizes == [min(CHUNK_MAX, max(CHUNK_MIN, int(rate * CHUNK_SECONDS)))]


def test_read_available_reads_what_came_and_leaves_the_port_settings_alone():
    port = PtyPort()
    try:
        with serial.Serial(port.device_path, 115200, timeout=0.7) as host:
            started = time.monotonic()
            assert read_available(host, 0.05) == b""
            assert time.monotonic() - started >= 0.04
            port.write(b"\x01\x02\x03\x04\x05")
            data = b""
            deadline = time.monotonic() + 5
            while len(data) < 5 and time.monotonic() < deadline:
                data += read_available(host, 0.5)
            assert data == b"\x01\x02\x03\x04\x05"
            assert host.timeout == 0.7, "the port's own timeout is untouched"
            port.unplug()  # the stick is pulled: readable, then nothing (or EIO)
            with pytest.raises((serial.SerialException, OSError)):
                for _ in range(10):
                    read_available(host, 0.5)
    finally:
        port.close()


# ---------------------------------------------------------------- dispatcher and devices that roll versions

def test_units_for_version_rolling_devices_have_their_own_roots():
    from miner.core.work import Job
    base = sandbox_job(1)
    job = Job(**{**{f: getattr(base, f) for f in base.__dataclass_fields__}, "version_mask": 0x1FFFE000})
    dispatcher = Dispatcher()
    dispatcher.set_job(job)
    roots = []
    for i in range(40):
        work = dispatcher.next_work(device_rolls_version=(i % 3 == 0))
        roots.append((work.merkle_root, work.version, i % 3 == 0))
    own = [r for r, _, rolls in roots if rolls]
    shared = [r for r, _, rolls in roots if not rolls]
    assert len(set(own)) == len(own), "each rolling device unit has a root of its own"
    assert not set(own) & set(shared), "no rolling unit shares a root with a dispatcher-rolled unit"
    assert all(v == job.version for _, v, rolls in roots if rolls)


def test_device_estimates_rate_from_valid_nonces():
    device = Device(NoWork(), lambda n: None, "X0", difficulty=2.0)
    work = sandbox_job(1).make_work(1, b"\0" * 4)
    for verdict in (Verdict.WORK, Verdict.SHARE, Verdict.HW_ERROR):
        device.on_verdict(CheckedNonce(work, Nonce(1, 0, device="X0"), work.header, bytes(32), verdict))
    assert device.stats.hashes.total == 2 * 2.0 * (1 << 32)
    assert device.stats.source_hashes[work.job.source].total == device.stats.hashes.total
    assert device.stats.hw_errors == 1, "a hardware error stands for no hashes"
    # chips count zero bits: at difficulty 2, every hash under 2**223 (a bit more than the pool's target)
    assert device.nonce_target == (1 << 223) - 1
    assert device.nonce_target > difficulty_to_target(2.0)
    assert Device(NoWork(), lambda n: None, "X1").nonce_target == (1 << 224) - 1


def test_a_reader_of_an_unplugged_pty_never_gets_a_new_ptys_bytes():
    # A thread still waiting in read() when its pty is unplugged must not end up reading from the
    # next pty opened (which, with a freed descriptor number, it once did: stolen bytes).
    old = PtyPort()
    stolen: list[bytes] = []

    def reader():
        while True:
            try:
                data = old.read(64, 0.5)
            except Unplugged:
                return
            if data:
                stolen.append(data)

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.1)  # the reader is inside select()
    old.unplug()
    new = PtyPort()
    try:
        port = serial.Serial(new.path, 115200, timeout=0.5)
        port.write(b"hello")
        assert new.read_exactly(5, 2.0) == b"hello"
        port.close()
        thread.join(2.0)
        assert not thread.is_alive() and stolen == []
    finally:
        new.unplug()


async def test_each_device_is_credited_with_its_accepted_shares():
    from miner.core.engine import Miner
    from miner.devices.cpu import CpuDevice
    from miner.sources.sandbox import SandboxSource

    dispatcher = Dispatcher()
    source = SandboxSource(0.0005)
    miner: Miner
    work = DispatcherWorkSource(dispatcher)
    devices = [CpuDevice(work, lambda n: miner.on_nonce(n), threads=1, chunk=1 << 16, index=i)
               for i in range(2)]
    miner = Miner(source, devices, dispatcher, status_interval=60)
    dispatcher.set_job(source.job)
    running = asyncio.create_task(miner.run(time_limit=60.0))  # the bound only ends a stuck run
    # ~2M hashes a share: wait until each device has one (a loaded machine may take a while), then stop
    while not running.done() and not all(d.stats.shares.accepted > 0 for d in devices):
        await asyncio.sleep(0.05)
    miner.request_stop()
    await running
    assert source.stats.accepted > 0
    assert sum(d.stats.shares.accepted for d in devices) == source.stats.accepted
    assert all(d.stats.shares.accepted > 0 for d in devices), "both devices found shares within 60 s"




def test_a_third_party_package_adds_a_driver_through_the_entry_point_group(tmp_path, monkeypatch):
    # An installed distribution is a dist-info folder on sys.path; its entry_points.txt is all a
    # third-party driver package needs to be found.
    info = tmp_path / "miner_loop_driver-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: miner-loop-driver\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[miner.drivers]\nloop = tests.devices.test_devices:LOOP_DRIVER\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    drivers = load_drivers()
    assert drivers["loop"] is LOOP_DRIVER and drivers["loopback"] is LOOP_DRIVER
    assert drivers["cpu"].name == "cpu"
    # A broken one is skipped with a warning, not fatal.
    (info / "entry_points.txt").write_text("[miner.drivers]\nbroken = tests.no_such_module:DRIVER\n")
    assert "broken" not in load_drivers()
