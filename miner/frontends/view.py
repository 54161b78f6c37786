"""What every front end (the 4028 API, REST, /metrics, the status view) reads and commands.

`MinerView` turns the running miner's live objects into plain snapshots, and carries out the few
commands front ends may send (pool control, device frequency and enable/disable, zeroing, quit).
Front ends never touch devices or pools directly, so they all agree on every number.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from miner import USER_AGENT, __version__
from miner.core.stats import ShareStats
from miner.core.targets import target_to_difficulty
from miner.devices.base import Device, DeviceError, DeviceState
from miner.server.served import ServedSource
from miner.sources.stratum.failover import PoolManager

if TYPE_CHECKING:
    from miner.core.engine import Miner
    from miner.core.work import Job
    from miner.frontends.persist import StatsStore
    from miner.sources.payout import PayoutMonitor
    from miner.sources.stratum.connection import PoolConnection

# Above any hashing chip's clock by far; the drivers check their own tables below this.
MAX_FREQUENCY_MHZ = 10_000
log = logging.getLogger(__name__)


MOVE_BAD = 300  # reconnect_workers: bad host/port/wait (not a cgminer code: api.c has no such command)
MOVE_NONE = 301  # reconnect_workers: not serving, or no worker to move
MOVE_SENT = 302  # the cgminer API's success code for workerreconnect
MAX_MOVE_WAIT = 3600  # seconds a moved miner may be asked to wait before it connects


class CommandError(Exception):
    """A command that cannot be carried out; `code` is cgminer's message code for it."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class DeviceSnapshot:
    index: int
    name: str
    driver: str
    port: str | None
    model: str
    state: str
    enabled: bool
    rate_5s: float
    rate_1m: float
    rate_5m: float
    rate_15m: float
    rate_avg: float
    total_hashes: float
    accepted: int
    rejected: Counter[str]
    hw_errors: int
    found: int
    accepted_difficulty: float
    best_difficulty: float
    temperature: float | None
    frequency: float | None
    voltage: float | None
    elapsed: float
    last_valid_age: float | None  # seconds since the last valid nonce
    last_error: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    rate_20s: float = 0.0
    rejected_difficulty: float = 0.0
    diff1: float = 0.0
    last_share_at: float = 0.0  # unix time of the last answered share, 0 for none
    last_share_difficulty: float = 0.0
    last_share_pool: int = -1  # index of the pool that answered it, -1 for none

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


@dataclass
class PoolSnapshot:
    index: int
    name: str
    url: str
    user: str
    state: str  # Alive / Dead / Connecting / Disabled
    active: bool
    priority: int
    difficulty: float
    accepted: int
    rejected: Counter[str]
    stale: int
    accepted_difficulty: float
    best_difficulty: float
    latency: float | None  # seconds from the last submit to its answer
    version_rolling: bool
    rate_5s: float = 0.0
    rate_avg: float = 0.0
    last_error: str = ""
    best_all_time: float = 0.0  # this pool's record across restarts (persisted by URL)
    rejected_difficulty: float = 0.0
    stale_difficulty: float = 0.0
    diff1: float = 0.0
    last_share_at: float = 0.0
    last_share_difficulty: float = 0.0
    getworks: int = 0  # jobs this pool sent
    block_height: int = 0  # of the pool's current job (BIP34 coinbase height), 0 unknown
    block_version: int = 0
    protocol: str = "stratum1"  # "stratum2" for a stratum2+tcp:// pool (docs/sv2.md §6)
    # the payout check of its newest job (docs/payout.md §2): "pays 98.00% of ... to ADDR"
    payout: str = ""
    payout_percent: float = 0.0
    payout_address: str = ""
    payout_checked: bool = False
    payout_ok: bool = True

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def alive(self) -> bool:
        return self.state == "Alive"


