"""Statistics that outlive a restart: best share (all time and per pool), rejects by reason, and a
hash-rate history at four resolutions (5 s, 1 m, 10 m, 1 h), in a small JSON file.

The file lives in the user's data dir (`--stats-file` overrides it). It is written atomically
(temporary file, then rename) every minute and at shutdown, so a crash loses at most a minute.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT = 1
# resolution name -> (seconds per sample, samples kept): 5 s for an hour (the dashboard's live chart
# samples it, `record`), 1 m for a day, 10 m for a week, 1 h for a month
RINGS = {"5s": (5, 720), "1m": (60, 1440), "10m": (600, 1008), "1h": (3600, 720)}


def default_stats_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("miner")) / "stats.json"


class StatsFileError(ValueError):
    """The stats path names something this program must not touch; the text is one line for the user."""


def check_stats_path(path: str | Path) -> None:
    """Refuse a stats path that is not a file this miner wrote (or a new file it can create): the
    program never moves or overwrites a user's directory or foreign file."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise StatsFileError(f"--stats-file {path}: not a file (a directory?); give a file path, "
                             f"e.g. {path / 'stats.json'}")
    if path.is_file() and not _written_by_us(path):
        raise StatsFileError(f"--stats-file {path}: not a statistics file this miner wrote; refusing to "
                             "overwrite it (choose another path)")
    parent = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise StatsFileError(f"--stats-file {path}: {parent or path.parent} is not a writable folder; "
                             "statistics could not be saved (choose another path)")


def _written_by_us(path: Path) -> bool:
    """Ours: a JSON object with our "format" key (a damaged one of ours still starts that way)."""
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return head == b"" or head.lstrip().startswith(b'{"format": ')


class StatsStore:
    """Persisted totals. `observe()` feeds it the running miner's numbers; `save()` writes them."""

    def __init__(self, path: str | Path, clock=time.time):
        self.path = Path(path)
        self._clock = clock
        self.best_all_time = 0.0
        self.best_per_pool: dict[str, float] = {}  # by pool URL: pool names are per-run
        self.rejects: Counter[str] = Counter()  # before this run
        self.session_rejects: Counter[str] = Counter()
        self.history: dict[str, deque[tuple[float, float]]] = {name: deque(maxlen=keep)
                                                               for name, (_, keep) in RINGS.items()}
        self._last_sample: dict[str, float] = {}

    # ------------------------------------------------------------ file
    def load(self) -> None:
        """Restore the file; a missing one is a first start, a damaged one is set aside with a warning."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError("unknown format")
            self.best_all_time = float(data.get("best_all_time", 0.0))
            self.best_per_pool = {str(k): float(v) for k, v in data.get("best_per_pool", {}).items()}
            self.rejects = Counter({str(k): int(v) for k, v in data.get("rejects", {}).items()})
            for name, (_, keep) in RINGS.items():
                points = data.get("history", {}).get(name, [])
                self.history[name] = deque(((float(t), float(r)) for t, r in points), maxlen=keep)
                if self.history[name]:
                    self._last_sample[name] = self.history[name][-1][0]
        except FileNotFoundError:
            return
        except (ValueError, TypeError, AttributeError, OSError) as exc:
            if not self.path.is_file() or not _written_by_us(self.path):
                raise StatsFileError(f"{self.path}: not a statistics file this miner wrote ({exc}); "
                                     "refusing to touch it (choose another --stats-file)") from None
            broken = self.path.with_suffix(".broken")  # one of ours, damaged: set aside, never deleted
            n = 1
            while broken.exists():
                broken, n = self.path.with_suffix(f".broken.{n}"), n + 1
            with contextlib.suppress(OSError):
                self.path.replace(broken)
            log.warning("%s: unreadable (%s); starting with empty statistics (old file kept as %s)",
                        self.path, exc, broken)

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "saved_at": self._clock(), "best_all_time": self.best_all_time,
            "best_per_pool": self.best_per_pool, "rejects": dict(self.all_rejects()),
            # ring.copy() is one C call: save() runs in a worker thread while the dashboard's ticker
            # appends to the 5 s ring on the event loop, and iterating the live deque could see it change
            "history": {name: [list(p) for p in ring.copy()] for name, ring in self.history.items()},
        }

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".stats-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.as_dict(), f)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("%s: cannot save statistics: %s", self.path, exc)

    # ------------------------------------------------------------ updates
    def all_rejects(self) -> Counter[str]:
        return self.rejects + self.session_rejects

    def observe(self, best_session: float, pool_bests: dict[str, float], session_rejects: Counter[str],
                rates: dict[str, float], now: float | None = None) -> None:
        """The miner's current numbers; `rates` holds the hash rate over each ring's interval."""
        now = self._clock() if now is None else now
        self.best_all_time = max(self.best_all_time, best_session)
        for url, best in pool_bests.items():
            self.best_per_pool[url] = max(self.best_per_pool.get(url, 0.0), best)
        self.session_rejects = Counter(session_rejects)
        for name, rate in rates.items():
            self.record(name, rate, now)

    def record(self, name: str, rate: float, now: float | None = None) -> bool:
        """One hash-rate sample for ring `name`, kept when that ring's interval has passed since its
        last one (True then). A sample 5 % early still counts: a 1 s ticker must not skip every other."""
        now = self._clock() if now is None else now
        interval = RINGS[name][0]
        last = self._last_sample.get(name)
        if last is not None and now - last < interval * 0.95:
            return False
        self.history[name].append((now, rate))
        self._last_sample[name] = now
        return True

    def reset(self, everything: bool) -> None:
        """`zero|bestshare` forgets the best shares; `zero|all` forgets everything."""
        self.best_all_time = 0.0
        self.best_per_pool.clear()
        if everything:
            self.rejects.clear()
            self.session_rejects.clear()
            for ring in self.history.values():
                ring.clear()
            self._last_sample.clear()
        self.save()


def observe_view(store: StatsStore, view: Any) -> None:
    """Feed the store from a MinerView: best shares, rejects, and the hash rate at each resolution."""
    summary = view.summary()
    pools = view.pool_snapshots()
    rejects: Counter[str] = Counter()
    for pool in pools:
        rejects.update(pool.rejected)
    if not pools:
        rejects.update(summary.rejected)
    # the meters keep 15 minutes: the 1 h point is the mean of the last six 10 m points and this one
    ten = summary.rate_15m if summary.elapsed >= 600 else summary.rate_avg
    recent = [r for _, r in list(store.history["10m"])[-5:]]
    store.observe(summary.best_session, {p.url: p.best_difficulty for p in pools}, rejects,
                  {"1m": summary.rate_1m, "10m": ten, "1h": (sum(recent) + ten) / (len(recent) + 1)})
