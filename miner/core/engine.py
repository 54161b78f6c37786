"""The running miner: devices hash work from the dispatcher, nonces go through the share path to
the job source that made them, and a status line reports every few seconds."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from miner.core.dispatch import Dispatcher
from miner.core.lograte import LogLimiter
from miner.core.nonce_queue import NonceQueue
from miner.core.recent_shares import RecentShares
from miner.core.shares import CheckedNonce, Verdict, check_reported
from miner.core.source import JobSource, ResultSink
from miner.core.stats import ShareStats, format_difficulty, format_hashrate
from miner.core.targets import target_to_difficulty
from miner.core.work import Job, Nonce
from miner.devices.base import Device

if TYPE_CHECKING:
    from miner.devices.manager import DeviceManager

log = logging.getLogger(__name__)

TAKE = 16  # nonces taken from the queue at a time; a batch is several takes
YIELD_AFTER = 0.01  # seconds of checking after which a batch yields even if BATCH is not reached
BATCH = 256  # nonces checked between yields to the loop: stop, timers and sockets stay live in a flood
# `gather_seconds`: after the first nonce wakes the share path, wait this long so the nonces of many
# devices come in one batch: one loop wake (and one self-pipe write by a device thread) per window
# instead of one per nonce (10 U3 sticks: miner CPU about 11.4% -> 9.8% of a core at 0.02 s,
# benchmarks/bench_host_cost.py). Off by default: shares of one window then go out before the pool
# has answered the first, which changes what version-rule detection sees (tests/system/test_pools.py,
# test_each_pools_version_rule, expects one share refused under the first rule, not three).
GATHER_SECONDS = 0.0
STOP_CHECKING = 0.8  # seconds from a stop to the end of checking: stop is < 2 s with the answers' wait
DRAIN_SECONDS = 0.5  # at stop, queued nonces are checked for this long at most; the rest are shed


def device_line(device: Device) -> str:
    """One device's part of the log: name, state, rate, results, and what the hardware reports."""
    stats = device.stats
    parts = [f"{device.name} {stats.state.value}", f"{format_hashrate(stats.hashes.rate(5.0))} (5s)",
             f"{format_hashrate(stats.hashes.average())} (avg)",
             f"A:{stats.shares.accepted} R:{stats.shares.rejected_total} HW:{stats.hw_errors}"]
    if stats.temperature is not None:
        parts.append(f"{stats.temperature:.1f}C")
    if stats.frequency is not None:
        parts.append(f"{stats.frequency:g}MHz")
    if device.port:
        parts.append(device.port)
    return " | ".join(parts)


