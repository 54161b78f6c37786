"""The Avalon driver against its emulator over real pseudo-terminals: AUC init, module detection,
Stratum jobs sent and shares found and verified with the C core, clean jobs, faults survived and
counted, status fields, frequency setting; and end to end from the Stratum test pool."""

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from miner.drivers.avalon import DRIVER
from miner.drivers.avalon import protocol as p
from miner.drivers.avalon.driver import AvalonDevice
from miner.drivers.avalon.emulator import AvalonEmulator
from miner.drivers.kit.emulation import PtyPort

from miner.core.dispatch import Dispatcher
from miner.core.engine import Miner
from miner.core.shares import Verdict, check_reported
from miner.core.targets import difficulty_to_target
from miner.core.work import Job
from miner.devices.base import DeviceError, DeviceSpec, DeviceState, NotThisDevice
from miner.devices.work_source import DispatcherWorkSource, NoWork
from miner.sources.stratum.failover import PoolManager
from miner.sources.stratum.url import PoolConfig, Timeouts
from tests.helpers.stratum_pool import StratumTestPool

DIFF = 0.001
RATE_GHS = 0.02  # 20 MH/s: a nonce at difficulty 0.001 every ~0.2 s, without taking a whole core


def make_job(job_id: str = "1", clean: bool = True, size: int = 4, prev: bytes = bytes(32)) -> Job:
    return Job(job_id, prev, bytes.fromhex("01000000010000") + b"\x11" * 60, b"\x22" * 40, (b"\x33" * 32,),
               0x20000000, 0x1D00FFFF, 0x6553F100, clean=clean, extranonce1=b"\xaa\xbb\xcc\xdd",
               extranonce2_size=size, share_target=difficulty_to_target(DIFF), source="pool0")


class Rig:
    """A dispatcher, an emulator and a driver, with the share path's check done inline."""

    def __init__(self, model: str = "avalon7", modules: int = 1, link=None, powered=None, **options):
        self.dispatcher = Dispatcher()
        self.emulator = AvalonEmulator(model, RATE_GHS, DIFF, modules, link, powered=powered).start()
        self.nonces = []
        self.verdicts = []
        self.device = AvalonDevice(DispatcherWorkSource(self.dispatcher), self._on_nonce, "AV0", self.emulator.path,
                                   difficulty=DIFF, **options)
        self.device.reopen_interval = 0.2

    def _on_nonce(self, nonce):
        share = check_reported(nonce, self.dispatcher.lookup, self.device.target_for)
        self.device.on_verdict(share)
        self.nonces.append(nonce)
        self.verdicts.append((share.work, share.verdict))

    def wait(self, predicate, timeout: float = 15.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; state {self.device.stats.state}, "
                                     f"{len(self.nonces)} nonces, {self.device.details()}")
            time.sleep(0.02)

    def wait_nonces(self, count: int, timeout: float = 15.0):
        target = len(self.nonces) + count
        self.wait(lambda: len(self.nonces) >= target, timeout, f"{count} more nonces")

    def close(self):
        self.device.stop()
        self.emulator.stop()


@pytest.fixture
def rig(request):
    made = []

    def build(*args, **kwargs):
        r = Rig(*args, **kwargs)
        made.append(r)
        return r

    yield build
    for r in made:
        r.close()


@pytest.mark.parametrize("model", ["avalon7", "avalon8", "avalon4"])
def test_detect_init_job_and_verified_shares(rig, model):
    r = rig(model)
    r.dispatcher.set_job(make_job())
    r.device.start()
    r.wait(lambda: r.device.stats.state is DeviceState.ALIVE, what="alive")
    assert r.device.auc_version == "AUC-20151208"
    assert r.device.family is p.Family(model)
    assert [m.address for m in r.device.modules] == [1]
    r.wait_nonces(4)
    # every nonce maps back to a registered unit of this job whose header the C core accepts
    assert all(verdict is Verdict.SHARE for _, verdict in r.verdicts)
    works = [w for w, _ in r.verdicts]
    assert {w.job.job_id for w in works} == {"1"}
    assert len({w.extranonce2 for w in works}) >= 1
    module = r.emulator.modules[0]
    assert module.jobs_received >= 1 and module.address == 1
    assert r.device.stats.hw_errors == 0


