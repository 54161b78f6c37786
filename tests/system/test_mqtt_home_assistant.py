"""MQTT with Home Assistant discovery against a real broker (Debian's mosquitto, started by the
test with its own config and a password): retained discovery that follows Home Assistant's schema,
state and event topics, the availability topic (online, the last will on a crash, offline on a clean
stop) and reconnecting after the broker restarts (docs/alerts.md §3)."""

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import aiomqtt
import pytest

from miner.frontends.mqtt import default_node
from tests.helpers.mosquitto import Mosquitto
from tests.helpers.waiting import until
from tests.unit.test_events import check_ha_payload

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not Mosquitto.available(), reason="mosquitto is not installed (apt-get install "
                                "mosquitto; README's install line has it)")


async def retained(broker: Mosquitto, settle: float = 1.0) -> dict[str, str]:
    """What a new subscriber (Home Assistant starting up) is given: the retained messages."""
    out: dict[str, str] = {}
    async with aiomqtt.Client("127.0.0.1", broker.port, username=broker.user, password=broker.password) as client:
        await client.subscribe("homeassistant/#", qos=1)
        await client.subscribe("miner/#", qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(settle):
                async for m in client.messages:
                    if m.retain:
                        out[str(m.topic)] = m.payload.decode()
    return out


async def follow(broker: Mosquitto, seen: list, connected: asyncio.Event) -> None:
    """A live subscriber that reconnects when the broker restarts."""
    while True:
        try:
            async with aiomqtt.Client("127.0.0.1", broker.port, username=broker.user,
                                      password=broker.password) as client:
                await client.subscribe("homeassistant/#", qos=1)
                await client.subscribe("miner/#", qos=1)
                connected.set()
                async for m in client.messages:
                    seen.append((str(m.topic), m.payload.decode(), time.monotonic()))
        except aiomqtt.MqttError:
            connected.clear()
            await asyncio.sleep(0.2)


async def start_miner(broker: Mosquitto, seconds: float) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "miner", "--time-limit", str(seconds), "--no-tui", "-t", "1", "--sandbox-diff", "0.002",
        "--mqtt", f"mqtt://127.0.0.1:{broker.port}", "--mqtt-user", broker.user, "--mqtt-pass", broker.password,
        cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)


async def test_discovery_states_events_availability_and_reconnect():
    broker = Mosquitto()
    try:
        broker.start()
    except RuntimeError:
        broker.close()
        raise
    node = default_node()
    base = f"miner/{node}"
    seen: list = []
    connected = asyncio.Event()
    follower = asyncio.create_task(follow(broker, seen, connected))
    proc = None
    try:
        await asyncio.wait_for(connected.wait(), 10)
        proc = await start_miner(broker, 60)

        def got(topic: str, after: float = 0.0) -> list[str]:
            return [payload for t, payload, at in seen if t == topic and at >= after]

        await until(lambda: got(f"{base}/status") and got(f"{base}/device/cpu0/state"), 30, "status and states")
        await until(lambda: any(json.loads(p)["event_type"] == "best_share" for p in got(f"{base}/event")), 30,
                    "a best_share event")
        assert got(f"{base}/status")[0] == "online"
        state = json.loads(got(f"{base}/device/cpu0/state")[-1])
        assert state["state"] == "Alive" and state["alive"] == "ON" and state["hashrate"] > 0

        configs = {t: json.loads(p) for t, p in (await retained(broker)).items() if t.endswith("/config")}
        for topic, payload in configs.items():
            check_ha_payload(topic, payload, node)
        assert f"homeassistant/sensor/{node}/hashrate/config" in configs
        assert f"homeassistant/binary_sensor/{node}/cpu0_alive/config" in configs
        assert f"homeassistant/event/{node}/alerts/config" in configs
        # every state topic a discovery payload names is one the miner publishes, and its template's key is there
        for payload in configs.values():
            if payload["state_topic"].endswith("/state"):
                body = json.loads(got(payload["state_topic"])[-1])
                key = payload["value_template"].split("value_json.")[1].split()[0]
                assert key in body, (payload["unique_id"], body)

        # the broker restarts (retained messages lost: persistence is off): the miner comes back by itself
        broker.stop()
        restarted = time.monotonic()
        broker.start()
        await until(lambda: got(f"{base}/status", restarted) == ["online"] or "online" in got(f"{base}/status",
                    restarted), 30, "online again after the broker restarted")
        again = await retained(broker)
        assert again[f"{base}/status"] == "online"
        assert f"homeassistant/sensor/{node}/hashrate/config" in again

        # a crash: the broker publishes the last will
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await until(lambda: "offline" in got(f"{base}/status", restarted), 10, "the last will")
        assert (await retained(broker, 0.5))[f"{base}/status"] == "offline"

        # a clean stop says offline itself
        proc = await start_miner(broker, 5)
        await until(lambda: (lambda s: bool(s) and s[-1] == "online")(got(f"{base}/status", time.monotonic() - 30)),
                    30, "online")
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()[-1500:]
        assert (await retained(broker, 0.5))[f"{base}/status"] == "offline"
        assert broker.password not in err.decode()
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        broker.close()
