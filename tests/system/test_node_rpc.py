"""The node RPC client against a scripted HTTP server on 127.0.0.1: every error is one clear line."""

import asyncio
import base64
import hashlib
import json
import logging

import pytest

from miner.core.dispatch import Dispatcher
from miner.core.hashing import sha256d
from miner.core.shares import Verdict, check_nonce
from miner.core.targets import hash_to_int
from miner.core.work import Nonce
from miner.sources.node.address import decode_address
from miner.sources.node.gbt import GbtSource
from miner.sources.node.rpc import NodeAuthError, NodeUnreachable, RpcClient, RpcError, parse_rpc_url
from tests.helpers.bcoin_node import free_port


class ScriptedNode:
    """Answers each POST with the next scripted reply: (status, body bytes, chunked?) or 'hang'."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests: list[tuple[dict, dict]] = []
        self.server: asyncio.base_events.Server | None = None

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader, writer):
        headers = {}
        await reader.readline()
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = json.loads(await reader.readexactly(int(headers["content-length"])))
        self.requests.append((headers, body))
        reply = self.replies.pop(0) if self.replies else (200, {"result": None, "error": None, "id": body["id"]})
        if reply == "hang":
            await asyncio.sleep(30)
            return
        status, payload, chunked = (*reply, False) if len(reply) == 2 else reply
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        if chunked:
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(data[i : i + 7]), data[i : i + 7]) for i in range(0, len(data), 7))
            writer.write((head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunks + b"0\r\n\r\n")
        else:
            writer.write((head + f"Content-Length: {len(data)}\r\n\r\n").encode() + data)
        await writer.drain()
        writer.close()


def ok(result):
    return 200, {"result": result, "error": None, "id": 1}


async def test_result_basic_auth_and_chunked_bodies():
    async with ScriptedNode([ok(7), (200, {"result": {"chain": "regtest"}, "error": None, "id": 2}, True)]) as node:
        client = RpcClient(node.url, "alice", "s3cret")
        assert await client.call("getblockcount") == 7
        assert await client.call("getblockchaininfo") == {"chain": "regtest"}
        headers, body = node.requests[0]
        assert headers["authorization"] == "Basic " + base64.b64encode(b"alice:s3cret").decode()
        assert body["method"] == "getblockcount" and body["params"] == []


async def test_cookie_file_is_read_at_every_call(tmp_path):
    cookie = tmp_path / ".cookie"
    cookie.write_text("__cookie__:first\n")
    async with ScriptedNode([ok(1), ok(2)]) as node:
        client = RpcClient(node.url, cookie=cookie)
        await client.call("getblockcount")
        cookie.write_text("__cookie__:second")  # the node restarted and wrote a new one
        await client.call("getblockcount")
        sent = [base64.b64decode(h["authorization"].split()[1]).decode() for h, _ in node.requests]
        assert sent == ["__cookie__:first", "__cookie__:second"]
    with pytest.raises(NodeAuthError, match="cannot read it"):
        await RpcClient("http://127.0.0.1:1", cookie=tmp_path / "missing").call("getblockcount")


async def test_errors_are_one_line_each():
    replies = [
        (401, b""),
        (500, {"result": None, "id": 1,
               "error": {"code": -8, "message": "getblocktemplate must be called with the segwit rule set"}}),
        (200, b"<html>not json</html>"),
        "hang",
    ]
    async with ScriptedNode(replies) as node:
        client = RpcClient(node.url, "u", "wrong", timeout=0.5)
        with pytest.raises(NodeAuthError, match=r"HTTP 401, wrong RPC credentials \(check --rpc-user/--rpc-pass\)"):
            await client.call("getblockcount")
        with pytest.raises(RpcError, match="getblocktemplate: node error -8: getblocktemplate must be called") as info:
            await client.call("getblocktemplate")
        assert info.value.code == -8
        with pytest.raises(Exception, match="not a JSON-RPC answer"):
            await client.call("getblockcount")
        with pytest.raises(NodeUnreachable, match=r"no answer to getblockcount within 0.5s"):
            await client.call("getblockcount")
    with pytest.raises(NodeUnreachable, match=r"connection refused \(is the node running\?\)"):
        await RpcClient(f"http://127.0.0.1:{free_port()}").call("getblockcount")


def test_rpc_urls():
    assert str(parse_rpc_url("127.0.0.1:18443")) == "http://127.0.0.1:18443"
    assert parse_rpc_url("http://node.lan:8332/wallet/x").path == "/wallet/x"
    e = parse_rpc_url("https://me:s%40cret@[::1]:18443/wallet/w")
    assert (e.scheme, e.host, e.port, e.path) == ("https", "::1", 18443, "/wallet/w")
    assert (e.user, e.password) == ("me", "s@cret")
    assert str(e) == "https://[::1]:18443/wallet/w" and "s@cret" not in repr(e)
    for bad, why in [("ftp://x:1", "only http"), ("http://x", "needs a host and a port"), ("http://x:y", "bad port")]:
        with pytest.raises(ValueError, match=why):
            parse_rpc_url(bad)


async def test_a_warming_up_node_is_waited_for_with_one_message(caplog):
    caplog.set_level(logging.INFO)
    warming = (500, {"result": None, "error": {"code": -28, "message": "Loading block index..."}, "id": 1})
    async with ScriptedNode([warming, warming, warming, ok({"chain": "regtest"})]) as node:
        source = GbtSource(RpcClient(node.url), decode_address("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"),
                           retry_base=0.01)
        assert await asyncio.wait_for(source.connect(), 5) == "regtest"
    starting = [r for r in caplog.records if "is starting up (Loading block index...)" in r.getMessage()]
    assert len(starting) == 1 and starting[0].levelno == logging.WARNING
    assert "answers again" in caplog.text


# ------------------------------------------------------------------------------------ GbtSource policy
class FakeNode:
    """A node by method: a template without longpollid (so the source short-polls) that the test
    changes underneath it."""

    def __init__(self):
        self.tip = "11" * 32
        self.height = 5
        self.transactions: list[dict] = []
        self.calls: list[str] = []
        self.server = None
        self.submit_failures = 0  # submitblock calls to drop without an answer
        self.submitted: list[str] = []

    def template(self) -> dict:
        return {"version": 0x20000000, "previousblockhash": self.tip, "bits": "207fffff", "curtime": 1_700_000_000,
                "height": self.height, "coinbasevalue": 5_000_000_000, "transactions": self.transactions,
                "rules": ["csv", "!segwit"]}

    async def start(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader, writer):
        headers = {}
        await reader.readline()
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        request = json.loads(await reader.readexactly(int(headers["content-length"])))
        self.calls.append(request["method"])
        if request["method"] == "submitblock":
            self.submitted.append(request["params"][0])
            if self.submit_failures:
                self.submit_failures -= 1
                writer.close()  # the node went away mid-call
                return
            self.tip, self.height = "44" * 32, self.height + 1
        result = {"getblockchaininfo": {"chain": "regtest"}, "getbestblockhash": self.tip,
                  "getblocktemplate": self.template()}.get(request["method"])
        data = json.dumps({"result": result, "error": None, "id": request["id"]}).encode()
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
        await writer.drain()
        writer.close()


async def test_short_poll_new_block_is_a_clean_job_and_new_transactions_are_not():
    node = FakeNode()
    url = await node.start()
    dispatcher = Dispatcher()
    jobs = []
    dispatcher.add_listener(lambda job, restart: jobs.append((job, restart)))
    source = GbtSource(RpcClient(url), decode_address("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"),
                       refresh_interval=0.3, poll_interval=0.05)
    source.bind(dispatcher.set_job, lambda *result: None)
    await source.connect()
    await source.start()
    try:
        await _until(lambda: len(jobs) == 1)
        first, restart = jobs[0]
        assert restart and first.height == 5 and first.merkle_branch == ()
        old = dispatcher.next_work()
        # A transaction arrives: the periodic re-fetch brings a job that extends the old one.
        stripped = bytes.fromhex("02000000" "01" + "22" * 32 + "00000000" "00" "ffffffff" "01" + "e803000000000000"
                                 "0151" "00000000")
        txid = hashlib.sha256(hashlib.sha256(stripped).digest()).digest()[::-1].hex()
        node.transactions = [{"data": stripped.hex(), "txid": txid, "hash": txid}]
        await _until(lambda: len(jobs) == 2)
        second, restart = jobs[1]
        assert not restart and second.prevhash == first.prevhash
        assert second.merkle_branch == (bytes.fromhex(txid)[::-1],)
        # A new block on the node: the 50 ms poll of the best block notices, and the job is clean.
        node.tip, node.height, node.transactions = "33" * 32, 6, []
        await _until(lambda: len(jobs) == 3)
        third, restart = jobs[2]
        assert restart and third.height == 6 and third.prevhash == bytes.fromhex("33" * 32)[::-1]
        assert "getbestblockhash" in node.calls
        # Only the first block candidate per live job goes to the node; none for a replaced parent.
        current = dispatcher.next_work()
        blocks = [n for n in range(200) if hash_to_int(sha256d(current.header_for(n))) <= current.job.network_target]
        misses = [n for n in range(200) if n not in blocks]
        old_block = next(n for n in range(200) if hash_to_int(sha256d(old.header_for(n))) <= old.job.network_target)

        def checked(work, n):  # as the share path hands it over, for a device reporting every hash
            return check_nonce(work, Nonce(work.work_id, n), device_target=(1 << 256) - 1)

        await source.submit(checked(old, old_block))
        assert node.submitted == [] and source.stats.stale == 1
        miss = checked(current, misses[0])
        assert miss.verdict is Verdict.WORK
        await source.submit(miss)  # not a block: it claims nothing
        first, second = checked(current, blocks[0]), checked(current, blocks[1])
        assert first.verdict is second.verdict is Verdict.BLOCK
        await asyncio.gather(source.submit(first), source.submit(second))  # the second while the first is sent
        assert len(node.submitted) == 1 and bytes.fromhex(node.submitted[0])[:80] == first.header
        assert source.surplus == 1 and source.stats.accepted == 1
        await source.submit(checked(current, misses[1]))
        assert len(node.submitted) == 1
    finally:
        await source.stop()
        node.server.close()


async def _until(condition, timeout: float = 5.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_block_found_while_the_node_is_away_is_sent_when_it_answers(caplog):
    node = FakeNode()
    node.submit_failures = 1
    url = await node.start()
    dispatcher = Dispatcher()
    source = GbtSource(RpcClient(url), decode_address("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"),
                       refresh_interval=0.3, poll_interval=0.05, retry_base=0.05)
    source.bind(dispatcher.set_job, lambda *result: None)
    await source.connect()
    await source.first_template()
    work = dispatcher.next_work()
    nonce = next(n for n in range(1000) if hash_to_int(sha256d(work.header_for(n))) <= work.target)
    share = check_nonce(work, Nonce(work.work_id, nonce), work.target)
    assert share.verdict is Verdict.BLOCK
    heard = []
    source.result_listeners.append(lambda *result: heard.append(result))
    try:
        await source.submit(share)
        assert source.stats.found == 1 and source.stats.accepted == 0
        assert "holding it for when the node is back" in caplog.text
        await source.start()
        await _until(lambda: source.stats.accepted == 1)
        assert len(node.submitted) == 2 and node.submitted[0] == node.submitted[1]
        assert heard == [(share, True, None)]  # the device that found it gets the credit, once
        assert bytes.fromhex(node.submitted[0])[:80] == share.header
        await _until(lambda: dispatcher.job.height == 6)
        assert source.stats.rejected_total == 0
    finally:
        await source.stop()
        node.server.close()
