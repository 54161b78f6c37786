"""The cgminer RPC API (port 4028), so pyasic, cgminer exporters, miner.php and Minera read us
unchanged. Field names, message codes and the reply layout follow cgminer's API 3.7.

`handle_request(data, view, group)` is the whole protocol with no I/O: request bytes in, reply
bytes (NUL-terminated) out. `ApiServer` is the thin asyncio shell: one request per connection,
the group (R read-only, W everything) from the `--api-allow` list decides what may run.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from miner.core.lograte import LogLimiter
from miner.frontends.cgminer_sections import device_item, lcd_item, mm_id, pool_item, summary_item
from miner.frontends.listen_limits import ConnectionGate, connection_cap
from miner.frontends.view import MOVE_BAD, MOVE_SENT, CommandError, MinerView

log = logging.getLogger(__name__)

API_VERSION = "3.7"
DEFAULT_PORT = 4028
MAX_CONNECTIONS = 32  # per listener (fewer under a low descriptor limit: listen_limits.py)
MAX_REQUEST = 8192  # cgminer reads one buffer of this order; longer requests are garbage anyway

Item = dict[str, Any]


@dataclass
class Reply:
    letter: str  # S success, I info, W warning, E error
    code: int
    message: str
    section: str | None = None
    items: list[Item] | None = None
    text_prefix: bool = False  # text form starts each item with "SECTION," (items without an index key)
    raw: str | None = None  # quit/restart answer a bare word, not a STATUS


class ApiError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


# ------------------------------------------------------------------ request parsing
@dataclass(frozen=True)
class Request:
    command: str
    parameter: str
    is_json: bool


def parse_request(data: bytes) -> Request:
    """Text `cmd|param` or JSON `{"command":..,"parameter":..}`; ApiError(23/24/14) when neither."""
    # A request ends at its first NUL, as it does for cgminer reading a C string; a NUL left
    # inside would also end our reply early when a message echoes the command.
    text = data.decode("utf-8", "replace").lstrip("\x00 \t\r\n").split("\x00", 1)[0].rstrip(" \t\r\n")
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            raise ApiError(23, "Invalid JSON") from None
        if not isinstance(obj, dict):
            raise ApiError(23, "Invalid JSON")
        command = obj.get("command")
        if not isinstance(command, str):
            raise ApiError(24, "Missing JSON 'command'")
        parameter = obj.get("parameter", "")
        if isinstance(parameter, bool):
            parameter = "true" if parameter else "false"
        elif parameter is None:
            parameter = ""
        elif not isinstance(parameter, str):
            parameter = str(parameter)
        return Request(command.replace("\x00", "").strip().lower(), parameter.replace("\x00", ""), True)
    command, _, parameter = text.partition("|")
    return Request(command.strip().lower(), parameter, False)


def split_params(parameter: str) -> list[str]:
    """Comma-separated parameters; `\\,` and `\\\\` escape a comma and a backslash (API >= 1.7)."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(parameter)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, "\\"))
        elif ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


# ------------------------------------------------------------------ --api-allow
@dataclass(frozen=True)
class AllowEntry:
    group: str  # "R" or "W"
    network: ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allow(text: str) -> list[AllowEntry]:
    """`[G:]addr[/prefix],...`; missing IPv4 octets are .0 (cgminer: `192.168/16`), `0/0` is everyone.
    ValueError naming the bad entry."""
    entries = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        group = "R"
        if len(item) > 2 and item[1] == ":" and item[0].isalpha():
            group, item = item[0].upper(), item[2:]
            if group not in ("R", "W"):
                raise ValueError(f"--api-allow {raw.strip()!r}: group {group!r} unknown (use W: or R:)")
        address, slash, prefix = item.partition("/")
        if ":" not in address:  # IPv4: pad missing octets the way cgminer does
            octets = address.split(".")
            if not 1 <= len(octets) <= 4 or not all(o.isdigit() for o in octets):
                raise ValueError(f"--api-allow {raw.strip()!r}: {address!r} is not an IP address")
            address = ".".join(octets + ["0"] * (4 - len(octets)))
        try:
            network = ipaddress.ip_network(f"{address}/{prefix}" if slash else address, strict=False)
        except ValueError as exc:
            raise ValueError(f"--api-allow {raw.strip()!r}: {exc}") from None
        entries.append(AllowEntry(group, network))
    return entries


