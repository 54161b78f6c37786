"""The event watcher on synthetic snapshots, the bus's bounds, the rate limiter, the sinks' formats,
the share log line, the systemd unit text and Home Assistant discovery payloads against HA's rules."""

import asyncio
import hashlib
import json
import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miner.app.arguments import hash_rate
from miner.app.service import Notifier, systemd_unit, unit_escape
from miner.core import events as ev
from miner.core.shares import check_nonce
from miner.core.work import Job, Nonce, swap_words
from miner.frontends.alerts import RateLimiter, event_environment, guess_format, redact_url, webhook_request
from miner.frontends.mqtt import MqttTarget, Topics, discovery_messages, state_messages, topic_part
from miner.frontends.sharelog import WORK_PADDING, sharelog_line
from miner.frontends.view import DeviceSnapshot, PoolSnapshot, Summary
from miner.frontends.watch import EventWatcher, Thresholds


def summary(**kw) -> Summary:
    base = dict(elapsed=1.0, rate_5s=0.0, rate_1m=1e9, rate_5m=0.0, rate_15m=0.0, rate_avg=0.0, total_hashes=0.0,
                accepted=0, rejected=Counter(), stale=0, hw_errors=0, found=0, blocks=0, accepted_difficulty=0.0,
                best_session=0.0, best_all_time=100.0, pool_difficulty=None)
    return Summary(**{**base, **kw})


def device(name="bm0", state="Alive", temperature=None, **kw) -> DeviceSnapshot:
    base = dict(index=0, name=name, driver="bm1397", port="/dev/ttyUSB0", model="BM1397", state=state, enabled=True,
                rate_5s=0.0, rate_1m=5e8, rate_5m=0.0, rate_15m=0.0, rate_avg=0.0, total_hashes=0.0, accepted=0,
                rejected=Counter(), hw_errors=0, found=0, accepted_difficulty=0.0, best_difficulty=0.0,
                temperature=temperature, frequency=None, voltage=None, elapsed=1.0, last_valid_age=None)
    return DeviceSnapshot(**{**base, **kw})


def pool(index=0, active=False, **kw) -> PoolSnapshot:
    base = dict(index=index, name=f"pool{index}", url=f"stratum+tcp://p{index}:3333", user="u", state="Alive",
                active=active, priority=index, difficulty=1.0, accepted=0, rejected=Counter(), stale=0,
                accepted_difficulty=0.0, best_difficulty=0.0, latency=None, version_rolling=False)
    return PoolSnapshot(**{**base, **kw})


def kinds(events):
    return [(e.kind, e.subject) for e in events]


def test_the_first_look_is_the_baseline():
    w = EventWatcher()
    assert w.step(summary(blocks=3, best_session=5.0), [device(state="Sick")], [pool(active=True)], 0.0) == []


def test_blocks_and_best_shares():
    w = EventWatcher()
    w.step(summary(), [], [], 0.0)
    out = w.step(summary(best_session=50.0, best_all_time=100.0), [], [], 1.0)
    assert kinds(out) == [(ev.BEST_SHARE, "")] and out[0].fields["scope"] == "session"
    out = w.step(summary(best_session=150.0, best_all_time=150.0, blocks=1, block_height=840_000), [], [], 2.0)
    assert kinds(out) == [(ev.BLOCK_FOUND, ""), (ev.BEST_SHARE, "")]
    assert out[0].fields["height"] == 840_000 and out[1].fields["scope"] == "all_time"
    assert w.step(summary(best_session=150.0, best_all_time=150.0, blocks=1), [], [], 3.0) == []


def test_device_sick_dead_unplugged_and_back():
    w = EventWatcher()
    w.step(summary(), [device(), device("ica0")], [], 0.0)
    out = w.step(summary(), [device(state="Sick", last_error="no nonces for 60 s"), device("ica0")], [], 1.0)
    assert kinds(out) == [(ev.DEVICE_SICK, "bm0")] and "no nonces" in out[0].message
    out = w.step(summary(), [device(state="Dead"), device("ica0")], [], 2.0)
    assert kinds(out) == [(ev.DEVICE_DEAD, "bm0")]
    out = w.step(summary(), [device()], [], 3.0)  # ica0 is gone, bm0 back
    assert sorted(kinds(out)) == [(ev.DEVICE_BACK, "bm0"), (ev.DEVICE_UNPLUGGED, "ica0")]
    out = w.step(summary(), [device(), device("ica0")], [], 4.0)
    assert kinds(out) == [(ev.DEVICE_BACK, "ica0")]
    assert w.step(summary(), [device(), device("ica0")], [], 5.0) == []


