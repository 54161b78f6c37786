"""The `miner` command: cgminer-style flags for mining, plus subcommands."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from miner import USER_AGENT
from miner.app import bench
from miner.core import hashing

log = logging.getLogger("miner")

SUBCOMMANDS = ("benchmark", "emulate", "devices", "udev-rules", "config", "solo")


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
    pools = p.add_argument_group("pools (cgminer style: repeat -o/-u/-p for backups, in priority order)")
    pools.add_argument("-o", "--url", action="append", default=[], metavar="URL",
                       help="stratum+tcp://HOST:PORT or stratum+ssl://HOST:PORT (append #xnsub to "
                       "subscribe to extranonce changes)")
    pools.add_argument("-u", "--user", action="append", default=[], help="pool user (worker) name")
    pools.add_argument("-p", "--pass", dest="password", action="append", default=[], help="pool password")
    pools.add_argument("--suggest-diff", type=_positive_float, help="ask pools for this share difficulty")
    pools.add_argument("--no-version-rolling", action="store_true", help="do not ask for BIP310 version rolling")
    pools.add_argument("--failover-switch-delay", type=float, default=0.0, metavar="S",
                       help="seconds a higher-priority pool must be back before mining returns to it")
    pools.add_argument("--tls-no-verify", action="store_true", help="do not verify pool TLS certificates")
    pools.add_argument("--tls-ca", metavar="FILE", help="CA certificates to verify pool TLS with")
    devices = p.add_argument_group("devices")
    devices.add_argument("--device", "-d", dest="devices", action="append", default=[], metavar="SPEC",
                         help="use this device: DRIVER:PORT[,key=value...], e.g. icarus:/dev/ttyUSB0 or "
                         "bm1397:/dev/ttyACM0,chips=1 (repeatable; USB sticks are also found by their ids)")
    devices.add_argument("--hotplug", type=float, default=5.0, metavar="S",
                         help="seconds between scans for plugged/unplugged devices (0: scan once at start)")
    cpu = devices.add_mutually_exclusive_group()
    cpu.add_argument("--cpu", dest="cpu", action="store_true", default=None,
                     help="mine with the CPU too (default: only when no board is found)")
    cpu.add_argument("--no-cpu", dest="cpu", action="store_false", help="never mine with the CPU")
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
    from miner.app.operate import add_operator_arguments

    add_operator_arguments(p)
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


def pool_configs(args: argparse.Namespace) -> list:
    """Pair each -o with its -u/-p (a pool without its own takes the previous pool's)."""
    from miner.sources.stratum.url import PoolConfig, parse_pool_url

    configs = []
    user, password = "", "x"
    for i, url in enumerate(args.url):
        parse_pool_url(url)  # a bad URL stops here, with its reason
        if i < len(args.user):
            user = args.user[i]
        if i < len(args.password):
            password = args.password[i]
        if not user and not parse_pool_url(url).user:
            raise ValueError(f"pool {url}: no user given (-u, or stratum+tcp://user:pass@host:port)")
        configs.append(PoolConfig(url=url, user=user, password=password,
                                  suggest_difficulty=args.suggest_diff,
                                  version_rolling=not args.no_version_rolling,
                                  tls_verify=not args.tls_no_verify, ca_file=args.tls_ca))
    return configs


def run_emulator(argv: list[str]) -> int:
    from miner.devices.manager import load_drivers

    drivers = load_drivers()
    emulated = sorted(n for n, d in drivers.items() if d.name != "cpu")
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: miner emulate DEVICE [options]\n\nRun a device emulator on a pseudo-terminal; the "
              "first line printed is its path, for miner --device DEVICE:PATH.\ndevices: "
              + (", ".join(emulated) or "none installed"))
        return 0 if argv else 2
    name = argv[0].lower()
    if name not in drivers or drivers[name].name == "cpu":
        print(f"miner emulate: no emulator for {argv[0]!r} (have: {', '.join(emulated) or 'none'})", file=sys.stderr)
        return 2
    setup_logging()
    return drivers[name].emulator_main(name, argv[1:])


def make_device_manager(args: argparse.Namespace, dispatcher, on_nonce, file=None):
    """Devices from --device, USB detection and the CPU flags; one-line error on a bad spec."""
    from miner.app.config import configured_drivers
    from miner.devices.base import DeviceSpec
    from miner.devices.cpu import CpuDevice
    from miner.devices.manager import DeviceManager, load_drivers
    from miner.devices.work_source import DispatcherWorkSource

    specs = [DeviceSpec.parse(text) for text in args.devices]
    drivers = configured_drivers(load_drivers(), file)  # the config file's per-driver options
    work = DispatcherWorkSource(dispatcher)
    return DeviceManager(work, on_nonce, specs, drivers=drivers, hotplug=args.hotplug or 5.0,
                         scan_usb=True, cpu=args.cpu,
                         cpu_factory=lambda: CpuDevice(work, on_nonce, args.threads, args.engine))