def group_for(address: str, entries: list[AllowEntry]) -> str | None:
    """The group of the first entry that matches (None: not allowed to connect at all)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for entry in entries:
        if ip.version == entry.network.version and ip in entry.network:
            return entry.group
    return None


# ------------------------------------------------------------------ commands
Handler = Callable[[MinerView, str], Reply]


def _int_param(param: str, code: int, what: str) -> int:
    if not param.strip():
        raise ApiError(code, what)
    try:
        return int(param.strip())
    except ValueError:
        raise ApiError(code, f"{what}: {param.strip()!r} is not a number") from None


def cmd_version(view: MinerView, param: str) -> Reply:
    # api.c apiversion() sends {"CGMiner": VERSION, "API": APIVERSION}. This is not cgminer, so the
    # version sits under this miner's own name, as bfgminer's `BFGMiner` and bmminer's `BMMiner` do,
    # and `Miner` is bfgminer's "name version" for tools that show one string (docs/cgminer-api.md §3.4).
    name, _, version = view.description.partition("/")
    return Reply("S", 22, f"{name} versions", "VERSION",
                 [{"Miner": f"{name} {version or view.version}", name: view.version, "API": API_VERSION}],
                 text_prefix=True)


def cmd_config(view: MinerView, param: str) -> Reply:
    devices = view.devices
    manager = view.pool_manager
    drivers = sorted({d.driver.upper()[:3] for d in devices})
    item = {"ASC Count": len(devices), "PGA Count": 0, "Pool Count": len(manager.pools) if manager else 0,
            "Strategy": "Failover", "Log Interval": int(view.miner.status_interval),
            "Device Code": " ".join(drivers), "OS": platform.system(),
            # api.c minerconfig(): an int when hotplug runs, the string "Disabled" when it does not
            "Hotplug": int(view.hotplug_seconds()) or "Disabled"}
    item.update(view.config)
    return Reply("S", 33, "CGMiner config", "CONFIG", [item], text_prefix=True)


def cmd_summary(view: MinerView, param: str) -> Reply:
    return Reply("S", 11, "Summary", "SUMMARY", [summary_item(view.summary())], text_prefix=True)


def cmd_devs(view: MinerView, param: str) -> Reply:
    items = [device_item(d) for d in view.device_snapshots()]
    if not items:
        return Reply("E", 10, "No ASCs")
    return Reply("S", 9, f"{len(items)} ASC(s)", "DEVS", items)


def cmd_edevs(view: MinerView, param: str) -> Reply:
    # enabled devices only (cgminer's edevs leaves out zombies unless `old` is given)
    snapshots = [d for d in view.device_snapshots() if param.strip() == "old" or d.state != "NoDevice"]
    items = [device_item(d) for d in snapshots]
    if not items:
        return Reply("E", 10, "No ASCs")
    return Reply("S", 9, f"{len(items)} ASC(s)", "DEVS", items)


def cmd_devdetails(view: MinerView, param: str) -> Reply:
    items = []
    for d in view.device_snapshots():
        item: Item = {"DEVDETAILS": d.index, "Name": d.driver.upper()[:3], "ID": d.index, "Driver": d.driver,
                      "Kernel": "", "Model": d.model, "Device Path": d.port or ""}
        item.update({k: _flat(v) for k, v in d.details.items() if k not in item})
        items.append(item)
    if not items:
        return Reply("E", 10, "No ASCs")  # api.c devdetails(): MSG_NODEVS when there is no device
    return Reply("S", 69, "Device Details", "DEVDETAILS", items)


def cmd_pools(view: MinerView, param: str) -> Reply:
    items = [pool_item(p, view.quota(p.index)) for p in view.pool_snapshots()]
    if not items:
        return Reply("E", 8, "No pools")  # api.c poolstatus(): MSG_NOPOOL is SEVERITY_ERR
    return Reply("S", 7, f"{len(items)} Pool(s)", "POOLS", items)


def cmd_stats(view: MinerView, param: str) -> Reply:
    items: list[Item] = []
    for d in view.device_snapshots():
        item: Item = {"STATS": len(items), "ID": f"{d.driver.upper()[:3]}{d.index}", "Elapsed": int(d.elapsed),
                      "Calls": 0, "Wait": 0.0, "Max": 0.0, "Min": 99999999.0}
        item.update({k: _flat(v) for k, v in d.details.items() if k not in item})
        if d.voltage is not None:
            item["Voltage"] = d.voltage
        items.append(item)
    for p in view.pool_snapshots():
        items.append({"STATS": len(items), "ID": f"POOL{p.index}", "Elapsed": int(view.elapsed), "Calls": 0,
                      "Wait": 0.0, "Max": 0.0, "Min": 99999999.0, "Pool Calls": 0, "Pool Attempts": 0,
                      "Pool Wait": 0.0, "Pool Max": 0.0, "Pool Min": 99999999.0, "Pool Av": 0.0,
                      "Work Had Roll Time": False, "Work Can Roll": False, "Work Had Expire": False,
                      "Work Roll Time": 0, "Work Diff": p.difficulty, "Min Diff": p.difficulty,
                      "Max Diff": p.difficulty, "Min Diff Count": 0, "Max Diff Count": 0,
                      "Times Sent": 0, "Bytes Sent": 0, "Times Recv": 0,
                      "Bytes Recv": 0, "Net Bytes Sent": 0, "Net Bytes Recv": 0})
    return Reply("S", 70, "CGMiner stats", "STATS", items)


def cmd_notify(view: MinerView, param: str) -> Reply:
    items = []
    for d in view.device_snapshots():
        well = d.state == "Alive"
        items.append({"NOTIFY": d.index, "Name": d.driver.upper()[:3], "ID": d.index,
                      "Last Well": int(time.time()) if well else 0, "Last Not Well": 0 if well else int(time.time()),
                      "Reason Not Well": "None" if well else (d.last_error or d.state),
                      "*Thread Fail Init": 0, "*Thread Zero Hash": 0, "*Thread Fail Queue": 0,
                      "*Dev Sick Idle 60s": 0, "*Dev Dead Idle 600s": 0, "*Dev Nostart": 0, "*Dev Over Heat": 0,
                      "*Dev Thermal Cutoff": 0, "*Dev Comms Error": 0, "*Dev Throttle": 0})
    return Reply("S", 60, "Notify", "NOTIFY", items)


def cmd_coin(view: MinerView, param: str) -> Reply:
    s = view.summary()
    # api.c minecoin(): block_timeval is when cgminer first saw the block; LP is getwork long polling
    item = {"Hash Method": "sha256", "Current Block Time": round(s.block_time, 6),
            "Current Block Hash": s.block_hash, "LP": False, "Network Difficulty": float(s.network_difficulty)}
    return Reply("S", 78, "CGMiner coin", "COIN", [item], text_prefix=True)


def cmd_asccount(view: MinerView, param: str) -> Reply:
    return Reply("S", 104, "ASC count", "ASCS", [{"Count": len(view.devices)}], text_prefix=True)


def cmd_asc(view: MinerView, param: str) -> Reply:
    index = _int_param(param, 15, "Missing device id parameter")
    try:
        device = view.device_at(index)
    except CommandError as exc:
        raise ApiError(exc.code, str(exc)) from None
    snapshot = view.device_snapshot(index, device)
    return Reply("S", 106, f"ASC{index}", "ASC", [device_item(snapshot)])


def _flat(value: Any) -> Any:
    """A driver's detail as one API value: scalars stay, lists and objects become compact JSON text
    (a text reply must never carry a Python repr)."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, default=str, separators=(",", ":"))


