"""The one composition root: settings and a job source kind in, a running miner out.

Every way of mining goes through `run`: `miner` (pools, or the sandbox when there is none),
`miner solo` (a node over getblocktemplate) and the library's `run_solo`. It builds the job source,
the dispatcher, the device manager (with the CPU device), the `Miner` engine, and the front ends a
person uses: the cgminer API, REST and `/metrics`, the live view or plain log lines, and the saved
statistics. The first Ctrl-C or SIGTERM stops cleanly (devices stop, pending shares are sent,
statistics saved); a second one exits at once. A restart asked for over an API re-executes the
process with the same command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from miner import USER_AGENT
from miner.app.settings import Settings, pool_configs

T = TypeVar("T")

if TYPE_CHECKING:
    from miner.app.serve import ServeOptions
    from miner.core.engine import Miner
    from miner.core.source import JobSource
    from miner.devices.base import DeviceSpec
    from miner.devices.manager import DeviceManager
    from miner.devices.work_source import WorkSource
    from miner.sources.node.gbt import GbtSource

log = logging.getLogger("miner")

POOLS, NODE, SANDBOX = "pools", "node", "sandbox"
STATS_SAVE_INTERVAL = 60.0


def setup_logging(quiet: bool = False, debug: bool = False, notes: tuple[str, ...] = ()) -> None:
    from miner.app.logformat import LineFormatter

    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LineFormatter())  # the live view's handler prints the same format (live_status)
    logging.basicConfig(level=level, handlers=[handler])
    for note in notes:
        log.info("%s", note)


def source_kind(settings: Settings) -> str:
    """`miner` mines its pools (command line or file), a node when -o named one the cgminer way
    (`-o http://NODE:PORT --btc-address ADDR`), or the sandbox when it has none."""
    if settings.node.rpc_url and settings.pools_from == "node":
        return NODE
    return POOLS if pool_configs(settings) else SANDBOX


@dataclass
class Outcome:
    source: Any  # the job source, with its counts
    restart: bool = False
    all_dead: bool = False  # it stopped because every device was Dead


# ------------------------------------------------------------------------------------ building
def make_device_manager(settings: Settings, work: WorkSource, on_nonce: Callable,
                        cpu_chunk: int | None = None) -> DeviceManager:
    """Devices from --device, USB detection and the CPU flags; one-line error on a bad spec."""
    from miner.app.cgminer_flags import model_defaults, with_defaults
    from miner.app.config import configured_drivers
    from miner.devices.base import DeviceSpec
    from miner.devices.cpu import DEFAULT_CHUNK, CpuDevice
    from miner.devices.manager import DeviceManager, load_drivers

    devices = settings.devices
    drivers = configured_drivers(load_drivers(), settings.file)  # the config file's per-driver options
    # cgminer's per-driver flags (--gekko-compacf-freq ...) and bfgminer's --set-device
    drivers = with_defaults(drivers, model_defaults(settings.cgminer.driver_flags, settings.cgminer.set_device))
    specs = [with_temp_cutoff(DeviceSpec.parse(text), devices.temp_cutoff, drivers) for text in devices.specs]
    return DeviceManager(work, on_nonce, specs, drivers=drivers, hotplug=devices.hotplug or 5.0,
                         scan_usb="noauto" not in (s.lower() for s in settings.cgminer.scan_serial),
                         cpu=devices.cpu,
                         cpu_factory=lambda: CpuDevice(work, on_nonce, devices.threads, devices.engine,
                                                       chunk=cpu_chunk or DEFAULT_CHUNK))


def with_temp_cutoff(spec: DeviceSpec, cutoff: float | None, drivers: dict) -> DeviceSpec:
    """--temp-cutoff as the default of the per-device temp_cutoff= of drivers that have one."""
    from miner.devices.base import DeviceSpec

    driver = drivers.get(spec.driver)
    if cutoff is None or driver is None or driver.name != "bitaxe_raw" or "temp_cutoff" in spec.options:
        return spec
    return DeviceSpec(spec.driver, spec.port, {**spec.options, "temp_cutoff": str(cutoff)})


def check_node_settings(settings: Settings):
    """Everything about solo mining that can be checked without the node; ValueError with one line.
    Returns the decoded payout address (AddressError, a ValueError, when it is not one)."""
    from miner.devices.base import DeviceSpec
    from miner.sources.node.address import decode_address
    from miner.sources.node.rpc import parse_rpc_url
    from miner.sources.node.template import MAX_TAG

    node = settings.node
    parse_rpc_url(node.rpc_url)
    for spec in settings.devices.specs:
        DeviceSpec.parse(spec)
    if len(node.coinbase_tag.encode()) > MAX_TAG:
        raise ValueError(f"--coinbase-tag: {len(node.coinbase_tag.encode())} bytes, at most {MAX_TAG}")
    return decode_address(node.address)


def make_source(settings: Settings, kind: str) -> JobSource:
    if kind == POOLS:
        from miner.sources.stratum.failover import PoolManager

        configs = pool_configs(settings)
        if settings.cgminer.expiry is not None:
            configs = [dataclasses.replace(c, expiry=settings.cgminer.expiry) for c in configs]
        return PoolManager(configs, switch_delay=settings.pools.failover_switch_delay,
                           picker=make_picker(settings, configs), slice_seconds=settings.cgminer.slice_seconds)
    if kind == SANDBOX:
        from miner.sources.sandbox import DEFAULT_SANDBOX_DIFFICULTY, SandboxSource

        return SandboxSource(settings.run.sandbox_diff or DEFAULT_SANDBOX_DIFFICULTY)
    if kind == NODE:
        from miner.sources.node.gbt import GbtSource
        from miner.sources.node.rpc import RpcClient

        node = settings.node
        payout = check_node_settings(settings)
        rpc = RpcClient(node.rpc_url, node.rpc_user, node.rpc_password, node.rpc_cookie, timeout=node.rpc_timeout)
        return GbtSource(rpc, payout, node.coinbase_tag.encode(), refresh_interval=node.refresh_interval,
                         poll_interval=node.poll_interval, retry_cap=node.retry_cap)
    raise ValueError(f"unknown job source kind {kind!r}")


def make_picker(settings: Settings, configs: list) -> Any:
    """cgminer's pool strategy (docs/cli.md §3); None for failover, which PoolManager does itself."""
    from miner.sources.stratum.strategy import PoolPicker, Strategy

    strategy = Strategy(settings.cgminer.strategy)
    if strategy is Strategy.FAILOVER:
        return None
    return PoolPicker(strategy, [c.quota for c in configs], rotate_seconds=60.0 * (settings.cgminer.rotate or 0),
                      failover_only=settings.cgminer.failover_only)


