"""A Stratum V2 pool for tests, on a real 127.0.0.1 socket, built on the miner's own codec and
`NoiseResponder` (docs/sv2.md §7).

It copies the behaviour of SRI's pool (stratum-mining/stratum, roles/pool: mining_pool and the
channels_sv2 extended channel): after SetupConnection.Success and OpenExtendedMiningChannel it
answers OpenExtendedMiningChannel.Success, then a future NewExtendedMiningJob (min_ntime unset),
then the SetNewPrevHash that activates it (the order SRI's message-generator test for an extended
channel checks); it acknowledges shares in batches of `share_batch_size` with one
SubmitShares.Success (SRI's pool config `share_batch_size`), and refuses bad ones at once with
SubmitShares.Error and SRI's error codes (`invalid-job-id`, `stale-share`, `difficulty-too-low`,
`invalid-channel-id`). Its certificate is issued for `cert_validity_sec` seconds from now (SRI's
`cert_validity_sec`). It validates every share itself: coinbase = prefix + extranonce_prefix +
extranonce + suffix, the merkle root up the path, the header, sha256d against the channel target.

`standard_only=True` is a pool with standard channels only (docs/sv2.md §8): it refuses
OpenExtendedMiningChannel with OpenMiningChannel.Error 'unsupported-extended-channels' and, for
each OpenStandardMiningChannel, does what SRI's standard channel bootstrap does
(stratum-mining/stratum, protocols/v2/channels-sv2 examples, standard channel server: Success with
group_channel_id 0 when SetupConnection said REQUIRES_STANDARD_JOBS, else one group channel for the
connection; then a future NewMiningJob and the SetNewPrevHash that activates it). Later jobs go to
each standard channel as NewMiningJob with REQUIRES_STANDARD_JOBS, else as one NewExtendedMiningJob
to the group channel (SRI's choice). Each channel has its own extranonce_prefix (the whole
extranonce: coinbase = prefix + channel extranonce_prefix + suffix), target, sequence numbers and
batch of successes; ntime must lie in [min_ntime, min_ntime + seconds since SetNewPrevHash]
(05-Mining-Protocol.md §5.3.11). Every accepted header is kept, so a test can see none repeats.

RequestExtensions (extension 0x0001) is answered as extensions/0x0001-extensions-negotiation.md §4
says: Success with the requested ones it supports, Error when none is (or one it requires is
missing); `extensions="ignore"` is a server that does not know the extension (§4.3: it ignores it).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from dataclasses import dataclass, field

from miner.core.targets import DIFF1_TARGET, difficulty_to_target
from miner.core.work import build_header, merkle_root
from miner.sources.sv2 import codec as c
from miner.sources.sv2 import secp
from miner.sources.sv2.noise import ACT1_SIZE, Certificate, NoiseResponder, NoiseTransport, encode_authority_key

COINBASE_PREFIX = bytes.fromhex("01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff"
                                "0c")  # scriptSig of 12 bytes: the 4-byte prefix and the 8-byte extranonce below
COINBASE_SUFFIX = bytes.fromhex("ffffffff0100f2052a010000001976a914" + "22" * 20 + "88ac00000000")
MERKLE_PATH = tuple(hashlib.sha256(bytes([i, 2])).digest() for i in range(3))
NBITS = 0x207FFFFF


def dsha(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


@dataclass
class PoolJob:
    job_id: int
    version: int
    prev_hash: bytes = b""
    ntime: int = 0
    activated: float = field(default_factory=time.time)  # when its SetNewPrevHash went out


@dataclass
class Share:
    message: c.SubmitSharesExtended | c.SubmitSharesStandard
    accepted: bool
    reason: str | None
    session: int


@dataclass
class StdChannel:
    channel_id: int
    extranonce_prefix: bytes
    target: int
    request_id: int
    unacked: list[int] = field(default_factory=list)
    unacked_sum: int = 0
    closed: bool = False


@dataclass
class Client:
    number: int
    writer: asyncio.StreamWriter
    transport: NoiseTransport | None = None
    channel_id: int = 0
    extranonce_prefix: bytes = b""
    extranonce_size: int = 8
    target: int = 0
    setup: c.SetupConnection | None = None
    received: list[c.Message] = field(default_factory=list)
    unacked: list[int] = field(default_factory=list)  # sequence numbers accepted and not yet acknowledged
    unacked_sum: int = 0
    standard: dict[int, StdChannel] = field(default_factory=dict)  # by channel id
    group_channel_id: int = 0


class Sv2TestPool:
    def __init__(self, difficulty: float = 0.001, share_batch_size: int = 10, cert_validity_sec: int = 3600,
                 cert_offset: int = 0, version_rolling: bool = True, extranonce_size: int = 8,
                 standard_only: bool = False, extensions: str = "answer", supported_extensions: tuple[int, ...] = (),
                 required_extensions: tuple[int, ...] = ()):
        self.authority_secret = secp.new_secret()
        self.static_secret = secp.new_secret()
        self.authority_key = secp.xonly_public(self.authority_secret)
        now = int(time.time()) + cert_offset
        self.certificate = Certificate.issue(self.authority_secret, secp.xonly_public(self.static_secret),
                                             now - 60, now + cert_validity_sec)
        self.target = difficulty_to_target(difficulty)
        self.share_batch_size = share_batch_size
        self.version_rolling = version_rolling
        self.extranonce_size = extranonce_size
        self.clients: list[Client] = []
        self.standard_only = standard_only
        self.extensions = extensions  # "answer" (as the spec says) or "ignore" (a server that does not know it)
        self.supported_extensions = supported_extensions
        self.required_extensions = required_extensions
        self.headers: list[bytes] = []  # every accepted share's header
        self.closed_channels: list[int] = []
        self.extended_refusals = 0
        self.shares: list[Share] = []
        self.successes: list[c.SubmitSharesSuccess] = []
        self.jobs: dict[int, PoolJob] = {}
        self.live: set[int] = set()
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._job_ids = itertools.count(1)
        self._channel_ids = itertools.count(1)
        self._prefixes = itertools.count(0x51000001)
        self._height = 1
        self._seen: set[tuple] = set()

    def url(self, authority_key: bytes | None = None) -> str:
        return f"stratum2+tcp://127.0.0.1:{self.port}/{encode_authority_key(authority_key or self.authority_key)}"

    # ---------------------------------------------------------------- server
    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port or self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for client in self.clients:
                client.writer.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def accepted(self) -> int:
        return sum(s.accepted for s in self.shares)

    @property
    def rejected(self) -> int:
        return sum(not s.accepted for s in self.shares)

    @property
    def acknowledged(self) -> int:
        """Shares the SubmitShares.Success messages counted."""
        return sum(m.new_submits_accepted_count for m in self.successes)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = Client(len(self.clients), writer)
        self.clients.append(client)
        try:
            act1 = await reader.readexactly(ACT1_SIZE)
            act2, client.transport = NoiseResponder(self.static_secret, self.certificate).respond(act1)
            writer.write(act2)
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                for frame in client.transport.receive_data(data):
                    self._handle(client, c.decode_frame(frame))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    def _send(self, client: Client, message: c.Message) -> None:
        assert client.transport is not None
        if not client.writer.is_closing():
            client.writer.write(client.transport.encrypt_frame(c.encode_frame(message)))

    def _handle(self, client: Client, message: c.Message | c.UnknownMessage) -> None:
        if isinstance(message, c.Message):
            client.received.append(message)
        match message:
            case c.SetupConnection() as m:
                client.setup = m
                self._send(client, c.SetupConnectionSuccess(m.min_version, 0))
            case c.OpenExtendedMiningChannel() as m if self.standard_only:
                self.extended_refusals += 1
                self._send(client, c.OpenMiningChannelError(m.request_id, "unsupported-extended-channels"))
            case c.OpenExtendedMiningChannel() as m:
                client.channel_id = next(self._channel_ids)
                client.extranonce_prefix = next(self._prefixes).to_bytes(4, "big")
                client.extranonce_size = max(m.min_extranonce_size, self.extranonce_size)
                client.target = self.target
                self._send(client, c.OpenExtendedMiningChannelSuccess(
                    m.request_id, client.channel_id, c.u256_from_target(client.target), client.extranonce_size,
                    client.extranonce_prefix, 0))
                job = self._current_job()
                self._send_job(client, job, future=True)
                self._send(client, c.SetNewPrevHash(client.channel_id, job.job_id, job.prev_hash, job.ntime, NBITS))
            case c.SubmitSharesExtended() as m:
                self._submit(client, m)
            case c.RequestExtensions() as m:
                self._negotiate(client, m)
            case c.OpenStandardMiningChannel() as m:
                self._open_standard(client, m)
            case c.SubmitSharesStandard() as m:
                self._submit_standard(client, m)
            case c.CloseChannel(channel_id=channel_id) if channel_id in client.standard:
                client.standard[channel_id].closed = True
                self.closed_channels.append(channel_id)

    # ---------------------------------------------------------------- jobs
    def _current_job(self) -> PoolJob:
        if not self.live:
            self.new_block(send=False)
        return self.jobs[max(self.live)]

    def _coinbase_prefix(self) -> bytes:
        return COINBASE_PREFIX

    def _send_job(self, client: Client, job: PoolJob, future: bool) -> None:
        self._send(client, c.NewExtendedMiningJob(
            client.channel_id, job.job_id, None if future else job.ntime, job.version, self.version_rolling,
            MERKLE_PATH, self._coinbase_prefix(), COINBASE_SUFFIX))

    def new_block(self, send: bool = True) -> PoolJob:
        """A new prev_hash: a future job, then the SetNewPrevHash that activates it (SRI's order)."""
        self._height += 1
        job = PoolJob(next(self._job_ids), 0x20000000, dsha(b"block %d" % self._height), int(time.time()))
        self.jobs[job.job_id] = job
        self.live = {job.job_id}
        if send:
            for client in self.active():
                self._send_job(client, job, future=True)
                self._send(client, c.SetNewPrevHash(client.channel_id, job.job_id, job.prev_hash, job.ntime, NBITS))
            for client in self.standard_clients():
                self._send_standard(client, job, future=True)
                for ch in client.standard.values():
                    if not ch.closed:
                        self._send(client, c.SetNewPrevHash(ch.channel_id, job.job_id, job.prev_hash, job.ntime,
                                                            NBITS))
        return job

    def new_job(self) -> PoolJob:
        """Another job on the same prev_hash, active at once (min_ntime set)."""
        current = self._current_job()
        job = PoolJob(next(self._job_ids), 0x20000000, current.prev_hash, current.ntime, current.activated)
        self.jobs[job.job_id] = job
        self.live.add(job.job_id)
        for client in self.active():
            self._send_job(client, job, future=False)
        for client in self.standard_clients():
            self._send_standard(client, job, future=False)
        return job

    def set_target(self, difficulty: float) -> None:
        self.target = difficulty_to_target(difficulty)
        for client in self.active():
            client.target = self.target
            self._send(client, c.SetTarget(client.channel_id, c.u256_from_target(self.target)))
        for client in self.standard_clients():
            for ch in client.standard.values():
                if not ch.closed:
                    ch.target = self.target
                    self._send(client, c.SetTarget(ch.channel_id, c.u256_from_target(self.target)))

    def reconnect(self, port: int, host: str = "127.0.0.1") -> None:
        for client in self.active():
            self._send(client, c.Reconnect(host, port))

    def active(self) -> list[Client]:
        return [cl for cl in self.clients if cl.channel_id and not cl.writer.is_closing()]

    def standard_clients(self) -> list[Client]:
        return [cl for cl in self.clients if cl.standard and not cl.writer.is_closing()]

    # ---------------------------------------------------------------- extensions (0x0001)
    def _negotiate(self, client: Client, m: c.RequestExtensions) -> None:
        if self.extensions == "ignore":
            return  # §4.3: a server that does not support the extension ignores the message
        supported = tuple(e for e in m.requested_extensions if e in self.supported_extensions)
        missing = tuple(e for e in self.required_extensions if e not in m.requested_extensions)
        if (m.requested_extensions and not supported) or missing:  # §4.1: none supported, or required missing
            unsupported = tuple(e for e in m.requested_extensions if e not in self.supported_extensions)
            self._send(client, c.RequestExtensionsError(m.request_id, unsupported, missing))
        else:
            self._send(client, c.RequestExtensionsSuccess(m.request_id, supported))

    # ---------------------------------------------------------------- standard channels
    def _standard_root(self, ch: StdChannel) -> bytes:
        return merkle_root(dsha(self._coinbase_prefix() + ch.extranonce_prefix + COINBASE_SUFFIX), MERKLE_PATH)

    def _requires_standard_jobs(self, client: Client) -> bool:
        return client.setup is not None and bool(client.setup.flags & c.REQUIRES_STANDARD_JOBS)

    def _open_standard(self, client: Client, m: c.OpenStandardMiningChannel) -> None:
        channel_id = next(self._channel_ids)
        # the whole 12-byte extranonce of the coinbase: the pool's 4-byte part and 8 bytes for this channel
        prefix = next(self._prefixes).to_bytes(4, "big") + channel_id.to_bytes(8, "big")
        ch = client.standard[channel_id] = StdChannel(channel_id, prefix, self.target, m.request_id)
        if not self._requires_standard_jobs(client) and not client.group_channel_id:
            client.group_channel_id = next(self._channel_ids)
        self._send(client, c.OpenStandardMiningChannelSuccess(
            m.request_id, channel_id, c.u256_from_target(ch.target), prefix, client.group_channel_id))
        job = self._current_job()
        self._send(client, c.NewMiningJob(channel_id, job.job_id, None, job.version, self._standard_root(ch)))
        self._send(client, c.SetNewPrevHash(channel_id, job.job_id, job.prev_hash, job.ntime, NBITS))

    def _send_standard(self, client: Client, job: PoolJob, future: bool) -> None:
        if not self._requires_standard_jobs(client):  # SRI: one extended job for the group channel
            self._send(client, c.NewExtendedMiningJob(
                client.group_channel_id, job.job_id, None if future else job.ntime, job.version,
                self.version_rolling, MERKLE_PATH, self._coinbase_prefix(), COINBASE_SUFFIX))
            return
        for ch in client.standard.values():
            if not ch.closed:
                self._send(client, c.NewMiningJob(ch.channel_id, job.job_id, None if future else job.ntime,
                                                  job.version, self._standard_root(ch)))

    def _submit_standard(self, client: Client, m: c.SubmitSharesStandard) -> None:
        def refuse(code: str) -> None:
            self.shares.append(Share(m, False, code, client.number))  # type: ignore[arg-type]
            self._send(client, c.SubmitSharesError(m.channel_id, m.sequence_number, code))

        ch = client.standard.get(m.channel_id)
        if ch is None or ch.closed:
            return refuse("invalid-channel-id")
        job = self.jobs.get(m.job_id)
        if job is None:
            return refuse("invalid-job-id")
        if m.job_id not in self.live:
            return refuse("stale-share")
        allowed = 0x1FFFE000 if self.version_rolling else 0
        if (m.version ^ job.version) & ~allowed & 0xFFFFFFFF:
            return refuse("invalid-version")
        if not job.ntime <= m.ntime <= job.ntime + int(time.time() - job.activated) + 1:
            return refuse("invalid-timestamp")
        header = build_header(m.version, job.prev_hash, self._standard_root(ch), m.ntime, NBITS, m.nonce)
        value = int.from_bytes(dsha(header), "little")
        if header in self._seen:
            return refuse("duplicate-share")
        if value > ch.target:
            return refuse("difficulty-too-low")
        self._seen.add(header)
        self.headers.append(header)
        self.shares.append(Share(m, True, None, client.number))  # type: ignore[arg-type]
        ch.unacked.append(m.sequence_number)
        ch.unacked_sum += DIFF1_TARGET // max(1, ch.target) or 1
        if len(ch.unacked) >= self.share_batch_size:
            self._flush_standard(client, ch)

    def _flush_standard(self, client: Client, ch: StdChannel) -> None:
        if ch.unacked and not client.writer.is_closing():
            success = c.SubmitSharesSuccess(ch.channel_id, ch.unacked[-1], len(ch.unacked), ch.unacked_sum)
            self.successes.append(success)
            self._send(client, success)
            ch.unacked, ch.unacked_sum = [], 0

    # ---------------------------------------------------------------- shares
    def _submit(self, client: Client, m: c.SubmitSharesExtended) -> None:
        def refuse(code: str) -> None:
            self.shares.append(Share(m, False, code, client.number))
            self._send(client, c.SubmitSharesError(m.channel_id, m.sequence_number, code))

        if m.channel_id != client.channel_id:
            return refuse("invalid-channel-id")
        job = self.jobs.get(m.job_id)
        if job is None:
            return refuse("invalid-job-id")
        if m.job_id not in self.live:
            return refuse("stale-share")
        if len(m.extranonce) != client.extranonce_size:
            return refuse("invalid-extranonce-size")
        allowed = 0x1FFFE000 if self.version_rolling else 0
        if (m.version ^ job.version) & ~allowed & 0xFFFFFFFF:
            return refuse("invalid-version")
        coinbase = self._coinbase_prefix() + client.extranonce_prefix + m.extranonce + COINBASE_SUFFIX
        root = merkle_root(dsha(coinbase), MERKLE_PATH)
        header = build_header(m.version, job.prev_hash, root, m.ntime, NBITS, m.nonce)
        value = int.from_bytes(dsha(header), "little")
        key = (client.number, m.job_id, m.extranonce, m.nonce, m.ntime, m.version)
        if key in self._seen:
            return refuse("duplicate-share")
        if value > client.target:
            return refuse("difficulty-too-low")
        self._seen.add(key)
        self.shares.append(Share(m, True, None, client.number))
        client.unacked.append(m.sequence_number)
        client.unacked_sum += DIFF1_TARGET // max(1, client.target) or 1
        if len(client.unacked) >= self.share_batch_size:
            self.flush(client)

    def flush(self, client: Client | None = None) -> None:
        """Acknowledge what is pending in one SubmitShares.Success per client."""
        for cl in [client] if client is not None else self.clients:
            for ch in cl.standard.values():
                self._flush_standard(cl, ch)
            if cl.unacked and not cl.writer.is_closing():
                success = c.SubmitSharesSuccess(cl.channel_id, cl.unacked[-1], len(cl.unacked), cl.unacked_sum)
                self.successes.append(success)
                self._send(cl, success)
                cl.unacked, cl.unacked_sum = [], 0

    async def wait_shares(self, count: int, timeout: float = 20.0, accepted: bool = True) -> None:
        deadline = time.monotonic() + timeout
        while sum(s.accepted == accepted for s in self.shares) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {count} shares (have {len(self.shares)})")
            await asyncio.sleep(0.02)
