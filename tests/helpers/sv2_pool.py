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


@dataclass
class Share:
    message: c.SubmitSharesExtended
    accepted: bool
    reason: str | None
    session: int


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


class Sv2TestPool:
    def __init__(self, difficulty: float = 0.001, share_batch_size: int = 10, cert_validity_sec: int = 3600,
                 cert_offset: int = 0, version_rolling: bool = True, extranonce_size: int = 8):
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
        return job

    def new_job(self) -> PoolJob:
        """Another job on the same prev_hash, active at once (min_ntime set)."""
        current = self._current_job()
        job = PoolJob(next(self._job_ids), 0x20000000, current.prev_hash, current.ntime)
        self.jobs[job.job_id] = job
        self.live.add(job.job_id)
        for client in self.active():
            self._send_job(client, job, future=False)
        return job

    def set_target(self, difficulty: float) -> None:
        self.target = difficulty_to_target(difficulty)
        for client in self.active():
            client.target = self.target
            self._send(client, c.SetTarget(client.channel_id, c.u256_from_target(self.target)))

    def reconnect(self, port: int, host: str = "127.0.0.1") -> None:
        for client in self.active():
            self._send(client, c.Reconnect(host, port))

    def active(self) -> list[Client]:
        return [cl for cl in self.clients if cl.channel_id and not cl.writer.is_closing()]

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
