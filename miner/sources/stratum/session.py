"""One pool's Stratum v1 session as a state machine with no I/O, in the manner of h11's Connection.

The asyncio shell (connection.py) tells the session when a connection is made or lost, feeds it
the bytes the socket gave and the checked shares the engine offers, always with the time `now`
(the session never reads a clock), and then acts on what comes back: the bytes from
`data_to_send()` and a list of `SessionEvent`s (jobs to publish, share decisions and results,
the pool turning alive, a redirect or an error that ends the connection).

The session outlives its TCP connections: the session id, extranonce, live jobs and held shares
carry over a reconnect, so shares found while the pool was down are sent once it is back (or
counted stale when the pool has moved on). Its rules, all here and nowhere else:
- difficulty and extranonce from `set_difficulty`/`set_extranonce` apply from the next job
  (docs/stratum.md §1.3); until then a share must meet both the old and the new difficulty, as
  some pools enforce a new difficulty at once; a new version mask applies at once and
  re-announces the current job;
- a job that came before the authorize reply (ckpool sends its first notify right after the
  subscribe reply) is mined as soon as the authorization succeeds;
- version rolling only flips bits that are 0 in the job's version, inside the negotiated mask,
  and the sixth submit parameter is chosen by the pool's rule (docs/stratum.md §1.10);
- a clean job or a new block ends every older job; shares for a dead job are stale, not sent
  (docs/stratum.md §1.8);
- a share is sent once per connection (the same job, extranonce2, ntime, nonce and version);
- while the pool is down or not yet authorized, shares are held (at most MAX_HELD_SHARES);
- submits the pool never answered are held again when the connection is lost;
- client.reconnect is obeyed only towards the same domain unless the user allowed any.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, replace
from fractions import Fraction

from miner import USER_AGENT
from miner.core.lograte import LogLimiter
from miner.core.shares import CheckedNonce
from miner.core.stats import ShareStats, format_difficulty
from miner.core.targets import difficulty_to_target, hash_to_int
from miner.core.work import Job
from miner.sources.stratum import protocol as sp
from miner.sources.stratum.url import PoolConfig, Timeouts, parse_pool_url, same_domain

log = logging.getLogger(__name__)

# What we ask for in mining.configure: BIP323's 24 general-purpose bits 5-28 (a superset of
# BIP320's 0x1fffe000). We roll only what the pool grants (the intersection), never assume a mask.
OUR_VERSION_MASK = 0x1FFFFFE0
MAX_LIVE_JOBS = 64
MAX_HELD_SHARES = 1000
MAX_SENT_KEYS = 100_000  # shares remembered against duplicates (a device repeating one is recent)


# ------------------------------------------------------------------------------------ outputs
class SessionEvent:
    """Base class of what the session's inputs return."""


@dataclass(frozen=True)
class PublishJob(SessionEvent):
    """A job for the devices; job.clean says whether older work is worthless now."""

    job: Job


@dataclass(frozen=True)
class PoolAlive(SessionEvent):
    """Authorized and holding a job: the pool can be mined on (once per connection)."""


@dataclass(frozen=True)
class ShareSent(SessionEvent):
    share: CheckedNonce
    request_id: int


@dataclass(frozen=True)
class ShareHeld(SessionEvent):
    """Kept until the pool is back (or authorized); sent then if still live."""

    share: CheckedNonce


@dataclass(frozen=True)
class ShareStale(SessionEvent):
    """Not sent: the pool has moved on from its job (or too many shares were held)."""

    share: CheckedNonce


@dataclass(frozen=True)
class ShareTooEasy(SessionEvent):
    """Not sent: below a difficulty the pool set since the job was sent (counted stale)."""

    share: CheckedNonce


@dataclass(frozen=True)
class ShareDuplicate(SessionEvent):
    """Not sent: the pool already has it from this connection."""

    share: CheckedNonce


@dataclass(frozen=True)
class ShareAnswered(SessionEvent):
    share: CheckedNonce
    accepted: bool
    reason: str | None  # for a reject: the pool's words, or "rejected"
    code: int | None
    latency: float  # seconds from sending to the answer


@dataclass(frozen=True)
class Redirected(SessionEvent):
    """The pool sent us elsewhere (client.reconnect): close, wait `wait` s, connect to host:port."""

    host: str
    port: int
    wait: float


