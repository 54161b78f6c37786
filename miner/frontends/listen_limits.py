"""Limits every listening front end keeps (issue 14, fault 10): how many connections one listener
may hold, and how long a client may take to send its request.

With a 1,024-descriptor limit, 1,074 idle HTTP connections once left the process without a
descriptor for the pool's reconnect or the statistics file. So each listener holds at most an
eighth of the process's descriptor limit (and never more than its own cap): two listeners full
still leave three quarters for pools, devices and files. A connection over the cap is accepted
and closed at once (leaving it in the kernel's backlog would only delay the client's error).
"""

from __future__ import annotations

import asyncio
import logging
import time

from miner.core.lograte import LogLimiter

log = logging.getLogger(__name__)

HEADER_TIMEOUT = 10.0  # seconds a client has from connecting until its request is in
SHARE_OF_DESCRIPTORS = 8  # a listener holds at most soft RLIMIT_NOFILE / this


def descriptor_limit() -> int | None:
    try:
        import resource
    except ImportError:  # not on Unix
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def connection_cap(wanted: int, limit: int | None = None) -> int:
    """`wanted`, or fewer (but 4 at least) when the descriptor limit (default: this process's) is low."""
    limit = descriptor_limit() if limit is None else limit
    if limit is None:
        return wanted
    return min(wanted, max(4, limit // SHARE_OF_DESCRIPTORS))


class ConnectionGate:
    """Counts one listener's open connections; says whether one more may be served, and logs a
    refused one at most once per 10 s (with how many were refused meanwhile)."""

    def __init__(self, name: str, cap: int):
        self.name = name
        self.cap = cap
        self.active = 0
        self.refused = 0
        self._log = LogLimiter(log, 10.0)

    def admit(self, peer: object = None) -> bool:
        if self.active >= self.cap:
            self.refused += 1
            self._log.log(time.monotonic(), logging.WARNING, "full",
                          "%s: %d connections open, the most it serves; closing new ones (last from %s)",
                          self.name, self.active, peer)
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active -= 1


class GatedProtocol(asyncio.Protocol):
    """Wraps a server's protocol (aiohttp's request handler): passes everything through and gives
    the gate back its place when the connection ends."""

    def __init__(self, inner: asyncio.Protocol, gate: ConnectionGate):
        self.inner = inner
        self.gate = gate

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.gate.release()
        self.inner.connection_lost(exc)


class RefusedProtocol(asyncio.Protocol):
    """A connection over the cap: closed as soon as it is made."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # type: ignore[attr-defined]
