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

Right after SetupConnection.Success the session negotiates extensions (extension 0x0001): it asks
for none, and opens its channels on the answer, or after EXTENSIONS_WAIT s without one (a server
that does not know the extension ignores the message; docs/sv2.md §9).

Standard channels (docs/sv2.md §8): a pool that refuses the extended channel as unsupported gets,
from the next connection on, SetupConnection with REQUIRES_STANDARD_JOBS and one standard channel
per local device (`set_devices`); each channel's NewMiningJob (a fixed merkle root) becomes a `Job`
for that device alone (`Job.device`), so no two devices hash the same header. A device that goes
gets CloseChannel; one that comes gets a channel of its own.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
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
EXTENSIONS_WAIT = 2.0  # s for a RequestExtensions answer before going on without (docs/sv2.md §9)
REQUESTED_EXTENSIONS: tuple[int, ...] = ()  # the extensions we would use: none yet


# what a standard channel is told on its own (SubmitShares answers are matched by sequence number)
STANDARD_CHANNEL_MESSAGES = (c.NewMiningJob, c.SetNewPrevHash, c.SetTarget, c.CloseChannel)
StandardChannelMessage = c.NewMiningJob | c.SetNewPrevHash | c.SetTarget | c.CloseChannel


def refuses_extended(error_code: str) -> bool:
    """OpenMiningChannel.Error codes that mean "no extended channels here, only standard ones".

    The spec names no code for it (05-Mining-Protocol.md §5.3.4 lists 'unknown-user' and
    'max-target-out-of-range'); pools word it 'unsupported-...' [decision, docs/sv2.md §8]."""
    code = error_code.lower()
    return code.startswith("unsupported") or "extended" in code or "standard" in code


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


