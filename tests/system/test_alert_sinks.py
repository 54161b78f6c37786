"""Alert sinks against real peers on 127.0.0.1: an aiohttp receiver gets every event kind in each
webhook format within 2 s, commands run with the event in their environment, and a `miner` run
sends its alerts, writes a share log that parses back, logs to a file and speaks sd_notify to a
real datagram socket (docs/alerts.md)."""

import asyncio
import hashlib
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

from miner.core import events as ev
from miner.core.work import swap_words
from miner.frontends.alerts import CommandSink, RateLimiter, WebhookSink, run_sink
from tests.helpers.waiting import until

ROOT = Path(__file__).resolve().parents[2]


class Receiver:
    """An HTTP server that records every POST (time received, path, headers, body)."""

    def __init__(self, status: int = 200):
        self.status = status
        self.posts: list[tuple[float, str, dict, bytes]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._post)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - aiohttp has no public accessor

    async def _post(self, request: web.Request) -> web.Response:
        self.posts.append((time.time(), request.path, dict(request.headers), await request.read()))
        return web.Response(status=self.status)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def sample(kind: str) -> ev.Event:
    return ev.Event(kind, f"{kind} happened", "bm0", {"temperature": 90.0, "pool": "pool1"})


async def test_every_event_reaches_a_webhook_in_each_format_within_2_s():
    receiver = Receiver()
    await receiver.start()
    bus = ev.EventBus()
    sinks = {fmt: WebhookSink(f"http://127.0.0.1:{receiver.port}/{fmt}", fmt) for fmt in ("json", "ntfy", "discord")}
    tasks = [asyncio.create_task(run_sink(s, bus.subscribe(), RateLimiter(burst=100))) for s in sinks.values()]
    try:
        for kind in ev.KINDS:
            bus.publish(sample(kind))
        await until(lambda: len(receiver.posts) == 3 * len(ev.KINDS), 20, "every webhook")
        lags = []
        for received, path, headers, body in receiver.posts:
            if path == "/json":
                data = json.loads(body)
                assert data["message"] == f"{data['event']} happened" and data["fields"]["temperature"] == 90.0
                lags.append(received - data["time"])
            elif path == "/ntfy":
                assert body.decode().endswith(" happened") and headers["Priority"] in ("default", "high", "urgent")
            else:
                assert " happened" in json.loads(body)["content"]
        assert sorted(json.loads(b)["event"] for _, p, _, b in receiver.posts if p == "/json") == sorted(ev.KINDS)
        assert max(lags) < 2.0, lags
        print(f"webhook lag: max {max(lags):.3f} s over {len(lags)} events")  # shown with pytest -s
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sink in sinks.values():
            await sink.close()
        await receiver.stop()


async def test_a_flapping_device_is_one_alert_and_a_failing_webhook_one_line_without_its_token(caplog):
    receiver = Receiver(status=500)
    await receiver.start()
    bus = ev.EventBus()
    secret = "s3cr3t-t0ken"
    sink = WebhookSink(f"http://127.0.0.1:{receiver.port}/api/webhooks/1/{secret}", "json")
    task = asyncio.create_task(run_sink(sink, bus.subscribe()))
    caplog.set_level(logging.INFO)
    try:
        for _ in range(5):
            bus.publish(ev.Event(ev.DEVICE_SICK, "bm0 is Sick", "bm0"))
        bus.publish(ev.Event(ev.BLOCK_FOUND, "block!"))
        await until(lambda: len(receiver.posts) == 2, 10, "two posts")
        await asyncio.sleep(0.3)  # anything else would have been sent by now
        assert len(receiver.posts) == 2
        failures = [r.message for r in caplog.records if "failed" in r.message]
        assert len(failures) == 1 and "HTTP 500" in failures[0]
        assert not any(secret in r.getMessage() for r in caplog.records if r.name.startswith("miner"))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sink.close()
        await receiver.stop()


