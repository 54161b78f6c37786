"""The payout check through the `miner` command (the composition root): a solo pool's verdict in the
cgminer API, REST and /metrics, and --payout-check alert sending `payout_failed` to a webhook within
2 s of a hijacked job while mining goes on (docs/payout.md §2)."""

import asyncio
import json
import os
import sys
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.api_helpers import api
from tests.helpers.mosquitto import free_port
from tests.helpers.stratum_pool import StratumTestPool
from tests.helpers.waiting import until
from tests.system.test_alert_sinks import Receiver
from tests.system.test_payout_enforce import EASY, HIJACKED, PAYS, USER

ROOT = Path(__file__).resolve().parents[2]


def payout_samples(text: str) -> dict[str, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("miner_pool_payout"):
                out[s.name] = s.value
    return out


async def test_alert_mode_reports_the_verdict_everywhere_and_alerts_on_a_hijack():
    pool = StratumTestPool(difficulty=EASY)
    pool.coinb1, pool.coinb2 = PAYS
    await pool.start()
    receiver = Receiver()
    await receiver.start()
    http_port, api_port = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "miner", "-o", f"stratum+tcp://127.0.0.1:{pool.port}", "-u", f"{USER}.rig1",
        "--no-tui", "-t", "1", "--time-limit", "60", "--payout-check", "alert", "--payout-min", "97.5",
        "--webhook", f"http://127.0.0.1:{receiver.port}/hook", "--http", f"127.0.0.1:{http_port}",
        "--api-listen", "--api-port", str(api_port), cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        async with aiohttp.ClientSession() as http:
            async def rest() -> list[dict]:
                async with http.get(f"http://127.0.0.1:{http_port}/api/pools") as r:
                    return await r.json()

            async def metrics() -> dict[str, float]:
                async with http.get(f"http://127.0.0.1:{http_port}/metrics") as r:
                    return payout_samples(await r.text())

            ready = {}

            async def poll() -> bool:
                try:
                    ready["rest"] = await rest()
                except aiohttp.ClientError:
                    return False
                return bool(ready["rest"] and ready["rest"][0]["payout"])

            for _ in range(300):
                if await poll():
                    break
                await asyncio.sleep(0.1)
            p = ready["rest"][0]
            assert p["payout_ok"] and p["payout_checked"] and p["payout_address"] == USER
            assert p["payout_percent"] == 98.0
            assert (await metrics()) == {"miner_pool_payout_percent": 98.0, "miner_pool_payout_ok": 1.0}
            reply = await api(api_port, "pools")
            assert reply["POOLS"][0]["Payout OK"] is True and reply["POOLS"][0]["Payout Percent"] == 98.0

            await pool.wait_submits(1, timeout=30, accepted=True)
            pool.coinb1, pool.coinb2 = HIJACKED
            hijacked = pool.notify(clean=True)
            await until(lambda: any(json.loads(b)["event"] == "payout_failed" for _, _, _, b in receiver.posts), 10,
                        "the payout_failed webhook")
            received, _, _, body = next(x for x in receiver.posts if json.loads(x[3])["event"] == "payout_failed")
            alert = json.loads(body)
            assert received - alert["time"] < 2.0
            assert alert["subject"] == "pool0" and "below the 97.5% floor" in alert["message"]
            assert (await metrics())["miner_pool_payout_ok"] == 0.0
            # alert is not enforce: the pool is still mined, its shares still sent
            await until(lambda: any(s.params[1] == hijacked for s in pool.submits), 30, "a share on the hijacked job")
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        await receiver.stop()
        await pool.stop()
    assert "payout check failed" in err.decode()
