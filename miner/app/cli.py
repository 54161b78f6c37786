"""The `miner` command: it parses the command line into settings and hands them to the composition
root (`miner.app.compose`) or to a subcommand; it builds nothing itself."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from miner.app import bench, compose
from miner.app import config as cfg
from miner.app.arguments import engine, positive_float, positive_int
from miner.app.compose import setup_logging
from miner.app.settings import MINE, SOLO, Settings, command_parser, resolve, show

log = logging.getLogger("miner")

SUBCOMMANDS = ("benchmark", "emulate", "devices", "udev-rules", "config", "solo", "serve")
SUBCOMMANDS = ("benchmark", "emulate", "devices", "udev-rules", "config", "solo", "systemd-unit")


MINING_DESCRIPTION = ("SHA-256d miner. With no pool it mines a local sandbox job to show what the devices do. "
                      "Subcommands: " + ", ".join(SUBCOMMANDS) + " (miner SUBCOMMAND --help).")
SOLO_DESCRIPTION = "Solo mine against your own node with getblocktemplate."


def mining_parser() -> argparse.ArgumentParser:
    """`miner`'s options; a parse returns only the options given (the defaults are in the settings)."""
    return command_parser(MINE, "miner", MINING_DESCRIPTION)


def solo_parser() -> argparse.ArgumentParser:
    parser = command_parser(SOLO, "miner solo", SOLO_DESCRIPTION)
    parser.add_argument("--blocks", type=positive_int, metavar="N", help="exit after N blocks the node accepted and "
                        "print their hashes, one a line (on regtest: a `generate` that goes through real mining)")
    return parser


def blocks_wanted(argv: list[str]) -> int | None:
    """`miner solo --blocks N`: how many accepted blocks end the run (None: until stopped)."""
    return vars(solo_parser().parse_args(argv)).get("blocks")


def parse_settings(command: str, argv: list[str]) -> Settings:
    """The settings for `miner` (MINE) or `miner solo` (SOLO); exits with usage and one line on an error."""
    parser = mining_parser() if command == MINE else solo_parser()
    given = vars(parser.parse_args(argv))
    given.pop("blocks", None)  # `miner solo --blocks`: when the run ends, not a setting
    try:
        return resolve(command, given)
    except (cfg.ConfigError, ValueError) as exc:
        parser.error(str(exc))


def benchmark_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="miner benchmark",
                                description="Measure every sha256d engine on 1..N threads.")
    p.add_argument("--engine", type=engine, action="append", help="only this engine (repeatable)")
    p.add_argument("--threads", type=positive_int, help="up to this many threads (default: one per core)")
    p.add_argument("--seconds", type=positive_float, default=3.0, help="seconds per measurement")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def run_benchmark(argv: list[str]) -> int:
    args = benchmark_parser().parse_args(argv)
    results = bench.run(args.engine, args.threads, args.seconds)
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=1))
    else:
        print(bench.format_table(results))
    return 0


SHARED_EMULATOR_FLAGS = ("-h", "--help", "--rate", "--difficulty", "--link")


def emulator_help(name: str, driver) -> str | None:
    """The emulator's own --help text, or None when `name` cannot be emulated (the driver says so:
    no emulator, or a device that is not a serial port, such as a USB HID nano 2.0)."""
    import contextlib
    import io

    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = driver.emulator_main(name, ["--help"])
    except SystemExit as exc:
        code = exc.code
    return out.getvalue() if code in (0, None) else None


def emulate_usage(drivers: dict) -> str:
    """`miner emulate --help`: the devices that can be emulated, each family's own options, and the
    options every emulator takes (from the emulators' own parsers)."""
    import re

    families: dict[str, tuple[list[str], list[str]]] = {}
    shared: list[str] = []
    for name in sorted(drivers):
        driver = drivers[name]
        if driver.name == "cpu":
            continue
        text = emulator_help(name, driver)
        if text is None:
            continue
        names, flags = families.setdefault(driver.name, ([], []))
        names.append(name)
        for match in re.finditer(r"^  (--[\w-]+)(?: (\{[^}]*\}|[^\s,]+))?", text, re.M):
            value = match.group(2) or ""
            if value.startswith("{"):
                value = "|".join(value.strip("{}").split(","))
            flag = f"{match.group(1)} {value}".strip()
            if flag.split()[0] in SHARED_EMULATOR_FLAGS:
                if flag not in shared:
                    shared.append(flag)
            elif flag not in flags:
                flags.append(flag)
    lines = ["usage: miner emulate DEVICE [options]", "",
             "Run a device emulator on a pseudo-terminal; the first line printed is its path, for "
             "miner --device DEVICE:PATH.", "",
             "every emulator takes: " + " ".join(f"[{f}]" for f in shared),
             "  --difficulty D makes nonces come faster; the miner must be told the same: "
             "--device DEVICE:PATH,difficulty=D (without it every nonce is a hardware error)", "",
             "devices (miner emulate DEVICE --help for the details):"]
    for _family, (names, flags) in sorted(families.items()):
        lines.append(f"  {', '.join(names)}" + (f": {' '.join(f'[{f}]' for f in flags)}" if flags else ""))
    if not families:
        lines.append("  none installed")
    return "\n".join(lines)