async def test_cmd_sick_runs_with_the_event_in_its_environment(tmp_path, caplog):
    out = tmp_path / "env.txt"
    sink = CommandSink(f"env | grep ^MINER_ > {out}", frozenset({ev.DEVICE_SICK}), "--cmd-sick")
    bus = ev.EventBus()
    task = asyncio.create_task(run_sink(sink, bus.subscribe()))
    try:
        bus.publish(ev.Event(ev.DEVICE_DEAD, "not for --cmd-sick", "bm0"))
        bus.publish(ev.Event(ev.DEVICE_SICK, "bm0 is Sick: no nonces", "bm0", {"error": "no nonces"}))
        await until(lambda: out.exists() and "MINER_ERROR" in out.read_text(), 20, "the command's output")
        env = dict(line.split("=", 1) for line in out.read_text().splitlines())
        assert env["MINER_EVENT"] == "device_sick" and env["MINER_SUBJECT"] == "bm0"
        assert env["MINER_MESSAGE"] == "bm0 is Sick: no nonces" and env["MINER_SEVERITY"] == "warning"
        assert sink.runs == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    failing = CommandSink("echo broken >&2; exit 3")
    bus2 = ev.EventBus()
    task = asyncio.create_task(run_sink(failing, bus2.subscribe()))
    try:
        bus2.publish(ev.Event(ev.BLOCK_FOUND, "!"))
        await until(lambda: "exit status 3: broken" in caplog.text, 20, "the failure line")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_miner_run_alerts_logs_shares_and_speaks_sd_notify(tmp_path):
    receiver = Receiver()
    await receiver.start()
    short = Path(tempfile.mkdtemp(prefix="sd", dir="/tmp"))
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(short / "n"))
    notify.setblocking(False)
    messages: list[str] = []

    async def collect() -> None:
        loop = asyncio.get_running_loop()
        while True:
            messages.append((await loop.sock_recv(notify, 4096)).decode())

    collector = asyncio.create_task(collect())
    sharelog, logfile, events = tmp_path / "shares.csv", tmp_path / "miner.log", tmp_path / "events.txt"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NOTIFY_SOCKET": str(short / "n"), "WATCHDOG_USEC": "1000000"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "miner", "--time-limit", "8", "--no-tui", "-t", "1", "--sandbox-diff", "0.002",
        "--webhook", f"http://127.0.0.1:{receiver.port}/hook", "--alert-cmd", f"echo $MINER_EVENT >> {events}",
        "--sharelog", str(sharelog), "--log-file", str(logfile), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()[-2000:]
        # a best share is the event a sandbox run is sure to have
        posted = [json.loads(body) for _, _, _, body in receiver.posts]
        assert any(p["event"] == "best_share" for p in posted), err.decode()[-2000:]
        lags = [received - json.loads(body)["time"] for received, _, _, body in receiver.posts]
        assert max(lags) < 2.0, (lags, [p["event"] for p in posted])
        assert "best_share" in events.read_text().split()
        lines = sharelog.read_text().splitlines()
        assert lines
        for line in lines:
            stamp, disposition, target, pool, dev, thr, digest, data = line.split(",")
            header = swap_words(bytes.fromhex(data)[:80])
            assert hashlib.sha256(hashlib.sha256(header).digest()).digest().hex() == digest
            assert int.from_bytes(bytes.fromhex(digest), "little") <= int.from_bytes(bytes.fromhex(target), "little")
            assert (disposition, pool, dev) == ("accept", "sandbox", "cpu0")
            assert abs(int(stamp) - time.time()) < 120
        assert "final:" in logfile.read_text()
        await until(lambda: any("STOPPING=1" in m for m in messages), 5, "STOPPING=1")
        assert messages[0].startswith("READY=1")
        assert sum(m.startswith("WATCHDOG=1") for m in messages) >= 3  # every 0.5 s of an 8 s run
        assert any("STATUS=mining at" in m for m in messages)
    finally:
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
        notify.close()
        shutil.rmtree(short, ignore_errors=True)
        await receiver.stop()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
