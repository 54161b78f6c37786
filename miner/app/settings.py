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
import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miner import USER_AGENT
from miner.app import config as cfg
from miner.app.arguments import engine, hash_rate, non_negative_float, percent, port, positive_float, positive_int
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
    temp_cutoff: float | None = None  # --temp-cutoff: boards with a thermal cut-off (bitaxe-raw) idle above it


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
class CgminerSettings:
    """cgminer's and bfgminer's own options (docs/cli.md): pool strategies, share expiry, the
    per-driver frequency flags, bfgminer's -S and --set-device, solo with an http:// pool."""

    strategy: str = "failover"  # miner.sources.stratum.strategy.Strategy values
    rotate: float | None = None  # --rotate N: minutes
    failover_only: bool = False
    no_submit_stale: bool = False
    expiry: float | None = None
    scan_time: float | None = None
    api_network: bool = False
    api_description: str | None = None
    btc_address: str | None = None
    driver_flags: tuple[str, ...] = ()  # "--gekko-compac-freq=150", ... (miner.app.cgminer_flags)
    set_device: tuple[str, ...] = ()  # bfgminer --set-device DRIVER:KEY=VALUE
    scan_serial: tuple[str, ...] = ()  # bfgminer -S DRIVER:PORT | noauto | auto | all
    slice_seconds: float = 2.0  # not on the command line: how long one balanced pick lasts


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
    cgminer: CgminerSettings = CgminerSettings()
    alerts: AlertSettings = AlertSettings()
    origins: Mapping[str, str] = field(default_factory=dict)  # option dest -> "cli", "default" or "file PATH"
    file: cfg.FileConfig | None = None
    pools_from: str = "none"
    notes: tuple[str, ...] = ()  # what the file had that is not used, for the log once it is set up


