"""MQTT with Home Assistant discovery (docs/alerts.md §3): the miner, each device and each pool
appear in Home Assistant by themselves, with their state kept current and every alert as an event.

Topics (NODE is `miner_<hostname>`, letters, digits, `_` and `-` only, as Home Assistant's
discovery topic pattern requires: homeassistant/components/mqtt/discovery.py TOPIC_MATCHER):
- `homeassistant/<component>/NODE/<object>/config`: retained discovery payloads;
- `miner/NODE/status`: `online`, retained; the broker publishes `offline` (the last will) if the
  miner vanishes, and the miner publishes it when it stops;
- `miner/NODE/state`, `miner/NODE/device/<name>/state`, `miner/NODE/pool/<n>/state`: JSON, every
  `STATE_INTERVAL` seconds and at once after an event;
- `miner/NODE/event`: each alert, as `{"event_type": kind, ...}` for an MQTT event entity.

The discovery payloads are built by pure functions (tested against Home Assistant's schema);
`MqttPublisher` is the I/O shell around aiomqtt, reconnecting with capped backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from miner import USER_AGENT, __version__
from miner.core import events as ev
from miner.frontends.alerts import RateLimiter, event_dict
from miner.frontends.view import DeviceSnapshot, MinerView, PoolSnapshot, Summary

log = logging.getLogger(__name__)

DISCOVERY_PREFIX = "homeassistant"
STATE_INTERVAL = 15.0
BACKOFF_BASE, BACKOFF_CAP = 1.0, 60.0
DEVICE_STATES = ["Initialising", "Alive", "Sick", "Dead", "NoDevice", "Disabled"]
POOL_STATES = ["Alive", "Dead", "Connecting", "Disabled"]
DEFAULT_PORT = 1883


def topic_part(text: str) -> str:
    """A name as one discovery-topic level: [a-zA-Z0-9_-]+ (HA's TOPIC_MATCHER)."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", text).strip("_") or "x"


@dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str, username: str | None = None, password: str | None = None) -> MqttTarget:
        """mqtt://HOST[:PORT]; ValueError (one line, no password) otherwise."""
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ValueError(f"--mqtt: {parts.scheme}://{parts.hostname or ''} is not mqtt://HOST:PORT "
                             "(mqtts is not supported yet)")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            raise ValueError("--mqtt: the port is not a number") from None
        return cls(parts.hostname, port, username or parts.username, password or parts.password)


class Topics:
    def __init__(self, node: str, prefix: str = DISCOVERY_PREFIX):
        self.node, self.prefix = node, prefix
        self.base = f"miner/{node}"
        self.status = f"{self.base}/status"
        self.state = f"{self.base}/state"
        self.event = f"{self.base}/event"

    def device(self, name: str) -> str:
        return f"{self.base}/device/{topic_part(name)}/state"

    def pool(self, index: int) -> str:
        return f"{self.base}/pool/{index}/state"

    def config(self, component: str, object_id: str) -> str:
        return f"{self.prefix}/{component}/{self.node}/{topic_part(object_id)}/config"


def default_node() -> str:
    return topic_part(f"miner_{socket.gethostname()}").lower()


def _entity(topics: Topics, object_id: str, name: str, state_topic: str, template: str, **extra) -> dict:
    payload = {
        "name": name, "unique_id": f"{topics.node}_{topic_part(object_id)}", "state_topic": state_topic,
        "value_template": template, "availability_topic": topics.status, "payload_available": "online",
        "payload_not_available": "offline",
        "device": {"identifiers": [topics.node], "name": f"Miner {socket.gethostname()}", "manufacturer": "pyminer",
                   "model": USER_AGENT, "sw_version": __version__},
        "origin": {"name": "pyminer", "sw_version": __version__},
    }
    payload.update({k: v for k, v in extra.items() if v is not None})
    return payload


