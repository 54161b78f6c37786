"""`miner emulate bm13xx-chip ...` as a person runs it, the entry point and USB detection."""

import os
import subprocess
import sys
import time

import pytest
from miner.drivers.bm13xx import DRIVER, Bm13xxDevice

from miner.devices.base import DeviceSpec, DeviceState
from miner.devices.manager import PortInfo, claim, load_drivers
from miner.devices.work_source import DispatcherWorkSource, NoWork
from tests.conftest import ROOT


def test_every_chip_name_reaches_the_driver():
    drivers = load_drivers()
    for name in ("bm13xx", "bm1384", "bm1387", "bm1397", "bm1366", "bm1368", "bm1370"):
        assert drivers[name] is DRIVER
    spec = DeviceSpec.parse("bm1368:/dev/null,chips=2,difficulty=0.01")
    device = DRIVER.create(spec, NoWork(), lambda n: None, 3)
    assert isinstance(device, Bm13xxDevice) and device.info.name == "bm1368" and device.name == "bm1368-3"
    assert device.rolls_version and device.expected_chips == 2


def test_usb_detection_by_product_string():
    drivers = load_drivers().values()
    compac_f = PortInfo("/dev/ttyUSB0", 0x0403, 0x6015, "CompacF Bitcoin Miner")
    driver, model = claim(compac_f, drivers)
    assert driver is DRIVER and model == "bm1397"
    device = DRIVER.create(DeviceSpec("bm13xx", "/dev/ttyUSB0", {"model": model}), NoWork(),
                           lambda n: None, 0)
    assert isinstance(device, Bm13xxDevice) and device.info.name == "bm1397"
    # a bare FTDI bridge is not claimed; a NewPac is, as a BM1387 chain, and a Compac as a BM1384
    assert claim(PortInfo("/dev/ttyUSB1", 0x0403, 0x6015, "FT230X Basic UART"), drivers) is None
    driver, model = claim(PortInfo("/dev/ttyUSB2", 0x0403, 0x6015, "NewPac Bitcoin Miner"), drivers)
    assert model == "bm1387"
    newpac = DRIVER.create(DeviceSpec("bm13xx", "/dev/ttyUSB2", {"model": model}), NoWork(), lambda n: None, 0)
    assert isinstance(newpac, Bm13xxDevice) and newpac.info.name == "bm1387" and newpac.model == "BM1387"
    driver, model = claim(PortInfo("/dev/ttyUSB3", 0x10C4, 0xEA60, "Compac BM1384 Bitcoin Miner"), drivers)
    assert driver is DRIVER and model == "bm1384"


@pytest.mark.parametrize("chip", ["bm1397", "bm1387"])
def test_miner_emulate_prints_the_pty_and_a_driver_mines_with_it(chip):
    proc = subprocess.Popen([sys.executable, "-m", "miner", "emulate", chip, "--chips", "2", "--rate", "0.005",
                             "--difficulty", "0.0002"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/pts/")
        from miner.core.dispatch import Dispatcher
        from miner.sources.sandbox import sandbox_job

        dispatcher = Dispatcher()
        dispatcher.set_job(sandbox_job(difficulty=1000))
        nonces = []
        device = DRIVER.create(DeviceSpec.parse(f"{chip}:{path},difficulty=0.0002,ticket=1,ramp_delay=0,"
                                                "enumerate=0.3"), DispatcherWorkSource(dispatcher), nonces.append, 0)
        device.start()
        deadline = time.monotonic() + 15
        while len(nonces) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        device.stop()
        assert device.chip_count == 2 and len(nonces) >= 2
        assert device.stats.state is not DeviceState.DEAD
    finally:
        proc.terminate()
        proc.wait(5)


def test_bm1384_emulator_is_one_chip():
    done = subprocess.run([sys.executable, "-m", "miner", "emulate", "bm1384", "--chips", "2"], capture_output=True,
                          text=True, cwd=ROOT, timeout=30)
    assert done.returncode == 2 and "one chip" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_job_interval_follows_rate_and_version_range():
    def device(chip, chips, mhz, mask):
        d = DRIVER.create(DeviceSpec.parse(f"{chip}:/dev/null"), NoWork(), lambda n: None, 0)
        d.chip_count, d.stats.frequency, d.version_mask = chips, mhz, mask
        return d

    # BM1366+: ~2**48 hashes per job, so ESP-Miner's freshness interval / next_pow2(chips)
    assert device("bm1366", 1, 485, 0x1FFFE000).job_interval() == 2.0
    assert device("bm1366", 3, 485, 0x1FFFE000).job_interval() == 0.5
    assert device("bm1370", 1, 525, 0x1FFFE000).job_interval() == 0.5
    # ...unless the pool lets nothing roll: then the nonce space runs out first
    assert device("bm1370", 1, 525, 0).job_interval() < 0.01
    # BM1397: half the time its midstates' nonce space lasts
    four = device("bm1397", 1, 425, 0x1FFFE000).job_interval()
    assert four == (1 << 32) * 4 / (425e6 * 672) / 2
    assert device("bm1397", 1, 425, 0).job_interval() == four / 4
    assert device("bm1397", 4, 425, 0x1FFFE000).job_interval() == four / 4
