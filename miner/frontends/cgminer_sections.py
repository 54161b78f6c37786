"""The items of the cgminer API's replies: one function per section, each field named, typed and
computed the way cgminer's `api.c` does it (docs/cgminer-api.md §3.4 and §3.8).

JSON types follow api.c's `api_add_*` calls: `api_add_int`/`uint`/`int64`/`uint64`/`time`/`elapsed`
print integers, `api_add_mhs`/`diff`/`percent`/`utility`/`temp`/`mhtotal`/`double` print reals,
`api_add_bool` prints true/false, and `api_add_string`/`const`/`escape` print strings. A real here is
always a Python float and an integer always an int, so a typed client (a Go exporter) decodes each.
"""

from __future__ import annotations

import time
from typing import Any

from miner.frontends.view import DeviceSnapshot, PoolSnapshot, Summary

Item = dict[str, Any]


def mhs(rate: float) -> float:
    return round(rate / 1e6, 6)


def ghs(rate: float) -> float:
    return round(rate / 1e9, 6)


def ratio(part: float, whole: float) -> float:
    """api.c's `api_add_percent` prints the ratio times 100 (docs/cgminer-api.md §3.8)."""
    return round(100.0 * part / whole, 4) if whole else 0.0


def temperature(value: float | None) -> float:
    return round(float(value), 2) if value is not None else 0.0


def unix(seconds: float) -> int:
    """An `api_add_time` field: whole unix seconds, 0 for never."""
    return int(seconds) if seconds > 0 else 0


def summary_item(s: Summary) -> Item:
    """api.c summary(): every field in its order; `MHS 5s` is `MHS <log interval>s` with cgminer's
    default `--log 5`. `GHS 5s`/`GHS av` (bmminer's names) and `MHS 20s` (bfgminer's) are what pyasic's
    backends read for the hash rate (pyasic miners/backends/cgminer.py and bmminer.py: `GHS 5s`,
    bfgminer.py: `MHS 20s`), so each of them finds one."""
    per_minute = 60.0 / s.elapsed if s.elapsed > 0 else 0.0
    answered_diff = s.accepted_difficulty + s.rejected_difficulty + s.stale_difficulty
    return {
        "Elapsed": int(s.elapsed), "MHS av": mhs(s.rate_avg), "MHS 5s": mhs(s.rate_5s),
        "MHS 1m": mhs(s.rate_1m), "MHS 5m": mhs(s.rate_5m), "MHS 15m": mhs(s.rate_15m),
        "Found Blocks": int(s.blocks),
        "Getworks": int(s.getworks),  # jobs the sources sent (cgminer: total_getworks)
        "Accepted": int(s.accepted), "Rejected": int(s.rejected_total), "Hardware Errors": int(s.hw_errors),
        "Utility": round(s.accepted * per_minute, 4),
        "Discarded": 0,  # cgminer: queued work thrown away; this miner queues none (devices pull work)
        "Stale": int(s.stale),
        "Get Failures": 0, "Local Work": int(s.found), "Remote Failures": 0,  # no getwork polling here
        "Network Blocks": int(s.network_blocks),
        "Total MH": round(s.total_hashes / 1e6, 4), "Work Utility": round(s.diff1 * per_minute, 4),
        "Difficulty Accepted": float(s.accepted_difficulty), "Difficulty Rejected": float(s.rejected_difficulty),
        "Difficulty Stale": float(s.stale_difficulty),
        "Best Share": int(s.best_session),  # api_add_uint64: an integer
        # api.c: hw / (hw + diff1), rejected diff / diff1, rejected and stale diff / answered diff
        "Device Hardware%": ratio(s.hw_errors, s.hw_errors + s.diff1),
        "Device Rejected%": ratio(s.rejected_difficulty, s.diff1),
        "Pool Rejected%": ratio(s.rejected_difficulty, answered_diff),
        "Pool Stale%": ratio(s.stale_difficulty, answered_diff),
        "Last getwork": int(time.time()),
        # beyond api.c: the hash-rate names other firmware sends, and the persisted record
        "MHS 20s": mhs(s.rate_20s), "GHS 5s": ghs(s.rate_5s), "GHS av": ghs(s.rate_avg),
        "Best Share All Time": float(s.best_all_time),  # ours: a real, records below 1 show
    }


def device_item(d: DeviceSnapshot) -> Item:
    """api.c ascstatus()."""
    per_minute = 60.0 / d.elapsed if d.elapsed > 0 else 0.0
    return {
        "ASC": d.index, "Name": d.driver.upper()[:3], "ID": d.index, "Enabled": "Y" if d.enabled else "N",
        "Status": d.state, "Temperature": temperature(d.temperature),
        "MHS av": mhs(d.rate_avg), "MHS 5s": mhs(d.rate_5s), "MHS 1m": mhs(d.rate_1m),
        "MHS 5m": mhs(d.rate_5m), "MHS 15m": mhs(d.rate_15m),
        "Accepted": int(d.accepted), "Rejected": int(d.rejected_total), "Hardware Errors": int(d.hw_errors),
        "Utility": round(d.accepted * per_minute, 4),
        "Last Share Pool": d.last_share_pool if d.last_share_at > 0 else -1,
        "Last Share Time": unix(d.last_share_at),
        "Total MH": round(d.total_hashes / 1e6, 4), "Diff1 Work": int(d.diff1),  # api_add_int64
        "Difficulty Accepted": float(d.accepted_difficulty), "Difficulty Rejected": float(d.rejected_difficulty),
        "Last Share Difficulty": float(d.last_share_difficulty), "No Device": d.state == "NoDevice",
        "Last Valid Work": unix(time.time() - d.last_valid_age) if d.last_valid_age is not None else 0,
        "Device Hardware%": ratio(d.hw_errors, d.hw_errors + d.diff1),
        "Device Rejected%": ratio(d.rejected_difficulty, d.diff1),
        "Device Elapsed": int(d.elapsed),
        # beyond ascstatus (pgastatus sends Frequency): where the device is and what the log calls it
        "MHS 20s": mhs(d.rate_20s), "Frequency": float(d.frequency) if d.frequency is not None else 0.0,
        "Device": d.name, "Port": d.port or "",
    }