async def prepare_node(source: GbtSource) -> int:
    """Wait for the node's chain and first template; the CPU chunk size that template's target asks for."""
    from miner.sources.node.gbt import chunk_for_target

    chain = await source.connect()
    log.info("node %s: chain %s; paying %s (%s)", source.rpc, chain, source.payout.text, source.payout.kind)
    return chunk_for_target((await source.first_template()).target)


def announce(kind: str, source: Any, miner: Miner, settings: Settings) -> None:
    names = ", ".join(f"{d.name}{f' ({d.model})' if d.model else ''}" for d in miner.devices)
    if kind == POOLS:
        log.info("%s: mining on %d pool(s) with %s", USER_AGENT, len(pool_configs(settings)), names)
    elif kind == SANDBOX:
        log.info("%s: no pool given, mining a local sandbox job at difficulty %s on %s", USER_AGENT,
                 source.difficulty, names)
        log.info("to mine on a pool: miner -o stratum+tcp://HOST:PORT -u USER -p PASS")
    else:
        log.info("%s: solo mining at height %s on %s", USER_AGENT, source.height,
                 ", ".join(d.name for d in miner.devices))


# ------------------------------------------------------------------------------------ running
async def run(settings: Settings, kind: str, max_blocks: int | None = None,
              on_source: Callable[[Any], object] | None = None, serving: ServeOptions | None = None) -> Outcome:
    """Build everything for `kind` and mine until the time limit, a stop or cancellation.

    Raises ValueError for bad settings, DeviceError when no device can mine, AddressError when the
    payout address is not for the node's chain; node and pool trouble is retried, not raised.
    on_source(source) is called once the source exists (to watch it while it runs); max_blocks
    stops a node source after that many accepted blocks (tests, scripted use). serving: `miner
    serve`'s options; the engine then mines the source through a Stratum server (served_source).
    """
    from miner.core.dispatch import Dispatcher
    from miner.core.engine import Miner
    from miner.core.work import Nonce
    from miner.devices.base import DeviceError
    from miner.devices.work_source import DispatcherWorkSource

    source = make_source(settings, kind)
    payout = attach_payout(settings, source)
    if on_source is not None:
        on_source(source)
    loop = asyncio.get_running_loop()
    time_limit = settings.run.time_limit
    deadline = None if time_limit is None else loop.time() + time_limit
    chunk = None
    if kind == NODE:
        try:
            async with asyncio.timeout(time_limit):
                chunk = await until_signal(prepare_node(source))
        except TimeoutError:
            log.warning("no template from the node within the time limit")
            return Outcome(source)
        if chunk is None:
            return Outcome(source)  # stopped by a signal while waiting for the node
    dispatcher = Dispatcher()
    miner: Miner

    def on_nonce(nonce: Nonce) -> None:  # device threads
        if kind == NODE:
            work = dispatcher.lookup(nonce.work_id)
            if work is not None and not source.wants(work.job.job_id):
                return  # its job already has a block on the way: nothing found on it can be used
        miner.on_nonce(nonce)

    manager = make_device_manager(settings, DispatcherWorkSource(dispatcher), on_nonce, chunk)
    try:
        devices = manager.setup()  # DeviceError (one line) when nothing can mine
    except DeviceError:
        if serving is None:
            raise
        devices = []  # `miner serve --no-cpu` with no board: a proxy (or pool) for the LAN only
        log.info("no local devices: serving downstream miners only")
    if not settings.devices.hotplug:
        manager.scan_usb = False
    engine_source = source if serving is None else served_source(source, serving)
    miner = Miner(engine_source, devices, dispatcher, settings.run.status_interval, manager=manager)
    attach_local_devices(source, miner)
    if max_blocks is not None and kind == NODE:
        def enough(share: object, accepted: bool, reason: str | None) -> None:
            if accepted and source.stats.accepted >= max_blocks:
                miner.request_stop()
        source.result_listeners.append(enough)
    announce(kind, source, miner, settings)
    remaining = None if deadline is None else max(0.0, deadline - loop.time())
    restart = await serve(miner, settings, remaining, downstream=serving is not None, payout=payout)
    return Outcome(source, restart, all_dead=every_device_dead(miner.devices))


