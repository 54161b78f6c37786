"""One downstream connection's Stratum v1 rules, with no I/O (docs/serve.md §1, §3).

Feed `receive_data(bytes, now)` and get events back; the server hands every job with `send_job`,
asks `tick(now)` now and then, and sends what `data_to_send()` returns. The lines are built and
parsed with the client's codec (`miner.sources.stratum.protocol`). Every share is rebuilt from the
job this connection was sent and hashed once with the C core (`miner.core.shares.check_nonce`);
the answer follows ckpool's order of checks (stratifier.c parse_submit) with the reject codes of
the Stratum v1 spec that public-pool and most pools send (20 other, 21 job not found / stale, 22
duplicate, 23 low difficulty, 24 unauthorized, 25 not subscribed). Nothing a miner sends raises:
bad input gets a JSON-RPC error, and a connection that keeps sending it is closed.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from miner.core.shares import CheckedNonce, Verdict, check_nonce
from miner.core.targets import difficulty_to_target, target_to_difficulty
from miner.core.work import Job, Nonce
from miner.server.extranonce import Layout, PrefixPool
from miner.server.vardiff import VarDiff
from miner.server.workers import WorkerBook, WorkerStats
from miner.sources.stratum import protocol as sp

OTHER, STALE_CODE, DUPLICATE, LOW_DIFFICULTY, UNAUTHORIZED, NOT_SUBSCRIBED = 20, 21, 22, 23, 24, 25
BIP320_MASK = 0x1FFFE000  # the bits BIP320 leaves to version rolling
NTIME_AHEAD = 7000  # seconds a share's ntime may run ahead of its job's (ckpool parse_submit)
MAX_JOBS = 16  # jobs a connection may still submit for
MAX_STALE_IDS = 64  # job ids remembered as stale (answered "Stale", not "Job not found")
MAX_SEEN = 50_000  # share hashes remembered for the duplicate check, per connection, between clean jobs
MAX_LINE = 16 * 1024  # a downstream line: a submit is ~200 bytes, a configure ~300
MAX_BAD_LINES = 20  # consecutive unusable lines before the connection is closed
MAX_WORKER_NAME = 128
MAX_AGENT = 256


@dataclass
class Rules:
    """What every downstream session shares: limits and policy, set once by the server."""

    layout: Layout
    prefixes: PrefixPool
    workers: WorkerBook
    password: str | None = None  # None: any password (worker names are labels, as on ckpool solo)
    shares_per_minute: float = 6.0
    start_difficulty: float = 0.001
    min_difficulty: float = 0.0001
    messages_per_second: float = 50.0  # sustained; bursts up to `burst`
    burst: float = 200.0
    login_timeout: float = 30.0  # to subscribe and authorize
    idle_timeout: float = 900.0  # no line at all this long (vardiff makes a live miner speak every ~10 s)


# ------------------------------------------------------------------------------------ events
class Event:
    """What the session's inputs return to the server."""


@dataclass(frozen=True)
class ShareAccepted(Event):
    worker: WorkerStats
    difficulty: float  # the difficulty it was accepted at
    share: CheckedNonce  # as the downstream's job: verdict WORK, SHARE or BLOCK
    forward: CheckedNonce | None  # the same share for the source's job, when it meets the source's target


@dataclass(frozen=True)
class ShareRejected(Event):
    worker: WorkerStats | None
    reason: str


@dataclass(frozen=True)
class Close(Event):
    reason: str


@dataclass
class _Sent:
    source_job: Job
    difficulty: float  # in effect when it was sent
    job: Job | None = None  # as this downstream mines it, built at its first share


def _error(code: int, text: str) -> list:
    return [code, text, None]


