"""The live status view: a device table and a pool table drawn with rich, from view snapshots.

`render()` is a pure function of the snapshots (the snapshot test feeds it fixed numbers);
`LiveStatus` redraws it every second on a terminal.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from miner.core.stats import format_difficulty
from miner.frontends.view import DeviceSnapshot, MinerView, PoolSnapshot, Summary

log = logging.getLogger(__name__)


def _mhs(rate: float) -> str:
    return f"{rate / 1e6:.2f}"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _reasons(rejected: dict[str, int]) -> str:
    return ", ".join(f"{reason}: {count}" for reason, count in sorted(rejected.items(), key=lambda rc: -rc[1]))


def header(summary: Summary, description: str) -> str:
    return (f"{description} | up {_duration(summary.elapsed)} | {_mhs(summary.rate_5s)} MH/s (5s) "
            f"{_mhs(summary.rate_avg)} MH/s (avg) | A:{summary.accepted} R:{summary.rejected_total} "
            f"S:{summary.stale} HW:{summary.hw_errors} | best {format_difficulty(summary.best_session)} "
            f"(all time {format_difficulty(summary.best_all_time)})")


def device_table(devices: Sequence[DeviceSnapshot]) -> Table:
    table = Table(box=None, title="devices", title_justify="left", pad_edge=False)
    for name in ("device", "driver", "port", "MH/s 5s", "MH/s 1m", "MH/s avg", "A", "R", "HW", "temp",
                 "freq", "state"):
        table.add_column(name, no_wrap=True,
                         justify="right" if name.startswith(("MH", "A", "R", "HW", "temp", "freq")) else "left")
    for d in devices:
        table.add_row(d.name, d.driver, d.port or "-", _mhs(d.rate_5s), _mhs(d.rate_1m), _mhs(d.rate_avg),
                      str(d.accepted), str(d.rejected_total), str(d.hw_errors),
                      f"{d.temperature:.1f}C" if d.temperature is not None else "-",
                      f"{d.frequency:g}MHz" if d.frequency is not None else "-", d.state)
    return table


def pool_table(pools: Sequence[PoolSnapshot], total_rate: float) -> Table:
    table = Table(box=None, title="pools", title_justify="left", pad_edge=False)
    payout = any(p.payout for p in pools)  # the payout check's column (docs/payout.md §2), once there is one
    for name in ("pool", "url", "state", "diff", "A", "R", "S", "latency", "vroll", "share every",
                 *(("payout",) if payout else ())):
        table.add_column(name, no_wrap=True, justify="right" if name in ("diff", "A", "S", "latency") else "left")
    for p in pools:
        rejected = str(p.rejected_total) + (f" ({_reasons(p.rejected)})" if p.rejected else "")
        # user ask #1: how long one share takes at this difficulty (D * 2^32 / H)
        every = _duration(p.difficulty * 2**32 / total_rate) if total_rate > 0 else "-"
        table.add_row(("*" if p.active else "") + str(p.index), p.url, p.state, format_difficulty(p.difficulty),
                      str(p.accepted), rejected, str(p.stale),
                      f"{p.latency * 1000:.0f} ms" if p.latency is not None else "-",
                      "on" if p.version_rolling else "off", every,
                      *((_payout(p),) if payout else ()))
    return table


def _payout(p: PoolSnapshot) -> str:
    if not p.payout:
        return "-"
    where = p.payout_address if len(p.payout_address) <= 20 else p.payout_address[:8] + "…" + p.payout_address[-6:]
    mark = "" if not p.payout_checked else " ok" if p.payout_ok else " FAILED"
    return f"{p.payout_percent:.1f}% {where}{mark}"


def render(summary: Summary, devices: Sequence[DeviceSnapshot], pools: Sequence[PoolSnapshot],
           description: str) -> Group:
    parts: list = [Text(header(summary, description)), device_table(devices)]
    if pools:
        parts.append(pool_table(pools, summary.rate_avg))
    return Group(*parts)


def render_text(summary: Summary, devices: Sequence[DeviceSnapshot], pools: Sequence[PoolSnapshot],
                description: str, width: int = 120) -> str:
    """The view as plain text at a fixed width (no colour): for tests and for logs."""
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, force_terminal=False, legacy_windows=False)
    console.print(render(summary, devices, pools, description))
    return out.getvalue()


class LiveStatus:
    """Redraws the view on the terminal; log lines print above it."""

    def __init__(self, view: MinerView, console: Console):
        self.view = view
        self.console = console
        self._live = Live(console=console, refresh_per_second=1, get_renderable=self._renderable,
                          redirect_stderr=False, redirect_stdout=False, transient=False)

    def _renderable(self) -> Group:
        view = self.view
        return render(view.summary(), view.device_snapshots(), view.pool_snapshots(), view.description)

    def __enter__(self) -> LiveStatus:
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._live.__exit__(*exc)
