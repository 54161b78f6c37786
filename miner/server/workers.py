"""Per-worker statistics of the downstream miners (docs/serve.md §5): what cgminer shows per pool
and AxeOS per device, by worker name (the authorized user), summed over that worker's connections."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field

from miner.core.targets import NONCE_SPACE

RATE_WINDOW = 300.0  # seconds of accepted shares the hash rate is estimated from
MAX_WORKERS = 10_000  # names kept; beyond this the least recently seen is forgotten


@dataclass
class WorkerStats:
    name: str
    user_agent: str = ""
    protocol: str = "stratum1"  # of its newest connection: stratum1 (V1 listener) or stratum2 (SV2 listener)
    connections: int = 0
    accepted: int = 0
    accepted_difficulty: float = 0.0
    rejected: Counter = field(default_factory=Counter)  # reason -> count
    forwarded: int = 0  # shares that met the source's difficulty and went upstream (or to the node)
    upstream_accepted: int = 0
    upstream_rejected: int = 0
    blocks: int = 0
    best_difficulty: float = 0.0
    last_share: float | None = None  # wall-clock time of the last accepted share
    difficulty: float = 0.0  # the current vardiff of its newest connection
    _window: deque = field(default_factory=deque)  # (monotonic time, difficulty) of accepted shares

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def note_accepted(self, difficulty: float, share_difficulty: float, now: float, wall: float | None = None) -> None:
        self.accepted += 1
        self.accepted_difficulty += difficulty
        self.best_difficulty = max(self.best_difficulty, share_difficulty)
        self.last_share = time.time() if wall is None else wall
        self._window.append((now, difficulty))
        self._trim(now)

    def note_rejected(self, reason: str) -> None:
        self.rejected[reason] += 1

    def hashrate(self, now: float) -> float:
        """Hashes per second the accepted shares of the last RATE_WINDOW seconds stand for."""
        self._trim(now)
        if not self._window:
            return 0.0
        span = max(now - self._window[0][0], min(RATE_WINDOW, 60.0))
        return sum(d for _, d in self._window) * NONCE_SPACE / span

    def _trim(self, now: float) -> None:
        while self._window and now - self._window[0][0] > RATE_WINDOW:
            self._window.popleft()

    def as_dict(self, now: float) -> dict:
        return {"name": self.name, "user_agent": self.user_agent, "protocol": self.protocol,
                "connections": self.connections,
                "hashrate": self.hashrate(now), "difficulty": self.difficulty, "accepted": self.accepted,
                "accepted_difficulty": self.accepted_difficulty, "rejected": dict(self.rejected),
                "forwarded": self.forwarded, "upstream_accepted": self.upstream_accepted,
                "upstream_rejected": self.upstream_rejected, "blocks": self.blocks,
                "best_difficulty": self.best_difficulty, "last_share": self.last_share}


class WorkerBook:
    """Every worker name seen, bounded."""

    def __init__(self, limit: int = MAX_WORKERS):
        self.limit = limit
        self._workers: dict[str, WorkerStats] = {}

    def __len__(self) -> int:
        return len(self._workers)

    def get(self, name: str) -> WorkerStats:
        worker = self._workers.pop(name, None) or WorkerStats(name)
        self._workers[name] = worker  # most recently used last
        while len(self._workers) > self.limit:
            oldest = next(iter(self._workers))
            if self._workers[oldest].connections:
                break
            del self._workers[oldest]
        return worker

    def all(self) -> list[WorkerStats]:
        return sorted(self._workers.values(), key=lambda w: w.name)
