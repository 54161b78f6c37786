"""REST (JSON) and Prometheus metrics over HTTP (`--http 127.0.0.1:8080`), served by aiohttp.

Reads are open to whoever can reach the port (it binds loopback unless told otherwise); writes
need `Authorization: Bearer TOKEN` with the `--http-token` given at start, and are off without one.
No CORS headers: a web page elsewhere cannot drive the miner from a visitor's browser.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from miner.frontends import axeos
from miner.frontends.dashboard.server import Dashboard, same_origin_writes
from miner.frontends.listen_limits import (
    HEADER_TIMEOUT,
    ConnectionGate,
    GatedProtocol,
    RefusedProtocol,
    connection_cap,
)
from miner.frontends.view import MOVE_BAD, CommandError, MinerView

MAX_CONNECTIONS = 128  # per listener (fewer under a low descriptor limit: listen_limits.py)
log = logging.getLogger(__name__)

def parse_listen(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """`HOST:PORT`, `PORT` or `[IPV6]:PORT`; ValueError naming the problem."""
    value = text.strip()
    host, port = default_host, value
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.lstrip(":")
    elif ":" in value:
        host, _, port = value.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"--http {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"--http {text!r}: port {number} out of range")
    return host or default_host, number


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # default=str: a driver's details() may hold values JSON has no type for
    return web.json_response(data, status=status, headers=headers, dumps=partial(json.dumps, default=str))


def _plain(obj: Any) -> Any:
    """A snapshot as JSON-ready data (Counters become objects)."""
    if dataclasses.is_dataclass(obj):
        out = {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        for name in ("rejected_total",):
            if hasattr(obj, name):
                out[name] = getattr(obj, name)
        return out
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


# Every state a device or pool can be in, so each state gauge keeps all of its series across changes
# (a labelled 0/1 gauge per state, as the Prometheus naming guide asks for enum states).
DEVICE_STATES = ("Initialising", "Alive", "Sick", "Dead", "NoDevice", "Disabled")
POOL_STATES = ("Alive", "Dead", "Connecting", "Disabled")


class MinerCollector(Collector):
    """The miner's numbers as Prometheus metrics, read fresh on every scrape.

    Base units as the Prometheus naming guide asks (hash rate and frequency in `_hertz`, temperature in
    `_celsius`, voltage in `_volts`), monotonic totals as counters (exposed as `_total`), and states as
    0/1 gauges with a `state` label that exist for every state, so no series appears or vanishes when a
    device or pool changes state.
    """

    def __init__(self, view: MinerView):
        self.view = view

    def collect(self) -> Iterator[Any]:
        view = self.view
        summary = view.summary()
        devices = view.device_snapshots()
        pools = view.pool_snapshots()

        rate = GaugeMetricFamily("miner_hashrate_hertz", "Hash rate per device (hashes per second)",
                                 labels=["device", "driver", "window"])
        total_rate = GaugeMetricFamily("miner_total_hashrate_hertz", "Hash rate of all devices",
                                       labels=["window"])
        for window, attr in (("5s", "rate_5s"), ("20s", "rate_20s"), ("1m", "rate_1m"), ("5m", "rate_5m"),
                             ("15m", "rate_15m"), ("avg", "rate_avg")):
            for d in devices:
                rate.add_metric([d.name, d.driver, window], getattr(d, attr))
            total_rate.add_metric([window], getattr(summary, attr))
        yield rate
        yield total_rate

        hashes = CounterMetricFamily("miner_hashes", "Hashes done (estimated from nonces for ASICs)",
                                     labels=["device"])
        hw = CounterMetricFamily("miner_hardware_errors", "Nonces that failed the device target",
                                 labels=["device"])
        up = GaugeMetricFamily("miner_device_up", "1 when the device is Alive", labels=["device"])
        state = GaugeMetricFamily("miner_device_state", "1 for the state the device is in, 0 for the others",
                                  labels=["device", "state"])
        temperature = GaugeMetricFamily("miner_device_temperature_celsius", "Device temperature",
                                        labels=["device"])
        frequency = GaugeMetricFamily("miner_device_frequency_hertz", "Chip frequency", labels=["device"])
        voltage = GaugeMetricFamily("miner_device_voltage_volts", "Core voltage", labels=["device"])
        device_shares = CounterMetricFamily("miner_device_shares", "Shares per device by result",
                                            labels=["device", "result"])
        diff1 = CounterMetricFamily("miner_device_diff1_work", "Difficulty-1 work found (cgminer's Diff1 Work)",
                                    labels=["device"])
        for d in devices:
            hashes.add_metric([d.name], d.total_hashes)
            hw.add_metric([d.name], d.hw_errors)
            up.add_metric([d.name], 1.0 if d.state == "Alive" else 0.0)
            for name in DEVICE_STATES:
                state.add_metric([d.name, name], 1.0 if d.state == name else 0.0)
            device_shares.add_metric([d.name, "accepted"], d.accepted)
            device_shares.add_metric([d.name, "rejected"], d.rejected_total)
            diff1.add_metric([d.name], d.diff1)
            if d.temperature is not None:
                temperature.add_metric([d.name], d.temperature)
            if d.frequency is not None:
                frequency.add_metric([d.name], d.frequency * 1e6)
            if d.voltage is not None:
                voltage.add_metric([d.name], d.voltage)
        yield from (hashes, hw, up, state, temperature, frequency, voltage, device_shares, diff1)
        yield from chip_counter_metrics(devices)

        shares = CounterMetricFamily("miner_shares", "Shares by result", labels=["result"])
        shares.add_metric(["accepted"], summary.accepted)
        shares.add_metric(["rejected"], summary.rejected_total)
        shares.add_metric(["stale"], summary.stale)
        yield shares
        difficulty = CounterMetricFamily("miner_share_difficulty", "Summed share difficulty by result",
                                         labels=["result"])
        difficulty.add_metric(["accepted"], summary.accepted_difficulty)
        difficulty.add_metric(["rejected"], summary.rejected_difficulty)
        difficulty.add_metric(["stale"], summary.stale_difficulty)
        yield difficulty
        rejects = CounterMetricFamily("miner_rejected_shares", "Rejected shares by the pool's reason",
                                      labels=["pool", "reason"])
        for p in pools:
            for reason, count in p.rejected.items():
                rejects.add_metric([p.name, reason], count)
        if not pools:
            for reason, count in summary.rejected.items():
                rejects.add_metric(["", reason], count)
        yield rejects
        best = GaugeMetricFamily("miner_best_share_difficulty", "Best share difficulty", labels=["scope"])
        best.add_metric(["session"], summary.best_session)
        best.add_metric(["all_time"], summary.best_all_time)
        yield best
        yield CounterMetricFamily("miner_hardware_errors_all", "Hardware errors of all devices",
                                  value=summary.hw_errors)
        yield CounterMetricFamily("miner_jobs", "Jobs received from the sources (cgminer's Getworks)",
                                  value=summary.getworks)
        yield CounterMetricFamily("miner_network_blocks", "Block changes seen (cgminer's Network Blocks)",
                                  value=summary.network_blocks)
        yield GaugeMetricFamily("miner_uptime_seconds", "Seconds since the miner started", value=summary.elapsed)

        pool_up = GaugeMetricFamily("miner_pool_up", "1 when the pool is connected and sending work",
                                    labels=["pool", "url"])
        pool_state = GaugeMetricFamily("miner_pool_state", "1 for the state the pool is in, 0 for the others",
                                       labels=["pool", "url", "state"])
        pool_active = GaugeMetricFamily("miner_pool_active", "1 for the pool the devices mine on",
                                        labels=["pool", "url"])
        pool_diff = GaugeMetricFamily("miner_pool_difficulty", "Share difficulty the pool asks for",
                                      labels=["pool", "url"])
        pool_shares = CounterMetricFamily("miner_pool_shares", "Shares per pool by result",
                                          labels=["pool", "url", "result"])
        latency = GaugeMetricFamily("miner_pool_submit_latency_seconds", "Last submit round trip",
                                    labels=["pool", "url"])
        # the protocol as an info metric, so the other families keep their label sets (docs/sv2.md §6)
        pool_info = GaugeMetricFamily("miner_pool_info", "Always 1: the pool's protocol (stratum1 or stratum2)",
                                      labels=["pool", "url", "protocol"])
        for p in pools:
            labels = [p.name, p.url]
            pool_info.add_metric([*labels, p.protocol], 1.0)
            pool_up.add_metric(labels, 1.0 if p.alive else 0.0)
            for name in POOL_STATES:
                pool_state.add_metric([*labels, name], 1.0 if p.state == name else 0.0)
            pool_active.add_metric(labels, 1.0 if p.active else 0.0)
            pool_diff.add_metric(labels, p.difficulty)
            for result, count in (("accepted", p.accepted), ("rejected", p.rejected_total), ("stale", p.stale)):
                pool_shares.add_metric([*labels, result], count)
            if p.latency is not None:
                latency.add_metric(labels, p.latency)
        yield from (pool_info, pool_up, pool_state, pool_active, pool_diff, pool_shares, latency)
        yield from worker_metrics(view.worker_snapshots())
        yield from payout_metrics(pools)


def worker_metrics(workers: list[dict[str, Any]]) -> Iterator[Any]:
    """`miner serve`'s downstream workers (docs/serve.md §5): none when not serving."""
    if not workers:
        return
    rate = GaugeMetricFamily("miner_serve_worker_hashrate_hertz", "Downstream worker hash rate from its shares",
                             labels=["worker"])
    diff = GaugeMetricFamily("miner_serve_worker_difficulty", "Downstream worker's current difficulty",
                             labels=["worker"])
    shares = CounterMetricFamily("miner_serve_worker_shares", "Downstream shares by result",
                                 labels=["worker", "result"])
    best = GaugeMetricFamily("miner_serve_worker_best_share", "Best share difficulty", labels=["worker"])
    conns = GaugeMetricFamily("miner_serve_worker_connections", "Open connections", labels=["worker"])
    info = GaugeMetricFamily("miner_serve_worker_info", "Downstream worker's protocol (stratum1, stratum2); always 1",
                             labels=["worker", "protocol"])
    for w in workers:
        info.add_metric([w["name"], w.get("protocol", "stratum1")], 1)
        name = [w["name"]]
        rate.add_metric(name, w["hashrate"])
        diff.add_metric(name, w["difficulty"])
        shares.add_metric([*name, "accepted"], w["accepted"])
        for reason, n in w["rejected"].items():
            shares.add_metric([*name, f"rejected: {reason}"], n)
        shares.add_metric([*name, "forwarded"], w["forwarded"])
        best.add_metric(name, w["best_difficulty"])
        conns.add_metric(name, w["connections"])
    yield from (rate, diff, shares, best, conns, info)