def discovery_messages(topics: Topics, devices: Iterable[DeviceSnapshot],
                       pools: Iterable[PoolSnapshot]) -> list[tuple[str, dict]]:
    """Every (config topic, payload) for the miner, its devices and its pools."""
    t = topics
    out = [
        (t.config("sensor", "hashrate"), _entity(t, "hashrate", "Hash rate", t.state, "{{ value_json.hashrate }}",
                                                 unit_of_measurement="GH/s", state_class="measurement",
                                                 icon="mdi:pickaxe", suggested_display_precision=3)),
        (t.config("sensor", "accepted"), _entity(t, "accepted", "Accepted shares", t.state,
                                                 "{{ value_json.accepted }}", state_class="total_increasing")),
        (t.config("sensor", "rejected"), _entity(t, "rejected", "Rejected shares", t.state,
                                                 "{{ value_json.rejected }}", state_class="total_increasing")),
        (t.config("sensor", "best_session"), _entity(t, "best_session", "Best share (session)", t.state,
                                                     "{{ value_json.best_session }}", state_class="measurement")),
        (t.config("sensor", "best_all_time"), _entity(t, "best_all_time", "Best share (all time)", t.state,
                                                      "{{ value_json.best_all_time }}", state_class="measurement")),
        (t.config("sensor", "blocks"), _entity(t, "blocks", "Blocks found", t.state, "{{ value_json.blocks }}",
                                               state_class="total_increasing", icon="mdi:cube-outline")),
        (t.config("sensor", "active_pool"), _entity(t, "active_pool", "Active pool", t.state,
                                                    "{{ value_json.active_pool }}")),
        (t.config("event", "alerts"), _entity(t, "alerts", "Alerts", t.event, "{{ value_json | tojson }}",
                                              event_types=list(ev.KINDS))),
    ]
    out[-1][1].pop("value_template")  # an event entity takes the JSON payload itself (event_type inside)
    for d in devices:
        st = t.device(d.name)
        key = topic_part(d.name)
        out += [
            (t.config("sensor", f"{key}_hashrate"), _entity(t, f"{key}_hashrate", f"{d.name} hash rate", st,
                                                            "{{ value_json.hashrate }}", unit_of_measurement="GH/s",
                                                            state_class="measurement", icon="mdi:pickaxe")),
            (t.config("sensor", f"{key}_state"), _entity(t, f"{key}_state", f"{d.name} state", st,
                                                         "{{ value_json.state }}", device_class="enum",
                                                         options=DEVICE_STATES)),
            (t.config("binary_sensor", f"{key}_alive"), _entity(t, f"{key}_alive", f"{d.name} alive", st,
                                                                "{{ value_json.alive }}", device_class="running",
                                                                payload_on="ON", payload_off="OFF")),
            (t.config("sensor", f"{key}_hw_errors"), _entity(t, f"{key}_hw_errors", f"{d.name} hardware errors", st,
                                                             "{{ value_json.hw_errors }}",
                                                             state_class="total_increasing")),
        ]
        if d.temperature is not None:
            out.append((t.config("sensor", f"{key}_temperature"),
                        _entity(t, f"{key}_temperature", f"{d.name} temperature", st, "{{ value_json.temperature }}",
                                device_class="temperature", unit_of_measurement="°C", state_class="measurement")))
    for p in pools:
        st = t.pool(p.index)
        key = f"pool{p.index}"
        out += [
            (t.config("sensor", f"{key}_state"), _entity(t, f"{key}_state", f"Pool {p.index} state", st,
                                                         "{{ value_json.state }}", device_class="enum",
                                                         options=POOL_STATES, json_attributes_topic=st)),
            (t.config("sensor", f"{key}_difficulty"), _entity(t, f"{key}_difficulty", f"Pool {p.index} difficulty",
                                                              st, "{{ value_json.difficulty }}",
                                                              state_class="measurement")),
            (t.config("sensor", f"{key}_payout_percent"),
             _entity(t, f"{key}_payout_percent", f"Pool {p.index} payout to you", st,
                     "{{ value_json.payout_percent }}", unit_of_measurement="%", state_class="measurement")),
            (t.config("binary_sensor", f"{key}_payout_ok"),
             _entity(t, f"{key}_payout_ok", f"Pool {p.index} payout ok", st, "{{ value_json.payout_ok }}",
                     payload_on="ON", payload_off="OFF", icon="mdi:cash-check")),
        ]
    return out