def cmd_estats(view: MinerView, param: str) -> Reply:
    """api.c minerestats(): devices only, each with its driver's stats; Avalon modules as `MM ID<n>`."""
    items: list[Item] = []
    for d in view.device_snapshots():
        if d.state == "NoDevice" and param.strip() != "old":
            continue
        item: Item = {"STATS": len(items), "ID": f"{d.driver.upper()[:3]}{d.index}", "Elapsed": int(d.elapsed),
                      "Calls": 0, "Wait": 0.0, "Max": 0.0, "Min": 99999999.0}
        modules = d.details.get("Modules")
        if isinstance(modules, list):
            for n, module in enumerate(modules):
                if isinstance(module, dict):
                    item[f"MM ID{n}"] = mm_id(d, module)
        item.update({k: _flat(v) for k, v in d.details.items() if k not in item and k != "Modules"})
        items.append(item)
    items.extend(worker_stats_items(view, len(items)))
    return Reply("S", 70, "CGMiner stats", "STATS", items)


def worker_stats_items(view: MinerView, first: int) -> list[Item]:
    """`miner serve`'s downstream workers as extra estats rows, `ID` "SRV<n>" (docs/serve.md §5)."""
    items: list[Item] = []
    for n, w in enumerate(view.worker_snapshots()):
        items.append({"STATS": first + n, "ID": f"SRV{n}", "Worker": w["name"], "User Agent": w["user_agent"],
                      "Protocol": w.get("protocol", "stratum1"),
                      "Connections": w["connections"], "MHS av": w["hashrate"] / 1e6, "Difficulty": w["difficulty"],
                      "Accepted": w["accepted"], "Rejected": sum(w["rejected"].values()),
                      "Reject Reasons": ",".join(f"{r}:{c}" for r, c in sorted(w["rejected"].items())),
                      "Forwarded": w["forwarded"], "Upstream Accepted": w["upstream_accepted"],
                      "Upstream Rejected": w["upstream_rejected"], "Blocks": w["blocks"],
                      "Best Share": w["best_difficulty"], "Last Share Time": int(w["last_share"] or 0)})
    return items


