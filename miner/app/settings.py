"""Every setting of `miner` and `miner solo` as typed, frozen dataclasses, and where each came from.

One table (`OPTIONS`) names each option once: its flags, its default, the commands that take it and
the dataclass field it fills. The command-line parser is built from the table with every default
suppressed, so what argparse returns is exactly what the command line said; the merge then takes,
value by value, the command line over the config file (`miner.app.config` reads it) over the
table's default, and records the origin of each value for `miner config show`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miner import USER_AGENT
from miner.app import config as cfg
from miner.app.arguments import engine, hash_rate, percent, positive_float, positive_int
from miner.sources.node.template import MAX_TAG

MINE, SOLO = "mine", "solo"
BOTH = frozenset({MINE, SOLO})


@dataclass(frozen=True)
class PoolSettings:
    urls: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    passwords: tuple[str, ...] = ()
    suggest_diff: float | None = None
    no_version_rolling: bool = False
    failover_switch_delay: float = 0.0
    tls_no_verify: bool = False
    tls_ca: str | None = None


@dataclass(frozen=True)
class DeviceSettings:
    specs: tuple[str, ...] = ()  # --device DRIVER:PORT[,key=value...]
    hotplug: float = 5.0  # seconds between USB scans; 0 scans once
    cpu: bool | None = None  # None: the CPU mines only when no board is found
    threads: int | None = None
    engine: str | None = None


@dataclass(frozen=True)
class OperatingSettings:
    config: str | None = None
    api_listen: bool = False
    api_port: int = 4028
    api_allow: str | None = None
    http: str | None = None
    http_token: str | None = None
    no_tui: bool = False
    protocol_log: bool = False
    stats_file: str | None = None  # None: the user data dir


@dataclass(frozen=True)
class NodeSettings:
    rpc_url: str = ""
    address: str = ""
    rpc_user: str = ""
    rpc_password: str = ""
    rpc_cookie: str | None = None
    coinbase_tag: str = ""
    refresh_interval: float = 30.0
    # not on the command line: how the source waits and retries (tests shorten them)
    poll_interval: float = 1.0
    retry_cap: float = 10.0
    rpc_timeout: float = 30.0


@dataclass(frozen=True)
class RunSettings:
    time_limit: float | None = None
    status_interval: float = 5.0
    quiet: bool = False
    debug: bool = False
    sandbox_diff: float | None = None


@dataclass(frozen=True)
class AlertSettings:
    """The payout check, alert sinks and running as a service (docs/payout.md, docs/alerts.md)."""

    payout_addresses: tuple[str, ...] = ()
    payout_min: float | None = None  # None: miner.sources.payout.DEFAULT_MIN_PERCENT
    payout_check: str = "warn"
    alert_cmd: str | None = None
    cmd_sick: str | None = None
    cmd_dead: str | None = None
    webhooks: tuple[str, ...] = ()
    webhook_format: str | None = None  # None: guessed from each URL
    mqtt: str | None = None
    mqtt_user: str | None = None
    mqtt_pass: str | None = None
    hashrate_below: float | None = None  # H/s
    hashrate_minutes: float = 5.0
    temp_alert: float | None = 85.0
    log_file: str | None = None
    syslog: bool = False
    sharelog: str | None = None


@dataclass(frozen=True)
class Settings:
    pools: PoolSettings = PoolSettings()
    devices: DeviceSettings = DeviceSettings()
    operating: OperatingSettings = OperatingSettings()
    node: NodeSettings = NodeSettings()
    run: RunSettings = RunSettings()
    alerts: AlertSettings = AlertSettings()
    origins: Mapping[str, str] = field(default_factory=dict)  # option dest -> "cli", "default" or "file PATH"
    file: cfg.FileConfig | None = None
    pools_from: str = "none"
    notes: tuple[str, ...] = ()  # what the file had that is not used, for the log once it is set up


SECTIONS: dict[str, type] = {"pools": PoolSettings, "devices": DeviceSettings, "operating": OperatingSettings,
                             "node": NodeSettings, "run": RunSettings, "alerts": AlertSettings}


@dataclass(frozen=True)
class Option:
    dest: str  # the name the config file's keys map to (miner.app.config.SETTINGS)
    flags: tuple[str, ...]
    section: str  # the Settings field holding the dataclass
    attr: str  # the field in that dataclass
    help: str
    commands: frozenset[str] = BOTH
    group: str = ""  # "", "pools", "devices", "operating", "node"
    argparse: Mapping[str, Any] = field(default_factory=dict)  # action, type, metavar, required

    @property
    def default(self) -> Any:
        return dataclasses.asdict(SECTIONS[self.section]())[self.attr]


def _flag(dest: str, flags: tuple[str, ...], section: str, help: str, attr: str | None = None,
          commands: frozenset[str] = BOTH, group: str = "", **kwargs: Any) -> Option:
    return Option(dest, flags, section, attr or dest, help, commands, group, kwargs)


_POOL_ONLY = frozenset({MINE})
_SOLO_ONLY = frozenset({SOLO})
OPTIONS: tuple[Option, ...] = (
    _flag("url", ("-o", "--url"), "pools", "stratum+tcp://HOST:PORT or stratum+ssl://HOST:PORT (append #xnsub to "
          "subscribe to extranonce changes)", "urls", _POOL_ONLY, "pools", action="append", metavar="URL"),
    _flag("user", ("-u", "--user"), "pools", "pool user (worker) name", "users", _POOL_ONLY, "pools",
          action="append"),
    _flag("password", ("-p", "--pass"), "pools", "pool password", "passwords", _POOL_ONLY, "pools",
          action="append"),
    _flag("suggest_diff", ("--suggest-diff",), "pools", "ask pools for this share difficulty",
          commands=_POOL_ONLY, group="pools", type=positive_float),
    _flag("no_version_rolling", ("--no-version-rolling",), "pools", "do not ask for BIP310 version rolling",
          commands=_POOL_ONLY, group="pools", action="store_true"),
    _flag("failover_switch_delay", ("--failover-switch-delay",), "pools",
          "seconds a higher-priority pool must be back before mining returns to it", commands=_POOL_ONLY,
          group="pools", type=float, metavar="S"),
    _flag("tls_no_verify", ("--tls-no-verify",), "pools", "do not verify pool TLS certificates",
          commands=_POOL_ONLY, group="pools", action="store_true"),
    _flag("tls_ca", ("--tls-ca",), "pools", "CA certificates to verify pool TLS with", commands=_POOL_ONLY,
          group="pools", metavar="FILE"),
    _flag("rpc_url", ("--rpc-url",), "node", "node JSON-RPC, e.g. http://127.0.0.1:18443 (regtest)",
          commands=_SOLO_ONLY, group="node", required=True),
    _flag("rpc_user", ("--rpc-user",), "node", "RPC user", commands=_SOLO_ONLY, group="node"),
    _flag("rpc_password", ("--rpc-pass",), "node", "RPC password", commands=_SOLO_ONLY, group="node"),
    _flag("rpc_cookie", ("--rpc-cookie",), "node", "Bitcoin Core's cookie file instead of user/password",
          commands=_SOLO_ONLY, group="node", metavar="FILE"),
    _flag("address", ("--address",), "node", "payout address (P2PKH, P2SH, P2WPKH, P2WSH or P2TR)",
          commands=_SOLO_ONLY, group="node", required=True),
    _flag("coinbase_tag", ("--coinbase-tag",), "node", f"text put in the coinbase (at most {MAX_TAG} bytes)",
          commands=_SOLO_ONLY, group="node"),
    _flag("refresh", ("--refresh",), "node", "seconds between template refreshes for new transactions",
          "refresh_interval", _SOLO_ONLY, "node", type=positive_float, metavar="S"),
    _flag("devices", ("--device", "-d"), "devices", "use this device: DRIVER:PORT[,key=value...], e.g. "
          "icarus:/dev/ttyUSB0 or bm1397:/dev/ttyACM0,chips=1 (repeatable; USB sticks are also found by their ids)",
          "specs", group="devices", action="append", metavar="SPEC"),
    _flag("hotplug", ("--hotplug",), "devices", "seconds between scans for plugged/unplugged devices (0: scan once "
          "at start)", group="devices", type=float, metavar="S"),
    _flag("cpu", ("--cpu",), "devices", "mine with the CPU too (default: only when no board is found)",
          group="devices", action="store_true"),
    _flag("cpu", ("--no-cpu",), "devices", "never mine with the CPU", group="devices", action="store_false"),
    _flag("threads", ("-t", "--threads"), "devices", "CPU mining threads (default: one per core)", type=positive_int),
    _flag("engine", ("--engine",), "devices", "sha256d engine (default: the fastest this CPU has)", type=engine),
    _flag("sandbox_diff", ("--sandbox-diff",), "run", "share difficulty of the local sandbox job (default 0.02)",
          commands=_POOL_ONLY, type=positive_float),
    _flag("time_limit", ("--time-limit",), "run", "stop after this many seconds", type=positive_float),
    _flag("status_interval", ("--status-interval",), "run", "seconds between status lines", type=positive_float),
    _flag("quiet", ("-q", "--quiet"), "run", "only warnings and errors", action="store_true"),
    _flag("debug", ("-D", "--debug"), "run", "debug logging", action="store_true"),
    _flag("config", ("--config",), "operating", f"TOML config file, or a cgminer JSON config (default "
          f"{cfg.default_config_path()} if it exists); command-line options win over it", group="operating",
          metavar="FILE"),
    _flag("api_listen", ("--api-listen",), "operating", "serve the cgminer API (port 4028)", group="operating",
          action="store_true"),
    _flag("api_port", ("--api-port",), "operating", "cgminer API port", group="operating", type=int,
          metavar="PORT"),
    _flag("api_allow", ("--api-allow",), "operating", "who may use the API: [W:|R:]addr[/prefix],... (W: may also "
          "send privileged commands, e.g. W:127.0.0.1). Default: read-only, from 127.0.0.1 only; with a list the API "
          "listens on every address", group="operating", metavar="LIST"),
    _flag("http", ("--http",), "operating", "serve REST (/api/...) and Prometheus /metrics here", group="operating",
          metavar="HOST:PORT"),
    _flag("http_token", ("--http-token",), "operating", "bearer token that REST writes need (none: read-only)",
          group="operating", metavar="TOKEN"),
    _flag("no_tui", ("--no-tui",), "operating", "plain log lines instead of the live status view",
          group="operating", action="store_true"),
    _flag("protocol_log", ("--protocol-log",), "operating",
          "log every Stratum line sent and received (passwords hidden)", group="operating", action="store_true"),
    _flag("stats_file", ("--stats-file",), "operating", "where best shares and history persist (default: the user "
          "data dir)", group="operating", metavar="FILE"),
)
OPTIONS += (
    _flag("payout_address", ("--payout-address",), "alerts", "the address pool coinbases must pay (repeatable; "
          "default: the address in a solo pool's user name)", "payout_addresses", _POOL_ONLY, "alerts",
          action="append", metavar="ADDR"),
    _flag("payout_min", ("--payout-min",), "alerts", "percent of the reward that must go to it (default 95; "
          "a pool fee or donation counts against it)", commands=_POOL_ONLY, group="alerts", type=percent,
          metavar="PERCENT"),
    _flag("payout_check", ("--payout-check",), "alerts", "warn: log it; alert: also send an alert; enforce: also "
          "stop mining on and submitting to that pool until its jobs pay again", commands=_POOL_ONLY, group="alerts",
          choices=("warn", "alert", "enforce")),
    _flag("alert_cmd", ("--alert-cmd",), "alerts", "run this shell command on every alert (MINER_EVENT, "
          "MINER_MESSAGE, ... in its environment)", group="alerts", metavar="CMD"),
    _flag("cmd_sick", ("--cmd-sick",), "alerts", "run this when a device turns sick (bfgminer's option)",
          group="alerts", metavar="CMD"),
    _flag("cmd_dead", ("--cmd-dead",), "alerts", "run this when a device dies (bfgminer's option)", group="alerts",
          metavar="CMD"),
    _flag("webhook", ("--webhook",), "alerts", "POST each alert to this URL (repeatable; Discord and ntfy URLs get "
          "their own format)", "webhooks", group="alerts", action="append", metavar="URL"),
    _flag("webhook_format", ("--webhook-format",), "alerts", "json, ntfy or discord (default: from the URL)",
          group="alerts", choices=("json", "ntfy", "discord")),
    _flag("mqtt", ("--mqtt",), "alerts", "publish to this MQTT broker with Home Assistant discovery",
          group="alerts", metavar="mqtt://HOST:PORT"),
    _flag("mqtt_user", ("--mqtt-user",), "alerts", "MQTT user name", group="alerts", metavar="USER"),
    _flag("mqtt_pass", ("--mqtt-pass",), "alerts", "MQTT password", group="alerts", metavar="PASS"),
    _flag("hashrate_below", ("--alert-hashrate-below",), "alerts", "alert when the 1-minute hash rate stays below "
          "this (H/s; k, M, G, T suffixes) ...", group="alerts", type=hash_rate, metavar="RATE"),
    _flag("hashrate_minutes", ("--alert-hashrate-minutes",), "alerts", "... for this many minutes (default 5)",
          group="alerts", type=positive_float, metavar="MIN"),
    _flag("temp_alert", ("--alert-temp",), "alerts", "alert when a device reaches this temperature (°C, default 85 "
          "as cgminer's --temp-overheat)", group="alerts", type=positive_float, metavar="C"),
    _flag("log_file", ("--log-file",), "alerts", "also log to this file, rotated at 10 MB (5 kept)", group="alerts",
          metavar="FILE"),
    _flag("syslog", ("--syslog",), "alerts", "also log to the system log (/dev/log)", group="alerts",
          action="store_true"),
    _flag("sharelog", ("--sharelog",), "alerts", "append every share to FILE in cgminer's sharelog format",
          group="alerts", metavar="FILE"),
)
GROUP_TITLES = {
    "pools": "pools (cgminer style: repeat -o/-u/-p for backups, in priority order)",
    "node": "node (getblocktemplate)",
    "devices": "devices",
    "operating": "operating (config file, APIs, status)",
    "alerts": "payout check, alerts and running as a service",
}
SECRET_DESTS = {"http_token", "rpc_password", "mqtt_pass", "webhook"}  # a Discord webhook URL is its token


def options_for(command: str) -> tuple[Option, ...]:
    return tuple(o for o in OPTIONS if command in o.commands)


def command_parser(command: str, prog: str, description: str) -> argparse.ArgumentParser:
    """The command's parser; every default is suppressed, so a parse returns only the options given."""
    parser = argparse.ArgumentParser(prog=prog, description=description, argument_default=argparse.SUPPRESS)
    groups: dict[str, Any] = {"": parser}
    exclusive: dict[str, Any] = {}
    for option in options_for(command):
        if option.group not in groups:
            groups[option.group] = parser.add_argument_group(GROUP_TITLES[option.group])
        container = groups[option.group]
        if option.dest == "cpu":  # --cpu and --no-cpu set one value
            if "cpu" not in exclusive:
                exclusive["cpu"] = container.add_mutually_exclusive_group()
            container = exclusive["cpu"]
        container.add_argument(*option.flags, dest=option.dest, help=option.help, **option.argparse)
    if command == MINE:
        parser.add_argument("-V", "--version", action="version", version=USER_AGENT)
    return parser


