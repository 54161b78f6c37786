"""Restarting the miner against a stick that kept running (issue 16 fault 3): a real stick keeps
its state between host runs (an Icarus keeps hashing its last job and may answer it just as the
next run's golden packet goes out; Avalon modules keep their I2C addresses for 3 s; BM13xx chips
keep their addresses, clock and baud). Each test starts a fresh driver (a new miner run) three
times against one emulator that is never restarted, and every run must identify the device
right and mine valid nonces."""

from __future__ import annotations

import threading
import time

import pytest
from miner.drivers.avalon import DRIVER as AVALON
from miner.drivers.avalon.emulator import AvalonEmulator
from miner.drivers.bm13xx import DRIVER as BM13XX
from miner.drivers.bm13xx.emulator import Bm13xxEmulator
from miner.drivers.icarus import protocol as ip
from miner.drivers.icarus.emulator import IcarusEmulator

from miner.core.dispatch import Dispatcher
from miner.core.shares import Verdict, check_reported
from miner.core.targets import difficulty_to_target
from miner.core.work import Job
from miner.devices.base import DeviceSpec, DeviceState
from miner.devices.work_source import DispatcherWorkSource
from miner.sources.sandbox import sandbox_job
from tests.helpers.icarus_rig import DIFF, RATE, Harness, wait_for

RUNS = 3


def run_until_valid(device, valid, count: int = 2, timeout: float = 30.0) -> None:
    device.start()
    try:
        wait_for(lambda: device.stats.state is DeviceState.ALIVE or device.stats.state is DeviceState.DEAD,
                 timeout, "init")
        assert device.stats.state is DeviceState.ALIVE, device.stats.last_error
        before = len(valid())
        wait_for(lambda: len(valid()) >= before + count, timeout, f"{count} valid nonces")
    finally:
        device.stop(timeout=2.0)


@pytest.mark.parametrize("model, options", [("u1", ""), ("erupter", ""), ("icarus", "model=icarus"),
                                            ("u3", "model=u3")])
def test_icarus_family_restarts(model, options):
    # DIFF gives ~5 nonces a second, so the stick has a reply for its old job in flight when most
    # runs start: the drain and the golden search must get past it.
    # (The 2-FPGA Icarus and an Erupter both answer in 4 bytes: its PL2303 id names it, here model=.)
    with IcarusEmulator(model, rate_ghs=RATE * (2 if model == "icarus" else 1), difficulty=DIFF) as emu:
        names = []
        for run in range(RUNS):
            harness = Harness()
            device = harness.device(emu.device_path, options, index=run)
            run_until_valid(device, harness.valid)
            names.append(device.model)
        assert names == [ip.model_named(model).name] * RUNS


def bm13xx_run(emulator, chip: str, chips: int, run: int) -> None:
    dispatcher = Dispatcher()
    dispatcher.set_job(sandbox_job(difficulty=1000))
    checked: list[Verdict] = []
    lock = threading.Lock()
    device = None

    def on_nonce(n):
        share = check_reported(n, dispatcher.lookup, device.target_for)
        if share is not None:
            device.on_verdict(share)
            with lock:
                checked.append(share.verdict)

    def valid():
        with lock:
            return [v for v in checked if v is not Verdict.HW_ERROR]

    spec = DeviceSpec.parse(f"{chip}:{emulator.device_path},difficulty=0.0001,ramp_delay=0,poll=0.3,enumerate=0.3,"
                            f"ticket=1,chips={chips}")
    device = BM13XX.create(spec, DispatcherWorkSource(dispatcher), on_nonce, run)
    run_until_valid(device, valid)
    assert device.chip_count == chips


@pytest.mark.parametrize("chip, chips", [("bm1384", 1), ("bm1397", 2), ("bm1370", 2), ("bm1362", 2), ("bm1373", 2)])
def test_bm13xx_chain_restarts(chip, chips):
    with Bm13xxEmulator(chip, chips=chips, rate=6e6, difficulty=0.0001) as emulator:
        for run in range(RUNS):
            bm13xx_run(emulator, chip, chips, run)


def avalon_job() -> Job:
    # A stratum job as the AUC takes it (coinbase halves around a 4-byte extranonce2).
    return Job("1", bytes(32), bytes.fromhex("01000000010000") + b"\x11" * 60, b"\x22" * 40, (b"\x33" * 32,),
               0x20000000, 0x1D00FFFF, 0x6553F100, clean=True, extranonce1=b"\xaa\xbb\xcc\xdd",
               extranonce2_size=4, share_target=difficulty_to_target(0.001), source="pool0")


def avalon_run(emulator, run: int) -> float:
    """One miner run against the AUC: seconds until the first valid nonce."""
    dispatcher = Dispatcher()
    dispatcher.set_job(avalon_job())
    checked: list[Verdict] = []
    device = None

    def on_nonce(n):
        share = check_reported(n, dispatcher.lookup, device.target_for)
        if share is not None:
            device.on_verdict(share)
            checked.append(share.verdict)

    spec = DeviceSpec.parse(f"avalon:{emulator.path},difficulty=0.001")
    device = AVALON.create(spec, DispatcherWorkSource(dispatcher), on_nonce, run)
    started = time.monotonic()
    run_until_valid(device, lambda: [v for v in checked if v is not Verdict.HW_ERROR], 1)
    assert len(device.modules) == 2, f"run {run}: {len(device.modules)} modules"
    return time.monotonic() - started


def test_avalon_restarts_find_the_modules_again():
    emulator = AvalonEmulator("avalon7", 0.02, 0.001, 2).start()
    try:
        for run in range(RUNS):
            took = avalon_run(emulator, run)
            # runs after the first wait out the modules' 3 s address timeout, once
            assert run == 0 or took >= 3.0
    finally:
        emulator.stop()


@pytest.mark.parametrize("model", ["u1", "u3"])
def test_commands_read_together_with_the_golden_packet(model):
    # A busy emulator can read the host's clock (and a U3's voltage) command in one go with the
    # golden packet behind it, the pause between them lost; it must still see commands, then a job.
    import serial

    with IcarusEmulator(model, rate_ghs=RATE) as emu, serial.Serial(emu.device_path, 115200, timeout=2) as port:
        stick = ip.model_named(model)
        commands = (ip.voltage_command(stick.default_millivolts) if stick.default_millivolts else b"")
        commands += stick.frequency_setting(stick.default_mhz)[1]
        port.write(commands + ip.GOLDEN_WORK)
        assert port.read(5) == ip.GOLDEN_REPLY + b"\0"
        assert len(emu.commands) == len(commands) // ip.COMMAND_SIZE and len(emu.jobs) == 1
