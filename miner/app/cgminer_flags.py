"""cgminer's and bfgminer's per-driver options, mapped onto this miner's per-device options.

cgminer sets a driver's clock with one flag per product (`--gekko-compacf-freq 200`); here every
device takes `key=value` options (`--device bm1397:PORT,frequency=200`). `DRIVER_FLAGS` is the
map, one row per flag, each from the option table (`opt_config_table`) of cgminer.c (with the
GekkoScience driver, cgminer 4.11+ / kanoi's) or bfgminer's miner.c; docs/cli.md §4 lists them with
what each does here. A row applies its option to the devices of its driver whose model is one of
`models` (the chip for BM13xx, the Icarus model, the Avalon model); a device's own `--device`
options win over it, as the config file's per-driver options do.

bfgminer's `--set-device DRIVER:KEY=VALUE` (miner.c `opt_set_device`, "Set default parameters on
devices") is the general form: KEY=VALUE for every device of that driver (or alias).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from miner.devices.base import DeviceSpec


@dataclass(frozen=True)
class DriverFlag:
    flag: str  # cgminer's option, e.g. --gekko-compacf-freq
    driver: str  # this miner's driver family (DriverInfo.name)
    models: frozenset[str]  # models/chips it applies to
    key: str  # the per-device option it sets
    product: str  # what cgminer says it is for (docs/cli.md)
    ignored: str = ""  # non-empty: no equivalent here, and why (a line at start)


def _row(flag: str, driver: str, models: Iterable[str], key: str, product: str, ignored: str = "") -> DriverFlag:
    return DriverFlag(flag, driver, frozenset(models), key, product, ignored)


_BM1384 = ("bm1384",)
_BM1387 = ("bm1387",)
_BM1397 = ("bm1397",)
_U1U2 = ("u1", "u2", "antminer-u1", "antminer-u2")
_U3 = ("u3", "antminer-u3", "au3")
DRIVER_FLAGS: tuple[DriverFlag, ...] = (
    # cgminer driver-gekko.c options (opt_config_table, USE_GEKKO): MHz
    _row("--gekko-compac-freq", "bm13xx", _BM1384, "frequency", "GekkoScience Compac (BM1384)"),
    _row("--gekko-2pac-freq", "bm13xx", _BM1384, "frequency", "GekkoScience 2Pac (BM1384)"),
    _row("--gekko-terminus-freq", "bm13xx", _BM1384, "frequency", "GekkoScience Terminus (BM1384)"),
    _row("--gekko-newpac-freq", "bm13xx", _BM1387, "frequency", "GekkoScience NewPac (BM1387)"),
    _row("--gekko-r606-freq", "bm13xx", _BM1387, "frequency", "GekkoScience Terminus R606 (BM1387)"),
    _row("--gekko-compacf-freq", "bm13xx", _BM1397, "frequency", "GekkoScience Compac F (BM1397)"),
    _row("--gekko-r909-freq", "bm13xx", _BM1397, "frequency", "GekkoScience Terminus R909 (BM1397)"),
    # cgminer driver-icarus.c options (USE_ICARUS): Antminer U1/U2 and U3 clocks
    _row("--anu-freq", "icarus", _U1U2, "freq", "Antminer U1/U2"),
    _row("--au3-freq", "icarus", _U3, "freq", "Antminer U3"),
    _row("--au3-volt", "icarus", _U3, "voltage", "Antminer U3",
         ignored="the U3's core voltage is not set by this driver (its clock is: --au3-freq)"),
    _row("--icarus-options", "icarus", (), "", "Icarus baud:work_division:fpga_count:...",
         ignored="the Icarus model (golden-nonce identified, or --device u3:PORT) fixes baud and engines here"),
    _row("--icarus-timing", "icarus", (), "", "Icarus hash timing",
         ignored="the hash time is measured from the nonces here, never set (docs/icarus.md)"),
    # cgminer driver-avalon7.c / driver-avalon8.c: MHz, or MHz:MHz:MHz per PLL
    _row("--avalon7-freq", "avalon", ("avalon7",), "frequency", "Avalon7"),
    _row("--avalon8-freq", "avalon", ("avalon8",), "frequency", "Avalon8"),
    _row("--avalon4-freq", "avalon", ("avalon4",), "frequency", "Avalon4"),
    _row("--avalon7-voltage", "avalon", ("avalon7",), "voltage", "Avalon7"),
    _row("--avalon8-voltage", "avalon", ("avalon8",), "voltage", "Avalon8"),
)
FLAGS_BY_NAME = {row.flag: row for row in DRIVER_FLAGS}
CONFIG_KEYS = {row.flag[2:]: row for row in DRIVER_FLAGS}  # how cgminer's write_config names them


class AppendFlag(argparse.Action):
    """Keeps which flag said it: `--au3-freq 225` is stored as "--au3-freq=225"."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        items.append(f"{option_string}={values}")
        setattr(namespace, self.dest, items)


