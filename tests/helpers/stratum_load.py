"""Many downstream Stratum connections from one process, for `miner serve`'s load test and benchmark.

Each connection is a real 127.0.0.1 socket that subscribes and authorizes like a miner and records
when every notify arrived (time.monotonic() in data_received, before any parsing, so that 500
connections in one process measure the server rather than this client), its extranonce1 and its
difficulty. It can also submit.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field


@dataclass(eq=False)
class Downstream(asyncio.Protocol):
    index: int
    worker: str = "load"
    transport: asyncio.Transport | None = None
    extranonce1: str = ""
    extranonce2_size: int = 0
    difficulty: float | None = None
    jobs: list[list] = field(default_factory=list)  # notify params, in order
    arrived: dict[str, float] = field(default_factory=dict)  # job id -> when its notify arrived
    replies: dict[int, dict] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)  # every method the server called, in order
    closed: bool = False
    next_id: int = 10
    _buffer: bytes = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(json.dumps({"id": 1, "method": "mining.subscribe", "params": [f"load/{self.index}"]}).encode()
                        + b"\n" + json.dumps({"id": 2, "method": "mining.authorize",
                                              "params": [f"{self.worker}.{self.index}", "x"]}).encode() + b"\n")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def send(self, method: str, params: list) -> int:
        assert self.transport is not None
        self.next_id += 1
        self.transport.write(json.dumps({"id": self.next_id, "method": method, "params": params}).encode() + b"\n")
        return self.next_id

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            message = json.loads(line)
            method = message.get("method")
            if method:
                self.calls.append(method)
            if method == "mining.notify":
                self.jobs.append(message["params"])
                self.arrived[message["params"][0]] = now
            elif method == "mining.set_difficulty":
                self.difficulty = message["params"][0]
            elif message.get("id") == 1 and isinstance(message.get("result"), list):
                self.extranonce1, self.extranonce2_size = message["result"][1], message["result"][2]
            elif isinstance(message.get("id"), int):
                self.replies[message["id"]] = message


async def open_downstreams(port: int, count: int, worker: str = "load", host: str = "127.0.0.1",
                           batch: int = 100) -> list[Downstream]:
    """`count` connections, each subscribing and authorizing (opened `batch` at a time)."""
    loop = asyncio.get_running_loop()
    out: list[Downstream] = []

    async def one(i: int) -> Downstream:
        _, protocol = await loop.create_connection(lambda: Downstream(i, worker), host, port)
        return protocol

    for start in range(0, count, batch):
        out += await asyncio.gather(*(one(i) for i in range(start, min(count, start + batch))))
    return out


async def close_downstreams(downstreams: list[Downstream]) -> None:
    for d in downstreams:
        if d.transport is not None:
            d.transport.close()
    await asyncio.sleep(0)