def attach_local_devices(source: JobSource, miner: Any) -> None:
    """Tell the pools which local devices mine (a Stratum V2 pool with only standard channels gets
    one channel per device, docs/sv2.md §8): enabled, present and not given up on."""
    from miner.devices.bookkeeping import DeviceState
    from miner.sources.stratum.failover import PoolManager

    if isinstance(source, PoolManager):
        gone = (DeviceState.NO_DEVICE, DeviceState.DISABLED, DeviceState.DEAD)
        source.local_devices = lambda: tuple(d.name for d in miner.devices
                                             if d.enabled and d.stats.state not in gone)


def served_source(source: JobSource, serve: ServeOptions) -> JobSource:
    """`miner serve`: the source with a Stratum server beside it (miner/server/served.py)."""
    from miner.server.served import ServedSource

    return ServedSource(source, serve.host, serve.port, password=serve.password,
                        shares_per_minute=serve.shares_per_minute, start_difficulty=serve.start_difficulty,
                        min_difficulty=serve.min_difficulty, max_connections=serve.max_connections,
                        sv2=sv2_listen(serve))


def sv2_listen(serve: ServeOptions) -> Any:
    """`--listen-sv2`: the keys (made on first use) and where to listen (docs/serve.md §10).
    A key file that cannot be used is a ValueError with one line."""
    if serve.listen_sv2 is None:
        return None
    from pathlib import Path

    from miner.server.served import Sv2Listen
    from miner.server.sv2_keys import load_identity

    identity = load_identity(Path(serve.sv2_authority_key).expanduser() if serve.sv2_authority_key else None)
    if identity.created:
        log.warning("made a new Stratum V2 authority key in %s (keep it: downstream miners trust its public key)",
                    identity.authority_path)
    return Sv2Listen(serve.listen_sv2[0], serve.listen_sv2[1], identity, serve.sv2_share_batch,
                     serve.sv2_cert_validity)


