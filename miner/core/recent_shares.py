"""The last answered shares, in memory, for the dashboard's share log (the `--sharelog` file is a
separate, complete record). A bounded ring: it never grows past `RECENT_SHARES` entries."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

RECENT_SHARES = 200  # the share log the dashboard shows (issue 18: "last 200")


@dataclass(frozen=True, slots=True)
class ShareRecord:
    seq: int  # 1, 2, 3 ... in the order the answers came: a reader asks for what is newer than it has
    at: float  # unix time of the answer
    device: str
    source: str  # the job source's name (pool0, pool1, node, sandbox)
    difficulty: float  # the share target's difficulty the share was sent at
    hash_difficulty: float  # the hash's own difficulty
    accepted: bool
    reason: str  # the source's reason for a reject, "" when accepted


class RecentShares:
    """Answers as the source gave them, newest last. Written from the event loop, read by the front
    ends; the lock keeps a copy consistent if a thread reads it."""

    def __init__(self, keep: int = RECENT_SHARES):
        self._ring: deque[ShareRecord] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._seq = 0

    def add(self, at: float, device: str, source: str, difficulty: float, hash_difficulty: float,
            accepted: bool, reason: str | None) -> ShareRecord:
        with self._lock:
            self._seq += 1
            record = ShareRecord(self._seq, at, device, source, difficulty, hash_difficulty, accepted,
                                 "" if accepted else (reason or "rejected"))
            self._ring.append(record)
        return record

    @property
    def last_seq(self) -> int:
        return self._seq

    def since(self, seq: int = 0) -> list[ShareRecord]:
        """The kept records newer than `seq`, oldest first."""
        with self._lock:
            return [r for r in self._ring if r.seq > seq]

    def __len__(self) -> int:
        return len(self._ring)
