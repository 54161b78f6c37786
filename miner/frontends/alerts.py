"""Alert sinks: a command, a webhook (plain JSON, ntfy, Discord) and the runner that feeds each one
from the event bus, rate-limited, so a flapping device cannot flood a phone (docs/alerts.md §2).

Each sink is optional and runs as its own supervised task: a sink that fails (a webhook down, a
command that is missing) logs one line per failure streak and keeps going; it never slows the
miner. Secrets never reach the log: webhook URLs (a Discord URL is its token) are shown as their
host only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp

from miner import USER_AGENT
from miner.core import events as ev

log = logging.getLogger(__name__)

SAME_EVENT_INTERVAL = 60.0  # seconds between two alerts of one kind for one subject
BURST = 10  # alerts a sink may send at once...
PER_MINUTE = 10.0  # ...refilled at this rate
DELIVERY_TIMEOUT = 10.0
COMMAND_TIMEOUT = 30.0
NEVER_LIMITED = {ev.BLOCK_FOUND}
FORMATS = ("json", "ntfy", "discord")
NTFY_PRIORITY = {"info": "default", "warning": "high", "critical": "urgent"}  # docs.ntfy.sh/publish/#message-priority


class RateLimiter:
    """Per (kind, subject) at most one alert per `interval`, and a token bucket over all of them."""

    def __init__(self, interval: float = SAME_EVENT_INTERVAL, burst: int = BURST, per_minute: float = PER_MINUTE):
        self.interval, self.burst, self.rate = interval, burst, per_minute / 60.0
        self.tokens = float(burst)
        self.last: dict[tuple[str, str, str], float] = {}
        self.refill_at: float | None = None
        self.suppressed = 0

    def allow(self, event: ev.Event, now: float) -> bool:
        if self.refill_at is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.refill_at) * self.rate)
        self.refill_at = now
        if event.kind in NEVER_LIMITED:
            return True
        key = (event.kind, event.subject, str(event.fields.get("scope", "")))  # an all-time best is not a session best
        if now - self.last.get(key, -1e18) < self.interval or self.tokens < 1:
            self.suppressed += 1
            return False
        self.last[key] = now
        self.tokens -= 1
        return True


class Sink(Protocol):
    name: str

    def wants(self, event: ev.Event) -> bool: ...

    async def deliver(self, event: ev.Event) -> None:
        """Send one alert; raise to report a failure (the runner logs it)."""
        ...


def event_dict(event: ev.Event) -> dict:
    """The JSON every sink shares (the webhook body, the MQTT event payload)."""
    return {"event": event.kind, "severity": event.severity, "message": event.message, "subject": event.subject,
            "time": round(event.at, 3), "host": socket.gethostname(), "miner": USER_AGENT, **{
                "fields": {k: v for k, v in event.fields.items() if isinstance(v, (str, int, float, bool))}}}


def event_environment(event: ev.Event) -> dict[str, str]:
    """MINER_EVENT, MINER_MESSAGE, MINER_SUBJECT, MINER_SEVERITY, MINER_TIME and one MINER_<FIELD> each."""
    env = {"MINER_EVENT": event.kind, "MINER_MESSAGE": event.message, "MINER_SUBJECT": event.subject,
           "MINER_SEVERITY": event.severity, "MINER_TIME": f"{event.at:.0f}"}
    for key, value in event.fields.items():
        name = "MINER_" + "".join(c if c.isalnum() else "_" for c in key).upper()
        env.setdefault(name, str(value))
    return env


class CommandSink:
    """Runs a shell command per event, like bfgminer's --cmd-sick/--cmd-dead (miner.c: cmd_sick,
    cmd_dead); the event is described in the environment, never on the command line."""

    def __init__(self, command: str, kinds: frozenset[str] | None = None, name: str = "command"):
        self.command, self.kinds, self.name = command, kinds, name
        self.runs = 0

    def wants(self, event: ev.Event) -> bool:
        return self.kinds is None or event.kind in self.kinds

    async def deliver(self, event: ev.Event) -> None:
        proc = await asyncio.create_subprocess_shell(
            self.command, env={**os.environ, **event_environment(event)}, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, start_new_session=True)
        self.runs += 1
        try:
            _, err = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise RuntimeError(f"still running after {COMMAND_TIMEOUT:g} s, killed") from None
        if proc.returncode:
            tail = err.decode(errors="replace").strip().splitlines()[-1:] if err else []
            raise RuntimeError(f"exit status {proc.returncode}" + (f": {tail[0][:200]}" if tail else ""))


def guess_format(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    path = urlsplit(url).path
    if host.endswith(("discord.com", "discordapp.com")) and path.startswith("/api/webhooks/"):
        return "discord"
    if host == "ntfy.sh" or host.startswith("ntfy."):
        return "ntfy"
    return "json"


def webhook_request(event: ev.Event, fmt: str) -> tuple[bytes, dict[str, str]]:
    """(body, headers) for one event in a webhook format."""
    if fmt == "ntfy":  # docs.ntfy.sh/publish: the body is the message; Title/Priority/Tags headers
        title = f"{socket.gethostname()}: {event.kind.replace('_', ' ')}"
        return event.message.encode(), {"Title": title, "Priority": NTFY_PRIORITY[event.severity],
                                        "Tags": f"pick,{event.kind}", "Content-Type": "text/plain; charset=utf-8"}
    if fmt == "discord":  # Discord "Execute Webhook": content (at most 2000 characters) and username
        content = f"**{event.kind.replace('_', ' ')}** on {socket.gethostname()}: {event.message}"[:2000]
        body = {"content": content, "username": "miner", "allowed_mentions": {"parse": []}}
        return json.dumps(body).encode(), {"Content-Type": "application/json"}
    return json.dumps(event_dict(event)).encode(), {"Content-Type": "application/json"}


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}/..."


class WebhookSink:
    def __init__(self, url: str, fmt: str | None = None):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--webhook: {redact_url(url)} is not an http:// or https:// URL")
        self.url, self.format = url, fmt or guess_format(url)
        if self.format not in FORMATS:
            raise ValueError(f"--webhook-format: {self.format!r} is not one of {', '.join(FORMATS)}")
        self.name = f"webhook {redact_url(url)} ({self.format})"
        self._session = None
        self.sent = 0

    def wants(self, event: ev.Event) -> bool:
        return True

    async def deliver(self, event: ev.Event) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT},
                                                  timeout=aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT))
        body, headers = webhook_request(event, self.format)
        try:
            async with self._session.post(self.url, data=body, headers=headers) as response:
                if response.status >= 300:
                    raise RuntimeError(f"HTTP {response.status}")
        except aiohttp.ClientError as exc:  # its text may hold the URL, and so the token: never logged
            raise RuntimeError(str(exc).replace(self.url, redact_url(self.url)) or type(exc).__name__) from None
        self.sent += 1

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


async def run_sink(sink: Sink, subscription: ev.Subscription, limiter: RateLimiter | None = None,
                   clock: Callable[[], float] = time.monotonic) -> None:
    """Feed one sink until cancelled; failures are logged once per streak, never raised."""
    limiter = limiter or RateLimiter()
    failing = False
    while True:
        event = await subscription.get()
        if not sink.wants(event) or not limiter.allow(event, clock()):
            continue
        try:
            await asyncio.wait_for(sink.deliver(event), DELIVERY_TIMEOUT + COMMAND_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of a sink is the sink's, not the miner's
            if not failing:
                log.warning("alert %s: %s failed: %s (alerts keep being tried)", event.kind, sink.name,
                            str(exc) or type(exc).__name__)
            failing = True
        else:
            if failing:
                log.info("alerts: %s works again", sink.name)
            failing = False


async def close_sink(sink: object) -> None:
    if isinstance(sink, WebhookSink):
        with contextlib.suppress(Exception):
            await sink.close()