def pool_item(p: PoolSnapshot, quota: int = 1) -> Item:
    """api.c poolstatus()."""
    answered_diff = p.accepted_difficulty + p.rejected_difficulty + p.stale_difficulty
    return {
        "POOL": p.index, "URL": p.url, "Status": p.state, "Priority": p.priority, "Quota": quota,
        "Long Poll": "N", "Getworks": int(p.getworks), "Accepted": int(p.accepted), "Rejected": int(p.rejected_total),
        "Works": int(p.getworks),  # cgminer counts work items made; a job is this miner's unit of work
        "Discarded": 0, "Stale": int(p.stale), "Get Failures": 0, "Remote Failures": 0, "User": p.user,
        "Last Share Time": unix(p.last_share_at), "Diff1 Shares": int(p.diff1), "Proxy Type": "", "Proxy": "",
        "Difficulty Accepted": float(p.accepted_difficulty), "Difficulty Rejected": float(p.rejected_difficulty),
        "Difficulty Stale": float(p.stale_difficulty), "Last Share Difficulty": float(p.last_share_difficulty),
        "Work Difficulty": float(p.difficulty), "Has Stratum": True,
        "Stratum Active": p.active and p.alive, "Stratum URL": p.url if p.active and p.alive else "",
        "Stratum Difficulty": float(p.difficulty) if p.active and p.alive else 0.0,
        "Has Vmask": p.version_rolling, "Has GBT": False,
        "Best Share": int(p.best_difficulty),  # api_add_uint64
        "Pool Rejected%": ratio(p.rejected_difficulty, answered_diff),
        "Pool Stale%": ratio(p.stale_difficulty, answered_diff),
        "Bad Work": 0,  # cgminer: work the pool sent that failed to decode; the session drops such jobs
        "Current Block Height": int(p.block_height), "Current Block Version": int(p.block_version),
        # beyond poolstatus: rejects by the pool's reason, submit round trip, the persisted record
        "Rejected Reasons": ", ".join(f"{r}: {n}" for r, n in p.rejected.most_common()),
        "Submit Latency": round(p.latency, 4) if p.latency is not None else 0.0,
        "Best Share All Time": float(p.best_all_time),
        "Protocol": p.protocol,  # stratum1 or stratum2 (docs/sv2.md §6)
        # beyond poolstatus: who the pool's coinbase pays (docs/payout.md §2)
        "Payout": p.payout, "Payout Percent": round(p.payout_percent, 4), "Payout Address": p.payout_address,
        "Payout Checked": p.payout_checked, "Payout OK": p.payout_ok,
    }


def lcd_item(s: Summary, devices: list[DeviceSnapshot], pool: PoolSnapshot | None) -> Item:
    """api.c lcddata(): the hottest device, the newest share, the current pool."""
    hottest = max((d.temperature for d in devices if d.temperature is not None), default=0.0)
    valid = [d.last_valid_age for d in devices if d.last_valid_age is not None]
    return {
        "Elapsed": int(s.elapsed), "GHS av": ghs(s.rate_avg), "GHS 5m": ghs(s.rate_5m), "GHS 5s": ghs(s.rate_5s),
        "Temperature": temperature(hottest), "Last Share Difficulty": float(s.last_share_difficulty),
        "Last Share Time": unix(s.last_share_at), "Best Share": int(s.best_session),
        "Last Valid Work": unix(time.time() - min(valid)) if valid else 0, "Found Blocks": int(s.blocks),
        "Current Pool": pool.url if pool is not None else "none", "User": pool.user if pool is not None else "",
    }


def mm_id(d: DeviceSnapshot, module: dict[str, Any]) -> str:
    """One Avalon module as cgminer's Avalon drivers print it in `estats` (`MM ID<n>`: space-separated
    `Key[value]` pairs; pyasic's Avalon backend and miner.php's Avalon page parse Ver, DNA, Temp,
    GHSmm, Freq, HW, Fan). Only what this host measured is listed."""
    def field(key: str, value: Any) -> str:
        if isinstance(value, list | tuple):
            value = " ".join(str(v) for v in value)
        return f"{key}[{value}]"

    parts = [field("Ver", module.get("version") or d.model), field("DNA", module.get("dna", "")),
             field("Elapsed", int(d.elapsed))]
    if module.get("temperature") is not None:
        parts.append(field("Temp", module["temperature"]))
    if module.get("fan") is not None:
        parts.append(field("Fan", module["fan"]))
    parts.append(field("GHSmm", f"{(module.get('hashrate') or 0.0) / 1e9:.2f}"))
    if module.get("frequency"):
        parts.append(field("Freq", module["frequency"]))
    parts.append(field("HW", int(module.get("hw_errors") or 0)))
    return " ".join(parts)
