"""Running the miner for a person: the config file, the APIs, the live view, persisted statistics,
and a clean stop on Ctrl-C / SIGTERM (a second Ctrl-C exits at once).

`cli.run_mining` builds the miner; `run()` here wraps its `Miner.run` with everything above.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from miner.app import config as cfg

if TYPE_CHECKING:
    from miner.core.engine import Miner

log = logging.getLogger("miner")

STATS_SAVE_INTERVAL = 60.0


def add_operator_arguments(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("operating (config file, APIs, status)")
    group.add_argument("--config", metavar="FILE",
                       help=f"TOML config file, or a cgminer JSON config (default {cfg.default_config_path()} "
                       "if it exists); command-line options win over it")
    group.add_argument("--api-listen", action="store_true", help="serve the cgminer API (port 4028)")
    group.add_argument("--api-port", type=int, default=4028, metavar="PORT", help="cgminer API port")
    group.add_argument("--api-allow", metavar="LIST",
                       help="who may use the API: [W:|R:]addr[/prefix],... (W: may also send privileged "
                       "commands, e.g. W:127.0.0.1). Default: read-only, from 127.0.0.1 only; with a list the API "
                       "listens on every address")
    group.add_argument("--http", metavar="HOST:PORT", help="serve REST (/api/...) and Prometheus /metrics here")
    group.add_argument("--http-token", metavar="TOKEN", help="bearer token that REST writes need (none: read-only)")
    group.add_argument("--no-tui", action="store_true", help="plain log lines instead of the live status view")
    group.add_argument("--protocol-log", action="store_true",
                       help="log every Stratum line sent and received (passwords hidden)")
    group.add_argument("--stats-file", metavar="FILE", help="where best shares and history persist "
                       "(default: the user data dir)")


def load_effective(parser: argparse.ArgumentParser, argv: list[str], args: argparse.Namespace) -> cfg.Effective:
    """The file (given, or the default one if it exists) merged under the command line."""
    path = Path(args.config) if args.config else cfg.default_config_path()
    file = cfg.load(path) if args.config or path.exists() else None
    if file is not None and file.ignored:
        log.info("%s: cgminer options without an equivalent here, ignored: %s", path, ", ".join(file.ignored))
    effective = cfg.apply(parser, argv, args, file)
    # a bad --api-allow / --http stops here with its one-line reason, before any device starts
    if args.api_allow:
        from miner.frontends.cgminer import parse_allow

        parse_allow(args.api_allow)
    if args.http:
        from miner.frontends.http import parse_listen

        parse_listen(args.http)
    return effective


def api_host_and_allow(args: argparse.Namespace) -> tuple[str, list]:
    from miner.frontends.cgminer import DEFAULT_ALLOW, parse_allow

    if args.api_allow:
        return "0.0.0.0", parse_allow(args.api_allow)
    return "127.0.0.1", parse_allow(DEFAULT_ALLOW)


async def _save_periodically(store, view) -> None:
    from miner.frontends.persist import observe_view

    while True:
        await asyncio.sleep(STATS_SAVE_INTERVAL)
        observe_view(store, view)
        await asyncio.to_thread(store.save)


async def serve(miner: Miner, args: argparse.Namespace, effective: cfg.Effective | None = None) -> bool:
    """Run the miner with its front ends until it stops; True when a restart was asked for."""
    from miner.frontends.persist import StatsStore, default_stats_path, observe_view
    from miner.frontends.view import MinerView

    restart = False

    def ask_restart() -> None:
        nonlocal restart
        restart = True
        miner.request_stop()

    store = StatsStore(args.stats_file or default_stats_path())
    await asyncio.to_thread(store.load)
    settings = {"API Listen": bool(args.api_listen), "API Port": args.api_port, "HTTP": args.http or ""}
    view = MinerView(miner, store, on_restart=ask_restart, config=settings)
    servers = []
    if args.api_listen:
        from miner.frontends.cgminer import ApiServer

        host, allow = api_host_and_allow(args)
        servers.append(ApiServer(view, host, args.api_port, allow))
    if args.http:
        from miner.frontends.http import HttpServer, parse_listen

        host, port = parse_listen(args.http)
        servers.append(HttpServer(view, host, port, args.http_token))
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
    saver = asyncio.create_task(_save_periodically(store, view))
    live = _live_status(view, args)
    try:
        with live if live is not None else contextlib.nullcontext():
            await miner.run(args.time_limit)
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


def _live_status(view, args: argparse.Namespace):
    """The rich live view when stderr is a terminal and not --no-tui; None for plain log lines."""
    if args.no_tui or args.quiet or not sys.stderr.isatty():
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


def run(miner: Miner, args: argparse.Namespace, effective: cfg.Effective | None = None,
        argv: list[str] | None = None) -> int:
    if args.protocol_log:
        logging.getLogger("miner.protocol").setLevel(logging.INFO)
    restart = asyncio.run(serve(miner, args, effective))
    if restart:
        log.warning("restarting")
        os.execv(sys.executable, [sys.executable, "-m", "miner", *(argv if argv is not None else sys.argv[1:])])
    return 0
