"""GbtSource: a job source that mines block templates from a node and submits the blocks found.

One task keeps the current template fresh: it long-polls when the node offers it (the answer comes
when the tip changes or transactions arrive), else it asks for the best block hash every
`poll_interval` seconds; in both cases it re-fetches every `refresh_interval` seconds to pick up new
transactions. A template on a new previous block is a clean job: devices drop what they hold. Node
trouble (down, wrong credentials, warming up, errors) is logged once per change and retried with
capped backoff; it never ends the miner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from miner.core.shares import CheckedNonce, Verdict
from miner.core.source import JobSink, ResultSink
from miner.core.stats import ShareStats, format_difficulty
from miner.core.targets import MAX_TARGET, display_hash, nbits_to_target, target_to_difficulty
from miner.core.work import Job
from miner.sources.node.address import AddressError, PayoutAddress
from miner.sources.node.rpc import NodeError, RpcClient, RpcError
from miner.sources.node.template import BlockTemplate, PreparedTemplate, TemplateError, parse_template, prepare

log = logging.getLogger(__name__)

GBT_PARAMS = {"rules": ["segwit"], "capabilities": ["longpoll", "coinbasevalue", "proposal"]}
MAX_LIVE_JOBS = 16

# CPU chunk sizes: the device reports every nonce under the target, and on regtest that is every
# other hash, so chunks shrink with the difficulty (a block then waits less for the chunk in hand).
MIN_CHUNK = 1 << 12
MAX_CHUNK = 1 << 21


def chunk_for_target(target: int) -> int:
    """A CPU chunk of about 4096 expected blocks' worth of hashes, within [MIN_CHUNK, MAX_CHUNK]."""
    expected = (MAX_TARGET + 1) // (target + 1)
    return max(MIN_CHUNK, min(MAX_CHUNK, 1 << (expected * 4096).bit_length()))


@dataclass(frozen=True, slots=True)
class FoundBlock:
    block: bytes
    prevhash: bytes  # header order
    block_hash: str  # display hex
    height: int
    share: CheckedNonce

    @property
    def difficulty(self) -> float:
        return self.share.difficulty

    @property
    def nbits(self) -> int:
        return int.from_bytes(self.block[72:76], "little")


