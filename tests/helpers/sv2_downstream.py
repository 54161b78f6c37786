"""A scripted Stratum V2 downstream miner built from the miner's own codec and `NoiseInitiator`: the
client side of `miner serve --listen-sv2` where the miner's own client does not go (standard
channels, hostile or out-of-order messages, exact sequence numbers). Sans-I/O (`V2Script`), with
a thin asyncio wrapper (`V2Socket`) for real 127.0.0.1 sockets.

It builds every share the way a V2 device does (05-Mining-Protocol.md §5.3.16: coinbase =
coinbase_tx_prefix + extranonce_prefix + extranonce + coinbase_tx_suffix, for a standard channel
the merkle root as sent) and finds nonces with the C core's scan at the channel's target.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from dataclasses import dataclass, field

from miner.core import hashing
from miner.core.targets import hash_to_int
from miner.sources.sv2 import codec as c
from miner.sources.sv2.noise import ACT2_SIZE, NoiseInitiator, NoiseTransport

ALL_ONES = b"\xff" * 32


def dsha(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


@dataclass
class ChannelView:
    channel_id: int
    standard: bool
    target: int
    extranonce_prefix: bytes
    extranonce_size: int  # 0 for a standard channel
    jobs: dict[int, c.NewExtendedMiningJob | c.NewMiningJob] = field(default_factory=dict)
    prev: c.SetNewPrevHash | None = None
    active: int | None = None  # the job id mined now


class V2Script:
    def __init__(self, authority_key: bytes, wall_clock=time.time):
        self.initiator = NoiseInitiator(authority_key)
        self.wall_clock = wall_clock
        self.transport: NoiseTransport | None = None
        self._buffer = bytearray()
        self.received: list[c.Message | c.UnknownMessage] = []
        self.channels: dict[int, ChannelView] = {}
        self._requests: dict[int, bool] = {}  # request id -> standard
        self._request = 0
        self.sequence = 0

    # ---------------------------------------------------------------- bytes
    def hello(self) -> bytes:
        return self.initiator.act1()

    def take(self, data: bytes) -> list[c.Message | c.UnknownMessage]:
        """Bytes from the server: the handshake reply first (raises NoiseError on a bad one), then frames."""
        new: list[c.Message | c.UnknownMessage] = []
        if self.transport is None:
            self._buffer += data
            if len(self._buffer) < ACT2_SIZE:
                return new
            reply, data = bytes(self._buffer[:ACT2_SIZE]), bytes(self._buffer[ACT2_SIZE:])
            self.transport = self.initiator.act2(reply, self.wall_clock())
        for frame in self.transport.receive_data(data):
            message = c.decode_frame(frame)
            new.append(message)
            self._track(message)
        self.received += new
        return new

    def frame(self, message: c.Message) -> bytes:
        assert self.transport is not None, "handshake first"
        return self.transport.encrypt_frame(c.encode_frame(message))

    def of(self, kind: type) -> list:
        return [m for m in self.received if isinstance(m, kind)]

    # ---------------------------------------------------------------- messages
    def setup(self, flags: int = 0, protocol: int = 0, versions: tuple[int, int] = (2, 2)) -> bytes:
        return self.frame(c.SetupConnection(protocol, versions[0], versions[1], flags, "127.0.0.1", 3336,
                                            "scripted", "test-rig", "v2script/1.0", ""))

    def open(self, user: str, standard: bool = False, min_extranonce: int = 4, rate: float = 0.0,
             max_target: bytes = ALL_ONES) -> bytes:
        self._request += 1
        self._requests[self._request] = standard
        if standard:
            return self.frame(c.OpenStandardMiningChannel(self._request, user, rate, max_target))
        return self.frame(c.OpenExtendedMiningChannel(self._request, user, rate, max_target, min_extranonce))

    def _track(self, m: c.Message | c.UnknownMessage) -> None:
        match m:
            case c.OpenExtendedMiningChannelSuccess():
                self.channels[m.channel_id] = ChannelView(m.channel_id, False, c.target_from_u256(m.target),
                                                          m.extranonce_prefix, m.extranonce_size)
            case c.OpenStandardMiningChannelSuccess():
                self.channels[m.channel_id] = ChannelView(m.channel_id, True, c.target_from_u256(m.target),
                                                          m.extranonce_prefix, 0)
            case c.NewExtendedMiningJob() | c.NewMiningJob() if m.channel_id in self.channels:
                ch = self.channels[m.channel_id]
                ch.jobs[m.job_id] = m
                if m.min_ntime is not None:
                    ch.active = m.job_id
            case c.SetNewPrevHash() if m.channel_id in self.channels:
                ch = self.channels[m.channel_id]
                ch.prev, ch.active = m, m.job_id
                ch.jobs = {k: v for k, v in ch.jobs.items() if k == m.job_id}
            case c.SetTarget() if m.channel_id in self.channels:
                self.channels[m.channel_id].target = c.target_from_u256(m.maximum_target)

    # ---------------------------------------------------------------- shares
    def coinbase(self, ch: ChannelView, job: c.NewExtendedMiningJob, extranonce: bytes) -> bytes:
        return job.coinbase_tx_prefix + ch.extranonce_prefix + extranonce + job.coinbase_tx_suffix

    def header(self, channel_id: int, job_id: int | None = None, extranonce: bytes | None = None,
               version: int | None = None, ntime: int | None = None) -> tuple[bytes, int, int, bytes]:
        """(the 76-byte header start, version, ntime, extranonce) of a job as this channel mines it."""
        ch = self.channels[channel_id]
        job = ch.jobs[ch.active if job_id is None else job_id]
        assert ch.prev is not None
        if ch.standard:
            root, extranonce = job.merkle_root, b""  # type: ignore[union-attr]
        else:
            extranonce = bytes(ch.extranonce_size) if extranonce is None else extranonce
            root = dsha(self.coinbase(ch, job, extranonce))  # type: ignore[arg-type]
            for sibling in job.merkle_path:  # type: ignore[union-attr]
                root = dsha(root + sibling)
        v = job.version if version is None else version
        t = max(ch.prev.min_ntime, job.min_ntime or 0) if ntime is None else ntime
        head = v.to_bytes(4, "little") + ch.prev.prev_hash + root + t.to_bytes(4, "little") + \
            ch.prev.nbits.to_bytes(4, "little")
        return head, v, t, extranonce

    def find(self, channel_id: int, job_id: int | None = None, extranonce: bytes | None = None,
             version: int | None = None, worse: bool = False, start: int = 0) -> tuple[int, int, int, bytes, int]:
        """(nonce, version, ntime, extranonce, hash value) meeting (worse=True: missing) the channel's target."""
        head, v, t, extranonce = self.header(channel_id, job_id, extranonce, version)
        target = self.channels[channel_id].target
        header = head + bytes(4)
        for first in range(start, 1 << 32, 1 << 16):
            for nonce in hashing.scan(header, first, 1 << 16, (1 << 256) - 1 if worse else target):
                value = hash_to_int(hashing.sha256d(head + nonce.to_bytes(4, "little")))
                if (value > target) == worse:
                    return nonce, v, t, extranonce, value
        raise AssertionError("no nonce found")

    def submit(self, channel_id: int, nonce: int, version: int, ntime: int, extranonce: bytes,
               job_id: int | None = None, sequence: int | None = None) -> bytes:
        ch = self.channels.get(channel_id)
        job = (ch.active if ch is not None else 0) if job_id is None else job_id
        self.sequence = self.sequence + 1 if sequence is None else sequence
        if ch is not None and ch.standard:
            return self.frame(c.SubmitSharesStandard(channel_id, self.sequence, job or 0, nonce, ntime, version))
        return self.frame(c.SubmitSharesExtended(channel_id, self.sequence, job or 0, nonce, ntime, version,
                                                 extranonce))


class V2Socket:
    """The script over a real socket: send frames, wait for messages."""

    def __init__(self, script: V2Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.script = script
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int, authority_key: bytes) -> V2Socket:
        reader, writer = await asyncio.open_connection(host, port)
        script = V2Script(authority_key)
        writer.write(script.hello())
        self = cls(script, reader, writer)
        while script.transport is None:
            data = await asyncio.wait_for(reader.read(65536), 10)
            if not data:
                raise ConnectionError("closed during the handshake")
            script.take(data)
        return self

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def until(self, predicate, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out; got {[type(m).__name__ for m in self.script.received[-10:]]}")
            data = await asyncio.wait_for(self.reader.read(65536), left)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.script.take(data)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
