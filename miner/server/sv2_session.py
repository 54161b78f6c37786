"""One downstream Stratum V2 connection's rules, with no I/O (docs/serve.md §10): the server side of
the client in miner/sources/sv2/session.py, built on the same codec and noise modules.

The face is DownstreamSession's (session.py), so the same shell drives both protocols:
`receive_data(bytes, now)` gives events (ShareAccepted, ShareRejected, Close), `send_job(job,
now)` takes every source job, `tick(now)` runs the timers, `data_to_send()` is the ciphertext.

What it does, after SRI's pool (stratum-mining/stratum roles/pool, channel_manager
downstream_message_handler.rs and mining_pool/setup_connection.rs) where the spec leaves room:
- the Noise NX handshake as responder, with the certificate the authority issued (sv2_keys.py);
- SetupConnection: protocol 0 (Mining) and version 2 only; a connection asking for work selection
  (custom jobs) is refused with `unsupported-feature-flags`, as this server makes every job itself;
  SRI's pool answers Success with used_version 2 and echoes the flags, which would tell a client
  that set REQUIRES_STANDARD_JOBS (bit 0) REQUIRES_FIXED_VERSION (bit 0 of the answer), so the
  answer here carries REQUIRES_FIXED_VERSION only when the source's job allows no rolling;
- OpenExtendedMiningChannel / OpenStandardMiningChannel: a prefix from the same PrefixPool the V1
  downstreams use (extranonce.py), so no two downstreams of either protocol hash the same
  coinbase; errors `min-extranonce-size-too-large`, `max-target-out-of-range`, `unknown-user`
  (SRI's and the spec's codes); then a future job and the SetNewPrevHash that activates it (SRI's
  order);
- every source job: on a new prev_hash (or a clean job) a future job and SetNewPrevHash, which
  ends every older job; otherwise a job with min_ntime, active at once (05-Mining-Protocol.md
  §5.3.16, §5.3.17). A standard channel gets NewMiningJob with the merkle root of its own coinbase;
- shares checked in the V1 path's order (session.py `_submit`, after ckpool's parse_submit), each
  hashed once with the C core; errors by sequence number with SRI's codes (`invalid-channel-id`,
  `invalid-job-id`, `stale-share`, `invalid-share`, `difficulty-too-low`, `duplicate-share`);
  accepted ones answered in batches of `batch_size` (SRI's `share_batch_size`) with one
  SubmitShares.Success, or after FLUSH_SECONDS, whichever comes first;
- SetTarget from the same vardiff as V1 (vardiff.py), at once (SRI's pool checks every share
  against the channel's current target); shares for a job sent before a raise are judged at the
  lower of the two, as the V1 path does (ckpool's diff_change_job_id);
- RequestExtensions (extension 0x0001) answered at once, so a client that waits for the answer
  before opening its channels (extensions/0x0001 §4.2, this repository's client) does not wait;
- UpdateChannel: the nominal rate sets the difficulty (SRI's `update_channel`), the maximum target
  becomes the floor, and SetTarget follows, as SRI sends it; CloseChannel frees the prefix.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from miner.core.shares import CheckedNonce, Verdict, check_nonce
from miner.core.targets import DIFF1_TARGET, difficulty_to_target
from miner.core.work import Job, Nonce, Work
from miner.server.session import (
    MAX_AGENT,
    MAX_BAD_LINES,
    MAX_JOBS,
    MAX_SEEN,
    MAX_STALE_IDS,
    MAX_WORKER_NAME,
    NTIME_AHEAD,
    Close,
    Event,
    Rules,
    ShareAccepted,
    ShareRejected,
)
from miner.server.sv2_keys import CertificateIssuer
from miner.server.vardiff import VarDiff
from miner.server.workers import WorkerStats
from miner.sources.sv2 import codec as c
from miner.sources.sv2.noise import ACT1_SIZE, NoiseError, NoiseResponder, NoiseTransport

log = logging.getLogger(__name__)
protocol_log = logging.getLogger("miner.protocol")

PROTOCOL = "stratum2"
MAX_FRAME = 16 * 1024  # a downstream's largest message (SetupConnection) is ~1.3 KB
MAX_CHANNELS = 64  # per connection: a proxy opens one standard channel per device
DEFAULT_BATCH = 10  # SRI's pool example configs: share_batch_size = 10
FLUSH_SECONDS = 5.0  # a partial batch is answered after this long, so a slow miner sees its shares counted
NONCE_SPACE = 2**32


@dataclass
class _Sent:
    source_job: Job
    difficulty: float  # the channel's difficulty when the job was sent
    job: Job | None = None  # as this channel mines it (cut with its prefix), built at its first share
    work: Work | None = None  # standard channels: the one coinbase, merkle root fixed


@dataclass
class Channel:
    channel_id: int
    standard: bool
    user: str
    worker: WorkerStats
    prefix: int
    vardiff: VarDiff
    jobs: OrderedDict[int, _Sent] = field(default_factory=OrderedDict)
    stale: OrderedDict[int, None] = field(default_factory=OrderedDict)
    seen: set[bytes] = field(default_factory=set)
    pending: list[int] = field(default_factory=list)  # sequence numbers accepted, not yet acknowledged
    pending_sum: float = 0.0
    pending_since: float = 0.0
    last_prev: tuple[bytes, int] | None = None
    sent_difficulty: float | None = None


# One source job's NewExtendedMiningJob payload after channel_id and job_id (U32 each, its first two
# fields in codec.py): the same bytes for every channel, so a new job is encoded once, not once per
# downstream (encoding was most of a publish's cost; benchmarks/bench_serve_sv2.py).
_JOB_PAYLOADS: OrderedDict[tuple[int, int | None, int], tuple[Job, bytes]] = OrderedDict()
_JOB_PAYLOADS_KEPT = 8


def extended_job_frame(channel_id: int, job_id: int, job: Job, min_ntime: int | None, padding: bytes) -> bytes:
    """The frame of NewExtendedMiningJob(channel_id, job_id, ...) for `job` as every channel gets it."""
    key = (id(job), min_ntime, len(padding))
    entry = _JOB_PAYLOADS.get(key)
    if entry is None or entry[0] is not job:
        payload = c.NewExtendedMiningJob(0, 0, min_ntime, job.version, bool(job.version_mask), job.merkle_branch,
                                         job.coinb1 + job.extranonce1, padding + job.coinb2).encode_payload()
        entry = _JOB_PAYLOADS[key] = (job, payload[8:])
        while len(_JOB_PAYLOADS) > _JOB_PAYLOADS_KEPT:
            _JOB_PAYLOADS.popitem(last=False)
    payload = channel_id.to_bytes(4, "little") + job_id.to_bytes(4, "little") + entry[1]
    return c.encode_header(c.NewExtendedMiningJob.EXTENSION, c.NewExtendedMiningJob.CHANNEL,
                           c.NewExtendedMiningJob.MSG_TYPE, len(payload)) + payload


def difficulty_for_rate(hash_rate: float, shares_per_minute: float) -> float:
    """The difficulty at which `hash_rate` (H/s) makes `shares_per_minute` (SRI's hash_rate_to_target)."""
    return hash_rate * 60.0 / shares_per_minute / NONCE_SPACE


class Sv2DownstreamSession:
    protocol = PROTOCOL

    def __init__(self, rules: Rules, issuer: CertificateIssuer, now: float, peer: str = "",
                 batch_size: int = DEFAULT_BATCH, responder_factory: Callable[..., NoiseResponder] = NoiseResponder):
        self.rules = rules
        self.issuer = issuer
        self.peer = peer
        self.opened = now
        self.last_line = now
        self.batch_size = max(1, batch_size)
        self._responder_factory = responder_factory
        self._handshake = bytearray()
        self._transport: NoiseTransport | None = None
        self._out: list[bytes] = []
        self.setup: c.SetupConnection | None = None
        self.user_agent = ""
        self.channels: dict[int, Channel] = {}
        self._channel_ids = 0
        self._job_ids = 0
        self._source_job: Job | None = None
        self._tokens = rules.burst
        self._token_time = now
        self._bad = 0
        self._targets: dict[float, int] = {}
        self.closed: str | None = None
        self.batches = 0  # SubmitShares.Success messages sent

    # -------------------------------------------------------------------- the shell's face
    def data_to_send(self) -> bytes:
        data, self._out = b"".join(self._out), []
        return data

    @property
    def ready(self) -> bool:
        """At least one channel open: it gets jobs."""
        return bool(self.channels) and self.closed is None

    @property
    def authorized(self) -> set[str]:
        return {ch.user for ch in self.channels.values()}

    @property
    def worker(self) -> WorkerStats | None:
        return next((ch.worker for ch in self.channels.values()), None)

    def send_job(self, job: Job, now: float) -> None:
        self._source_job = job
        for ch in list(self.channels.values()):
            self._maximum(ch, job, now)
            self._send_job(ch, job, now)

    def tick(self, now: float) -> list[Event]:
        if self.closed is not None:
            return []
        if not self.ready and now - self.opened > self.rules.login_timeout:
            return [self._close(f"no Stratum V2 channel opened within {self.rules.login_timeout:g}s")]
        if now - self.last_line > self.rules.idle_timeout:
            return [self._close(f"silent for {self.rules.idle_timeout:g}s")]
        for ch in self.channels.values():
            if ch.pending and now - ch.pending_since >= FLUSH_SECONDS:
                self._flush(ch)
            if ch.vardiff.on_tick(now) is not None:
                self._set_target(ch)
        return []

    def flush(self) -> None:
        """Answer every channel's partial batch now."""
        for ch in self.channels.values():
            self._flush(ch)

    def reconnect(self, host: str | None = None, port: int | None = None, wait: float = 0) -> None:
        """Reconnect (03-Protocol-Overview.md §3.8): an empty host and port 0 mean "here again"."""
        if self._transport is not None and self.setup is not None:
            self._send(c.Reconnect(host or "", port or 0))

    def connection_lost(self, now: float) -> None:
        for ch in list(self.channels.values()):
            self._drop_channel(ch, now)
        self.closed = self.closed or "connection lost"

    # -------------------------------------------------------------------- input
    def receive_data(self, data: bytes, now: float) -> list[Event]:
        if self.closed is not None:
            return []
        events: list[Event] = []
        try:
            if self._transport is None:
                self._handshake += data
                if len(self._handshake) < ACT1_SIZE:
                    return events
                act1, data = bytes(self._handshake[:ACT1_SIZE]), bytes(self._handshake[ACT1_SIZE:])
                self._handshake.clear()
                responder = self._responder_factory(self.issuer.identity.static_secret, self.issuer.current())
                act2, self._transport = responder.respond(act1)
                self._transport.max_payload = MAX_FRAME
                self._out.append(act2)
                self.last_line = now
            for frame in self._transport.receive_data(data):
                self.last_line = now
                if not self._take_token(now):
                    events.append(self._close(f"over {self.rules.messages_per_second:g} messages/s"))
                    return events
                self._handle(c.decode_frame(frame), now, events)
                if self.closed is not None:
                    break
        except NoiseError as exc:
            events.append(self._close(f"Noise: {exc}"))
        except c.CodecError as exc:
            events.append(self._close(f"a malformed Stratum V2 message: {exc}"))
        return events

    def _take_token(self, now: float) -> bool:
        rules = self.rules
        self._tokens = min(rules.burst, self._tokens + max(0.0, now - self._token_time) * rules.messages_per_second)
        self._token_time = max(now, self._token_time)
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _close(self, reason: str) -> Close:
        self.closed = reason
        return Close(reason)

    def _send(self, message: c.Message) -> None:
        assert self._transport is not None
        if protocol_log.isEnabledFor(logging.INFO):  # --protocol-log
            protocol_log.info("%s > %r", self.peer, message)
        self._out.append(self._transport.encrypt_frame(c.encode_frame(message)))

    def _bad_input(self, what: str, events: list[Event]) -> None:
        self._bad += 1
        log.debug("downstream %s: %s", self.peer, what)
        if self._bad >= MAX_BAD_LINES:
            events.append(self._close(f"{MAX_BAD_LINES} unusable messages in a row (last: {what})"))

    def _handle(self, message: c.Message | c.UnknownMessage, now: float, events: list[Event]) -> None:
        if protocol_log.isEnabledFor(logging.INFO):  # --protocol-log
            protocol_log.info("%s < %r", self.peer, message)
        if self.setup is None:
            if isinstance(message, c.SetupConnection):
                self._setup(message, events)
            else:
                events.append(self._close("the first message was not SetupConnection"))
            return
        match message:
            case c.SubmitSharesExtended() | c.SubmitSharesStandard():
                self._submit(message, now, events)
                return
            case c.OpenExtendedMiningChannel() | c.OpenStandardMiningChannel():
                self._open(message, now)
            case c.UpdateChannel():
                self._update(message, now)
            case c.CloseChannel(channel_id=channel_id) if channel_id in self.channels:
                self._drop_channel(self.channels[channel_id], now)
            case c.RequestExtensions(request_id=request_id, requested_extensions=wanted):
                # extensions/0x0001-extensions-negotiation.md §4.1: Success with the supported ones
                # (none here: every extension this server speaks is the negotiation itself), Error
                # listing the unsupported when none is; we require none (docs/sv2.md §9)
                if wanted:
                    self._send(c.RequestExtensionsError(request_id, wanted, ()))
                else:
                    self._send(c.RequestExtensionsSuccess(request_id, ()))
            case _:
                self._bad_input(f"unexpected {type(message).__name__}", events)
                return
        self._bad = 0

    # -------------------------------------------------------------------- setup and channels
    def _setup(self, m: c.SetupConnection, events: list[Event]) -> None:
        """03-Protocol-Overview.md §3.3 error codes; see the module docstring for the flags."""
        self.user_agent = " ".join(p for p in (m.vendor, m.hardware_version, m.firmware) if p)[:MAX_AGENT]
        error = None
        if m.protocol != c.MINING_PROTOCOL:
            error = (0, "unsupported-protocol")
        elif not m.min_version <= c.PROTOCOL_VERSION <= m.max_version:
            error = (0, "protocol-version-mismatch")
        elif m.flags & c.REQUIRES_WORK_SELECTION:
            error = (c.REQUIRES_WORK_SELECTION, "unsupported-feature-flags")
        elif m.flags & c.REQUIRES_VERSION_ROLLING and self._source_job is not None \
                and not self._source_job.version_mask:
            error = (c.REQUIRES_VERSION_ROLLING, "unsupported-feature-flags")
        if error is not None:
            self._send(c.SetupConnectionError(*error))
            events.append(self._close(f"SetupConnection refused: {error[1]}"))
            return
        self.setup = m
        fixed = self._source_job is not None and not self._source_job.version_mask
        self._send(c.SetupConnectionSuccess(c.PROTOCOL_VERSION, c.REQUIRES_FIXED_VERSION if fixed else 0))

    def _open(self, m: c.OpenExtendedMiningChannel | c.OpenStandardMiningChannel, now: float) -> None:
        standard = isinstance(m, c.OpenStandardMiningChannel)
        layout = self.rules.layout
        job = self._source_job

        def refuse(code: str) -> None:
            self._send(c.OpenMiningChannelError(m.request_id, code))

        if not m.user_identity.strip():
            return refuse("unknown-user")
        if job is None:
            return refuse("no-work-yet")  # not reached: the listener opens after the first job
        if len(self.channels) >= MAX_CHANNELS:
            return refuse("too-many-channels")
        if not standard and m.min_extranonce_size > layout.downstream_size:  # type: ignore[union-attr]
            return refuse("min-extranonce-size-too-large")  # SRI's code, for the same check
        max_target = c.target_from_u256(m.max_target)
        floor = DIFF1_TARGET / max(1, max_target)
        if floor > job.share_difficulty:
            return refuse("max-target-out-of-range")  # the source's shares are easier than it takes
        prefix = self.rules.prefixes.take(now)
        if prefix is None:
            return refuse("server-full")
        rules = self.rules
        start = difficulty_for_rate(m.nominal_hash_rate, rules.shares_per_minute) \
            if m.nominal_hash_rate > 0 else rules.start_difficulty
        vardiff = VarDiff(rules.shares_per_minute, max(rules.min_difficulty, floor), start)
        vardiff.set_maximum(job.share_difficulty, now)
        vardiff.reset(now)
        self._channel_ids += 1
        worker = rules.workers.get(m.user_identity[:MAX_WORKER_NAME])
        worker.connections += 1
        worker.user_agent = self.user_agent
        worker.protocol = PROTOCOL
        ch = Channel(self._channel_ids, standard, worker.name, worker, prefix, vardiff)
        self.channels[ch.channel_id] = ch
        ch.sent_difficulty = vardiff.difficulty
        worker.difficulty = vardiff.difficulty
        target = c.u256_from_target(self._target(vardiff.difficulty))
        prefix_bytes = layout.prefix_bytes(prefix)
        if standard:
            self._send(c.OpenStandardMiningChannelSuccess(m.request_id, ch.channel_id, target,
                                                          prefix_bytes + bytes(layout.downstream_size), 0))
        else:
            self._send(c.OpenExtendedMiningChannelSuccess(m.request_id, ch.channel_id, target,
                                                          layout.downstream_size, prefix_bytes, 0))
        self._send_job(ch, job, now, force_prev=True)

    def _drop_channel(self, ch: Channel, now: float) -> None:
        self.channels.pop(ch.channel_id, None)
        self.rules.prefixes.release(ch.prefix, now)
        ch.worker.connections = max(0, ch.worker.connections - 1)

    def _update(self, m: c.UpdateChannel, now: float) -> None:
        ch = self.channels.get(m.channel_id)
        if ch is None:
            self._send(c.UpdateChannelError(m.channel_id, "invalid-channel-id"))
            return
        floor = DIFF1_TARGET / max(1, c.target_from_u256(m.maximum_target))
        vd = ch.vardiff
        if vd.maximum is not None and floor > vd.maximum:
            self._send(c.UpdateChannelError(m.channel_id, "max-target-out-of-range"))
            return
        vd.minimum = max(self.rules.min_difficulty, floor)
        wanted = difficulty_for_rate(m.nominal_hash_rate, vd.shares_per_minute) if m.nominal_hash_rate > 0 \
            else vd.difficulty
        vd.difficulty = vd.clamp(wanted)
        vd.reset(now)
        self._set_target(ch, always=True)  # SRI answers every UpdateChannel with a SetTarget

    # -------------------------------------------------------------------- jobs and targets
    def _maximum(self, ch: Channel, job: Job, now: float) -> None:
        if ch.vardiff.maximum != job.share_difficulty and ch.vardiff.set_maximum(job.share_difficulty, now):
            self._set_target(ch)

    def _send_job(self, ch: Channel, job: Job, now: float, force_prev: bool = False) -> None:
        self._job_ids = (self._job_ids + 1) & 0xFFFFFFFF
        job_id = self._job_ids
        new_prev = force_prev or job.clean or ch.last_prev != (job.prevhash, job.nbits)
        if new_prev:  # §5.3.17: SetNewPrevHash ends every other job of the channel
            for old in ch.jobs:
                ch.stale[old] = None
            ch.jobs.clear()
            ch.seen = set()
            while len(ch.stale) > MAX_STALE_IDS:
                ch.stale.popitem(last=False)
        sent = _Sent(job, ch.vardiff.difficulty)
        ch.jobs[job_id] = sent
        while len(ch.jobs) > MAX_JOBS:
            old, _ = ch.jobs.popitem(last=False)
            ch.stale[old] = None
        min_ntime = None if new_prev else job.ntime
        layout = self.rules.layout
        if ch.standard:
            sent.job = layout.cut(job, ch.prefix)
            sent.work = sent.job.make_work(0, bytes(layout.downstream_size))
            self._send(c.NewMiningJob(ch.channel_id, job_id, min_ntime, job.version, sent.work.merkle_root))
        else:
            frame = extended_job_frame(ch.channel_id, job_id, job, min_ntime, layout.padding(job))
            if protocol_log.isEnabledFor(logging.INFO):  # --protocol-log
                protocol_log.info("%s > %r", self.peer, c.decode_frame(frame))
            assert self._transport is not None
            self._out.append(self._transport.encrypt_frame(frame))
        if new_prev:
            ch.last_prev = (job.prevhash, job.nbits)
            self._send(c.SetNewPrevHash(ch.channel_id, job_id, job.prevhash, job.ntime, job.nbits))

    def _target(self, difficulty: float) -> int:
        target = self._targets.get(difficulty)
        if target is None:
            if len(self._targets) > 8:
                self._targets.clear()
            target = self._targets[difficulty] = difficulty_to_target(difficulty)
        return target

    def _set_target(self, ch: Channel, always: bool = False) -> None:
        difficulty = ch.vardiff.difficulty
        if always or ch.sent_difficulty != difficulty:
            ch.sent_difficulty = difficulty
            ch.worker.difficulty = difficulty
            self._send(c.SetTarget(ch.channel_id, c.u256_from_target(self._target(difficulty))))

    # -------------------------------------------------------------------- shares
    def _submit(self, m: c.SubmitSharesExtended | c.SubmitSharesStandard, now: float, events: list[Event]) -> None:
        ch = self.channels.get(m.channel_id)

        def reject(code: str, why: str) -> None:
            self._send(c.SubmitSharesError(m.channel_id, m.sequence_number, code))
            if ch is not None:
                ch.worker.note_rejected(why)
            events.append(ShareRejected(ch.worker if ch is not None else None, why))

        if ch is None:
            self._bad_input("a share for an unknown channel", events)
            return reject("invalid-channel-id", "Invalid channel")
        standard = isinstance(m, c.SubmitSharesStandard)
        if standard != ch.standard:
            return reject("invalid-channel-id", "Wrong submit for the channel type")
        sent = ch.jobs.get(m.job_id)
        if sent is None:
            return reject("stale-share", "Stale") if m.job_id in ch.stale else reject("invalid-job-id", "Job not found")
        layout = self.rules.layout
        extranonce = bytes(layout.downstream_size) if standard else m.extranonce  # type: ignore[union-attr]
        if len(extranonce) != layout.downstream_size:
            return reject("invalid-share", "Invalid extranonce size")
        source_job = sent.source_job
        if not source_job.ntime <= m.ntime <= source_job.ntime + NTIME_AHEAD:
            return reject("invalid-share", "Ntime out of range")
        if (m.version ^ source_job.version) & ~source_job.version_mask & 0xFFFFFFFF:
            return reject("invalid-share", "Invalid version mask")
        if sent.job is None:
            sent.job = layout.cut(source_job, ch.prefix)
        difficulty = min(sent.difficulty, ch.vardiff.difficulty)
        work = sent.work if sent.work is not None else sent.job.make_work(0, extranonce, m.version)
        nonce = Nonce(0, m.nonce, m.version, m.ntime, device=ch.worker.name, found_at=now)
        share = check_nonce(work, nonce, device_target=self._target(difficulty))
        if share.verdict is Verdict.HW_ERROR:
            return reject("difficulty-too-low", "Low difficulty share")
        if share.digest in ch.seen:
            return reject("duplicate-share", "Duplicate share")
        if len(ch.seen) >= MAX_SEEN:
            ch.seen.clear()
        ch.seen.add(share.digest)
        self._bad = 0
        if not ch.pending:
            ch.pending_since = now
        ch.pending.append(m.sequence_number)
        ch.pending_sum += difficulty
        if len(ch.pending) >= self.batch_size:
            self._flush(ch)
        forward = None
        if share.verdict in (Verdict.SHARE, Verdict.BLOCK):
            extranonce2 = layout.upstream_extranonce2(source_job, layout.prefix_bytes(ch.prefix), work.extranonce2)
            upstream_work = source_job.work_from_root(0, extranonce2, work.merkle_root, m.version)
            forward = CheckedNonce(upstream_work, nonce, share.header, share.digest, share.verdict)
        ch.worker.note_accepted(difficulty, share.difficulty, now)
        events.append(ShareAccepted(ch.worker, difficulty, share, forward))
        if ch.vardiff.on_share(now) is not None:
            self._set_target(ch)

    def _flush(self, ch: Channel) -> None:
        """§5.3.13 SubmitShares.Success for every share accepted since the last one (a batch);
        new_shares_sum is the sum of their difficulties, whole (a U64, as SRI's share_work_sum)."""
        if not ch.pending:
            return
        self._send(c.SubmitSharesSuccess(ch.channel_id, ch.pending[-1], len(ch.pending),
                                         min(int(ch.pending_sum), 2**64 - 1)))
        self.batches += 1
        ch.pending, ch.pending_sum = [], 0.0

