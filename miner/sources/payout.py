"""Does this pool's coinbase pay the miner? The payout check (docs/payout.md §2).

Every job a pool sends is decoded (`miner.sources.coinbase`) and the share of the outputs' value
that goes to the expected scripts is compared with the floor the user set. The expected scripts
are the `--payout-address`es; without one, a pool whose user name is an address (a solo pool:
ckpool solo, public-pool, `ADDRESS.worker`) is checked against that address; any other pool is
decoded and shown but not checked. Donation and pool-fee outputs are simply not the user's: a
ckpool solo pool that keeps 2% pays 98%, and the user sets `--payout-min` to what they accept.

Modes: `warn` logs a line when a pool's verdict changes; `alert` also publishes a
`payout_failed` event; `enforce` also refuses the pool's jobs: the `PoolManager` consults
`PayoutMonitor.allows` before it mines a pool's job or submits a share for one, so mining fails over
to the next pool and comes back once that pool's jobs pay again.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from miner.core.work import Job
from miner.sources.coinbase import Coinbase, CoinbaseError, job_coinbase
from miner.sources.node.address import AddressError, PayoutAddress, decode_address
from miner.sources.stratum.connection import PoolConnection

log = logging.getLogger(__name__)

MODES = ("warn", "alert", "enforce")
DEFAULT_MIN_PERCENT = 95.0
CACHE_SIZE = 64  # recent coinbases per monitor (shares of older jobs look theirs up too)
COIN = 100_000_000


def family_of(address: PayoutAddress) -> str:
    """The network family to show a pool's addresses on (main, then test, then regtest)."""
    for family in ("main", "test", "regtest"):
        if family in address.families:
            return family
    return "main"


def user_address(user: str) -> PayoutAddress | None:
    """The address in a solo pool's user name ("ADDRESS" or "ADDRESS.worker"), None when it is none."""
    head = user.split(".", 1)[0].split("_", 1)[0].strip()
    if len(head) < 26:  # shorter than any Bitcoin address: a plain worker name
        return None
    try:
        return decode_address(head)
    except AddressError:
        return None


@dataclass(frozen=True, slots=True)
class PayoutPolicy:
    addresses: tuple[PayoutAddress, ...] = ()  # --payout-address; () = each pool's user-name address
    min_percent: float = DEFAULT_MIN_PERCENT
    mode: str = "warn"

    @classmethod
    def parse(cls, addresses: tuple[str, ...] = (), min_percent: float | None = None,
              mode: str | None = None) -> PayoutPolicy:
        """From the settings; ValueError (one line) for a bad address, floor or mode."""
        mode = mode or "warn"
        if mode not in MODES:
            raise ValueError(f"--payout-check: {mode!r} is not one of {', '.join(MODES)}")
        floor = DEFAULT_MIN_PERCENT if min_percent is None else float(min_percent)
        if not 0 < floor <= 100:
            raise ValueError(f"--payout-min: {floor:g} is not a percentage in (0, 100]")
        decoded = []
        for text in addresses:
            try:
                decoded.append(decode_address(text))
            except AddressError as exc:
                raise ValueError(f"--payout-address: {exc}") from None
        return cls(tuple(decoded), floor, mode)

    def expected_for(self, user: str) -> tuple[PayoutAddress, ...]:
        if self.addresses:
            return self.addresses
        own = user_address(user)
        return (own,) if own is not None else ()


@dataclass(frozen=True, slots=True)
class PayoutVerdict:
    checked: bool  # there was an address to check against
    ok: bool  # checked and paying at least the floor (True when not checked)
    percent: float  # of the outputs' total value, to the expected scripts (or, unchecked, the biggest)
    address: str  # the expected address (or, unchecked, the biggest output's)
    total: int  # satoshis in all outputs
    outputs: int
    summary: str  # "pays 98.00% of 3.12500000 BTC to bc1q..." — what the API shows
    coinbase: Coinbase | None = None


