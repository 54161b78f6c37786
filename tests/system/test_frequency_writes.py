"""REST frequency writes that are not a frequency (issue 14, fault 11): NaN, infinities, 1e308 and
true are a 409 with one clear line for every device kind, over real HTTP; a real one is taken."""

from __future__ import annotations

import aiohttp
import pytest

from miner.core.dispatch import Dispatcher
from miner.core.engine import Miner
from miner.devices.base import DeviceSpec
from miner.devices.cpu import CpuDevice
from miner.devices.manager import load_drivers
from miner.devices.work_source import DispatcherWorkSource
from miner.frontends.http import HttpServer
from miner.frontends.view import MinerView
from miner.sources.sandbox import SandboxSource

# one device of every kind, created as --device makes them and never started (no port is opened)
SPECS = ["icarus:/dev/null", "bm1366:/dev/null", "bm1397:/dev/null", "avalon:/dev/null,model=avalon7",
         "avalon:/dev/null,model=avalon4"]
BAD = ["NaN", "Infinity", "-Infinity", "1e308", "-1e308", "true", "false", "0", "-5", '"nan"', '"inf"', "null",
       "[500]", '{"a": 1}']



@pytest.fixture
async def server():
    dispatcher = Dispatcher()
    work = DispatcherWorkSource(dispatcher)
    drivers = load_drivers()
    devices = []
    for i, text in enumerate(SPECS):
        spec = DeviceSpec.parse(text)
        devices.append(drivers[spec.driver].create(spec, work, lambda n: None, i))
    devices.append(CpuDevice(work, lambda n: None, threads=1))
    miner = Miner(SandboxSource(1.0), devices, dispatcher, 0)
    http = HttpServer(MinerView(miner), "127.0.0.1", 0, token="t")
    port = await http.start()
    try:
        yield f"http://127.0.0.1:{port}", devices
    finally:
        await http.stop()


async def test_every_device_kind_answers_409_to_a_value_that_is_not_a_frequency(server):
    base, devices = server
    auth = {"Authorization": "Bearer t", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        for index, device in enumerate(devices):
            for bad in BAD:
                body = '{"mhz": ' + bad + '}'
                async with session.post(f"{base}/api/devices/{index}/frequency", data=body, headers=auth) as r:
                    answer = await r.json()
                    where = f"{device.name} {body}"
                    assert r.status in (400, 409), where  # never 500
                    assert "\n" not in answer["error"], where
                    if bad not in ("null", "[500]", '{"a": 1}'):
                        assert r.status == 409, where
                        assert "set failed" in answer["error"], where
            # the miner still answers, and a plain number is taken by the drivers that have a setting
            async with session.post(f"{base}/api/devices/{index}/frequency", data='{"mhz": 400}', headers=auth) as r:
                assert r.status in (200, 409)
                if r.status == 200:
                    assert (await r.json())["ok"] is True
            async with session.get(f"{base}/api/devices") as r:
                assert r.status == 200 and len(await r.json()) == len(devices)