@dataclass(frozen=True)
class SessionFailed(SessionEvent):
    """The connection cannot go on; reason is the one line the user sees."""

    reason: str


def tally(stats: ShareStats, event: SessionEvent) -> None:
    """Count a share decision or answer in a pool's statistics (other events count nothing)."""
    match event:
        case ShareStale(share=share) | ShareTooEasy(share=share):
            stats.stale += 1
            stats.stale_difficulty += share.work.job.share_difficulty
        case ShareAnswered(share=share, accepted=True):
            stats.accepted += 1
            stats.accepted_difficulty += share.work.job.share_difficulty
            stats.note_best(share.difficulty)
        case ShareAnswered(accepted=False, reason=reason):
            stats.rejected[reason or "rejected"] += 1


@dataclass
class _Submitted:
    share: CheckedNonce
    sent_at: float
    version_rule: str | None = None  # the rule the sixth parameter was written with, if it mattered
    retry: bool = False  # sent again under the other rule after an over-target reject


# How a pool rebuilds the header version from the sixth mining.submit parameter `bits`
# (docs/stratum.md §1.10):
#   "delta": job_version ^ bits (public-pool MiningJob.copyAndUpdateBlock) and job_version | bits
#            (ckpool stratifier.c share_diff: `*data32 |= version_mask`); the same value when we only
#            flip bits that are 0 in the job's version, which is all we roll;
#   "bits":  (job_version & ~mask) | (bits & mask) (BIP310; p2pool, NOMP-style pools).
# Both agree unless the job's version has bits set inside the mask; then we start with "delta"
# and switch once a rolled share is rejected as over target (and send that share again).
VERSION_RULES = ("delta", "bits")
HIGH_HASH_WORDS = ("target", "low difficulty", "high-hash", "high hash", "above")


def share_key(share: CheckedNonce) -> tuple:
    """What makes two submits the same share to a pool."""
    return (share.work.job.job_id, share.work.extranonce2, share.ntime, share.nonce.nonce, share.version)


