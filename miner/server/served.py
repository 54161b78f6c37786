"""The job source the engine mines when `miner serve` runs: the configured source (pools through
`PoolManager`, or the node through `GbtSource`) with a Stratum server beside it (docs/serve.md §2, §3).

Local devices and downstream miners share the source's jobs: the local devices get extranonce2
prefix 0, every downstream its own prefix, so no two of them hash the same header. A share from
either is turned back into a share of the source's own job (same coinbase bytes, same header)
and goes through the source's one `submit`, as a local device's always did: to the pool that made
the job, or to the node as a block. Failover between pools needs nothing here: the backup's job
reaches the downstreams as a clean job with the same extranonce1 they already have.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from miner.core.shares import CheckedNonce, Verdict
from miner.core.source import JobSink, JobSource, ResultSink
from miner.core.stats import ShareStats
from miner.core.work import Job
from miner.server.extranonce import LOCAL_PREFIX, Layout, PrefixPool, layout_for
from miner.server.server import MAX_CONNECTIONS, StratumServer
from miner.server.session import DownstreamSession, Event, Rules, ShareAccepted
from miner.server.sv2_keys import DEFAULT_VALIDITY, CertificateIssuer, Sv2Identity
from miner.server.sv2_server import Sv2Server
from miner.server.sv2_session import DEFAULT_BATCH
from miner.server.workers import WorkerBook, WorkerStats

log = logging.getLogger(__name__)

MAX_JOBS = 64  # source jobs whose local cut is remembered (for shares still in flight)
MAX_IN_FLIGHT = 256  # forwarded shares waiting for the source's submit; more are counted and dropped
MAX_TRACKED = 4096  # forwarded shares whose upstream answer is credited to their worker


@dataclass(frozen=True)
class Sv2Listen:
    """`--listen-sv2`: where the Stratum V2 listener runs and the identity it proves (docs/serve.md §10)."""

    host: str
    port: int
    identity: Sv2Identity
    batch_size: int = DEFAULT_BATCH
    cert_validity: int = DEFAULT_VALIDITY


class ServedSource:
    """A JobSource wrapping another; the engine binds this one, the server taps its jobs."""

    def __init__(self, inner: JobSource, host: str, port: int, *, password: str | None = None,
                 shares_per_minute: float = 6.0, start_difficulty: float = 0.001, min_difficulty: float = 0.0001,
                 max_connections: int = MAX_CONNECTIONS, sv2: Sv2Listen | None = None):
        self.inner = inner
        self.sv2 = sv2
        self.sv2_server: Sv2Server | None = None
        self.rules: Rules | None = None
        self.name = inner.name
        self.host, self.port = host, port
        self.workers = WorkerBook()
        self._settings = dict(password=password, shares_per_minute=shares_per_minute,
                              start_difficulty=start_difficulty, min_difficulty=min_difficulty)
        self.max_connections = max_connections
        self.layout: Layout | None = None
        self.server: StratumServer | None = None
        self._sink: JobSink = lambda job: None
        self._result: ResultSink = lambda share, ok, reason: None
        # job id -> (local cut, source job, the split it was cut with)
        self._local: OrderedDict[str, tuple[Job, Job, Layout]] = OrderedDict()
        self._in_flight: set[asyncio.Task] = set()
        self._tracked: OrderedDict[int, tuple[CheckedNonce, WorkerStats]] = OrderedDict()
        self.dropped = 0  # forwarded shares dropped because too many were in flight
        self.unserved_jobs = 0  # source jobs with too small an extranonce2 to share
        self._listen_task: asyncio.Task | None = None
        self._started = False

    # -------------------------------------------------------------------- JobSource
    @property
    def stats(self) -> ShareStats:
        return self.inner.stats

    def bind(self, on_job: JobSink, on_result: ResultSink) -> None:
        self._sink = on_job
        self._result = on_result
        self.inner.bind(self._on_job, self._on_result)

    async def start(self) -> None:
        self._started = True
        await self.inner.start()
        if self.rules is None and self.layout is not None:
            await self._listen()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        if self.sv2_server is not None:
            await self.sv2_server.stop()
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=1.0)  # stop stays within 2 s
        await self.inner.stop()

    async def submit(self, share: CheckedNonce) -> None:
        """A local device's share: back onto the source's job, then the source's submit."""
        entry = self._local.get(share.work.job.job_id)
        if entry is None or entry[0] != share.work.job:
            await self.inner.submit(share)  # a job from before serving started (not cut): as it is
            return
        local, source_job, layout = entry
        extranonce2 = layout.upstream_extranonce2(source_job, layout.prefix_bytes(LOCAL_PREFIX), share.work.extranonce2)
        work = source_job.work_from_root(share.work.work_id, extranonce2, share.work.merkle_root, share.work.version)
        await self.inner.submit(CheckedNonce(work, share.nonce, share.header, share.digest, share.verdict))

    def status(self, rate_of: Callable[[str], str]) -> str:
        part = self.inner.status(rate_of)
        if self.server is None and self.sv2_server is None:
            return f"{part} | serve: waiting for the first job"
        v1 = f"{self.host}:{self.server.port} {len(self.server.connections)} conn " if self.server is not None else ""
        v2 = (f"sv2 {self.sv2_server.host}:{self.sv2_server.port} {len(self.sv2_server.connections)} conn "
              if self.sv2_server is not None else "")
        return f"{part} | serve {v1}{v2}{sum(1 for w in self.workers.all() if w.connections)} workers"

    def serve_info(self) -> dict:
        """What REST /api/serve shows: the listeners and, for V2, the URL downstream miners use."""
        info: dict = {"listen": None, "listen_sv2": None, "sv2_url": None, "sv2_authority_key": None,
                      "sv2_certificate_not_valid_after": None, "connections": 0, "sv2_connections": 0}
        if self.server is not None:
            info["listen"] = f"{self.host}:{self.server.port}"
            info["connections"] = len(self.server.connections)
        if self.sv2 is not None:
            info["sv2_authority_key"] = self.sv2.identity.authority_text
        if self.sv2_server is not None:
            info["listen_sv2"] = f"{self.sv2_server.host}:{self.sv2_server.port}"
            info["sv2_url"] = self.sv2_server.url
            info["sv2_connections"] = len(self.sv2_server.connections)
            info["sv2_certificate_not_valid_after"] = self.sv2_server.issuer.current().not_valid_after
        return info

    # -------------------------------------------------------------------- jobs
    def _on_job(self, job: Job | None) -> None:
        if job is None:
            self._sink(None)
            return
        if self.layout is None:
            layout = layout_for(job)
            if layout.prefix_size == 0:
                self.unserved_jobs += 1
                log.warning("%s: extranonce2 of %d byte(s) leaves nothing to share; serving no downstream miners",
                            job.source, job.extranonce2_size)
                self._sink(job)
                return
            self.layout = layout
            if self._started and self._listen_task is None:
                self._listen_task = asyncio.get_running_loop().create_task(self._listen(), name="serve-listen")
        if not self.layout.fits(job):
            # A backup pool with a shorter extranonce2 (docs/serve.md §2): a new split, and every
            # downstream is moved (client.reconnect, then closed, as ckpool drops all clients on a
            # new proxy) so that it subscribes again and learns its new sizes; no old prefix survives.
            old, self.layout = self.layout, layout_for(job)
            log.warning("%s: extranonce2 of %d bytes is shorter than the %d served; downstreams reconnect for "
                        "%d-byte ranges", job.source, job.extranonce2_size, old.prefix_size + old.downstream_size,
                        self.layout.downstream_size)
            if self.layout.prefix_size == 0:
                self.unserved_jobs += 1
                self._sink(job)
                for server in self._servers():
                    server.reconnect_all()
                return
            if self.rules is not None:  # shared by both listeners: one new split and prefix pool for all
                self.rules.layout, self.rules.prefixes = self.layout, PrefixPool(self.layout.capacity)
            for server in self._servers():
                server.reconnect_all()
        local = self.layout.cut(job, LOCAL_PREFIX)
        self._local[job.job_id] = (local, job, self.layout)
        self._local.move_to_end(job.job_id)
        while len(self._local) > MAX_JOBS:
            self._local.popitem(last=False)
        self._sink(local)
        for server in self._servers():
            server.publish(job)

    def _servers(self) -> list[StratumServer]:
        return [s for s in (self.server, self.sv2_server) if s is not None]

    async def _listen(self) -> None:
        if self.rules is not None or self.layout is None:
            return
        rules = self.rules = Rules(self.layout, PrefixPool(self.layout.capacity), self.workers, **self._settings)
        entry = next(reversed(self._local.values()), None)
        server = StratumServer(rules, self.host, self.port, self._on_event, self.max_connections)
        try:
            await server.start()
        except OSError as exc:
            log.error("cannot listen for miners on %s:%d: %s (choose another --listen)", self.host, self.port,
                      exc.strerror or exc)
        else:
            self.server = server
            if entry is not None:
                server.publish(entry[1])
        if self.sv2 is None:
            return
        sv2 = self.sv2
        v2 = Sv2Server(rules, CertificateIssuer(sv2.identity, sv2.cert_validity), sv2.host, sv2.port, self._on_event,
                       self.max_connections, sv2.batch_size)
        try:
            await v2.start()
        except OSError as exc:
            log.error("cannot listen for Stratum V2 miners on %s:%d: %s (choose another --listen-sv2)", sv2.host,
                      sv2.port, exc.strerror or exc)
            return
        self.sv2_server = v2
        if entry is not None:
            v2.publish(entry[1])

    # -------------------------------------------------------------------- downstream shares
    def _on_event(self, session: DownstreamSession, event: Event) -> None:
        if not isinstance(event, ShareAccepted) or event.forward is None:
            return
        share = event.forward
        event.worker.forwarded += 1
        if share.verdict is Verdict.BLOCK:
            log.warning("block candidate from downstream worker %s (hash difficulty %.4g)", event.worker.name,
                        share.difficulty)
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            self.dropped += 1
            return
        self._tracked[id(share)] = (share, event.worker)
        while len(self._tracked) > MAX_TRACKED:
            self._tracked.popitem(last=False)
        task = asyncio.get_running_loop().create_task(self._forward(share))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _forward(self, share: CheckedNonce) -> None:
        try:
            await self.inner.submit(share)
        except Exception:  # noqa: BLE001 - one share's failure must not end forwarding
            log.exception("forwarding a downstream share failed")

    def _on_result(self, share: CheckedNonce, accepted: bool, reason: str | None) -> None:
        tracked = self._tracked.pop(id(share), None)
        if tracked is not None and tracked[0] is share:
            worker = tracked[1]
            if accepted:
                worker.upstream_accepted += 1
                if share.verdict is Verdict.BLOCK:
                    worker.blocks += 1
            else:
                worker.upstream_rejected += 1
        self._result(share, accepted, reason)