class GbtSource:
    name = "node"

    def __init__(self, rpc: RpcClient, payout: PayoutAddress, tag: bytes = b"",
                 refresh_interval: float = 30.0, poll_interval: float = 1.0, retry_base: float = 0.5,
                 retry_cap: float = 10.0, extranonce1: bytes | None = None):
        self.rpc = rpc
        self.payout = payout
        self.tag = tag
        self.refresh_interval = refresh_interval
        self.poll_interval = poll_interval
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        # Our part of the coinbase nonce space: two miners on one node and address never collide.
        self.extranonce1 = extranonce1 if extranonce1 is not None else os.urandom(4)
        self.stats = ShareStats()
        # Called with (share, accepted, reject reason) for every block the node answered: per-device stats.
        self.result_listeners: list[ResultSink] = []
        self._on_job: JobSink = lambda job: None  # until the engine binds the source
        self.chain: str | None = None
        self.template: BlockTemplate | None = None
        self.accepted_hashes: list[str] = []  # display hashes of the blocks the node took
        self._jobs: OrderedDict[str, PreparedTemplate] = OrderedDict()
        self._job_counter = 0
        self._job: Job | None = None  # the current job, handed to the engine when it binds
        # Jobs that had a block candidate, for the device threads (see `wants`); a few kept after
        # their template is replaced, since the nonces found on them are still in flight.
        self._spent_order: deque[str] = deque(maxlen=4 * MAX_LIVE_JOBS)
        self._spent: frozenset[str] = frozenset()
        self._spent_lock = threading.Lock()
        # block candidates (and nonces) not sent because their job already had one (regtest: every other hash)
        self.surplus = 0
        self._submits: set[asyncio.Task] = set()
        self._refresh_lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._failures = 0
        self._last_problem = ""
        self._replace_job = False
        self._rejects = 0
        self._held: FoundBlock | None = None  # found while the node was unreachable

    # -------------------------------------------------------------------- status
    @property
    def height(self) -> int | None:
        return self.template.height if self.template else None

    @property
    def difficulty(self) -> float | None:
        return target_to_difficulty(self.template.target) if self.template else None

    def status(self, rate_of: Callable[[str], str]) -> str:
        s = self.stats
        where = f"height {self.height} netdiff {format_difficulty(self.difficulty)}" if self.template else "no template"
        down = " (retrying)" if self._failures else ""
        return (f"node {self.rpc}{down} {where} blocks found/accepted/rejected "
                f"{s.found}/{s.accepted}/{s.rejected_total} {rate_of(self.name)}")

    # -------------------------------------------------------------------- life cycle
    async def check_node(self) -> str:
        """The node's chain; raises AddressError if the payout address is for another network."""
        info = await self.rpc.call("getblockchaininfo")
        chain = str(info.get("chain", "")) if isinstance(info, dict) else ""
        self.payout.check_chain(chain)
        self.chain = chain
        return chain

    async def connect(self) -> str:
        """check_node, retried (with a line for each new problem) until the node answers."""
        while True:
            try:
                chain = await self.check_node()
            except NodeError as exc:
                await self._trouble(exc)
                continue
            self._recovered()
            return chain

    async def first_template(self) -> BlockTemplate:
        """The first template (published as the current job), retried until the node gives one."""
        while True:
            try:
                template = await self.refresh()
            except (NodeError, TemplateError) as exc:
                await self._trouble(exc)
                continue
            self._recovered()
            return template

    def bind(self, on_job: JobSink, on_result: ResultSink) -> None:
        self._on_job = on_job
        self.result_listeners.append(on_result)
        if self._job is not None:  # the first template came before the engine (it sized the CPU chunks)
            on_job(self._job)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gbt")

    async def stop(self) -> None:
        if self._submits:
            await asyncio.gather(*self._submits, return_exceptions=True)
        if self._task is not None:
            self._task.cancel()
            done, _ = await asyncio.wait([self._task], timeout=5)
            if not done:
                log.warning("the template task did not stop within 5s")
            self._task = None

    # -------------------------------------------------------------------- blocks
    def wants(self, job_id: str) -> bool:
        """Called from device threads, before a nonce is queued: False (and counted) once the job
        has its block candidate. No hashing: this only spares the share path from checking, one
        by one, the nonces found meanwhile on work that can no longer make a block, which on
        regtest is half of all hashes. Which candidate is sent is decided in `submit`."""
        if job_id not in self._spent:
            return True
        with self._spent_lock:
            self.surplus += 1
        return False

    async def submit(self, share: CheckedNonce) -> None:
        """Send the first block candidate of each live job to the node; count the rest, unsent.

        On a low-difficulty chain every other hash is a block, and any one of them does for a
        template; a second block on the same parent would only compete with the first, and work
        for a replaced parent is worthless. Only a block claims its job: a board reports far easier
        nonces (difficulty 1, say), and those are the share path's to count, not this source's.
        """
        if share.verdict is not Verdict.BLOCK:
            return  # solo: the share target is the network target, so nothing else reaches here
        job = share.work.job
        if job.job_id in self._spent:  # found while the job's first block was on its way
            with self._spent_lock:
                self.surplus += 1
            return
        prepared = self._jobs.get(job.job_id)
        if prepared is None:
            self.stats.stale += 1
            log.debug("block candidate for a replaced template (height %s) dropped", job.height)
            return
        with self._spent_lock:
            self._spent_order.append(job.job_id)
            self._spent = frozenset(self._spent_order)
        # A block on its way to the node is finished even if the miner is stopping meanwhile, so
        # that our count of accepted blocks always matches the node's.
        task = asyncio.create_task(self._submit_block(share, prepared))
        self._submits.add(task)
        task.add_done_callback(self._submits.discard)
        await asyncio.shield(task)

    async def _submit_block(self, share: CheckedNonce, prepared: PreparedTemplate) -> None:
        job = share.work.job
        found = FoundBlock(prepared.block(share.header, job.coinbase(share.work.extranonce2)),
                           prepared.template.prevhash, display_hash(share.digest), prepared.template.height, share)
        self.stats.found += 1
        try:
            accepted = await self._deliver(found)
        except NodeError:
            return  # held; _run sends it once the node answers
        if not accepted:
            # A node that rejects every block we build would otherwise get one per round trip.
            await asyncio.sleep(min(self.retry_cap, self.retry_base * 2 ** min(self._rejects, 16)))
            self._rejects += 1
        # Either way the tip (or our view of it) is due for a new template; do not wait for a poll.
        try:
            await self.refresh()
        except (NodeError, TemplateError) as exc:
            log.debug("template after submit: %s", exc)

    async def _deliver(self, found: FoundBlock) -> bool:
        """submitblock and count the answer; True if accepted. A block the node did not get is
        held (raising the NodeError) and sent again by refresh() once the node answers."""
        try:
            result = await self.rpc.call("submitblock", found.block.hex())
        except NodeError as exc:
            self._held = found
            self._failed_job()
            log.error("block %s at height %d NOT submitted (%s); holding it for when the node is back",
                      found.block_hash, found.height, exc)
            raise
        if result is None:
            self._rejects = 0
            self.stats.accepted += 1
            self.stats.blocks += 1
            self.stats.accepted_difficulty += target_to_difficulty(nbits_to_target(found.nbits))
            self.stats.note_best(found.difficulty)
            self.accepted_hashes.append(found.block_hash)
            log.info("block %s accepted at height %d", found.block_hash, found.height)
            self._tell(found, True, None)
            return True
        reason = result if isinstance(result, str) else repr(result)
        self.stats.rejected[reason] += 1
        log.warning("block %s at height %d rejected: %s", found.block_hash, found.height, reason)
        self._failed_job()
        self._tell(found, False, reason)
        return False

    def _tell(self, found: FoundBlock, accepted: bool, reason: str | None) -> None:
        for listener in self.result_listeners:
            listener(found.share, accepted, reason)

    # -------------------------------------------------------------------- templates
    def _failed_job(self) -> None:
        """The current job's one candidate came to nothing: the next template replaces the job (a
        clean one) even if it holds the same work, so that devices can find another block."""
        self._replace_job = True

    async def refresh(self) -> BlockTemplate:
        """Fetch a template and make it the current job, unless it holds the same work."""
        async with self._refresh_lock:
            template = parse_template(await self.rpc.call("getblocktemplate", GBT_PARAMS))
            held, self._held = self._held, None
            if held is not None and held.prevhash == template.prevhash:
                # The node still builds on the held block's parent: the block is as good as when found.
                if await self._deliver(held):
                    template = parse_template(await self.rpc.call("getblocktemplate", GBT_PARAMS))
            elif held is not None:
                self.stats.rejected["stale after node outage"] += 1
                log.warning("held block %s at height %d is stale now: the node has moved to another tip",
                            held.block_hash, held.height)
            self._publish(template)
            return template

    def _publish(self, template: BlockTemplate) -> None:
        current = self.template
        if current is not None and template.same_work(current) and not self._replace_job:
            return
        prepared = prepare(template, self.payout.script, self.tag)
        if (template.default_witness_commitment and prepared.commitment
                and template.default_witness_commitment != prepared.commitment):
            log.warning("our witness commitment differs from the node's (%s); mining ours",
                        template.default_witness_commitment.hex())
        new_parent = current is None or current.prevhash != template.prevhash
        clean = new_parent or self._replace_job
        self._replace_job = False
        if new_parent:
            self._jobs.clear()  # work on the old parent can no longer make a block
            log.info("new block template: height %d, %d transactions, %s sat, netdiff %s", template.height,
                     len(template.transactions), template.coinbase_value,
                     format_difficulty(target_to_difficulty(template.target)))
        else:
            log.debug("template update at height %d: %d transactions", template.height, len(template.transactions))
        self._job_counter += 1
        job_id = f"{template.height}.{self._job_counter}"
        self._jobs[job_id] = prepared
        while len(self._jobs) > MAX_LIVE_JOBS:
            self._jobs.popitem(last=False)
        self.template = template
        self._job = prepared.job(job_id, self.extranonce1, self.name, clean)
        self._on_job(self._job)

    async def _run(self) -> None:
        while True:
            try:
                if self.chain is None:
                    await self.check_node()
                template = await self.refresh()
                self._recovered()
                if template.longpollid:
                    await self._longpoll(template.longpollid)
                else:
                    await self._short_poll()
            except asyncio.CancelledError:
                raise
            except (NodeError, TemplateError, AddressError) as exc:
                await self._trouble(exc)
            except Exception as exc:  # a node answering nonsense must not end the miner
                log.exception("unexpected error talking to the node")
                await self._trouble(exc)

    async def _longpoll(self, longpollid: str) -> None:
        """Wait for the node to say the work changed, or for the refresh interval; the answer itself
        is not used: refresh() fetches the current template under its lock, so two fetches racing
        can never publish an older template over a newer one."""
        params = {**GBT_PARAMS, "longpollid": longpollid}
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.refresh_interval):
                await self.rpc.call("getblocktemplate", params, timeout=self.refresh_interval + 5)

    async def _short_poll(self) -> None:
        waited = 0.0
        assert self.template is not None
        tip = self.template.prevhash[::-1].hex()
        while waited < self.refresh_interval:
            await asyncio.sleep(self.poll_interval)
            waited += self.poll_interval
            if await self.rpc.call("getbestblockhash") != tip:
                return

    async def _trouble(self, exc: Exception) -> None:
        text = str(exc) or type(exc).__name__
        if isinstance(exc, RpcError) and exc.warming_up:
            text = f"node {self.rpc} is starting up ({exc.message}); waiting"
        delay = min(self.retry_cap, self.retry_base * 2 ** min(self._failures, 16))
        self._failures += 1
        if text != self._last_problem:
            log.warning("%s; retrying in %.1fs", text, delay)
            self._last_problem = text
        else:
            log.debug("%s; retrying in %.1fs", text, delay)
        await asyncio.sleep(delay)

    def _recovered(self) -> None:
        if self._failures:
            log.info("node %s answers again", self.rpc)
        self._failures = 0
        self._last_problem = ""