async def until_signal(step: Awaitable[T]) -> T | None:
    """Await a start-up step (waiting for the node) that the first SIGINT or SIGTERM cancels:
    None then, and the miner exits 0 as after a stop while mining, not killed by the signal."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(step)
    stopped_by: list[str] = []

    def on_signal(signum: int) -> None:
        stopped_by.append(signal.Signals(signum).name)
        task.cancel()

    installed = []
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows, not off the main thread
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
    try:
        return await task
    except asyncio.CancelledError:
        if not stopped_by:
            raise
        log.warning("%s: stopping before mining started", stopped_by[0])
        return None
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def api_host_and_allow(settings: Settings) -> tuple[str, list]:
    from miner.frontends.cgminer import DEFAULT_ALLOW, parse_allow

    if settings.operating.api_allow:
        return "0.0.0.0", parse_allow(settings.operating.api_allow)
    return "127.0.0.1", parse_allow(DEFAULT_ALLOW)


async def save_periodically(store, view) -> None:
    from miner.frontends.persist import observe_view

    while True:
        await asyncio.sleep(STATS_SAVE_INTERVAL)
        observe_view(store, view)
        await asyncio.to_thread(store.save)


def every_device_dead(devices: list) -> bool:
    from miner.devices.bookkeeping import DeviceState

    return bool(devices) and all(d.stats.state is DeviceState.DEAD for d in devices)


async def stop_when_all_dead(miner: Miner, interval: float = 1.0) -> None:
    """A miner whose every device is Dead (not this hardware, failed identification) cannot mine:
    say so once and stop, so `main` exits non-zero instead of sitting at 0 H/s."""
    while True:
        await asyncio.sleep(interval)
        if every_device_dead(miner.devices):
            why = "; ".join(f"{d.name}: {d.stats.last_error or 'dead'}" for d in miner.devices)
            log.error("every device is Dead (%s); nothing can mine, stopping. Check --device DRIVER:PORT "
                      "(miner devices lists the ports)", why)
            miner.request_stop()
            return


async def listen_or_carry_on(server: Any, what: str, attempts: int = 3, wait: float = 30.0) -> None:
    """Start one front end; if its port is busy, say so in one line and keep mining without it,
    trying again for a minute as cgminer's api.c does (bind fails: "API bind to port %d failed -
    trying again in 30sec", then gives up after 61 s and mining goes on)."""
    for attempt in range(attempts):
        try:
            await server.start()
            if attempt:
                log.warning("%s now listening on port %s", what, server.port)
            return
        except OSError as exc:
            reason = exc.strerror or str(exc)
            await server.stop()  # whatever the failed start had set up
            if attempt + 1 < attempts:
                log.error("cannot listen for the %s on port %s: %s (another miner running?); mining goes on "
                          "without it, trying again in %.0f s", what, server.port, reason, wait)
                await asyncio.sleep(wait)
            else:
                log.error("cannot listen for the %s on port %s: %s; given up, mining goes on without it "
                          "(choose another port)", what, server.port, reason)