def test_two_modules_and_status_fields(rig):
    r = rig("avalon7", modules=2, frequencies=(720,), voltage=4375)
    r.dispatcher.set_job(make_job())
    r.device.start()
    r.wait_nonces(6)
    r.wait(lambda: all(m.temperature is not None and m.voltage_raw for m in r.device.modules), what="status")
    assert [m.address for m in r.device.modules] == [1, 2]
    assert {m.dna for m in r.device.modules} == {m.dna for m in r.emulator.modules}
    # frequency and voltage set per module, and reported
    assert all(m.freqs == (720,) * 6 for m in r.emulator.modules)
    assert all(set(m.voltage_words) == {p.av7_voltage_word(4375)} for m in r.emulator.modules)
    assert r.device.stats.frequency == 720.0
    assert r.device.stats.temperature == 42.0  # the hotter of the two modules (41, 42 °C)
    details = r.device.details()
    assert details["Family"] == "avalon7" and len(details["Modules"]) == 2
    r.wait(lambda: sum(m.valid_nonces for m in r.device.modules) >= 6, what="valid nonces counted")
    # both modules hash their own part of the reserved extranonce2 range
    r.wait(lambda: all(m.valid_nonces for m in r.device.modules), what="nonces from both modules")
    assert r.device.stats.hashes.average() > 0
    assert all(m.summary()["hashrate"] > 0 for m in r.device.modules if m.valid_nonces)
    # a new frequency goes out at once
    r.device.set_frequency(600)
    r.wait(lambda: all(m.freqs == (600,) * 6 for m in r.emulator.modules), what="new frequency")
    with pytest.raises(ValueError, match="MHz"):
        r.device.set_frequency(5000)


def test_avalon4_frequency_and_voltage_go_out_with_the_job_set(rig):
    r = rig("avalon4", frequencies=(300,), voltage=7000)
    r.dispatcher.set_job(make_job())
    r.device.start()
    r.wait_nonces(2)
    module = r.emulator.modules[0]
    assert module.freqs == (300, 300, 300) and module.voltage4 == p.av4_voltage_word(7000)
    r.wait(lambda: r.device.modules[0].frequency_reported is not None, what="STATUS")
    assert abs(r.device.stats.frequency - 300) < 61  # STATUS frequency is in steps of 3968/65 MHz
    assert r.device.stats.voltage == 0.7 and r.device.stats.temperature == 39.0
    r.device.set_frequency(400)
    r.wait(lambda: module.freqs == (400, 400, 400), what="new frequency in the next SET")
    assert all(v is Verdict.SHARE for _, v in r.verdicts)


def test_a_module_powered_on_later_is_found_and_mines(rig, monkeypatch):
    monkeypatch.setattr("miner.drivers.avalon.driver.REDETECT_EVERY", 0.3)
    r = rig("avalon8", modules=2, powered=1)
    r.dispatcher.set_job(make_job())
    r.device.start()
    r.wait_nonces(1)
    assert [m.address for m in r.device.modules] == [1]
    r.emulator.power(2, True)
    r.wait(lambda: len(r.device.modules) == 2, what="second module found")
    r.wait(lambda: r.emulator.modules[1].jobs_received >= 1 and r.device.modules[1].valid_nonces >= 1,
           what="the new module mining")
    # a module that loses power is detached after its failures; the other keeps mining
    r.emulator.power(2, False)
    r.wait(lambda: len(r.device.modules) == 1, what="module 2 detached")
    r.wait_nonces(2)
    assert r.device.stats.hw_errors == 0