def test_over_temperature_once_with_hysteresis():
    w = EventWatcher(Thresholds(temperature=80.0))
    w.step(summary(), [device(temperature=70.0)], [], 0.0)
    assert kinds(w.step(summary(), [device(temperature=81.0)], [], 1.0)) == [(ev.OVER_TEMPERATURE, "bm0")]
    assert w.step(summary(), [device(temperature=79.0)], [], 2.0) == []  # within the 5 °C band
    assert kinds(w.step(summary(), [device(temperature=74.0)], [], 3.0)) == [(ev.TEMPERATURE_OK, "bm0")]


def test_failover_and_return():
    w = EventWatcher()
    w.step(summary(), [], [pool(0, True), pool(1)], 0.0)
    out = w.step(summary(), [], [pool(0), pool(1, True)], 1.0)
    assert kinds(out) == [(ev.POOL_FAILOVER, "pool1")] and out[0].fields["from"] == "pool0"
    out = w.step(summary(), [], [pool(0, True), pool(1)], 2.0)
    assert kinds(out) == [(ev.POOL_RETURN, "pool0")]
    out = w.step(summary(), [], [pool(0), pool(1)], 3.0)
    assert kinds(out) == [(ev.POOL_FAILOVER, "pool0")] and out[0].fields["to"] == ""


def test_hash_rate_below_the_threshold_for_n_minutes():
    w = EventWatcher(Thresholds(hashrate_below=1e9, hashrate_minutes=2))
    w.step(summary(rate_1m=2e9), [], [], 0.0)
    assert w.step(summary(rate_1m=5e8), [], [], 10.0) == []
    assert w.step(summary(rate_1m=5e8), [], [], 129.0) == []
    assert kinds(w.step(summary(rate_1m=5e8), [], [], 130.0)) == [(ev.HASHRATE_LOW, "")]
    assert w.step(summary(rate_1m=5e8), [], [], 500.0) == []
    assert kinds(w.step(summary(rate_1m=1.5e9), [], [], 501.0)) == [(ev.HASHRATE_OK, "")]


async def test_the_bus_is_bounded_and_drops_the_oldest():
    bus = ev.EventBus(queue_size=3)
    sub = bus.subscribe()
    for i in range(5):
        bus.publish(ev.Event(ev.BEST_SHARE, str(i)))
    assert sub.dropped == 2
    assert [(await sub.get()).message for _ in range(3)] == ["2", "3", "4"]


async def test_the_bus_takes_events_from_other_threads():
    bus = ev.EventBus()
    sub = bus.subscribe()
    await asyncio.to_thread(bus.publish, ev.Event(ev.DEVICE_DEAD, "from a thread", "bm0"))
    assert (await asyncio.wait_for(sub.get(), 5)).message == "from a thread"


def test_rate_limits():
    limiter = RateLimiter(interval=60, burst=2, per_minute=6)
    sick = ev.Event(ev.DEVICE_SICK, "x", "bm0")
    assert limiter.allow(sick, 0.0) and not limiter.allow(sick, 30.0) and limiter.allow(sick, 61.0)
    assert limiter.allow(ev.Event(ev.DEVICE_SICK, "x", "bm1"), 61.0)
    assert not limiter.allow(ev.Event(ev.DEVICE_SICK, "x", "bm2"), 61.0)  # the bucket is empty
    assert limiter.allow(ev.Event(ev.DEVICE_SICK, "x", "bm2"), 71.0)  # 10 s refill one token
    assert all(limiter.allow(ev.Event(ev.BLOCK_FOUND, "!"), 71.0) for _ in range(10))  # never held back
    best = RateLimiter(burst=5)
    assert best.allow(ev.Event(ev.BEST_SHARE, "s", fields={"scope": "session"}), 0.0)
    assert not best.allow(ev.Event(ev.BEST_SHARE, "s", fields={"scope": "session"}), 1.0)
    assert best.allow(ev.Event(ev.BEST_SHARE, "a", fields={"scope": "all_time"}), 2.0)  # a record always tells


def test_webhook_formats():
    event = ev.Event(ev.DEVICE_DEAD, "bm0 is Dead", "bm0", {"temperature": 91.5, "port": "/dev/ttyUSB0"}, at=1e9)
    body, headers = webhook_request(event, "json")
    data = json.loads(body)
    assert (data["event"], data["severity"], data["subject"], data["fields"]["temperature"]) == \
        ("device_dead", "critical", "bm0", 91.5)
    body, headers = webhook_request(event, "ntfy")
    assert body == b"bm0 is Dead" and headers["Priority"] == "urgent" and "device dead" in headers["Title"]
    body, headers = webhook_request(ev.Event(ev.BEST_SHARE, "x" * 3000), "discord")
    assert len(json.loads(body)["content"]) == 2000 and json.loads(body)["allowed_mentions"] == {"parse": []}
    assert guess_format("https://discord.com/api/webhooks/1/token") == "discord"
    assert guess_format("https://ntfy.sh/mytopic") == "ntfy" and guess_format("http://127.0.0.1:9/x") == "json"
    assert "token" not in redact_url("https://discord.com/api/webhooks/1/token")


