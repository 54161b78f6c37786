"""`miner serve --listen-sv2` (docs/serve.md §10) on real 127.0.0.1 sockets:

- the miner's own V2 client (PoolManager + CPU device) mines through `ServedSource`'s V2 listener,
  which proxies the V2 test pool (tests/helpers/sv2_pool.py): >= 1,000 shares accepted downstream, none
  invalid, every forwarded share valid at the upstream and on the downstream's own prefix, batches
  counted exactly; a V1 downstream at the same time never shares a prefix with it;
- standard channels, with the scripted client (tests/helpers/sv2_downstream.py);
- the upstream fails over SV2 -> SV1 unseen by the downstream; the downstream fails over SV2 -> SV1
  -> SV2 between the listener and the V1 test pool;
- a wrong authority key and an expired certificate are refused by the client with one line;
- the command line: `miner serve --listen-sv2` and a downstream `miner` process; the URL printed at
  start and shown by REST /api/serve, the worker's protocol in /api/workers, estats and /metrics.

The in-process tests run at a difficulty of a few thousand hashes a share (the CLI's floor, 0.0001, is
~430,000), pinned by setting the upstream's difficulty as vardiff's ceiling; waits are on counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from pathlib import Path

import aiohttp
import pytest

from miner.core.dispatch import Dispatcher
from miner.core.engine import Miner
from miner.devices.cpu import CpuDevice
from miner.devices.work_source import DispatcherWorkSource
from miner.server import sv2_keys
from miner.server.extranonce import PrefixPool, layout_for
from miner.server.served import ServedSource, Sv2Listen
from miner.server.session import Rules
from miner.server.sv2_server import Sv2Server
from miner.server.workers import WorkerBook
from miner.sources.stratum.failover import PoolManager
from miner.sources.stratum.url import PoolConfig
from miner.sources.sv2 import codec as c
from miner.sources.sv2 import secp
from miner.sources.sv2.noise import encode_authority_key
from tests.helpers.api_helpers import api
from tests.helpers.bcoin_node import free_port
from tests.helpers.stratum_pool import StratumTestPool
from tests.helpers.sv2_downstream import V2Socket
from tests.helpers.sv2_pool import Sv2TestPool
from tests.helpers.waiting import FAST, until
from tests.system.test_serve import start, stop


@pytest.fixture(autouse=True)
def state_in_tmp(tmp_path, monkeypatch):
    """Keys (XDG_STATE_HOME) and statistics (XDG_DATA_HOME) of the processes started here go to tmp."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


FLOOD = 2.0**-20  # ~4,096 hashes a share
EASY = 2.0**-16


async def _listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


@contextlib.asynccontextmanager
async def serving(upstreams: list[str], identity: sv2_keys.Sv2Identity | None = None, batch: int = 7,
                  difficulty: float = FLOOD, sv2_port: int = 0, v1_port: int = 0, pinned: bool = False):
    """A `miner serve` with no local device, in this process: the engine, ServedSource, both listeners."""
    manager = PoolManager([PoolConfig(url, "proxy.user", "x") for url in upstreams], FAST)
    identity = identity or sv2_keys.Sv2Identity(secp.new_secret(), secp.new_secret())
    served = ServedSource(manager, "127.0.0.1", v1_port, start_difficulty=difficulty, min_difficulty=difficulty,
                          sv2=Sv2Listen("127.0.0.1", sv2_port, identity, batch))
    engine = Miner(served, [], Dispatcher(), status_interval=0)
    task = asyncio.create_task(engine.run())
    try:
        await until(lambda: served.sv2_server is not None and served.server is not None, timeout=20,
                    what="both listeners")
        assert served.rules is not None
        # a CPU at a few thousand hashes a share sends hundreds a second: above the listeners' 50/s cap
        served.rules.messages_per_second, served.rules.burst = 100_000.0, 100_000.0
        if pinned:  # vardiff leaves the difficulty at its floor: the share count does not depend on the CPU's speed
            served.rules.shares_per_minute = 1e9
        yield served, manager
    finally:
        engine.request_stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)


@contextlib.asynccontextmanager
async def mining(urls: list[str], user: str = "alice.1"):
    """A downstream miner: the miner's own pool client and one CPU thread."""
    dispatcher = Dispatcher()
    manager = PoolManager([PoolConfig(url, user, "x") for url in urls], FAST)
    miner: Miner
    device = CpuDevice(DispatcherWorkSource(dispatcher), lambda n: miner.on_nonce(n), threads=1,
                       nonces_per_work=1 << 16)
    miner = Miner(manager, [device], dispatcher, status_interval=0)
    task = asyncio.create_task(miner.run())
    try:
        yield manager, miner, task
    finally:
        miner.request_stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)


def v2_sessions(served: ServedSource) -> list:
    assert served.sv2_server is not None
    return served.sv2_server.sessions