async def serve(miner: Miner, settings: Settings, time_limit: float | None = None, downstream: bool = False,
                payout=None) -> bool:
    """Run the miner with its front ends until it stops; True when a restart was asked for.
    downstream: `miner serve`, which goes on serving when its own devices are all Dead."""
    from miner.core.lograte import limit_foreign_repeats
    from miner.frontends.persist import StatsStore, default_stats_path, observe_view
    from miner.frontends.view import MinerView

    operating = settings.operating
    restart = False

    def ask_restart() -> None:
        nonlocal restart
        restart = True
        miner.request_stop()

    limit_foreign_repeats()  # asyncio's "accept() out of system resource" once per 10 s, not per try
    store = StatsStore(operating.stats_file or default_stats_path())
    await asyncio.to_thread(store.load)
    shown = {"API Listen": bool(operating.api_listen), "API Port": operating.api_port, "HTTP": operating.http or ""}
    view = MinerView(miner, store, on_restart=ask_restart, config=shown, payout=payout)
    if settings.cgminer.api_description:
        view.api_description = settings.cgminer.api_description
    servers: list[tuple[Any, str]] = []
    if operating.api_listen:
        from miner.frontends.cgminer import ApiServer

        host, allow = api_host_and_allow(settings)
        servers.append((ApiServer(view, host, operating.api_port, allow), "cgminer API"))
    if operating.http:
        from miner.frontends.http import HttpServer, parse_listen

        host, port = parse_listen(operating.http)
        servers.append((HttpServer(view, host, port, operating.http_token), "HTTP API"))
    listeners = [asyncio.create_task(listen_or_carry_on(server, what)) for server, what in servers]
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    interrupted = 0
    alerts: AlertRuntime | None = None

    def on_signal(signum: int) -> None:
        nonlocal interrupted
        interrupted += 1
        if interrupted > 1:
            log.warning("second interrupt: exiting now")
            os._exit(130)
        log.warning("%s: stopping devices, sending pending shares, saving statistics (again to exit now)",
                    signal.Signals(signum).name)
        if alerts is not None:
            alerts.stopping()  # sd_notify STOPPING=1 as the stop begins
        miner.request_stop()

    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows, not off the main thread
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
    saver = asyncio.create_task(save_periodically(store, view))
    alerts = await start_alerts(settings, miner, view, payout)
    # `miner serve` goes on for its downstream miners when its own devices are all Dead
    watchers = [*([] if downstream else [asyncio.create_task(stop_when_all_dead(miner))]), *listeners]
    live = live_status(view, settings)
    try:
        with live if live is not None else contextlib.nullcontext():
            await miner.run(time_limit if time_limit is not None else settings.run.time_limit)
    finally:
        await alerts.stop()
        saver.cancel()
        for task in watchers:
            task.cancel()
        await asyncio.gather(saver, *watchers, return_exceptions=True)
        for server, _ in servers:
            await server.stop()
        observe_view(store, view)
        await asyncio.to_thread(store.save)
        log.info("statistics saved to %s (best share all time %g)", store.path, store.best_all_time)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
    return restart