SECTIONS: dict[str, type] = {"pools": PoolSettings, "devices": DeviceSettings, "operating": OperatingSettings,
                             "node": NodeSettings, "run": RunSettings, "cgminer": CgminerSettings,
                             "alerts": AlertSettings}


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
          "subscribe to extranonce changes), or stratum2+tcp://HOST:PORT/AUTHORITY_KEY for Stratum V2", "urls",
          _POOL_ONLY, "pools", action="append", metavar="URL"),
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
          group="pools", type=non_negative_float, metavar="S"),
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
          "at start)", group="devices", type=non_negative_float, metavar="S"),
    _flag("temp_cutoff", ("--temp-cutoff",), "devices", "idle a board's chain when its ASIC reaches this "
          "temperature (default 75; bitaxe-raw boards; per device: temp_cutoff=C)", group="devices",
          type=positive_float, metavar="C"),
    _flag("cpu", ("--cpu",), "devices", "mine with the CPU too (default: only when no board is found)",
          group="devices", action="store_true"),
    _flag("cpu", ("--no-cpu",), "devices", "never mine with the CPU", group="devices", action="store_false"),
    _flag("threads", ("-t", "--threads"), "devices", "CPU mining threads (default: one per core)", type=positive_int),
    _flag("engine", ("--engine",), "devices", "sha256d engine (default: the fastest this CPU has)", type=engine),
    _flag("sandbox_diff", ("--sandbox-diff",), "run", "share difficulty of the local sandbox job (default 0.02)",
          commands=_POOL_ONLY, type=positive_float),
    _flag("time_limit", ("--time-limit",), "run", "stop after this many seconds", type=positive_float),
    _flag("status_interval", ("--status-interval", "-l", "--log"), "run", "seconds between status lines",
          type=positive_float),
    _flag("quiet", ("-q", "--quiet"), "run", "only warnings and errors", action="store_true"),
    _flag("debug", ("-D", "--debug"), "run", "debug logging", action="store_true"),
    _flag("config", ("--config", "-c"), "operating", f"TOML config file, or a cgminer JSON config (default "
          f"{cfg.default_config_path()} if it exists); command-line options win over it", group="operating",
          metavar="FILE"),
    _flag("api_listen", ("--api-listen",), "operating", "serve the cgminer API (port 4028)", group="operating",
          action="store_true"),
    _flag("api_port", ("--api-port",), "operating", "cgminer API port", group="operating", type=port,
          metavar="PORT"),
    _flag("api_allow", ("--api-allow",), "operating", "who may use the API: [W:|R:]addr[/prefix],... (W: may also "
          "send privileged commands, e.g. W:127.0.0.1). Default: read-only, from 127.0.0.1 only; with a list the API "
          "listens on every address", group="operating", metavar="LIST"),
    _flag("http", ("--http",), "operating", "serve REST (/api/...) and Prometheus /metrics here", group="operating",
          metavar="HOST:PORT"),
    _flag("http_token", ("--http-token",), "operating", "bearer token that REST writes need (none: read-only)",
          group="operating", metavar="TOKEN"),
    _flag("no_tui", ("--no-tui", "-T", "--text-only"), "operating", "plain log lines instead of the live status view",
          group="operating", action="store_true"),
    _flag("protocol_log", ("--protocol-log", "-P", "--protocol-dump"), "operating",
          "log every Stratum line sent and received (passwords hidden)", group="operating", action="store_true"),
    _flag("stats_file", ("--stats-file",), "operating", "where best shares and history persist (default: the user "
          "data dir)", group="operating", metavar="FILE"),
)
def _cgminer_options() -> tuple[Option, ...]:
    """cgminer's and bfgminer's own options, each mapped or explained in docs/cli.md."""
    from miner.app.cgminer_flags import DRIVER_FLAGS, AppendFlag

    g, c = "cgminer", "cgminer"
    return (
        _flag("url", ("--quota", "-U"), "pools", "N;URL: a pool with quota N for --load-balance (cgminer set_quota)",
              "urls", _POOL_ONLY, g, action="append", metavar="N;URL"),
        _flag("strategy", ("--load-balance",), c, "share the work between the alive pools by quota (cgminer "
              "POOL_LOADBALANCE)", commands=_POOL_ONLY, group=g, action="store_const", const="load-balance"),
        _flag("strategy", ("--balance",), c, "share the work evenly between the alive pools (cgminer POOL_BALANCE)",
              commands=_POOL_ONLY, group=g, action="store_const", const="balance"),
        _flag("strategy", ("--round-robin",), c, "when a pool fails, move to the next one and stay (cgminer "
              "POOL_ROUNDROBIN)", commands=_POOL_ONLY, group=g, action="store_const", const="round-robin"),
        _flag("rotate", ("--rotate",), c, "move to the next pool every N minutes (cgminer POOL_ROTATE)",
              commands=_POOL_ONLY, group=g, type=non_negative_float, metavar="N"),
        _flag("failover_only", ("--failover-only",), c, "with --load-balance: the quota of a dead pool goes to the "
              "first pool (failover never leaks work to backups here anyway)", commands=_POOL_ONLY, group=g,
              action="store_true"),
        _flag("no_submit_stale", ("--no-submit-stale",), c, "never send stale shares (this miner never does)",
              commands=_POOL_ONLY, group=g, action="store_true"),
        _flag("expiry", ("--expiry", "-E"), c, "seconds after its job came that a share is stale, not sent (cgminer "
              "opt_expiry; default: until the pool ends the job)", commands=_POOL_ONLY, group=g,
              type=positive_float, metavar="S"),
        _flag("scan_time", ("--scan-time", "-s"), c, "accepted for cgminer command lines; has no effect here (new "
              "jobs replace work at once)", group=g, type=positive_float, metavar="S"),
        _flag("api_network", ("--api-network",), c, "the API answers read-only commands from any address (cgminer "
              "opt_api_network; --api-allow W:... still decides who may change things)", group=g,
              action="store_true"),
        _flag("api_description", ("--api-description",), c, "the Description every API reply's STATUS carries",
              group=g, metavar="TEXT"),
        _flag("btc_address", ("--btc-address",), c, "payout address when -o is a node (http://NODE:PORT): solo "
              "mining the cgminer way", commands=_POOL_ONLY, group=g, metavar="ADDR"),
        _flag("set_device", ("--set-device",), c, "bfgminer: DRIVER:KEY=VALUE for every device of that driver, e.g. "
              "bm1397:frequency=400", group=g, action="append", metavar="DRIVER:KEY=VALUE"),
        _flag("scan_serial", ("-S", "--scan-serial"), c, "bfgminer: DRIVER:PORT (as --device), or noauto (no USB "
              "scan)", group=g, action="append", metavar="DRIVER:PORT"),
        *(_flag("driver_flags", (row.flag,), c, f"{row.product}: sets {row.key or 'nothing'}"
                + (f" (ignored here: {row.ignored})" if row.ignored else f" (as --device ...,{row.key}=VALUE)"),
                group="drivers", action=AppendFlag, metavar="VALUE") for row in DRIVER_FLAGS),
    )


