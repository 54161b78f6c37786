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
    from miner.core.engine import Miner
    from miner.core.source import JobSource
    from miner.devices.manager import DeviceManager
    from miner.devices.work_source import WorkSource
    from miner.sources.node.gbt import GbtSource

log = logging.getLogger("miner")

POOLS, NODE, SANDBOX = "pools", "node", "sandbox"
STATS_SAVE_INTERVAL = 60.0


def setup_logging(quiet: bool = False, debug: bool = False, notes: tuple[str, ...] = ()) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    for note in notes:
        log.info("%s", note)


def source_kind(settings: Settings) -> str:
    """`miner` mines its pools (command line or file), or the sandbox when it has none."""
    return POOLS if pool_configs(settings) else SANDBOX


@dataclass
class Outcome:
    source: Any  # the job source, with its counts
    restart: bool = False


# ------------------------------------------------------------------------------------ building
def make_device_manager(settings: Settings, work: WorkSource, on_nonce: Callable,
                        cpu_chunk: int | None = None) -> DeviceManager:
    """Devices from --device, USB detection and the CPU flags; one-line error on a bad spec."""
    from miner.app.config import configured_drivers
    from miner.devices.base import DeviceSpec
    from miner.devices.cpu import DEFAULT_CHUNK, CpuDevice
    from miner.devices.manager import DeviceManager, load_drivers

    devices = settings.devices
    specs = [DeviceSpec.parse(text) for text in devices.specs]
    drivers = configured_drivers(load_drivers(), settings.file)  # the config file's per-driver options
    return DeviceManager(work, on_nonce, specs, drivers=drivers, hotplug=devices.hotplug or 5.0,
                         scan_usb=True, cpu=devices.cpu,
                         cpu_factory=lambda: CpuDevice(work, on_nonce, devices.threads, devices.engine,
                                                       chunk=cpu_chunk or DEFAULT_CHUNK))


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

        return PoolManager(pool_configs(settings), switch_delay=settings.pools.failover_switch_delay)
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
              on_source: Callable[[Any], object] | None = None) -> Outcome:
    """Build everything for `kind` and mine until the time limit, a stop or cancellation.

    Raises ValueError for bad settings, DeviceError when no device can mine, AddressError when the
    payout address is not for the node's chain; node and pool trouble is retried, not raised.
    on_source(source) is called once the source exists (to watch it while it runs); max_blocks
    stops a node source after that many accepted blocks (tests, scripted use).
    """
    from miner.core.dispatch import Dispatcher
    from miner.core.engine import Miner
    from miner.core.work import Nonce
    from miner.devices.work_source import DispatcherWorkSource

    source = make_source(settings, kind)
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
    devices = manager.setup()  # DeviceError (one line) when nothing can mine
    if not settings.devices.hotplug:
        manager.scan_usb = False
    miner = Miner(source, devices, dispatcher, settings.run.status_interval, manager=manager)
    if max_blocks is not None and kind == NODE:
        def enough(share: object, accepted: bool, reason: str | None) -> None:
            if accepted and source.stats.accepted >= max_blocks:
                miner.request_stop()
        source.result_listeners.append(enough)
    announce(kind, source, miner, settings)
    remaining = None if deadline is None else max(0.0, deadline - loop.time())
    restart = await serve(miner, settings, remaining)
    return Outcome(source, restart)


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


async def serve(miner: Miner, settings: Settings, time_limit: float | None = None) -> bool:
    """Run the miner with its front ends until it stops; True when a restart was asked for."""
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
    view = MinerView(miner, store, on_restart=ask_restart, config=shown)
    servers = []
    if operating.api_listen:
        from miner.frontends.cgminer import ApiServer

        host, allow = api_host_and_allow(settings)
        servers.append(ApiServer(view, host, operating.api_port, allow))
    if operating.http:
        from miner.frontends.http import HttpServer, parse_listen

        host, port = parse_listen(operating.http)
        servers.append(HttpServer(view, host, port, operating.http_token))
    for server in servers:
        try:
            await server.start()
        except OSError as exc:
            log.error("cannot listen for %s on port %s: %s (another miner running? choose another port)",
                      type(server).__name__, server.port, exc.strerror or exc)
            miner.request_stop()
    loop = asyncio.get_running_loop()
    interrupted = 0

    def on_signal(signum: int) -> None:
        nonlocal interrupted
        interrupted += 1
        if interrupted > 1:
            log.warning("second interrupt: exiting now")
            os._exit(130)
        log.warning("%s: stopping devices, sending pending shares, saving statistics (again to exit now)",
                    signal.Signals(signum).name)
        miner.request_stop()

    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows, not off the main thread
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
    saver = asyncio.create_task(save_periodically(store, view))
    live = live_status(view, settings)
    try:
        with live if live is not None else contextlib.nullcontext():
            await miner.run(time_limit if time_limit is not None else settings.run.time_limit)
    finally:
        saver.cancel()
        await asyncio.gather(saver, return_exceptions=True)
        for server in servers:
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
    from rich.logging import RichHandler

    from miner.frontends.status import LiveStatus

    console = Console(stderr=True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(RichHandler(console=console, show_path=False))
    view.miner.status_interval = 0  # the table replaces the periodic status lines
    return LiveStatus(view, console)


def main(settings: Settings, kind: str, argv: list[str]) -> int:
    """Run in this process until the miner stops; a restart re-executes `miner ARGV`."""
    from miner.frontends.persist import check_stats_path, default_stats_path

    if settings.operating.protocol_log:
        logging.getLogger("miner.protocol").setLevel(logging.INFO)
    check_stats_path(settings.operating.stats_file or default_stats_path())  # before anything starts
    outcome = asyncio.run(run(settings, kind))
    if outcome.restart:
        log.warning("restarting")
        os.execv(sys.executable, [sys.executable, "-m", "miner", *argv])
    return 0


async def run_solo(settings: Settings, max_blocks: int | None = None,
                   on_source: Callable[[GbtSource], object] | None = None) -> GbtSource:
    """Solo mine through the root (the library's entry point); returns the source with its counts."""
    return (await run(settings, NODE, max_blocks, on_source)).source