async def test_a_thousand_shares_through_the_v2_listener_none_invalid_batches_exact_and_v1_beside_it():
    upstream = Sv2TestPool(difficulty=FLOOD * 16, share_batch_size=5)  # 1 downstream share in ~16 goes upstream
    await upstream.start()
    try:
        async with serving([upstream.url()], pinned=True) as (served, _):
            url = served.sv2_server.url
            assert url == f"stratum2+tcp://127.0.0.1:{served.sv2_server.port}/{served.sv2.identity.authority_text}"
            async with mining([url]) as (down, miner, task):
                alice = served.workers.get("alice.1")
                # a V1 downstream at the same time, for a while: its prefix is never the V2 channel's
                async with mining([f"stratum+tcp://127.0.0.1:{served.server.port}"], "bob.1"):
                    await until(lambda: served.workers.get("bob.1").accepted >= 20 and alice.accepted >= 20,
                                timeout=60, what="V1 and V2 shares at once")
                await until(lambda: alice.accepted >= 1000, timeout=120, what="1,000 V2 shares accepted downstream")
                (session,) = v2_sessions(served)
                session.batch_size = 1  # from here every share is answered at once, so the stop's wait gets all
                session.flush()  # the last partial batch, as the sweep's timer would
                miner.request_stop()
                await asyncio.wait_for(task, 15)
                client = down.pools[0]
            upstream.flush()
            await until(lambda: upstream.acknowledged == upstream.accepted, what="the upstream's last batch")
        # downstream: every share the client sent was accepted, and the batches counted exactly
        assert alice.rejected_total == 0 and alice.accepted >= 1000
        assert down.stats.accepted == alice.accepted and not down.stats.rejected
        assert client.session.batches == session.batches >= 1000 // 7
        assert alice.protocol == "stratum2" and served.workers.get("bob.1").protocol == "stratum1"
        # upstream: every forwarded share valid there, each downstream on its own 2-byte prefix
        assert served.dropped == 0 and upstream.rejected == 0 and alice.forwarded >= 1000 // 32
        prefixes = {share.message.extranonce[:2] for share in upstream.shares}
        assert len(prefixes) == 2 and b"\x00\x00" not in prefixes  # alice's and bob's; 0 is the local devices'
        assert alice.forwarded + served.workers.get("bob.1").forwarded == upstream.accepted
        assert alice.upstream_accepted == alice.forwarded
    finally:
        await upstream.stop()


async def test_standard_channels_get_their_merkle_roots_and_their_shares_are_valid_upstream():
    upstream = Sv2TestPool(difficulty=EASY, share_batch_size=1)
    await upstream.start()
    try:
        async with serving([upstream.url()], batch=1, difficulty=EASY) as (served, _):
            v2 = served.sv2_server
            sock = await V2Socket.connect("127.0.0.1", v2.port, served.sv2.identity.authority_key)
            script = sock.script
            sock.send(script.setup(flags=c.REQUIRES_STANDARD_JOBS))
            sock.send(script.open("dev.1", standard=True))
            sock.send(script.open("dev.2", standard=True))
            await sock.until(lambda: len([ch for ch in script.channels.values() if ch.prev]) == 2)
            assert script.of(c.SetupConnectionSuccess)[0].used_version == 2
            for cid in list(script.channels):
                for i in range(3):
                    nonce, version, ntime, _, _ = script.find(cid, start=i << 20)
                    sock.send(script.submit(cid, nonce, version, ntime, b""))
            await sock.until(lambda: sum(m.new_submits_accepted_count for m in script.of(c.SubmitSharesSuccess)) == 6)
            await until(lambda: upstream.accepted >= 6, what="the forwarded shares at the upstream")
            assert not script.of(c.SubmitSharesError)
            roots = {job.merkle_root for ch in script.channels.values() for job in ch.jobs.values()}
            assert len(roots) == 2  # each channel's coinbase carries its own prefix
            await sock.close()
        assert upstream.rejected == 0 and len({s.message.extranonce[:2] for s in upstream.shares}) == 2
    finally:
        await upstream.stop()