def chip_counter_metrics(devices: list[Any]) -> Iterator[Any]:
    """Per-chip figures from the chips' own hash and error counters (BM1366/68/70: details()'s
    "Per Chip" entries, drivers/bm13xx/counters.py), where a driver reports them."""
    rate = GaugeMetricFamily("miner_chip_counter_hashrate_hertz", "Hash rate from the chip's own counters",
                             labels=["device", "chip"])
    domain = GaugeMetricFamily("miner_chip_domain_hashrate_hertz", "Hash rate of one hash domain, from its counter",
                               labels=["device", "chip", "domain"])
    errors = GaugeMetricFamily("miner_chip_error_percent", "The chip's errors as a share of its results",
                               labels=["device", "chip"])
    for d in devices:
        chips = d.details.get("Per Chip")
        if not isinstance(chips, list):
            continue
        for n, chip in enumerate(chips):
            if not isinstance(chip, dict):
                continue
            if isinstance(chip.get("Counter Hashrate"), int | float):
                rate.add_metric([d.name, str(n)], chip["Counter Hashrate"])
            for k, value in enumerate(chip.get("Domain Hashrates") or []):
                if isinstance(value, int | float):
                    domain.add_metric([d.name, str(n), str(k)], value)
            if isinstance(chip.get("Error %"), int | float):
                errors.add_metric([d.name, str(n)], chip["Error %"])
    yield from (rate, domain, errors)


