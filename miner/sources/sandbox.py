"""The embedded default job: what `miner` mines when no pool or node is given.

It is the genesis block's coinbase with a fresh extranonce1, at a low share difficulty, so every
device shows a hash rate and finds shares within seconds. Shares are checked exactly as for a pool
and counted locally; nothing leaves the machine.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from miner.core.shares import CheckedNonce
from miner.core.source import JobSink, ResultSink
from miner.core.stats import ShareStats, format_difficulty
from miner.core.targets import difficulty_to_target, display_hash
from miner.core.work import Job

log = logging.getLogger(__name__)

# The genesis coinbase, split inside its scriptSig the way docs/stratum.md §1.7(a) does.
GENESIS_COINBASE = bytes.fromhex(
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d"
    "0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f"
    "66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0"
    "fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c38"
    "4df7ba0b8d578a4c702b6bf11d5fac00000000"
)
GENESIS_COINB1 = GENESIS_COINBASE[:49]
GENESIS_EXTRANONCE1 = GENESIS_COINBASE[49:53]
GENESIS_EXTRANONCE2 = GENESIS_COINBASE[53:57]
GENESIS_COINB2 = GENESIS_COINBASE[57:]
GENESIS_NONCE = 2083236893
GENESIS_HASH = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"

DEFAULT_SANDBOX_DIFFICULTY = 0.02
# A mainnet-like network target, so the sandbox never claims to have found a block.
SANDBOX_NBITS = 0x17034219


def genesis_job(share_target: int | None = None) -> Job:
    """The genesis block as a Stratum-style job (extranonce2 = GENESIS_EXTRANONCE2 rebuilds it)."""
    return Job(
        job_id="genesis",
        prevhash=bytes(32),
        coinb1=GENESIS_COINB1,
        coinb2=GENESIS_COINB2,
        merkle_branch=(),
        version=1,
        nbits=0x1D00FFFF,
        ntime=0x495FAB29,
        clean=True,
        extranonce1=GENESIS_EXTRANONCE1,
        extranonce2_size=4,
        share_target=share_target if share_target is not None else difficulty_to_target(1),
        source="genesis",
    )


def sandbox_job(difficulty: float = DEFAULT_SANDBOX_DIFFICULTY) -> Job:
    return Job(
        job_id="sandbox",
        prevhash=bytes(32),
        coinb1=GENESIS_COINB1,
        coinb2=GENESIS_COINB2,
        merkle_branch=(),
        version=0x20000000,
        nbits=SANDBOX_NBITS,
        ntime=int(time.time()),
        clean=True,
        extranonce1=os.urandom(4),
        extranonce2_size=4,
        share_target=difficulty_to_target(difficulty),
        version_mask=0x1FFFE000,
        source="sandbox",
    )


class SandboxSource:
    """A job source that keeps its shares: each checked share counts as accepted."""

    name = "sandbox"
    url = "sandbox (local job, nothing is sent)"

    def __init__(self, difficulty: float = DEFAULT_SANDBOX_DIFFICULTY):
        self.difficulty = difficulty
        self.stats = ShareStats()
        self.job = sandbox_job(difficulty)
        self._on_job: JobSink | None = None
        self._on_result: ResultSink | None = None

    def bind(self, on_job: JobSink, on_result: ResultSink) -> None:
        self._on_job, self._on_result = on_job, on_result

    async def start(self) -> None:
        if self._on_job is not None:
            self._on_job(self.job)

    async def stop(self) -> None:
        pass

    def status(self, rate_of: Callable[[str], str]) -> str:
        return f"sandbox {rate_of(self.name)}"

    async def submit(self, share: CheckedNonce) -> None:
        self.stats.accepted += 1
        self.stats.accepted_difficulty += self.difficulty
        self.stats.note_best(share.difficulty)
        log.info("sandbox share: nonce %08x diff %s hash %s", share.nonce.nonce,
                 format_difficulty(share.difficulty), display_hash(share.digest)[:24] + "...")
        if self._on_result is not None:  # (share, accepted, reason), as pools report them
            self._on_result(share, True, None)