def live_status(view, settings: Settings):
    """The rich live view when stderr is a terminal and not --no-tui; None for plain log lines."""
    if settings.operating.no_tui or settings.run.quiet or not sys.stderr.isatty():
        return None
    from rich.console import Console

    from miner.app.logformat import LineFormatter
    from miner.frontends.status import ConsoleHandler, LiveStatus

    console = Console(stderr=True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler:  # stderr lines only: --log-file and --syslog stay
            root.removeHandler(handler)
    handler = ConsoleHandler(console)  # above the live table, in the format of the plain lines
    handler.setFormatter(LineFormatter())
    root.addHandler(handler)
    view.miner.status_interval = 0  # the table replaces the periodic status lines
    return LiveStatus(view, console)


def main(settings: Settings, kind: str, argv: list[str], serving: ServeOptions | None = None,
         max_blocks: int | None = None) -> int:
    """Run in this process until the miner stops; a restart re-executes `miner ARGV`. With
    max_blocks (`miner solo --blocks N`), the accepted blocks' hashes are printed, one a line, and
    the exit status is 1 when fewer were accepted before the run ended."""
    from miner.frontends.persist import check_stats_path, default_stats_path

    if settings.operating.protocol_log:
        logging.getLogger("miner.protocol").setLevel(logging.INFO)
    check_stats_path(settings.operating.stats_file or default_stats_path())  # before anything starts
    check_alert_settings(settings)
    outcome = asyncio.run(run(settings, kind, max_blocks, serving=serving))
    if outcome.restart:
        log.warning("restarting")
        os.execv(sys.executable, restart_command(argv))
    if max_blocks is not None:
        hashes = outcome.source.accepted_hashes
        sys.stdout.write("".join(f"{h}\n" for h in hashes))
        if len(hashes) < max_blocks:
            log.error("only %d of %d blocks accepted before the run ended", len(hashes), max_blocks)
            return 1
    return 2 if outcome.all_dead else 0


def restart_command(argv: list[str]) -> list[str]:
    """The same miner again, whatever the working directory holds: `-P` keeps the working directory
    off sys.path, so a folder named `miner` there cannot stand in for the package."""
    return [sys.executable, "-P", "-m", "miner", *argv]


async def run_solo(settings: Settings, max_blocks: int | None = None,
                   on_source: Callable[[GbtSource], object] | None = None) -> GbtSource:
    """Solo mine through the root (the library's entry point); returns the source with its counts."""
    return (await run(settings, NODE, max_blocks, on_source)).source


# ------------------------------------------------------------------------------------ payout, alerts, service
def check_alert_settings(settings: Settings) -> None:
    """Everything about alerts and the service that can be checked before mining; ValueError (one line).
    Adds the --log-file / --syslog outputs."""
    from miner.app.service import add_log_outputs
    from miner.frontends.alerts import WebhookSink
    from miner.frontends.mqtt import MqttTarget
    from miner.sources.payout import PayoutPolicy

    a = settings.alerts
    PayoutPolicy.parse(a.payout_addresses, a.payout_min, a.payout_check)
    for url in a.webhooks:
        WebhookSink(url, a.webhook_format)
    if a.mqtt:
        MqttTarget.parse(a.mqtt, a.mqtt_user, a.mqtt_pass)
    if a.sharelog and os.path.isdir(a.sharelog):
        raise ValueError(f"--sharelog {a.sharelog}: is a directory")
    for flag, path in (("--sharelog", a.sharelog), ("--log-file", a.log_file)):
        folder = os.path.dirname(os.path.abspath(path)) if path else ""
        if path and not os.path.isdir(folder):
            raise ValueError(f"{flag} {path}: the folder {folder} does not exist")
    add_log_outputs(a.log_file, a.syslog)


def attach_payout(settings: Settings, source: Any):
    """The payout check on every pool's jobs (docs/payout.md §2): a PayoutMonitor, or None off pools."""
    from miner.sources.payout import PayoutMonitor, PayoutPolicy
    from miner.sources.stratum.failover import PoolManager

    if not isinstance(source, PoolManager):
        return None
    a = settings.alerts
    monitor = PayoutMonitor(PayoutPolicy.parse(a.payout_addresses, a.payout_min, a.payout_check))
    source.job_check = monitor.allows
    return monitor


@dataclass
class AlertRuntime:
    tasks: list[asyncio.Task]
    sinks: list[Any]
    publisher: Any = None
    sharelog: Any = None
    notifier: Any = None
    stopped: bool = False

    def stopping(self) -> None:
        if self.notifier is not None and not self.stopped:
            self.notifier.notify(STOPPING=1, STATUS="stopping")
        self.stopped = True

    async def stop(self) -> None:
        self.stopping()
        if self.publisher is not None:
            await self.publisher.goodbye()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        from miner.frontends.alerts import close_sink

        for sink in self.sinks:
            await close_sink(sink)
        if self.sharelog is not None:
            self.sharelog.close()


def _supervised(coro_fn: Callable[[], Any], name: str) -> asyncio.Task:
    """A long-lived alert task: a crash is logged and it starts again after a pause."""
    async def loop() -> None:
        while True:
            try:
                await coro_fn()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; restarting it in 5 s", name)
                await asyncio.sleep(5)
    return asyncio.create_task(loop(), name=name)


async def start_alerts(settings: Settings, miner: Miner, view: Any, payout: Any) -> AlertRuntime:
    """The event bus, its watcher and every configured sink, the share log, and sd_notify."""
    from miner.app.service import Notifier
    from miner.core import events as ev
    from miner.core.stats import format_hashrate
    from miner.frontends.alerts import CommandSink, WebhookSink, run_sink
    from miner.frontends.watch import EventWatcher, Thresholds, watch

    a = settings.alerts
    bus = ev.EventBus()
    sinks: list[Any] = []
    if a.alert_cmd:
        sinks.append(CommandSink(a.alert_cmd, name="--alert-cmd"))
    if a.cmd_sick:
        sinks.append(CommandSink(a.cmd_sick, frozenset({ev.DEVICE_SICK}), name="--cmd-sick"))
    if a.cmd_dead:
        sinks.append(CommandSink(a.cmd_dead, frozenset({ev.DEVICE_DEAD}), name="--cmd-dead"))
    sinks += [WebhookSink(url, a.webhook_format) for url in a.webhooks]
    tasks = [_supervised(functools.partial(run_sink, sink, bus.subscribe()), f"alerts {sink.name}")
             for sink in sinks]
    runtime = AlertRuntime(tasks, sinks)
    if a.mqtt:
        from miner.frontends.mqtt import MqttPublisher, MqttTarget

        runtime.publisher = MqttPublisher(MqttTarget.parse(a.mqtt, a.mqtt_user, a.mqtt_pass), view, bus.subscribe())
        tasks.append(_supervised(runtime.publisher.run, "mqtt"))
    if payout is not None and a.payout_check in ("alert", "enforce"):
        def on_verdict(pool: str, verdict: Any) -> None:
            kind = ev.PAYOUT_OK if verdict.ok else ev.PAYOUT_FAILED
            if verdict.checked or not verdict.ok:
                bus.publish(ev.Event(kind, f"{pool}: coinbase {verdict.summary}", pool,
                                     {"percent": verdict.percent, "address": verdict.address,
                                      "outputs": verdict.outputs, "mode": a.payout_check}))
        payout.listeners.append(on_verdict)
    if sinks or a.mqtt:
        thresholds = Thresholds(a.hashrate_below, a.hashrate_minutes, a.temp_alert)
        tasks.append(_supervised(lambda: watch(view, EventWatcher(thresholds), bus), "event watcher"))
    if a.sharelog:
        from miner.frontends.sharelog import ShareLog
        from miner.sources.stratum.failover import PoolManager

        sharelog = ShareLog(a.sharelog)
        try:
            sharelog.open()
        except OSError as exc:
            log.error("--sharelog %s: %s; mining without a share log", a.sharelog, exc.strerror or exc)
        else:
            runtime.sharelog = sharelog
            source = miner.source

            def pool_url(name: str) -> str:
                pool = source.pool_named(name) if isinstance(source, PoolManager) else None
                return pool.config.url if pool is not None else name

            miner.share_listeners.append(
                lambda share, ok, reason: sharelog.write(share, ok, reason, pool_url(share.work.job.source)))
    notifier = Notifier()
    if notifier.enabled:
        runtime.notifier = notifier
        notifier.notify(READY=1, STATUS="mining")
        def status() -> str:
            return f"mining at {format_hashrate(miner.hashrate())}"

        tasks.append(_supervised(functools.partial(notifier.keep_alive, status), "sd_notify watchdog"))
    return runtime
