"""The BM13xx driver against the emulated chain over a real pty (pyserial on the slave side): init,
mining at the ticket mask, version rolling, clean jobs, faults, frequency changes."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time

import pytest
import serial
from miner.drivers.bm13xx import DRIVER
from miner.drivers.bm13xx import protocol as p
from miner.drivers.bm13xx.emulator import Bm13xxEmulator

from miner.core import hashing
from miner.core.dispatch import Dispatcher
from miner.core.shares import Verdict, check_nonce, check_reported
from miner.core.targets import hash_to_int
from miner.devices.base import DeviceError, DeviceSpec, DeviceState
from miner.devices.work_source import DispatcherWorkSource, NoWork
from miner.sources.sandbox import sandbox_job

CHIPS = ["bm1397", "bm1366", "bm1368", "bm1370", "bm1387", "bm1384"]
# the chip UART rate after init: BM1384 stays at its reset rate (§1.1)
EMULATED_BAUD = {"bm1397": 3_125_000, "bm1387": 1_562_500, "bm1384": 115_740}
# BM1384 sticks have one chip, and its replies carry no chip address (§2.4)
CHAINS = [(chip, n) for chip in CHIPS for n in (1, 4) if chip != "bm1384" or n == 1]


def chain_size(chip: str, chips: int) -> int:
    return 1 if chip == "bm1384" else chips
RATE = 6e6  # emulated H/s: light on a shared CPU
SCALE = 0.0001  # difficulty=D: nonces every ~430k hashes at ticket 1


def wait_for(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@contextlib.contextmanager
def chain(chip: str, chips: int = 1, options: str = "", rate: float = RATE, scale: float = SCALE,
          link=None, job_difficulty: float = 1000.0):
    emulator = Bm13xxEmulator(chip, chips=chips, rate=rate, difficulty=scale, link=link).start()
    dispatcher = Dispatcher()
    dispatcher.set_job(sandbox_job(difficulty=job_difficulty))
    nonces = []
    lock = threading.Lock()

    def on_nonce(n):
        # The share path in miniature: the verdict goes back to the device (its per-chip counters).
        share = check_reported(n, dispatcher.lookup, device.target_for)
        if share is not None:
            device.on_verdict(share)
        with lock:
            nonces.append(n)

    spec = DeviceSpec.parse(f"{chip}:{emulator.device_path},difficulty={scale},ramp_delay=0,poll=0.3,"
                            f"enumerate=0.3,ticket=1{options}")
    device = DRIVER.create(spec, DispatcherWorkSource(dispatcher), on_nonce, 0)
    device.reopen_interval = 0.2
    device.start()
    try:
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, 10, "init")
        yield emulator, device, dispatcher, nonces
    finally:
        device.stop()
        emulator.stop()


def verdicts(dispatcher, device, nonces):
    out = []
    for n in list(nonces):
        work = dispatcher.lookup(n.work_id)
        out.append(check_nonce(work, n, device.target_for(work)).verdict)
    return out


# ------------------------------------------------------------------------------------ init
@pytest.mark.parametrize(("chip", "chips"), CHAINS)
def test_init_of_a_chain(chip, chips):
    info = p.CHIPS[chip]
    with chain(chip, chips, options=",ticket=64,frequency=300") as (emulator, device, _, _):
        assert device.chip_count == chips and emulator.initialised
        assert sorted(c.address for c in emulator.chips) == [i * (256 // chips) for i in range(chips)]
        assert [s.address for s in device.chip_stats] == [c.address for c in emulator.chips]
        # enumerate, then chain inactive, then addresses, then the init writes
        kinds = [c.cmd for c in emulator.commands]
        first_read = kinds.index(p.CMD_READ)
        assert first_read < kinds.index(p.CMD_INACTIVE) < kinds.index(p.CMD_SET_ADDRESS)
        assert emulator.commands[first_read] == p.read_register(p.REG_CHIP_ID)
        if info.ticket_in_job:
            wait_for(lambda: emulator.jobs > 0, 5, "a job")  # BM1384: the ticket mask travels in the job
        assert emulator.ticket_difficulty == 64 == device.ticket
        assert emulator.frequency == pytest.approx(300) and device.stats.frequency == pytest.approx(300)
        # the PLL was ramped in 6.25 MHz steps, not set in one jump
        plls = [c.value for c in emulator.commands if c.cmd == p.CMD_WRITE and c.reg == info.pll_reg]
        assert len(plls) > 10 and info.pll_mhz(plls[0]) < 100
        # the fast baud rate on both ends
        assert device.serial.baudrate == info.fast_baud == device.baud
        assert emulator.baud == (p.CLKI_HZ // ((2 + 1) * 8) if info.header_jobs else EMULATED_BAUD[chip])
        if info.header_jobs:
            assert emulator.version_mask == 0x1FFFE000
        assert emulator.jobs_refused == 0
        wait_for(lambda: emulator.jobs > 0, 5, "a job")
        assert device.details()["Chips"] == chips and device.details()["Temperature"] is None


# The BM1384 hashes from power-on: bfgminer's compac driver sends its golden work before any
# command (tests/devices/test_foreign_hosts.py plays it).
@pytest.mark.parametrize("chip", [c for c in CHIPS if c != "bm1384"])
def test_chain_refuses_work_until_initialised(chip):
    chips = chain_size(chip, 2)
    emulator = Bm13xxEmulator(chip, chips=chips, rate=RATE, difficulty=SCALE).start()
    try:
        info = p.CHIPS[chip]
        work = sandbox_job().make_work(0, b"\0\0\0\0")
        job = work.job
        mids = (hashing.midstate(work.header),)
        if info.header_jobs:
            frame = p.HeaderJob(8, job.nbits, job.ntime, work.merkle_root, job.prevhash, work.version).encode()
        else:  # ticket difficulty 1: the BM1384 job's ticket byte 0
            job_id = 0x14 if info.legacy else 4
            frame = info.framing.encode_midstate_job(
                p.MidstateJob(job_id, job.nbits, job.ntime, work.header[64:68], mids), ticket=1)
        parser = info.reply_parser() if info.legacy else p.ReplyParser(long=False)  # short until VR is on
        with serial.Serial(emulator.device_path, 115200, timeout=0.3) as port:
            port.write(info.encode_command(p.read_register(p.REG_CHIP_ID)))
            ids = list(parser.feed(port.read(chips * parser.frame_size)))
            port.write(frame)
            wait_for(lambda: emulator.jobs_refused == 1, 3, "the job refused")
            assert port.read(64) == b""  # nothing hashed
        # every chip answered the chip-id read, in the short form before version rolling is on
        assert [r.value >> 16 for r in ids] == [info.chip_id] * chips
    finally:
        emulator.stop()


def test_wrong_chip_is_not_this_device():
    emulator = Bm13xxEmulator("bm1370", rate=RATE).start()
    try:
        device = DRIVER.create(DeviceSpec.parse(f"bm1366:{emulator.device_path},enumerate=0.3"),
                               NoWork(), lambda n: None, 0)
        device.start()
        wait_for(lambda: device.stats.state is DeviceState.DEAD, 5, "dead")
        assert "1370" in device.stats.last_error and "bm1370" in device.stats.last_error
        device.stop()
    finally:
        emulator.stop()


# ------------------------------------------------------------------------------------ mining
@pytest.mark.parametrize("chip", CHIPS)
def test_mining_at_the_ticket_mask_with_rolled_versions(chip):
    ticket, scale = 4, SCALE / 5
    options = f",ticket={ticket},job_interval=0.4"
    with chain(chip, chain_size(chip, 2), options=options, scale=scale) as (emulator, device, dispatcher, nonces):
        if p.CHIPS[chip].ticket_in_job:
            wait_for(lambda: emulator.jobs > 0, 5, "a job")  # BM1384: the ticket mask travels in the job
        assert emulator.ticket_difficulty == ticket
        start_hashes, start_count = emulator.hashes_done, len(nonces)
        wait_for(lambda: len(nonces) - start_count >= 25, 15, "nonces")
        time.sleep(0.3)
        hashes, found = emulator.hashes_done - start_hashes, len(nonces) - start_count
        # Each hash reports with probability 2**224 / (ticket * D) / 2**256.
        expected = hashes / (ticket * scale * 2**32)
        assert abs(found - expected) <= 5 * math.sqrt(expected) + 5, (found, expected)
        # at ticket 1 there would be four times as many: the mask is honoured
        assert found < 2.5 * expected
        checks = [check_nonce(dispatcher.lookup(n.work_id), n, device.target_for(dispatcher.lookup(n.work_id)))
                  for n in list(nonces)]
        assert all(c.verdict is not Verdict.HW_ERROR for c in checks)
        assert all(hash_to_int(c.digest) <= p.report_target(ticket * scale) for c in checks)
        rolled = [c for c in checks if c.version != c.work.version]
        assert rolled or p.CHIPS[chip].midstates == 1, "no version-rolled nonce"  # BM1384: one midstate
        for c in rolled:
            # the C core agrees: the rolled header hashes under the target
            assert hashing.scan(c.header, c.nonce.nonce, 1, device.target_for(c.work)) == [c.nonce.nonce]
            assert (c.version ^ c.work.job.version) & ~c.work.job.version_mask == 0
        details = device.details()
        assert sum(c["Nonces"] for c in details["Per Chip"]) == len(nonces) - device.duplicates
        assert all(c["Nonces"] > 0 and c["HW Errors"] == 0 for c in details["Per Chip"])
        assert device.crc_errors == 0 and device.garbage_bytes == 0


@pytest.mark.parametrize("chip", ["bm1397", "bm1370", "bm1387", "bm1384"])
def test_clean_job_replaces_the_chips_work(chip):
    with chain(chip, options=",job_interval=5") as (emulator, device, dispatcher, nonces):
        wait_for(lambda: len(nonces) >= 3, 10, "nonces")
        jobs_before = emulator.jobs
        second = dataclasses.replace(sandbox_job(difficulty=1000), job_id="second")
        dispatcher.set_job(second)
        device.restart_work()
        # the new work goes out at once, not after the 5 s job interval
        wait_for(lambda: emulator.jobs > jobs_before, 2, "the new job")
        time.sleep(0.2)
        mark = len(nonces)
        wait_for(lambda: len(nonces) >= mark + 3, 10, "nonces for the new job")
        assert {dispatcher.lookup(n.work_id).job.job_id for n in nonces[mark:]} == {"second"}
        assert Verdict.HW_ERROR not in verdicts(dispatcher, device, nonces)


@pytest.mark.parametrize("chip", CHIPS)
def test_frequency_change_at_run_time(chip):
    with chain(chip, options=",frequency=200") as (emulator, device, _, nonces):
        assert emulator.frequency == pytest.approx(200)
        device.set_frequency(250)
        wait_for(lambda: emulator.frequency == pytest.approx(250), 3, "the new clock")
        # the driver records the clock after the chip has taken it: the emulator may see it first
        wait_for(lambda: device.stats.frequency == pytest.approx(250), 3, "the driver to record the new clock")
        assert device.nominal_hashrate() == pytest.approx(250e6 * p.CHIPS[chip].small_cores)
        with pytest.raises(DeviceError):
            device.set_frequency(100000)
        wait_for(lambda: len(nonces) >= 2, 10, "nonces after the change")


# ------------------------------------------------------------------------------------ faults
@pytest.mark.parametrize("chip", ["bm1397", "bm1368", "bm1387"])
def test_faults_are_counted_and_survived(chip, tmp_path):
    link = tmp_path / "ttyBM"
    with chain(chip, 4, options=",stall=1.0", link=link) as (emulator, device, dispatcher, nonces):
        def more_nonces(count=2, timeout=10.0):
            mark = len(nonces)
            wait_for(lambda: len(nonces) >= mark + count, timeout, "nonces")

        more_nonces()
        # CRC errors: the replies are dropped and counted
        emulator.corrupt_replies(3)
        wait_for(lambda: device.crc_errors >= 3, 5, "CRC errors counted")
        more_nonces()
        # garbage on the line
        emulator.send_garbage(40)
        wait_for(lambda: device.garbage_bytes > 0, 5, "garbage counted")
        more_nonces()
        # a chip drops out of the chain: the poll notices, the others keep hashing
        emulator.drop_chip(2)
        wait_for(lambda: device.chip_dropouts == 1, 5, "the dropout")
        assert not device.chip_stats[2].present
        before = device.chip_stats[2].nonces
        more_nonces(4)
        assert device.chip_stats[2].nonces == before
        emulator.restore_chip(2)
        wait_for(lambda: device.chip_stats[2].present, 5, "the chip back")
        # a stall: the driver gives up on the link, reopens and re-initialises
        emulator.stall(2.0)
        wait_for(lambda: device.stalls == 1, 5, "the stall noticed")
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, 10, "re-initialised")
        more_nonces()
        # an unplug and replug at the same path
        emulator.unplug()
        wait_for(lambda: device.stats.state is DeviceState.NO_DEVICE, 5, "NoDevice")
        emulator.replug()
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, 10, "back after the replug")
        assert emulator.initialised and device.chip_count == 4
        more_nonces()
        assert verdicts(dispatcher, device, nonces).count(Verdict.HW_ERROR) <= (1 if p.CHIPS[chip].legacy else 0)


def test_bm1384_faults_are_counted_and_survived(tmp_path):
    """One chip, so no dropout; its nonces carry no CRC, so corrupted replies are not a fault the
    link can see. Garbage, a stall and an unplug it must survive."""
    with chain("bm1384", 1, options=",stall=1.0", link=tmp_path / "ttyBM") as (emulator, device, dispatcher, nonces):
        def more_nonces(count=2, timeout=10.0):
            mark = len(nonces)
            wait_for(lambda: len(nonces) >= mark + count, timeout, "nonces")

        more_nonces()
        emulator.send_garbage(40)
        wait_for(lambda: device.garbage_bytes + device.crc_errors > 0, 5, "garbage noticed")
        more_nonces()
        emulator.stall(2.0)
        wait_for(lambda: device.stalls == 1, 5, "the stall noticed")
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, 10, "re-initialised")
        more_nonces()
        emulator.unplug()
        wait_for(lambda: device.stats.state is DeviceState.NO_DEVICE, 5, "NoDevice")
        emulator.replug()
        wait_for(lambda: device.stats.state is DeviceState.ALIVE, 10, "back after the replug")
        more_nonces()
        # garbage that reads as a nonce (no CRC on BM1384 nonces) is an HW error, never a share
        assert verdicts(dispatcher, device, nonces).count(Verdict.HW_ERROR) <= 2