@dataclass
class Summary:
    elapsed: float
    rate_5s: float
    rate_1m: float
    rate_5m: float
    rate_15m: float
    rate_avg: float
    total_hashes: float
    accepted: int
    rejected: Counter[str]
    stale: int
    hw_errors: int
    found: int
    blocks: int
    accepted_difficulty: float
    best_session: float
    best_all_time: float
    pool_difficulty: float | None
    rate_20s: float = 0.0
    rejected_difficulty: float = 0.0
    stale_difficulty: float = 0.0
    diff1: float = 0.0
    getworks: int = 0
    network_blocks: int = 0  # block changes seen (a new previous-block hash)
    block_time: float = 0.0  # unix time the current block was first seen
    block_hash: str = ""
    network_difficulty: float = 0.0
    block_height: int = 0
    last_share_at: float = 0.0
    last_share_difficulty: float = 0.0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


def coinbase_height(job: Job) -> int | None:
    """The block height a job's coinbase declares (BIP34: the scriptSig's first push, docs/gbt.md §2.2,
    docs/stratum.md §1.7(c)), as cgminer's Current Block Height reads it from the pool's coinbase.
    None for version-1 blocks (before BIP34) and for a coinbase that does not start that way."""
    if job.height is not None:
        return job.height
    coinb1 = job.coinb1
    # version (4) + input count (1) + previous output (36), then the scriptSig's length and the script
    if job.version < 2 or len(coinb1) < 43 or coinb1[41] >= 0xFD:
        return None
    first = coinb1[42]
    if 0x51 <= first <= 0x60:  # OP_1 ... OP_16
        return first - 0x50
    if 1 <= first <= 8 and len(coinb1) >= 43 + first:
        return int.from_bytes(coinb1[43:43 + first], "little")
    return None


class NetworkWatch:
    """What the jobs tell about the network: jobs per source (cgminer's Getworks), block changes seen
    (Network Blocks) and when the current block was first seen (coin's Current Block Time)."""

    def __init__(self) -> None:
        self.getworks: Counter[str] = Counter()
        self.last_job: dict[str, Job] = {}
        self.blocks = 0
        self.block_hash = ""
        self.block_time = 0.0

    def on_job(self, job: Job, restart: bool) -> None:
        self.getworks[job.source] += 1
        self.last_job[job.source] = job
        shown = job.prevhash[::-1].hex()  # header order reversed: the hash as explorers show it
        if shown != self.block_hash:
            self.blocks += 1
            self.block_hash = shown
            self.block_time = time.time()