OPTIONS = OPTIONS + _cgminer_options()
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
    "cgminer": "cgminer / bfgminer options (docs/cli.md)",
    "drivers": "cgminer per-driver options (mapped onto --device options; docs/cli.md §4)",
    "alerts": "payout check, alerts and running as a service",
}
SECRET_DESTS = {"http_token", "rpc_password", "mqtt_pass", "webhook"}  # a Discord webhook URL is its token


def options_for(command: str) -> tuple[Option, ...]:
    return tuple(o for o in OPTIONS if command in o.commands)


class SuggestingParser(argparse.ArgumentParser):
    """An unknown option names the known one the user probably meant (difflib over the flags)."""

    known_flags: tuple[str, ...] = ()  # command_parser sets them from OPTIONS

    def format_usage(self) -> str:
        # the full usage of every option is pages long: one line, and where the list is
        return f"usage: {self.prog} [options]  ({self.prog} --help lists them)\n"

    def error(self, message: str) -> Any:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            known = self.known_flags
            hints = []
            for word in message[len(prefix):].split():
                if word.startswith("-"):
                    flag = word.split("=", 1)[0]
                    close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
                    if close:
                        hints.append(f"{flag}: did you mean {close[0]}?")
            if hints:
                message = f"{message} ({'; '.join(hints)})"
        super().error(message)


def command_parser(command: str, prog: str, description: str) -> argparse.ArgumentParser:
    """The command's parser; every default is suppressed, so a parse returns only the options given."""
    parser = SuggestingParser(prog=prog, description=description, argument_default=argparse.SUPPRESS)
    parser.known_flags = tuple(flag for option in options_for(command) for flag in option.flags)
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


def default_file() -> Path | None:
    """The config file read when no --config/-c is given: miner.toml in the user config dir, else
    the one cgminer reads (cgminer.c load_default_config: $HOME/.cgminer/cgminer.conf)."""
    for path in (cfg.default_config_path(), cfg.cgminer_config_path()):
        if path.exists():
            return path
    return None


def resolve(command: str, given: Mapping[str, Any]) -> Settings:
    """Load the file (given, or the default one if it exists), merge, and check what can be checked
    before anything starts: ConfigError or ValueError with one line."""
    path = Path(given["config"]) if given.get("config") else default_file()
    file = cfg.load(path) if path is not None else None
    notes = []
    if file is not None and file.ignored:
        notes.append(f"{path}: cgminer options without an equivalent here, ignored: {', '.join(file.ignored)}")
    if command == SOLO and file is not None and file.pools:
        notes.append(f"{path}: miner solo mines for the node; the file's pools are ignored")
    settings = merge(command, given, file)
    settings, more = cgminer_habits(command, settings)
    settings = dataclasses.replace(settings, notes=tuple(notes + more))
    check(settings)
    return settings


