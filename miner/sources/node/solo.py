"""`miner solo`: mine blocks for a payout address against your own node (getblocktemplate).

The library entry point is `run_solo(SoloOptions)`; the command line only parses into it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from miner import USER_AGENT
from miner.core.targets import MAX_TARGET
from miner.sources.node.address import AddressError, PayoutAddress, decode_address
from miner.sources.node.gbt import GbtSource
from miner.sources.node.rpc import RpcClient, parse_rpc_url
from miner.sources.node.template import MAX_TAG

log = logging.getLogger("miner.solo")

# CPU chunk sizes: the device reports every nonce under the target, and on regtest that is every
# other hash, so chunks shrink with the difficulty (a block then waits less for the chunk in hand).
MIN_CHUNK = 1 << 12
MAX_CHUNK = 1 << 21


@dataclass
class SoloOptions:
    rpc_url: str
    address: str
    rpc_user: str = ""
    rpc_password: str = ""
    rpc_cookie: str | None = None
    coinbase_tag: str = ""
    threads: int | None = None
    engine: str | None = None
    time_limit: float | None = None
    status_interval: float = 5.0
    refresh_interval: float = 30.0
    poll_interval: float = 1.0
    retry_cap: float = 10.0
    rpc_timeout: float = 30.0
    max_blocks: int | None = None  # stop after this many accepted blocks (tests, scripted use)
    devices: tuple[str, ...] = ()  # --device specs, as for pool mining
    cpu: bool | None = None  # None: the CPU mines only when no board is found
    hotplug: float = 5.0  # seconds between USB scans; 0 scans once


def chunk_for_target(target: int) -> int:
    """A CPU chunk of about 4096 expected blocks' worth of hashes, within [MIN_CHUNK, MAX_CHUNK]."""
    expected = (MAX_TARGET + 1) // (target + 1)
    return max(MIN_CHUNK, min(MAX_CHUNK, 1 << (expected * 4096).bit_length()))


def check_options(opts: SoloOptions) -> PayoutAddress:
    """Everything that can be checked without the node; ValueError with one line."""
    from miner.devices.base import DeviceSpec

    parse_rpc_url(opts.rpc_url)
    for spec in opts.devices:
        DeviceSpec.parse(spec)
    if len(opts.coinbase_tag.encode()) > MAX_TAG:
        raise ValueError(f"--coinbase-tag: {len(opts.coinbase_tag.encode())} bytes, at most {MAX_TAG}")
    return decode_address(opts.address)


async def run_solo(opts: SoloOptions, on_source: Callable[[GbtSource], object] | None = None) -> GbtSource:
    """Mine until time_limit, max_blocks or cancellation; returns the source with its counts.

    Raises AddressError when the address does not belong to the node's chain, ValueError for bad
    options, DeviceError when no device can mine. Node trouble is retried, not raised.
    on_source(source) is called once the source exists (to watch it while it runs).
    """
    from miner.core.dispatch import Dispatcher
    from miner.core.engine import Miner
    from miner.core.work import Nonce
    from miner.devices.base import DeviceSpec
    from miner.devices.cpu import CpuDevice
    from miner.devices.manager import DeviceManager
    from miner.devices.work_source import DispatcherWorkSource

    payout = check_options(opts)
    rpc = RpcClient(opts.rpc_url, opts.rpc_user, opts.rpc_password, opts.rpc_cookie, timeout=opts.rpc_timeout)
    dispatcher = Dispatcher()
    source = GbtSource(rpc, payout, dispatcher, opts.coinbase_tag.encode(), refresh_interval=opts.refresh_interval,
                       poll_interval=opts.poll_interval, retry_cap=opts.retry_cap)
    if on_source is not None:
        on_source(source)
    loop = asyncio.get_running_loop()
    deadline = None if opts.time_limit is None else loop.time() + opts.time_limit

    async def prepare() -> int:
        chain = await source.connect()
        log.info("node %s: chain %s; paying %s (%s)", rpc, chain, payout.text, payout.kind)
        return chunk_for_target((await source.first_template()).target)  # it sizes the CPU chunks

    try:
        async with asyncio.timeout(opts.time_limit):
            chunk = await prepare()
    except TimeoutError:
        log.warning("no template from the node within the time limit")
        return source
    miner: Miner

    def on_nonce(nonce: Nonce) -> None:
        if source.claim(nonce):
            miner.on_nonce(nonce)

    work = DispatcherWorkSource(dispatcher)
    manager = DeviceManager(work, on_nonce, [DeviceSpec.parse(t) for t in opts.devices],
                            hotplug=opts.hotplug or 5.0, scan_usb=True, cpu=opts.cpu,
                            cpu_factory=lambda: CpuDevice(work, on_nonce, opts.threads, opts.engine, chunk=chunk))
    devices = manager.setup()  # DeviceError (one line) when nothing can mine
    if not opts.hotplug:
        manager.scan_usb = False
    miner = Miner(source, devices, dispatcher, opts.status_interval, manager=manager)
    log.info("%s: solo mining at height %s on %s", USER_AGENT, source.height, ", ".join(d.name for d in devices))
    remaining = None if deadline is None else max(0.0, deadline - loop.time())
    run = asyncio.create_task(miner.run(remaining))
    if opts.max_blocks is None:
        await run
        return source
    try:
        while not run.done() and source.stats.accepted < opts.max_blocks:
            await asyncio.wait([run], timeout=0.02)
    finally:
        if not run.done():
            run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
    return source