class MinerView:
    def __init__(self, miner: Miner, store: StatsStore | None = None,
                 on_quit: Callable[[], None] | None = None, on_restart: Callable[[], None] | None = None,
                 config: dict[str, Any] | None = None, payout: PayoutMonitor | None = None):
        self.miner = miner
        self.payout = payout  # the payout check's verdicts per pool, when pools are mined
        self.store = store
        self._on_quit = on_quit or miner.request_stop
        self._on_restart = on_restart
        self.config = config or {}  # api/http settings shown by the `config` command
        self.description = USER_AGENT
        self.api_description: str | None = None  # cgminer --api-description: the STATUS Description
        self.version = __version__
        self._stopping: dict[str, asyncio.Future] = {}  # device name -> its stop running in a thread
        self.retired = ShareStats()  # removed pools' results: `removepool` must not shrink the totals
        self._debug = dict.fromkeys(("Silent", "Quiet", "Verbose", "Debug", "RPCProto", "PerDevice", "WorkTime"),
                                    False)
        self._log_levels: dict[str, int] | None = None  # as they were before the first `debug` command
        self.network = NetworkWatch()
        miner.dispatcher.add_listener(self.network.on_job)
        if miner.dispatcher.job is not None:  # a view made after the first job still counts that job
            self.network.on_job(miner.dispatcher.job, False)

    # ------------------------------------------------------------ what there is
    @property
    def pool_manager(self) -> PoolManager | None:
        """The pools, when that is what the miner mines (pool commands answer "no pools" otherwise)."""
        source = self.miner.source
        if isinstance(source, ServedSource):  # `miner serve`: the pools behind the Stratum server
            source = source.inner
        return source if isinstance(source, PoolManager) else None

    @property
    def served(self) -> ServedSource | None:
        """The Stratum server's source when `miner serve` runs (docs/serve.md §5)."""
        source = self.miner.source
        return source if isinstance(source, ServedSource) else None

    def worker_snapshots(self) -> list[dict[str, Any]]:
        """Per downstream worker: rate, difficulty, accepted/rejected by reason, best share, last share."""
        served = self.served
        if served is None:
            return []
        now = time.monotonic()
        return [w.as_dict(now) for w in served.workers.all()]

    def serve_info(self) -> dict[str, Any] | None:
        """`miner serve`'s listeners and its Stratum V2 URL (docs/serve.md §10); None when not serving."""
        served = self.served
        return None if served is None else served.serve_info()

    def reconnect_workers(self, host: object, port: object, wait: object = 0, worker: object = None) -> int:
        """Move downstream workers to another Stratum server with client.reconnect (docs/serve.md §9):
        every one, or those authorized as `worker`; how many were sent it. Bad values are a
        CommandError with code MOVE_BAD (REST 400), not serving or nobody to move MOVE_NONE (409)."""
        if not isinstance(host, str) or not host.strip() or len(host) > 255 or any(c.isspace() for c in host):
            raise CommandError(MOVE_BAD, f"host {str(host)[:60]!r} is not a host name or address")
        if isinstance(port, str) and port.strip().isdigit():
            port = int(port)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise CommandError(MOVE_BAD, f"port {str(port)[:20]!r} is not a port number 1..65535")
        if isinstance(wait, str):
            try:
                wait = float(wait)
            except ValueError:
                raise CommandError(MOVE_BAD, f"wait {wait[:20]!r} is not a number of seconds") from None
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= MAX_MOVE_WAIT:
            raise CommandError(MOVE_BAD, f"wait {str(wait)[:20]!r} is not a number of seconds 0..{MAX_MOVE_WAIT}")
        if worker is not None and (not isinstance(worker, str) or not worker):
            raise CommandError(MOVE_BAD, "worker must be a worker name (as the miner authorized)")
        served = self.served
        if served is None or served.server is None:
            raise CommandError(MOVE_NONE, "not serving: only `miner serve` has downstream workers to move")
        moved = served.server.move(host.strip(), port, float(wait), worker)
        if moved == 0:
            raise CommandError(MOVE_NONE, "no connected worker" + (f" named {worker!r}" if worker else "") + " to move")
        log.warning("client.reconnect to %s:%d (wait %g s) sent to %d downstream connection(s)%s", host.strip(), port,
                    wait, moved, f" of worker {worker}" if worker else "")
        return moved

    @property
    def devices(self) -> list[Device]:
        return list(self.miner.devices)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.miner.started

    def device_at(self, index: int) -> Device:
        devices = self.devices
        if not devices:
            raise CommandError(105, "No ASCs")
        if not 0 <= index < len(devices):
            raise CommandError(107, f"Invalid ASC id {index} - range is 0 - {len(devices) - 1}")
        return devices[index]

    # ------------------------------------------------------------ snapshots
    def device_snapshot(self, index: int, device: Device, now: float | None = None) -> DeviceSnapshot:
        now = time.monotonic() if now is None else now
        stats = device.stats
        meter = stats.hashes
        return DeviceSnapshot(
            index=index, name=device.name, driver=device.driver, port=device.port, model=device.model,
            state=stats.state.value, enabled=device.enabled,
            rate_5s=meter.rate(5.0, now), rate_20s=meter.rate(20.0, now), rate_1m=meter.rate(60.0, now),
            rate_5m=meter.rate(300.0, now),
            rate_15m=meter.rate(900.0, now), rate_avg=meter.average(now), total_hashes=meter.total,
            accepted=stats.shares.accepted, rejected=Counter(stats.shares.rejected),
            hw_errors=stats.hw_errors, found=stats.shares.found,
            accepted_difficulty=stats.shares.accepted_difficulty, best_difficulty=stats.shares.best_difficulty,
            temperature=stats.temperature, frequency=stats.frequency, voltage=stats.voltage,
            elapsed=now - stats.started_at,
            last_valid_age=None if stats.last_valid_at is None else now - stats.last_valid_at,
            last_error=stats.last_error, details=dict(device.details()),
            rejected_difficulty=stats.shares.rejected_difficulty, diff1=stats.shares.diff1,
            last_share_at=stats.shares.last_share_at, last_share_difficulty=stats.shares.last_share_difficulty,
            last_share_pool=self._pool_index_of(stats.last_share_source),
        )

    def device_snapshots(self) -> list[DeviceSnapshot]:
        now = time.monotonic()
        return [self.device_snapshot(i, d, now) for i, d in enumerate(self.devices)]

    def _pool_index_of(self, name: str) -> int:
        manager = self.pool_manager
        if not name or manager is None:
            return -1
        return next((i for i, p in enumerate(manager.pools) if p.name == name), -1)

    def _pool_snapshot(self, index: int, pool: PoolConnection, manager: PoolManager) -> PoolSnapshot:
        devices = self.devices
        results = self.miner.by_source.get(pool.name, ShareStats())
        job = self.network.last_job.get(pool.name)
        state = "Disabled" if not pool.enabled else pool.state.value
        verdict = self.payout.latest.get(pool.name) if self.payout is not None else None
        return PoolSnapshot(
            index=index, name=pool.name, url=pool.config.url, user=pool.config.user, state=state,
            active=pool is manager.active, priority=manager.priority_of(pool),
            difficulty=float(pool.difficulty), accepted=pool.stats.accepted, rejected=Counter(pool.stats.rejected),
            stale=pool.stats.stale, accepted_difficulty=pool.stats.accepted_difficulty,
            best_difficulty=pool.stats.best_difficulty, latency=pool.submit_latency,
            version_rolling=bool(pool.version_mask),
            rate_5s=sum(d.stats.source_rate(pool.name, 5.0) for d in devices),
            rate_avg=sum(d.stats.source_rate(pool.name, None) for d in devices), last_error=pool.last_error,
            best_all_time=max(pool.stats.best_difficulty,
                              self.store.best_per_pool.get(pool.config.url, 0.0) if self.store is not None else 0.0),
            rejected_difficulty=results.rejected_difficulty, stale_difficulty=pool.stats.stale_difficulty,
            diff1=results.diff1, last_share_at=results.last_share_at,
            last_share_difficulty=results.last_share_difficulty, getworks=self.network.getworks[pool.name],
            block_height=(coinbase_height(job) or 0) if job is not None else 0,
            block_version=job.version if job is not None else 0, protocol=pool.protocol,
            payout=verdict.summary if verdict else "", payout_percent=verdict.percent if verdict else 0.0,
            payout_address=verdict.address if verdict else "", payout_checked=bool(verdict and verdict.checked),
            payout_ok=verdict.ok if verdict else True,
        )

    def pool_snapshots(self) -> list[PoolSnapshot]:
        manager = self.pool_manager
        if manager is None:
            return []
        return [self._pool_snapshot(i, p, manager) for i, p in enumerate(manager.pools)]

    def best_session(self) -> float:
        return max(self.miner.source.stats.best_difficulty, self.miner.totals.best_difficulty)

    def summary(self) -> Summary:
        now = time.monotonic()
        devices = self.devices
        stats = self.miner.source.stats
        best = self.best_session()
        job = self.miner.dispatcher.shown_job  # with a standard channel per device, one of theirs
        retired = self.retired
        results = list(self.miner.by_source.values())
        last = max(results, key=lambda r: r.last_share_at, default=ShareStats())
        network = self.network
        return Summary(
            elapsed=now - self.miner.started,
            rate_5s=sum(d.stats.hashes.rate(5.0, now) for d in devices),
            rate_20s=sum(d.stats.hashes.rate(20.0, now) for d in devices),
            rate_1m=sum(d.stats.hashes.rate(60.0, now) for d in devices),
            rate_5m=sum(d.stats.hashes.rate(300.0, now) for d in devices),
            rate_15m=sum(d.stats.hashes.rate(900.0, now) for d in devices),
            rate_avg=sum(d.stats.hashes.average(now) for d in devices),
            total_hashes=sum(d.stats.hashes.total for d in devices),
            accepted=stats.accepted + retired.accepted, rejected=Counter(stats.rejected) + retired.rejected,
            stale=stats.stale + retired.stale,
            hw_errors=sum(d.stats.hw_errors for d in devices), found=self.miner.totals.found,
            blocks=stats.blocks + self.miner.totals.blocks,
            accepted_difficulty=stats.accepted_difficulty + retired.accepted_difficulty,
            best_session=best,
            best_all_time=max(best, self.store.best_all_time if self.store is not None else 0.0),
            pool_difficulty=job.share_difficulty if job is not None else None,
            rejected_difficulty=sum(r.rejected_difficulty for r in results),
            stale_difficulty=stats.stale_difficulty + retired.stale_difficulty, diff1=self.miner.totals.diff1,
            getworks=sum(network.getworks.values()), network_blocks=network.blocks, block_time=network.block_time,
            block_hash=network.block_hash,
            network_difficulty=target_to_difficulty(job.network_target) if job is not None else 0.0,
            block_height=(coinbase_height(job) or 0) if job is not None else 0,
            last_share_at=last.last_share_at, last_share_difficulty=last.last_share_difficulty,
        )

    # ------------------------------------------------------------ commands
    def _manager(self) -> PoolManager:
        manager = self.pool_manager
        if manager is None:
            raise CommandError(8, "No pools")
        return manager

    def _pool_index(self, index: int) -> PoolConnection:
        manager = self._manager()
        if not 0 <= index < len(manager.pools):
            raise CommandError(26, f"Invalid pool id {index} - range is 0 - {len(manager.pools) - 1}")
        return manager.pools[index]

    def switch_pool(self, index: int) -> str:
        pool = self._pool_index(index)
        self._manager().switch_pool(index)
        return pool.config.url

    def enable_pool(self, index: int) -> tuple[str, bool]:
        """(url, was it already enabled)."""
        pool = self._pool_index(index)
        already = pool.enabled
        self._manager().enable_pool(index)
        return pool.config.url, already

    def disable_pool(self, index: int) -> tuple[str, bool]:
        pool = self._pool_index(index)
        if not pool.enabled:
            return pool.config.url, True
        try:
            self._manager().disable_pool(index)
        except ValueError:
            raise CommandError(51, f"Cannot disable last active pool {index}:'{pool.config.url}'") from None
        return pool.config.url, False

    def add_pool(self, url: str, user: str, password: str) -> int:
        from miner.sources.stratum.url import PoolConfig

        manager = self._manager()
        # The new pool inherits the per-pool settings of the first one (TLS checks, version rolling).
        template = manager.pools[0].config if manager.pools else None
        config = PoolConfig(url=url, user=user, password=password)
        if template is not None:
            config.version_rolling = template.version_rolling
            config.tls_verify = template.tls_verify
            config.ca_file = template.ca_file
            config.suggest_difficulty = template.suggest_difficulty
        try:
            manager.add_pool(config)
        except ValueError as exc:
            raise CommandError(53, f"Invalid addpool details '{exc}'") from None
        return len(manager.pools) - 1

    def remove_pool(self, index: int) -> str:
        pool = self._pool_index(index)
        manager = self._manager()
        if len(manager.pools) == 1:
            raise CommandError(66, f"Cannot remove last pool {index}:'{pool.config.url}'")
        if pool is manager.active:
            raise CommandError(67, f"Cannot remove active pool {index}:'{pool.config.url}'")
        manager.remove_pool(index)
        # cgminer keeps a removed pool's shares in its totals (api.c removepool only marks it removed)
        gone = pool.stats
        self.retired.accepted += gone.accepted
        self.retired.rejected.update(gone.rejected)
        self.retired.stale += gone.stale
        self.retired.accepted_difficulty += gone.accepted_difficulty
        self.retired.stale_difficulty += gone.stale_difficulty
        return pool.config.url

    def pool_priority(self, indexes: list[int]) -> None:
        manager = self._manager()
        for i in indexes:
            self._pool_index(i)
        seen: set[int] = set()
        for i in indexes:
            if i in seen:
                raise CommandError(74, f"Duplicate pool specified {i}")
            seen.add(i)
        manager.set_priority(indexes)

    def quota(self, index: int) -> int:
        """The pool's quota (cgminer's `--quota N;URL`, `poolquota`); 1 unless one was set."""
        manager = self.pool_manager
        if manager is None or not 0 <= index < len(manager.pools):
            return 1
        return manager.pools[index].config.quota  # --quota N;URL, cgminer.conf or poolquota

    def set_quota(self, index: int, quota: int) -> str:
        pool = self._pool_index(index)
        self._manager().set_quota(index, quota)  # it steers --load-balance at once (docs/cli.md §3)
        return pool.config.url

    def save_config(self, path: str) -> None:
        """The pools and API settings as a cgminer.conf (JSON keys as cgminer's write_config names them)."""
        manager = self.pool_manager
        pools = [{"url": p.config.url, "user": p.config.user, "pass": p.config.password,
                  **({"quota": f"{p.config.quota};{p.config.url}"} if p.config.quota != 1 else {})}
                 for p in (manager.pools if manager is not None else [])]
        data: dict[str, Any] = {"pools": pools}
        data.update({k.lower().replace(" ", "-"): v for k, v in self.config.items()})
        with open(path, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=1)
            file.write("\n")

    def set_debug(self, flag: str) -> None:
        """api.c debugstate(): Silent/Quiet/Verbose/Debug/RPCProto toggle, Normal resets; here they map
        onto the log levels of the miner's loggers and the Stratum protocol dump."""
        state = self._debug
        loggers = {name: logging.getLogger(name) for name in ("miner", "miner.protocol")}
        if self._log_levels is None:
            self._log_levels = {name: logger.level for name, logger in loggers.items()}
        if flag == "Normal":  # back to the levels the miner started with
            state.update(dict.fromkeys(state, False))
            for name, logger in loggers.items():
                logger.setLevel(self._log_levels[name])
            return
        if flag in state:
            state[flag] = not state[flag]
            if flag == "Debug" and state[flag]:
                state["Verbose"], state["Quiet"] = True, False
            if flag in ("Silent", "Quiet") and state[flag]:
                state["Verbose"] = state["Debug"] = False
        level = (logging.DEBUG if state["Debug"] else logging.INFO if state["Verbose"] or not state["Quiet"]
                 else logging.WARNING)
        loggers["miner"].setLevel(logging.ERROR if state["Silent"] else level)
        loggers["miner.protocol"].setLevel(logging.INFO if state["RPCProto"] else self._log_levels["miner.protocol"])

    def debug_state(self) -> dict[str, bool]:
        return dict(self._debug)

    def set_frequency(self, index: int, mhz: float) -> None:
        """Every front end's frequency write: a number a device can be asked for, or a CommandError
        (REST 409, cgminer status E 120); NaN, infinities, 1e308 or true never reach a driver."""
        device = self.device_at(index)
        if isinstance(mhz, bool) or not isinstance(mhz, int | float) or not math.isfinite(mhz) \
                or not 0 < mhz <= MAX_FREQUENCY_MHZ:
            raise CommandError(120, f"ASC {index} set failed: frequency {mhz!r} is not a number of MHz in "
                                    f"(0, {MAX_FREQUENCY_MHZ}]")
        try:
            device.set_frequency(mhz)
        except (DeviceError, ValueError, OverflowError) as exc:  # drivers say "off the table" as ValueError
            raise CommandError(120, f"ASC {index} set failed: {exc}") from None

    def enable_device(self, index: int) -> bool:
        """Start a disabled device; False when it was enabled already."""
        device = self.device_at(index)
        if device.enabled:
            return False
        device.enabled = True
        device.stats.set_state(DeviceState.INIT, "enabled through the API")
        stopping = self._stopping.pop(device.name, None)
        if stopping is not None and not stopping.done():
            # still stopping from a disable a moment ago: start once that is over, not on top of it
            stopping.add_done_callback(lambda _: device.start() if device.enabled else None)
        else:
            device.start()
        return True

    def disable_device(self, index: int) -> bool:
        device = self.device_at(index)
        if not device.enabled:
            return False
        device.enabled = False
        future = self._in_background(device.stop)  # joining device threads must not stall the event loop
        if future is not None:
            self._stopping[device.name] = future
        device.stats.set_state(DeviceState.DISABLED, "disabled through the API")
        return True

    def zero(self, which: str) -> None:
        """`all`: every counter (and the persisted totals); `bestshare`: the best shares only."""
        manager = self.pool_manager
        pools = manager.pools if manager is not None else []
        if which == "all":
            for device in self.devices:
                device.stats.zero()
            self.miner.totals = ShareStats()
            self.miner.by_source.clear()
            self.retired = ShareStats()
            for pool in pools:
                pool.stats = ShareStats()
            if manager is None:
                with contextlib.suppress(AttributeError):  # a source whose stats are computed has none to zero
                    self.miner.source.stats = ShareStats()
            if self.store is not None:
                self.store.reset(everything=True)
        else:
            for device in self.devices:
                device.stats.shares.best_difficulty = 0.0
            self.miner.totals.best_difficulty = 0.0
            for pool in pools:
                pool.stats.best_difficulty = 0.0
            if manager is None:
                self.miner.source.stats.best_difficulty = 0.0
            if self.store is not None:
                self.store.reset(everything=False)

    def set_hotplug(self, seconds: float) -> None:
        manager = self.miner.manager
        if manager is None:
            raise CommandError(14, "Invalid command")
        if seconds <= 0:
            manager.scan_usb = False
        else:
            manager.scan_usb = True
            manager.hotplug = seconds

    def hotplug_seconds(self) -> float:
        manager = self.miner.manager
        if manager is None or not manager.scan_usb:
            return 0
        return manager.hotplug

    def quit(self) -> None:
        log.warning("quit asked for through the API")
        self._soon(self._on_quit)

    def restart(self) -> None:
        log.warning("restart asked for through the API")
        if self._on_restart is not None:
            self._soon(self._on_restart)

    @staticmethod
    def _soon(fn: Callable[[], None]) -> None:
        """After the reply is written: the API answers before the miner stops."""
        try:
            asyncio.get_running_loop().call_later(0.05, fn)
        except RuntimeError:
            fn()

    @staticmethod
    def _in_background(fn: Callable[[], Any]) -> asyncio.Future | None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            fn()
            return None
        future = loop.run_in_executor(None, fn)
        # fetch the exception so a failing stop is logged once instead of "never retrieved"
        future.add_done_callback(lambda f: f.cancelled() or f.exception() is None
                                 or log.warning("background stop failed: %s", f.exception()))
        return future