def judge(coinbase: Coinbase, expected: tuple[PayoutAddress, ...], min_percent: float) -> PayoutVerdict:
    """The verdict on one decoded coinbase for these expected addresses."""
    total = coinbase.total
    btc = f"{total / COIN:.8f} BTC"
    n = len(coinbase.outputs)
    if not expected:
        paying = [o for o in coinbase.outputs if o.value > 0]
        if not paying or total == 0:
            return PayoutVerdict(False, True, 0.0, "", total, n, f"pays nothing ({n} outputs)", coinbase)
        top = max(paying, key=lambda o: o.value)
        percent = 100.0 * top.value / total
        where = top.address or top.kind
        return PayoutVerdict(False, True, percent, where, total, n,
                             f"pays {percent:.2f}% of {btc} to {where} (not checked)", coinbase)
    scripts = {a.script for a in expected}
    mine = sum(o.value for o in coinbase.outputs if o.script in scripts)
    percent = 100.0 * mine / total if total else 0.0
    names = ", ".join(a.text for a in expected)
    ok = total > 0 and percent + 1e-9 >= min_percent
    verdict = "" if ok else f", below the {min_percent:g}% floor"
    if total == 0:
        verdict = ", and its outputs are worth nothing"
    return PayoutVerdict(True, ok, percent, names, total, n, f"pays {percent:.2f}% of {btc} to {names}{verdict}",
                         coinbase)


class PayoutMonitor:
    """Judges every job of every pool; in enforce mode it is the PoolManager's `job_check`."""

    def __init__(self, policy: PayoutPolicy):
        self.policy = policy
        self.latest: dict[str, PayoutVerdict] = {}  # pool name -> verdict on its newest job
        self.listeners: list[Callable[[str, PayoutVerdict], None]] = []  # called when a pool's verdict flips
        self._cache: OrderedDict[tuple, PayoutVerdict] = OrderedDict()

    def verdict(self, pool: PoolConnection, job: Job) -> PayoutVerdict:
        key = (pool.config.user, job.coinb1, job.coinb2, job.extranonce1, job.extranonce2_size)
        found = self._cache.get(key)
        if found is None:
            found = self._judge(pool, job)
            self._cache[key] = found
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return found

    def _judge(self, pool: PoolConnection, job: Job) -> PayoutVerdict:
        expected = self.policy.expected_for(pool.config.user)
        family = family_of(expected[0]) if expected else "main"
        if job.fixed_merkle_root is not None:
            # A Stratum V2 standard job (docs/sv2.md §8) carries only the merkle root: the pool keeps
            # the coinbase, so nothing says it pays the user and a checked pool fails, as unreadable.
            return PayoutVerdict(bool(expected), not expected, 0.0, "", 0, 0,
                                 "is a Stratum V2 standard job: the pool keeps its coinbase, so who it pays "
                                 "cannot be seen")
        try:
            coinbase = job_coinbase(job, family)
        except CoinbaseError as exc:
            # Unreadable: nothing says it pays the user, so a checked pool fails.
            return PayoutVerdict(bool(expected), not expected, 0.0, "", 0, 0, f"cannot be decoded: {exc}")
        return judge(coinbase, expected, self.policy.min_percent)

    def observe(self, pool: PoolConnection, job: Job) -> PayoutVerdict:
        """Judge a pool's new job and remember it; a flip is logged and told to the listeners."""
        verdict = self.verdict(pool, job)
        before = self.latest.get(pool.name)
        self.latest[pool.name] = verdict
        if before is None or before.ok != verdict.ok:
            if not verdict.ok:
                action = " - not mining on it" if self.policy.mode == "enforce" else ""
                log.warning("%s (%s): payout check failed: job %s %s%s", pool.name, pool.host, job.job_id,
                            verdict.summary, action)
            elif before is not None or verdict.checked:
                log.info("%s: coinbase %s", pool.name, verdict.summary)
            for listener in self.listeners:
                listener(pool.name, verdict)
        return verdict

    def allows(self, pool: PoolConnection, job: Job) -> bool:
        """The PoolManager's hook: may this pool's job be mined and its shares be sent?"""
        if job is pool.current_job or pool.name not in self.latest:
            ok = self.observe(pool, job).ok
        else:
            ok = self.verdict(pool, job).ok
        return ok or self.policy.mode != "enforce"