# ------------------------------------------------------------------------------------ command line
def solo_parser(positive_float, positive_int, engine) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="miner solo",
                                description="Solo mine against your own node with getblocktemplate.")
    p.add_argument("--rpc-url", required=True, help="node JSON-RPC, e.g. http://127.0.0.1:18443 (regtest)")
    p.add_argument("--rpc-user", default="", help="RPC user")
    p.add_argument("--rpc-pass", dest="rpc_password", default="", help="RPC password")
    p.add_argument("--rpc-cookie", metavar="FILE", help="Bitcoin Core's cookie file instead of user/password")
    p.add_argument("--address", required=True, help="payout address (P2PKH, P2SH, P2WPKH, P2WSH or P2TR)")
    p.add_argument("--coinbase-tag", default="", help=f"text put in the coinbase (at most {MAX_TAG} bytes)")
    p.add_argument("--refresh", type=positive_float, default=30.0, metavar="S",
                   help="seconds between template refreshes for new transactions")
    p.add_argument("--device", "-d", dest="devices", action="append", default=[], metavar="SPEC",
                   help="mine with this board too: DRIVER:PORT[,key=value...] (repeatable), as for pool mining")
    p.add_argument("--hotplug", type=float, default=5.0, metavar="S",
                   help="seconds between scans for plugged/unplugged devices (0: scan once at start)")
    cpu = p.add_mutually_exclusive_group()
    cpu.add_argument("--cpu", dest="cpu", action="store_true", default=None,
                     help="mine with the CPU too (default: only when no board is found)")
    cpu.add_argument("--no-cpu", dest="cpu", action="store_false", help="never mine with the CPU")
    p.add_argument("-t", "--threads", type=positive_int, help="CPU mining threads (default: one per core)")
    p.add_argument("--engine", type=engine, help="sha256d engine (default: the fastest this CPU has)")
    p.add_argument("--time-limit", type=positive_float, help="stop after this many seconds")
    p.add_argument("--status-interval", type=positive_float, default=5.0, help="seconds between status lines")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.add_argument("-D", "--debug", action="store_true", help="debug logging")
    return p


def main(argv: list[str]) -> int:
    from miner.app import cli
    from miner.devices.base import DeviceError

    parser = solo_parser(cli._positive_float, cli._positive_int, cli._engine)
    args = parser.parse_args(argv)
    cli.setup_logging(args.quiet, args.debug)
    opts = SoloOptions(rpc_url=args.rpc_url, address=args.address, rpc_user=args.rpc_user,
                       rpc_password=args.rpc_password, rpc_cookie=args.rpc_cookie, coinbase_tag=args.coinbase_tag,
                       threads=args.threads, engine=args.engine, time_limit=args.time_limit,
                       status_interval=args.status_interval, refresh_interval=args.refresh,
                       devices=tuple(args.devices), cpu=args.cpu, hotplug=args.hotplug)
    try:
        check_options(opts)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(run_solo(opts))
    except (AddressError, DeviceError) as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        log.info("stopped")
    return 0