def cmd_pgacount(view: MinerView, param: str) -> Reply:
    # api.c pgacount(): every device here is an ASC, so the PGA count is 0
    return Reply("S", 59, "PGA count", "PGAS", [{"Count": 0}], text_prefix=True)


def cmd_no_pga(view: MinerView, param: str) -> Reply:
    """pga, pgaenable, pgadisable, pgaidentify, pgaset: api.c answers MSG_PGANON when numpgas() is 0."""
    return Reply("E", 56, "No PGAs")


def cmd_lcd(view: MinerView, param: str) -> Reply:
    pools = view.pool_snapshots()
    current = next((p for p in pools if p.active), None)
    item = lcd_item(view.summary(), view.device_snapshots(), current)
    return Reply("S", 125, "LCD", "LCD", [item], text_prefix=True)


def cmd_usbstats(view: MinerView, param: str) -> Reply:
    # api.c usbstats(): MSG_NOUSTA (INFO) when there are none; this miner keeps no per-transfer USB stats
    return Reply("I", 88, "No USB Statistics")


def cmd_lockstats(view: MinerView, param: str) -> Reply:
    # api.c lockstats(): MSG_LOCKDIS unless cgminer was built with LOCK_TRACKING; there is no lock tracking
    return Reply("W", 124, "Lock stats not enabled")


def cmd_check(view: MinerView, param: str, group: str = "R") -> Reply:
    name = param.strip().lower()
    if not name:
        raise ApiError(71, "Missing check cmd")
    exists = name in COMMANDS
    access = exists and (group == "W" or name not in PRIVILEGED)
    return Reply("S", 72, "Check command", "CHECK", [{"Exists": "Y" if exists else "N",
                                                       "Access": "Y" if access else "N"}], text_prefix=True)


def cmd_privileged(view: MinerView, param: str) -> Reply:
    return Reply("S", 46, "Privileged access OK")


def _command(fn: Callable[[], Reply]) -> Reply:
    try:
        return fn()
    except CommandError as exc:
        raise ApiError(exc.code, str(exc)) from None


def cmd_switchpool(view: MinerView, param: str) -> Reply:
    index = _int_param(param, 25, "Missing pool id parameter")
    return _command(lambda: Reply("S", 27, f"Switching to pool {index}:'{view.switch_pool(index)}'"))


def cmd_enablepool(view: MinerView, param: str) -> Reply:
    index = _int_param(param, 25, "Missing pool id parameter")

    def run() -> Reply:
        url, already = view.enable_pool(index)
        if already:
            return Reply("I", 49, f"Pool {index}:'{url}' already enabled")
        return Reply("S", 47, f"Enabling pool {index}:'{url}'")
    return _command(run)


def cmd_disablepool(view: MinerView, param: str) -> Reply:
    index = _int_param(param, 25, "Missing pool id parameter")

    def run() -> Reply:
        url, already = view.disable_pool(index)
        if already:
            return Reply("I", 50, f"Pool {index}:'{url}' already disabled")
        return Reply("S", 48, f"Disabling pool {index}:'{url}'")
    return _command(run)


def cmd_addpool(view: MinerView, param: str) -> Reply:
    if not param.strip():
        raise ApiError(52, "Missing addpool details")
    parts = split_params(param)
    if len(parts) != 3 or not parts[0].strip() or not parts[1].strip():
        raise ApiError(53, f"Invalid addpool details '{param}'")
    url, user, password = (p.strip() for p in parts)

    def run() -> Reply:
        index = view.add_pool(url, user, password)
        return Reply("S", 55, f"Added pool {index}: '{url}'")
    return _command(run)


