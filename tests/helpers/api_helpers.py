"""Shared wiring for the API tests: a real miner (CPU device, test pools) with its front ends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from miner.core.dispatch import Dispatcher
from miner.core.engine import Miner
from miner.devices.cpu import CpuDevice
from miner.devices.work_source import DispatcherWorkSource
from miner.frontends.cgminer import ApiServer, parse_allow
from miner.frontends.view import MinerView
from miner.sources.stratum.failover import PoolManager
from miner.sources.stratum.url import PoolConfig, Timeouts
from tests.helpers.stratum_pool import StratumTestPool
from tests.helpers.sv2_pool import Sv2TestPool

FAST = Timeouts(connect=2, reply=2, silence=30, work=60, backoff_base=0.2, backoff_cap=1.0)


@contextlib.asynccontextmanager
async def running_miner(pools: list[StratumTestPool | Sv2TestPool], allow: str = "W:127.0.0.1", store=None):
    """A mining miner on `pools` with the cgminer API on a free port: yields (miner, view, server)."""
    dispatcher = Dispatcher()
    configs = [PoolConfig(p.url() if isinstance(p, Sv2TestPool) else f"stratum+tcp://127.0.0.1:{p.port}", "worker.1",
                          "secret-pw") for p in pools]
    manager = PoolManager(configs, FAST)
    miner: Miner
    device = CpuDevice(DispatcherWorkSource(dispatcher), lambda n: miner.on_nonce(n), threads=1, chunk=1 << 16,
                       nonces_per_work=1 << 22)
    miner = Miner(manager, [device], dispatcher, status_interval=0)
    view = MinerView(miner, store=store)
    server = ApiServer(view, "127.0.0.1", 0, parse_allow(allow))
    await server.start()
    task = asyncio.create_task(miner.run())
    try:
        yield miner, view, server
    finally:
        await server.stop()
        miner.request_stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 20)


async def api_raw(port: int, request: bytes | str, bind: str | None = None) -> bytes:
    """Send one request, read to EOF; the reply with its NUL terminator."""
    data = request.encode() if isinstance(request, str) else request
    reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                   local_addr=(bind, 0) if bind else None)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def api(port: int, command: str, parameter: str | None = None, bind: str | None = None) -> dict:
    """A JSON request; the parsed reply (the NUL must be the last byte and the only one)."""
    request: dict = {"command": command}
    if parameter is not None:
        request["parameter"] = parameter
    raw = await api_raw(port, json.dumps(request), bind)
    assert raw.endswith(b"\x00") and raw.count(b"\x00") == 1, raw[-50:]
    return json.loads(raw[:-1])


async def api_text(port: int, request: str, bind: str | None = None) -> str:
    raw = await api_raw(port, request, bind)
    assert raw.endswith(b"\x00") and raw.count(b"\x00") == 1, raw[-50:]
    return raw[:-1].decode()


def parse_text(reply: str) -> list[dict[str, str]]:
    """cgminer's text form split into sections of key=value (escapes honoured)."""
    sections, fields, key, current, escaped = [], {}, None, [], False
    for ch in reply:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "=" and key is None:
            key, current = "".join(current), []
        elif ch in ",|":
            if key is None:
                fields["_section"] = "".join(current)
            else:
                fields[key] = "".join(current)
            key, current = None, []
            if ch == "|":
                sections.append(fields)
                fields = {}
        else:
            current.append(ch)
    return sections


async def until(predicate, timeout: float = 15.0, what: str = "condition") -> None:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def settled(miner, pool: StratumTestPool, quiet: float = 0.3) -> None:
    """Wait until every share the miner sent has its answer counted and nothing moved for `quiet` s."""
    manager = miner.source

    def snapshot():
        return len(pool.submits), manager.stats.accepted + manager.stats.rejected_total, len(miner.nonces)

    while True:
        await until(lambda: snapshot()[0] == snapshot()[1] and snapshot()[2] == 0, what="answers counted")
        before = snapshot()
        await asyncio.sleep(quiet)
        if snapshot() == before:
            return
