"""The AxeOS (ESP-Miner) web API's read endpoints, answered from this host's devices and pools.

Why these: fleet tools find a miner by its firmware. pyasic's `get_miner()` (miners/factory.py
`_get_miner_web`/`_parse_web_type`) recognises a web page that says "AxeOS" and then reads
`/api/system/info` (`ASICModel`, `hashRate`, `uptimeSeconds`, ...), and AxeOS Swarm and asic-rs read
the same endpoints. Its 4028 route only knows vendor firmware strings (Antminer, Whatsminer, Avalon,
bfgminer ...), each of which would be a lie here. So the `--http` listener answers the AxeOS read
endpoints, with this miner's own name as the version and only values it measured: a field this host
cannot know (power, fan, regulator temperature, core voltage) is left out, never invented.

Field names follow ESP-Miner's `main/http_server/http_server.c` GET_system_info / GET_system_asic /
GET_system_statistics (docs/cgminer-api.md §3.6).
"""

from __future__ import annotations

import socket
import time
import uuid
from typing import Any

from miner.frontends.view import DeviceSnapshot, MinerView, PoolSnapshot
from miner.sources.stratum.url import parse_pool_url

# The page pyasic's factory fetches at "/" (it identifies AxeOS by that word in the page) is the
# dashboard's, miner/frontends/dashboard/index.html.


def _gh(rate: float) -> float:
    return round(rate / 1e9, 6)  # ESP-Miner reports hashRate in GH/s


def _mac() -> str:
    node = uuid.getnode()
    return ":".join(f"{(node >> shift) & 0xFF:02X}" for shift in range(40, -1, -8))


def _asic_model(devices: list[DeviceSnapshot]) -> str:
    """The chip model when every ASIC device has the same one, else "" (pyasic then picks no model).
    A CPU device's model names its engine, not a chip, so it never counts."""
    models = {d.model for d in devices if d.model and d.driver != "cpu"}
    return models.pop() if len(models) == 1 else ""


def _chips(devices: list[DeviceSnapshot]) -> int:
    """ESP-Miner's asicCount: chips, as a chain driver reports them (`Chips`), one for another ASIC
    device, none for the CPU."""
    total = 0
    for d in devices:
        chips = d.details.get("Chips")
        total += chips if isinstance(chips, int) else (0 if d.driver == "cpu" else 1)
    return total


def _stratum(pool: PoolSnapshot | None) -> tuple[str, int, str]:
    if pool is None:
        return "", 0, ""
    try:
        parsed = parse_pool_url(pool.url)
    except ValueError:
        return pool.url, 0, pool.user
    return parsed.host, parsed.port, pool.user


def system_info(view: MinerView) -> dict[str, Any]:
    s = view.summary()
    devices = view.device_snapshots()
    pools = view.pool_snapshots()
    active = next((p for p in pools if p.active), None)
    fallback = next((p for p in pools if not p.active), None)
    name, _, version = view.description.partition("/")
    url, port, user = _stratum(active)
    fallback_url, fallback_port, fallback_user = _stratum(fallback)
    info: dict[str, Any] = {
        # the same total / elapsed as the cgminer API's `MHS av`, so both report one number
        "hashRate": _gh(s.rate_avg), "hashRate_1m": _gh(s.rate_1m), "hashRate_10m": _gh(s.rate_5m),
        "bestDiff": s.best_all_time, "bestSessionDiff": s.best_session,
        "poolDifficulty": s.pool_difficulty or 0.0,
        "sharesAccepted": s.accepted, "sharesRejected": s.rejected_total,
        "sharesRejectedReasons": [{"message": r, "count": n} for r, n in s.rejected.most_common()],
        "uptimeSeconds": int(s.elapsed), "asicCount": _chips(devices), "ASICModel": _asic_model(devices),
        "stratumURL": url, "stratumPort": port, "stratumUser": user,
        "fallbackStratumURL": fallback_url, "fallbackStratumPort": fallback_port,
        "fallbackStratumUser": fallback_user,
        "isUsingFallbackStratum": int(active is not None and active.index > 0),
        "hostname": socket.gethostname(), "macAddr": _mac(),
        "version": f"{name} {version or view.version}", "deviceModel": f"{name} host",
        "hwErrorCount": s.hw_errors, "noncesFound": s.found,
        # ESP-Miner's 1 = the fans follow the temperature on their own. This miner drives no fan, so the
        # host's own control is what runs them; pyasic's config reader needs the key (config/fans.py).
        "autofanspeed": 1,
    }
    temperatures = [d.temperature for d in devices if d.temperature is not None]
    if temperatures:
        info["temp"] = max(temperatures)
    frequencies = [d.frequency for d in devices if d.frequency is not None]
    if frequencies:
        info["frequency"] = frequencies[0]
    voltages = [d.voltage for d in devices if d.voltage is not None]
    if voltages:
        info["coreVoltageActual"] = round(voltages[0] * 1000)  # ESP-Miner: millivolts
    return info


def system_asic(view: MinerView) -> dict[str, Any]:
    devices = view.device_snapshots()
    name = view.description.partition("/")[0]
    return {"ASICModel": _asic_model(devices), "deviceModel": f"{name} host", "asicCount": _chips(devices),
            "devices": [{"name": d.name, "driver": d.driver, "model": d.model, "port": d.port or "",
                         "hashRate": _gh(d.rate_avg), "frequency": d.frequency, "temp": d.temperature}
                        for d in devices]}


def system_statistics(view: MinerView) -> dict[str, Any]:
    """ESP-Miner's statistics shape: labels and rows, hash rate in GH/s and timestamps in ms. Rows
    come from the saved 1-minute history when there is a statistics file, else the current point."""
    now = time.time()
    store = view.store
    points = list(store.history["1m"]) if store is not None else []
    if not points:
        points = [(now, view.summary().rate_1m)]
    return {"currentTimestamp": int(now * 1000), "labels": ["hashrate", "timestamp"],
            "statistics": [[_gh(rate), int(at * 1000)] for at, rate in points]}
