"""The dashboard on the `--http` listener: `GET /` (the page and its two files, package data), the
page's state, its live updates as server-sent events, and the few writes the REST API had not
(add a pool, restart, quit). docs/dashboard.md says what goes over the wire.

One ticker builds the state once a second and hands the same bytes to every open event stream
(each holds at most the newest update: a slow browser skips updates, it never queues them), and it
samples the 5 s hash-rate ring the chart draws, so that ring is saved with the statistics and the
chart survives a restart. Writes need the bearer token and pass `same_origin_writes` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
from functools import partial
from importlib import resources
from typing import Any

from aiohttp import web

from miner.frontends.dashboard.state import dashboard_state
from miner.frontends.view import CommandError, MinerView

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between live updates (the 1 update/s)
MAX_STREAMS = 16  # open event streams at most: each costs a task and a socket
RETRY_MS = 3000  # the EventSource reconnect delay the page is told (SSE `retry:` field)
STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def _asset(name: str) -> bytes:
    return resources.files("miner.frontends.dashboard").joinpath(name).read_bytes()


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=partial(json.dumps, default=str))


def _host_name(host: str) -> str:
    """`HOST[:PORT]` or `[V6]:PORT` -> the name without port or brackets, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def is_loopback_name(host: str) -> bool:
    name = _host_name(host)
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def cross_site_refusal(method: str, headers: Any, bound_host: str) -> str | None:
    """Why a write must be refused as cross-site, None when it may go on to the token check.

    - a browser's `Origin` (sent on every cross-origin and every POST fetch) must name this very
      host and port: `http://` + the `Host` header;
    - `Sec-Fetch-Site`, where the browser sends it, must be same-origin (or none: typed by the user);
    - on a loopback listener the `Host` must be a loopback name, so a DNS-rebinding page (its own
      name resolving to 127.0.0.1, hence "same origin") is refused too.
    Clients that are not browsers (curl, scripts) send no Origin; for them the token decides.
    """
    if method in ("GET", "HEAD", "OPTIONS"):
        return None
    host = headers.get("Host", "")
    origin = headers.get("Origin")
    if origin is not None and origin.lower() != f"http://{host}".lower():
        return f"cross-site write refused: Origin {origin} is not this miner's page (http://{host})"
    site = headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return f"cross-site write refused (Sec-Fetch-Site: {site})"
    if is_loopback_name(bound_host) and not is_loopback_name(host):
        return f"write refused: Host {host!r} is not this loopback listener (open the page at http://127.0.0.1)"
    return None


def same_origin_writes(bound_host: str):
    """An aiohttp middleware that applies `cross_site_refusal` to every request (docs/dashboard.md §4)."""
    @web.middleware
    async def middleware(request: web.Request, handler):
        refusal = cross_site_refusal(request.method, request.headers, bound_host)
        if refusal is not None:
            return _json({"error": refusal}, status=403)
        return await handler(request)
    return middleware


def token_refusal(request: web.Request, token: str | None) -> web.Response | None:
    """The bearer-token check every write passes (the same answers as the REST writes)."""
    if not token:
        return _json({"error": "writes are disabled; start the miner with --http-token TOKEN"}, status=403)
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return _json({"error": "missing or wrong bearer token: enter the --http-token in the page's Control box"},
                     status=401, headers={"WWW-Authenticate": "Bearer"})
    return None


