"""Running as a service: `miner systemd-unit` prints a unit that systemd's own checker accepts, and
the sd_notify client talks to a real datagram socket, abstract or on disk (docs/alerts.md §4)."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from miner.app.service import Notifier

ROOT = Path(__file__).resolve().parents[2]


def miner(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "miner", *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("user", [False, True])
def test_the_unit_passes_systemd_analyze_verify(tmp_path, user):
    args = ["systemd-unit", *(["--user"] if user else []), "-o", "stratum+tcp://127.0.0.1:3333",
            "-u", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4.rig 1%", "--payout-check", "enforce"]
    proc = miner(*args)
    assert proc.returncode == 0, proc.stderr
    assert "Type=notify" in proc.stdout and "WatchdogSec=" in proc.stdout
    unit = tmp_path / "miner.service"
    unit.write_text(proc.stdout)
    # (verified as a system unit either way: `verify --user` needs a user session's runtime folder)
    check = subprocess.run(["systemd-analyze", "verify", str(unit)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "miner.service" not in check.stderr, check.stderr  # no warning about our unit


def test_systemd_unit_refuses_options_miner_would_refuse():
    proc = miner("systemd-unit", "--payout-check", "maybe")
    assert proc.returncode == 2 and "invalid choice: 'maybe'" in proc.stderr


@pytest.mark.parametrize("abstract", [False, True])
def test_sd_notify_reaches_a_datagram_socket(abstract):
    folder = Path(tempfile.mkdtemp(prefix="sd", dir="/tmp"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        name = f"miner-test-{os.getpid()}"
        server.bind("\0" + name if abstract else str(folder / "notify"))
        server.settimeout(5)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name if abstract else str(folder / "notify"),
                             "WATCHDOG_USEC": "4000000"})
        assert notifier.watchdog == 4.0
        assert notifier.notify(READY=1, STATUS="mining at 1.00 GH/s")
        assert server.recv(4096) == b"READY=1\nSTATUS=mining at 1.00 GH/s"
        assert notifier.notify(WATCHDOG=1)
        assert server.recv(4096) == b"WATCHDOG=1"
    shutil.rmtree(folder, ignore_errors=True)
    assert not Notifier({"NOTIFY_SOCKET": str(folder / "gone")}).notify(READY=1)  # no listener: False, no raise



def test_a_bad_alert_option_stops_the_command_before_mining_with_one_line():
    proc = miner("--sharelog", "/nonexistent/x.csv", "--time-limit", "1")
    assert proc.returncode == 2
    assert "--sharelog /nonexistent/x.csv: the folder /nonexistent does not exist" in proc.stderr
    assert "cpu0" not in proc.stderr  # nothing started
