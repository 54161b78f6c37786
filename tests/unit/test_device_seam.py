"""The device seam without hardware: the work source over the dispatcher, the share path's
check of a reported nonce (one hash; alternatives only on a miss), verdicts reaching per-chip
and per-module counters, and the one registration shape every driver package has."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from miner.drivers.avalon import protocol as avalon_protocol
from miner.drivers.avalon.driver import AvalonDevice, ModuleStats
from miner.drivers.bm13xx.driver import ChipStats

from miner.core import hashing
from miner.core.dispatch import Dispatcher
from miner.core.shares import CheckedNonce, Verdict, check_nonce, check_reported
from miner.core.targets import NONCE_SPACE
from miner.core.work import Nonce
from miner.devices.base import DeviceSpec, DriverInfo
from miner.devices.work_source import DispatcherWorkSource, NoWork
from miner.sources.sandbox import GENESIS_EXTRANONCE2, GENESIS_NONCE, genesis_job, sandbox_job

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- the work source
def test_work_source_hands_out_the_dispatchers_units_and_job():
    dispatcher = Dispatcher()
    work = DispatcherWorkSource(dispatcher)
    assert work.job is None and work.next_work() is None
    job = sandbox_job()
    dispatcher.set_job(job)
    assert work.job is job
    units = [work.next_work() for _ in range(5)] + [work.next_work(device_rolls_version=True)]
    assert len({u.work_id for u in units}) == 6
    assert all(dispatcher.lookup(u.work_id) is u for u in units), "the share path finds every unit"
    rolled = units[-1]
    assert rolled.version == job.version and rolled.merkle_root not in {u.merkle_root for u in units[:-1]}


def test_work_source_reserves_extranonce2_ranges_and_registers_headers_built_from_them():
    dispatcher = Dispatcher()
    work = DispatcherWorkSource(dispatcher)
    job = sandbox_job()
    dispatcher.set_job(job)
    before = {work.next_work().extranonce2 for _ in range(10)}
    start = work.reserve_extranonce2(16)
    assert start % 16 == 0
    reserved = {job.extranonce2_for(start + i) for i in range(16)}
    after = {work.next_work().extranonce2 for _ in range(50)}
    assert not reserved & (before | after), "no other unit uses a reserved extranonce2"
    built = work.register_work(job, job.extranonce2_for(start + 3))
    assert dispatcher.lookup(built.work_id) is built and built.extranonce2 == job.extranonce2_for(start + 3)


def test_no_work_has_no_job_and_refuses_reservations():
    work = NoWork()
    assert work.job is None and work.next_work() is None and work.next_work(device_rolls_version=True) is None
    with pytest.raises(RuntimeError):
        work.reserve_extranonce2(4)


# ---------------------------------------------------------------- the share path's check
@pytest.fixture
def genesis():
    dispatcher = Dispatcher()
    job = genesis_job()
    registered = DispatcherWorkSource(dispatcher)
    dispatcher.set_job(job)
    good = registered.register_work(job, GENESIS_EXTRANONCE2)
    other = registered.register_work(job, b"\0\0\0\1")
    return dispatcher, good, other


def counting_sha256d(monkeypatch) -> list[bytes]:
    calls: list[bytes] = []
    real = hashing.sha256d
    monkeypatch.setattr(hashing, "sha256d", lambda data: calls.append(bytes(data)) or real(data))
    return calls


def test_a_nonce_that_fits_its_unit_is_hashed_once_and_its_alternatives_never(monkeypatch, genesis):
    dispatcher, good, other = genesis
    calls = counting_sha256d(monkeypatch)
    nonce = Nonce(good.work_id, GENESIS_NONCE, chip=3, alternatives=(Nonce(other.work_id, GENESIS_NONCE),))
    share = check_reported(nonce, dispatcher.lookup, lambda work: work.target)
    assert share is not None and share.verdict is Verdict.BLOCK and share.work is good
    assert share.nonce.chip == 3
    assert len(calls) == 1


def test_an_alternative_is_tried_only_when_the_named_unit_misses(monkeypatch, genesis):
    dispatcher, good, other = genesis
    calls = counting_sha256d(monkeypatch)
    nonce = Nonce(other.work_id, GENESIS_NONCE, tag="late", alternatives=(Nonce(good.work_id, GENESIS_NONCE),))
    share = check_reported(nonce, dispatcher.lookup, lambda work: work.target)
    assert share is not None and share.verdict is Verdict.BLOCK and share.work is good
    assert share.nonce.tag is None, "the verdict carries the alternative that fitted, not the first"
    assert len(calls) == 2


def test_a_nonce_no_unit_fits_is_a_hardware_error_of_the_first_known_unit(genesis):
    dispatcher, good, other = genesis
    nonce = Nonce(999_999, 5, alternatives=(Nonce(other.work_id, 5, chip=1), Nonce(good.work_id, 5, chip=2)))
    share = check_reported(nonce, dispatcher.lookup, lambda work: work.target)
    assert share is not None and share.verdict is Verdict.HW_ERROR
    assert share.work is other and share.nonce.chip == 1
    assert check_reported(Nonce(999_999, 5), dispatcher.lookup, lambda work: work.target) is None


# ---------------------------------------------------------------- verdicts reach the chips
def verdict(work, verdict: Verdict, chip: int | None, tag=None, found_at: float = 100.0) -> CheckedNonce:
    return CheckedNonce(work, Nonce(work.work_id, 0, chip=chip, tag=tag, found_at=found_at), work.header,
                        bytes(32), verdict)


def test_bm13xx_chip_counters_follow_the_verdicts():
    device = importlib.import_module("miner.drivers.bm13xx").DRIVER.create(
        DeviceSpec.parse("bm1366:/dev/null,difficulty=0.5,ticket=1"), NoWork(), lambda n: None, 0)
    device.chip_stats = [ChipStats(0), ChipStats(128)]
    work = sandbox_job().make_work(1, b"\0" * 4)
    device.on_verdict(verdict(work, Verdict.HW_ERROR, chip=1))
    device.on_verdict(verdict(work, Verdict.WORK, chip=0))
    device.on_verdict(verdict(work, Verdict.SHARE, chip=0))
    assert [c.hw_errors for c in device.chip_stats] == [0, 1]
    assert device.chip_stats[0].hashes.total == 2 * device.difficulty * (1 << 32)
    assert device.chip_stats[1].hashes.total == 0
    assert device.stats.hw_errors == 1 and device.stats.last_valid_at == 100.0
    assert device.details()["Per Chip"][1]["HW Errors"] == 1


def test_avalon_module_counters_follow_the_verdicts():
    device = AvalonDevice(NoWork(), lambda n: None, "AV0", "/dev/null", difficulty=1.0)
    model = avalon_protocol.model_for_version("7211804-0abcde0")
    device.modules = [ModuleStats(1, b"\1" * 8, "7211804", model, 4), ModuleStats(2, b"\2" * 8, "7211804", model, 4)]
    work = sandbox_job(difficulty=1.0).make_work(1, b"\0" * 4)
    device.on_verdict(verdict(work, Verdict.SHARE, chip=2))
    device.on_verdict(verdict(work, Verdict.HW_ERROR, chip=2))
    device.on_verdict(verdict(work, Verdict.HW_ERROR, chip=1))
    device.on_verdict(verdict(work, Verdict.SHARE, chip=7))  # a module detached since: the device still counts
    one, two = device.modules
    assert (one.valid_nonces, one.hw_errors) == (0, 1)
    assert (two.valid_nonces, two.hw_errors) == (1, 1)
    assert two.hashes.total == device.hashes_per_nonce(work) and one.hashes.total == 0
    assert device.stats.hw_errors == 2 and device.stats.hashes.total == 2 * device.hashes_per_nonce(work)


def test_icarus_timing_fit_learns_only_from_valid_verdicts_of_the_current_unit():
    from miner.drivers.icarus import DRIVER

    device = DRIVER.create(DeviceSpec.parse("u3:/dev/null"), NoWork(), lambda n: None, 0)
    work = sandbox_job().make_work(1, b"\0" * 4)
    nominal = device.seconds_per_hash()
    half = NONCE_SPACE // 2
    device.on_verdict(verdict(work, Verdict.HW_ERROR, chip=None, tag=(half, 1.0)))
    device.on_verdict(verdict(work, Verdict.WORK, chip=None, tag=None))  # an old unit's late nonce: no sample
    assert device.seconds_per_hash() == nominal
    device.on_verdict(verdict(work, Verdict.WORK, chip=None, tag=(half, 2.0)))
    assert device.seconds_per_hash() == pytest.approx(2.0 / half)


# ---------------------------------------------------------------- one registration shape
@pytest.mark.parametrize("module", ["miner.drivers.icarus", "miner.drivers.bm13xx", "miner.drivers.avalon",
                                    "miner.devices.cpu"])
def test_every_driver_package_registers_the_same_way(module):
    package = importlib.import_module(module)
    assert isinstance(package.DRIVER, DriverInfo)
    if module != "miner.devices.cpu":
        assert package.DRIVER.usb_ids == package.USB_IDS and package.USB_IDS
    assert callable(package.DRIVER.create) and callable(package.DRIVER.emulator_main)


def test_no_driver_hashes_a_nonce():
    # Hashing a midstate to build work and scanning the golden job are fine; sha256d is the share path's.
    for path in [*ROOT.glob("drivers/*/driver.py"), ROOT / "drivers" / "avalon" / "hid.py",
                 ROOT / "miner" / "devices" / "cpu.py"]:
        text = path.read_text()
        assert "hashing.sha256d" not in text and "hash_to_int" not in text and "check_nonce" not in text, path


def test_the_check_is_the_one_the_share_path_makes(genesis):
    dispatcher, good, _ = genesis
    nonce = Nonce(good.work_id, GENESIS_NONCE)
    assert check_reported(nonce, dispatcher.lookup, lambda w: w.target) == check_nonce(good, nonce)
