"""One log line per kind of event per interval: a flood of the same event (stale shares, shed
nonces) must not become a flood of lines. The caller passes the time, so sans-I/O code can use it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_KINDS = 1024


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


class RepeatFilter(logging.Filter):
    """The same rule for loggers this program does not write itself (asyncio's "socket.accept() out
    of system resource", aiohttp's server errors): a record whose message template was let through
    less than `interval` ago is dropped, and the next one that passes says how many were."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._kinds: dict[tuple[str, int, str], _Kind] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = self.clock()
        key = (record.name, record.levelno, str(record.msg))
        entry = self._kinds.get(key)
        if entry is None:
            if len(self._kinds) >= MAX_KINDS:  # bounded: many distinct messages are not a repeat
                self._kinds.clear()
            entry = self._kinds[key] = _Kind()
        if now < entry.next_at:
            entry.suppressed += 1
            return False
        if entry.suppressed:
            record.msg = f"{record.msg} (and {entry.suppressed} more like it in the last {self.interval:g} s)"
            record.exc_info = None  # the first of the burst had the traceback
            record.exc_text = None
        entry.suppressed = 0
        entry.next_at = now + self.interval
        return True


# The loggers of the libraries under the servers and the pools' sockets; a filter on a logger sees
# only that logger's own records, so each is named.
FOREIGN_LOGGERS = ("asyncio", "aiohttp.server", "aiohttp.web", "aiohttp.access", "aiohttp.internal")


def limit_foreign_repeats(interval: float = 10.0) -> None:
    """Install one RepeatFilter on each of FOREIGN_LOGGERS (once; calling again changes nothing)."""
    for name in FOREIGN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in logger.filters):
            logger.addFilter(RepeatFilter(interval))