def metrics_registry(view: MinerView) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MinerCollector(view))
    return registry


def metrics_text(view: MinerView) -> bytes:
    return generate_latest(metrics_registry(view))


def metrics_for(view: MinerView, accept: str | None) -> tuple[bytes, str]:
    """The exposition the scraper asked for: OpenMetrics when its Accept header names
    application/openmetrics-text, the Prometheus text format otherwise (prometheus_client decides)."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(metrics_registry(view)), content_type


class HttpServer:
    def __init__(self, view: MinerView, host: str = "127.0.0.1", port: int = 8080, token: str | None = None):
        self.view = view
        self.host = host
        self.port = port
        self.token = token
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.base_events.Server | None = None
        self.gate = ConnectionGate(f"HTTP {host}:{port}", connection_cap(MAX_CONNECTIONS))

    def app(self) -> web.Application:
        # every write passes the same-origin check before its token check (docs/dashboard.md §4)
        app = web.Application(client_max_size=64 * 1024, middlewares=[same_origin_writes(self.host)])
        app.add_routes([
            web.get("/api/summary", self._summary), web.get("/api/devices", self._devices),
            web.get("/api/pools", self._pools), web.get("/api/history", self._history),
            web.get("/api/workers", self._workers),
            web.get("/api/serve", self._serve),
            web.get("/metrics", self._metrics),
            # the AxeOS read endpoints fleet tools identify a miner by (miner/frontends/axeos.py says why)
            web.get("/api/system/info", self._axeos(axeos.system_info)),
            web.get("/api/system/asic", self._axeos(axeos.system_asic)),
            web.get("/api/system/statistics", self._axeos(axeos.system_statistics)),
            web.post("/api/pools/{index}/{action}", self._pool_action),
            web.post("/api/devices/{index}/{action}", self._device_action),
            web.post("/api/workers/reconnect", self._workers_reconnect),
        ])
        # GET / is the dashboard page (it names AxeOS, which pyasic's factory identifies the API by)
        Dashboard(self.view, self.token).install(app)
        return app

    async def start(self) -> int:
        # aiohttp's keep-alive timer runs from the connection's start, so it is also the limit for
        # a request's headers to arrive (idle and trickling clients alike; its default is an hour).
        self._runner = web.AppRunner(self.app(), access_log=None, keepalive_timeout=HEADER_TIMEOUT)
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        gate = self.gate

        def protocol() -> asyncio.Protocol:  # not TCPSite: it has no connection cap
            return GatedProtocol(server(), gate) if gate.admit() else RefusedProtocol()

        self._listener = await asyncio.get_running_loop().create_server(protocol, self.host, self.port)
        self.port = self._listener.sockets[0].getsockname()[1]  # the port the system chose for port 0
        log.info("HTTP API and /metrics on http://%s:%d/ (writes %s)", self.host, self.port,
                 "need the bearer token" if self.token else "disabled: no --http-token")
        return self.port

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------ reads
    async def _summary(self, request: web.Request) -> web.Response:
        return _json(_plain(self.view.summary()))

    async def _devices(self, request: web.Request) -> web.Response:
        return _json(_plain(self.view.device_snapshots()))

    async def _pools(self, request: web.Request) -> web.Response:
        return _json(_plain(self.view.pool_snapshots()))

    async def _serve(self, request: web.Request) -> web.Response:
        """`miner serve`'s listeners, and the stratum2+tcp:// URL downstream V2 miners use (docs/serve.md §10)."""
        return _json(self.view.serve_info())

    async def _workers(self, request: web.Request) -> web.Response:
        """`miner serve`'s downstream workers (docs/serve.md §5); [] when not serving."""
        return _json(self.view.worker_snapshots())

    async def _history(self, request: web.Request) -> web.Response:
        """The persisted hash-rate rings ([unix time, H/s] per point), best shares and rejects."""
        store = self.view.store
        if store is None:
            return _json({"error": "no statistics store"}, status=404)
        data = store.as_dict()
        data.pop("format", None)
        return _json(data)

    async def _metrics(self, request: web.Request) -> web.Response:
        body, content_type = metrics_for(self.view, request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type})

    def _axeos(self, build: Callable[[MinerView], dict[str, Any]]) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            return _json(build(self.view))
        return handler

    # ------------------------------------------------------------ writes
    def _authorised(self, request: web.Request) -> web.Response | None:
        if not self.token:
            return _json({"error": "writes are disabled; start the miner with --http-token TOKEN"},
                                     status=403)
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return _json({"error": "missing or wrong bearer token"}, status=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        return None

    @staticmethod
    def _index(request: web.Request) -> int:
        try:
            return int(request.match_info["index"])
        except ValueError:
            raise web.HTTPNotFound() from None

    async def _pool_action(self, request: web.Request) -> web.Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        index, action = self._index(request), request.match_info["action"]
        actions = {"switch": self.view.switch_pool, "enable": self.view.enable_pool,
                   "disable": self.view.disable_pool, "remove": self.view.remove_pool}
        if action not in actions:
            return _json({"error": f"unknown action {action!r} (have {', '.join(actions)})"},
                                     status=404)
        try:
            actions[action](index)
        except CommandError as exc:
            return _json({"error": str(exc)}, status=409)
        return _json({"ok": True, "pools": _plain(self.view.pool_snapshots())})

    async def _device_action(self, request: web.Request) -> web.Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        index, action = self._index(request), request.match_info["action"]
        try:
            if action == "frequency":
                try:
                    body = await request.json()
                    mhz = body["mhz"]
                except (ValueError, KeyError, TypeError, RecursionError):
                    return _json({"error": 'send JSON like {"mhz": 500}'}, status=400)
                if isinstance(mhz, str):  # "500" as cgminer's ascset takes it; "nan" is refused below
                    try:
                        mhz = float(mhz)
                    except ValueError:
                        return _json({"error": f'mhz {mhz[:40]!r} is not a number; send JSON like {{"mhz": 500}}'},
                                     status=400)
                self.view.set_frequency(index, mhz)
            elif action == "enable":
                self.view.enable_device(index)
            elif action == "disable":
                self.view.disable_device(index)
            else:
                return _json({"error": f"unknown action {action!r} (frequency, enable, disable)"},
                                         status=404)
        except CommandError as exc:
            return _json({"error": str(exc)}, status=409)
        return _json({"ok": True, "device": _plain(self.view.device_snapshots()[index])})

    async def _workers_reconnect(self, request: web.Request) -> web.Response:
        """`miner serve`: client.reconnect to downstream workers (docs/serve.md §9)."""
        if (denied := self._authorised(request)) is not None:
            return denied
        hint = ('send JSON like {"host": "10.0.0.2", "port": 3333, "wait": 0, "worker": "alice.1"} '
                "(wait and worker optional)")
        try:
            body = await request.json()
        except (ValueError, RecursionError):
            return _json({"error": hint}, status=400)
        if not isinstance(body, dict) or "host" not in body or "port" not in body:
            return _json({"error": hint}, status=400)
        try:
            moved = self.view.reconnect_workers(body["host"], body["port"], body.get("wait", 0), body.get("worker"))
        except CommandError as exc:
            return _json({"error": str(exc)}, status=400 if exc.code == MOVE_BAD else 409)
        return _json({"ok": True, "moved": moved})


def payout_metrics(pools: list) -> list:
    """Who each pool's coinbase pays (docs/payout.md §2): the percent to the expected address (or, when
    unchecked, to the biggest output) and whether the check passes."""
    percent = GaugeMetricFamily("miner_pool_payout_percent", "Percent of the coinbase paid to the payout address "
                                "(unchecked pools: to the biggest output)",
                                labels=["pool", "url", "address", "checked"])
    ok = GaugeMetricFamily("miner_pool_payout_ok", "1 when the pool's newest job passes the payout check",
                           labels=["pool", "url"])
    for p in pools:
        if not p.payout:
            continue
        percent.add_metric([p.name, p.url, p.payout_address, "1" if p.payout_checked else "0"], p.payout_percent)
        ok.add_metric([p.name, p.url], 1.0 if p.payout_ok else 0.0)
    return [percent, ok]
