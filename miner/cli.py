"""The `miner` command: cgminer-style flags for mining, plus subcommands."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from miner import USER_AGENT, bench, hashing

log = logging.getLogger("miner")

SUBCOMMANDS = ("benchmark",)


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _engine(text: str) -> str:
    try:
        return hashing.check_engine(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def mining_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="miner",
        description="SHA-256d miner. With no pool it mines a local sandbox job to show what the "
        "devices do. Subcommands: " + ", ".join(SUBCOMMANDS) + " (miner SUBCOMMAND --help).",
    )
    p.add_argument("-t", "--threads", type=_positive_int, help="CPU mining threads (default: one per core)")
    p.add_argument("--engine", type=_engine, help="sha256d engine (default: the fastest this CPU has)")
    p.add_argument("--sandbox-diff", type=_positive_float, default=None,
                   help="share difficulty of the local sandbox job (default 0.02)")
    p.add_argument("--time-limit", type=_positive_float, help="stop after this many seconds")
    p.add_argument("--status-interval", type=_positive_float, default=5.0,
                   help="seconds between status lines")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.add_argument("-D", "--debug", action="store_true", help="debug logging")
    p.add_argument("-V", "--version", action="version", version=USER_AGENT)
    return p


def benchmark_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="miner benchmark",
                                description="Measure every sha256d engine on 1..N threads.")
    p.add_argument("--engine", type=_engine, action="append", help="only this engine (repeatable)")
    p.add_argument("--threads", type=_positive_int, help="up to this many threads (default: one per core)")
    p.add_argument("--seconds", type=_positive_float, default=3.0, help="seconds per measurement")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def setup_logging(quiet: bool = False, debug: bool = False) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)


def run_benchmark(argv: list[str]) -> int:
    args = benchmark_parser().parse_args(argv)
    results = bench.run(args.engine, args.threads, args.seconds)
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=1))
    else:
        print(bench.format_table(results))
    return 0


def run_mining(argv: list[str]) -> int:
    from miner.app import Miner
    from miner.devices.cpu import CpuDevice
    from miner.dispatch import Dispatcher
    from miner.sandbox import DEFAULT_SANDBOX_DIFFICULTY, SandboxSource

    args = mining_parser().parse_args(argv)
    setup_logging(args.quiet, args.debug)
    dispatcher = Dispatcher()
    source = SandboxSource(args.sandbox_diff or DEFAULT_SANDBOX_DIFFICULTY)
    miner: Miner
    device = CpuDevice(dispatcher.next_work, lambda n: miner.on_nonce(n), args.threads, args.engine)
    miner = Miner(source, [device], dispatcher, args.status_interval)
    log.info("%s: no pool given, mining a local sandbox job at difficulty %s on %s", USER_AGENT,
             source.difficulty, device.name)
    log.info("to mine on a pool: miner -o stratum+tcp://HOST:PORT -u USER -p PASS")
    dispatcher.set_job(source.job)
    try:
        asyncio.run(miner.run(args.time_limit))
    except KeyboardInterrupt:
        log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "benchmark":
        return run_benchmark(argv[1:])
    return run_mining(argv)


if __name__ == "__main__":
    sys.exit(main())
