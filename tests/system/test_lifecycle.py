"""Stopping cleanly: pending shares are sent, statistics written, a second Ctrl-C exits at once."""

import asyncio
import json
import logging
import os
import signal
import sys
import threading

from miner.app.cli import mining_parser
from miner.app.compose import serve
from miner.app.settings import MINE, merge
from miner.core.dispatch import Dispatcher
from miner.core.engine import Miner
from miner.core.work import Nonce
from miner.devices.base import Device, DeviceState
from miner.devices.work_source import DispatcherWorkSource
from miner.sources.sandbox import SandboxSource
from miner.sources.stratum.connection import redact_line
from tests.helpers.api_helpers import running_miner, until
from tests.helpers.stratum_pool import StratumTestPool

TINY = 1e-12  # every hash meets it: any nonce is a valid share


class LastWordDevice(Device):
    """Reports one nonce while it is being stopped, the way a board returns a last result while idled;
    optionally takes its time to stop."""

    driver = "fake"

    def __init__(self, work, sink, hold: threading.Event | None = None):
        super().__init__(work, sink, "fake0", difficulty=TINY)
        self.hold = hold
        self.stopping = threading.Event()

    def start(self):
        self.stats.set_state(DeviceState.ALIVE)

    def stop(self, timeout=5.0):
        self.stopping.set()
        if self.hold is not None:
            self.hold.wait(10)
        work = self.work_source.next_work()
        self.report_nonce(Nonce(work.work_id, 0, device=self.name))


def sandbox_miner(hold=None):
    dispatcher = Dispatcher()
    source = SandboxSource(TINY)
    dispatcher.set_job(source.job)
    miner: Miner
    device = LastWordDevice(DispatcherWorkSource(dispatcher), lambda n: miner.on_nonce(n), hold)
    miner = Miner(source, [device], dispatcher, status_interval=0)
    return miner, source, device


async def test_a_nonce_reported_while_stopping_is_still_checked_and_sent():
    miner, source, device = sandbox_miner()
    await miner.run(time_limit=0.2)
    assert device.stopping.is_set()
    assert source.stats.accepted == 1 and miner.totals.hw_errors == 0


async def test_second_interrupt_exits_at_once(tmp_path, monkeypatch):
    exits = []
    hold = threading.Event()

    def fake_exit(code):
        exits.append(code)
        hold.set()  # let the stuck device go, so the test ends

    monkeypatch.setattr(os, "_exit", fake_exit)
    miner, source, device = sandbox_miner(hold)
    given = vars(mining_parser().parse_args(["--no-tui", "--stats-file", str(tmp_path / "stats.json")]))
    settings = merge(MINE, given, None)
    task = asyncio.create_task(serve(miner, settings))
    await asyncio.sleep(0.2)
    os.kill(os.getpid(), signal.SIGINT)
    await until(device.stopping.is_set, what="stop begun")
    assert exits == []  # the first interrupt stops cleanly, which takes its time here
    os.kill(os.getpid(), signal.SIGINT)
    await until(lambda: exits == [130], what="immediate exit")
    assert await asyncio.wait_for(task, 10) is False
    assert json.loads((tmp_path / "stats.json").read_text())["format"] == 1


async def test_sigterm_stops_the_miner_process_cleanly_and_saves_statistics(tmp_path):
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    stats = tmp_path / "stats.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "miner", "-o", f"stratum+tcp://127.0.0.1:{pool.port}", "-u", "w.1", "-p", "x",
        "--cpu", "-t", "1", "--hotplug", "0", "--no-tui", "--stats-file", str(stats),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await pool.wait_submits(2, accepted=True, timeout=60)
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = err.decode()
    assert process.returncode == 0, log
    assert "SIGTERM: stopping devices" in log and "statistics saved" in log
    saved = json.loads(stats.read_text())
    assert saved["best_all_time"] > 0 and saved["best_per_pool"]
    await pool.stop()


def test_redacted_protocol_lines():
    line = b'{"id": 3, "method": "mining.authorize", "params": ["me.worker", "hunter22"]}'
    assert "hunter22" not in redact_line(line, "hunter22") and '"***"' in redact_line(line, "hunter22")
    assert redact_line(b'{"id":1,"result":true,"error":null}', "x") == '{"id":1,"result":true,"error":null}'
    assert redact_line(b"garbage hunter22", "hunter22") == "garbage ***"


async def test_protocol_log_shows_both_directions_without_the_password(caplog):
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    logger = logging.getLogger("miner.protocol")
    logger.setLevel(logging.INFO)
    caplog.set_level(logging.INFO, logger="miner.protocol")
    try:
        async with running_miner([pool]):
            await pool.wait_submits(1, accepted=True)
    finally:
        logger.setLevel(logging.WARNING)
    lines = [r.getMessage() for r in caplog.records if r.name == "miner.protocol"]
    assert any("pool0 > " in m and "mining.authorize" in m and '"***"' in m for m in lines)
    assert any("pool0 < " in m and "mining.notify" in m for m in lines)
    assert any("pool0 > " in m and "mining.submit" in m for m in lines)
    assert not any("secret-pw" in m for m in lines)
    await pool.stop()