def test_command_environment():
    env = event_environment(ev.Event(ev.OVER_TEMPERATURE, "hot", "bm0", {"temperature": 90, "limit": 85}, at=5.0))
    assert env["MINER_EVENT"] == "over_temperature" and env["MINER_SUBJECT"] == "bm0"
    assert (env["MINER_TEMPERATURE"], env["MINER_LIMIT"], env["MINER_TIME"]) == ("90", "85", "5")


def test_a_sharelog_line_parses_back_to_its_share():
    job = Job("7", bytes(range(32)), b"\x01" * 41, b"\x02" * 30, (), 0x20000000, 0x1D00FFFF, 0x6553F100,
              extranonce2_size=4, share_target=1 << 255, source="pool0")
    work = job.make_work(1, job.extranonce2_for(5))
    share = check_nonce(work, Nonce(1, 0x12345678, device="bm0", chip=3))
    line = sharelog_line(share, False, "low difficulty share (too long to keep whole)", "stratum+tcp://p:3", 1e9)
    fields = line.rstrip("\n").split(",")
    assert len(fields) == 8
    stamp, disposition, target, url, dev, thr, digest, data = fields
    assert (stamp, url, dev, thr) == ("1000000000", "stratum+tcp://p:3", "bm0", "3")
    assert disposition == "reject:" + "low difficulty share (too long to keep whole)"[:28]
    assert int.from_bytes(bytes.fromhex(target), "little") == 1 << 255
    raw = bytes.fromhex(data)
    assert len(raw) == 128 and raw[80:] == WORK_PADDING
    header = swap_words(raw[:80])
    assert hashlib.sha256(hashlib.sha256(header).digest()).digest().hex() == digest
    assert int.from_bytes(header[76:80], "little") == 0x12345678
    assert sharelog_line(share, True, None, "u", 1).split(",")[1] == "accept"


def test_the_unit_is_a_notify_service_with_a_watchdog_and_quoted_arguments():
    text = systemd_unit(["-o", "stratum+tcp://h:3", "-u", "bc1q.rig 1%$"], python="/usr/bin/python3")
    lines = text.splitlines()
    assert "Type=notify" in lines and any(line.startswith("WatchdogSec=") for line in lines)
    exec_start = next(line for line in lines if line.startswith("ExecStart="))
    assert exec_start == "ExecStart=/usr/bin/python3 -m miner --no-tui -o stratum+tcp://h:3 -u 'bc1q.rig 1%%$$'"
    assert "WantedBy=default.target" in systemd_unit([], user=True)
    assert unit_escape("a b") == "'a b'"


