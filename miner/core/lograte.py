"""One log line per kind of event per interval: a flood of the same event (stale shares, shed
nonces) must not become a flood of lines. The caller passes the time, so sans-I/O code can use it."""

from __future__ import annotations

import logging
from dataclasses import dataclass


@dataclass
class _Kind:
    next_at: float = 0.0
    suppressed: int = 0


class LogLimiter:
    def __init__(self, logger: logging.Logger, interval: float = 10.0):
        self.logger = logger
        self.interval = interval
        self._kinds: dict[str, _Kind] = {}

    def log(self, now: float, level: int, kind: str, message: str, *args: object) -> bool:
        """Log `message` unless a line of this `kind` went out less than `interval` ago; the next line
        that goes out says how many were left out. True when this one was logged."""
        entry = self._kinds.setdefault(kind, _Kind())
        if now < entry.next_at:
            entry.suppressed += 1
            return False
        if entry.suppressed:
            message += f" (and {entry.suppressed} more like it in the last {self.interval:g} s)"
        entry.suppressed = 0
        entry.next_at = now + self.interval
        self.logger.log(level, message, *args)
        return True