def run_mining(argv: list[str]) -> int:
    from miner.app import config as cfg
    from miner.app.operate import load_effective, run
    from miner.core.dispatch import Dispatcher
    from miner.core.engine import Miner
    from miner.devices.base import DeviceError
    from miner.sources.sandbox import DEFAULT_SANDBOX_DIFFICULTY, SandboxSource
    from miner.sources.stratum.failover import PoolManager

    parser = mining_parser()
    args = parser.parse_args(argv)
    try:
        effective = load_effective(parser, argv, args)
    except (cfg.ConfigError, ValueError) as exc:
        parser.error(str(exc))
    setup_logging(args.quiet, args.debug)
    try:
        # -o on the command line replaces the file's pools
        configs = pool_configs(args) if args.url or effective.file is None else cfg.pool_configs(effective.file, args)
    except ValueError as exc:
        parser.error(str(exc))
    dispatcher = Dispatcher()
    miner: Miner
    try:
        manager = make_device_manager(args, dispatcher, lambda n: miner.on_nonce(n), effective.file)
        devices = manager.setup()
    except (ValueError, DeviceError) as exc:
        parser.error(str(exc))
    if not args.hotplug:
        manager.scan_usb = False
    names = ", ".join(f"{d.name}{f' ({d.model})' if d.model else ''}" for d in devices)
    if configs:
        source = PoolManager(configs, switch_delay=args.failover_switch_delay)
        miner = Miner(source, devices, dispatcher, args.status_interval, manager=manager)
        log.info("%s: mining on %d pool(s) with %s", USER_AGENT, len(configs), names)
    else:
        sandbox = SandboxSource(args.sandbox_diff or DEFAULT_SANDBOX_DIFFICULTY)
        miner = Miner(sandbox, devices, dispatcher, args.status_interval, manager=manager)
        log.info("%s: no pool given, mining a local sandbox job at difficulty %s on %s", USER_AGENT,
                 sandbox.difficulty, names)
        log.info("to mine on a pool: miner -o stratum+tcp://HOST:PORT -u USER -p PASS")
    try:
        return run(miner, args, effective, argv)
    except KeyboardInterrupt:
        log.info("stopped")
    return 0


def run_devices(argv: list[str]) -> int:
    """`miner devices`: every serial port, the driver that claims it, and whether it can be opened."""
    from miner.app.doctor import format_reports, port_reports
    from miner.devices.manager import list_serial_ports, load_drivers

    if argv:
        print("usage: miner devices  (lists serial ports, the driver claiming each, and access)", file=sys.stderr)
        return 0 if argv[0] in ("-h", "--help") else 2
    print(format_reports(port_reports(list_serial_ports(), load_drivers().values())))
    return 0


def run_udev_rules(argv: list[str]) -> int:
    from miner.app.doctor import udev_rules
    from miner.devices.manager import load_drivers

    if argv:
        print("usage: miner udev-rules | sudo tee /etc/udev/rules.d/70-miner.rules", file=sys.stderr)
        return 0 if argv[0] in ("-h", "--help") else 2
    sys.stdout.write(udev_rules(load_drivers().values()))
    return 0


def run_config(argv: list[str]) -> int:
    """`miner config show [mining options]`: the effective configuration and each value's source."""
    from miner.app import config as cfg
    from miner.app.operate import load_effective

    if not argv or argv[0] != "show":
        print("usage: miner config show [--config FILE] [any miner option...]", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    parser = mining_parser()
    args = parser.parse_args(argv[1:])
    try:
        effective = load_effective(parser, argv[1:], args)
    except (cfg.ConfigError, ValueError) as exc:
        print(f"miner config: {exc}", file=sys.stderr)
        return 2
    print(cfg.show(effective))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "benchmark":
        return run_benchmark(argv[1:])
    if argv and argv[0] == "emulate":
        return run_emulator(argv[1:])
    if argv and argv[0] == "devices":
        return run_devices(argv[1:])
    if argv and argv[0] == "udev-rules":
        return run_udev_rules(argv[1:])
    if argv and argv[0] == "config":
        return run_config(argv[1:])
    if argv and argv[0] == "solo":
        from miner.sources.node.solo import main as solo_main

        return solo_main(argv[1:])
    return run_mining(argv)


if __name__ == "__main__":
    sys.exit(main())