class Miner:
    def __init__(self, source: JobSource, devices: Sequence[Device], dispatcher: Dispatcher,
                 status_interval: float = 5.0, manager: DeviceManager | None = None,
                 gather_seconds: float = GATHER_SECONDS):
        self.source = source
        # With a manager, share its list: hot-plugged devices appear here as they are found.
        self.manager = manager
        self.devices = manager.devices if manager is not None else list(devices)
        self.dispatcher = dispatcher
        self.status_interval = status_interval
        self.gather_seconds = gather_seconds
        self.totals = ShareStats()
        # Share results per source name: kept when a pool is removed, so totals never shrink.
        self.by_source: dict[str, ShareStats] = {}
        self.recent = RecentShares()  # the last answered shares, for the dashboard's share log
        self.started = time.monotonic()
        self.nonces = NonceQueue()
        self._share_path_idle = False  # the share path waits for nonces: one from the loop is checked inline
        self._submit_next: CheckedNonce | None = None  # an inline check's share, for the share path to submit
        self._log_limit = LogLimiter(log)
        self._reported_shed = 0
        self.share_path_faults = 0  # nonces whose check or submit raised unexpectedly (a bug or a bad job)
        self._faults_logged: set[tuple[str, str]] = set()
        self._named: dict[str, Device] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        # Told of every answered share after the counters (the share log); must not block.
        self.share_listeners: list[ResultSink] = []
        dispatcher.add_listener(self._on_job)
        # The engine is the only caller of dispatcher.set_job: sources hand their jobs here.
        source.bind(dispatcher.set_job, self._on_share_result)

    def source_results(self, source: str) -> ShareStats:
        results = self.by_source.get(source)  # not setdefault: that builds a ShareStats per nonce
        if results is None:
            results = self.by_source[source] = ShareStats()
        return results

    def _on_share_result(self, share: CheckedNonce, accepted: bool, reason: str | None) -> None:
        job = share.work.job
        when = time.time()
        self.source_results(job.source).note_result(accepted, reason, job.share_difficulty, share.difficulty, when)
        self.recent.add(when, share.nonce.device, job.source, job.share_difficulty, share.difficulty, accepted, reason)
        for listener in self.share_listeners:
            listener(share, accepted, reason)
        device = self.device_named(share.nonce.device)
        if device is None:
            return
        device.stats.shares.note_result(accepted, reason, job.share_difficulty, share.difficulty, when)
        device.stats.last_share_source = job.source

    # Called from device threads: never blocks, never grows past the queue's limit.
    def on_nonce(self, nonce: Nonce) -> None:
        if self._loop is None:
            return
        if (self._share_path_idle and self._submit_next is None and self.gather_seconds <= 0 and not self.nonces
                and self._on_loop()):
            # A device mining on the loop (devices/serialport.py, LoopHost) with the share path idle
            # and nothing queued: checked here, at once and in order, with no queue, Future or task
            # step per nonce (docs/architecture.md, "Host cost"). A share to submit is the share
            # path's (the submit awaits the pool); the next nonce queues behind it, so order holds.
            share = self._verdict_supervised(nonce)
            if share is not None:
                self._submit_next = share
                self.nonces.nudge()
            return
        self.nonces.put(nonce)

    @property
    def share_path_idle(self) -> bool:
        """The share path waits for nonces (a nonce from the loop's thread is then checked inline)."""
        return self._share_path_idle

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:  # a device thread
            return False

    def _on_job(self, job: Job, restart: bool) -> None:
        for device in self.devices:
            if job.device and device.name != job.device:
                continue  # a job for one device alone (a Stratum V2 standard channel, docs/sv2.md §8)
            if restart:
                device.restart_work()
            else:
                device.work_available()

    async def _share_path(self) -> None:
        while True:
            if self._submit_next is None and not self.nonces:
                self._share_path_idle = True
                try:
                    await self.nonces.wait()
                finally:
                    self._share_path_idle = False
            await self._submit_pending()
            if self.gather_seconds > 0:
                await asyncio.sleep(self.gather_seconds)  # puts meanwhile wake nothing: the wake is pending
            # A batch ends after BATCH nonces or YIELD_AFTER s, whichever comes first: under a flood
            # a check and its submit can take a millisecond each (the hashing threads compete for
            # the GIL too), and 256 of them in a row held a SIGTERM for up to 1.7 s (issue 14, item 7).
            began = time.monotonic()
            drained = False
            for _ in range(BATCH // TAKE):
                taken = self.nonces.take(TAKE)
                for nonce in taken:
                    await self._check_supervised(nonce)
                if len(taken) < TAKE:
                    drained = True
                    break
                if time.monotonic() - began > YIELD_AFTER:
                    break
            self._note_shed()
            if not drained:  # a flood: let stop, timers and the sockets in between batches (the queue
                await asyncio.sleep(0)  # ran dry otherwise, and the wait above yields anyway)

    def _note_shed(self) -> None:
        shed = self.nonces.shed
        if shed != self._reported_shed:
            now = time.monotonic()
            if self._log_limit.log(now, logging.WARNING, "shed", "share path behind: %d nonce(s) shed so far "
                                   "(queue full at %d)", shed, self.nonces.limit):
                self._reported_shed = shed

    async def _drain(self, seconds: float = DRAIN_SECONDS) -> None:
        """Check and send the nonces still queued when the devices stopped: they are valid work.
        A flood is cut off after `seconds`, so stop stays quick; what is left is counted as shed."""
        deadline = time.monotonic() + seconds
        await self._submit_pending()
        while time.monotonic() < deadline:
            batch = self.nonces.take(TAKE)  # small takes: the deadline holds under a flood too
            if not batch:
                break
            for nonce in batch:
                await self._check_supervised(nonce)
        left = self.nonces.take(len(self.nonces))
        if left:
            self.nonces.shed += len(left)
            log.warning("stop: %d queued nonce(s) not checked", len(left))

    async def _submit_pending(self) -> None:
        """Submit the share an inline check (on_nonce) left for the share path."""
        share, self._submit_next = self._submit_next, None
        if share is None:
            return
        try:
            await self.source.submit(share)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - supervision of the share path
            self._share_path_fault(share.nonce, exc)

    def _verdict_supervised(self, nonce: Nonce) -> CheckedNonce | None:
        """`_verdict` under the share path's supervision (see `_check_supervised`)."""
        try:
            return self._verdict(nonce)
        except Exception as exc:  # noqa: BLE001 - supervision of the share path
            self._share_path_fault(nonce, exc)
            return None

    async def _check_supervised(self, nonce: Nonce) -> None:
        """The share path must outlive any one nonce: an unexpected error (a bug, or a job no check
        can handle) drops that nonce, is logged with its traceback once per kind, and counted."""
        try:
            await self._check(nonce)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - supervision of the share path
            self._share_path_fault(nonce, exc)

    def _share_path_fault(self, nonce: Nonce, exc: Exception) -> None:
        """Count and log one nonce's unexpected error (called inside its except block: the traceback)."""
        self.share_path_faults += 1
        key = (type(exc).__name__, str(exc)[:200])
        if key not in self._faults_logged:
            self._faults_logged.add(key)
            log.exception("%s: share path error on nonce %08x (dropped; the share path goes on)",
                          nonce.device, nonce.nonce)
        else:
            self._log_limit.log(time.monotonic(), logging.WARNING, "share-fault", "%s: share path error "
                                "on nonce %08x again: %s: %s (%d so far)", nonce.device, nonce.nonce,
                                type(exc).__name__, exc, self.share_path_faults)

    async def _check(self, nonce: Nonce) -> None:
        share = self._verdict(nonce)
        if share is not None:
            await self.source.submit(share)

    def _verdict(self, nonce: Nonce) -> CheckedNonce | None:
        """Check one nonce and count it; the share when it must go to the source (None otherwise)."""
        device = self.device_named(nonce.device)
        # A nonce from no known device is held to the share target.
        share = check_reported(nonce, self.dispatcher.lookup,
                               device.target_for if device is not None else lambda work: work.target)
        if share is None:
            self._log_limit.log(time.monotonic(), logging.WARNING, "unknown-work",
                                "%s: nonce %08x for unknown work %d dropped", nonce.device, nonce.nonce,
                                nonce.work_id)
            return None
        self.totals.found += 1
        if device is not None:
            device.on_verdict(share)  # the device's statistics and per-chip counters follow this verdict
        if share.verdict is Verdict.HW_ERROR:
            self.totals.hw_errors += 1
            self._log_limit.log(time.monotonic(), logging.WARNING, "hw-error",
                                "%s: hardware error, nonce %08x does not meet its target", nonce.device,
                                nonce.nonce)
            return None
        self.totals.note_best(share.difficulty)
        # difficulty-1 work: the valid nonce counts at the difficulty it was checked at (cgminer's diff1)
        diff1 = target_to_difficulty(device.target_for(share.work) if device is not None else share.work.target)
        self.totals.diff1 += diff1
        self.source_results(share.work.job.source).diff1 += diff1
        if device is not None:
            device.stats.shares.diff1 += diff1
        if share.verdict in (Verdict.SHARE, Verdict.BLOCK):
            return share
        return None

    def device_named(self, name: str) -> Device | None:
        # Looked up once per nonce: by a dict, checked against the live list (hot-plug changes it).
        device = self._named.get(name)
        if device is not None and device.name == name and device in self.devices:
            return device
        for device in self.devices:
            if device.name == name:
                self._named[name] = device
                return device
        return None

    def hashrate(self, window: float | None = None) -> float:
        if window is None:
            return sum(d.stats.hashes.average() for d in self.devices)
        return sum(d.stats.hashes.rate(window) for d in self.devices)

    def status_line(self) -> str:
        s = self.source.stats
        parts = [
            f"{format_hashrate(self.hashrate(5.0))} (5s) {format_hashrate(self.hashrate())} (avg)",
            f"A:{s.accepted} R:{s.rejected_total} S:{s.stale} HW:{self.totals.hw_errors}",
        ]
        job = self.dispatcher.shown_job  # with a standard channel per device, one of theirs
        if job is not None:
            parts.append(f"diff {format_difficulty(job.share_difficulty)}")
        parts.append(f"best {format_difficulty(max(s.best_difficulty, self.totals.best_difficulty))}")
        parts.append(self.source.status(self.source_rate))
        return " | ".join(parts)

    def source_rate(self, source: str) -> str:
        """Hash rate spent on one source's work, 5 s / average."""
        short = sum(d.stats.source_rate(source, 5.0) for d in self.devices)
        average = sum(d.stats.source_rate(source, None) for d in self.devices)
        return f"{format_hashrate(short)}/{format_hashrate(average)}"

    async def _status(self) -> None:
        while True:
            await asyncio.sleep(self.status_interval)
            log.info("%s", self.status_line())
            if len(self.devices) > 1:
                for d in self.devices:
                    log.info("  %s", device_line(d))

    def request_stop(self) -> None:
        """End `run` cleanly (Ctrl-C, SIGTERM, the API's quit); safe to call before `run` starts."""
        if self._stop_requested is None:
            self._stop_requested = asyncio.Event()
        self._stop_requested.set()

    async def run(self, time_limit: float | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self.nonces.bind(self._loop)
        if self._stop_requested is None:
            self._stop_requested = asyncio.Event()
        await self.source.start()
        for device in self.devices:
            if device.enabled:
                device.start()
        tasks = [asyncio.create_task(self._share_path())]
        if self.status_interval > 0:  # 0: a live status view shows it instead
            tasks.append(asyncio.create_task(self._status()))
        if self.manager is not None:
            tasks.append(asyncio.create_task(self.manager.run()))
        try:
            await asyncio.wait_for(self._stop_requested.wait(), time_limit)
        except TimeoutError:
            pass
        finally:
            stopping = time.monotonic()
            # every device stops at once (each may wait for a scan or a reply); the share path goes on meanwhile
            await asyncio.gather(*(asyncio.to_thread(device.stop) for device in self.devices))
            tasks[0].cancel()  # the share path; what it had not taken yet is drained here
            await asyncio.gather(tasks[0], return_exceptions=True)
            # the drain gets what is left of STOP_CHECKING once the devices are down, DRAIN_SECONDS at most
            await self._drain(max(0.1, min(DRAIN_SECONDS, STOP_CHECKING - (time.monotonic() - stopping))))
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.source.stop()
            log.info("final: %s", self.status_line())