def cmd_removepool(view: MinerView, param: str) -> Reply:
    index = _int_param(param, 25, "Missing pool id parameter")
    return _command(lambda: Reply("S", 68, f"Removed pool {index}:'{view.remove_pool(index)}'"))


def cmd_poolpriority(view: MinerView, param: str) -> Reply:
    if not param.strip():
        raise ApiError(25, "Missing pool id parameter")
    indexes = [_int_param(p, 26, "Invalid pool id") for p in param.split(",")]

    def run() -> Reply:
        view.pool_priority(indexes)
        return Reply("S", 73, "Changed pool priorities")
    return _command(run)


def cmd_ascset(view: MinerView, param: str) -> Reply:
    parts = split_params(param)
    index = _int_param(parts[0], 15, "Missing device id parameter")
    _command(lambda: view.device_at(index))
    if len(parts) < 2 or not parts[1].strip():
        raise ApiError(116, "Missing option after ASC number")
    option = parts[1].strip().lower()
    if option == "help":
        return Reply("S", 118, f"ASC {index} set help: freq,MHz (chip frequency)")
    if option not in ("freq", "frequency", "clock"):
        raise ApiError(120, f"ASC {index} set failed: unknown option {option!r} (try ascset|{index},help)")
    try:
        mhz = float(parts[2]) if len(parts) > 2 else float("nan")
    except ValueError:
        mhz = float("nan")
    if not mhz > 0:
        raise ApiError(120, f"ASC {index} set failed: freq needs a frequency in MHz, e.g. ascset|{index},freq,500")

    def run() -> Reply:
        view.set_frequency(index, mhz)
        return Reply("S", 119, f"ASC {index} set OK")
    return _command(run)


def cmd_ascenable(view: MinerView, param: str) -> Reply:
    index = _int_param(param, 15, "Missing device id parameter")

    def run() -> Reply:
        if view.enable_device(index):
            return Reply("S", 110, f"ASC {index} sent enable message")
        return Reply("I", 108, f"ASC {index} already enabled")
    return _command(run)


def cmd_ascidentify(view: MinerView, param: str) -> Reply:
    index = _int_param(param, 15, "Missing device id parameter")
    _command(lambda: view.device_at(index))
    # api.c ascidentify(): MSG_ASCNOID (WARN) when the driver has no identify; no driver here has one
    return Reply("W", 114, f"ASC{index} does not support identify")


def cmd_poolquota(view: MinerView, param: str) -> Reply:
    """api.c poolquota(): `N,Q`. The quota is kept and shown; it steers only a load-balance strategy."""
    if not view.pool_snapshots():
        raise ApiError(8, "No pools")
    if not param.strip():
        raise ApiError(25, "Missing pool id parameter")
    index_text, comma, quota_text = param.partition(",")
    if not comma or not quota_text.strip():
        raise ApiError(86, f"Missing config value N for '{index_text.strip()},N'")
    index = _int_param(index_text, 26, "Invalid pool id")
    quota = _int_param(quota_text, 84, "Invalid number")
    if quota < 0:
        raise ApiError(121, f"Invalid negative number ({quota}) for '{index}'")

    def run() -> Reply:
        url = view.set_quota(index, quota)
        return Reply("S", 122, f"Set pool '{url}' to quota {quota}'")
    return _command(run)


def cmd_save(view: MinerView, param: str) -> Reply:
    """api.c dosave(): write the configuration (pools and API settings) as cgminer.conf JSON."""
    path = param.strip()
    if not path:
        raise ApiError(42, "Missing save filename parameter")
    try:
        view.save_config(path)
    except OSError:
        raise ApiError(43, f"Can't open or create save file '{path}'") from None
    return Reply("S", 44, f"Configuration saved to file '{path}'")


DEBUG_FLAGS = {"s": "Silent", "q": "Quiet", "v": "Verbose", "d": "Debug", "r": "RPCProto", "p": "PerDevice",
               "w": "WorkTime", "n": "Normal"}


def cmd_debug(view: MinerView, param: str) -> Reply:
    """api.c debugstate(): one letter (or the word) switches a setting; the reply lists them all."""
    word = param.strip().lower()
    if word:
        letter = word[0]
        if letter in DEBUG_FLAGS:
            view.set_debug(DEBUG_FLAGS[letter])
    return Reply("S", 79, "Debug settings", "DEBUG", [view.debug_state()], text_prefix=True)


