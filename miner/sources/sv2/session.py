"""One Stratum V2 pool's session as a state machine with no I/O (docs/sv2.md §5), the counterpart of
sources/stratum/session.py: the same inputs (connection made/lost, bytes in, checked shares
offered, always with `now`) and the same `SessionEvent`s out, so the same asyncio shell and the
same failover drive both protocols.

Inside it: the Noise handshake (noise.py), then SetupConnection and one extended channel
(05-Mining-Protocol.md §5.3.4) for the whole host. The dispatcher cuts that channel's extranonce
space into work for every local device: the pool's `extranonce_prefix` is the Job's extranonce1,
the `extranonce_size` bytes after it are the Job's extranonce2, `coinbase_tx_prefix`/`suffix` are
coinb1/coinb2 (§5.3.16: coinbase = prefix + extranonce_prefix + extranonce + suffix). The rules:
- a NewExtendedMiningJob without min_ntime is a future job, mined once a SetNewPrevHash names it;
  one with min_ntime is mined at once on the last prev_hash (§5.3.16, §5.3.17);
- SetNewPrevHash ends every other job: shares for them are stale, not sent;
- SetTarget applies at once (SRI's pool checks every share against the channel's current target):
  the current job is re-published with the new target, and a share found for the old, easier one
  that misses the new target is not sent (counted stale, as Stratum V1's session does);
  the U256 target is kept exactly, so a fractional difficulty stays what the pool said;
- SetExtranoncePrefix applies to the jobs that come after it (§5.3.10);
- version rolling only where the job allows it and SetupConnection.Success did not say
  REQUIRES_FIXED_VERSION, within BIP320's general-purpose bits;
- SubmitShares.Success answers every submit up to its last_sequence_number at once (a batch);
  SubmitShares.Error answers one;
- Reconnect goes to the new host and port; the authority key stays the URL's, so a redirect can
  only reach a server that the same authority certified (§4.7);
- while the channel is not open, shares are held (at most MAX_HELD_SHARES); submits never answered
  are held again when the connection is lost, as in Stratum V1;
- UpdateChannel tells the pool the rate our accepted shares show, at most once a minute and only
  when it moved by a quarter (§5.3.7; the pool may retarget on it).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction

from miner import USER_AGENT
from miner.core.lograte import LogLimiter
from miner.core.shares import CheckedNonce
from miner.core.targets import DIFF1_TARGET, hash_to_int
from miner.core.work import Job
from miner.sources.stratum.session import (
    MAX_HELD_SHARES,
    MAX_LIVE_JOBS,
    PoolAlive,
    PublishJob,
    Redirected,
    SessionEvent,
    SessionFailed,
    ShareAnswered,
    ShareDuplicate,
    ShareHeld,
    ShareSent,
    ShareStale,
    ShareTooEasy,
    share_key,
)
from miner.sources.stratum.url import PoolConfig, Timeouts, parse_pool_url
from miner.sources.sv2 import codec as c
from miner.sources.sv2.noise import ACT2_SIZE, NoiseError, NoiseInitiator, NoiseTransport

log = logging.getLogger(__name__)
protocol_log = logging.getLogger("miner.protocol")

BIP320_MASK = 0x1FFFE000  # the general-purpose version bits (BIP320) a job with version rolling allows
MIN_EXTRANONCE_SIZE = 4  # asked for: 2^32 work units per job for the dispatcher to hand out
MAX_TARGET = b"\xff" * 32  # the easiest target we can take: any (the CPU and USB devices check their own)
MAX_PENDING_JOBS = 16  # future jobs kept until a SetNewPrevHash names one
UPDATE_EVERY = 60.0
UPDATE_CHANGE = 0.25


@dataclass
class _Submitted:
    share: CheckedNonce
    sent_at: float


@dataclass
class Channel:
    channel_id: int
    target: int
    extranonce_prefix: bytes
    extranonce_size: int


class Sv2Session:
    """The session the shell drives; its public face matches `StratumSession`'s."""

    protocol = "stratum2"

    def __init__(self, config: PoolConfig, name: str, timeouts: Timeouts | None = None,
                 user_agent: str = USER_AGENT, wall_clock: Callable[[], float] = time.time,
                 initiator_factory: Callable[[bytes], NoiseInitiator] = NoiseInitiator):
        self.config = config
        self.name = name
        self.url = parse_pool_url(config.url)
        if self.url.authority_key is None:
            raise ValueError(f"{config.url}: not a stratum2+tcp:// URL")
        self.authority_key = self.url.authority_key
        self.target = (self.url.host, self.url.port)  # changes on Reconnect
        self.timeouts = timeouts or Timeouts()
        self.user_agent = user_agent
        self.wall_clock = wall_clock  # the certificate's validity window is in wall-clock seconds
        self.initiator_factory = initiator_factory  # tests fix the ephemeral key to replay a handshake
        self.difficulty = Fraction(1)
        self.version_mask = 0
        self.live_jobs: OrderedDict[str, Job] = OrderedDict()
        self.current_job: Job | None = None
        self.held: list[CheckedNonce] = []
        self.connections = 0
        self.channel: Channel | None = None
        self.server_flags = 0
        self.certificate_expires: int | None = None
        self.batches = 0  # SubmitShares.Success messages taken
        self._initiator: NoiseInitiator | None = None
        self._transport: NoiseTransport | None = None
        self._handshake = bytearray()
        self._out: list[bytes] = []
        self._connected = False
        self._ended = False
        self._alive = False
        self._pending: OrderedDict[int, c.NewExtendedMiningJob] = OrderedDict()  # future jobs by id
        self._prev: c.SetNewPrevHash | None = None
        self._submitted: OrderedDict[int, _Submitted] = OrderedDict()  # by sequence number
        self._sequence = 0
        self._sent_keys: dict[tuple, None] = {}
        self._request_id = 0
        self._handshake_deadline = 0.0
        self._last_data = 0.0
        self._last_job = 0.0
        self._accepted_work = 0.0  # sum of accepted difficulty since the channel opened
        self._channel_opened_at = 0.0
        self._last_update = 0.0
        self._reported_rate = 0.0
        self._log_limit = LogLimiter(log)

    # -------------------------------------------------------------------- state
    @property
    def connected(self) -> bool:
        return self._connected and not self._ended

    @property
    def ready(self) -> bool:
        """The channel is open: shares can be sent."""
        return self.channel is not None and self._transport is not None

    @property
    def unanswered(self) -> int:
        return len(self._submitted)

    def deadline(self) -> tuple[float, str]:
        t = self.timeouts
        candidates = []
        if not self.ready:
            candidates.append((self._handshake_deadline, f"no Stratum V2 handshake and channel within {t.reply:g} s"))
        # No clock on unanswered submits, unlike Stratum V1: SRI's pool answers shares in batches of
        # `share_batch_size` (10 by default), so a slow device's submits wait minutes for their answer.
        candidates.append((self._last_data + t.silence, f"nothing from the pool for {t.silence:g} s"))
        candidates.append((self._last_job + t.work, f"no new work for {t.work:g} s"))
        return min(candidates, key=lambda x: x[0])

    # -------------------------------------------------------------------- inputs
    def connection_made(self, now: float) -> None:
        self.connections += 1
        self._connected = True
        self._ended = False
        self._alive = False
        self._transport = None
        self._handshake = bytearray()
        self.channel = None
        self.version_mask = 0
        self._pending.clear()
        self._prev = None
        self._initiator = self.initiator_factory(self.authority_key)
        self._out = [self._initiator.act1()]  # §4.5.1: 64 bytes in the clear
        self._handshake_deadline = now + self.timeouts.reply
        self._last_data = self._last_job = now

    def connection_lost(self) -> None:
        self._connected = False
        self._transport = None
        self.channel = None
        for entry in self._submitted.values():
            self._sent_keys.pop(share_key(entry.share), None)
            self.held.append(entry.share)
        self._submitted.clear()

    def receive_data(self, data: bytes, now: float) -> list[SessionEvent]:
        if not self.connected:
            return []
        self._last_data = now
        out: list[SessionEvent] = []
        try:
            if self._transport is None:
                self._handshake += data
                if len(self._handshake) < ACT2_SIZE:
                    return out
                assert self._initiator is not None
                reply, data = bytes(self._handshake[:ACT2_SIZE]), bytes(self._handshake[ACT2_SIZE:])
                self._transport = self._initiator.act2(reply, self.wall_clock())
                cert = self._initiator.certificate
                self.certificate_expires = cert.not_valid_after if cert is not None else None
                until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.certificate_expires or 0))
                log.info("%s: Noise handshake done; the pool's certificate is valid until %s", self.name, until)
                self._send(c.SetupConnection(
                    c.MINING_PROTOCOL, c.PROTOCOL_VERSION, c.PROTOCOL_VERSION, 0, self.target[0], self.target[1],
                    self.user_agent.split("/")[0], "", self.user_agent, ""))
            for frame in self._transport.receive_data(data):
                self._handle(c.decode_frame(frame), now, out)
                if self._ended:
                    return out
        except NoiseError as exc:
            self._end(SessionFailed(str(exc)), out)
        except c.CodecError as exc:
            self._end(SessionFailed(f"the pool sent a malformed Stratum V2 message: {exc}"), out)
        return out

    def offer(self, share: CheckedNonce, now: float) -> list[SessionEvent]:
        out: list[SessionEvent] = []
        self._offer(share, now, out)
        self._maybe_update_channel(now)
        return out

    # -------------------------------------------------------------------- outputs
    def data_to_send(self) -> bytes:
        data, self._out = b"".join(self._out), []
        return data

    # -------------------------------------------------------------------- rules
    def _send(self, message: c.Message) -> None:
        assert self._transport is not None
        protocol_log.info("%s > %r", self.name, message)
        self._out.append(self._transport.encrypt_frame(c.encode_frame(message)))

    def _end(self, event: SessionEvent, out: list[SessionEvent]) -> None:
        self._ended = True
        out.append(event)

    def _handle(self, message: c.Message | c.UnknownMessage, now: float, out: list[SessionEvent]) -> None:
        protocol_log.info("%s < %r", self.name, message)
        match message:
            case c.SetupConnectionSuccess(flags=flags):
                self.server_flags = flags
                self._request_id += 1
                self._send(c.OpenExtendedMiningChannel(self._request_id, self.config.user, 0.0, MAX_TARGET,
                                                       MIN_EXTRANONCE_SIZE))
            case c.SetupConnectionError(error_code=code):
                self._end(SessionFailed(f"the pool refused the connection: {shown(code)}"), out)
            case c.OpenExtendedMiningChannelSuccess() as m:
                if m.extranonce_size < 1:
                    self._end(SessionFailed("the pool's channel leaves no extranonce bytes to split between "
                                            "devices"), out)
                    return
                self.channel = Channel(m.channel_id, c.target_from_u256(m.target), m.extranonce_prefix,
                                       m.extranonce_size)
                self._set_difficulty()
                self._channel_opened_at = self._last_update = now
                self._accepted_work = 0.0
                log.info("%s: extended channel %d open: difficulty %s, extranonce %d+%d bytes", self.name,
                         m.channel_id, f"{float(self.difficulty):g}", len(m.extranonce_prefix), m.extranonce_size)
            case c.OpenMiningChannelError(error_code=code):
                self._end(SessionFailed(f"the pool refused the mining channel: {shown(code)} "
                                        "(check the user name)"), out)
            case c.NewExtendedMiningJob() as m:
                self._new_job(m, now, out)
            case c.SetNewPrevHash() as m:
                self._new_prev_hash(m, now, out)
            case c.SetTarget(maximum_target=raw) if self.channel is not None:
                self.channel.target = c.target_from_u256(raw)
                self._set_difficulty()
                if self.current_job is not None:
                    self._publish(replace(self.current_job, share_target=self.channel.target, clean=False), out)
            case c.SetExtranoncePrefix(extranonce_prefix=prefix) if self.channel is not None:
                self.channel.extranonce_prefix = prefix
            case c.SubmitSharesSuccess() as m:
                self._successes(m, now, out)
            case c.SubmitSharesError() as m:
                entry = self._submitted.pop(m.sequence_number, None)
                if entry is not None:
                    reason = shown(m.error_code) or "rejected"
                    log.warning("%s: rejected %08x: %s", self.name, entry.share.nonce.nonce, reason)
                    out.append(ShareAnswered(entry.share, False, reason, None, now - entry.sent_at))
            case c.Reconnect(new_host=host, new_port=port):
                new = (shown(host, 253) or self.target[0], port or self.target[1])
                log.warning("%s: pool asks to reconnect to %s:%d (the same authority key is required there)",
                            self.name, *new)
                self.target = new
                self._end(Redirected(new[0], new[1], 0.0), out)
            case c.CloseChannel(reason_code=reason):
                self._end(SessionFailed(f"the pool closed the channel: {shown(reason)}"), out)
            case c.NewMiningJob():
                log.warning("%s: a standard job on our extended channel; ignored", self.name)
            case _:
                pass  # UpdateChannel.Error, SetGroupChannel, extensions: nothing to act on

    def _set_difficulty(self) -> None:
        assert self.channel is not None
        self.difficulty = Fraction(DIFF1_TARGET, max(1, self.channel.target))

    def _job_from(self, m: c.NewExtendedMiningJob, prev: c.SetNewPrevHash, clean: bool) -> Job:
        assert self.channel is not None
        rolling = m.version_rolling_allowed and self.config.version_rolling and \
            not self.server_flags & c.REQUIRES_FIXED_VERSION
        ntime = max(prev.min_ntime, m.min_ntime or 0)
        return Job(job_id=str(m.job_id), prevhash=prev.prev_hash, coinb1=m.coinbase_tx_prefix,
                   coinb2=m.coinbase_tx_suffix, merkle_branch=m.merkle_path, version=m.version, nbits=prev.nbits,
                   ntime=ntime, clean=clean, extranonce1=self.channel.extranonce_prefix,
                   extranonce2_size=self.channel.extranonce_size, share_target=self.channel.target,
                   version_mask=BIP320_MASK & ~m.version & 0xFFFFFFFF if rolling else 0, source=self.name)

    def _new_job(self, m: c.NewExtendedMiningJob, now: float, out: list[SessionEvent]) -> None:
        if self.channel is None or m.channel_id != self.channel.channel_id:
            return
        self._last_job = now
        if m.min_ntime is None:  # a future job: kept for its SetNewPrevHash
            self._pending[m.job_id] = m
            while len(self._pending) > MAX_PENDING_JOBS:
                self._pending.popitem(last=False)
            return
        self._pending[m.job_id] = m
        if self._prev is None:  # kept: the SetNewPrevHash that comes next may name it
            log.info("%s: job %d came before any SetNewPrevHash; waiting for one", self.name, m.job_id)
            return
        self._publish(self._job_from(m, self._prev, clean=False), out)

    def _new_prev_hash(self, m: c.SetNewPrevHash, now: float, out: list[SessionEvent]) -> None:
        if self.channel is None or m.channel_id != self.channel.channel_id:
            return
        self._last_job = now
        self._prev = m
        job_message = self._pending.get(m.job_id)
        # §5.3.17: only the job it names is valid from now on
        self._pending = OrderedDict((k, v) for k, v in self._pending.items() if k == m.job_id)
        self.live_jobs.clear()
        if job_message is None:
            log.warning("%s: SetNewPrevHash for job %d, which never came; waiting for work", self.name, m.job_id)
            return
        self._publish(self._job_from(job_message, m, clean=True), out)

    def _publish(self, job: Job, out: list[SessionEvent]) -> None:
        self.live_jobs[job.job_id] = job
        self.live_jobs.move_to_end(job.job_id)
        while len(self.live_jobs) > MAX_LIVE_JOBS:
            self.live_jobs.popitem(last=False)
        self.current_job = job
        out.append(PublishJob(job))
        if not self._alive:
            self._alive = True
            out.append(PoolAlive())
            self._send_held(job, out)

    def _send_held(self, job: Job, out: list[SessionEvent]) -> None:
        held, self.held = self.held, []
        for share in held:
            self._offer(share, self._last_data, out)

    def _is_live(self, share: CheckedNonce) -> bool:
        job = share.work.job
        live = self.live_jobs.get(job.job_id)
        if live is None or replace(live, share_target=job.share_target) != job:
            return False
        return not (share.version ^ job.version) & ~job.version_mask & 0xFFFFFFFF

    def _offer(self, share: CheckedNonce, now: float, out: list[SessionEvent]) -> None:
        job = share.work.job
        if not self._is_live(share):
            self._log_limit.log(now, logging.INFO, "stale", "%s: stale share for job %s, not sent", self.name,
                                job.job_id)
            out.append(ShareStale(share))
            return
        if self.channel is not None and hash_to_int(share.digest) > self.channel.target:
            out.append(ShareTooEasy(share))
            return
        key = share_key(share)
        if key in self._sent_keys:
            out.append(ShareDuplicate(share))
            return
        if not self.ready or not self.connected:
            if len(self.held) >= MAX_HELD_SHARES:
                out.append(ShareStale(self.held.pop(0)))
            self.held.append(share)
            out.append(ShareHeld(share))
            return
        assert self.channel is not None
        self._sequence = (self._sequence + 1) & 0xFFFFFFFF
        self._send(c.SubmitSharesExtended(self.channel.channel_id, self._sequence, int(job.job_id),
                                          share.nonce.nonce, share.ntime, share.version, share.work.extranonce2))
        self._submitted[self._sequence] = _Submitted(share, now)
        self._sent_keys[key] = None
        if len(self._sent_keys) > 100_000:
            del self._sent_keys[next(iter(self._sent_keys))]
        out.append(ShareSent(share, self._sequence))

    def _successes(self, m: c.SubmitSharesSuccess, now: float, out: list[SessionEvent]) -> None:
        """§5.3.13: one Success answers every submit up to last_sequence_number (a batch)."""
        self.batches += 1
        answered = [seq for seq in self._submitted if _seq_le(seq, m.last_sequence_number)]
        if len(answered) != m.new_submits_accepted_count:
            log.warning("%s: the pool counts %d accepted in this batch, we had %d submits up to #%d", self.name,
                        m.new_submits_accepted_count, len(answered), m.last_sequence_number)
        for seq in answered:
            entry = self._submitted.pop(seq)
            self._accepted_work += entry.share.work.job.share_difficulty
            out.append(ShareAnswered(entry.share, True, None, None, now - entry.sent_at))

    def _maybe_update_channel(self, now: float) -> None:
        """§5.3.7 UpdateChannel with the rate the accepted shares show (what the pool itself sees)."""
        if not self.ready or now - self._last_update < UPDATE_EVERY or now <= self._channel_opened_at:
            return
        assert self.channel is not None
        rate = self._accepted_work * 2**32 / (now - self._channel_opened_at)
        self._last_update = now
        if rate > 0 and abs(rate - self._reported_rate) > UPDATE_CHANGE * max(self._reported_rate, 1.0):
            self._reported_rate = rate
            self._send(c.UpdateChannel(self.channel.channel_id, rate, MAX_TARGET))


def shown(text: str, limit: int = 120) -> str:
    """A pool's string as one safe line for the log and the API: no control characters, bounded."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text)
    return clean if len(clean) <= limit else clean[:limit] + "..."


def _seq_le(a: int, b: int) -> bool:
    """a comes at or before b in the wrapping u32 sequence (a window of half the space)."""
    return (b - a) & 0xFFFFFFFF < 0x80000000