def split(text: str) -> tuple[DriverFlag, str]:
    flag, _, value = text.partition("=")
    row = FLAGS_BY_NAME.get(flag)
    if row is None:
        raise ValueError(f"{flag}: not a per-driver option this miner knows")
    return row, value.strip()


def ignored_notes(flags: Iterable[str]) -> list[str]:
    """One line per flag with no equivalent here (logged when mining starts; mining goes on)."""
    out = []
    for text in flags:
        row, _ = split(text)
        if row.ignored:
            out.append(f"{row.flag} ignored: {row.ignored}")
    return out


@dataclass
class ModelDefaults:
    """Per-device option defaults by (driver, model), from the flags above and --set-device."""

    by_model: dict[tuple[str, str], dict[str, str]]  # (driver, model) -> options
    by_driver: dict[str, dict[str, str]]  # driver family or alias -> options (--set-device)

    def options_for(self, driver: str, spec: DeviceSpec) -> dict[str, str]:
        model = (spec.options.get("chip") or spec.options.get("model") or spec.driver).lower()
        out: dict[str, str] = {}
        out.update(self.by_driver.get(driver, {}))
        if spec.driver != driver:
            out.update(self.by_driver.get(spec.driver, {}))
        out.update(self.by_model.get((driver, model), {}))
        return out

    def __bool__(self) -> bool:
        return bool(self.by_model or self.by_driver)


def model_defaults(flags: Iterable[str], set_device: Iterable[str]) -> ModelDefaults:
    """ValueError with one line for a bad value, a flag given twice with two values for the same
    devices, or a --set-device that is not DRIVER:KEY=VALUE."""
    by_model: dict[tuple[str, str], dict[str, str]] = {}
    said: dict[tuple[str, str, str], str] = {}
    for text in flags:
        row, value = split(text)
        if row.ignored:
            continue
        if not value:
            raise ValueError(f"{row.flag}: needs a value (MHz)")
        for model in row.models:
            where = (row.driver, model, row.key)
            if where in said and by_model[(row.driver, model)][row.key] != value:
                raise ValueError(f"{row.flag} {value} and {said[where]} set the same {model} devices' {row.key}; "
                                 "give one (a device's own --device ...,"
                                 f"{row.key}=MHz sets one device)")
            said[where] = f"{row.flag} {value}"
            by_model.setdefault((row.driver, model), {})[row.key] = value
    by_driver: dict[str, dict[str, str]] = {}
    for text in set_device:
        head, sep, assignment = text.partition(":")
        key, eq, value = assignment.partition("=")
        if not sep or not eq or not head.strip() or not key.strip():
            raise ValueError(f"--set-device {text!r}: expected DRIVER:KEY=VALUE, e.g. bm1397:frequency=400")
        by_driver.setdefault(head.strip().lower(), {})[key.strip().lower()] = value.strip()
    return ModelDefaults(by_model, by_driver)


class DefaultedDriver:
    """A driver whose devices get the flags' options for their model (a spec's own win)."""

    def __init__(self, driver: Any, defaults: ModelDefaults):
        self._driver = driver
        self._defaults = defaults
        self.name, self.aliases, self.usb_ids = driver.name, driver.aliases, driver.usb_ids
        self.description = driver.description

    def create(self, spec: DeviceSpec, get_work, on_nonce, index: int):
        merged = DeviceSpec(spec.driver, spec.port, {**self._defaults.options_for(self.name, spec), **spec.options})
        return self._driver.create(merged, get_work, on_nonce, index)

    def emulator_main(self, name: str, argv: list[str]) -> int:
        return self._driver.emulator_main(name, argv)


def with_defaults(drivers: Mapping[str, Any], defaults: ModelDefaults) -> dict[str, Any]:
    if not defaults:
        return dict(drivers)
    wrapped: dict[int, DefaultedDriver] = {}
    return {name: wrapped.setdefault(id(d), DefaultedDriver(d, defaults)) for name, d in drivers.items()}