def run_emulator(argv: list[str]) -> int:
    from miner.devices.manager import load_drivers

    drivers = load_drivers()
    if not argv or argv[0] in ("-h", "--help"):
        print(emulate_usage(drivers))
        return 0 if argv else 2
    emulated = sorted(n for n, d in drivers.items() if d.name != "cpu")
    name = argv[0].lower()
    if name not in drivers or drivers[name].name == "cpu":
        print(f"miner emulate: no emulator for {argv[0]!r} (have: {', '.join(emulated) or 'none'})", file=sys.stderr)
        return 2
    setup_logging()
    return drivers[name].emulator_main(name, argv[1:])


def run_mining(argv: list[str]) -> int:
    from miner.devices.base import DeviceError

    settings = parse_settings(MINE, argv)
    setup_logging(settings.run.quiet, settings.run.debug, settings.notes)
    try:
        kind = compose.source_kind(settings)
        return compose.main(settings, kind, argv)
    except (ValueError, DeviceError) as exc:
        mining_parser().error(str(exc))
    except KeyboardInterrupt:
        log.info("stopped")
    return 0


def run_solo(argv: list[str]) -> int:
    from miner.devices.base import DeviceError
    from miner.sources.node.address import AddressError

    settings = parse_settings(SOLO, argv)
    setup_logging(settings.run.quiet, settings.run.debug, settings.notes)
    try:
        compose.check_node_settings(settings)
    except ValueError as exc:
        solo_parser().error(str(exc))
    try:
        return compose.main(settings, compose.NODE, ["solo", *argv], max_blocks=blocks_wanted(argv))
    except (AddressError, DeviceError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        log.info("stopped")
    return 0


def run_serve(argv: list[str]) -> int:
    """`miner serve`: a Stratum server beside the devices, fed by the pools (proxy) or the node (solo pool)."""
    from miner.app.serve import serve_parser, split_arguments
    from miner.devices.base import DeviceError
    from miner.sources.node.address import AddressError

    options, rest, solo = split_arguments(argv)
    if "--help" in rest:
        serve_parser().print_help()
        print()
    command = SOLO if solo else MINE
    settings = parse_settings(command, rest)
    if settings.file is not None and settings.file.serve:  # [serve] in the config file, under the command line
        from miner.app.serve import file_arguments

        options = split_arguments(file_arguments(settings.file.serve, argv) + argv)[0]
    setup_logging(settings.run.quiet, settings.run.debug, settings.notes)
    parser = solo_parser() if solo else mining_parser()
    try:
        if solo:
            compose.check_node_settings(settings)
        kind = compose.NODE if solo else compose.POOLS
        if not solo and compose.source_kind(settings) != compose.POOLS:
            parser.error("miner serve needs pools (-o URL -u USER -p PASS) or a node (--rpc-url ... --address ...)")
        return compose.main(settings, kind, ["serve", *argv], serving=options,
                            max_blocks=blocks_wanted(rest) if solo else None)
    except (AddressError, DeviceError, ValueError) as exc:
        log.error("%s", exc)
        return 2
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
    if not argv or argv[0] != "show":
        print("usage: miner config show [--config FILE] [any miner option...]", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    given = vars(mining_parser().parse_args(argv[1:]))
    try:
        settings = resolve(MINE, given)
    except (cfg.ConfigError, ValueError) as exc:
        print(f"miner config: {exc}", file=sys.stderr)
        return 2
    print(show(settings))
    return 0


def run_systemd_unit(argv: list[str]) -> int:
    """`miner systemd-unit [--user] [miner options]`: a Type=notify unit with a watchdog, on stdout."""
    from miner.app.service import systemd_unit

    if argv and argv[0] in ("-h", "--help"):
        print("usage: miner systemd-unit [--user] [miner options...] > miner.service\n\nPrints a systemd unit "
              "(Type=notify, WatchdogSec) that runs `miner` with these options; --user for a user unit.")
        return 0
    user = bool(argv) and argv[0] == "--user"
    options = argv[1:] if user else argv
    try:
        resolve(MINE, vars(mining_parser().parse_args(options)))  # the options must be ones `miner` takes
    except (cfg.ConfigError, ValueError) as exc:
        print(f"miner systemd-unit: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(systemd_unit(options, user=user))
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
        return run_solo(argv[1:])
    if argv and argv[0] == "serve":
        return run_serve(argv[1:])
    if argv and argv[0] == "systemd-unit":
        return run_systemd_unit(argv[1:])
    return run_mining(argv)


if __name__ == "__main__":
    sys.exit(main())
