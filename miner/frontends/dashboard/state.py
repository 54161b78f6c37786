"""What the dashboard page shows, as one JSON-ready dict built from a `MinerView`.

Pure: it reads snapshots and does the arithmetic (expected time per share and per block, chance per
day), so the page only lays numbers out and the unit tests check every figure without a browser.
The page gets the same dict at load (`/api/dashboard/state`) and once a second over server-sent
events (`/api/dashboard/events`, docs/dashboard.md §2).
"""

from __future__ import annotations

import math
import time
from typing import Any

from miner.core.recent_shares import ShareRecord
from miner.frontends.view import DeviceSnapshot, MinerView, PoolSnapshot, Summary
from miner.sources.sandbox import SandboxSource

HASHES_PER_DIFF1 = 2**32  # expected hashes per difficulty-1 share (docs/dashboard.md §3)
DAY = 86400.0


def expected_seconds(difficulty: float, rate: float) -> float | None:
    """Mean time to one hash at `difficulty` at `rate` H/s (D * 2^32 / H); None without a rate."""
    if rate <= 0 or difficulty <= 0:
        return None
    return difficulty * HASHES_PER_DIFF1 / rate


def chance_within(seconds: float, difficulty: float, rate: float) -> float:
    """Chance of at least one hash at `difficulty` within `seconds` (Poisson: 1 - e^(-t/T))."""
    mean = expected_seconds(difficulty, rate)
    if mean is None:
        return 0.0
    return -math.expm1(-seconds / mean)


def _rate(d: DeviceSnapshot) -> float:
    """The rate a device's expectations use: the 1 m mean once there is one, else the session's."""
    return d.rate_1m or d.rate_avg


def sub_rows(details: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-chip rows of a BM13xx chain (details' `Per Chip`) or per-module rows of an Avalon
    (`Modules`), in one shape: what the drivers' details() document (drivers/*/driver.py)."""
    rows: list[dict[str, Any]] = []
    for chip in details.get("Per Chip") or []:
        if isinstance(chip, dict):
            rows.append({"kind": "chip", "id": chip.get("Address"), "present": bool(chip.get("Present", True)),
                         "rate": float(chip.get("Hashrate") or 0.0), "nonces": chip.get("Nonces"),
                         "hw": chip.get("HW Errors"), "temperature": None, "frequency": None, "model": ""})
    for module in details.get("Modules") or []:
        if isinstance(module, dict):
            frequencies = [f for f in module.get("frequency") or [] if f]
            rows.append({"kind": "module", "id": module.get("address"), "present": True,
                         "rate": float(module.get("hashrate") or 0.0), "nonces": module.get("valid_nonces"),
                         "hw": module.get("hw_errors"), "temperature": module.get("temperature"),
                         "frequency": round(sum(frequencies) / len(frequencies)) if frequencies else None,
                         "model": str(module.get("model") or ""), "asics": module.get("asics")})
    return rows


def device_row(d: DeviceSnapshot, share_difficulty: float | None) -> dict[str, Any]:
    return {
        "index": d.index, "name": d.name, "driver": d.driver, "model": d.model, "port": d.port or "",
        "state": d.state, "enabled": d.enabled, "rate_5s": d.rate_5s, "rate_1m": d.rate_1m, "rate_avg": d.rate_avg,
        "accepted": d.accepted, "rejected": d.rejected_total, "hw": d.hw_errors, "temperature": d.temperature,
        "frequency": d.frequency, "voltage": d.voltage, "best": d.best_difficulty, "last_error": d.last_error,
        "share_every": expected_seconds(share_difficulty or 0.0, _rate(d)),
        "sub": sub_rows(d.details),
    }


def pool_row(p: PoolSnapshot) -> dict[str, Any]:
    return {
        "index": p.index, "name": p.name, "url": p.url, "user": p.user, "state": p.state, "active": p.active,
        "priority": p.priority, "difficulty": p.difficulty if p.state == "Alive" else None,  # a dead pool's is unknown
        "latency": p.latency, "accepted": p.accepted, "rejected": dict(p.rejected.most_common()), "stale": p.stale,
        "best": p.best_difficulty, "best_all_time": p.best_all_time, "rate_5s": p.rate_5s,
        "last_error": p.last_error,
    }


def worker_row(w: dict[str, Any], now: float) -> dict[str, Any]:
    """One downstream worker of `miner serve`, with its last share (wall-clock time) as an age, so
    the page needs no clock of its own."""
    last = w.get("last_share")
    return {**w, "last_share_ago": None if last is None else max(0.0, now - last)}


def share_row(r: ShareRecord, pool_names: dict[str, str]) -> dict[str, Any]:
    return {"seq": r.seq, "at": r.at, "device": r.device, "pool": pool_names.get(r.source, r.source),
            "difficulty": r.difficulty, "hash_difficulty": r.hash_difficulty, "accepted": r.accepted,
            "reason": r.reason}


def network_numbers(s: Summary) -> dict[str, Any]:
    """The network difficulty from the current job's nBits, the mean time to a block at the whole
    miner's rate and the chance of one within a day: what a solo miner watches."""
    rate = s.rate_1m or s.rate_avg
    return {"difficulty": s.network_difficulty, "height": s.block_height,
            "block_every": expected_seconds(s.network_difficulty, rate),
            "chance_per_day": chance_within(DAY, s.network_difficulty, rate)}


def mining_mode(view: MinerView) -> str:
    """pools, sandbox (a local job: no network, so no block numbers) or solo (a node)."""
    if view.pool_manager is not None:
        return "pools"
    return "sandbox" if isinstance(view.miner.source, SandboxSource) else "solo"


def dashboard_state(view: MinerView, shares_since: int = 0, now: float | None = None) -> dict[str, Any]:
    """Everything the page shows. `shares_since`: only share-log records newer than that sequence
    number (0: all the ring holds), so a live update carries just the new ones."""
    now = time.time() if now is None else now
    s = view.summary()
    pools = view.pool_snapshots()
    devices = view.device_snapshots()
    names = {p.name: p.name for p in pools}
    recent = view.miner.recent
    mode = mining_mode(view)
    return {
        "at": now,
        "name": view.description,
        "mode": mode,
        "summary": {
            "elapsed": s.elapsed, "rate_5s": s.rate_5s, "rate_1m": s.rate_1m, "rate_5m": s.rate_5m,
            "rate_15m": s.rate_15m, "rate_avg": s.rate_avg, "accepted": s.accepted,
            "rejected": dict(s.rejected.most_common()), "stale": s.stale, "hw": s.hw_errors,
            "best_session": s.best_session, "best_all_time": s.best_all_time, "pool_difficulty": s.pool_difficulty,
        },
        "network": network_numbers(s) if mode != "sandbox" else None,
        "devices": [device_row(d, s.pool_difficulty) for d in devices],
        "pools": [pool_row(p) for p in pools],
        "workers": [worker_row(w, now) for w in view.worker_snapshots()],
        "shares": [share_row(r, names) for r in recent.since(shares_since)],
        "shares_seq": recent.last_seq,
        "history_point": [now, s.rate_5s],
    }