def cmd_setconfig(view: MinerView, param: str) -> Reply:
    # kanoi/cgminer 4.13 (docs/cgminer-api.md §3.3): setconfig only answers MSG_DEPRECATED
    if not param.strip():
        raise ApiError(85, "Missing config parameters 'name,N'")
    name = param.partition(",")[0].strip()
    return Reply("E", 127, f"Deprecated config option '{name}'")


def cmd_ascdisable(view: MinerView, param: str) -> Reply:
    index = _int_param(param, 15, "Missing device id parameter")

    def run() -> Reply:
        if view.disable_device(index):
            return Reply("S", 111, f"ASC {index} set disable flag")
        return Reply("I", 109, f"ASC {index} already disabled")
    return _command(run)


def cmd_zero(view: MinerView, param: str) -> Reply:
    if not param.strip():
        raise ApiError(94, "Missing zero parameters")
    parts = [p.strip().lower() for p in param.split(",")]
    which = parts[0]
    if which not in ("all", "bestshare") or len(parts) > 2:
        raise ApiError(95, f"Invalid zero parameter '{param}'")
    with_summary = len(parts) == 2 and parts[1] in ("true", "t", "y", "yes", "1")
    before = cmd_summary(view, "") if with_summary else None
    view.zero(which)
    if before is not None:
        return Reply("S", 96, f"Zeroed {which} stats with summary", "SUMMARY", before.items, text_prefix=True)
    return Reply("S", 97, f"Zeroed {which} stats without summary")


def cmd_hotplug(view: MinerView, param: str) -> Reply:
    if not param.strip():
        raise ApiError(103, "Missing hotplug parameter")
    try:
        seconds = int(param.strip())
    except ValueError:
        seconds = -1
    if not 0 <= seconds <= 9999:
        raise ApiError(99, f"Invalid value for hotplug ({param.strip()}) must be 0..9999")
    if view.miner.manager is None:
        return Reply("W", 102, "Hotplug is not available")
    view.set_hotplug(seconds)
    if seconds == 0:
        return Reply("S", 101, "Hotplug disabled")
    return Reply("S", 100, f"Hotplug check set to {seconds}s")


def cmd_workerreconnect(view: MinerView, param: str) -> Reply:
    """`workerreconnect|host,port[,wait[,worker]]`: `miner serve` sends its downstream workers (or one
    worker's connections) client.reconnect to host:port (docs/serve.md §9). Not in cgminer's api.c,
    which has no server side; write access only, like every command that changes what is mined."""
    parts = [p.strip() for p in split_params(param)]
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ApiError(MOVE_BAD, "Missing reconnect details: workerreconnect|host,port[,wait[,worker]]")
    wait = parts[2] if len(parts) > 2 and parts[2] else 0
    worker = parts[3] if len(parts) > 3 and parts[3] else None

    def run() -> Reply:
        moved = view.reconnect_workers(parts[0], parts[1], wait, worker)
        return Reply("S", MOVE_SENT, f"Sent client.reconnect to {parts[0]}:{parts[1]} to {moved} connection(s)")
    return _command(run)


def cmd_restart(view: MinerView, param: str) -> Reply:
    view.restart()
    return Reply("S", 0, "RESTART", raw="RESTART")


def cmd_quit(view: MinerView, param: str) -> Reply:
    view.quit()
    return Reply("S", 0, "BYE", raw="BYE")


# api.c cmds[]: name, handler, iswritemode (PRIVILEGED here), joinable (NOT_JOINABLE lists the others)
READ_ONLY: dict[str, Handler] = {
    "version": cmd_version, "config": cmd_config, "summary": cmd_summary, "devs": cmd_devs,
    "edevs": cmd_edevs, "devdetails": cmd_devdetails, "pools": cmd_pools, "stats": cmd_stats,
    "estats": cmd_estats, "notify": cmd_notify, "coin": cmd_coin, "asccount": cmd_asccount, "asc": cmd_asc,
    "pgacount": cmd_pgacount, "pga": cmd_no_pga, "lcd": cmd_lcd, "usbstats": cmd_usbstats,
}
PRIVILEGED: dict[str, Handler] = {
    "privileged": cmd_privileged, "switchpool": cmd_switchpool, "enablepool": cmd_enablepool,
    "disablepool": cmd_disablepool, "addpool": cmd_addpool, "removepool": cmd_removepool,
    "poolpriority": cmd_poolpriority, "poolquota": cmd_poolquota, "ascset": cmd_ascset,
    "ascenable": cmd_ascenable, "ascdisable": cmd_ascdisable, "ascidentify": cmd_ascidentify,
    "pgaenable": cmd_no_pga, "pgadisable": cmd_no_pga, "pgaidentify": cmd_no_pga, "pgaset": cmd_no_pga,
    "zero": cmd_zero, "hotplug": cmd_hotplug, "restart": cmd_restart, "quit": cmd_quit, "save": cmd_save,
    "debug": cmd_debug, "setconfig": cmd_setconfig, "lockstats": cmd_lockstats,
    "workerreconnect": cmd_workerreconnect,
}
COMMANDS = {**READ_ONLY, "check": None, **PRIVILEGED}
# api.c cmds[] joinable=false: asc/pga/check and every privileged command but lockstats
NOT_JOINABLE = ({"asc", "pga", "check"} | set(PRIVILEGED)) - {"lockstats"}


