"""Stratum v1 over asyncio: one `PoolConnection` per configured pool, and a `PoolManager` that
picks which pool's jobs the devices mine (cgminer's failover strategy) and routes every share back
to the pool that made its job.

All pools stay connected, so a failover is immediate; only the active pool's jobs reach the
dispatcher. The wire logic is in protocol.py; this module owns sockets, timers and policy.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import random
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from urllib.parse import urlsplit

from miner import USER_AGENT
from miner.core.shares import CheckedNonce
from miner.core.source import JobSink, ResultSink
from miner.core.stats import ShareStats, format_difficulty
from miner.core.targets import difficulty_to_target
from miner.core.work import Job
from miner.sources.stratum import protocol as sp

log = logging.getLogger(__name__)
# Every line to and from a pool (`--protocol-log`); quiet unless that flag lowers its level.
protocol_log = logging.getLogger("miner.protocol")
protocol_log.setLevel(logging.WARNING)

TLS_SCHEMES = {"stratum+ssl", "stratum+tls", "stratum+tcps", "ssl", "tls"}
TCP_SCHEMES = {"stratum+tcp", "stratum", "tcp"}
OUR_VERSION_MASK = 0x1FFFE000  # BIP320's general-purpose bits
MAX_LIVE_JOBS = 64
MAX_HELD_SHARES = 1000


class PoolError(Exception):
    """Ends a session; the text is the one line the user sees."""


@dataclass(frozen=True)
class PoolUrl:
    host: str
    port: int
    tls: bool
    xnsub: bool

    def __str__(self) -> str:
        scheme = "stratum+ssl" if self.tls else "stratum+tcp"
        return f"{scheme}://{self.host}:{self.port}"


def parse_pool_url(url: str) -> PoolUrl:
    """stratum+tcp://host:port, stratum+ssl|tls|tcps://..., or host:port; '#xnsub' may follow."""
    text = url.strip()
    xnsub = False
    if "#" in text:
        text, fragment = text.split("#", 1)
        xnsub = "xnsub" in fragment.split(",")
    if "://" not in text:
        text = "stratum+tcp://" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in TLS_SCHEMES | TCP_SCHEMES:
        raise ValueError(f"pool url {url!r}: unknown scheme {scheme!r} (use stratum+tcp:// or stratum+ssl://)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"pool url {url!r}: bad port") from None
    if not parts.hostname or port is None:
        raise ValueError(f"pool url {url!r}: needs a host and a port, like stratum+tcp://pool.example:3333")
    return PoolUrl(parts.hostname, port, scheme in TLS_SCHEMES, xnsub)


@dataclass
class PoolConfig:
    url: str
    user: str
    password: str = "x"
    suggest_difficulty: float | None = None
    xnsub: bool = False
    version_rolling: bool = True
    tls_verify: bool = True
    ca_file: str | None = None
    allow_redirect_anywhere: bool = False  # client.reconnect to another domain (off: same domain only)


@dataclass
class Timeouts:
    connect: float = 10.0
    reply: float = 10.0  # to subscribe/authorize
    silence: float = 120.0  # nothing at all from the pool this long: dead
    work: float = 300.0  # no new job this long: the pool stopped sending work
    backoff_base: float = 1.0
    backoff_cap: float = 60.0


def backoff_delay(failures: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Capped exponential backoff with "equal jitter": between half and all of the step."""
    step = min(cap, base * (2 ** max(0, failures - 1)))
    return step / 2 + (rng or random).uniform(0, step / 2)


class PoolState(enum.Enum):
    DISCONNECTED = "Dead"
    CONNECTING = "Connecting"
    ALIVE = "Alive"  # authorized and holding a job


@dataclass
class _Submitted:
    share: CheckedNonce
    sent_at: float


def _share_key(share: CheckedNonce) -> tuple:
    """What makes two submits the same share to a pool."""
    return (share.work.job.job_id, share.work.extranonce2, share.ntime, share.nonce.nonce, share.version)


def _same_domain(a: str, b: str) -> bool:
    """cgminer's rule for client.reconnect: the last two labels of the host names agree."""
    def tail(host: str) -> str:
        labels = host.lower().rstrip(".").split(".")
        return ".".join(labels[-2:])
    return a == b or tail(a) == tail(b)


def redact_line(line: bytes, password: str) -> str:
    """A protocol line for the log with the password (mining.authorize's second parameter) hidden."""
    text = line.decode("utf-8", "replace")
    try:
        message = json.loads(text)
    except ValueError:
        message = None
    if isinstance(message, dict) and message.get("method") == "mining.authorize" \
            and isinstance(message.get("params"), list) and len(message["params"]) > 1:
        message["params"][1] = "***"
        text = json.dumps(message, separators=(",", ":"))
    if password and len(password) > 1:  # "x" is no secret, and hiding every x would garble the line
        text = text.replace(password, "***")
    return text


class PoolConnection:
    def __init__(self, config: PoolConfig, name: str,
                 on_job: Callable[[PoolConnection, Job], None],
                 on_state: Callable[[PoolConnection], None],
                 timeouts: Timeouts | None = None, user_agent: str = USER_AGENT):
        self.config = config
        self.name = name
        self.url = parse_pool_url(config.url)
        self._target = (self.url.host, self.url.port)  # changes on client.reconnect
        self.xnsub = config.xnsub or self.url.xnsub
        self.timeouts = timeouts or Timeouts()
        self.user_agent = user_agent
        self._on_job = on_job
        self._on_state = on_state
        self.state = PoolState.DISCONNECTED
        self.enabled = True  # a disabled pool stays connected but is never mined on
        self.alive_since = 0.0
        self.stats = ShareStats()
        # Called with (share, accepted, reject reason) for every answered submit: per-device stats.
        self.result_listeners: list[Callable[[CheckedNonce, bool, str | None], None]] = []
        self.difficulty = Fraction(1)
        self.version_mask = 0
        self.extranonce1 = b""
        self.extranonce2_size = 0
        self.session_id: str | None = None
        self.current_job: Job | None = None
        self.live_jobs: OrderedDict[str, Job] = OrderedDict()
        self.held: list[CheckedNonce] = []
        self.submit_latency: float | None = None
        self.last_error = ""
        self.sessions = 0
        self._pending_difficulty: Fraction | None = None
        self._pending_extranonce: tuple[bytes, int] | None = None
        self._submitted: dict[int, _Submitted] = {}
        self._sent_keys: set[tuple] = set()
        self._proto: sp.StratumProtocol | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._authorized = False
        self._resumed = False  # first job after a reconnect decides whether old jobs live on
        self._failures = 0
        self._task: asyncio.Task | None = None
        self._stop = False
        self._redirect_wait: float | None = None  # set by client.reconnect: wait this, not the backoff

    # -------------------------------------------------------------------- public
    @property
    def alive(self) -> bool:
        return self.state is PoolState.ALIVE

    @property
    def host(self) -> str:
        return f"{self._target[0]}:{self._target[1]}"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"pool-{self.name}")

    async def stop(self) -> None:
        self._stop = True
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._close()

    async def submit(self, share: CheckedNonce) -> None:
        """Send a checked share, hold it while the pool is down, or count it stale."""
        self._offer(share)

    def _offer(self, share: CheckedNonce) -> None:
        job = share.work.job
        if not self._is_live(share):
            self.stats.stale += 1
            log.info("%s: stale share for job %s (the pool has moved on), not sent", self.name, job.job_id)
            return
        key = _share_key(share)
        if key in self._sent_keys:
            log.info("%s: duplicate share %08x not sent again", self.name, share.nonce.nonce)
            return
        if not self._authorized or self._proto is None:
            if len(self.held) >= MAX_HELD_SHARES:
                self.stats.stale += 1
                log.warning("%s: too many shares held while down; oldest counted stale", self.name)
                self.held.pop(0)
            self.held.append(share)
            log.info("%s: pool down, share %08x held until it is back", self.name, share.nonce.nonce)
            return
        self._send_submit(share, key)

    # -------------------------------------------------------------------- internals
    def _is_live(self, share: CheckedNonce) -> bool:
        """The pool still takes shares for this job, with these version bits."""
        job = share.work.job
        if self.live_jobs.get(job.job_id) != job:
            return False
        return not (share.version ^ job.version) & ~self.version_mask & 0xFFFFFFFF

    def _set_state(self, state: PoolState) -> None:
        if state is not self.state:
            self.state = state
            if state is PoolState.ALIVE:
                self.alive_since = time.monotonic()
            self._on_state(self)

    def _send_submit(self, share: CheckedNonce, key: tuple) -> None:
        assert self._proto is not None
        job = share.work.job
        version_bits = (share.version & self.version_mask) if self.version_mask else None
        request_id = self._proto.submit(self.config.user, job.job_id, share.work.extranonce2, share.ntime,
                                        share.nonce.nonce, version_bits)
        self._submitted[request_id] = _Submitted(share, time.monotonic())
        self._sent_keys.add(key)
        self._flush()

    def _flush(self) -> None:
        if self._proto is None or self._writer is None:
            return
        data = self._proto.data_to_send()
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
        self._proto = None
        self._authorized = False

    async def _run(self) -> None:
        while not self._stop:
            self._set_state(PoolState.CONNECTING)
            try:
                await self._session()
                self.last_error = "connection closed by the pool"
            except PoolError as exc:
                self.last_error = str(exc)
            except (OSError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                self.last_error = f"connection error: {reason}"
            self._close()
            self._fail_pending_submits()
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

    def _fail_pending_submits(self) -> None:
        """Submits the pool never answered: hold them again, they may still be good after reconnect."""
        for entry in self._submitted.values():
            self._sent_keys.discard(_share_key(entry.share))
            self.held.append(entry.share)
        self._submitted.clear()

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        context = None
        if self.url.tls:
            context = ssl.create_default_context(cafile=self.config.ca_file)
            if not self.config.tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        host, port = self._target
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=context, limit=sp.MAX_LINE * 2),
                self.timeouts.connect)
        except TimeoutError:
            raise PoolError(f"no connection within {self.timeouts.connect:g} s") from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # keep-alive: notice a dead peer behind a NAT or a pulled cable, not only a closed socket
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for option, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
                if hasattr(socket, option):
                    sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
        return reader, writer

    async def _session(self) -> None:
        reader, writer = await self._open()
        self.sessions += 1
        proto = sp.StratumProtocol(self.user_agent, version_mask_wanted=OUR_VERSION_MASK)
        self._proto, self._writer = proto, writer
        self._authorized = False
        self.version_mask = 0
        self._resumed = self.sessions > 1
        if self.config.version_rolling:
            proto.configure(True)
        proto.subscribe(self.session_id)
        proto.authorize(self.config.user, self.config.password)
        self._flush()
        handshake_deadline = time.monotonic() + self.timeouts.reply
        last_data = last_job = time.monotonic()
        while True:
            now = time.monotonic()
            if not self._authorized:
                timeout = handshake_deadline - now
                what = f"no reply to subscribe/authorize within {self.timeouts.reply:g} s"
            else:
                silence_left = last_data + self.timeouts.silence - now
                work_left = last_job + self.timeouts.work - now
                timeout = min(silence_left, work_left)
                what = (f"nothing from the pool for {self.timeouts.silence:g} s" if silence_left <= work_left
                        else f"no new work for {self.timeouts.work:g} s")
            if timeout <= 0:
                raise PoolError(what)
            try:
                data = await asyncio.wait_for(reader.read(65536), timeout)
            except TimeoutError:
                raise PoolError(what) from None
            if not data:
                return
            last_data = time.monotonic()
            self._log_lines("<", data)
            for event in proto.receive_data(data):
                if isinstance(event, sp.NewJob):
                    last_job = last_data
                self._handle(event)
            self._flush()
            await writer.drain()

    def _handle(self, event: sp.Event) -> None:
        match event:
            case sp.Configured(version_rolling=on, version_mask=mask):
                self.version_mask = mask if on else 0
                log.info("%s: version rolling %s", self.name, f"on, mask {mask:08x}" if on else "refused")
            case sp.Subscribed(extranonce1=en1, extranonce2_size=size, session_id=session):
                if self._resumed and en1 != self.extranonce1:
                    self._drop_jobs("new extranonce1 after reconnect")
                self.extranonce1, self.extranonce2_size = en1, size
                self.session_id = session
                log.info("%s: subscribed, extranonce1 %s, extranonce2 %d bytes", self.name, en1.hex(), size)
            case sp.Authorized(ok=True):
                self._authorized = True
                log.info("%s: authorized as %s", self.name, self.config.user)
                assert self._proto is not None
                if self.xnsub:
                    self._proto.extranonce_subscribe()
                if self.config.suggest_difficulty:
                    self._proto.suggest_difficulty(self.config.suggest_difficulty)
            case sp.Authorized(ok=False, reason=reason):
                raise PoolError(f"authorization of {self.config.user!r} refused: {reason}")
            case sp.NewJob():
                self._new_job(event)
            case sp.SetDifficulty(difficulty=d):
                self._pending_difficulty = d
                log.info("%s: difficulty %s from the next job", self.name, format_difficulty(float(d)))
            case sp.SetExtranonce(extranonce1=en1, extranonce2_size=size):
                self._pending_extranonce = (en1, size)
                log.info("%s: new extranonce1 %s from the next job", self.name, en1.hex())
            case sp.SetVersionMask(version_mask=mask):
                self.version_mask = mask
                log.info("%s: version mask now %08x", self.name, mask)
                if self.current_job is not None:
                    # valid at once: the current job is re-announced with the new mask
                    job = replace(self.current_job, version_mask=mask, clean=False)
                    self._publish(job)
            case sp.Reconnect(host=host, port=port, wait=wait):
                self._reconnect(host, port, wait)
            case sp.ShowMessage(text=text):
                log.info("%s says: %s", self.name, text)
            case sp.SubmitResult():
                self._submit_result(event)
            case sp.RequestResult(method=method, ok=False, reason=reason):
                log.info("%s: %s refused: %s", self.name, method, reason)
            case sp.ProtocolError(message=message, fatal=fatal):
                if fatal:
                    raise PoolError(f"bad message from the pool: {message}")
                log.warning("%s: ignored bad message: %s", self.name, message)

    def _drop_jobs(self, why: str) -> None:
        if self.live_jobs:
            log.info("%s: %d old job(s) no longer valid: %s", self.name, len(self.live_jobs), why)
        self.live_jobs.clear()
        self._sent_keys.clear()  # shares of dead jobs cannot be sent again anyway; keeps the set small

    def _new_job(self, event: sp.NewJob) -> None:
        if self._pending_difficulty is not None:
            self.difficulty, self._pending_difficulty = self._pending_difficulty, None
        new_coinbase_space = self._pending_extranonce is not None
        if self._pending_extranonce is not None:
            (self.extranonce1, self.extranonce2_size), self._pending_extranonce = self._pending_extranonce, None
            self._drop_jobs("extranonce changed")
        previous = self.current_job
        new_block = previous is not None and previous.prevhash != event.prevhash
        if self._resumed:
            # The first job after a reconnect: jobs of the same block may still be good on the pool
            # (the session was resumed); held shares for them are sent, others counted stale.
            self._resumed = False
            if new_block:
                self._drop_jobs("new block while disconnected")
        elif event.clean or new_block:
            self._drop_jobs("clean job" if event.clean else "new block")
        job = Job(
            job_id=event.job_id, prevhash=event.prevhash, coinb1=event.coinb1, coinb2=event.coinb2,
            merkle_branch=event.merkle_branch, version=event.version, nbits=event.nbits, ntime=event.ntime,
            clean=event.clean or new_block or new_coinbase_space, extranonce1=self.extranonce1,
            extranonce2_size=self.extranonce2_size, share_target=difficulty_to_target(self.difficulty),
            version_mask=self.version_mask, source=self.name,
        )
        if event.version & self.version_mask:
            log.warning("%s: job %s version %08x has bits inside the rolling mask", self.name, job.job_id,
                        event.version)
        self._publish(job)
        if self._authorized:
            self._set_state(PoolState.ALIVE)
        self._send_held()

    def _publish(self, job: Job) -> None:
        self.live_jobs[job.job_id] = job
        self.live_jobs.move_to_end(job.job_id)
        while len(self.live_jobs) > MAX_LIVE_JOBS:
            self.live_jobs.popitem(last=False)
        self.current_job = job
        self._on_job(self, job)

    def _send_held(self) -> None:
        if not self.held or not self._authorized:
            return
        held, self.held = self.held, []
        log.info("%s: sending %d share(s) held while the pool was down", self.name, len(held))
        for share in held:
            self._offer(share)  # the same checks as a fresh share: stale ones are counted, not sent

    def _submit_result(self, event: sp.SubmitResult) -> None:
        entry = self._submitted.pop(event.request_id, None)
        if entry is None:
            return
        self.submit_latency = time.monotonic() - entry.sent_at
        share = entry.share
        if event.accepted:
            self.stats.accepted += 1
            self.stats.accepted_difficulty += share.work.job.share_difficulty
            self.stats.note_best(share.difficulty)
            log.info("%s: accepted %08x diff %s (%.0f ms)", self.name, share.nonce.nonce,
                     format_difficulty(share.difficulty), self.submit_latency * 1000)
        else:
            reason = event.reason or "rejected"
            self.stats.rejected[reason] += 1
            log.warning("%s: rejected %08x: %s%s", self.name, share.nonce.nonce, reason,
                        f" (code {event.code})" if event.code is not None else "")
        for listener in self.result_listeners:
            listener(share, event.accepted, None if event.accepted else event.reason or "rejected")

    def _reconnect(self, host: str | None, port: int | None, wait: float) -> None:
        new_host = host or self._target[0]
        new_port = port or self._target[1]
        if not self.config.allow_redirect_anywhere and not _same_domain(new_host, self.url.host):
            log.warning("%s: REFUSED client.reconnect to %s:%d (another domain than %s); staying",
                        self.name, new_host, new_port, self.url.host)
            return
        log.warning("%s: pool asks to reconnect to %s:%d in %g s", self.name, new_host, new_port, wait)
        self._target = (new_host, new_port)
        self._redirect_wait = wait
        raise PoolError(f"client.reconnect to {new_host}:{new_port}")


