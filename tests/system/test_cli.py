import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from miner.app import bench
from miner.core import hashing

ROOT = Path(__file__).resolve().parents[2]


def run_miner(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "miner", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_benchmark_json_lists_every_engine_and_thread_count():
    proc = run_miner("benchmark", "--seconds", "0.3", "--threads", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert rows[0]["engine"] == bench.NAIVE_ENGINE
    measured = {(r["engine"], r["threads"]) for r in rows[1:]}
    assert measured == {(e, t) for e in hashing.engines() for t in (1, 2)}
    for r in rows:
        assert r["mhs"] > 0
    # the native core beats a Python loop over hashlib on any engine (by 4x to 30x on a quiet
    # machine; the bar is low because 0.3 s samples on a busy 2-core machine are noisy)
    assert all(r["ratio"] > 1 for r in rows[1:])


def test_benchmark_table_for_one_engine():
    proc = run_miner("benchmark", "--seconds", "0.2", "--threads", "1", "--engine", "portable")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["engine", "threads", "MH/s"]
    assert any(line.startswith("portable ") for line in lines)


def test_miner_without_pool_mines_the_sandbox_and_says_how_to_use_a_pool():
    proc = run_miner("--time-limit", "4", "--status-interval", "1", "--sandbox-diff", "0.002", "-t", "2")
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "sandbox" in err
    assert "miner -o stratum+tcp://" in err
    assert "MH/s" in err
    assert "sandbox share:" in err
    final = [line for line in err.splitlines() if "final:" in line][-1]
    accepted = int(final.split("A:")[1].split()[0])
    assert accepted > 0


def test_unknown_engine_is_one_clear_error():
    proc = run_miner("--engine", "quantum")
    assert proc.returncode == 2
    assert "unknown engine 'quantum'" in proc.stderr
    assert "Traceback" not in proc.stderr


def measured_hash_rate(seconds: float = 0.3) -> float:
    """One thread's sha256d rate right now, under whatever load the machine has."""
    header, done, start = bytes(80), 0, time.monotonic()
    while time.monotonic() - start < seconds:
        hashing.scan(header, done, 1 << 16, 1)  # target 1: nothing is found, only hashed
        done += 1 << 16
    return done / (time.monotonic() - start)


async def test_miner_mines_a_pool_from_the_command_line():
    import asyncio

    from tests.helpers.stratum_pool import StratumTestPool

    difficulty = 0.001
    pool = StratumTestPool(difficulty=difficulty)
    await pool.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "miner", "-o", f"stratum+tcp://127.0.0.1:{pool.port}", "-u", "bc1qworker.rig",
        "-p", "x", "--suggest-diff", "0.01", "-t", "1", "--status-interval", "2", "--no-tui",
        "--stats-file", str(Path(tempfile.mkdtemp()) / "stats.json"),
        cwd=ROOT, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        # A share takes difficulty * 2**32 hashes on average; 20 times that at the rate measured
        # now (one thread, this machine's current load) misses with probability e**-20.
        expected = difficulty * 2**32 / measured_hash_rate()
        await pool.wait_submits(1, accepted=True, timeout=30 + 20 * expected)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = err.decode()
    assert proc.returncode == 0, text
    assert pool.sessions and pool.sessions[0].user == "bc1qworker.rig"
    sent = [m for m in pool.sessions[0].received if m.get("method") == "mining.suggest_difficulty"]
    assert sent and sent[0]["params"] == [0.01]
    final = [line for line in text.splitlines() if "final:" in line][-1]
    assert "pool0" in final and re.search(r"\d\.\d\d [kMGT]?H/s", final) and "A:" in final
    accepted = [s for s in pool.submits if s.accepted]
    assert accepted and len(accepted) == len(pool.submits)
    await pool.stop()


def test_bad_pool_url_is_one_clear_error():
    proc = run_miner("-o", "http://pool.example:3333", "-u", "me")
    assert proc.returncode == 2
    # http:// is a node the cgminer way (docs/cli.md §1): the line says what is missing and what a pool looks like
    assert "needs --btc-address ADDR" in proc.stderr and "stratum+tcp://HOST:PORT" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_miner("-o", "ftp://pool.example:3333", "-u", "me")
    assert proc.returncode == 2
    assert "unknown scheme 'ftp'" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_device_driver_is_one_clear_error():
    proc = run_miner("--device", "nosuch:/dev/ttyUSB0", "--time-limit", "1")
    assert proc.returncode == 2
    assert "no such driver" in proc.stderr and "cpu" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_cpu_and_no_board_is_one_clear_error():
    proc = run_miner("--no-cpu", "--time-limit", "1")
    assert proc.returncode == 2
    assert "no devices" in proc.stderr and "Traceback" not in proc.stderr


def test_emulate_lists_emulators_and_rejects_unknown_ones():
    proc = run_miner("emulate", "--help")
    assert proc.returncode == 0 and "usage: miner emulate DEVICE" in proc.stdout
    proc = run_miner("emulate", "nosuch")
    assert proc.returncode == 2 and "no emulator for 'nosuch'" in proc.stderr


def test_a_stats_file_naming_a_directory_stops_with_one_line_and_touches_nothing(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    proc = subprocess.run([sys.executable, "-m", "miner", "--stats-file", str(folder), "--time-limit", "5"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert "not a file" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"] and (folder / "notes.txt").read_text() == "mine"
