"""A node that answers getblocktemplate with what no real node would send, one fault per call.

No real node can be made to send a negative height or a broken chunk size, so this fake exists;
everywhere else it copies bcoin 1.0.2's regtest answers (tests/helpers/bcoin_node.py, docs/gbt.md
§2.1, §2.5, §2.7): `getblockchaininfo` says chain "regtest", a template has bcoin's field names and
target 207fffff, `submitblock` answers null for a block it takes (and moves its tip) or a reason
string ("bad-prevblk", "high-hash") as bcoin's `submitblock` does, and `getbestblockhash` the tip.

FAULTS maps a name to a raw HTTP answer (bytes) or to a template edit; `script` is the list of
fault names (or "good") the next getblocktemplate calls get, in order; when it runs out every
answer is good.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Callable

REGTEST_BITS = "207fffff"
REGTEST_TARGET = 0x7FFFFF << (8 * (0x20 - 3))


def _http(body: bytes, status: int = 200, extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{extra}\r\n").encode() + body


def _dsha(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


# Faults on the HTTP layer: the whole answer, raw.
RAW_FAULTS: dict[str, bytes] = {
    "chunked size not hex": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "chunked size too big": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n{}",
    "content-length -5": b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n{}",
    "200 KB header line": b"HTTP/1.1 200 OK\r\nX-Junk: " + b"a" * 200_000 + b"\r\nContent-Length: 2\r\n\r\n{}",
    "not http": b"SSH-2.0-OpenSSH_9.2\r\n",
    "closed mid-body": b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"result\":",
    "deep json": _http(b"[" * 100_000 + b"]" * 100_000),
    "json not an object": _http(b"[1, 2, 3]"),
    "error code not a number": _http(b'{"result": null, "error": {"code": "abc", "message": "x"}, "id": 1}'),
}

# Faults in the template itself: an edit of a good one.
TEMPLATE_FAULTS: dict[str, Callable[[dict], None]] = {
    "bits ffffffff": lambda t: t.update(bits="ffffffff"),
    "bits 00800000": lambda t: t.update(bits="00800000"),
    "bits zero target": lambda t: t.update(bits="03000000"),
    "bits overflow": lambda t: t.update(bits="23010000"),
    "bits a number": lambda t: t.update(bits=0x207FFFFF),
    "height -1": lambda t: t.update(height=-1),
    "height 2^40": lambda t: t.update(height=1 << 40),
    "height a string": lambda t: t.update(height="1"),
    "coinbasevalue 2^63": lambda t: t.update(coinbasevalue=1 << 63),
    "coinbasevalue -1": lambda t: t.update(coinbasevalue=-1),
    "coinbasevalue 1.5": lambda t: t.update(coinbasevalue=1.5),
    "curtime -1": lambda t: t.update(curtime=-1),
    "curtime 2^33": lambda t: t.update(curtime=1 << 33),
    "curtime true": lambda t: t.update(curtime=True),
    "version 2^40": lambda t: t.update(version=1 << 40),
    "transactions null": lambda t: t.update(transactions=None),
    "transactions abc": lambda t: t.update(transactions="abc"),
    "transactions [1]": lambda t: t.update(transactions=[1]),
    "transaction txid lies": lambda t: t.update(transactions=[{"data": "00" * 60, "txid": "11" * 32,
                                                               "hash": "11" * 32}]),
    "previousblockhash short": lambda t: t.update(previousblockhash="ab" * 31),
    "previousblockhash a number": lambda t: t.update(previousblockhash=5),
    "rules not a list": lambda t: t.update(rules="segwit"),
    "template a string": lambda t: t.clear(),  # answered as the string "" below
}

FAULTS = [*RAW_FAULTS, *TEMPLATE_FAULTS]


class HostileNode:
    def __init__(self, script: list[str] | None = None):
        self.script = list(script or [])
        self.served: list[str] = []  # what each getblocktemplate got
        self.accepted: list[str] = []  # display hashes of the blocks taken
        self.rejected: list[str] = []
        self.after_first_block: list[str] = []
        self.bad_requests = 0  # requests whose body was not a JSON-RPC call  # faults served once the first block is in
        self.tip = bytes(range(32))  # header order
        self.height = 0
        self.curtime = 1_700_000_000
        self.server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> HostileNode:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=1 << 20)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def template(self) -> dict:
        """A good template in bcoin's shape (regtest, no transactions, no longpoll: the miner polls
        getbestblockhash)."""
        self.curtime += 1
        return {
            "capabilities": ["proposal"], "mutable": ["time", "transactions", "prevblock"], "version": 0x20000000,
            "rules": ["csv", "!segwit"], "vbavailable": {}, "vbrequired": 0, "height": self.height + 1,
            "previousblockhash": self.tip[::-1].hex(), "target": f"{REGTEST_TARGET:064x}", "bits": REGTEST_BITS,
            "noncerange": "00000000ffffffff", "curtime": self.curtime, "mintime": self.curtime - 600,
            "maxtime": self.curtime + 7200, "expires": self.curtime + 7200, "sigoplimit": 80000,
            "sizelimit": 4000000, "weightlimit": 4000000, "submitold": False, "coinbaseaux": {"flags": ""},
            "coinbasevalue": 5_000_000_000,
            # BIP141 for a block with only the coinbase: the merkle root of one zero wtxid, then the reserved value
            "default_witness_commitment": "6a24aa21a9ed" + _dsha(bytes(64)).hex(),
            "transactions": [],
        }

    def _answer(self, method: str, params: list, request_id: object) -> bytes:
        def ok(result: object) -> bytes:
            return _http(json.dumps({"result": result, "error": None, "id": request_id}).encode())

        if method == "getblockchaininfo":
            return ok({"chain": "regtest", "blocks": self.height, "bestblockhash": self.tip[::-1].hex()})
        if method == "getbestblockhash":
            return ok(self.tip[::-1].hex())
        if method == "submitblock":
            return ok(self._submit(bytes.fromhex(params[0])))
        if method != "getblocktemplate":
            return _http(json.dumps({"result": None, "error": {"code": -32601, "message": "Method not found"},
                                     "id": request_id}).encode(), 500)
        fault = self.script.pop(0) if self.script else "good"
        self.served.append(fault)
        if fault in RAW_FAULTS:
            return RAW_FAULTS[fault]
        template = self.template()
        if fault == "template a string":
            return ok("")
        if fault != "good":
            TEMPLATE_FAULTS[fault](template)
        return ok(template)

    def _submit(self, block: bytes) -> str | None:
        header = block[:80]
        digest = _dsha(header)
        if header[4:36] != self.tip:
            self.rejected.append("bad-prevblk")
            return "bad-prevblk"
        if int.from_bytes(digest, "little") > REGTEST_TARGET:
            self.rejected.append("high-hash")
            return "high-hash"
        self.tip = digest
        self.height += 1
        self.accepted.append(digest[::-1].hex())
        if len(self.accepted) == 1:
            self.script[:0] = self.after_first_block
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            try:
                request = json.loads(await reader.readexactly(length))
                answer = self._answer(request["method"], request.get("params") or [], request.get("id"))
            except (ValueError, KeyError, TypeError):  # as bcoin's HTTP server: a body it cannot read is a 400
                self.bad_requests += 1
                answer = _http(b'{"error":{"message":"Bad request"}}', 400)
            writer.write(answer)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