class DownstreamSession:
    def __init__(self, rules: Rules, now: float, peer: str = ""):
        self.rules = rules
        self.peer = peer
        self.opened = now
        self.last_line = now
        self._reader = sp.LineReader(MAX_LINE)
        self._out = bytearray()
        self.prefix: int | None = None
        self.user_agent = ""
        self.subscribed = False
        self.extranonce_subscribed = False
        self.authorized: set[str] = set()
        self.worker: WorkerStats | None = None
        self.version_mask = 0  # granted by mining.configure; 0: no rolling
        self.vardiff = VarDiff(rules.shares_per_minute, rules.min_difficulty, rules.start_difficulty)
        self._jobs: OrderedDict[str, _Sent] = OrderedDict()
        self._stale: OrderedDict[str, object] = OrderedDict()  # job ids answered "Stale" (values unused)
        self._seen: set[bytes] = set()
        self._source_job: Job | None = None
        self._tokens = rules.burst
        self._token_time = now
        self._bad = 0
        self.closed: str | None = None
        self._job_ids = 0
        self._targets: dict[float, int] = {}

    # -------------------------------------------------------------------- output
    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    @property
    def session_id(self) -> str:
        return f"{self.prefix or 0:08x}"

    @property
    def ready(self) -> bool:
        """Subscribed and authorized: it gets jobs."""
        return self.subscribed and bool(self.authorized) and self.closed is None

    # -------------------------------------------------------------------- jobs from the server
    def send_job(self, job: Job, job_id: str, line: bytes, now: float) -> None:
        """A new source job under the server's job id, with its notify line (the same for every
        downstream: their coinbases differ only in the extranonce1 sent at subscribe)."""
        self._source_job = job
        if self.vardiff.maximum != job.share_difficulty:
            self.vardiff.set_maximum(job.share_difficulty, now)
        if not self.ready:
            return
        if job.clean:
            self._retire_all()
        self._check_mask(job)
        self._remember(job_id, job)
        self._send_difficulty()
        self._out += line

    def _remember(self, job_id: str, job: Job) -> None:
        self._jobs[job_id] = _Sent(job, self.vardiff.difficulty)
        while len(self._jobs) > MAX_JOBS:
            old, _ = self._jobs.popitem(last=False)
            self._mark_stale(old)

    def _retire_all(self) -> None:
        """A clean job: every job so far is stale (swapped, not copied: this runs for every
        connection on every block)."""
        self._stale, self._jobs = self._jobs, OrderedDict()  # type: ignore[assignment]
        self._seen = set()

    def _mark_stale(self, job_id: str) -> None:
        self._stale[job_id] = None
        while len(self._stale) > MAX_STALE_IDS:
            self._stale.popitem(last=False)

    def _check_mask(self, job: Job) -> None:
        """A source job that allows fewer version bits than granted: tell the miner (BIP310)."""
        if self.version_mask & ~job.version_mask & 0xFFFFFFFF:
            self.version_mask &= job.version_mask
            self._out += sp.call_message("mining.set_version_mask", [f"{self.version_mask:08x}"])

    _sent_difficulty: float | None = None

    def _send_difficulty(self) -> None:
        if self._sent_difficulty != self.vardiff.difficulty:
            self._sent_difficulty = self.vardiff.difficulty
            self._out += sp.call_message("mining.set_difficulty", [_number(self.vardiff.difficulty)])
            if self.worker is not None:
                self.worker.difficulty = self.vardiff.difficulty

    def _renotify(self, now: float) -> None:
        """The current job again under a new id, so that a new difficulty applies from it at once
        (a miner takes set_difficulty from its next job)."""
        job = self._source_job
        if job is None or not self.ready:
            return
        self._job_ids += 1
        job_id = f"{self.session_id}.{self._job_ids}"
        self._remember(job_id, job)
        self._send_difficulty()
        self._out += self.notify_line(job, job_id, clean=False)

    def notify_line(self, job: Job, job_id: str, clean: bool) -> bytes:
        layout = self.rules.layout
        return sp.notify_message(job_id, job.prevhash, job.coinb1 + job.extranonce1, layout.padding(job) + job.coinb2,
                                 job.merkle_branch, job.version, job.nbits, job.ntime, clean)

    def tick(self, now: float) -> list[Event]:
        """Timers: login and idle timeouts, and vardiff easing for a miner gone quiet."""
        if self.closed is not None:
            return []
        if not self.ready and now - self.opened > self.rules.login_timeout:
            return [self._close(f"not subscribed and authorized within {self.rules.login_timeout:g}s")]
        if now - self.last_line > self.rules.idle_timeout:
            return [self._close(f"silent for {self.rules.idle_timeout:g}s")]
        if self.ready and self.vardiff.on_tick(now) is not None:
            self._renotify(now)
        return []

    def _close(self, reason: str) -> Close:
        self.closed = reason
        return Close(reason)

    # -------------------------------------------------------------------- input
    def receive_data(self, data: bytes, now: float) -> list[Event]:
        if self.closed is not None:
            return []
        events: list[Event] = []
        lines, dropped = self._reader.feed(data)
        if dropped:
            self._out += sp.reply_message(None, None, _error(OTHER, f"line longer than {MAX_LINE} bytes"))
            events.append(self._close(f"line longer than {MAX_LINE} bytes"))
            return events
        for line in lines:
            self.last_line = now
            if not self._take_token(now):
                self._out += sp.reply_message(None, None, _error(OTHER, "too many messages"))
                events.append(self._close(f"over {self.rules.messages_per_second:g} messages/s"))
                return events
            self._handle_line(line, now, events)
            if self.closed is not None:
                break
        return events

    def _take_token(self, now: float) -> bool:
        rules = self.rules
        self._tokens = min(rules.burst, self._tokens + max(0.0, now - self._token_time) * rules.messages_per_second)
        self._token_time = max(now, self._token_time)
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _bad_input(self, call_id: Any, text: str, events: list[Event]) -> None:
        self._out += sp.reply_message(call_id, None, _error(OTHER, text))
        self._bad += 1
        if self._bad >= MAX_BAD_LINES:
            events.append(self._close(f"{MAX_BAD_LINES} unusable messages in a row"))

    def _handle_line(self, line: bytes, now: float, events: list[Event]) -> None:
        try:
            message = sp.decode_json(line)
        except ValueError as exc:
            self._bad_input(None, f"invalid JSON: {str(exc)[:80]}", events)
            return
        if not isinstance(message, dict):
            self._bad_input(None, "not a JSON object", events)
            return
        call_id = message.get("id")
        if not isinstance(call_id, int | str | None) or isinstance(call_id, bool):
            call_id = None
        method = message.get("method")
        params = message.get("params", [])
        if not isinstance(method, str):
            if "result" in message or "error" in message:
                return  # a reply to one of our calls (client.reconnect, ...): nothing to do
            self._bad_input(call_id, "no method", events)
            return
        if params is None:
            params = []
        if not isinstance(params, list | dict):
            self._bad_input(call_id, "params must be a list", events)
            return
        handler = _HANDLERS.get(method)
        if handler is None:
            self._bad_input(call_id, f"unknown method {method[:40]!r}", events)
            return
        try:
            handler(self, call_id, params, now, events)
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
            self._bad_input(call_id, f"{method}: {str(exc)[:120]}", events)
            return
        if self.closed is None and method != "mining.submit":
            self._bad = 0

    # -------------------------------------------------------------------- methods
    def _configure(self, call_id: Any, params: list, now: float, events: list[Event]) -> None:
        """BIP310: grant the intersection of the miner's mask and the source's."""
        extensions = params[0] if params and isinstance(params[0], list) else []
        options = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        result: dict[str, Any] = {}
        for name in extensions[:16]:
            if name == "version-rolling":
                wanted = options.get("version-rolling.mask", "ffffffff")
                if not isinstance(wanted, str) or not 1 <= len(wanted) <= 8 or not sp.HEX_RE.fullmatch(wanted):
                    raise ValueError("version-rolling.mask must be up to 8 hex digits")
                ours = self._source_job.version_mask if self._source_job is not None else BIP320_MASK
                self.version_mask = int(wanted, 16) & ours
                result["version-rolling"] = self.version_mask != 0
                result["version-rolling.mask"] = f"{self.version_mask:08x}"
            elif name == "minimum-difficulty":
                value = options.get("minimum-difficulty.value")
                result[name] = self._suggest(value, now) if value is not None else False
            elif name == "subscribe-extranonce":
                self.extranonce_subscribed = True
                result[name] = True
            elif isinstance(name, str):
                result[name[:64]] = False
        self._out += sp.reply_message(call_id, result)

    def _subscribe(self, call_id: Any, params: list, now: float, events: list[Event]) -> None:
        if isinstance(params, dict):
            raise ValueError("params must be a list")
        if self._source_job is None:
            self._out += sp.reply_message(call_id, None, _error(OTHER, "no work yet, try again shortly"))
            return
        if params and isinstance(params[0], str):
            self.user_agent = params[0][:MAX_AGENT]
        if self.prefix is None:
            resume = None
            wanted = params[1] if len(params) > 1 else None
            if isinstance(wanted, str) and 0 < len(wanted) <= 16 and sp.HEX_RE.fullmatch(wanted):
                resume = int(wanted, 16)
            self.prefix = self.rules.prefixes.take(now, resume)
            if self.prefix is None:
                self._out += sp.reply_message(call_id, None, _error(OTHER, "server full"))
                events.append(self._close("no extranonce range left"))
                return
        self.subscribed = True
        layout = self.rules.layout
        sid = self.session_id
        self._out += sp.reply_message(call_id, [[["mining.set_difficulty", sid], ["mining.notify", sid]],
                                                layout.prefix_bytes(self.prefix).hex(), layout.downstream_size])
        self._start_if_ready(now)

    def _authorize(self, call_id: Any, params: list, now: float, events: list[Event]) -> None:
        if isinstance(params, dict) or not params or not isinstance(params[0], str) or not params[0]:
            raise ValueError("needs a worker name")
        name = params[0][:MAX_WORKER_NAME]
        password = params[1] if len(params) > 1 and isinstance(params[1], str) else ""
        if self.rules.password is not None and password != self.rules.password:
            self._out += sp.reply_message(call_id, False, _error(UNAUTHORIZED, "wrong password"))
            return
        first = not self.authorized
        self.authorized.add(name)
        if first:
            self.worker = self.rules.workers.get(name)
            self.worker.connections += 1
            self.worker.user_agent = self.user_agent
            self.worker.protocol = "stratum1"
        self._out += sp.reply_message(call_id, True)
        self._start_if_ready(now)

    def _start_if_ready(self, now: float) -> None:
        """The first difficulty and the current job, clean, once subscribed and authorized."""
        if not self.ready or self._jobs or self._source_job is None:
            return
        self.vardiff.reset(now)
        self._job_ids += 1
        job_id = f"{self.session_id}.{self._job_ids}"
        self._remember(job_id, self._source_job)
        self._send_difficulty()
        self._out += self.notify_line(self._source_job, job_id, clean=True)

    def _extranonce_subscribe(self, call_id: Any, params: list, now: float, events: list[Event]) -> None:
        self.extranonce_subscribed = True
        self._out += sp.reply_message(call_id, True)

    def _suggest_difficulty(self, call_id: Any, params: list, now: float, events: list[Event]) -> None:
        if isinstance(params, dict) or not params:
            raise ValueError("needs a difficulty")
        self._out += sp.reply_message(call_id, self._suggest(params[0], now))

    def _suggest(self, value: Any, now: float) -> bool:
        try:
            difficulty = float(sp.parse_difficulty(value))
        except sp.BadField as exc:
            raise ValueError(str(exc)) from None
        if self.vardiff.suggest(difficulty, now) is not None:
            self._renotify(now)
        return True

    def _ping(self, call_id: Any, params: list, now: float, events: list[Event]) -> None:
        self._out += sp.reply_message(call_id, "pong")

    def _submit(self, call_id: Any, params: list, now: float, events: list[Event]) -> None:
        def reject(code: int, reason: str) -> None:
            self._out += sp.reply_message(call_id, False, _error(code, reason))
            if self.worker is not None:
                self.worker.note_rejected(reason)
            events.append(ShareRejected(self.worker, reason))

        if not self.subscribed:
            reject(NOT_SUBSCRIBED, "Not subscribed")
            return
        if not self.authorized or self.worker is None:
            reject(UNAUTHORIZED, "Unauthorized worker")
            return
        if isinstance(params, dict) or len(params) not in (5, 6) or not all(isinstance(p, str) for p in params):
            self._bad += 1
            reject(OTHER, "Invalid params: [worker, job_id, extranonce2, ntime, nonce(, version_bits)]")
            if self._bad >= MAX_BAD_LINES:
                events.append(self._close(f"{MAX_BAD_LINES} unusable messages in a row"))
            return
        name, job_id, en2_hex, ntime_hex, nonce_hex = params[:5]
        if name[:MAX_WORKER_NAME] not in self.authorized:
            reject(UNAUTHORIZED, "Unauthorized worker")
            return
        sent = self._jobs.get(job_id)
        if sent is None:
            reject(STALE_CODE, "Stale" if job_id in self._stale else "Job not found")
            return
        layout = self.rules.layout
        if len(en2_hex) != 2 * layout.downstream_size or not sp.HEX_RE.fullmatch(en2_hex):
            reject(OTHER, "Invalid nonce2 length")
            return
        if len(ntime_hex) != 8 or len(nonce_hex) != 8 or not sp.HEX_RE.fullmatch(ntime_hex + nonce_hex):
            reject(OTHER, "Invalid ntime or nonce")
            return
        source_job = sent.source_job
        ntime = int(ntime_hex, 16)
        if not source_job.ntime <= ntime <= source_job.ntime + NTIME_AHEAD:
            reject(OTHER, "Ntime out of range")
            return
        version = source_job.version
        if len(params) == 6:
            bits_hex = params[5]
            if len(bits_hex) != 8 or not sp.HEX_RE.fullmatch(bits_hex):
                reject(OTHER, "Invalid version bits")
                return
            bits = int(bits_hex, 16)
            if bits & ~self.version_mask & 0xFFFFFFFF:
                reject(OTHER, "Invalid version mask")
                return
            version = (version & ~self.version_mask & 0xFFFFFFFF) | bits
        if sent.job is None:
            sent.job = replace(layout.cut(source_job, self.prefix or 0), version_mask=self.version_mask)
        job = sent.job
        # ckpool: until the next job, the lower of the old and the new difficulty (diff_change_job_id)
        difficulty = min(sent.difficulty, self.vardiff.difficulty)
        work = job.make_work(0, bytes.fromhex(en2_hex), version)
        nonce = Nonce(0, int(nonce_hex, 16), version, ntime, device=self.worker.name, found_at=now)
        share = check_nonce(work, nonce, device_target=self._target(difficulty))
        if share.verdict is Verdict.HW_ERROR:
            reject(LOW_DIFFICULTY, "Low difficulty share")
            return
        if share.digest in self._seen:
            reject(DUPLICATE, "Duplicate share")
            return
        if len(self._seen) >= MAX_SEEN:
            self._seen.clear()
        self._seen.add(share.digest)
        self._bad = 0
        self._out += sp.reply_message(call_id, True)
        forward = None
        if share.verdict in (Verdict.SHARE, Verdict.BLOCK):
            extranonce2 = layout.upstream_extranonce2(source_job, layout.prefix_bytes(self.prefix or 0),
                                                      work.extranonce2)
            upstream_work = source_job.work_from_root(0, extranonce2, work.merkle_root, version)
            forward = CheckedNonce(upstream_work, nonce, share.header, share.digest, share.verdict)
        self.worker.note_accepted(difficulty, share.difficulty, now)
        events.append(ShareAccepted(self.worker, difficulty, share, forward))
        if self.vardiff.on_share(now) is not None:
            self._renotify(now)

    def _target(self, difficulty: float) -> int:
        """difficulty_to_target is exact (Fractions) and slow: once per difficulty, not per share."""
        target = self._targets.get(difficulty)
        if target is None:
            if len(self._targets) > 8:
                self._targets.clear()
            target = self._targets[difficulty] = difficulty_to_target(difficulty)
        return target

    # -------------------------------------------------------------------- server-initiated
    def reconnect(self, host: str | None = None, port: int | None = None, wait: float = 0) -> None:
        """client.reconnect: move the miner (to another server, or back here to re-subscribe).

        `[host, "port", wait]` (docs/serve.md §9): the port goes as a string because cgminer's
        util.c `parse_reconnect` reads it with json_string_value (a number is ignored and the old
        port kept); bfgminer's util.c `parse_reconnect` and this repository's client take either.
        """
        params: list = [] if host is None else [host, None if port is None else str(port), int(wait)]
        self._out += sp.call_message("client.reconnect", params)

    def connection_lost(self, now: float) -> None:
        if self.prefix is not None:
            self.rules.prefixes.release(self.prefix, now)
            self.prefix = None
        if self.worker is not None and self.authorized:
            self.worker.connections = max(0, self.worker.connections - 1)
            self.authorized.clear()
        self.closed = self.closed or "connection lost"

    @property
    def source_difficulty(self) -> float | None:
        job = self._source_job
        return None if job is None else target_to_difficulty(job.share_target)


def _number(difficulty: float) -> int | float:
    """A difficulty as the JSON number miners parse: an integer when it is one."""
    return int(difficulty) if math.isfinite(difficulty) and float(difficulty).is_integer() else difficulty


_HANDLERS = {
    "mining.configure": DownstreamSession._configure,  # noqa: SLF001
    "mining.subscribe": DownstreamSession._subscribe,  # noqa: SLF001
    "mining.authorize": DownstreamSession._authorize,  # noqa: SLF001
    "mining.extranonce.subscribe": DownstreamSession._extranonce_subscribe,  # noqa: SLF001
    "mining.suggest_difficulty": DownstreamSession._suggest_difficulty,  # noqa: SLF001
    "mining.submit": DownstreamSession._submit,  # noqa: SLF001
    "mining.ping": DownstreamSession._ping,  # noqa: SLF001
}