def test_clean_job_restarts_and_old_nonces_still_map(rig):
    r = rig("avalon7")
    r.dispatcher.set_job(make_job("a"))
    r.device.start()
    r.wait_nonces(2)
    r.dispatcher.set_job(make_job("b", clean=True, prev=b"\x01" * 32))
    r.wait(lambda: r.emulator.modules[0].restarts >= 1, what="restart at the module")
    r.wait(lambda: any(w.job.job_id == "b" for w, _ in r.verdicts), what="a nonce for the clean job")
    assert r.device.counters["restarts"] >= 1
    # a job that is not clean is sent without the restart flag
    restarts = r.emulator.modules[0].restarts
    r.dispatcher.set_job(make_job("c", clean=False, prev=b"\x01" * 32))
    r.wait(lambda: any(w.job.job_id == "c" for w, _ in r.verdicts), what="a nonce for job c")
    assert r.emulator.modules[0].restarts == restarts
    assert all(v is Verdict.SHARE for _, v in r.verdicts)
    assert r.device.stats.hw_errors == 0


def test_reserved_extranonce2_does_not_collide_with_other_devices(rig):
    r = rig("avalon7")
    r.dispatcher.set_job(make_job())
    r.device.start()
    r.wait_nonces(3)
    sent = r.device._sent[-1]
    other = {r.dispatcher.next_work().extranonce2 for _ in range(200)}
    assert all(w.extranonce2 not in other for w, _ in r.verdicts)
    assert all(sent.start <= int.from_bytes(w.extranonce2, "little") < sent.start + sent.span for w, _ in r.verdicts)


def test_faults_are_survived_and_counted(rig):
    r = rig("avalon7")
    r.dispatcher.set_job(make_job())
    r.device.start()
    r.wait_nonces(2)
    r.emulator.corrupt_crc(3)
    r.wait(lambda: r.device.counters["crc"] >= 3, what="CRC errors counted")
    r.emulator.send_garbage(2)
    r.wait(lambda: r.device.counters["garbage"] >= 1, what="garbage counted")
    r.emulator.stall(0.8)
    r.wait(lambda: r.device.counters["timeout"] >= 1, what="timeouts counted")
    r.wait_nonces(3, timeout=20)
    assert r.device.stats.state is DeviceState.ALIVE
    assert len(r.device.modules) == 1  # not detached: fewer failures in a row than the limit
    assert r.device.stats.hw_errors == 0
    assert all(v is Verdict.SHARE for _, v in r.verdicts)


def test_unplug_and_replug_reinitialises(rig, tmp_path):
    r = rig("avalon7", link=tmp_path / "auc")
    r.dispatcher.set_job(make_job())
    r.device.start()
    r.wait_nonces(2)
    r.emulator.unplug()
    r.wait(lambda: r.device.stats.state is DeviceState.NO_DEVICE, what="NoDevice")
    r.emulator.replug()
    r.wait(lambda: r.device.stats.state is DeviceState.ALIVE and r.emulator.modules[0].address == 1, what="back")
    r.wait_nonces(2)
    assert r.device.stats.hw_errors == 0


def test_not_an_auc_is_refused(rig):
    port = PtyPort()  # a port that never answers
    try:
        dev = AvalonDevice(NoWork(), lambda n: None, "AV9", port.path, xfer_timeout=0.05)
        dev.reopen_interval = 0.05
        dev.start()
        deadline = time.monotonic() + 5
        while dev.stats.state is not DeviceState.DEAD and time.monotonic() < deadline:
            time.sleep(0.02)
        assert dev.stats.state is DeviceState.DEAD and "not an Avalon USB2IIC converter" in dev.stats.last_error
        dev.stop()
    finally:
        port.close()
    assert issubclass(NotThisDevice, DeviceError)


def test_short_extranonce2_is_refused_with_one_line(rig, caplog):
    r = rig("avalon7")
    r.dispatcher.set_job(make_job(size=2))
    r.device.start()
    r.wait(lambda: "extranonce2 is 2 bytes" in caplog.text, what="the one-line error")
    assert r.emulator.modules[0].jobs_received == 0


