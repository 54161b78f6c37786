"""`miner serve` (docs/serve.md) with real processes and real sockets on 127.0.0.1.

- proxy mode: `miner serve` against the test pool (tests/helpers/stratum_pool.py, which rebuilds and
  hashes every submit itself) with two downstream `miner` processes on the CPU: every share the pool
  saw is valid, and the local devices and the two workers each hash under their own extranonce prefix;
- failover: the first pool dies, the downstream connection stays and gets the backup's job, clean;
- solo pool mode: `miner serve --no-cpu` against the bcoin regtest node with one downstream `miner`:
  its blocks are accepted by the node and pay the address;
- load: 500 downstream connections subscribe, all get a new job, the next one over the cap is refused.

Difficulties are the server's floor (0.0001, ~430,000 hashes a share), and the pool's is the same, so
every downstream share is forwarded; the tests wait for counts, never for a time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from miner.drivers.icarus.emulator import IcarusEmulator

from miner.server.served import ServedSource
from miner.sources.stratum.failover import PoolManager
from miner.sources.stratum.url import PoolConfig
from tests.helpers.api_helpers import api
from tests.helpers.bcoin_node import free_port
from tests.helpers.icarus_rig import DIFF as STICK_DIFF
from tests.helpers.icarus_rig import RATE as STICK_RATE
from tests.helpers.stratum_load import close_downstreams, open_downstreams
from tests.helpers.stratum_pool import StratumTestPool
from tests.helpers.waiting import FAST, until

ROOT = Path(__file__).resolve().parents[2]
POOL_DIFF = 0.0001


@pytest.fixture(autouse=True)
def stats_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))


async def start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "miner", *args, "--no-tui", "--status-interval", "60", cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def stop(process: asyncio.subprocess.Process) -> str:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, err = await asyncio.wait_for(process.communicate(), 20)
    except TimeoutError:
        process.kill()
        _, err = await process.communicate()
    return err.decode(errors="replace")


async def workers(http_port: int) -> list[dict]:
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{http_port}/api/workers") as r:
            return await r.json()
    except aiohttp.ClientError:
        return []


async def poll(predicate, timeout: float, what: str, processes=()) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        for p in processes:
            assert p.returncode is None, f"a process exited early while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_proxy_mode_two_downstream_miners_every_share_valid_each_on_its_own_prefix():
    pool = StratumTestPool(difficulty=POOL_DIFF)
    await pool.start()
    serve_port, http_port, api_port = free_port(), free_port(), free_port()
    server = await start("serve", "--listen", f"127.0.0.1:{serve_port}", "-o", f"stratum+tcp://127.0.0.1:{pool.port}",
                         "-u", "proxy.user", "-p", "x", "-t", "1", "--http", f"127.0.0.1:{http_port}",
                         "--api-listen", "--api-port", str(api_port))
    miners = []
    try:
        await poll(lambda: _listening(serve_port), 30, "the server to listen", [server])
        for name in ("alice.1", "bob.1"):
            miners.append(await start("-o", f"stratum+tcp://127.0.0.1:{serve_port}", "-u", name, "-p", "x", "-t", "1"))

        async def both_forwarded() -> bool:
            ws = {w["name"]: w for w in await workers(http_port)}
            return all(ws.get(n, {}).get("upstream_accepted", 0) >= 3 for n in ("alice.1", "bob.1"))

        await poll(both_forwarded, 90, "3 accepted forwarded shares from each worker", [server, *miners])
        ws = {w["name"]: w for w in await workers(http_port)}
        estats = (await api(api_port, "estats"))["STATS"]
        rows = {row["Worker"]: row for row in estats if str(row["ID"]).startswith("SRV")}
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{http_port}/metrics") as r:
            metrics = await r.text()
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{http_port}/api/dashboard/state") as r:
            page_workers = {w["name"]: w for w in (await r.json())["workers"]}  # the dashboard's Workers card
    finally:
        logs = [await stop(m) for m in miners]
        server_log = await stop(server)
        await pool.stop()
    assert server.returncode == 0, server_log[-3000:]
    assert all(m.returncode == 0 for m in miners), logs
    assert pool.submits and all(s.accepted for s in pool.submits), [s.reason for s in pool.submits if not s.accepted]
    assert {"alice.1", "bob.1"} <= set(page_workers)
    assert all(page_workers[n]["accepted"] >= 3 and page_workers[n]["last_share_ago"] >= 0
               for n in ("alice.1", "bob.1"))
    prefixes = Counter(s.params[2][:4] for s in pool.submits)  # the first 2 bytes of the pool's extranonce2
    downstream = {p for p in prefixes if p != "0000"}
    assert len(downstream) >= 2, prefixes  # the two workers: prefixes of their own, never the local devices' 0000
    assert prefixes["0000"] > 0  # the local CPU mined the same pool's jobs beside them
    assert sum(prefixes[p] for p in downstream) >= sum(w["upstream_accepted"] for w in ws.values())
    assert all(w["rejected"] == {} for w in ws.values()), ws
    assert set(rows) == {"alice.1", "bob.1"} and all(r["Accepted"] >= 3 and r["Forwarded"] >= 3 for r in rows.values())
    assert all(r["User Agent"].startswith("pyminer") for r in rows.values())
    assert 'miner_serve_worker_shares_total{result="accepted",worker="alice.1"}' in metrics
    assert len({s.session for s in pool.submits}) == 1  # one upstream connection for everyone


async def _listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


async def test_failover_is_invisible_downstream_the_backup_job_arrives_clean_on_the_same_connection():
    first, backup = StratumTestPool(difficulty=POOL_DIFF), StratumTestPool(difficulty=POOL_DIFF)
    await first.start()
    await backup.start()
    pools = PoolManager([PoolConfig(f"stratum+tcp://127.0.0.1:{p.port}", "proxy", "x") for p in (first, backup)], FAST)
    served = ServedSource(pools, "127.0.0.1", 0)
    jobs = []
    served.bind(jobs.append, lambda *a: None)
    await served.start()
    downstreams = []
    try:
        await until(lambda: served.server is not None and served.server.job is not None, 10, "the first job")
        downstreams = await open_downstreams(served.server.port, 3)
        await until(lambda: all(d.jobs for d in downstreams), 10, "the first notify")
        en1_first = first.sessions[0].extranonce1.hex()
        assert all(en1_first in d.jobs[-1][2] for d in downstreams)  # coinb1 + the upstream's extranonce1
        prefixes = {d.extranonce1 for d in downstreams}
        assert len(prefixes) == 3 and "0000" not in prefixes
        await first.stop()
        began = time.monotonic()
        en1_backup = backup.sessions[0].extranonce1.hex()
        took = await until(lambda: all(en1_backup in d.jobs[-1][2] for d in downstreams), 10, "the backup's job")
        assert took < 5.0
        assert all(d.jobs[-1][8] is True for d in downstreams)  # clean
        assert not any(d.closed for d in downstreams)
        assert {d.extranonce1 for d in downstreams} == prefixes  # nothing to re-subscribe
        local = jobs[-1]  # the local devices: the backup's coinbase with prefix 0
        assert local.extranonce1 == b"\x00\x00" and local.coinb1.endswith(bytes.fromhex(en1_backup))
        assert time.monotonic() - began < 10
    finally:
        await close_downstreams(downstreams)
        await served.stop()
        await backup.stop()


async def test_a_backup_with_a_shorter_extranonce2_moves_every_downstream_to_new_sizes():
    first = StratumTestPool(difficulty=POOL_DIFF, extranonce2_size=8)
    backup = StratumTestPool(difficulty=POOL_DIFF, extranonce2_size=4)
    await first.start()
    await backup.start()
    pools = PoolManager([PoolConfig(f"stratum+tcp://127.0.0.1:{p.port}", "proxy", "x") for p in (first, backup)], FAST)
    served = ServedSource(pools, "127.0.0.1", 0)
    served.bind(lambda job: None, lambda *a: None)
    await served.start()
    downstreams = again = []
    try:
        await until(lambda: served.server is not None and served.server.job is not None, 10, "the first job")
        downstreams = await open_downstreams(served.server.port, 2)
        await until(lambda: all(d.jobs for d in downstreams), 10, "the first notify")
        assert {d.extranonce2_size for d in downstreams} == {6}
        await first.stop()
        await until(lambda: all(d.closed for d in downstreams), 10, "client.reconnect and close")
        assert all(d.calls[-1] == "client.reconnect" for d in downstreams)
        again = await open_downstreams(served.server.port, 2)
        await until(lambda: all(d.jobs for d in again), 10, "a job after re-subscribing")
        assert {d.extranonce2_size for d in again} == {2}
        assert all(backup.sessions[0].extranonce1.hex() in d.jobs[-1][2] for d in again)
    finally:
        await close_downstreams([*downstreams, *again])
        await served.stop()
        await backup.stop()


async def test_500_downstream_connections_get_every_job_and_the_cap_refuses_the_next():
    pool = StratumTestPool(difficulty=POOL_DIFF)
    await pool.start()
    pools = PoolManager([PoolConfig(f"stratum+tcp://127.0.0.1:{pool.port}", "proxy", "x")], FAST)
    served = ServedSource(pools, "127.0.0.1", 0, max_connections=500)
    served.bind(lambda job: None, lambda *a: None)
    await served.start()
    downstreams = []
    try:
        await until(lambda: served.server is not None and served.server.job is not None, 10, "the first job")
        downstreams = await open_downstreams(served.server.port, 500)
        await until(lambda: all(d.jobs for d in downstreams), 30, "500 first notifies")
        assert len({d.extranonce1 for d in downstreams}) == 500
        job_id = pool.notify(clean=True)
        await until(lambda: all(len(d.jobs) >= 2 and d.jobs[-1][8] for d in downstreams), 30, "the new job on all")
        assert len({d.jobs[-1][0] for d in downstreams}) == 1 and job_id  # one notify line for everyone
        reader, writer = await asyncio.open_connection("127.0.0.1", served.server.port)
        refused = json.loads(await asyncio.wait_for(reader.readline(), 10))
        assert refused["error"][1] == "server full"
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        assert served.server.refused == 1
    finally:
        await close_downstreams(downstreams)
        await served.stop()
        await pool.stop()


async def test_solo_pool_mode_a_downstream_workers_blocks_are_accepted_and_pay_the_address(regtest_node):
    from tests.system.test_solo_node import ADDRESSES

    node = regtest_node
    address, script = ADDRESSES["p2wpkh"]
    start_height = node.rpc("getblockcount")
    serve_port, http_port = free_port(), free_port()
    server = await start("serve", "--listen", f"127.0.0.1:{serve_port}", "--rpc-url", node.url, "--rpc-pass",
                         node.api_key, "--address", address, "--no-cpu", "--http", f"127.0.0.1:{http_port}")
    downstream = None
    try:
        await poll(lambda: _listening(serve_port), 30, "the server to listen", [server])
        downstream = await start("-o", f"stratum+tcp://127.0.0.1:{serve_port}", "-u", "carol", "-p", "x", "-t", "1")

        async def two_blocks() -> bool:
            return any(w["blocks"] >= 2 for w in await workers(http_port))

        await poll(two_blocks, 90, "2 blocks from the downstream worker", [server, downstream])
    finally:
        if downstream is not None:
            await stop(downstream)
        server_log = await stop(server)
    assert server.returncode == 0, server_log[-3000:]
    height = node.rpc("getblockcount")
    assert height - start_height >= 2
    for h in range(start_height + 1, height + 1):
        block = node.rpc("getblock", node.rpc("getblockhash", h), True, True)
        coinbase = block["tx"][0]
        assert any(out["scriptPubKey"]["hex"] == script for out in coinbase["vout"]), coinbase["vout"]



async def test_proxy_mode_an_emulated_icarus_stick_downstream_every_share_rechecked_forwarded_and_valid():
    """A downstream `miner` with an emulated U3 (a pty that really hashes, at a fixed emulated rate)
    and no CPU: each of the stick's nonces (difficulty STICK_DIFF, ~4.7/s at STICK_RATE) meets the
    server's difficulty (started at the pool's, which is lower), so each is re-checked by the server and
    forwarded; the test waits for 4 of them accepted by the pool."""
    pool = StratumTestPool(difficulty=POOL_DIFF)
    await pool.start()
    emu = IcarusEmulator("u3", rate_ghs=STICK_RATE, difficulty=STICK_DIFF).start()
    serve_port, http_port = free_port(), free_port()
    server = await start("serve", "--listen", f"127.0.0.1:{serve_port}", "-o", f"stratum+tcp://127.0.0.1:{pool.port}",
                         "-u", "proxy.user", "-p", "x", "--no-cpu", "--serve-start-diff", str(POOL_DIFF),
                         "--http", f"127.0.0.1:{http_port}")
    stick = None
    try:
        await poll(lambda: _listening(serve_port), 30, "the server to listen", [server])
        stick = await start("-o", f"stratum+tcp://127.0.0.1:{serve_port}", "-u", "dave.u3", "-p", "x", "--no-cpu",
                            "--device", f"icarus:{emu.device_path},difficulty={STICK_DIFF}")

        async def forwarded() -> bool:
            return any(w["name"] == "dave.u3" and w["upstream_accepted"] >= 4 for w in await workers(http_port))

        await poll(forwarded, 60, "4 of the stick's shares accepted upstream", [server, stick])
        worker = next(w for w in await workers(http_port) if w["name"] == "dave.u3")
    finally:
        stick_log = await stop(stick) if stick is not None else ""
        server_log = await stop(server)
        await pool.stop()
        emu.stop()
    assert server.returncode == 0, server_log[-3000:]
    assert stick is not None and stick.returncode == 0, stick_log[-3000:]
    assert pool.submits and all(s.accepted for s in pool.submits), [s.reason for s in pool.submits if not s.accepted]
    prefixes = {s.params[2][:4] for s in pool.submits}
    assert len(prefixes) == 1 and "0000" not in prefixes  # no local devices; the stick's own prefix
    stick_nonces = {f"{sent.reply.header_nonce:08x}" for sent in emu.sent if sent.valid}
    assert {s.params[4] for s in pool.submits} <= stick_nonces  # every share the pool saw, the stick found
    assert worker["rejected"] == {} and worker["accepted"] >= worker["forwarded"] >= 4
    assert worker["user_agent"].startswith("pyminer")


async def rest_post(http_port: int, path: str, body: object, token: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, \
            session.post(f"http://127.0.0.1:{http_port}{path}", json=body, headers=headers) as r:
        return r.status, await r.json()


async def test_operator_moves_a_downstream_miner_to_another_pool_with_client_reconnect():
    """REST `POST /api/workers/reconnect` (token-checked) sends a real downstream `miner` to a second
    pool on 127.0.0.1 (same host: the client follows, docs/stratum.md); its next shares arrive there.
    The cgminer API's `workerreconnect` is write-only and checks its parameters the same way."""
    pool, target = StratumTestPool(difficulty=POOL_DIFF), StratumTestPool(difficulty=POOL_DIFF)
    await pool.start()
    await target.start()
    serve_port, http_port, api_port = free_port(), free_port(), free_port()
    server = await start("serve", "--listen", f"127.0.0.1:{serve_port}", "-o", f"stratum+tcp://127.0.0.1:{pool.port}",
                         "-u", "proxy.user", "-p", "x", "--no-cpu", "--http", f"127.0.0.1:{http_port}",
                         "--http-token", "sekrit", "--api-listen", "--api-port", str(api_port),
                         "--api-allow", "W:127.0.0.1")
    miner = None
    move = {"host": "127.0.0.1", "port": target.port, "wait": 0}
    try:
        await poll(lambda: _listening(serve_port), 30, "the server to listen", [server])
        miner = await start("-o", f"stratum+tcp://127.0.0.1:{serve_port}", "-u", "erin", "-p", "x", "-t", "1")

        async def connected() -> bool:
            return any(w["name"] == "erin" and w["connections"] == 1 for w in await workers(http_port))

        await poll(connected, 30, "the downstream miner to log in", [server, miner])
        assert (await rest_post(http_port, "/api/workers/reconnect", move))[0] == 401
        assert (await rest_post(http_port, "/api/workers/reconnect", move, "wrong"))[0] == 401
        status, answer = await rest_post(http_port, "/api/workers/reconnect", {**move, "port": 70000}, "sekrit")
        assert status == 400 and "port" in answer["error"]
        status, answer = await rest_post(http_port, "/api/workers/reconnect", {**move, "worker": "nobody"}, "sekrit")
        assert status == 409 and "nobody" in answer["error"]
        bad = (await api(api_port, "workerreconnect", "127.0.0.1,notaport"))["STATUS"][0]
        assert bad["STATUS"] == "E" and "port" in bad["Msg"]
        assert target.submits == []  # nothing moved yet
        status, answer = await rest_post(http_port, "/api/workers/reconnect", {**move, "worker": "erin"}, "sekrit")
        assert (status, answer) == (200, {"ok": True, "moved": 1})
        async def arrived() -> bool:
            return sum(1 for s in target.submits if s.accepted) >= 2

        await poll(arrived, 60, "2 shares at the second pool", [server, miner])

        async def gone() -> bool:
            return all(w["connections"] == 0 for w in await workers(http_port))

        await poll(gone, 30, "the moved miner to leave the server", [server, miner])
        status, answer = await rest_post(http_port, "/api/workers/reconnect", move, "sekrit")
        assert status == 409  # nobody left to move
    finally:
        miner_log = await stop(miner) if miner is not None else ""
        server_log = await stop(server)
        await pool.stop()
        await target.stop()
    assert server.returncode == 0, server_log[-3000:]
    assert miner is not None and miner.returncode == 0, miner_log[-3000:]
    assert "client.reconnect" in miner_log  # the miner says where it went
    assert target.sessions and all(s.accepted for s in target.submits)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "miner", "serve", *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)


def test_cli_help_names_the_servers_options_and_the_mining_ones():
    proc = run_cli("--help")
    assert proc.returncode == 0
    assert "--listen HOST:PORT" in proc.stdout and "--max-connections" in proc.stdout and "-o URL" in proc.stdout


def test_cli_bad_listen_and_no_source_are_one_line_each():
    bad = run_cli("--listen", "nowhere", "-o", "stratum+tcp://127.0.0.1:1", "-u", "x")
    assert bad.returncode == 2 and "--listen needs HOST:PORT" in bad.stderr and "Traceback" not in bad.stderr
    none = run_cli("--listen", "127.0.0.1:0")
    assert none.returncode == 2 and "needs pools" in none.stderr and "Traceback" not in none.stderr