class PoolManager:
    """The job source made of the configured pools, in priority order (failover strategy)."""

    name = "pools"

    def __init__(self, configs: list[PoolConfig], timeouts: Timeouts | None = None,
                 switch_delay: float = 0.0, user_agent: str = USER_AGENT):
        if not configs:
            raise ValueError("no pools configured")
        self._sink: JobSink = lambda job: None  # the engine's, once bound
        self.switch_delay = switch_delay
        self.pools = [PoolConnection(c, f"pool{i}", self._on_job, self._on_state, timeouts, user_agent)
                      for i, c in enumerate(configs)]
        self.result_listeners: list[Callable[[CheckedNonce, bool, str | None], None]] = []
        for pool in self.pools:
            pool.result_listeners = self.result_listeners  # one list: listeners added later hear every pool
        self.active: PoolConnection | None = None
        self._switch_timer: asyncio.TimerHandle | None = None
        self.switches = 0
        # `pools` keeps the order pools were added (their API numbers); `order` is the priority.
        self.order = list(self.pools)
        self._timeouts, self._user_agent = timeouts, user_agent
        self._next_id = len(self.pools)
        self._started = False
        self._stopping: set[asyncio.Task] = set()

    @property
    def stats(self) -> ShareStats:
        total = ShareStats()
        for p in self.pools:
            total.accepted += p.stats.accepted
            total.rejected.update(p.stats.rejected)
            total.stale += p.stats.stale
            total.accepted_difficulty += p.stats.accepted_difficulty
            total.note_best(p.stats.best_difficulty)
        return total

    def pool_named(self, name: str) -> PoolConnection | None:
        return next((p for p in self.pools if p.name == name), None)

    def bind(self, on_job: JobSink, on_result: ResultSink) -> None:
        self._sink = on_job
        self.result_listeners.append(on_result)

    async def start(self) -> None:
        self._started = True
        for pool in self.pools:
            pool.start()

    async def stop(self) -> None:
        if self._switch_timer:
            self._switch_timer.cancel()
        await asyncio.gather(*(p.stop() for p in self.pools), *self._stopping)

    # ------------------------------------------------------------ control (the APIs call these)
    def _pool_at(self, index: int) -> PoolConnection:
        if not 0 <= index < len(self.pools):
            raise ValueError(f"no pool {index} (have 0..{len(self.pools) - 1})")
        return self.pools[index]

    def add_pool(self, config: PoolConfig) -> PoolConnection:
        """A new pool at the lowest priority; connects at once when the manager runs."""
        parse_pool_url(config.url)  # a bad URL raises ValueError with its reason
        pool = PoolConnection(config, f"pool{self._next_id}", self._on_job, self._on_state, self._timeouts,
                              self._user_agent)
        self._next_id += 1
        pool.result_listeners = self.result_listeners
        self.pools.append(pool)
        self.order.append(pool)
        if self._started:
            pool.start()
        return pool

    def remove_pool(self, index: int) -> PoolConnection:
        pool = self._pool_at(index)
        if pool is self.active:
            raise ValueError(f"pool {index} is the active pool; switch to another first")
        if len(self.pools) == 1:
            raise ValueError("cannot remove the last pool")
        self.pools.remove(pool)
        self.order.remove(pool)
        task = asyncio.get_running_loop().create_task(pool.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
        return pool

    def enable_pool(self, index: int) -> PoolConnection:
        pool = self._pool_at(index)
        pool.enabled = True
        self._choose()
        return pool

    def disable_pool(self, index: int) -> PoolConnection:
        pool = self._pool_at(index)
        if pool.enabled and not any(p.enabled for p in self.pools if p is not pool):
            raise ValueError(f"pool {index} is the last enabled pool")
        pool.enabled = False
        self._choose()
        return pool

    def switch_pool(self, index: int) -> PoolConnection:
        """cgminer's switchpool: enable the pool and give it the top priority; it is mined on at
        once if it is alive (no switch-back delay: a person asked for it)."""
        pool = self._pool_at(index)
        pool.enabled = True
        self.order.remove(pool)
        self.order.insert(0, pool)
        self._choose(immediate=True)
        return pool

    def set_priority(self, indexes: list[int]) -> None:
        """cgminer's poolpriority: the listed pools first, in that order; the rest keep theirs."""
        chosen = [self._pool_at(i) for i in indexes]
        if len(set(map(id, chosen))) != len(chosen):
            raise ValueError("a pool is listed twice")
        self.order = chosen + [p for p in self.order if p not in chosen]
        self._choose()

    def priority_of(self, pool: PoolConnection) -> int:
        return self.order.index(pool)

    async def submit(self, share: CheckedNonce) -> None:
        pool = self.pool_named(share.work.job.source)
        if pool is None:
            log.warning("share for unknown source %r dropped", share.work.job.source)
            return
        await pool.submit(share)

    def _on_job(self, pool: PoolConnection, job: Job) -> None:
        if pool not in self.order:  # removed, still closing
            return
        if pool is self.active:
            self._sink(job)
        elif self.active is None or (pool.alive and self._rank(pool) < self._rank(self.active)):
            self._choose()

    def _on_state(self, pool: PoolConnection) -> None:
        self._choose()

    def _rank(self, pool: PoolConnection) -> int:
        return self.order.index(pool)

    def _choose(self, immediate: bool = False) -> None:
        """Mine on the first alive enabled pool; go back up the list only after switch_delay of life."""
        now = time.monotonic()
        candidate = None
        active_ok = self.active is not None and self.active.alive and self.active.enabled and self.active in self.order
        for pool in self.order:
            if not pool.alive or pool.current_job is None or not pool.enabled:
                continue
            if (not immediate and active_ok and self._rank(pool) < self._rank(self.active)
                    and now - pool.alive_since < self.switch_delay):
                wait = self.switch_delay - (now - pool.alive_since)
                if self._switch_timer is None:
                    self._switch_timer = asyncio.get_running_loop().call_later(wait, self._switch_due)
                continue
            candidate = pool
            break
        if candidate is None and active_ok:
            candidate = self.active
        if candidate is not self.active:
            old, self.active = self.active, candidate
            if candidate is None:
                log.warning("no pool is alive; devices keep hashing the last job and shares are held")
                return
            self.switches += 1
            log.warning("mining on %s (%s)%s", candidate.name, candidate.host,
                        f", was {old.name}" if old is not None else "")
            assert candidate.current_job is not None
            self._sink(replace(candidate.current_job, clean=True))

    def _switch_due(self) -> None:
        self._switch_timer = None
        self._choose()

    def status(self, rate_of: Callable[[str], str]) -> str:
        """One part per pool: active mark, state, hash rate on its work, difficulty, shares."""
        parts = []
        for p in self.pools:
            s = p.stats
            mark = "*" if p is self.active else ""
            reasons = ",".join(f"{r}:{n}" for r, n in s.rejected.most_common(3))
            parts.append(f"{mark}{p.name} {p.host} {p.state.value} {rate_of(p.name)} "
                         f"diff {format_difficulty(float(p.difficulty))} "
                         f"A:{s.accepted} R:{s.rejected_total}{f' ({reasons})' if reasons else ''} S:{s.stale}")
        return " | ".join(parts)