def test_notifier_reads_systemds_environment():
    n = Notifier({"NOTIFY_SOCKET": "@sd", "WATCHDOG_USEC": "30000000"})
    assert n.enabled and n.watchdog == 30.0
    assert Notifier({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).watchdog is None
    assert not Notifier({}).enabled and not Notifier({}).notify(READY=1)


@pytest.mark.parametrize(("text", "value"), [("500", 500.0), ("1.5G", 1.5e9), ("10TH/s", 1e13), ("2kh", 2e3)])
def test_hash_rates(text, value):
    assert hash_rate(text) == value


def test_mqtt_urls():
    assert MqttTarget.parse("mqtt://broker:1884", "u", "p") == MqttTarget("broker", 1884, "u", "p")
    assert MqttTarget.parse("10.0.0.2").port == 1883
    with pytest.raises(ValueError, match="mqtt://HOST:PORT") as info:
        MqttTarget.parse("mqtts://u:secret@broker")
    assert "secret" not in str(info.value)


# Home Assistant's rules (homeassistant/components/mqtt/discovery.py TOPIC_MATCHER; sensor/const.py
# SensorDeviceClass and SensorStateClass; binary_sensor BinarySensorDeviceClass; mqtt/event.py).
HA_TOPIC = re.compile(r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config")
STATE_CLASSES = {"measurement", "total", "total_increasing"}
SENSOR_CLASSES = {"temperature", "enum", "power", "energy", "frequency", "voltage", "duration", "timestamp"}
BINARY_CLASSES = {"running", "problem", "connectivity", "power"}


def check_ha_payload(topic: str, payload: dict, node: str) -> None:
    match = HA_TOPIC.fullmatch(topic.removeprefix("homeassistant/"))
    assert topic.startswith("homeassistant/") and match, topic
    component = match["component"]
    assert component in ("sensor", "binary_sensor", "event") and match["node_id"] == node
    assert payload["state_topic"] and payload["unique_id"] and payload["name"]
    assert payload["availability_topic"].endswith("/status")
    assert payload["device"]["identifiers"] == [node]
    if "state_class" in payload:
        assert component == "sensor" and payload["state_class"] in STATE_CLASSES
    if component == "sensor" and "device_class" in payload:
        assert payload["device_class"] in SENSOR_CLASSES
        if payload["device_class"] == "enum":
            assert payload["options"] and "unit_of_measurement" not in payload and "state_class" not in payload
        if payload["device_class"] == "temperature":
            assert payload["unit_of_measurement"] in ("°C", "°F", "K")
    if component == "binary_sensor":
        assert payload.get("device_class", "running") in BINARY_CLASSES
        assert (payload["payload_on"], payload["payload_off"]) == ("ON", "OFF")
    if component == "event":
        assert set(payload["event_types"]) == set(ev.KINDS) and "value_template" not in payload


def test_discovery_payloads_follow_home_assistants_schema():
    topics = Topics("miner_rig-1")
    messages = discovery_messages(topics, [device(temperature=60.0), device("cpu 0")], [pool(0), pool(1)])
    for topic, payload in messages:
        check_ha_payload(topic, payload, "miner_rig-1")
    ids = [p["unique_id"] for _, p in messages]
    assert len(ids) == len(set(ids))
    assert "homeassistant/sensor/miner_rig-1/bm0_temperature/config" in dict(messages)
    assert "homeassistant/binary_sensor/miner_rig-1/pool1_payout_ok/config" in dict(messages)
    states = dict(state_messages(topics, summary(), [device()], [pool(0, payout_ok=False)]))
    assert states["miner/miner_rig-1/pool/0/state"]["payout_ok"] == "OFF"
    assert states["miner/miner_rig-1/state"]["hashrate"] == 1.0


@given(st.text(max_size=40))
def test_any_name_becomes_a_valid_topic_level(name):
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", topic_part(name))


def test_the_status_view_shows_the_payout_column_once_a_pool_has_a_verdict():
    from rich.console import Console

    from miner.frontends.status import pool_table

    def text(pools):
        console = Console(width=220, record=True)
        console.print(pool_table(pools, 1e9))
        return console.export_text()

    assert "payout" not in text([pool(0), pool(1)])
    shown = text([pool(0, payout="pays 0.00%", payout_percent=0.0, payout_address="1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
                       payout_checked=True, payout_ok=False), pool(1)])
    assert "payout" in shown and "0.0% 1A1zP1eP…DivfNa FAILED" in shown


@pytest.mark.parametrize(("args", "message"), [
    (("--webhook", "ftp://u:pw@host/x"), "is not an http:// or https:// URL"),
    (("--mqtt", "mqtts://u:pw@host"), "is not mqtt://HOST:PORT"),
    (("--payout-address", "bc1qnotanaddress"), "--payout-address"),
    (("--payout-min", "120"), "percentage"), (("--alert-hashrate-below", "fast"), "not a hash rate"),
    (("--log-file", "/nonexistent/miner.log"), "does not exist")])
def test_bad_alert_options_are_one_line_without_secrets(args, message, capsys):
    from miner.app import cli, compose
    from miner.app.settings import MINE

    with pytest.raises((SystemExit, ValueError)) as info:
        compose.check_alert_settings(cli.parse_settings(MINE, list(args)))
    text = str(info.value) if info.type is ValueError else capsys.readouterr().err
    assert message in text and ":pw@" not in text


@given(st.binary(min_size=0, max_size=60), st.binary(min_size=0, max_size=60), st.integers(0, 2**32 - 1),
       st.integers(1, 2**256 - 1), st.booleans(), st.text(max_size=40))
def test_any_share_round_trips_through_its_sharelog_line(coinb1, coinb2, nonce, target, accepted, reason):
    job = Job("j", bytes(32), coinb1, coinb2, (), 0x20000000, 0x1D00FFFF, 0x6553F100, extranonce2_size=4,
              share_target=target, source="pool0")
    share = check_nonce(job.make_work(1, bytes(4)), Nonce(1, nonce, device="dev0"))
    fields = sharelog_line(share, accepted, reason, "stratum+tcp://h:1", 1e9).rstrip("\n").split(",")
    assert len(fields) == 8 and fields[1].isprintable()
    assert swap_words(bytes.fromhex(fields[7])[:80]) == share.header
    assert int.from_bytes(bytes.fromhex(fields[2]), "little") == target and fields[6] == share.digest.hex()
    assert fields[1] == "accept" if accepted else fields[1].startswith("reject")


@given(st.floats(min_value=1e-3, max_value=1e6, allow_nan=False), st.sampled_from(["", "k", "M", "G", "T"]),
       st.sampled_from(["", "H", "H/s", "h/s"]))
def test_any_written_hash_rate_parses(value, prefix, unit):
    scale = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[prefix]
    assert hash_rate(f"{value!r}{prefix}{unit}") == pytest.approx(value * scale)