@dataclass
class StandardChannel:
    """One local device's standard channel (05-Mining-Protocol.md §5.3.2): its own jobs and target."""

    device: str
    request_id: int
    channel_id: int = 0  # 0 until OpenStandardMiningChannel.Success
    target: int = 0
    extranonce_prefix: bytes = b""
    pending: OrderedDict[int, c.NewMiningJob] = field(default_factory=OrderedDict)  # future jobs by id
    prev: c.SetNewPrevHash | None = None
    live: OrderedDict[str, Job] = field(default_factory=OrderedDict)  # jobs shares may be sent for
    current: Job | None = None
    accepted: int = 0  # shares the pool's SubmitShares.Success counted on this channel
    accepted_work: float = 0.0  # sum of accepted difficulty since it opened, for UpdateChannel
    opened_at: float = 0.0
    last_update: float = 0.0
    reported_rate: float = 0.0

    @property
    def open(self) -> bool:
        return self.channel_id != 0


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
        # Standard channels (docs/sv2.md §8): learnt from the pool's refusal of an extended channel
        self.standard_only = False
        self.devices: tuple[str, ...] = ()  # the local devices that mine: one standard channel each
        self.standard: dict[str, StandardChannel] = {}  # by device name
        self.extensions: tuple[int, ...] = ()  # what RequestExtensions.Success said the pool supports
        self._extensions_until: float | None = None  # waiting for the answer to RequestExtensions
        self._channels_asked = False
        self._initiator: NoiseInitiator | None = None
        self._transport: NoiseTransport | None = None
        self._handshake = bytearray()
        self._out: list[bytes] = []
        self._connected = False
        self._ended = False
        self._alive = False
        self._pending: OrderedDict[int, c.NewExtendedMiningJob] = OrderedDict()  # future jobs by id
        self._prev: c.SetNewPrevHash | None = None
        # by (channel id, sequence number): a sequence number is per channel (§5.3.11)
        self._submitted: OrderedDict[tuple[int, int], _Submitted] = OrderedDict()
        self._sequence = 0
        self._sequences: dict[int, int] = {}  # standard channels' last sequence numbers
        self._extensions_request = 0
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
        """A channel is open: shares can be sent."""
        if self._transport is None:
            return False
        return self.channel is not None or any(ch.open for ch in self.standard.values())

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
        self.standard.clear()
        self._extensions_until = None
        self._channels_asked = False
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
        self.standard.clear()
        for entry in self._submitted.values():
            self._sent_keys.pop(sent_key(entry.share), None)
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
                # §5.3.1 flags: REQUIRES_STANDARD_JOBS once the pool said it has only standard channels,
                # so SRI's pool sends each channel its own NewMiningJob and no group channel (§8)
                flags = c.REQUIRES_STANDARD_JOBS if self.standard_only else 0
                self._send(c.SetupConnection(
                    c.MINING_PROTOCOL, c.PROTOCOL_VERSION, c.PROTOCOL_VERSION, flags, self.target[0],
                    self.target[1], self.user_agent.split("/")[0], "", self.user_agent, ""))
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

    def tick(self, now: float) -> list[SessionEvent]:
        """Time passed with nothing from the pool: a RequestExtensions that was never answered."""
        out: list[SessionEvent] = []
        if self._extensions_until is not None and now >= self._extensions_until and self.connected:
            log.info("%s: no answer to RequestExtensions in %g s; going on without extensions", self.name,
                     EXTENSIONS_WAIT)
            self._extensions_until = None
            self._open_channels(now)
        return out

    def set_devices(self, devices: tuple[str, ...] | list[str], now: float) -> list[SessionEvent]:
        """The local devices that mine now (hot-plug, unplug, disable): in standard mode each one
        has its own channel, opened when it comes and closed (CloseChannel) when it goes."""
        devices = tuple(devices)
        if devices == self.devices:
            return []
        self.devices = devices
        if not (self.standard_only and self._channels_asked and self._transport is not None and self.connected):
            return []
        for name in list(self.standard):
            if name not in devices:
                ch = self.standard.pop(name)
                if ch.open:
                    log.info("%s: %s is gone; closing its standard channel %d", self.name, name, ch.channel_id)
                    self._send(c.CloseChannel(ch.channel_id, "device-removed"))
                self.live_jobs = OrderedDict((k, v) for k, v in self.live_jobs.items() if v.device != name)
        for name in devices:
            if name not in self.standard:
                self._open_standard(name)
        return []

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
        if self.standard_only and isinstance(message, STANDARD_CHANNEL_MESSAGES) \
                and self._handle_standard(message, now, out):
            return
        match message:
            case c.SetupConnectionSuccess(flags=flags):
                self.server_flags = flags
                # extensions/0x0001 §4.2: RequestExtensions right after SetupConnection.Success, and the
                # answer before any other message; a server that does not know it ignores it (§4.3)
                self._request_id += 1
                self._extensions_request = self._request_id & 0xFFFF
                self._extensions_until = now + EXTENSIONS_WAIT
                # the channel's own reply time starts when the wait for the extensions' answer ends
                self._handshake_deadline = max(self._handshake_deadline, self._extensions_until + self.timeouts.reply)
                self._send(c.RequestExtensions(self._extensions_request, REQUESTED_EXTENSIONS))
            case c.RequestExtensionsSuccess(request_id=rid, supported_extensions=supported) \
                    if self._extensions_until is not None and rid == self._extensions_request:
                self.extensions = tuple(e for e in supported if e in REQUESTED_EXTENSIONS)
                log.info("%s: extensions negotiated: %s", self.name, _extension_list(self.extensions))
                self._extensions_until = None
                self._open_channels(now)
            case c.RequestExtensionsError(request_id=rid, unsupported_extensions=unsupported,
                                          required_extensions=required) \
                    if self._extensions_until is not None and rid == self._extensions_request:
                self.extensions = ()
                log.info("%s: the pool supports none of the extensions asked for (unsupported: %s%s); going on "
                         "without them", self.name, _extension_list(unsupported),
                         f"; it requires {_extension_list(required)}, which this miner does not speak"
                         if required else "")
                self._extensions_until = None
                self._open_channels(now)
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
            case c.OpenStandardMiningChannelSuccess() as m:
                ch = next((ch for ch in self.standard.values() if ch.request_id == m.request_id and not ch.open), None)
                if ch is None:
                    return  # a device that went meanwhile: SRI's pool keeps the channel until we close it
                ch.channel_id, ch.target, ch.extranonce_prefix = m.channel_id, c.target_from_u256(m.target), \
                    m.extranonce_prefix
                ch.opened_at = ch.last_update = now
                self.difficulty = Fraction(DIFF1_TARGET, max(1, ch.target))
                log.info("%s: standard channel %d open for %s: difficulty %s", self.name, m.channel_id, ch.device,
                         f"{float(self.difficulty):g}")
            case c.OpenMiningChannelError(request_id=rid, error_code=code) \
                    if any(ch.request_id == rid for ch in self.standard.values()):
                device = next(name for name, ch in self.standard.items() if ch.request_id == rid)
                del self.standard[device]
                log.warning("%s: the pool refused a standard channel for %s: %s", self.name, device, shown(code))
                if not self.standard:
                    self._end(SessionFailed(f"the pool refused every standard channel: {shown(code)} "
                                            "(check the user name)"), out)
            case c.OpenMiningChannelError(error_code=code) if not self.standard_only and refuses_extended(code):
                # docs/sv2.md §8: reconnect at once, asking for standard jobs, one channel per device
                log.info("%s: the pool offers no extended channel (%s); reconnecting for one standard channel per "
                         "device", self.name, shown(code))
                self.standard_only = True
                self._end(Redirected(self.target[0], self.target[1], 0.0), out)
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
                entry = self._submitted.pop((m.channel_id, m.sequence_number), None)
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

    # -------------------------------------------------------------------- channels
    def _open_channels(self, now: float) -> None:
        """After the extensions' answer (or its wait): one extended channel for the host, or, with a
        pool that has only standard ones, one standard channel per local device (docs/sv2.md §8)."""
        self._channels_asked = True
        if not self.standard_only:
            self._request_id += 1
            self._send(c.OpenExtendedMiningChannel(self._request_id, self.config.user, 0.0, MAX_TARGET,
                                                   MIN_EXTRANONCE_SIZE))
            return
        if not self.devices:
            log.warning("%s: the pool has only standard channels (one per device) and no local device mines; "
                        "waiting for one", self.name)
        for device in self.devices:
            self._open_standard(device)

    def _open_standard(self, device: str) -> None:
        """§5.3.2 OpenStandardMiningChannel for one device, under a request id of its own."""
        self._request_id += 1
        self.standard[device] = StandardChannel(device, self._request_id)
        self._send(c.OpenStandardMiningChannel(self._request_id, self.config.user, 0.0, MAX_TARGET))

    def _standard_for(self, channel_id: int) -> StandardChannel | None:
        return next((ch for ch in self.standard.values() if ch.open and ch.channel_id == channel_id), None)

    def _handle_standard(self, message: StandardChannelMessage, now: float, out: list[SessionEvent]) -> bool:
        """A message for one of our standard channels; False: not one (the extended channel's rules apply)."""
        ch = self._standard_for(message.channel_id)
        if ch is None:
            return False
        match message:
            case c.NewMiningJob() as m:
                self._last_job = now
                ch.pending[m.job_id] = m
                while len(ch.pending) > MAX_PENDING_JOBS:
                    ch.pending.popitem(last=False)
                if m.min_ntime is not None and ch.prev is not None:  # §5.3.15: mined at once on the last prev_hash
                    self._publish(self._standard_job(ch, m, ch.prev, clean=False), out)
            case c.SetNewPrevHash() as m:
                self._last_job = now
                ch.prev = m
                job_message = ch.pending.get(m.job_id)
                ch.pending = OrderedDict((k, v) for k, v in ch.pending.items() if k == m.job_id)  # §5.3.17
                ch.live.clear()
                self.live_jobs = OrderedDict((k, v) for k, v in self.live_jobs.items() if v.device != ch.device)
                if job_message is None:
                    log.warning("%s: SetNewPrevHash for job %d of %s's channel, which never came; waiting", self.name,
                                m.job_id, ch.device)
                    return True
                self._publish(self._standard_job(ch, job_message, m, clean=True), out)
            case c.SetTarget(maximum_target=raw):
                ch.target = c.target_from_u256(raw)
                self.difficulty = Fraction(DIFF1_TARGET, max(1, ch.target))  # the API shows the last one set
                if ch.current is not None:
                    self._publish(replace(ch.current, share_target=ch.target, clean=False), out)
            case c.CloseChannel(reason_code=reason):
                log.warning("%s: the pool closed %s's standard channel %d: %s", self.name, ch.device, ch.channel_id,
                            shown(reason))
                del self.standard[ch.device]
                self.live_jobs = OrderedDict((k, v) for k, v in self.live_jobs.items() if v.device != ch.device)
        return True

    def _standard_job(self, ch: StandardChannel, m: c.NewMiningJob, prev: c.SetNewPrevHash, clean: bool) -> Job:
        """A NewMiningJob as a `Job` for ch's device alone: the pool's merkle root, no coinbase (§5.3.15).
        Version rolling: BIP320's bits, unless the pool said REQUIRES_FIXED_VERSION (§5.3.1)."""
        rolling = self.config.version_rolling and not self.server_flags & c.REQUIRES_FIXED_VERSION
        return Job(job_id=str(m.job_id), prevhash=prev.prev_hash, coinb1=b"", coinb2=b"", merkle_branch=(),
                   version=m.version, nbits=prev.nbits, ntime=max(prev.min_ntime, m.min_ntime or 0), clean=clean,
                   extranonce2_size=0, share_target=ch.target,
                   version_mask=BIP320_MASK & ~m.version & 0xFFFFFFFF if rolling else 0, source=self.name,
                   fixed_merkle_root=m.merkle_root, device=ch.device)

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
        if job.device:  # a standard channel's: its job ids are its own, so the key names the device
            ch = self.standard[job.device]
            ch.live[job.job_id] = job
            ch.live.move_to_end(job.job_id)
            while len(ch.live) > MAX_LIVE_JOBS:
                ch.live.popitem(last=False)
            ch.current = job
        key = f"{job.device}:{job.job_id}" if job.device else job.job_id
        self.live_jobs[key] = job
        self.live_jobs.move_to_end(key)
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
        if job.device:
            ch = self.standard.get(job.device)
            live = ch.live.get(job.job_id) if ch is not None else None
            if live is None or replace(live, share_target=job.share_target) != job:
                return False
            return not (share.version ^ job.version) & ~job.version_mask & 0xFFFFFFFF
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
        target = self.standard[job.device].target if job.device else \
            self.channel.target if self.channel is not None else None
        if target is not None and hash_to_int(share.digest) > target:
            out.append(ShareTooEasy(share))
            return
        key = sent_key(share)
        if key in self._sent_keys:
            out.append(ShareDuplicate(share))
            return
        if not self.ready or not self.connected:
            if len(self.held) >= MAX_HELD_SHARES:
                out.append(ShareStale(self.held.pop(0)))
            self.held.append(share)
            out.append(ShareHeld(share))
            return
        if len(self._sent_keys) >= 100_000:
            del self._sent_keys[next(iter(self._sent_keys))]
        if job.device:
            ch = self.standard[job.device]
            sequence = self._sequences[ch.channel_id] = (self._sequences.get(ch.channel_id, 0) + 1) & 0xFFFFFFFF
            self._send(c.SubmitSharesStandard(ch.channel_id, sequence, int(job.job_id), share.nonce.nonce, share.ntime,
                                              share.version))
            self._submitted[(ch.channel_id, sequence)] = _Submitted(share, now)
            self._sent_keys[key] = None
            out.append(ShareSent(share, sequence))
            return
        assert self.channel is not None
        self._sequence = (self._sequence + 1) & 0xFFFFFFFF
        self._send(c.SubmitSharesExtended(self.channel.channel_id, self._sequence, int(job.job_id),
                                          share.nonce.nonce, share.ntime, share.version, share.work.extranonce2))
        self._submitted[(self.channel.channel_id, self._sequence)] = _Submitted(share, now)
        self._sent_keys[key] = None
        out.append(ShareSent(share, self._sequence))

    def _successes(self, m: c.SubmitSharesSuccess, now: float, out: list[SessionEvent]) -> None:
        """§5.3.13: one Success answers every submit up to last_sequence_number (a batch)."""
        self.batches += 1
        answered = [key for key in self._submitted
                    if key[0] == m.channel_id and _seq_le(key[1], m.last_sequence_number)]
        if len(answered) != m.new_submits_accepted_count:
            log.warning("%s: the pool counts %d accepted in this batch, we had %d submits up to #%d", self.name,
                        m.new_submits_accepted_count, len(answered), m.last_sequence_number)
        for ch in self.standard.values():
            if ch.channel_id == m.channel_id:
                ch.accepted += m.new_submits_accepted_count
        for key in answered:
            entry = self._submitted.pop(key)
            self._accepted_work += entry.share.work.job.share_difficulty
            ch = self.standard.get(entry.share.work.job.device) if entry.share.work.job.device else None
            if ch is not None:
                ch.accepted_work += entry.share.work.job.share_difficulty
            out.append(ShareAnswered(entry.share, True, None, None, now - entry.sent_at))

    def _maybe_update_channel(self, now: float) -> None:
        """§5.3.7 UpdateChannel with the rate the accepted shares show (what the pool itself sees);
        for standard channels, each with its own device's rate (docs/sv2.md §8)."""
        for ch in self.standard.values():
            if not ch.open or now - ch.last_update < UPDATE_EVERY or now <= ch.opened_at:
                continue
            rate = ch.accepted_work * 2**32 / (now - ch.opened_at)
            ch.last_update = now
            if rate > 0 and abs(rate - ch.reported_rate) > UPDATE_CHANGE * max(ch.reported_rate, 1.0):
                ch.reported_rate = rate
                self._send(c.UpdateChannel(ch.channel_id, rate, MAX_TARGET))
        if self.channel is None or not self.ready or now - self._last_update < UPDATE_EVERY \
                or now <= self._channel_opened_at:
            return
        assert self.channel is not None
        rate = self._accepted_work * 2**32 / (now - self._channel_opened_at)
        self._last_update = now
        if rate > 0 and abs(rate - self._reported_rate) > UPDATE_CHANGE * max(self._reported_rate, 1.0):
            self._reported_rate = rate
            self._send(c.UpdateChannel(self.channel.channel_id, rate, MAX_TARGET))


def sent_key(share: CheckedNonce) -> tuple:
    """What makes a share a duplicate: Stratum V1's key, and the device, whose standard channel's
    job ids and (empty) extranonce another device's channel may share (docs/sv2.md §8)."""
    return (share.work.job.device, *share_key(share))


def _extension_list(extensions: tuple[int, ...]) -> str:
    return ", ".join(f"0x{e:04x}" for e in extensions) or "none"


def shown(text: str, limit: int = 120) -> str:
    """A pool's string as one safe line for the log and the API: no control characters, bounded."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text)
    return clean if len(clean) <= limit else clean[:limit] + "..."


def _seq_le(a: int, b: int) -> bool:
    """a comes at or before b in the wrapping u32 sequence (a window of half the space)."""
    return (b - a) & 0xFFFFFFFF < 0x80000000