def cgminer_habits(command: str, settings: Settings) -> tuple[Settings, list[str]]:
    """What cgminer's and bfgminer's options mean for the other settings (docs/cli.md), and the
    lines to log when mining starts about those that change nothing here. ValueError with one line."""
    from miner.app.cgminer_flags import ignored_notes, model_defaults
    from miner.sources.stratum.strategy import Strategy, parse_quota

    c, notes = settings.cgminer, []
    origins = dict(settings.origins)
    strategy = c.strategy
    if c.rotate is not None:
        if settings.origins.get("strategy", "default") != "default" and strategy != Strategy.ROTATE.value:
            raise ValueError(f"--rotate and --{strategy}: give one pool strategy (cgminer has one)")
        strategy = Strategy.ROTATE.value
    replace: dict[str, Any] = {"cgminer": dataclasses.replace(c, strategy=strategy)}
    quotas = [u for u in settings.pools.urls if is_quota(u)]
    for text in quotas:
        parse_quota(text)  # a bad one stops here, with cgminer's reason
    if any(parse_quota(u)[0] != 1 for u in quotas) and strategy != Strategy.LOAD_BALANCE.value:
        notes.append("--quota: quotas only share the work with --load-balance (as in cgminer); mining by "
                      f"{strategy}")
    if c.no_submit_stale:
        notes.append("--no-submit-stale: nothing to change, this miner never sends a share the pool has moved on from")
    if c.scan_time is not None:
        notes.append("--scan-time ignored: a new job replaces the devices' work at once; no work is kept longer")
    notes.extend(ignored_notes(c.driver_flags))
    model_defaults(c.driver_flags, c.set_device)  # a bad value or a contradiction stops here
    operating = settings.operating
    if c.api_network and not operating.api_allow:
        # cgminer api.c: with --api-network and no --api-allow, any address may read (not change)
        replace["operating"] = dataclasses.replace(operating, api_allow="R:0/0")
        origins["api_allow"] = f"--api-network ({origins.get('api_network', 'cli')})"
    specs = list(settings.devices.specs)
    for text in c.scan_serial:
        word = text.strip().lower()
        if word in ("auto", "all"):
            continue
        if word == "noauto":
            continue  # compose turns the USB scan off
        if ":" not in text:
            raise ValueError(f"-S {text!r}: say which driver, e.g. -S icarus:{text} (or --device DRIVER:PORT)")
        specs.append(text)
    if specs != list(settings.devices.specs):
        replace["devices"] = dataclasses.replace(settings.devices, specs=tuple(specs))
        origins["devices"] = "-S" if origins.get("devices") == "default" else f"{origins.get('devices')} and -S"
    node_urls = [u for u in settings.pools.urls if not is_quota(u) and u.lower().startswith(("http://", "https://"))]
    if command == MINE and node_urls:
        replace.update(solo_from_pool(settings, node_urls))
    elif c.btc_address and command == MINE:
        notes.append("--btc-address ignored: it is the payout address when -o is a node (http://NODE:PORT)")
    return dataclasses.replace(settings, **replace, origins=origins), notes


def is_quota(url: str) -> bool:
    """`N;URL` as --quota gives it (a URL has no ';' before its scheme)."""
    head, sep, _ = url.partition(";")
    return bool(sep) and "://" not in head


def solo_from_pool(settings: Settings, node_urls: list[str]) -> dict[str, Any]:
    """cgminer's solo mining: `-o http://NODE:PORT -u RPCUSER -p RPCPASS --btc-address ADDR` is
    getblocktemplate against that node (cgminer.c pool_active / gbt_solo_decode with opt_btc_address)."""
    pools = settings.pools
    if len(pools.urls) != 1:
        raise ValueError(f"-o {node_urls[0]}: a node (solo mining) cannot be mixed with other pools; give one -o")
    if not settings.cgminer.btc_address:
        raise ValueError(f"-o {node_urls[0]}: an http:// URL is a node; solo mining on it needs --btc-address ADDR "
                         "(your payout address), as in cgminer; a pool is stratum+tcp://HOST:PORT")
    node = dataclasses.replace(settings.node, rpc_url=node_urls[0], address=settings.cgminer.btc_address,
                               rpc_user=pools.users[0] if pools.users else "",
                               rpc_password=pools.passwords[0] if pools.passwords else "")
    return {"node": node, "pools": dataclasses.replace(pools, urls=(), users=(), passwords=()),
            "pools_from": "node"}


def check(settings: Settings) -> None:
    """A bad --api-allow / --http stops here with its one-line reason, before any device starts."""
    if not 1 <= settings.operating.api_port <= 65535:
        raise ValueError(f"api port {settings.operating.api_port}: a port is 1-65535")
    cas = [("--tls-ca", settings.pools.tls_ca)]
    if settings.file is not None:
        cas += [(f"{settings.file.path}: pool {i} tls-ca", e.tls_ca) for i, e in enumerate(settings.file.pools)]
    for what, ca in cas:
        if ca and not Path(ca).is_file():
            raise ValueError(f"{what} {ca}: no such file (give the PEM file of the CA that signed the pool's "
                             "certificate)")
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
        ("node", settings.node), ("run", settings.run), ("cgminer", settings.cgminer),
        ("alerts", settings.alerts))}


