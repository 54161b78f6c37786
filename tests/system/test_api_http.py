"""REST and /metrics over real HTTP on 127.0.0.1, checked against the cgminer API's numbers."""

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from miner.frontends.http import HttpServer, parse_listen
from tests.helpers.api_helpers import api, running_miner, settled, until
from tests.helpers.stratum_pool import StratumTestPool


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_and_rest_match_the_cgminer_summary():
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    pool.reject_next = [[23, "Low difficulty share", None]]
    async with running_miner([pool]) as (miner, view, server):
        http = HttpServer(view, "127.0.0.1", 0, token="s3cret")
        port = await http.start()
        base = f"http://127.0.0.1:{port}"
        await pool.wait_submits(3)
        await api(server.port, "ascdisable", "0")  # freeze the counters
        await until(lambda: not miner.devices[0]._workers, what="cpu stopped")
        await settled(miner, pool)
        summary = (await api(server.port, "summary"))["SUMMARY"][0]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/metrics") as response:
                assert response.status == 200 and response.content_type == "text/plain"
                metrics = samples(await response.text())
            async with session.get(f"{base}/api/summary") as response:
                rest = await response.json()
            async with session.get(f"{base}/api/pools") as response:
                rest_pools = await response.json()
            async with session.get(f"{base}/api/devices") as response:
                rest_devices = await response.json()
        assert metrics[("miner_shares_total", (("result", "accepted"),))] == summary["Accepted"] >= 2
        assert metrics[("miner_shares_total", (("result", "rejected"),))] == summary["Rejected"] == 1
        assert metrics[("miner_shares_total", (("result", "stale"),))] == summary["Stale"]
        assert metrics[("miner_rejected_shares_total", (("pool", "pool0"), ("reason", "Low difficulty share")))] == 1
        assert metrics[("miner_hardware_errors_all_total", ())] == summary["Hardware Errors"]
        best = metrics[("miner_best_share_difficulty", (("scope", "session"),))]
        assert best == summary["Best Share All Time"] > 0 and int(best) == summary["Best Share"]
        hashes = metrics[("miner_hashes_total", (("device", "cpu0"),))]
        assert hashes / 1e6 == pytest.approx(summary["Total MH"], abs=1e-4) and hashes > 0
        avg = metrics[("miner_total_hashrate_hertz", (("window", "avg"),))]
        assert avg / 1e6 == pytest.approx(summary["MHS av"], rel=0.05)  # both are total / elapsed
        url = f"stratum+tcp://127.0.0.1:{pool.port}"
        assert metrics[("miner_pool_up", (("pool", "pool0"), ("url", url)))] == 1
        assert metrics[("miner_pool_difficulty", (("pool", "pool0"), ("url", url)))] == 0.002
        assert metrics[("miner_device_up", (("device", "cpu0"),))] == 0
        # every state keeps its series: 1 for the state the device is in, 0 for each of the others
        states = {dict(labels)["state"]: v for (name, labels), v in metrics.items() if name == "miner_device_state"}
        assert states == {"Initialising": 0, "Alive": 0, "Sick": 0, "Dead": 0, "NoDevice": 0, "Disabled": 1}
        pool_states = {dict(labels)["state"]: v for (name, labels), v in metrics.items() if name == "miner_pool_state"}
        assert pool_states == {"Alive": 1, "Dead": 0, "Connecting": 0, "Disabled": 0}
        assert not any(name == "miner_device_temperature_celsius" for name, _ in metrics)  # the CPU has none
        assert rest["accepted"] == summary["Accepted"] and rest["rejected"] == {"Low difficulty share": 1}
        assert rest_pools[0]["url"] == url and rest_pools[0]["accepted"] == summary["Accepted"]
        assert rest_devices[0]["name"] == "cpu0" and rest_devices[0]["enabled"] is False
        assert "secret-pw" not in str(rest_pools)
        # the pool's best counts accepted shares only; the summary's every share found (cgminer's meaning)
        assert 0 < rest_pools[0]["best_all_time"] == rest_pools[0]["best_difficulty"] <= summary["Best Share All Time"]
        await http.stop()
    await pool.stop()


async def test_writes_need_the_token():
    first, second = StratumTestPool(difficulty=0.002), StratumTestPool(difficulty=0.002)
    await first.start()
    await second.start()
    async with running_miner([first, second]) as (miner, view, server):
        http = HttpServer(view, "127.0.0.1", 0, token="s3cret")
        base = f"http://127.0.0.1:{await http.start()}"
        closed = HttpServer(view, "127.0.0.1", 0)  # no token: no writes at all
        closed_base = f"http://127.0.0.1:{await closed.start()}"
        await until(lambda: all(p.alive for p in miner.source.pools), what="both pools alive")
        good = {"Authorization": "Bearer s3cret"}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/api/pools/1/switch") as response:
                assert response.status == 401
            async with session.post(f"{base}/api/pools/1/switch", headers={"Authorization": "Bearer nope"}) as r:
                assert r.status == 401
            async with session.post(f"{closed_base}/api/pools/1/switch", headers=good) as response:
                assert response.status == 403 and "--http-token" in (await response.json())["error"]
            assert miner.dispatcher.job.source == "pool0"
            async with session.post(f"{base}/api/pools/1/switch", headers=good) as response:
                assert response.status == 200
            assert miner.dispatcher.job.source == "pool1"
            async with session.post(f"{base}/api/devices/0/frequency", json={"mhz": 400}, headers=good) as r:
                assert r.status == 409 and "no frequency setting" in (await r.json())["error"]
            async with session.post(f"{base}/api/devices/0/frequency", data="x", headers=good) as r:
                assert r.status == 400
            async with session.post(f"{base}/api/pools/9/switch", headers=good) as response:
                assert response.status == 409
        await http.stop()
        await closed.stop()
    await first.stop()
    await second.stop()


def test_parse_listen():
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("9100") == ("127.0.0.1", 9100)
    assert parse_listen("[::1]:8080") == ("::1", 8080)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen("localhost:http")
