"""A Stratum v1 pool for tests, on a real 127.0.0.1 socket, that the test drives.

It validates every share itself (rebuilds the coinbase, merkle root and header from the submit,
hashes it, compares with the difficulty the job was sent at) so a test learns whether the miner's
shares are really good. It can also misbehave on purpose: raw lines, silence, dropped sockets,
client.reconnect, forced rejects. And it can follow a real pool's rules (docs/stratum.md §1.10):
- `ckpool_order`: set_difficulty and notify right after the subscribe reply, the authorize reply
  after them (ckpool stratifier.c parse_method/init_client);
- `version_rule`: how the header version is rebuilt from the sixth submit parameter: "bip310"
  (job & ~mask | bits & mask), "or" (ckpool share_diff), "xor" (public-pool MiningJob);
- `job_version`: the version of every job (0x30000003: regtest signalling bit 28, inside the mask);
- `enforce_at_once`: a share must meet the newest difficulty, not the one its job was sent at;
- `coinbase_padding`, `extranonce2_size`: KB coinbases (DATUM sends ~16 KB), extranonce2 of 1-16 bytes;
- `coinb1`/`coinb2` may be set to serve a chosen coinbase (the payout tests); each job keeps the
  halves it was sent with, so its shares are checked against them.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from dataclasses import dataclass, field

from miner.core.targets import DIFF1_TARGET
from miner.core.work import build_header, merkle_root, swap_words

COINB1 = bytes.fromhex("01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20")
COINB2 = bytes.fromhex("0b2f746573742d706f6f6c2fffffffff0100f2052a010000001976a914" + "11" * 20
                       + "88ac00000000")
BRANCH = [hashlib.sha256(bytes([i])).digest() for i in range(3)]


def dsha(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


@dataclass
class PoolJob:
    job_id: str
    prevhash: bytes  # header order
    version: int
    nbits: int
    ntime: int
    difficulty: float
    extranonce1: bytes
    coinb1: bytes = COINB1
    coinb2: bytes = COINB2


@dataclass
class Submit:
    params: list
    accepted: bool
    reason: str | None
    version: int | None = None
    session: int = 0


@dataclass
class Session:
    number: int
    writer: asyncio.StreamWriter
    extranonce1: bytes
    extranonce2_size: int = 4
    version_mask: int = 0
    authorized: bool = False
    subscribed: bool = False
    xnsub: bool = False
    user: str = ""
    received: list[dict] = field(default_factory=list)


class StratumTestPool:
    def __init__(self, difficulty: float = 0.001, version_mask: int | None = 0x1FFFE000,
                 password: str | None = None, ssl_context=None, ckpool_order: bool = False,
                 version_rule: str = "bip310", job_version: int = 0x20000000, enforce_at_once: bool = False,
                 coinbase_padding: int = 0, extranonce2_size: int = 4):
        if version_rule not in ("bip310", "or", "xor"):
            raise ValueError(f"version_rule {version_rule!r}")
        self.ssl_context = ssl_context
        self.ckpool_order = ckpool_order
        self.version_rule = version_rule
        self.job_version = job_version
        self.enforce_at_once = enforce_at_once
        # padding inside the coinbase's output script area: the pool only hashes it
        self.coinb1 = COINB1
        self.coinb2 = COINB2[:-4] + bytes(coinbase_padding) + COINB2[-4:]
        self.extranonce2_size = extranonce2_size
        self.difficulty = difficulty
        self.version_mask_offer = version_mask  # None: answer mining.configure with an error
        self.password = password
        self.sessions: list[Session] = []
        self.submits: list[Submit] = []
        self.jobs: dict[str, PoolJob] = {}
        self.live: set[str] = set()
        self.reject_next: list[object] = []  # error objects to answer the next submits with
        self.silent = False  # accept connections but never answer
        self.ignore_submits = False  # answer everything but mining.submit (jobs still go out)
        self.auto_job = True  # send difficulty + a clean job after authorize
        self.resume_sessions = True
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._job_ids = itertools.count(1)
        self._extranonces = itertools.count(0x10000001)
        self._prev = dsha(b"block 1")
        self._seen: set[tuple] = set()
        self._session_by_id: dict[str, bytes] = {}
        self.new_submit = asyncio.Event()
        self.early_job_sent_at: float | None = None  # ckpool order: when the job before authorize went out
        self.authorized_at: float | None = None

    # ---------------------------------------------------------------- server
    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port or self.port, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Close the listening socket and every client (a pool that died)."""
        if self._server is not None:
            self._server.close()
            for s in self.sessions:
                s.writer.close()
            await self._server.wait_closed()
            self._server = None

    def drop_clients(self) -> None:
        for s in self.sessions:
            s.writer.close()

    @property
    def active(self) -> list[Session]:
        return [s for s in self.sessions if not s.writer.is_closing()]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(len(self.sessions), writer, next(self._extranonces).to_bytes(4, "big"),
                          self.extranonce2_size)
        self.sessions.append(session)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                message = json.loads(line)
                session.received.append(message)
                if not self.silent:
                    await self._handle(session, message)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def send(self, session: Session, message: dict) -> None:
        session.writer.write(json.dumps(message).encode() + b"\n")

    def send_raw(self, data: bytes) -> None:
        for s in self.active:
            s.writer.write(data)

    def broadcast(self, method: str, params: list) -> None:
        for s in self.active:
            if s.authorized:
                self.send(s, {"id": None, "method": method, "params": params})

    # ---------------------------------------------------------------- driving
    def set_difficulty(self, difficulty: float) -> None:
        self.difficulty = difficulty
        self.broadcast("mining.set_difficulty", [difficulty])

    def notify(self, clean: bool = True, new_block: bool = False) -> str:
        if new_block:
            self._prev = dsha(self._prev)
        job_id = f"{next(self._job_ids):x}"
        if clean:
            self.live.clear()
        self.live.add(job_id)
        for s in self.active:
            if s.authorized:
                self._send_job(s, job_id, clean)
        return job_id

    def set_extranonce(self, extranonce1: bytes, size: int) -> None:
        for s in self.active:
            if s.xnsub:
                s.extranonce1, s.extranonce2_size = extranonce1, size
                self.send(s, {"id": None, "method": "mining.set_extranonce", "params": [extranonce1.hex(), size]})

    def set_version_mask(self, mask: int) -> None:
        for s in self.active:
            s.version_mask = mask
        self.broadcast("mining.set_version_mask", [f"{mask:08x}"])

    def reconnect(self, port: int, wait: float = 0, host: str = "localhost") -> None:
        self.broadcast("client.reconnect", [host, port, wait])

    async def wait_submits(self, count: int, timeout: float = 20.0, accepted: bool | None = None) -> list[Submit]:
        async def enough() -> None:
            while len(self._matching(accepted)) < count:
                self.new_submit.clear()
                await self.new_submit.wait()
        await asyncio.wait_for(enough(), timeout)
        return self._matching(accepted)

    def _matching(self, accepted: bool | None) -> list[Submit]:
        return [s for s in self.submits if accepted is None or s.accepted == accepted]

    # ---------------------------------------------------------------- protocol
    async def _handle(self, s: Session, m: dict) -> None:
        method, params, mid = m.get("method"), m.get("params") or [], m.get("id")
        if method == "mining.configure":
            if self.version_mask_offer is None:
                self.send(s, {"id": mid, "result": None, "error": [20, "Unsupported", None]})
                return
            asked = int(params[1].get("version-rolling.mask", "ffffffff"), 16)
            s.version_mask = asked & self.version_mask_offer
            self.send(s, {"id": mid, "error": None, "result": {
                "version-rolling": True, "version-rolling.mask": f"{s.version_mask:08x}"}})
        elif method == "mining.subscribe":
            if len(params) > 1 and self.resume_sessions and params[1] in self._session_by_id:
                s.extranonce1 = self._session_by_id[params[1]]
            session_id = s.extranonce1.hex()
            self._session_by_id[session_id] = s.extranonce1
            s.subscribed = True
            self.send(s, {"id": mid, "error": None, "result": [[["mining.notify", session_id]],
                                                               s.extranonce1.hex(), s.extranonce2_size]})
            if self.ckpool_order and self.auto_job:
                # ckpool: init_client() sends the difficulty and the current job before any authorize
                self.send(s, {"id": None, "method": "mining.set_difficulty", "params": [self.difficulty]})
                self._notify_one(s)
                self.early_job_sent_at = time.monotonic()
        elif method == "mining.authorize":
            ok = self.password is None or params[1] == self.password
            s.authorized = ok and s.subscribed
            s.user = params[0]
            self.send(s, {"id": mid, "result": ok, "error": None if ok else [24, "Unauthorized worker", None]})
            self.authorized_at = time.monotonic()
            if ok and self.auto_job and not self.ckpool_order:
                self.send(s, {"id": None, "method": "mining.set_difficulty", "params": [self.difficulty]})
                # the current job again, for this session only (a reconnecting miner may resume it)
                self._notify_one(s)
        elif method == "mining.extranonce.subscribe":
            s.xnsub = True
            self.send(s, {"id": mid, "result": True, "error": None})
        elif method == "mining.suggest_difficulty":
            self.send(s, {"id": mid, "result": True, "error": None})
        elif method == "mining.submit":
            if not self.ignore_submits:
                self._submit(s, mid, params)
        elif mid is not None:
            self.send(s, {"id": mid, "result": None, "error": [20, "unknown method", None]})

    def rebuild_version(self, job_version: int, mask: int, bits: int) -> int:
        """The header version this pool hashes for a submit's sixth parameter."""
        if self.version_rule == "or":
            return job_version | bits  # ckpool stratifier.c share_diff(): *data32 |= version_mask
        if self.version_rule == "xor":
            return job_version ^ bits  # public-pool MiningJob.copyAndUpdateBlock(): version ^ versionMask
        return (job_version & ~mask) | bits  # BIP310

    def _notify_one(self, s: Session) -> None:
        if not self.live:
            job_id = f"{next(self._job_ids):x}"
            self.live.add(job_id)
        else:
            job_id = sorted(self.live, key=lambda j: int(j, 16))[-1]
        self._send_job(s, job_id, True)

    def _send_job(self, s: Session, job_id: str, clean: bool) -> None:
        self.jobs[job_id + "/" + s.extranonce1.hex()] = PoolJob(
            job_id, self._prev, self.job_version, 0x1D00FFFF, 0x6553F100, self.difficulty, s.extranonce1,
            self.coinb1, self.coinb2)
        self.send(s, {"id": None, "method": "mining.notify", "params": [
            job_id, swap_words(self._prev).hex(), self.coinb1.hex(), self.coinb2.hex(), [b.hex() for b in BRANCH],
            f"{self.job_version:08x}", "1d00ffff", "6553f100", clean]})

    def _submit(self, s: Session, mid: object, params: list) -> None:
        def answer(ok: bool, error: object = None, version: int | None = None) -> None:
            self.send(s, {"id": mid, "result": ok, "error": error})
            reason = error[1] if isinstance(error, list) else error if isinstance(error, str) else None
            self.submits.append(Submit(params, ok, reason, version, s.number))
            self.new_submit.set()

        if self.reject_next:
            answer(False, self.reject_next.pop(0))
            return
        user, job_id, en2_hex, ntime_hex, nonce_hex = params[:5]
        job = self.jobs.get(job_id + "/" + s.extranonce1.hex())
        if job is None or job_id not in self.live:
            answer(False, [21, "Job not found", None])
            return
        en2 = bytes.fromhex(en2_hex)
        if len(en2) != s.extranonce2_size:
            answer(False, [20, "Invalid nonce2 length", None])
            return
        version = job.version
        if len(params) > 5:
            bits = int(params[5], 16)
            if bits & ~s.version_mask:
                answer(False, [20, "Invalid version bits", None])
                return
            version = self.rebuild_version(job.version, s.version_mask, bits)
        key = (job_id, en2_hex, ntime_hex, nonce_hex, version)
        if key in self._seen:
            answer(False, [22, "Duplicate share", None])
            return
        self._seen.add(key)
        coinbase = job.coinb1 + job.extranonce1 + en2 + job.coinb2
        root = merkle_root(dsha(coinbase), BRANCH)
        header = build_header(version, job.prevhash, root, int(ntime_hex, 16), job.nbits, int(nonce_hex, 16))
        value = int.from_bytes(dsha(header), "little")
        # the newest difficulty when enforced at once, else the one the job was sent at
        difficulty = self.difficulty if self.enforce_at_once else job.difficulty
        if value > DIFF1_TARGET / difficulty:
            answer(False, [23, "Low difficulty share", None])
            return
        answer(True, None, version)
