"""Solo mining against a node that answers nonsense (issue 14, fault 8), and the RPC client's URL
forms against the real bcoin node: one clear line per bad answer, never a traceback, mining resumes
when the node answers right, and SIGTERM stops cleanly at any stage."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import pytest

from miner.app.compose import run_solo
from miner.app.settings import DeviceSettings, NodeSettings, RunSettings, Settings
from miner.sources.node.gbt import GbtSource
from miner.sources.node.rpc import NodeAuthError, NodeError, RpcClient, RpcError
from miner.sources.node.template import TemplateError, parse_template
from tests.helpers.bcoin_node import ROOT, BcoinNode
from tests.helpers.hostile_node import FAULTS, RAW_FAULTS, TEMPLATE_FAULTS, HostileNode

ADDRESS = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"  # docs/gbt.md §2.8


@pytest.fixture(autouse=True)
def stats_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))


def options(url: str, time_limit: float = 60) -> Settings:
    node = NodeSettings(rpc_url=url, rpc_password="x", address=ADDRESS, retry_cap=0.05, rpc_timeout=5,
                        poll_interval=0.1)
    return Settings(node=node, devices=DeviceSettings(threads=1),
                    run=RunSettings(time_limit=time_limit, status_interval=60))


def problems(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def no_tracebacks(caplog) -> None:
    assert not [(r.getMessage(), repr(r.exc_info[1])) for r in caplog.records if r.exc_info], "logged with a traceback"
    assert all("\n" not in r.getMessage() for r in problems(caplog)), "a problem took more than one line"


@pytest.mark.parametrize("fault", FAULTS)
async def test_each_bad_answer_is_one_node_or_template_error(fault):
    async with HostileNode([fault]) as node:
        client = RpcClient(node.url, "u", "p", timeout=5)
        with pytest.raises((NodeError, TemplateError)) as info:
            parse_template(await client.call("getblocktemplate", {}))
        assert node.served == [fault]
        assert "\n" not in str(info.value) and "Traceback" not in str(info.value)
        if fault in TEMPLATE_FAULTS:
            assert isinstance(info.value, TemplateError)
        else:
            assert isinstance(info.value, NodeError)
            assert isinstance(info.value, RpcError) or str(info.value).startswith(f"node {node.url}")
        # and the next answer is a good template again
        assert parse_template(await client.call("getblocktemplate", {})).height == 1


async def test_every_bad_answer_at_start_then_blocks_once_the_node_answers_right(caplog):
    caplog.set_level(logging.INFO)
    async with HostileNode(list(FAULTS)) as node:
        source = await asyncio.wait_for(run_solo(options(node.url), max_blocks=2), 60)
    assert node.served[: len(FAULTS)] == FAULTS
    assert source.stats.accepted >= 2 and node.accepted[: source.stats.accepted] == source.accepted_hashes
    assert not node.rejected
    warned = {r.getMessage() for r in problems(caplog)}
    assert len(warned) >= len(RAW_FAULTS) + len(TEMPLATE_FAULTS) - 4  # a few share one line (HTTP parser)
    no_tracebacks(caplog)


async def test_bad_templates_while_mining_and_after_a_block_do_not_stop_hashing(caplog):
    """curtime -1 / 2^33 once killed the CPU thread (struct.error) and bad bits after an accepted
    block the share path; now they are refused at the edge and mining goes on with the last good
    template, then with the next good one."""
    caplog.set_level(logging.INFO)
    runtime = ["curtime -1", "curtime 2^33", "bits ffffffff", "bits 00800000", "height -1"]
    async with HostileNode(["good", *runtime]) as node:
        node.after_first_block = list(runtime)
        holder: list[GbtSource] = []
        source = await asyncio.wait_for(run_solo(options(node.url), max_blocks=3, on_source=holder.append), 60)
    assert node.served.count("curtime 2^33") == 2 and node.served.count("bits ffffffff") == 2
    assert source.stats.accepted >= 3 and not node.rejected
    assert source.template is not None and source.template.curtime < 1 << 32
    no_tracebacks(caplog)


async def _sigterm_when(line: str, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "miner", "solo", *args, "--address", ADDRESS, "-t", "1", "--no-tui",
        cwd=ROOT, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stderr is not None
    seen = []
    try:
        async with asyncio.timeout(60):
            while line not in (text := (await process.stderr.readline()).decode()):
                assert text, "".join(seen)[-3000:]
                seen.append(text)
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, "".join(seen) + err.decode()


async def test_sigterm_while_the_node_sends_nonsense_is_a_clean_stop():
    async with HostileNode(FAULTS * 50) as node:
        rc, log = await _sigterm_when("retrying in", "--rpc-url", node.url, "--rpc-pass", "x")
    assert rc == 0, log[-3000:]
    assert "SIGTERM" in log and "Traceback" not in log


async def test_sigterm_while_mining_on_a_node_that_then_sends_nonsense_is_a_clean_stop():
    async with HostileNode(["good"]) as node:
        node.after_first_block = FAULTS * 50
        rc, log = await _sigterm_when("accepted at height", "--rpc-url", node.url, "--rpc-pass", "x")
    assert rc == 0, log[-3000:]
    assert "SIGTERM: stopping devices" in log and "Traceback" not in log and "statistics saved" in log


# ------------------------------------------------------------------------------------ URL forms, real node
async def test_credentials_in_the_url_against_bcoin(regtest_node):
    url = regtest_node.url.replace("http://", f"http://x:{regtest_node.api_key}@")
    client = RpcClient(url)
    assert await client.call("getblockcount") == regtest_node.rpc("getblockcount")
    assert regtest_node.api_key not in str(client)  # never shown in a log line
    wrong = RpcClient(regtest_node.url.replace("http://", "http://x:wrong@"))
    with pytest.raises(NodeAuthError, match="the user:pass in the URL"):
        await wrong.call("getblockcount")


async def test_ipv6_node_against_bcoin():
    node = BcoinNode(host="::1")
    await asyncio.to_thread(node.start)
    try:
        client = RpcClient(node.url.replace("http://", f"http://x:{node.api_key}@"))
        assert str(client).startswith("http://[::1]:")
        assert await client.call("getblockcount") == 0
        assert parse_template(await client.call("getblocktemplate", {"rules": ["segwit"]})).height == 1
    finally:
        node.close()


async def test_https_node_behind_tls(tmp_path):
    """A node behind a TLS proxy: the client checks the certificate against the CA it is given."""
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    async with HostileNode() as node:
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(server_ctx)
        proxy = await asyncio.start_server(lambda r, w: _pipe_to(node.port, r, w), "127.0.0.1", 0, ssl=server_ctx)
        port = proxy.sockets[0].getsockname()[1]
        try:
            client_ctx = ssl.create_default_context()
            ca.configure_trust(client_ctx)
            client = RpcClient(f"https://u:p@127.0.0.1:{port}", ssl_context=client_ctx)
            assert parse_template(await client.call("getblocktemplate", {})).height == 1
            untrusted = RpcClient(f"https://u:p@127.0.0.1:{port}", timeout=5)
            with pytest.raises(NodeError, match="TLS certificate refused"):
                await untrusted.call("getblocktemplate", {})
        finally:
            proxy.close()


async def _pipe_to(port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)

    async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
        dst.close()

    try:
        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer), return_exceptions=True)
    finally:
        writer.close()
        up_writer.close()