async def test_upstream_failover_sv2_to_sv1_is_unseen_by_the_downstream():
    sv2 = Sv2TestPool(difficulty=EASY, share_batch_size=1)
    sv1 = StratumTestPool(difficulty=EASY, extranonce2_size=8)
    await sv2.start()
    await sv1.start()
    try:
        async with serving([sv2.url(), f"stratum+tcp://127.0.0.1:{sv1.port}"], batch=1, difficulty=EASY) \
                as (served, upstream), mining([served.sv2_server.url]) as (down, _, _):
            alice = served.workers.get("alice.1")
            await until(lambda: sv2.accepted >= 3, timeout=60, what="shares through to the V2 pool")
            await sv2.stop()
            await until(lambda: upstream.active is upstream.pools[1], timeout=20, what="the upstream's failover")
            before = alice.accepted
            await sv1.wait_submits(3, accepted=True)
            # the first shares the V1 pool gets may be ones checked (and counted) before `before` was
            # read, forwarded once the backup was up: wait for the downstream's own count to grow too
            await until(lambda: alice.accepted > before, timeout=30, what="downstream shares after the failover")
            assert down.active is down.pools[0] and down.pools[0].session.connections == 1  # same connection
        assert sv1.submits and all(s.accepted for s in sv1.submits) and sv2.rejected == 0
        assert set(alice.rejected) <= {"Stale"}  # only shares in flight on the old upstream's job
    finally:
        await sv2.stop()
        await sv1.stop()


async def test_downstream_fails_over_sv2_to_sv1_and_back_to_the_v2_listener():
    upstream = Sv2TestPool(difficulty=EASY, share_batch_size=1)
    backup = StratumTestPool(difficulty=EASY)
    await upstream.start()
    await backup.start()
    identity = sv2_keys.Sv2Identity(secp.new_secret(), secp.new_secret())
    port = free_port()
    try:
        url = identity.url("127.0.0.1", port)
        async with mining([url, f"stratum+tcp://127.0.0.1:{backup.port}"]) as (down, _, _):
            async with serving([upstream.url()], identity, batch=1, difficulty=EASY, sv2_port=port) as (served, _):
                await until(lambda: served.workers.get("alice.1").accepted >= 3, timeout=60, what="V2 shares")
            await until(lambda: down.active is down.pools[1], timeout=20, what="failover to the V1 pool")
            await backup.wait_submits(3, accepted=True)
            async with serving([upstream.url()], identity, batch=1, difficulty=EASY, sv2_port=port) as (served, _):
                await until(lambda: down.active is down.pools[0], timeout=30, what="back to the V2 listener")
                await until(lambda: served.workers.get("alice.1").accepted >= 3, timeout=60, what="V2 shares again")
        assert [p.protocol for p in down.pools] == ["stratum2", "stratum1"]
        assert upstream.rejected == 0 and all(s.accepted for s in backup.submits)
    finally:
        await upstream.stop()
        await backup.stop()


async def test_wrong_authority_key_and_expired_certificate_are_refused_by_the_client_with_one_line(caplog):
    upstream = Sv2TestPool(difficulty=EASY)
    await upstream.start()
    identity = sv2_keys.Sv2Identity(secp.new_secret(), secp.new_secret())
    try:
        async with serving([upstream.url()], identity, difficulty=EASY) as (served, _):
            job = served.sv2_server.job
            assert job is not None
            rules = Rules(layout_for(job), PrefixPool(layout_for(job).capacity), WorkerBook())
            stale = Sv2Server(rules, sv2_keys.CertificateIssuer(identity, wall_clock=lambda: time.time() - 7200),
                              "127.0.0.1", 0)  # a certificate issued two hours ago, for an hour
            await stale.start()
            stale.publish(job)
            other = encode_authority_key(secp.xonly_public(secp.new_secret()))
            wrong = f"stratum2+tcp://127.0.0.1:{served.sv2_server.port}/{other}"
            try:
                with caplog.at_level(logging.WARNING):
                    async with mining([wrong, stale.url]) as (down, _, _):
                        await until(lambda: all(p.last_error for p in down.pools), what="both refused")
            finally:
                await stale.stop()
        bad_key, expired = (p.last_error for p in down.pools)
        assert "not signed by the authority key" in bad_key and "\n" not in bad_key
        assert "certificate expired" in expired and "\n" not in expired
        assert not served.workers.all()  # no channel was ever opened
    finally:
        await upstream.stop()