# ------------------------------------------------------------------ pools
def pool_configs(settings: Settings) -> list:
    """PoolConfigs: the command line's -o/-u/-p (they replace the file's pools), else the file's
    (none for `miner solo`)."""
    if settings.file is not None and settings.pools_from == f"file {settings.file.path}":
        return file_pools(settings.file, settings.pools)
    return command_line_pools(settings.pools)


def command_line_pools(pools: PoolSettings) -> list:
    """Pair each -o with its -u/-p (a pool without its own takes the previous pool's)."""
    from miner.sources.stratum.strategy import parse_quota
    from miner.sources.stratum.url import PoolConfig, parse_pool_url

    configs = []
    user, password = "", "x"
    for i, given in enumerate(pools.urls):
        quota, url = parse_quota(given) if is_quota(given) else (1, given)
        parse_pool_url(url)  # a bad URL stops here, with its reason
        if i < len(pools.users):
            user = pools.users[i]
        if i < len(pools.passwords):
            password = pools.passwords[i]
        if not user and not parse_pool_url(url).user:
            raise ValueError(f"pool {url}: no user given (-u, or stratum+tcp://user:pass@host:port)")
        configs.append(PoolConfig(url=url, user=user, password=password, suggest_difficulty=pools.suggest_diff,
                                  version_rolling=not pools.no_version_rolling,
                                  tls_verify=not pools.tls_no_verify, ca_file=pools.tls_ca, quota=quota))
    return configs


def file_pools(file: cfg.FileConfig, pools: PoolSettings) -> list:
    """PoolConfigs for the file's pools; global flags fill what a pool does not say."""
    from miner.sources.stratum.url import PoolConfig

    configs = []
    for entry in file.pools:
        url = entry.url
        if url.startswith("stratum2+"):
            pass  # Stratum V2 is Noise-encrypted already (docs/sv2.md): `tls` has nothing to change
        elif entry.tls and "://" in url and not url.split("://", 1)[0].endswith(("ssl", "tls", "tcps")):
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
            ca_file=entry.tls_ca or pools.tls_ca, quota=entry.quota))
    return configs


# ------------------------------------------------------------------ `miner config show`
def without_password(url: str) -> str:
    """A URL with the password of its `user:pass@` part shown as ***: --rpc-url and pool URLs may
    carry credentials, and `miner config show` output gets pasted into bug reports."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}{slash}{path}"


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
        if option.dest in SECRET_DESTS and value:
            text = "***"
        else:
            text = json.dumps(without_password(value) if isinstance(value, str) else value)
        lines.append(f"{option.dest.replace('_', '-')} = {text}  # {settings.origins.get(option.dest, 'default')}")
    file = settings.file
    if file is not None and file.ignored:
        lines.append(f"# ignored cgminer keys: {', '.join(file.ignored)}")
    lines.append(f"# pools from: {settings.pools_from}")
    if settings.pools_from == "cli":
        users = settings.pools.users
        for i, url in enumerate(settings.pools.urls):
            user = users[min(i, len(users) - 1)] if users else ""
            quota, _, plain = url.partition(";") if is_quota(url) else ("", "", url)
            lines.append(f"pool {i}: {without_password(plain)} user={user} pass=***"
                         + (f" quota={quota}" if quota else ""))
    elif file is not None:
        for i, entry in enumerate(file.pools):
            lines.append(f"pool {i}: {without_password(entry.url)} user={entry.user} pass=***"
                         + (f" quota={entry.quota}" if entry.quota != 1 else "")
                         + (f" suggest-diff={entry.suggest_difficulty:g}" if entry.suggest_difficulty else "")
                         + (" xnsub" if entry.xnsub else "") + (" tls" if entry.tls else ""))
    if file is not None:
        for driver, options in file.devices.items():
            lines.append(f"devices.{driver}: " + ", ".join(f"{k}={v}" for k, v in options.items()))
    return "\n".join(lines)
