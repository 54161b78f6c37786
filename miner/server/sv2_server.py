"""The Stratum V2 listener of `miner serve` (docs/serve.md §10): the V1 listener's shell (server.py:
asyncio Protocols, the connection cap, the one-second sweep of every session's timers, the drop of
a miner that does not read its socket) with a `Sv2DownstreamSession` per connection.

The V2 sessions share the V1 listener's `Rules` object (layout, PrefixPool, WorkerBook), so V1 and
V2 downstreams draw their extranonce prefixes from one pool and never overlap, and a relayout
(a backup pool with a shorter extranonce2) reaches both listeners at once.
"""

from __future__ import annotations

import asyncio
import logging
import time

from miner.core.work import Job
from miner.server.server import MAX_CONNECTIONS, EventSink, StratumServer
from miner.server.session import Rules
from miner.server.sv2_keys import CertificateIssuer
from miner.server.sv2_session import DEFAULT_BATCH, Sv2DownstreamSession

log = logging.getLogger(__name__)


class Sv2Server(StratumServer):
    def __init__(self, rules: Rules, issuer: CertificateIssuer, host: str = "127.0.0.1", port: int = 3336,
                 on_event: EventSink | None = None, max_connections: int = MAX_CONNECTIONS,
                 batch_size: int = DEFAULT_BATCH):
        super().__init__(rules, host, port, on_event, max_connections)
        self.issuer = issuer
        self.batch_size = batch_size

    @property
    def url(self) -> str:
        """§4.7: what a downstream miner is pointed at."""
        return self.issuer.identity.url(self.host, self.port)

    async def start(self) -> None:
        await super().start()
        cert = self.issuer.current()
        log.warning("Stratum V2 for downstream miners: %s (certificate valid until %s, renewed before)", self.url,
                    time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(cert.not_valid_after)))

    def open_session(self, peer: str, now: float) -> Sv2DownstreamSession:  # type: ignore[override]
        session = Sv2DownstreamSession(self.rules, self.issuer, now, peer, self.batch_size)
        if self.job is not None:
            session.send_job(self.job, now)
        return session

    def refuse(self, transport: asyncio.Transport) -> None:
        """Nothing to say in the clear before a handshake: the connection is just closed."""

    def publish(self, job: Job) -> None:
        self.job = job
        now = time.monotonic()
        for connection in list(self.connections):
            if connection.session is not None:
                connection.session.send_job(job, now)  # type: ignore[call-arg]
                connection.flush()

    def move(self, host: str, port: int, wait: float = 0, worker: str | None = None) -> int:
        """Not offered: a V2 miner follows Reconnect only to a server holding the same authority's
        certificate (docs/sv2.md §5), which an operator's other server generally does not."""
        return 0