# ------------------------------------------------------------------ formatting
def _status(reply: Reply, description: str, when: int) -> Item:
    return {"STATUS": reply.letter, "When": when, "Code": reply.code, "Msg": reply.message,
            "Description": description}


def _json_reply(reply: Reply, description: str, when: int) -> Item:
    if reply.raw is not None:
        # cgminer answers quit/restart with a bare word; the JSON form here stays valid JSON
        return {"STATUS": [_status(reply, description, when)], "id": 1}
    out: Item = {"STATUS": [_status(reply, description, when)]}
    if reply.section is not None:
        out[reply.section] = reply.items or []
    out["id"] = 1
    return out


def _escape_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)  # a float's repr is its shortest exact decimal, as JSON writes it
    elif isinstance(value, int | str):
        text = str(value)
    else:  # never a Python repr on the wire: None is empty, containers are JSON
        text = "" if value is None else json.dumps(value, default=str, separators=(",", ":"))
    for ch in ("\\", "|", ",", "="):
        text = text.replace(ch, "\\" + ch)
    return text


def _text_reply(reply: Reply, description: str, when: int) -> str:
    if reply.raw is not None:
        return reply.raw
    status = _status(reply, description, when)
    out = ",".join(f"{k}={_escape_text(v)}" for k, v in status.items()) + "|"
    for item in reply.items or []:
        fields = ",".join(f"{k}={_escape_text(v)}" for k, v in item.items())
        out += (f"{reply.section},{fields}" if reply.text_prefix else fields) + "|"
    return out


def _run(name: str, param: str, view: MinerView, group: str) -> Reply:
    if name == "check":
        return cmd_check(view, param, group)
    if name in PRIVILEGED:
        if group != "W":
            return Reply("E", 45, f"Access denied to '{name}' command")
        return PRIVILEGED[name](view, param)
    handler = READ_ONLY.get(name)
    if handler is None:
        return Reply("E", 14, "Invalid command")
    return handler(view, param)


def _safe_run(name: str, param: str, view: MinerView, group: str) -> Reply:
    try:
        return _run(name, param, view, group)
    except ApiError as exc:
        return Reply("E", exc.code, str(exc))
    except Exception as exc:  # a bug must cost one reply, never the API (cgminer's F severity)
        log.exception("API command %r failed", name)
        return Reply("F", 14, f"internal error: {exc}")


def handle_request(data: bytes, view: MinerView, group: str = "R", now: float | None = None) -> bytes:
    """One request in, one NUL-terminated reply out. `group` is "W" for privileged callers."""
    when = int(time.time() if now is None else now)
    description = view.api_description or view.description  # cgminer --api-description (api.c opt_api_description)
    if len(data) > MAX_REQUEST:
        return _encode(Reply("E", 14, "Invalid command"), data.lstrip().startswith(b"{"), description, when)
    try:
        request = parse_request(data)
    except ApiError as exc:
        return _encode(Reply("E", exc.code, str(exc)), True, description, when)
    if "+" in request.command:
        return _joined(request, view, group, description, when)
    return _encode(_safe_run(request.command, request.parameter, view, group), request.is_json, description, when)