def state_messages(topics: Topics, summary: Summary, devices: Iterable[DeviceSnapshot],
                   pools: Iterable[PoolSnapshot]) -> list[tuple[str, dict]]:
    pools = list(pools)
    active = next((p for p in pools if p.active), None)
    out = [(topics.state, {"hashrate": round(summary.rate_1m / 1e9, 6), "accepted": summary.accepted,
                           "rejected": summary.rejected_total, "best_session": summary.best_session,
                           "best_all_time": summary.best_all_time, "blocks": summary.blocks,
                           "active_pool": active.url if active else ""})]
    for d in devices:
        out.append((topics.device(d.name), {"hashrate": round(d.rate_1m / 1e9, 6), "state": d.state,
                                            "alive": "ON" if d.state == "Alive" else "OFF",
                                            "temperature": d.temperature, "hw_errors": d.hw_errors}))
    for p in pools:
        out.append((topics.pool(p.index), {"state": p.state, "url": p.url, "difficulty": p.difficulty,
                                           "accepted": p.accepted, "payout": p.payout,
                                           "payout_percent": round(p.payout_percent, 4),
                                           "payout_address": p.payout_address,
                                           "payout_ok": "ON" if p.payout_ok else "OFF"}))
    return out


def event_message(topics: Topics, event: ev.Event) -> tuple[str, dict]:
    return topics.event, {"event_type": event.kind, **event_dict(event)}


class MqttPublisher:
    """The I/O shell: connect, announce, publish states and events, reconnect; until cancelled."""

    def __init__(self, target: MqttTarget, view: MinerView, subscription: ev.Subscription,
                 node: str | None = None, state_interval: float = STATE_INTERVAL):
        self.target, self.view, self.subscription = target, view, subscription
        self.topics = Topics(node or default_node())
        self.state_interval = state_interval
        self.limiter = RateLimiter()
        self.connected = asyncio.Event()
        self.announced: set[str] = set()
        self._client = None

    @property
    def name(self) -> str:
        return f"mqtt://{self.target.host}:{self.target.port}"

    async def run(self) -> None:
        import aiomqtt

        failures = 0
        while True:
            try:
                await self._session(aiomqtt)
            except aiomqtt.MqttError as exc:
                failures += 1
                self.connected.clear()
                wait = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failures - 1))
                if failures == 1:
                    log.warning("%s: %s (reconnecting; states resume when it is back)", self.name, exc)
                await asyncio.sleep(wait)

    async def _session(self, aiomqtt) -> None:
        t = self.topics
        will = aiomqtt.Will(t.status, "offline", qos=1, retain=True)
        async with aiomqtt.Client(self.target.host, self.target.port, username=self.target.username,
                                  password=self.target.password, identifier=t.node, will=will, keepalive=30,
                                  timeout=10) as client:
            self._client = client
            await client.publish(t.status, "online", qos=1, retain=True)
            self.announced.clear()
            await self._announce(client)
            await self._publish_states(client)
            self.connected.set()
            log.info("%s: connected; Home Assistant discovery under %s/", self.name, t.prefix)
            loop = asyncio.get_running_loop()
            next_state = loop.time() + self.state_interval
            while True:
                try:
                    event = await asyncio.wait_for(self.subscription.get(), max(0.0, next_state - loop.time()))
                except TimeoutError:
                    event = None
                if event is not None and self.limiter.allow(event, loop.time()):
                    topic, payload = event_message(t, event)
                    await client.publish(topic, json.dumps(payload), qos=1)
                if event is not None or loop.time() >= next_state:
                    await self._announce(client)
                    await self._publish_states(client)
                    next_state = loop.time() + self.state_interval

    async def _announce(self, client) -> None:
        for topic, payload in discovery_messages(self.topics, self.view.device_snapshots(),
                                                 self.view.pool_snapshots()):
            if topic not in self.announced:
                await client.publish(topic, json.dumps(payload), qos=1, retain=True)
                self.announced.add(topic)

    async def _publish_states(self, client) -> None:
        for topic, payload in state_messages(self.topics, self.view.summary(), self.view.device_snapshots(),
                                             self.view.pool_snapshots()):
            await client.publish(topic, json.dumps(payload), qos=0)

    async def goodbye(self) -> None:
        """Say offline (retained) on a clean stop, so Home Assistant shows the miner unavailable at once."""
        client = self._client
        if client is not None and self.connected.is_set():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.publish(self.topics.status, "offline", qos=1, retain=True), 1)