def test_driver_object_and_options():
    assert DRIVER.name == "avalon" and "avalon7" in DRIVER.aliases
    assert [str(u) for u in DRIVER.usb_ids] == ["29f1:33f2"]
    d = Dispatcher()
    dev = DRIVER.create(DeviceSpec.parse("avalon8:/dev/null,difficulty=0.01,frequency=800,modules=2"),
                        DispatcherWorkSource(d), lambda n: None, 3)
    assert dev.name == "AV3" and dev.difficulty == 0.01 and dev.wanted_frequencies == (800,)
    assert dev.max_modules == 2 and dev.family_hint is p.Family.AVALON8
    with pytest.raises(DeviceError, match="frequency"):
        DRIVER.create(DeviceSpec.parse("avalon:/dev/null,frequency=abc"), DispatcherWorkSource(d), lambda n: None, 0)
    # The work source is the whole seam (reserve and register included): there is no dispatcher to
    # dig out of a bound method any more, so the driver takes any WorkSource and holds no dispatcher.
    work = NoWork()
    dev = DRIVER.create(DeviceSpec.parse("avalon:/dev/null"), work, lambda n: None, 0)
    assert dev.work_source is work and not any(isinstance(v, Dispatcher) for v in vars(dev).values())


async def test_end_to_end_pool_to_emulated_avalon7_share_accepted():
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    emulator = AvalonEmulator("avalon7", RATE_GHS, DIFF).start()
    dispatcher = Dispatcher()
    timeouts = Timeouts(connect=2, reply=2, silence=30, work=60, backoff_base=0.2, backoff_cap=1.0)
    manager = PoolManager([PoolConfig(f"stratum+tcp://localhost:{pool.port}", "worker.1", "x")], timeouts)
    miner: Miner
    device = DRIVER.create(DeviceSpec.parse(f"avalon7:{emulator.path},difficulty={DIFF}"),
                           DispatcherWorkSource(dispatcher),
                           lambda n: miner.on_nonce(n), 0)
    miner = Miner(manager, [device], dispatcher, status_interval=1.0)
    task = asyncio.create_task(miner.run())
    try:
        accepted = await pool.wait_submits(3, accepted=True, timeout=30)
        assert all(s.accepted for s in accepted)
        # four params (no version rolling from an Avalon) or six with the base version
        assert all(len(s.params) in (5, 6) for s in accepted)
        deadline = time.monotonic() + 10
        while device.stats.shares.accepted < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert device.stats.shares.accepted >= 3
        assert miner.totals.hw_errors == 0 and device.stats.hw_errors == 0
        assert device.stats.hashes.average() > 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        emulator.stop()
        await pool.stop()


def test_miner_emulate_avalon_and_mine_it_from_the_command_line(tmp_path):
    """`miner emulate avalon` prints the pty path first; `miner --device avalon:PATH` mines it."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    link = tmp_path / "auc"
    emu = subprocess.Popen([sys.executable, "-m", "miner", "emulate", "avalon", "--model", "avalon4", "--rate", "0.02",
                            "--difficulty", str(DIFF), "--link", str(link)], cwd=root, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert emu.stdout.readline().strip() == str(link)
        run = subprocess.run([sys.executable, "-m", "miner", "--device", f"avalon:{link},difficulty={DIFF}", "--no-cpu",
                              "--sandbox-diff", str(DIFF), "--time-limit", "4", "--status-interval", "1"],
                             cwd=root, env=env, capture_output=True, text=True, timeout=60)
        final = [line for line in run.stderr.splitlines() + run.stdout.splitlines() if "final:" in line]
        assert final, run.stderr[-2000:]
        accepted = int(final[-1].split("A:")[1].split()[0])
        assert accepted > 0 and "HW:0" in final[-1], final[-1]
    finally:
        emu.terminate()
        emu.wait(5)
