"""The configuration file: TOML (`miner.toml`) or a cgminer JSON config (`cgminer.conf`).

This module only reads the file; `miner.app.settings` merges it, value by value, under the command
line and over the built-in defaults (`miner config show` prints the result and each value's origin).
`miner solo` reads the same file: its [miner], [api], [http] and [devices] tables; it has no use for
the pools (they are ignored, with a line in the log) or for the pool-only [miner] keys. A bad file stops the miner
with one line naming the file, the line and the key.

    [miner]                      # any long option of `miner`, without the dashes
    threads = 2
    [api]
    listen = true
    port = 4028
    allow = "W:127.0.0.1,R:192.168.1.0/24"
    [http]
    listen = "127.0.0.1:8080"
    token = "change-me"
    [[pool]]
    url = "stratum+tcp://pool.example:3333"
    user = "me.worker1"
    pass = "x"
    suggest-diff = 0.001
    xnsub = false
    tls = false
    [devices.bm1397]             # applies to every device of this driver (found or listed)
    frequency = 400
    chips = 1
    ports = ["/dev/ttyUSB0"]     # listed explicitly, as --device bm1397:/dev/ttyUSB0,...
    [devices.cpu]
    enabled = false
    [serve]                      # `miner serve` only: its long options, without the dashes
    listen = "0.0.0.0:3333"
    listen-sv2 = "0.0.0.0:3336"
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miner.app import arguments
from miner.devices.base import DeviceSpec


class ConfigError(Exception):
    """One line: the file, the line, the key, what is wrong and what is expected."""


def default_config_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("miner")) / "miner.toml"


def cgminer_config_path() -> Path:
    """Where cgminer looks when it is given no -c (cgminer.c load_default_config)."""
    return Path.home() / ".cgminer" / "cgminer.conf"


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
        return value.strip().lower() in ("true", "yes", "1", "on")
    raise ValueError("expected true or false")


def _number(kind: type) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"expected a{'n integer' if kind is int else ' number'}")
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a{'n integer' if kind is int else ' number'}, got {value!r}") from None
        if kind is float and not number >= 0:
            raise ValueError(f"expected a number >= 0, got {value!r}")
        return number
    return convert


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)  # e.g. api allow = ["W:127.0.0.1", "R:10.0.0.0/8"]
    raise ValueError(f"expected a string, got {value!r}")


def _texts(value: Any) -> list[str]:
    """A repeatable option (--payout-address, --webhook): one string or a list of them."""
    items = value if isinstance(value, list) else [value]
    return [_text(item) for item in items]


def _parsed(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    """The command line's own parser for a value (a percentage, a rate with a k/M/G suffix), so the
    file takes exactly what the flag takes."""
    def convert(value: Any) -> Any:
        try:
            return parse(str(value))
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise ValueError(str(exc)) from None
    return convert


def _choice(*names: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = _text(value)
        if text not in names:
            raise ValueError(f"expected one of {', '.join(names)}, got {text!r}")
        return text
    return convert


# (table, key in the file) -> (option dest in miner.app.settings.OPTIONS, converter)
SETTINGS: dict[tuple[str, str], tuple[str, Callable[[Any], Any]]] = {
    ("miner", "threads"): ("threads", _number(int)),
    ("miner", "engine"): ("engine", _text),
    ("miner", "cpu"): ("cpu", _bool),
    ("miner", "hotplug"): ("hotplug", _number(float)),
    ("miner", "temp-cutoff"): ("temp_cutoff", _number(float)),
    ("miner", "status-interval"): ("status_interval", _number(float)),
    ("miner", "sandbox-diff"): ("sandbox_diff", _number(float)),
    ("miner", "failover-switch-delay"): ("failover_switch_delay", _number(float)),
    ("miner", "suggest-diff"): ("suggest_diff", _number(float)),
    ("miner", "no-version-rolling"): ("no_version_rolling", _bool),
    ("miner", "tls-no-verify"): ("tls_no_verify", _bool),
    ("miner", "tls-ca"): ("tls_ca", _text),
    ("miner", "no-tui"): ("no_tui", _bool),
    ("miner", "protocol-log"): ("protocol_log", _bool),
    ("miner", "stats-file"): ("stats_file", _text),
    ("miner", "quiet"): ("quiet", _bool),
    ("miner", "debug"): ("debug", _bool),
    ("api", "listen"): ("api_listen", _bool),
    ("api", "port"): ("api_port", _number(int)),
    ("api", "allow"): ("api_allow", _text),
    ("http", "listen"): ("http", _text),
    ("http", "token"): ("http_token", _text),
    # [alerts]: the payout check, alert sinks and service logging (docs/alerts.md, docs/payout.md)
    ("alerts", "payout-address"): ("payout_address", _texts),
    ("alerts", "payout-min"): ("payout_min", _parsed(arguments.percent)),
    ("alerts", "payout-check"): ("payout_check", _choice("warn", "alert", "enforce")),
    ("alerts", "alert-cmd"): ("alert_cmd", _text),
    ("alerts", "cmd-sick"): ("cmd_sick", _text),
    ("alerts", "cmd-dead"): ("cmd_dead", _text),
    ("alerts", "webhook"): ("webhook", _texts),
    ("alerts", "webhook-format"): ("webhook_format", _choice("json", "ntfy", "discord")),
    ("alerts", "mqtt"): ("mqtt", _text),
    ("alerts", "mqtt-user"): ("mqtt_user", _text),
    ("alerts", "mqtt-pass"): ("mqtt_pass", _text),
    ("alerts", "hashrate-below"): ("hashrate_below", _parsed(arguments.hash_rate)),
    ("alerts", "hashrate-minutes"): ("hashrate_minutes", _parsed(arguments.positive_float)),
    ("alerts", "temp"): ("temp_alert", _parsed(arguments.positive_float)),
    ("alerts", "log-file"): ("log_file", _text),
    ("alerts", "syslog"): ("syslog", _bool),
    ("alerts", "sharelog"): ("sharelog", _text),
}
POOL_KEYS = {"url", "user", "pass", "password", "tls", "tls-verify", "tls-ca", "suggest-diff", "xnsub",
             "version-rolling"}


@dataclass
class PoolEntry:
    url: str
    user: str
    password: str = "x"
    tls: bool | None = None
    tls_verify: bool | None = None
    tls_ca: str | None = None
    suggest_difficulty: float | None = None
    xnsub: bool = False
    version_rolling: bool | None = None
    quota: int = 1  # cgminer.conf "quota": "N;URL" (cgminer write_config writes it for quota != 1)


@dataclass
class FileConfig:
    path: Path
    kind: str  # "toml" or "cgminer"
    options: dict[str, Any] = field(default_factory=dict)  # option dest -> value
    pools: list[PoolEntry] = field(default_factory=list)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)  # driver -> options
    ignored: list[str] = field(default_factory=list)  # cgminer keys this miner has no use for
    serve: dict[str, Any] = field(default_factory=dict)  # [serve]: `miner serve`'s options (miner/app/serve.py)


# ------------------------------------------------------------------ locating keys for messages
def _toml_line(text: str, table: str, key: str, index: int | None = None) -> int | None:
    """The line where `key` is set inside `[table]` (or the index-th `[[table]]`)."""
    current, seen = "", -1
    header = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
    assignment = re.compile(r"^\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_.-]+)\s*=")
    for number, line in enumerate(text.splitlines(), 1):
        m = header.match(line)
        if m:
            current = m.group(2).replace('"', "").replace("'", "")
            if m.group(1) == "[[" and current == table:
                seen += 1
            continue
        m = assignment.match(line)
        if not m:
            continue
        name = m.group(1).strip("\"'")
        full = f"{current}.{name}" if current else name
        matches = full == f"{table}.{key}" if table else name == key
        if matches and (index is None or seen == index):
            return number
    return None


def _json_line(text: str, key: str, occurrence: int = 0) -> int | None:
    """The line of the occurrence-th `"key":` in a JSON text (pools[1].url is the second "url")."""
    needle = re.compile(re.escape(json.dumps(key)) + r"\s*:")
    seen = 0
    for number, line in enumerate(text.splitlines(), 1):
        for _ in needle.finditer(line):
            if seen == occurrence:
                return number
            seen += 1
    return None


def _where(path: Path, line: int | None) -> str:
    return f"{path}:{line}" if line else str(path)


# ------------------------------------------------------------------ reading
def load(path: str | Path) -> FileConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if path.suffix.lower() in (".conf", ".json") or text.lstrip().startswith("{"):
        return _load_cgminer(path, text)
    return _load_toml(path, text)


def _load_toml(path: Path, text: str) -> FileConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already says "(at line N, column M)"
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    config = FileConfig(path, "toml")
    for table, value in data.items():
        if table in ("miner", "api", "http", "alerts"):
            if not isinstance(value, dict):
                raise ConfigError(f"{_where(path, _toml_line(text, '', table))}: {table!r} must be a table "
                                  f"([{table}])")
            for key, item in value.items():
                line = _toml_line(text, table, key)
                setting = SETTINGS.get((table, key))
                if setting is None:
                    names = [k for t, k in SETTINGS if t == table]
                    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
                    hint = f"did you mean '{table}.{close[0]}'? " if close else ""
                    raise ConfigError(f"{_where(path, line)}: unknown key '{table}.{key}' ({hint}known: "
                                      f"{', '.join(names)})")
                dest, convert = setting
                try:
                    config.options[dest] = convert(item)
                except ValueError as exc:
                    raise ConfigError(f"{_where(path, line)}: key '{table}.{key}': {exc}") from None
        elif table == "pool":
            if not isinstance(value, list):
                raise ConfigError(f"{_where(path, _toml_line(text, '', 'pool'))}: pools are [[pool]] tables")
            for index, entry in enumerate(value):
                config.pools.append(_toml_pool(path, text, index, entry))
        elif table == "serve":
            config.serve = _serve_table(path, text, value)
        elif table == "devices":
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                raise ConfigError(f"{path}: 'devices' holds one table per driver, like [devices.icarus]")
            for driver, options in value.items():
                config.devices[driver.lower()] = _device_options(path, text, driver, options)
        else:
            line = _toml_line(text, "", table) or next(
                (n for n, raw in enumerate(text.splitlines(), 1) if re.match(rf"^\s*\[+\s*{re.escape(table)}\b", raw)),
                None)
            raise ConfigError(f"{_where(path, line)}: unknown key '{table}' (tables: miner, api, http, alerts, "
                              "pool, devices, serve)")
    return config


# [serve]: `miner serve`'s own options; the values are parsed by its parser (miner/app/serve.py), under the
# command line, so a bad one is the same one line as on the command line
SERVE_KEYS = ("listen", "listen-sv2", "sv2-authority-key", "sv2-share-batch", "sv2-cert-validity", "serve-password",
              "serve-rate", "serve-start-diff", "serve-min-diff", "max-connections")


def _serve_table(path: Path, text: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{_where(path, _toml_line(text, '', 'serve'))}: 'serve' must be a table ([serve])")
    for key, item in value.items():
        where = _where(path, _toml_line(text, "serve", key))
        if key not in SERVE_KEYS:
            close = difflib.get_close_matches(key, SERVE_KEYS, n=1, cutoff=0.6)
            hint = f"did you mean 'serve.{close[0]}'? " if close else ""
            raise ConfigError(f"{where}: unknown key 'serve.{key}' ({hint}known: {', '.join(SERVE_KEYS)})")
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise ConfigError(f"{where}: key 'serve.{key}' must be a string or a number")
    return dict(value)


def _toml_pool(path: Path, text: str, index: int, entry: dict[str, Any]) -> PoolEntry:
    def fail(key: str, why: str) -> ConfigError:
        return ConfigError(f"{_where(path, _toml_line(text, 'pool', key, index))}: key 'pool[{index}].{key}': {why}")

    for key in entry:
        if key not in POOL_KEYS:
            raise fail(key, f"unknown (known: {', '.join(sorted(POOL_KEYS))})")
    if "url" not in entry:
        raise ConfigError(f"{path}: pool {index} has no url")
    values: dict[str, Any] = {}
    for key, convert in (("url", _text), ("user", _text), ("pass", _text), ("password", _text), ("tls", _bool),
                         ("tls-verify", _bool), ("tls-ca", _text), ("suggest-diff", _number(float)),
                         ("xnsub", _bool), ("version-rolling", _bool)):
        if key in entry:
            try:
                values[key] = convert(entry[key])
            except ValueError as exc:
                raise fail(key, str(exc)) from None
    return _pool_entry(values, lambda key, why: fail(key, why))


def _pool_entry(values: dict[str, Any], fail: Callable[[str, str], ConfigError]) -> PoolEntry:
    from miner.sources.stratum.url import parse_pool_url

    try:
        parse_pool_url(values["url"])
    except ValueError as exc:
        raise fail("url", str(exc)) from None
    if not values.get("user"):
        raise fail("user", "every pool needs a user (worker name)")
    return PoolEntry(url=values["url"], user=values["user"],
                     password=values.get("pass", values.get("password", "x")), tls=values.get("tls"),
                     tls_verify=values.get("tls-verify"), tls_ca=values.get("tls-ca"),
                     suggest_difficulty=values.get("suggest-diff"), xnsub=values.get("xnsub", False),
                     version_rolling=values.get("version-rolling"))


def _device_options(path: Path, text: str, driver: str, options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options.items():
        line = _toml_line(text, f"devices.{driver}", key)
        try:
            if key == "enabled":
                out[key] = _bool(value)
            elif key == "ports":
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError("expected a list of port paths")
                out[key] = value
            elif key in ("frequency", "difficulty"):
                out[key] = _number(float)(value)
            elif key in ("chips", "threads"):
                out[key] = _number(int)(value)
            elif isinstance(value, str | int | float) and not isinstance(value, bool):
                out[key] = value  # a driver's own option, passed on as key=value
            elif isinstance(value, bool):
                out[key] = "1" if value else "0"
            else:
                raise ValueError(f"expected a number or a string, got {value!r}")
        except ValueError as exc:
            raise ConfigError(f"{_where(path, line)}: key 'devices.{driver}.{key}': {exc}") from None
    return out


# cgminer.conf keys (JSON, values usually strings) -> our option dest and converter
CGMINER_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "api-listen": ("api_listen", _bool),
    "api-port": ("api_port", _number(int)),
    "api-allow": ("api_allow", _text),
    "hotplug": ("hotplug", _number(float)),
    "temp-cutoff": ("temp_cutoff", _number(float)),
    "log": ("status_interval", _number(float)),
    "suggest-diff": ("suggest_diff", _number(float)),
    "failover-switch-delay": ("failover_switch_delay", _number(float)),
    "quiet": ("quiet", _bool),
    "debug": ("debug", _bool),
    # cgminer's own options as its write_config saves them (docs/cli.md §2): "name" : "value" for
    # options with an argument, "name" : true for the others
    "text-only": ("no_tui", _bool),
    "protocol-dump": ("protocol_log", _bool),
    "api-description": ("api_description", _text),
    "failover-only": ("failover_only", _bool),
    "no-submit-stale": ("no_submit_stale", _bool),
    "expiry": ("expiry", _number(float)),
    "scan-time": ("scan_time", _number(float)),
    "rotate": ("rotate", _number(float)),
    "btc-address": ("btc_address", _text),
    "sharelog": ("sharelog", _text),  # cgminer.c opt_config_table: --sharelog
    "cmd-sick": ("cmd_sick", _text),  # bfgminer's conf (same JSON shape): --cmd-sick / --cmd-dead
    "cmd-dead": ("cmd_dead", _text),
}
# write_config saves the pool strategy as one of these keys set to true (failover: "failover-only")
STRATEGY_KEYS = ("load-balance", "balance", "round-robin")


def _load_cgminer(path: Path, text: str) -> FileConfig:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: a cgminer config is a JSON object {{...}}")
    config = FileConfig(path, "cgminer")
    for key, value in data.items():
        line = _json_line(text, key)
        if key == "pools":
            if not isinstance(value, list):
                raise ConfigError(f"{_where(path, line)}: key 'pools': expected a list of pools")
            for index, entry in enumerate(value):
                if not isinstance(entry, dict):
                    raise ConfigError(f"{_where(path, line)}: key 'pools[{index}]': expected an object")

                def fail(k: str, why: str, index: int = index, near: int | None = line) -> ConfigError:
                    where = _where(path, _json_line(text, k, _nth_pool_key(data["pools"], index, k)) or near)
                    return ConfigError(f"{where}: key 'pools[{index}].{k}': {why}")
                if "url" not in entry and "quota" not in entry:
                    raise fail("url", "missing (a pool has \"url\" or \"quota\": \"N;URL\")")
                values = {k: entry[k] for k in ("url", "user", "pass", "quota") if k in entry}
                for k, v in values.items():
                    if not isinstance(v, str):
                        raise fail(k, f"expected a string, got {v!r}")
                quota = 1
                if "quota" in values:  # cgminer write_config: "quota" : "N;URL" instead of "url"
                    from miner.sources.stratum.strategy import parse_quota

                    try:
                        quota, values["url"] = parse_quota(values.pop("quota"))
                    except ValueError as exc:
                        raise fail("quota", str(exc).split(": ", 1)[-1]) from None
                pool = _pool_entry(values, fail)
                pool.quota = quota
                if entry.get("extranonce-subscribe") is True:  # write_config's key for #xnsub
                    pool.xnsub = True
                config.pools.append(pool)
        elif key in STRATEGY_KEYS:
            try:
                if _bool(value):
                    config.options["strategy"] = key
            except ValueError as exc:
                raise ConfigError(f"{_where(path, line)}: key '{key}': {exc}") from None
        elif key in _driver_keys() and _driver_keys()[key].ignored:
            config.ignored.append(key)  # e.g. icarus-timing: nothing here to set (docs/cli.md §4)
        elif key in _driver_keys():
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise ConfigError(f"{_where(path, line)}: key '{key}': expected a value like \"200\", got {value!r}")
            config.options.setdefault("driver_flags", []).append(f"--{key}={value}")
        elif key == "api-network":
            # cgminer: any address may read; privileged commands still need an --api-allow W: entry
            if _bool(value) and "api_allow" not in config.options:
                config.options["api_allow"] = "R:0/0"
        elif key in CGMINER_KEYS:
            dest, convert = CGMINER_KEYS[key]
            try:
                config.options[dest] = convert(value)
            except ValueError as exc:
                raise ConfigError(f"{_where(path, line)}: key '{key}': {exc}") from None
        else:
            config.ignored.append(key)
    return config


def _driver_keys() -> dict:
    from miner.app.cgminer_flags import CONFIG_KEYS

    return CONFIG_KEYS


def _nth_pool_key(pools: list, index: int, key: str) -> int:
    """How many earlier pools also have `key` (to find this pool's occurrence of it)."""
    return sum(1 for p in pools[:index] if isinstance(p, dict) and key in p)


# ------------------------------------------------------------------ derived from the file
def device_specs(file: FileConfig) -> list[str]:
    """`--device` specs for the ports a [devices.DRIVER] table lists."""
    specs = []
    for driver, options in file.devices.items():
        if driver == "cpu" or not options.get("enabled", True):
            continue
        extra = "".join(f",{k}={v}" for k, v in options.items() if k not in ("ports", "enabled"))
        specs.extend(f"{driver}:{port}{extra}" for port in options.get("ports", []))
    return specs


class ConfiguredDriver:
    """A driver whose devices get the [devices.DRIVER] options of the file (a spec's own win)."""

    def __init__(self, driver: Any, options: dict[str, Any]):
        self._driver = driver
        self._options = {k: str(v) for k, v in options.items() if k not in ("ports", "enabled")}
        self.name, self.aliases, self.usb_ids = driver.name, driver.aliases, driver.usb_ids
        self.description, self.companion_option = driver.description, driver.companion_option

    def create(self, spec: DeviceSpec, get_work, on_nonce, index: int):
        merged = DeviceSpec(spec.driver, spec.port, {**self._options, **spec.options})
        return self._driver.create(merged, get_work, on_nonce, index)

    def emulator_main(self, name: str, argv: list[str]) -> int:
        return self._driver.emulator_main(name, argv)


def configured_drivers(drivers: dict[str, Any], file: FileConfig | None) -> dict[str, Any]:
    """Drivers with the file's per-driver options; a driver with `enabled = false` is left out."""
    if file is None or not file.devices:
        return drivers
    out: dict[str, Any] = {}
    wrapped: dict[int, Any] = {}
    for name, driver in drivers.items():
        options = file.devices.get(driver.name)
        if options is None:
            out[name] = driver
        elif driver.name != "cpu" and not options.get("enabled", True):
            continue
        else:
            out[name] = wrapped.setdefault(id(driver), ConfiguredDriver(driver, options))
    return out
