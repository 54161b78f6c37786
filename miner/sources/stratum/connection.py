"""The asyncio shell around one pool's `StratumSession`: the socket, TLS, keep-alive, the timers,
reconnect backoff and the protocol log. Every Stratum rule is in session.py; this module feeds the
session what the socket and the clock say and acts on what it decides (publish a job, count a
share, close and reconnect)."""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import os
import random
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from fractions import Fraction

from miner import USER_AGENT
from miner.core.shares import CheckedNonce
from miner.core.stats import ShareStats
from miner.core.work import Job
from miner.sources.stratum import protocol as sp
from miner.sources.stratum import session as ss
from miner.sources.stratum.url import PoolConfig, Timeouts

log = logging.getLogger(__name__)
# Every line to and from a pool (`--protocol-log`); quiet unless that flag lowers its level.
protocol_log = logging.getLogger("miner.protocol")
protocol_log.setLevel(logging.WARNING)


STOP_ANSWER_WAIT = 2.0  # seconds a stop waits for submits in flight
DEADLINE_CHECK = 0.5  # seconds between looks at the session's deadline while a read waits


class PoolError(Exception):
    """Ends a connection; the text is the one line the user sees."""


def backoff_delay(failures: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Capped exponential backoff with "equal jitter": between half and all of the step."""
    step = min(cap, base * (2 ** max(0, failures - 1)))
    return step / 2 + (rng or random).uniform(0, step / 2)


def redact_line(line: bytes, password: str) -> str:
    """A protocol line for the log with the password (mining.authorize's second parameter) hidden."""
    text = line.decode("utf-8", "replace")
    try:
        message = sp.decode_json(text)  # never RecursionError: a 30,000-deep line is just not JSON here
    except ValueError:
        message = None
    if isinstance(message, dict) and message.get("method") == "mining.authorize" \
            and isinstance(message.get("params"), list) and len(message["params"]) > 1:
        message["params"][1] = "***"
        text = json.dumps(message, separators=(",", ":"))
    if password and len(password) > 1:  # "x" is no secret, and hiding every x would garble the line
        text = text.replace(password, "***")
    return text


class PoolState(enum.Enum):
    DISCONNECTED = "Dead"
    CONNECTING = "Connecting"
    ALIVE = "Alive"  # authorized and holding a job


class PoolConnection:
    def __init__(self, config: PoolConfig, name: str,
                 on_job: Callable[[PoolConnection, Job], None],
                 on_state: Callable[[PoolConnection], None],
                 timeouts: Timeouts | None = None, user_agent: str = USER_AGENT):
        self.session = self.make_session(config, name, timeouts, user_agent)
        self.config = config
        self.name = name
        self.url = self.session.url
        self.timeouts = self.session.timeouts
        self._on_job = on_job
        self._on_state = on_state
        self.state = PoolState.DISCONNECTED
        self.enabled = True  # a disabled pool stays connected but is never mined on
        self.alive_since = 0.0
        self.stats = ShareStats()
        # Called with (share, accepted, reject reason) for every answered submit: per-device stats.
        self.result_listeners: list[Callable[[CheckedNonce, bool, str | None], None]] = []
        # The last job published, as the listeners saw it (the session's may be ahead within a read).
        self.current_job: Job | None = None
        # The last job for each device that has its own (Job.device, a Stratum V2 standard channel;
        # "" for the shared job): what a switch to this pool hands the dispatcher again.
        self.current_jobs: dict[str, Job] = {}
        # The local devices that mine (names): the Stratum V2 shell opens a standard channel for each
        # when the pool has only those (docs/sv2.md §8); PoolManager sets it.
        self.local_devices: Callable[[], tuple[str, ...]] = tuple
        self.submit_latency: float | None = None
        self.last_error = ""
        self._writer: asyncio.StreamWriter | None = None
        self._failures = 0
        self._task: asyncio.Task | None = None
        self._stop = False
        self._redirect_wait: float | None = None  # set by client.reconnect: wait this, not the backoff
        self._all_answered = asyncio.Event()  # set when the last submit in flight was answered
        self._faults_logged: set[tuple[str, str]] = set()  # unexpected errors already logged in full

    protocol = "stratum1"  # as the API, REST and /metrics show it per pool

    def make_session(self, config: PoolConfig, name: str, timeouts: Timeouts | None,
                     user_agent: str) -> ss.StratumSession:
        """The sans-I/O session this shell drives; the Stratum V2 shell gives its own (sv2/connection.py)."""
        return ss.StratumSession(config, name, timeouts, user_agent)

    # -------------------------------------------------------------------- public
    @property
    def alive(self) -> bool:
        return self.state is PoolState.ALIVE

    @property
    def host(self) -> str:
        host, port = self.session.target
        return f"{host}:{port}"

    @property
    def sessions(self) -> int:
        """Connections made so far (1 = never reconnected)."""
        return self.session.connections

    @property
    def difficulty(self) -> Fraction:
        return self.session.difficulty

    @property
    def version_mask(self) -> int:
        return self.session.version_mask

    @property
    def live_jobs(self) -> OrderedDict[str, Job]:
        return self.session.live_jobs

    @property
    def held(self) -> list[CheckedNonce]:
        return self.session.held

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"pool-{self.name}")

    async def stop(self, answer_wait: float = STOP_ANSWER_WAIT) -> None:
        """Close; submits in flight get up to `answer_wait` s to be answered (and counted) first."""
        self._stop = True
        if self.session.connected and self.session.unanswered and self._task and not self._task.done():
            log.info("%s: waiting up to %g s for %d share answer(s)", self.name, answer_wait,
                     self.session.unanswered)
            self._all_answered.clear()
            try:
                await asyncio.wait_for(self._all_answered.wait(), answer_wait)
            except TimeoutError:
                log.warning("%s: %d share(s) not answered by stop", self.name, self.session.unanswered)
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._close()
        if self.session.connected:
            self.session.connection_lost()
        self._set_state(PoolState.DISCONNECTED)  # stopped, wherever the task was (connecting, backing off)

    async def wait_ended(self) -> None:
        """Until the connection task ends by itself (a setting that cannot work) or by stop()."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def submit(self, share: CheckedNonce) -> None:
        """Send a checked share, hold it while the pool is down, or count it stale."""
        self._act(self.session.offer(share, time.monotonic()))
        self._flush()

    # -------------------------------------------------------------------- acting on the session
    def _act(self, events: list[ss.SessionEvent]) -> None:
        """Do what the session decided, in its order; an ending event raises PoolError last."""
        for event in events:
            ss.tally(self.stats, event)
            match event:
                case ss.PublishJob(job=job):
                    self.current_job = job
                    if not job.device:
                        self.current_jobs.clear()
                    self.current_jobs[job.device] = job
                    self._on_job(self, job)
                case ss.PoolAlive():
                    self._set_state(PoolState.ALIVE)
                case ss.ShareAnswered(share=share, accepted=accepted, reason=reason, latency=latency):
                    self.submit_latency = latency
                    if not self.session.unanswered:
                        self._all_answered.set()
                    for listener in self.result_listeners:
                        listener(share, accepted, reason)
                case ss.Redirected(host=host, port=port, wait=wait):
                    self._redirect_wait = wait
                    raise PoolError(f"client.reconnect to {host}:{port}")
                case ss.SessionFailed(reason=reason):
                    raise PoolError(reason)

    def _set_state(self, state: PoolState) -> None:
        if state is not self.state:
            self.state = state
            if state is PoolState.ALIVE:
                self.alive_since = time.monotonic()
            self._on_state(self)

    def _idle(self) -> None:
        """A DEADLINE_CHECK passed with nothing read: the Stratum V2 shell lets its session act on
        time and on the local devices (sv2/connection.py); Stratum V1 has nothing to do."""

    # -------------------------------------------------------------------- I/O
    def _flush(self) -> None:
        if self._writer is None:
            return
        data = self.session.data_to_send()
        if data:
            self._log_lines(">", data)
            self._writer.write(data)

    def _log_lines(self, direction: str, data: bytes) -> None:
        if protocol_log.isEnabledFor(logging.INFO):
            for line in data.splitlines():
                protocol_log.info("%s %s %s", self.name, direction, redact_line(line, self.config.password))

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = None

    async def _run(self) -> None:
        if self.url.tls and self.config.ca_file and not os.path.isfile(self.config.ca_file):
            # a setting to fix, not a network fault: one line, and no retrying forever
            self.last_error = f"--tls-ca file {self.config.ca_file!r} not found; this pool stays off"
            log.error("%s (%s): %s", self.name, self.host, self.last_error)
            self._set_state(PoolState.DISCONNECTED)
            return
        while not self._stop:
            self._set_state(PoolState.CONNECTING)
            try:
                await self._connection()
                self.last_error = "connection closed by the pool"
            except PoolError as exc:
                self.last_error = str(exc)
                self._flush()  # what the session queued before the line that ended it
            except (OSError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                self.last_error = f"connection error: {reason}"
            except Exception as exc:  # noqa: BLE001 - supervision: a bug must not end this pool's task
                # Logged with its traceback once per kind of fault (a pool repeating the line that
                # triggers it would flood the log); the pool shows Dead with the reason, and reconnects.
                self.last_error = f"internal error: {type(exc).__name__}: {exc}"
                key = (type(exc).__name__, str(exc)[:200])
                if key not in self._faults_logged:
                    self._faults_logged.add(key)
                    log.exception("%s (%s): unexpected error in the pool connection; reconnecting", self.name,
                                  self.host)
            self._close()
            self.session.connection_lost()
            self._all_answered.set()  # nothing more can be answered on this connection
            was_alive = self.alive
            self._set_state(PoolState.DISCONNECTED)
            if self._stop:
                return
            self._failures = 1 if was_alive else self._failures + 1
            delay = backoff_delay(self._failures, self.timeouts.backoff_base, self.timeouts.backoff_cap)
            if self._redirect_wait is not None:
                delay, self._redirect_wait = self._redirect_wait, None
            log.warning("%s (%s): %s; reconnecting in %.1f s", self.name, self.host, self.last_error, delay)
            await asyncio.sleep(delay)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        context = None
        if self.url.tls:
            context = ssl.create_default_context(cafile=self.config.ca_file)
            if not self.config.tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        host, port = self.session.target
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=context, limit=sp.MAX_LINE * 2),
                self.timeouts.connect)
        except TimeoutError:
            raise PoolError(f"no connection within {self.timeouts.connect:g} s") from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # The kernel's probes, not the protocol's: no Stratum request is answered by both ckpool and
            # public-pool once mining (docs/stratum.md §1.11), but every peer's kernel answers keep-alive.
            # A dead host, a pulled cable or a dropped NAT mapping is noticed in 5 + 4 x 1 s, and a
            # submit the peer's kernel never acknowledges ends the connection after 10 s (TCP_USER_TIMEOUT).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for option, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 1), ("TCP_KEEPCNT", 4),
                                  ("TCP_USER_TIMEOUT", 10_000)):
                if hasattr(socket, option):
                    sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
        return reader, writer

    async def _connection(self) -> None:
        """One TCP connection, from the handshake until the pool closes it or the session ends it."""
        reader, self._writer = await self._open()
        self.session.connection_made(time.monotonic())
        self._flush()
        read: asyncio.Task[bytes] | None = None
        try:
            while True:
                when, what = self.session.deadline()
                timeout = when - time.monotonic()
                if timeout <= 0:
                    raise PoolError(what)
                if read is None:
                    read = asyncio.ensure_future(reader.read(65536))
                # The deadline moves without any read (a submit sent starts the answer clock), so it
                # is looked at again at least every DEADLINE_CHECK s while the read stays pending.
                done, _ = await asyncio.wait({read}, timeout=min(timeout, DEADLINE_CHECK))
                if not done:
                    self._idle()
                    continue
                data, read = read.result(), None
                if not data:
                    return
                self._log_lines("<", data)
                self._act(self.session.receive_data(data, time.monotonic()))
                self._flush()
                await self._writer.drain()
        finally:
            if read is not None:
                read.cancel()
                await asyncio.gather(read, return_exceptions=True)
