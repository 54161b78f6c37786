"""The live status view: a device table and a pool table drawn with rich, from view snapshots.

`render()` is a pure function of the snapshots (the snapshot test feeds it fixed numbers) and fits
80 columns: only the port and the pool's address shrink (with an ellipsis), never a state or a
count. `LiveStatus` redraws it every second on a terminal, and once more at exit showing the
stopped miner; `ConsoleHandler` prints log lines above it.
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


STOPPED = "Stopped"
RUNNING_STATES = ("Alive", "Sick", "Initialising", "Connecting")  # what a stop ends; others stay as they were


def header(summary: Summary, description: str, stopped: bool = False) -> str:
    diff = format_difficulty(summary.pool_difficulty) if summary.pool_difficulty is not None else "-"
    # two lines, each under 80 columns: the rate, then the shares
    return (f"{description} | {'stopped after' if stopped else 'up'} {_duration(summary.elapsed)} | "
            f"{_mhs(summary.rate_5s)} MH/s (5s) {_mhs(summary.rate_avg)} MH/s (avg)\n"
            f"A:{summary.accepted} R:{summary.rejected_total} S:{summary.stale} HW:{summary.hw_errors} | "
            f"pool diff {diff} | best {format_difficulty(summary.best_session)} "
            f"(all time {format_difficulty(summary.best_all_time)})")


def _state(state: str, stopped: bool) -> str:
    return STOPPED if stopped and state in RUNNING_STATES else state


def _columns(table: Table, names: Sequence[str], right: set[str], shrink: str) -> None:
    for name in names:
        # only `shrink` gives way on a narrow terminal (ellipsis); the others keep their full text
        table.add_column(name, no_wrap=name != shrink, overflow="ellipsis",
                         justify="right" if name in right else "left")


def device_table(devices: Sequence[DeviceSnapshot], stopped: bool = False) -> Table:
    table = Table(box=None, title="devices", title_justify="left", pad_edge=False)
    # 5 s and average, as cgminer's device lines; the 1 m rate is on the dashboard and the APIs
    _columns(table, ("device", "state", "MH/s 5s", "MH/s avg", "A", "R", "HW", "temp", "freq", "port"),
             {"MH/s 5s", "MH/s avg", "A", "R", "HW", "temp", "freq"}, shrink="port")
    for d in devices:
        table.add_row(d.name, _state(d.state, stopped), _mhs(d.rate_5s), _mhs(d.rate_avg),
                      str(d.accepted), str(d.rejected_total), str(d.hw_errors),
                      f"{d.temperature:.1f}C" if d.temperature is not None else "-",
                      f"{d.frequency:g}MHz" if d.frequency is not None else "-", d.port or "-")
    return table


def _address(url: str) -> str:
    """The pool's address without the scheme everyone uses (stratum+tcp://); others stay visible."""
    return url.removeprefix("stratum+tcp://")


def pool_table(pools: Sequence[PoolSnapshot], total_rate: float, stopped: bool = False) -> Table:
    table = Table(box=None, title="pools", title_justify="left", pad_edge=False)
    payout = any(p.payout for p in pools)  # the payout check's column (docs/payout.md §2), once there is one
    _columns(table, ("pool", "address", "state", "diff", "A", "R", "S", "latency", "share every",
                     *(("payout",) if payout else ())),
             {"diff", "A", "R", "S", "latency", "share every"}, shrink="address")
    for p in pools:
        # a pool that is not Alive has no difficulty now (a dead one never set one): "-", not a made-up 1
        known = p.state == "Alive"
        # user ask #1: how long one share takes at this difficulty (D * 2^32 / H)
        every = _duration(p.difficulty * 2**32 / total_rate) if known and total_rate > 0 else "-"
        table.add_row(("*" if p.active else "") + str(p.index), _address(p.url), _state(p.state, stopped),
                      format_difficulty(p.difficulty) if known else "-", str(p.accepted), str(p.rejected_total),
                      str(p.stale), f"{p.latency * 1000:.0f} ms" if p.latency is not None else "-", every,
                      *((_payout(p),) if payout else ()))
    return table


def _payout(p: PoolSnapshot) -> str:
    if not p.payout:
        return "-"
    where = p.payout_address if len(p.payout_address) <= 20 else p.payout_address[:8] + "…" + p.payout_address[-6:]
    mark = "" if not p.payout_checked else " ok" if p.payout_ok else " FAILED"
    return f"{p.payout_percent:.1f}% {where}{mark}"


def reject_lines(pools: Sequence[PoolSnapshot]) -> list[str]:
    """The pools' reasons for their rejects, one line each (the table keeps only the count)."""
    return [f"{p.name} rejected: {_reasons(p.rejected)}" for p in pools if p.rejected]


def render(summary: Summary, devices: Sequence[DeviceSnapshot], pools: Sequence[PoolSnapshot],
           description: str, stopped: bool = False) -> Group:
    parts: list = [Text(header(summary, description, stopped)), device_table(devices, stopped)]
    if pools:
        parts.append(pool_table(pools, summary.rate_avg, stopped))
        parts.extend(Text(line) for line in reject_lines(pools))
    return Group(*parts)


def render_text(summary: Summary, devices: Sequence[DeviceSnapshot], pools: Sequence[PoolSnapshot],
                description: str, width: int = 80, stopped: bool = False) -> str:
    """The view as plain text at a fixed width (no colour): for tests and for logs."""
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, force_terminal=False, legacy_windows=False)
    console.print(render(summary, devices, pools, description, stopped))
    return out.getvalue()


class ConsoleHandler(logging.Handler):
    """Log records printed through the live view's console, so they appear above the table; the
    formatter is the plain lines' (miner/app/logformat.py), so both look the same."""

    def __init__(self, console: Console):
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(Text(self.format(record)), soft_wrap=True)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


class LiveStatus:
    """Redraws the view on the terminal; log lines print above it."""

    def __init__(self, view: MinerView, console: Console):
        self.view = view
        self.console = console
        self.stopped = False
        self._live = Live(console=console, refresh_per_second=1, get_renderable=self._renderable,
                          redirect_stderr=False, redirect_stdout=False, transient=False)

    def _renderable(self) -> Group:
        view = self.view
        return render(view.summary(), view.device_snapshots(), view.pool_snapshots(), view.description, self.stopped)

    def __enter__(self) -> LiveStatus:
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        # the miner has stopped by now (devices stopped, shares sent): the last frame says so
        self.stopped = True
        self._live.refresh()
        self._live.__exit__(*exc)