def _joined(request: Request, view: MinerView, group: str, description: str, when: int) -> bytes:
    """`cmd1+cmd2`, as api.c's api() loop with head_join()/tail_join() sends it (docs/cgminer-api.md
    §3.8): each command's whole reply, as a one-element list under the command's name in JSON and
    after `CMD=name|` in text; joined commands get no parameter; a repeated or empty name is skipped;
    an unknown command answers E 14 and one that cannot be joined E 45, each in its own place, while
    the rest of the join is answered."""
    replies: list[tuple[str, Reply]] = []
    seen: set[str] = set()
    for name in request.command.split("+"):
        if not name or name in seen:
            continue
        seen.add(name)
        if name in COMMANDS and name in NOT_JOINABLE:
            replies.append((name, Reply("E", 45, f"Access denied to '{name}' command")))
        else:
            replies.append((name, _safe_run(name, "", view, group)))
    if not replies:  # only `+` signs: api.c would send an empty (for JSON, broken) reply; say why instead
        return _encode(Reply("E", 14, "Invalid command"), request.is_json, description, when)
    if request.is_json:
        joined: Item = {name: [_json_reply(r, description, when)] for name, r in replies}
        joined["id"] = 1
        return json.dumps(joined, default=str).encode() + b"\x00"
    text = "".join(f"CMD={_escape_text(name)}|{_text_reply(r, description, when)}" for name, r in replies)
    return text.encode() + b"\x00"


def _encode(reply: Reply, is_json: bool, description: str, when: int) -> bytes:
    if is_json:
        return json.dumps(_json_reply(reply, description, when), default=str).encode() + b"\x00"
    return _text_reply(reply, description, when).encode() + b"\x00"


# ------------------------------------------------------------------ the socket server
# Without --api-allow: this machine only, read-only. cgminer's API-README: "By default, you cannot access
# any privileged command"; a W: entry must be given for them (user ask #13: read-only by default).
DEFAULT_ALLOW = "R:127.0.0.1"


class ApiServer:
    """One request per connection; the reply, a NUL byte, then close."""

    def __init__(self, view: MinerView, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 allow: list[AllowEntry] | None = None, read_timeout: float = 5.0):
        self.view = view
        self.host = host
        self.port = port
        self.allow = allow if allow is not None else parse_allow(DEFAULT_ALLOW)
        self.read_timeout = read_timeout  # also the limit for an idle or trickling client
        self._server: asyncio.base_events.Server | None = None
        # cgminer serves one request at a time; a few dozen at once is already a busy fleet tool
        self.gate = ConnectionGate(f"cgminer API {host}:{port}", connection_cap(MAX_CONNECTIONS))
        self._refusals = LogLimiter(log, 10.0)  # a scanner knocking every second: one line per 10 s

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        writers = [str(e.network) for e in self.allow if e.group == "W"]
        log.info("cgminer API on %s:%d; privileged commands from %s", self.host, self.port,
                 ", ".join(writers) or "nobody")
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = peer[0] if peer else ""
        if not self.gate.admit(address):
            writer.transport.abort()
            return
        try:
            group = group_for(address, self.allow)
            if group is None:
                self._refusals.log(time.monotonic(), logging.INFO, "allow",
                                   "API connection from %s refused (not in --api-allow)", address)
                return
            data = await self._read(reader)
            reply = handle_request(data, self.view, group)
            writer.write(reply)
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()  # the client reads to EOF: it has its reply now
            # Read what the client still sends (a huge request) before closing: closing with unread
            # input makes the kernel reset the connection, and the client could lose the reply.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._discard(reader), 1.0)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            log.debug("API connection from %s: %s", address, exc)
        finally:
            self.gate.release()
            writer.close()

    @staticmethod
    async def _discard(reader: asyncio.StreamReader, limit: int = 4 << 20) -> None:
        seen = 0
        while seen < limit:
            chunk = await reader.read(65536)
            if not chunk:
                return
            seen += len(chunk)

    async def _read(self, reader: asyncio.StreamReader) -> bytes:
        """The request: what arrives until the client pauses, closes, or sends a NUL. Clients do
        not terminate requests (cgminer takes what one recv gives), so a pause of 10 ms ends it."""
        data = bytearray()
        deadline = asyncio.get_running_loop().time() + self.read_timeout
        while len(data) <= MAX_REQUEST:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            try:
                chunk = await asyncio.wait_for(reader.read(65536), min(left, 0.01 if data else left))
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
            if b"\x00" in chunk or _complete(data):
                break
        return bytes(data)


def _complete(data: bytearray) -> bool:
    """A request that is whole already: a JSON object that parses, or text ending in a newline.
    Saves the pause for clients that keep their socket open for the reply."""
    text = data.strip()
    if text.startswith(b"{"):
        try:
            json.loads(text)
            return True
        except ValueError:
            return False
    return data.endswith(b"\n")
