"""A cgminer user's habits, run as a user runs them: the `miner` command in a subprocess against
test pools on 127.0.0.1 (docs/cli.md). Shares go to both pools under --load-balance with quotas,
from the command line and from a cgminer.conf shaped as cgminer saves it; a busy API port is one
line and mining goes on (cgminer api.c); restart works from a folder holding a `miner` folder; a
miner whose only device is Dead exits 2 with one line.

Difficulties are picked for a fixed expected number of hashes per share; waits are on conditions."""

import asyncio
import json
import os
import socket
import sys
from pathlib import Path

from tests.helpers.api_helpers import api
from tests.helpers.stratum_pool import StratumTestPool
from tests.helpers.waiting import until

ROOT = Path(__file__).resolve().parents[2]
EASY = 2.0**-16  # a share per ~65,536 hashes
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


async def start_miner(*args: str, cwd: Path = ROOT) -> asyncio.subprocess.Process:
    """`miner ARGS` through its entry point, as a user types it (from any folder)."""
    entry = Path(sys.executable).parent / "miner"
    return await asyncio.create_subprocess_exec(
        str(entry), "--no-tui", "-t", "1", "--hotplug", "0", *args, cwd=cwd, stderr=asyncio.subprocess.PIPE,
        env=ENV)


async def finish(proc: asyncio.subprocess.Process) -> str:
    if proc.returncode is None:
        proc.terminate()
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    return err.decode()


def accepted(pool: StratumTestPool) -> int:
    return sum(s.accepted for s in pool.submits)


async def both_pools_get_shares(args_for) -> str:
    pools = [StratumTestPool(difficulty=EASY), StratumTestPool(difficulty=EASY)]
    for pool in pools:
        await pool.start()
    urls = [f"stratum+tcp://127.0.0.1:{p.port}" for p in pools]
    proc = await start_miner(*args_for(urls))
    try:
        await until(lambda: all(accepted(p) >= 2 for p in pools), timeout=90, what="shares at both pools")
        assert not any(s for p in pools for s in p.submits if not s.accepted)
    finally:
        err = await finish(proc)
        for pool in pools:
            await pool.stop()
    return err


async def test_load_balance_with_quotas_sends_shares_to_both_pools():
    err = await both_pools_get_shares(lambda urls: ["-o", urls[0], "-u", "w", "-p", "x", "--quota", f"2;{urls[1]}",
                                                    "--load-balance"])
    assert "Traceback" not in err


async def test_a_saved_cgminer_conf_with_quota_pools_mines_on_both(tmp_path):
    def conf(urls):
        path = tmp_path / "cgminer.conf"
        path.write_text(json.dumps({  # as cgminer.c write_config saves it
            "pools": [{"url": urls[0], "user": "me.1", "pass": "x"},
                      {"quota": f"2;{urls[1]}", "user": "me.2", "pass": "x"}],
            "load-balance": True, "log": "1", "expiry": "120", "gekko-compacf-freq": "200",
            "api-mcast-addr": "224.0.0.75", "gekko-tune-up": "97.0"}, indent=1))
        return ["-c", str(path)]
    err = await both_pools_get_shares(conf)
    ignored = [line for line in err.splitlines() if "cgminer options without an equivalent here" in line]
    assert len(ignored) == 1 and "api-mcast-addr, gekko-tune-up" in ignored[0]


def busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_a_busy_api_port_is_one_line_and_mining_goes_on():
    holder = busy_port()
    http = free_port()
    pool = StratumTestPool(difficulty=EASY)
    await pool.start()
    proc = await start_miner("-o", f"stratum+tcp://127.0.0.1:{pool.port}", "-u", "w", "--api-listen",
                             "--api-port", str(holder.getsockname()[1]), "--http", f"127.0.0.1:{http}")
    try:
        await pool.wait_submits(3, accepted=True, timeout=60)  # mining goes on
        reader, writer = await asyncio.open_connection("127.0.0.1", http)  # the free server serves
        writer.write(b"GET /api/summary HTTP/1.0\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200") or answer.startswith(b"HTTP/1.0 200")
        assert proc.returncode is None
    finally:
        err = await finish(proc)
        holder.close()
        await pool.stop()
    lines = [line for line in err.splitlines() if "cannot listen" in line]
    assert len(lines) == 1 and "cgminer API" in lines[0] and "mining goes on without it" in lines[0]
    assert "Traceback" not in err


async def test_restart_works_from_a_folder_with_a_miner_folder(tmp_path):
    (tmp_path / "miner").mkdir()
    (tmp_path / "miner" / "__init__.py").write_text("raise ImportError('the wrong miner package')\n")
    port = free_port()
    proc = await start_miner("--api-listen", "--api-port", str(port), "--api-allow", "W:127.0.0.1",
                             "--sandbox-diff", "0.002", cwd=tmp_path)
    try:
        async def answers() -> bool:
            try:
                return (await api(port, "summary"))["STATUS"][0]["STATUS"] == "S"
            except OSError:
                return False

        async def wait_answers(what: str) -> None:
            for _ in range(600):
                if await answers():
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(what)

        await wait_answers("the API before the restart")
        first = (await api(port, "summary"))["SUMMARY"][0]["Elapsed"]
        await api(port, "restart")
        await asyncio.sleep(1.5)
        await wait_answers("the API after the restart")
        assert proc.returncode is None
        assert (await api(port, "summary"))["SUMMARY"][0]["Elapsed"] <= first + 2
    finally:
        err = await finish(proc)
    assert "restarting" in err and "the wrong miner package" not in err and "ImportError" not in err


async def test_a_miner_whose_only_device_is_dead_exits_2_with_one_line():
    emulator = await asyncio.create_subprocess_exec(sys.executable, "-m", "miner", "emulate", "bm1397",
                                                    stdout=asyncio.subprocess.PIPE, cwd=ROOT, env=ENV)
    try:
        pty = (await asyncio.wait_for(emulator.stdout.readline(), 30)).decode().strip()
        proc = await start_miner("--device", f"icarus:{pty}", "--no-cpu", "--time-limit", "60")
        err = await finish_when_done(proc)
    finally:
        emulator.terminate()
        await emulator.wait()
    assert proc.returncode == 2
    assert err.count("every device is Dead") == 1


async def finish_when_done(proc: asyncio.subprocess.Process) -> str:
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    return err.decode()


def test_solo_the_cgminer_way_mines_blocks_on_the_node(regtest_node):
    """`-o http://NODE:PORT -u USER -p PASS --btc-address ADDR`: cgminer's solo mining (docs/cli.md §1)."""
    import subprocess

    from tests.system.test_solo_node import ADDRESSES

    node = regtest_node
    start = node.rpc("getblockcount")
    proc = subprocess.run([str(Path(sys.executable).parent / "miner"), "-o", node.url, "-u", "x", "-p", node.api_key,
                           "--btc-address", ADDRESSES["p2sh"][0], "-t", "1", "--time-limit", "4", "--no-tui"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert "solo mining at height" in proc.stderr and "accepted at height" in proc.stderr
    assert node.rpc("getblockcount") > start
