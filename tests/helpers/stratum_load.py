"""Many downstream Stratum connections from one process, for `miner serve`'s load test and benchmark.

Each connection is a real 127.0.0.1 socket that subscribes and authorizes like a miner and records
when every notify arrived (time.monotonic), its extranonce1 and its difficulty. It can also submit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field


@dataclass
class Downstream:
    index: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    extranonce1: str = ""
    extranonce2_size: int = 0
    difficulty: float | None = None
    jobs: list[list] = field(default_factory=list)  # notify params, in order
    arrived: dict[str, float] = field(default_factory=dict)  # job id -> when its notify arrived
    replies: dict[int, dict] = field(default_factory=dict)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    notified: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None
    next_id: int = 10

    def send(self, method: str, params: list) -> int:
        self.next_id += 1
        self.writer.write(json.dumps({"id": self.next_id, "method": method, "params": params}).encode() + b"\n")
        return self.next_id

    async def read(self) -> None:
        while line := await self.reader.readline():
            message = json.loads(line)
            method = message.get("method")
            if method == "mining.notify":
                self.jobs.append(message["params"])
                self.arrived[message["params"][0]] = time.monotonic()
                self.notified.set()
            elif method == "mining.set_difficulty":
                self.difficulty = message["params"][0]
            elif message.get("id") == 1 and isinstance(message.get("result"), list):
                self.extranonce1, self.extranonce2_size = message["result"][1], message["result"][2]
                self.subscribed.set()
            elif isinstance(message.get("id"), int):
                self.replies[message["id"]] = message


async def open_downstreams(port: int, count: int, worker: str = "load", host: str = "127.0.0.1",
                           batch: int = 100) -> list[Downstream]:
    """`count` connections, each subscribed and authorized (opened `batch` at a time)."""
    out: list[Downstream] = []

    async def one(i: int) -> Downstream:
        reader, writer = await asyncio.open_connection(host, port)
        d = Downstream(i, reader, writer)
        writer.write(json.dumps({"id": 1, "method": "mining.subscribe", "params": [f"load/{i}"]}).encode() + b"\n"
                     + json.dumps({"id": 2, "method": "mining.authorize", "params": [f"{worker}.{i}", "x"]}).encode()
                     + b"\n")
        d.task = asyncio.create_task(d.read())
        return d

    for start in range(0, count, batch):
        out += await asyncio.gather(*(one(i) for i in range(start, min(count, start + batch))))
    return out


async def close_downstreams(downstreams: list[Downstream]) -> None:
    for d in downstreams:
        d.writer.close()
        if d.task is not None:
            d.task.cancel()
    for d in downstreams:
        with contextlib.suppress(Exception):
            await d.writer.wait_closed()
        if d.task is not None:
            with contextlib.suppress(BaseException):
                await d.task