class Dashboard:
    def __init__(self, view: MinerView, token: str | None = None):
        self.view = view
        self.token = token
        self._streams: set[asyncio.Queue[bytes]] = set()
        self._closing = asyncio.Event()
        self._ticker: asyncio.Task | None = None
        self._sent_seq = 0  # the share log's sequence number the last broadcast went up to
        self._page = _asset("index.html")

    # ------------------------------------------------------------ wiring
    def install(self, app: web.Application) -> None:
        """Add the routes and the ticker's start and stop to an aiohttp application."""
        app.add_routes([
            web.get("/", self._index),
            *(web.get(f"/dashboard/{name}", self._static(name, kind)) for name, kind in STATIC.items()),
            web.get("/api/dashboard/state", self._state),
            web.get("/api/dashboard/events", self._events),
            web.post("/api/pools", self._add_pool),
            web.post("/api/restart", self._restart),
            web.post("/api/quit", self._quit),
        ])
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._shutdown)

    async def _start(self, app: web.Application) -> None:
        self._ticker = asyncio.create_task(self._tick_supervised(), name="dashboard ticker")

    async def _shutdown(self, app: web.Application) -> None:
        """Before the server closes: end every event stream at once (stop stays within 2 s)."""
        self._closing.set()
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)

    # ------------------------------------------------------------ the live updates
    async def _tick_supervised(self) -> None:
        while not self._closing.is_set():
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the ticker outlives one bad snapshot
                log.exception("dashboard update failed (retrying in %g s)", TICK)
                await asyncio.sleep(TICK)

    async def _tick(self) -> None:
        while True:
            store = self.view.store
            if store is not None:
                store.record("5s", self.view.summary().rate_5s)
            if self._streams:
                self.publish(self.update_bytes(self._sent_seq))
            self._sent_seq = self.view.miner.recent.last_seq
            await asyncio.sleep(TICK)

    def update_bytes(self, shares_since: int = 0) -> bytes:
        """One SSE message: the state with the share-log records newer than `shares_since` (the page
        keeps its own log and drops records it has by `seq`)."""
        state = dashboard_state(self.view, shares_since=shares_since)
        return b"event: state\ndata: " + json.dumps(state, default=str).encode() + b"\n\n"

    def publish(self, message: bytes) -> None:
        for queue in self._streams:
            if queue.full():  # a slow reader gets the newest state, not a backlog
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(message)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if len(self._streams) >= MAX_STREAMS:
            return _json({"error": f"too many open dashboards (at most {MAX_STREAMS}); close one"}, status=503)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1)
        self._streams.add(queue)
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await response.write(f"retry: {RETRY_MS}\n\n".encode() + self.update_bytes())
            while not self._closing.is_set():
                getting = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getting, closing}, return_when=asyncio.FIRST_COMPLETED)
                if getting not in done:
                    getting.cancel()
                    break
                await response.write(getting.result())
        except (ConnectionResetError, ConnectionError):
            pass  # the browser went away
        finally:
            self._streams.discard(queue)
            closing.cancel()
        return response

    # ------------------------------------------------------------ reads
    def boot_json(self) -> bytes:
        """The state and the 5 s ring, for the page to draw at once (the other rings it fetches from
        /api/history). `<` is escaped so no value can end the script element it sits in."""
        store = self.view.store
        five = [list(p) for p in store.history["5s"]] if store is not None else []
        data = {"state": {**dashboard_state(self.view), "writes": bool(self.token)}, "history": {"5s": five}}
        return json.dumps(data, default=str).replace("<", "\\u003c").encode()

    async def _index(self, request: web.Request) -> web.Response:
        body = self._page.replace(b"<!--BOOT-->", self.boot_json())
        return web.Response(body=body, content_type="text/html", charset="utf-8", headers={"Cache-Control": "no-cache"})

    def _static(self, name: str, kind: str):
        body = _asset(name)

        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type=kind, charset="utf-8", headers={"Cache-Control": "no-cache"})
        return handler

    async def _state(self, request: web.Request) -> web.Response:
        return _json({**dashboard_state(self.view), "writes": bool(self.token)})

    # ------------------------------------------------------------ writes
    async def _add_pool(self, request: web.Request) -> web.Response:
        if (denied := token_refusal(request, self.token)) is not None:
            return denied
        try:
            body = await request.json()
            url, user, password = str(body["url"]).strip(), str(body.get("user", "")), str(body.get("password", ""))
        except (ValueError, KeyError, TypeError):
            return _json({"error": 'send JSON like {"url": "stratum+tcp://HOST:PORT", "user": "U", "password": "x"}'},
                         status=400)
        try:
            index = self.view.add_pool(url, user, password)
        except CommandError as exc:
            return _json({"error": str(exc)}, status=409)
        return _json({"ok": True, "index": index})

    async def _restart(self, request: web.Request) -> web.Response:
        if (denied := token_refusal(request, self.token)) is not None:
            return denied
        self.view.restart()
        return _json({"ok": True, "message": "restarting"})

    async def _quit(self, request: web.Request) -> web.Response:
        if (denied := token_refusal(request, self.token)) is not None:
            return denied
        self.view.quit()
        return _json({"ok": True, "message": "stopping"})