# ------------------------------------------------------------------ merging
def merge(command: str, given: Mapping[str, Any], file: cfg.FileConfig | None) -> Settings:
    """The command line (`given`: only what it said) over the file over the defaults, with origins."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for option in options_for(command):
        values[option.dest], origins[option.dest] = option.default, "default"
    for dest, value in given.items():
        values[dest], origins[dest] = value, "cli"
    if file is not None:
        where = f"file {file.path}"
        for dest, value in file.options.items():
            if dest in values and dest not in given:  # a pool option in the file means nothing to solo
                values[dest], origins[dest] = value, where
        cpu = file.devices.get("cpu", {})
        for key in ("enabled", "threads"):
            dest = "cpu" if key == "enabled" else key
            if key in cpu and dest not in given and dest not in file.options:
                values[dest], origins[dest] = cpu[key], where
        if not values["devices"]:
            specs = cfg.device_specs(file)
            if specs:
                values["devices"], origins["devices"] = specs, where
    if values.get("url"):
        pools_from = "cli"
    elif command == MINE and file is not None and file.pools:
        pools_from = f"file {file.path}"
    else:
        pools_from = "none"
    sections: dict[str, dict[str, Any]] = {}
    for option in options_for(command):
        value = values[option.dest]
        sections.setdefault(option.section, {})[option.attr] = tuple(value) if isinstance(value, list) else value
    parts = {name: kind(**sections.get(name, {})) for name, kind in SECTIONS.items()}
    return Settings(**parts, origins=origins, file=file, pools_from=pools_from)


def resolve(command: str, given: Mapping[str, Any]) -> Settings:
    """Load the file (given, or the default one if it exists), merge, and check what can be checked
    before anything starts: ConfigError or ValueError with one line."""
    path = Path(given["config"]) if given.get("config") else cfg.default_config_path()
    file = cfg.load(path) if given.get("config") or path.exists() else None
    notes = []
    if file is not None and file.ignored:
        notes.append(f"{path}: cgminer options without an equivalent here, ignored: {', '.join(file.ignored)}")
    if command == SOLO and file is not None and file.pools:
        notes.append(f"{path}: miner solo mines for the node; the file's pools are ignored")
    settings = dataclasses.replace(merge(command, given, file), notes=tuple(notes))
    check(settings)
    return settings


def check(settings: Settings) -> None:
    """A bad --api-allow / --http stops here with its one-line reason, before any device starts."""
    if settings.operating.api_allow:
        from miner.frontends.cgminer import parse_allow

        parse_allow(settings.operating.api_allow)
    if settings.operating.http:
        from miner.frontends.http import parse_listen

        parse_listen(settings.operating.http)


def values(settings: Settings) -> dict[str, dict[str, Any]]:
    """section -> field -> value (for `miner config show`)."""
    return {name: dataclasses.asdict(section) for name, section in (
        ("pools", settings.pools), ("devices", settings.devices), ("operating", settings.operating),
        ("node", settings.node), ("run", settings.run), ("alerts", settings.alerts))}


# ------------------------------------------------------------------ pools
def pool_configs(settings: Settings) -> list:
    """PoolConfigs: the command line's -o/-u/-p (they replace the file's pools), else the file's
    (none for `miner solo`)."""
    if settings.file is not None and settings.pools_from == f"file {settings.file.path}":
        return file_pools(settings.file, settings.pools)
    return command_line_pools(settings.pools)


def command_line_pools(pools: PoolSettings) -> list:
    """Pair each -o with its -u/-p (a pool without its own takes the previous pool's)."""
    from miner.sources.stratum.url import PoolConfig, parse_pool_url

    configs = []
    user, password = "", "x"
    for i, url in enumerate(pools.urls):
        parse_pool_url(url)  # a bad URL stops here, with its reason
        if i < len(pools.users):
            user = pools.users[i]
        if i < len(pools.passwords):
            password = pools.passwords[i]
        if not user and not parse_pool_url(url).user:
            raise ValueError(f"pool {url}: no user given (-u, or stratum+tcp://user:pass@host:port)")
        configs.append(PoolConfig(url=url, user=user, password=password, suggest_difficulty=pools.suggest_diff,
                                  version_rolling=not pools.no_version_rolling,
                                  tls_verify=not pools.tls_no_verify, ca_file=pools.tls_ca))
    return configs


def file_pools(file: cfg.FileConfig, pools: PoolSettings) -> list:
    """PoolConfigs for the file's pools; global flags fill what a pool does not say."""
    from miner.sources.stratum.url import PoolConfig

    configs = []
    for entry in file.pools:
        url = entry.url
        if entry.tls and "://" in url and not url.split("://", 1)[0].endswith(("ssl", "tls", "tcps")):
            url = "stratum+ssl://" + url.split("://", 1)[1]
        elif entry.tls and "://" not in url:
            url = "stratum+ssl://" + url
        configs.append(PoolConfig(
            url=url, user=entry.user, password=entry.password,
            suggest_difficulty=entry.suggest_difficulty if entry.suggest_difficulty is not None
            else pools.suggest_diff,
            xnsub=entry.xnsub,
            version_rolling=entry.version_rolling if entry.version_rolling is not None
            else not pools.no_version_rolling,
            tls_verify=entry.tls_verify if entry.tls_verify is not None else not pools.tls_no_verify,
            ca_file=entry.tls_ca or pools.tls_ca))
    return configs


# ------------------------------------------------------------------ `miner config show`
def show(settings: Settings, command: str = MINE) -> str:
    lines = [f"# effective configuration (command line > {settings.file.path if settings.file else 'no file'}"
             " > defaults)"]
    shown: set[str] = set()
    table = values(settings)
    for option in sorted(options_for(command), key=lambda o: o.dest):
        if option.dest in ("url", "user", "password", "config") or option.dest in shown:
            continue
        shown.add(option.dest)
        value = table[option.section][option.attr]
        text = "***" if option.dest in SECRET_DESTS and value else json.dumps(value)
        lines.append(f"{option.dest.replace('_', '-')} = {text}  # {settings.origins.get(option.dest, 'default')}")
    file = settings.file
    if file is not None and file.ignored:
        lines.append(f"# ignored cgminer keys: {', '.join(file.ignored)}")
    lines.append(f"# pools from: {settings.pools_from}")
    if settings.pools_from == "cli":
        users = settings.pools.users
        for i, url in enumerate(settings.pools.urls):
            user = users[min(i, len(users) - 1)] if users else ""
            lines.append(f"pool {i}: {url} user={user} pass=***")
    elif file is not None:
        for i, entry in enumerate(file.pools):
            lines.append(f"pool {i}: {entry.url} user={entry.user} pass=***"
                         + (f" suggest-diff={entry.suggest_difficulty:g}" if entry.suggest_difficulty else "")
                         + (" xnsub" if entry.xnsub else "") + (" tls" if entry.tls else ""))
    if file is not None:
        for driver, options in file.devices.items():
            lines.append(f"devices.{driver}: " + ", ".join(f"{k}={v}" for k, v in options.items()))
    return "\n".join(lines)