async def test_the_command_line_serves_v2_prints_the_url_and_shows_it_in_rest_estats_and_metrics(tmp_path):
    upstream = Sv2TestPool(difficulty=0.0001, share_batch_size=1)
    await upstream.start()
    sv2_port, serve_port, http_port, api_port = free_port(), free_port(), free_port(), free_port()
    env_state = Path(os.environ["XDG_STATE_HOME"])
    server = await start("serve", "--listen", f"127.0.0.1:{serve_port}", "--listen-sv2", f"127.0.0.1:{sv2_port}",
                         "--sv2-share-batch", "1", "--no-cpu", "-o", upstream.url(), "-u", "proxy.user", "-p", "x",
                         "--http", f"127.0.0.1:{http_port}", "--api-listen", "--api-port", str(api_port))
    miners = []
    try:
        deadline = time.monotonic() + 30
        while not await _listening(sv2_port):
            assert server.returncode is None and time.monotonic() < deadline, "the V2 listener did not open"
            await asyncio.sleep(0.2)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{http_port}/api/serve") as r:
            info = await r.json()
        key_file = env_state / "miner" / sv2_keys.AUTHORITY_FILE
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        identity = sv2_keys.load_identity(key_file, directory=key_file.parent)
        assert info["sv2_url"] == f"stratum2+tcp://127.0.0.1:{sv2_port}/{identity.authority_text}"
        assert info["listen_sv2"] == f"127.0.0.1:{sv2_port}" and info["sv2_certificate_not_valid_after"] > time.time()
        miners.append(await start("-o", info["sv2_url"], "-u", "alice.1", "-p", "x", "-t", "1"))

        async def forwarded() -> bool:
            try:
                async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{http_port}/api/workers") as r:
                    ws = {w["name"]: w for w in await r.json()}
            except aiohttp.ClientError:
                return False
            return ws.get("alice.1", {}).get("upstream_accepted", 0) >= 2

        deadline = time.monotonic() + 120
        while not await forwarded():
            assert all(p.returncode is None for p in (server, *miners)), "a process exited early"
            assert time.monotonic() < deadline, "timed out waiting for forwarded V2 shares"
            await asyncio.sleep(0.3)
        estats = (await api(api_port, "estats"))["STATS"]
        rows = {row["Worker"]: row for row in estats if str(row["ID"]).startswith("SRV")}
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{http_port}/metrics") as r:
            metrics = await r.text()
        async with aiohttp.ClientSession() as http, http.get(
                f"http://127.0.0.1:{http_port}/api/dashboard/state") as r:
            card = {w["name"]: w for w in (await r.json())["workers"]}  # what the Workers card renders
    finally:
        logs = [await stop(m) for m in miners]
        server_log = await stop(server)
        await upstream.stop()
    assert server.returncode == 0, server_log[-3000:]
    assert all(m.returncode == 0 for m in miners), logs
    assert info["sv2_url"] in server_log  # printed at start
    assert rows["alice.1"]["Protocol"] == "stratum2" and card["alice.1"]["protocol"] == "stratum2"
    assert 'miner_serve_worker_info{protocol="stratum2",worker="alice.1"} 1.0' in metrics
    assert upstream.shares and all(s.accepted for s in upstream.shares)
    for share in upstream.shares:  # each valid at the upstream, which rebuilt and hashed it itself
        assert share.message.extranonce[:2] != b"\x00\x00"
    assert Path(key_file).read_text().count("authority_secret_key") == 1


async def test_a_backup_with_a_shorter_extranonce2_sends_reconnect_and_the_miner_comes_back_on_new_sizes():
    first = Sv2TestPool(difficulty=EASY, share_batch_size=1)  # extranonce 8: 2 for prefixes, 6 per channel
    backup = StratumTestPool(difficulty=EASY, extranonce2_size=6)  # 6: 2 for prefixes, 4 per channel
    await first.start()
    backup_port = free_port()  # the backup comes up only after the first job set the 2 + 6 split
    try:
        async with serving([first.url(), f"stratum+tcp://127.0.0.1:{backup_port}"], batch=1, difficulty=EASY) \
                as (served, _), mining([served.sv2_server.url]) as (down, _, _):
            client = down.pools[0]
            await until(lambda: client.session.channel is not None, timeout=20, what="the channel")
            assert client.session.channel.extranonce_size == 6
            await backup.start(backup_port)
            await first.stop()
            # Reconnect("", 0): the client comes back to the same listener and gets a 4-byte extranonce
            await until(lambda: client.session.connections >= 2 and client.session.channel is not None
                        and client.session.channel.extranonce_size == 4, timeout=30, what="the new channel")
            await backup.wait_submits(3, accepted=True, timeout=60)
            assert down.active is client  # never left the V2 listener for another pool
        assert all(s.accepted for s in backup.submits)
    finally:
        await first.stop()
        await backup.stop()


async def test_the_connection_cap_closes_one_more_at_once():
    source = Sv2TestPool(difficulty=EASY)
    await source.start()
    identity = sv2_keys.Sv2Identity(secp.new_secret(), secp.new_secret())
    try:
        async with serving([source.url()], identity, difficulty=EASY) as (served, _):
            job = served.sv2_server.job
            rules = Rules(layout_for(job), PrefixPool(layout_for(job).capacity), WorkerBook())
            capped = Sv2Server(rules, sv2_keys.CertificateIssuer(identity), "127.0.0.1", 0, max_connections=2)
            await capped.start()
            capped.publish(job)
            try:
                held = [await V2Socket.connect("127.0.0.1", capped.port, identity.authority_key) for _ in range(2)]
                reader, writer = await asyncio.open_connection("127.0.0.1", capped.port)
                assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed before any handshake
                writer.close()
                assert capped.refused == 1 and len(capped.connections) == 2
                for sock in held:
                    await sock.close()
            finally:
                await capped.stop()
    finally:
        await source.stop()