class StratumSession:
    def __init__(self, config: PoolConfig, name: str, timeouts: Timeouts | None = None,
                 user_agent: str = USER_AGENT):
        self.config = config
        self.name = name
        self.url = parse_pool_url(config.url)
        self.target = (self.url.host, self.url.port)  # where to connect; changes on client.reconnect
        self.xnsub = config.xnsub or self.url.xnsub
        self.timeouts = timeouts or Timeouts()
        self.user_agent = user_agent
        self.difficulty = Fraction(1)
        self.version_mask = 0
        self.extranonce1 = b""
        self.extranonce2_size = 0
        self.session_id: str | None = None
        self.current_job: Job | None = None
        self.live_jobs: OrderedDict[str, Job] = OrderedDict()
        self._job_arrived: dict[str, float] = {}  # job id -> when it came (for --expiry)
        self.held: list[CheckedNonce] = []
        self.connections = 0
        self.authorized = False  # the authorize reply said yes (on this connection)
        self.subscribed = False  # the subscribe reply came (on this connection)
        self._pending_difficulty: Fraction | None = None
        self._pending_extranonce: tuple[bytes, int] | None = None
        self._submitted: dict[int, _Submitted] = {}
        self._sent_keys: dict[tuple, None] = {}  # insertion-ordered: the oldest are forgotten first
        self._proto: sp.StratumProtocol | None = None
        self._ended = False  # a SessionFailed/Redirected came out: nothing more from this connection
        self._alive = False  # PoolAlive came out on this connection
        self._resumed = False  # first job after a reconnect decides whether old jobs live on
        self._handshake_deadline = 0.0
        self._last_data = 0.0
        self._last_job = 0.0
        self._line_started: float | None = None  # when the incomplete line in the codec began
        self._early_job: sp.NewJob | None = None  # a notify before the subscribe reply: built after it
        self._job_this_connection = False  # a job came after this connection's subscribe
        self._log_limit = LogLimiter(log)  # a flood of stale shares is one line per interval
        self._answer_log = LogLimiter(log, interval=1.0)  # answers: every one at a normal pace, 1/s in a flood
        self.version_rule = "delta"  # see VERSION_RULES
        self._rule_known = False  # a rolled share of an ambiguous job was accepted under version_rule

    # -------------------------------------------------------------------- state
    @property
    def connected(self) -> bool:
        return self._proto is not None and not self._ended

    @property
    def ready(self) -> bool:
        """Subscribed and authorized: shares can be sent. Never without a subscribe answer (its
        extranonce1 and extranonce2 size make the coinbase the pool checks)."""
        return self.authorized and self.subscribed

    @property
    def unanswered(self) -> int:
        """Submits sent on this connection and not answered yet."""
        return len(self._submitted)

    def deadline(self) -> tuple[float, str]:
        """When the connection counts as dead if nothing changes, and the line saying why."""
        t = self.timeouts
        candidates = []
        if not self.ready:
            # every step: an authorize answer without a subscribe answer is no handshake
            candidates.append((self._handshake_deadline, f"no reply to subscribe/authorize within {t.reply:g} s"))
        if self._line_started is not None:
            # a trickling pool keeps the socket busy without ever finishing a line
            candidates.append((self._line_started + t.line, f"a line from the pool took over {t.line:g} s"))
        if self._submitted:
            entries = list(self._submitted.values())
            # frozen: a submit is out and the pool has said nothing at all since (nor answered it)
            since = max(self._last_data, entries[0].sent_at)
            candidates.append((since + t.answer, f"the pool went silent for {t.answer:g} s with "
                               f"{len(entries)} submit(s) unanswered"))
            if len(entries) >= t.unanswered:
                # alive but ignoring submits: jobs keep coming, answers do not
                candidates.append((entries[t.unanswered - 1].sent_at + t.answer,
                                   f"{t.unanswered} submits unanswered for over {t.answer:g} s"))
        candidates.append((self._last_data + t.silence, f"nothing from the pool for {t.silence:g} s"))
        candidates.append((self._last_job + t.work, f"no new work for {t.work:g} s"))
        return min(candidates, key=lambda c: c[0])

    # -------------------------------------------------------------------- inputs
    def connection_made(self, now: float) -> None:
        """A new socket: start the handshake (configure, subscribe with the old session id, authorize)."""
        self.connections += 1
        proto = sp.StratumProtocol(self.user_agent, version_mask_wanted=OUR_VERSION_MASK)
        self._proto = proto
        self.authorized = False
        self.subscribed = False
        self._line_started = None
        self._early_job = None
        self._ended = False
        self._alive = False
        self._job_this_connection = False
        self.version_mask = 0
        self._resumed = self.connections > 1
        if self.config.version_rolling:
            proto.configure(True)
        proto.subscribe(self.session_id)
        proto.authorize(self.config.user, self.config.password)
        self._handshake_deadline = now + self.timeouts.reply
        self._last_data = self._last_job = now

    def connection_lost(self) -> None:
        """The socket is gone. Submits the pool never answered are held again: they may still be
        good after a reconnect (a resent one the pool did get is a "Duplicate share", not a loss)."""
        self._proto = None
        self.authorized = False
        self.subscribed = False
        self._line_started = None
        for entry in self._submitted.values():
            self._sent_keys.pop(share_key(entry.share), None)
            self.held.append(entry.share)
        self._submitted.clear()

    def receive_data(self, data: bytes, now: float) -> list[SessionEvent]:
        if not self.connected:
            return []
        assert self._proto is not None
        self._last_data = now
        out: list[SessionEvent] = []
        # One line at a time into the codec, so that nothing after a line that ends the session is
        # taken (or answered), wherever the socket happened to split the bytes.
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            end = len(data) if end < 0 else end + 1
            for event in self._proto.receive_data(data[start:end]):
                if isinstance(event, sp.NewJob):
                    self._last_job = now
                self._handle(event, now, out)
                if self._ended:
                    return out  # the rest came on a connection that is closing
            start = end
        if not self._proto.partial:
            self._line_started = None
        elif self._line_started is None:
            self._line_started = now
        return out

    def offer(self, share: CheckedNonce, now: float) -> list[SessionEvent]:
        """A checked share: send it, hold it while the pool is down, or count it stale/duplicate."""
        out: list[SessionEvent] = []
        self._offer(share, now, out)
        return out

    # -------------------------------------------------------------------- outputs
    def data_to_send(self) -> bytes:
        """Bytes for the socket. After the session ended they are what was queued before the line
        that ended it (submits included), so the pool still gets them before the close."""
        return self._proto.data_to_send() if self._proto is not None else b""

    # -------------------------------------------------------------------- rules
    def _end(self, event: SessionEvent, out: list[SessionEvent]) -> None:
        self._ended = True
        self.authorized = False
        out.append(event)

    def _handle(self, event: sp.Event, now: float, out: list[SessionEvent]) -> None:
        match event:
            case sp.Configured(version_rolling=on, version_mask=mask):
                # a pool may grant bits we did not ask for: only the intersection is ours
                self.version_mask = mask & OUR_VERSION_MASK if on else 0
                log.info("%s: version rolling %s", self.name, f"on, mask {mask:08x}" if on else "refused")
            case sp.Subscribed(extranonce1=en1, extranonce2_size=size, session_id=session):
                if self._resumed and en1 != self.extranonce1:
                    self._drop_jobs("new extranonce1 after reconnect")
                self.extranonce1, self.extranonce2_size = en1, size
                self.session_id = session
                self.subscribed = True
                log.info("%s: subscribed, extranonce1 %s, extranonce2 %d bytes", self.name, en1.hex(), size)
                if self._early_job is not None:
                    early, self._early_job = self._early_job, None
                    self._new_job(early, now, out)
                self._go_alive(now, out)
            case sp.Authorized(ok=True):
                self.authorized = True
                log.info("%s: authorized as %s", self.name, self.config.user)
                assert self._proto is not None
                if self.xnsub:
                    self._proto.extranonce_subscribe()
                if self.config.suggest_difficulty:
                    self._proto.suggest_difficulty(self.config.suggest_difficulty)
                # ckpool sends its first notify right after the subscribe reply, before the
                # authorize reply (ckpool stratifier.c parse_method: init_client() follows the
                # subscribe result; the auth is answered later from its own queue): mine it now.
                self._go_alive(now, out)
            case sp.Authorized(ok=False, reason=reason):
                self._end(SessionFailed(f"authorization of {self.config.user!r} refused: {reason}"), out)
            case sp.NewJob():
                self._new_job(event, now, out)
            case sp.SetDifficulty(difficulty=d):
                self._pending_difficulty = d
                log.info("%s: difficulty %s from the next job (until then shares must meet both)", self.name,
                         format_difficulty(float(d)))
            case sp.SetExtranonce(extranonce1=en1, extranonce2_size=size):
                self._pending_extranonce = (en1, size)
                log.info("%s: new extranonce1 %s from the next job", self.name, en1.hex())
            case sp.SetVersionMask(version_mask=mask):
                self.version_mask = mask & OUR_VERSION_MASK
                log.info("%s: version mask now %08x", self.name, self.version_mask)
                if self.current_job is not None:
                    # valid at once: the current job is re-announced with the new mask
                    job = self.current_job
                    self._publish(replace(job, version_mask=self.rollable_bits(job.version), clean=False), out)
            case sp.Reconnect(host=host, port=port, wait=wait):
                self._reconnect(host, port, wait, out)
            case sp.ShowMessage(text=text):
                log.warning("%s says: %s", self.name, text)  # for the user: shown at the default level
            case sp.SubmitResult():
                self._submit_result(event, now, out)
            case sp.RequestResult(method=method, ok=False, reason=reason):
                log.info("%s: %s refused: %s", self.name, method, reason)
            case sp.ProtocolError(message=message, fatal=fatal):
                if fatal:
                    self._end(SessionFailed(f"bad message from the pool: {message}"), out)
                else:
                    log.warning("%s: ignored bad message: %s", self.name, message)

    def _drop_jobs(self, why: str) -> None:
        if self.live_jobs:
            # routine at every clean job: detail for --debug, not news
            log.debug("%s: %d old job(s) no longer valid: %s", self.name, len(self.live_jobs), why)
        self.live_jobs.clear()
        self._job_arrived.clear()
        self._sent_keys.clear()  # shares of dead jobs cannot be sent again anyway; keeps the set small

    def _new_job(self, event: sp.NewJob, now: float, out: list[SessionEvent]) -> None:
        if not self.subscribed:
            # its coinbase needs the extranonce1 the subscribe reply brings: keep the latest until then
            self._early_job = event
            return
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
            version_mask=self.rollable_bits(event.version), source=self.name,
        )
        if event.version & self.version_mask:
            log.info("%s: job %s version %08x has bits inside the rolling mask %08x; rolling the others only",
                     self.name, job.job_id, event.version, self.version_mask)
        self._job_this_connection = True
        self._job_arrived[job.job_id] = now
        self._publish(job, out)
        if self._alive:
            self._send_held(now, out)
        else:
            self._go_alive(now, out)

    def _go_alive(self, now: float, out: list[SessionEvent]) -> None:
        """Alive once subscribed, authorized and holding a job of this connection, in whatever order
        the pool sent them; then the shares held while it was down go out."""
        if self._alive or not (self.ready and self._job_this_connection):
            return
        self._alive = True
        out.append(PoolAlive())
        self._send_held(now, out)

    def _publish(self, job: Job, out: list[SessionEvent]) -> None:
        self.live_jobs[job.job_id] = job
        self.live_jobs.move_to_end(job.job_id)
        while len(self.live_jobs) > MAX_LIVE_JOBS:
            self._job_arrived.pop(self.live_jobs.popitem(last=False)[0], None)
        self.current_job = job
        out.append(PublishJob(job))

    def rollable_bits(self, job_version: int) -> int:
        """The version bits devices may flip for a job: inside the negotiated mask and 0 in the job's
        version, so that every pool's rule rebuilds the header we hashed (docs/stratum.md §1.10)."""
        return self.version_mask & ~job_version & 0xFFFFFFFF

    def _is_live(self, share: CheckedNonce) -> bool:
        """The pool still takes shares for this job, with these version bits."""
        job = share.work.job
        if self.live_jobs.get(job.job_id) != job:
            return False
        return not (share.version ^ job.version) & ~self.version_mask & 0xFFFFFFFF

    def _meets_new_difficulty(self, share: CheckedNonce) -> bool:
        """Until the next job, a share must also meet a difficulty set since its job came: a pool
        may enforce the new one at once."""
        if self._pending_difficulty is None:
            return True
        new_target = difficulty_to_target(self._pending_difficulty)
        return new_target >= share.work.job.share_target or hash_to_int(share.digest) <= new_target

    def _expired(self, share: CheckedNonce, now: float) -> bool:
        """cgminer --expiry (cgminer.c stale_work): the job is older than the user allows."""
        expiry = self.config.expiry
        arrived = self._job_arrived.get(share.work.job.job_id)
        return expiry is not None and arrived is not None and now - arrived > expiry

    def _offer(self, share: CheckedNonce, now: float, out: list[SessionEvent]) -> None:
        job = share.work.job
        if not self._is_live(share) or self._expired(share, now):
            self._log_limit.log(now, logging.INFO, "stale", "%s: stale share for job %s (the pool has moved on), "
                                "not sent", self.name, job.job_id)
            out.append(ShareStale(share))
            return
        if not self._meets_new_difficulty(share):
            self._log_limit.log(now, logging.INFO, "too-easy", "%s: share %08x below the new difficulty %s, not sent",
                                self.name, share.nonce.nonce, format_difficulty(float(self._pending_difficulty or 0)))
            out.append(ShareTooEasy(share))
            return
        key = share_key(share)
        if key in self._sent_keys:
            self._log_limit.log(now, logging.INFO, "duplicate", "%s: duplicate share %08x not sent again", self.name,
                                share.nonce.nonce)
            out.append(ShareDuplicate(share))
            return
        if not self.ready or self._proto is None:
            if len(self.held) >= MAX_HELD_SHARES:
                self._log_limit.log(now, logging.WARNING, "held-full", "%s: too many shares held while down; oldest "
                                    "counted stale", self.name)
                out.append(ShareStale(self.held.pop(0)))
            self.held.append(share)
            self._log_limit.log(now, logging.INFO, "held", "%s: pool down, share %08x held until it is back",
                                self.name, share.nonce.nonce)
            out.append(ShareHeld(share))
            return
        self._send_submit(share, key, now, out)

    def rule_matters(self, share: CheckedNonce) -> bool:
        """Whether the pools' rules rebuild different headers from this share's sixth parameter."""
        return bool(self.version_mask and share.work.job.version & self.version_mask)

    def version_bits(self, share: CheckedNonce, rule: str | None = None) -> int | None:
        """The sixth mining.submit parameter (BIP310), or none without version rolling.

        "delta" sends the bits that differ from the job's version, "bits" the header's bits inside the
        mask; they are the same value unless the job's version has bits inside the mask."""
        if not self.version_mask:
            return None
        if (rule or self.version_rule) == "bits":
            return share.version & self.version_mask
        return (share.version ^ share.work.job.version) & self.version_mask

    def _send_submit(self, share: CheckedNonce, key: tuple, now: float, out: list[SessionEvent]) -> None:
        assert self._proto is not None
        request_id = self._proto.submit(self.config.user, share.work.job.job_id, share.work.extranonce2,
                                        share.ntime, share.nonce.nonce, self.version_bits(share))
        rule = self.version_rule if self.rule_matters(share) else None
        self._submitted[request_id] = _Submitted(share, now, rule)
        self._sent_keys[key] = None
        if len(self._sent_keys) > MAX_SENT_KEYS:  # a flood with no clean job: forget the oldest
            del self._sent_keys[next(iter(self._sent_keys))]
        out.append(ShareSent(share, request_id))

    def _send_held(self, now: float, out: list[SessionEvent]) -> None:
        if not self.held or not self.ready:
            return
        held, self.held = self.held, []
        log.info("%s: sending %d share(s) held while the pool was down", self.name, len(held))
        for share in held:
            self._offer(share, now, out)  # the same checks as a fresh share: stale ones are counted, not sent

    def _submit_result(self, event: sp.SubmitResult, now: float, out: list[SessionEvent]) -> None:
        entry = self._submitted.pop(event.request_id, None)
        if entry is None:
            return
        latency = now - entry.sent_at
        share = entry.share
        if event.accepted:
            if entry.version_rule is not None and not self._rule_known:
                self._rule_known = True
                log.info("%s: the pool rebuilds versions by the %r rule", self.name, entry.version_rule)
            self._answer_log.log(now, logging.INFO, "accepted", "%s: accepted %08x diff %s (%.0f ms)", self.name,
                                 share.nonce.nonce, format_difficulty(share.difficulty), latency * 1000)
            out.append(ShareAnswered(share, True, None, event.code, latency))
        else:
            reason = event.reason or "rejected"
            self._answer_log.log(now, logging.WARNING, "rejected", "%s: rejected %08x: %s%s", self.name,
                                 share.nonce.nonce, reason, f" (code {event.code})" if event.code is not None else "")
            out.append(ShareAnswered(share, False, reason, event.code, latency))
            if self._other_rule_may_fix(entry, event):
                if entry.retry:
                    # refused under both rules: the share itself was bad, not our rule; keep the first
                    self.version_rule = "bits" if self.version_rule == "delta" else "delta"
                    log.info("%s: share %08x refused under both version rules; keeping %r", self.name,
                             share.nonce.nonce, self.version_rule)
                else:
                    self._switch_rule(share, now, out)

    def _other_rule_may_fix(self, entry: _Submitted, event: sp.SubmitResult) -> bool:
        """A share of an ambiguous job refused as over target under a rule not yet confirmed: the pool
        hashed another header than ours, so it follows the other rule."""
        if entry.version_rule is None or self._rule_known or entry.version_rule != self.version_rule:
            return False
        words = (event.reason or "").lower()
        return event.code == 23 or any(word in words for word in HIGH_HASH_WORDS)

    def _switch_rule(self, share: CheckedNonce, now: float, out: list[SessionEvent]) -> None:
        self.version_rule = "bits" if self.version_rule == "delta" else "delta"
        log.warning("%s: the pool rebuilds the version another way; sending version bits by the %r rule now",
                    self.name, self.version_rule)
        self._sent_keys.pop(share_key(share), None)
        if self.connected and self.ready:
            self._offer(share, now, out)  # the same share again, as this pool reads it (once)
            for entry in self._submitted.values():
                if entry.share is share:
                    entry.retry = True

    def _reconnect(self, host: str | None, port: int | None, wait: float, out: list[SessionEvent]) -> None:
        new_host = host or self.target[0]
        new_port = port or self.target[1]
        if not self.config.allow_redirect_anywhere and not same_domain(new_host, self.url.host):
            log.warning("%s: REFUSED client.reconnect to %s:%d (another domain than %s); staying",
                        self.name, new_host, new_port, self.url.host)
            return
        log.warning("%s: pool asks to reconnect to %s:%d in %g s", self.name, new_host, new_port, wait)
        self.target = (new_host, new_port)
        self._end(Redirected(new_host, new_port, wait), out)
