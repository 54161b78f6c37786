"""The Stratum server's I/O shell: a listener, one `DownstreamSession` per connection, timers
(docs/serve.md §6). It only moves bytes: every rule is in session.py.

Connections are asyncio Protocols, not streams: an idle or slowloris connection is a transport,
a session and a line buffer of at most 16 KB, with no task of its own; one sweep a second runs the
login/idle timeouts of all of them. A connection over the cap is closed at accept. Writes never
wait: a miner that does not read its socket (more than WRITE_BUFFER_LIMIT queued) is dropped, so
a notify reaches the others at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from itertools import count

from miner.core.work import Job
from miner.server.extranonce import Layout, PrefixPool
from miner.server.session import Close, DownstreamSession, Event, Rules
from miner.sources.stratum import protocol as sp

log = logging.getLogger(__name__)

DEFAULT_PORT = 3333
MAX_CONNECTIONS = 1000
WRITE_BUFFER_LIMIT = 256 * 1024
SWEEP_SECONDS = 1.0

EventSink = Callable[[DownstreamSession, Event], None]


class _Connection(asyncio.Protocol):
    def __init__(self, server: StratumServer):
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.session: DownstreamSession | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        server = self.server
        if len(server.connections) >= server.max_connections:
            server.refused += 1
            server.refuse(transport)
            transport.close()
            return
        peer = transport.get_extra_info("peername")
        self.session = server.open_session(f"{peer[0]}:{peer[1]}" if peer else "", time.monotonic())
        server.connections[self] = None

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session is None:
            return
        events = session.receive_data(data, time.monotonic())
        self.flush()
        self.server.handle(self, events)

    def flush(self) -> None:
        if self.session is None or self.transport is None:
            return
        data = self.session.data_to_send()
        if data and not self.transport.is_closing():
            self.transport.write(data)
            if self.transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
                log.info("downstream %s does not read its socket: dropped", self.session.peer)
                self.transport.abort()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.pop(self, None)
        if self.session is not None:
            self.session.connection_lost(time.monotonic())


class StratumServer:
    """Listens on host:port; `publish(job)` fans a source job out to every downstream."""

    def __init__(self, rules: Rules, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 on_event: EventSink | None = None, max_connections: int = MAX_CONNECTIONS):
        self.rules = rules
        self.host, self.port = host, port
        self.on_event: EventSink = on_event or (lambda session, event: None)
        self.max_connections = max_connections
        self.connections: dict[_Connection, None] = {}
        self.refused = 0
        self.job: Job | None = None
        self.job_id = ""
        self.line = b""
        self._ids = count(1)
        self._server: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.Task | None = None

    def open_session(self, peer: str, now: float) -> DownstreamSession:
        """A new connection's session, given the current job (Sv2Server makes V2 sessions)."""
        session = DownstreamSession(self.rules, now, peer)
        if self.job is not None:
            session.send_job(self.job, self.job_id, self.line, now)
        return session

    def refuse(self, transport: asyncio.Transport) -> None:
        """The answer to a connection over the cap, before it is closed."""
        transport.write(sp.reply_message(None, None, [20, "server full", None]))

    @property
    def sessions(self) -> list[DownstreamSession]:
        return [c.session for c in self.connections if c.session is not None]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        self._sweeper = asyncio.create_task(self._sweep(), name="serve-sweep")
        log.info("serving Stratum on %s:%d (extranonce2 %d bytes per miner, up to %d connections)", self.host,
                 self.port, self.rules.layout.downstream_size, self.max_connections)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        if self._server is not None:
            try:
                async with asyncio.timeout(1.0):
                    await self._server.wait_closed()
            except TimeoutError:
                pass

    def publish(self, job: Job) -> None:
        """A new source job: one notify line, the same bytes for every downstream."""
        self.job = job
        self.job_id = f"{next(self._ids):x}"
        layout = self.rules.layout
        self.line = sp.notify_message(self.job_id, job.prevhash, job.coinb1 + job.extranonce1,
                                      layout.padding(job) + job.coinb2, job.merkle_branch, job.version, job.nbits,
                                      job.ntime, job.clean)
        now = time.monotonic()
        for connection in list(self.connections):
            if connection.session is not None:
                connection.session.send_job(job, self.job_id, self.line, now)
                connection.flush()

    def reconnect_all(self) -> None:
        """client.reconnect to every downstream, then close: they come back and subscribe afresh."""
        for connection in list(self.connections):
            if connection.session is not None:
                connection.session.reconnect()
                connection.flush()
            connection.close()  # after the reconnect line: close() sends what is queued first

    def move(self, host: str, port: int, wait: float = 0, worker: str | None = None) -> int:
        """The operator's move (docs/serve.md §9): client.reconnect to host:port to every downstream,
        or to those with `worker` authorized; how many were sent. The connection stays open: a miner
        that follows closes it itself, one that refuses (cgminer and this client only follow within
        the same domain) keeps mining here rather than being cut off."""
        moved = 0
        for connection in list(self.connections):
            session = connection.session
            if session is None or not session.ready or (worker is not None and worker not in session.authorized):
                continue
            session.reconnect(host, port, wait)
            connection.flush()
            moved += 1
        return moved

    def relayout(self, layout: Layout, prefixes: PrefixPool) -> None:
        """A new extranonce split (a source with a shorter extranonce2): every connection moves."""
        self.rules.layout = layout
        self.rules.prefixes = prefixes
        self.reconnect_all()

    def handle(self, connection: _Connection, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Close):
                log.info("downstream %s closed: %s", connection.session.peer if connection.session else "?",
                         event.reason)
                connection.close()
            elif connection.session is not None:
                self.on_event(connection.session, event)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            now = time.monotonic()
            for connection in list(self.connections):
                if connection.session is None:
                    continue
                try:
                    events = connection.session.tick(now)
                    connection.flush()
                    self.handle(connection, events)
                except Exception:  # noqa: BLE001 - one connection's bug must not stop the timers of all
                    log.exception("downstream %s: timer error; closing it", connection.session.peer)
                    connection.close()
