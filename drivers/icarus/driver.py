"""The Icarus-family driver: one thread per stick, speaking protocol.py over a serial port.

Identification is the golden-nonce test (icarus.md §A7): the stick must answer the golden packet
with its first nonce. A stick of unknown model is probed as cgminer does: first bare (a 4-byte
answer is an Erupter-class stick, 5 bytes an Antminer U1/U2), then with the U3's voltage and clock
commands (an answer now is a U3).

Timing (§A5): the stick says nothing when it finds nothing, so the driver must know how long the
nonce range lasts. It starts from the model's nominal seconds-per-hash and then fits
elapsed = Hs * hashes + W over the nonces it gets (the nonce value tells how far the stick had
counted), as cgminer's "long" timing mode does; new work goes out when the range is done or a
clean job arrives. Antminer replies carry the work id of their job; Erupter replies do not, so a
nonce arriving just after new work went out is checked against the previous job too (bfgminer
does this), rather than counted as a hardware error: the nonce names the previous unit as its
alternative, and the share path (which hashes it, once) tries that one when the current misses.
The timing fit learns from the share path's verdicts: only valid nonces of the current unit count.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
import time

import serial
from miner.drivers.icarus import protocol as p

from miner.core import hashing
from miner.core.shares import CheckedNonce, Verdict
from miner.core.targets import NONCE_SPACE
from miner.core.work import Nonce, Work
from miner.devices.base import DeviceError, DeviceSpec, NonceSink, NotThisDevice, WorkSource
from miner.devices.portpump import QUEUE_MAX, SENT, Record
from miner.devices.serialport import LoopHost, SerialDevice, open_serial, read_available, read_exactly, write_all

log = logging.getLogger(__name__)

BAUD = 115200
GOLDEN_TIMEOUT = 1.0  # cgminer waits 300 ms; an emulator on a busy CPU needs more
EXTRA_BYTE_WAIT = 0.05  # after 4 golden bytes: is a fifth (the Antminer work id) coming?
DRAIN_QUIET = 0.05  # before identifying: the line counts as quiet after this long without a byte
DRAIN_LIMIT = 0.5  # ... and draining a stick that never stops talking gives up after this long
COMMAND_PAUSE = 0.05  # silence after a 4-byte command, so the stick sees it as one
PARTIAL_REPLY_TIMEOUT = 0.02  # a partial reply with nothing more after this long is dropped
LATE_WINDOW = 1.0  # seconds after new work during which an Erupter reply may still be for the old job
MIN_FIT_HASHES = 0x10000  # nonces found this early say more about latency than speed (cgminer's rule)
FIT_SIZE = 64  # timing samples the fit holds (the most recent)
# Reading a fast stick's replies at the range's end (docs/icarus.md §A5.2): a learning window of
# the timing fit reads each reply as it comes, for its arrival time; it ends after a full fit of
# new samples, or after LEARN_REPLIES replies that gave none (all found too early in their range:
# an emulator at a tiny difficulty), and a new one opens every RELEARN_SECONDS, as cgminer's
# "long" mode keeps estimating (icarus.c, icarus_scanwork: the history's re-estimate).
LEARN_REPLIES = 128
RELEARN_SECONDS = 600.0
HOLD_LIMIT = 0.25  # s: the longest a found nonce may wait in the port's buffer (the range time at most)


@functools.lru_cache(maxsize=16)
def expected_golden(target: int) -> int | None:
    """The first nonce of the golden job at `target`: 0x000187a2 at difficulty 1 (and down to
    difficulty 0.0001), computed so a driver at any `difficulty=` expects what its stick says."""
    packet = p.WorkPacket.decode(p.GOLDEN_WORK)
    found = hashing.scan_midstate(packet.midstate, packet.tail, 0, p.GOLDEN_NONCE + 1, target, nonce_be=True)
    return found[0] if found else None


class IcarusDevice(SerialDevice):
    driver = "icarus"

    def __init__(self, work: WorkSource, sink: NonceSink, name: str, port: str, difficulty: float = 1.0,
                 model: p.Model | None = None, frequency: float | None = None):
        super().__init__(work, sink, name, port, difficulty)
        self.nonce_target = p.nonce_target(difficulty)
        self.chip_model = model  # None until identified when not given
        self._given_model = model
        self._requested_mhz = frequency
        if model is not None and frequency is not None:
            self._check_frequency(model, frequency)
        self.model = model.name if model else ""
        self._identified = False
        self._pending_frequency: tuple[float, bytes] | None = None
        self._fit: collections.deque[tuple[float, float]] = collections.deque(maxlen=FIT_SIZE)
        self._fit_lock = threading.Lock()  # the fit learns in the share path's thread, resets in the device's
        self._hs: float | None = None  # measured seconds per hash
        self._overhead = 0.0  # measured W
        self._range_time = 0.0  # range_time() for the fit and clock in _range_time_key
        self._range_time_key: tuple[object, ...] | None = None
        self._learning = True  # a learning window of the fit is open (timing_wanted)
        self._learn_samples = 0  # samples the fit took in this window
        self._learn_replies = 0  # replies read with their arrival time in this window
        self._relearn_at = 0.0
        self.reads_at_range_end = False  # on the loop: replies are read when the range ends (§A5.2)
        self._ring: list[Work | None] = [None] * p.WORK_ID_COUNT
        self._next_id = 0
        self.comm_errors: collections.Counter[str] = collections.Counter()
        self.jobs_sent = 0

    # ------------------------------------------------------------ settings
    def _check_frequency(self, model: p.Model, mhz: float) -> None:
        try:
            model.check_frequency(mhz)
        except ValueError as exc:
            raise DeviceError(f"{self.name} ({self.port}): {exc}") from None

    def set_frequency(self, mhz: float) -> None:
        model = self.chip_model
        if model is None:
            self._requested_mhz = mhz  # checked once the stick says what it is
            return
        self._check_frequency(model, mhz)
        self._requested_mhz = mhz
        self._pending_frequency = model.frequency_setting(mhz)
        self.restart_work()  # the mining thread sends the command, then fresh work

    def seconds_per_hash(self) -> float:
        if self._hs is not None:
            return self._hs
        model = self.chip_model or p.MODELS["erupter"]
        return 1.0 / model.hashrate(self.stats.frequency)

    def range_time(self) -> float:
        """Seconds the stick needs for the whole nonce range (all engines together).

        Kept until what it follows changes (the fit, or the clock): it is asked on every work tick,
        ~14 times a second per U3, and the fit moves a few times a second at most."""
        hs, overhead = self._hs, self._overhead  # read once: the fit learns in the share path's thread
        key = (hs, overhead, self.stats.frequency, self.chip_model)
        if key == self._range_time_key:
            return self._range_time
        if hs is None:
            hs = 1.0 / (key[3] or p.MODELS["erupter"]).hashrate(key[2])
        self._range_time = value = max(0.01, hs * NONCE_SPACE + overhead)
        self._range_time_key = key
        return value

    def nominal_hashrate(self) -> float | None:
        return 1.0 / self.seconds_per_hash()

    def details(self) -> dict[str, object]:
        info: dict[str, object] = {"Model": self.model or "unknown", "Range time": round(self.range_time(), 3),
                                   "Jobs": self.jobs_sent}
        if self.chip_model is not None and self.chip_model.has_clock:
            info["Frequency range"] = f"{self.chip_model.min_mhz:g}-{self.chip_model.max_mhz:g} MHz"
        info["Timing fit"] = "learning" if self._learning else "learned"
        info["Reply reads"] = "at range end" if self.reads_at_range_end else "as they come"
        for kind, count in self.comm_errors.items():
            info[kind] = count
        return info

    # ------------------------------------------------------------ SerialDevice
    def open_port(self) -> serial.Serial:
        return open_serial(self.port, BAUD, timeout=0.1)

    def initialise(self, port: serial.Serial) -> None:
        expected = expected_golden(self.nonce_target)
        # A re-init (after an unplug or a health check) knows the model already: no new probe.
        model = self._given_model or (self.chip_model if self._identified else None)
        if model is not None:
            outcome = self._golden(port, model, send_setup=True)
            if outcome is None or outcome.n != expected:
                outcome = self._golden(port, model, send_setup=True)  # two tries, as cgminer
        else:
            model, outcome = self._probe(port)
        if outcome is None:
            if self._identified:
                # It passed before: a stick that hangs is a health matter (re-init, then disable).
                log.warning("%s: no answer to the golden-nonce test after re-init; mining anyway", self.name)
                return
            raise NotThisDevice(f"{self.port}: no answer to the golden-nonce test: not an Icarus-family "
                                f"stick (or not powered)")
        if outcome.n != expected:
            raise NotThisDevice(f"{self.port}: answered the golden-nonce test with {outcome.raw.hex()} "
                                f"instead of {expected:08x}: not an Icarus-family stick")
        if model is not None and outcome.size != model.reply_size:
            raise NotThisDevice(f"{self.port}: answers in {outcome.size}-byte replies; a {model.name} sends "
                                f"{model.reply_size} (wrong model= option?)")
        assert model is not None
        self.chip_model = model
        self.model = model.name
        if model.has_clock:
            if self._requested_mhz is not None:
                self._check_frequency(model, self._requested_mhz)
            mhz, command = model.frequency_setting(self._requested_mhz or model.default_mhz)  # type: ignore[arg-type]
            self._command(port, command)
            self.stats.frequency = mhz
        self._identified = True
        self._reset_fit()
        log.info("%s: %s on %s passed the golden-nonce test%s", self.name, model.name, self.port,
                 f" at {self.stats.frequency:g} MHz" if self.stats.frequency else "")

    def _probe(self, port: serial.Serial) -> tuple[p.Model | None, _Golden | None]:
        """Bare first (Erupter: 4 bytes; U1/U2: 5), then as a U3 (voltage and clock first)."""
        expected = expected_golden(self.nonce_target)
        outcome = None
        for _ in range(2):  # two tries per pass, as cgminer (noise on the line spoils one)
            outcome = self._golden(port, None, send_setup=False)
            if outcome is not None and outcome.n == expected:
                return (p.MODELS["u1"] if outcome.size == p.ANT_REPLY_SIZE else p.MODELS["erupter"]), outcome
        u3 = p.MODELS["u3"]
        for _ in range(2):
            answer = self._golden(port, u3, send_setup=True)
            if answer is not None and answer.n == expected:
                return u3, answer
            outcome = answer or outcome
        return None, outcome

    def _golden(self, port: serial.Serial, model: p.Model | None, send_setup: bool) -> _Golden | None:
        self._drain(port)
        if send_setup and model is not None and model.has_clock:
            if model.default_millivolts:
                self._command(port, p.voltage_command(model.default_millivolts))
            mhz = self._requested_mhz if self._requested_mhz is not None else model.default_mhz
            if mhz is not None and model.min_mhz is not None and model.min_mhz <= mhz <= (model.max_mhz or mhz):
                self._command(port, model.frequency_setting(mhz)[1])
        port.write(p.GOLDEN_WORK)
        port.flush()
        return self._read_golden(port, expected_golden(self.nonce_target))

    def _drain(self, port: serial.Serial) -> None:
        """Forget what a stick that was mining before (a previous run, a re-init) still says: read
        until the line has been quiet for DRAIN_QUIET, for at most DRAIN_LIMIT. A stick keeps
        hashing its last job across host runs, so without this the next run's golden answer comes
        behind a stale reply (docs/icarus.md §A7.1)."""
        port.reset_input_buffer()
        deadline = time.monotonic() + DRAIN_LIMIT
        dropped = 0
        while time.monotonic() < deadline:
            chunk = read_available(port, DRAIN_QUIET)
            if not chunk:
                break
            dropped += len(chunk)
        if dropped:
            self.comm_errors["Stale bytes"] += dropped
            log.info("%s: %d stale bytes from the stick's previous job dropped before identifying", self.name, dropped)

    def _read_golden(self, port: serial.Serial, expected: int | None) -> _Golden | None:
        """Collect the answer to the golden packet. A reply for the stick's previous job may still
        come first (it was in flight when the packet arrived), so the golden reply is looked for at
        every offset, and what precedes it is dropped; the bytes that follow it within
        EXTRA_BYTE_WAIT tell a 5-byte (Antminer) stick from a 4-byte one."""
        wanted = expected.to_bytes(4, "big") if expected is not None else None
        deadline = time.monotonic() + GOLDEN_TIMEOUT
        data = bytearray()
        while time.monotonic() < deadline:
            data += read_exactly(port, p.REPLY_SIZE, min(0.1, max(0.0, deadline - time.monotonic())))
            at = data.find(wanted) if wanted is not None else -1
            if at >= 0:
                tail = data[at:]
                while more := read_available(port, EXTRA_BYTE_WAIT):
                    tail += more
                    if len(tail) > 64:
                        break
                if at:
                    self.comm_errors["Stale bytes"] += at
                    log.info("%s: %d stale bytes before the golden answer dropped (%s)", self.name, at,
                             bytes(data[:at]).hex())
                return _Golden(bytes(tail), golden_reply_size(bytes(tail), self.nonce_target))
        return _Golden(bytes(data)) if data else None

    def _command(self, port: serial.Serial, command: bytes) -> None:
        time.sleep(COMMAND_PAUSE)
        port.write(command)
        port.flush()
        time.sleep(COMMAND_PAUSE)

    def idle(self, port: serial.Serial) -> None:
        # There is no stop command: a stick stops after its range; nothing to send.
        pass

    # ------------------------------------------------------------ mining
    def mine(self, port: serial.Serial) -> None:
        model = self.chip_model or p.MODELS["erupter"]
        loop = self.host_loop()
        if loop is not None:
            # On the event loop (serialport.py, LoopHost): the same rules as the threaded loop below,
            # driven by the port's bytes and one timer. It hands the thread back for a frequency
            # change (the command needs its pauses), which is made here before mining goes on.
            while not self.stopping() and not self.reinit_requested():
                if self._pending_frequency is not None:
                    self._apply_frequency(port)
                mining = _LoopMining(self, model)
                mining.host = LoopHost(loop, port, mining.records, mining.tick, on_release=mining.release)
                try:
                    on_loop = self.mine_on_loop(mining.host)
                finally:
                    self.reads_at_range_end = False
                if not on_loop:
                    break  # the loop stopped meanwhile: the thread mines, as without one
                if self._pending_frequency is None:
                    return
        self._mine_threaded(port, model)

    def _apply_frequency(self, port: serial.Serial) -> None:
        assert self._pending_frequency is not None
        mhz, command = self._pending_frequency
        self._pending_frequency = None
        self.stats.frequency = mhz
        self._command(port, command)
        self._reset_fit()

    def _mine_threaded(self, port: serial.Serial, model: p.Model) -> None:
        framer = p.ReplyFramer(model.reply_size)
        current: Work | None = None
        previous: Work | None = None
        sent_at = 0.0
        last_byte = 0.0
        done = False  # the stick has stopped working on `current`
        while not self.stopping() and not self.reinit_requested():
            if self._pending_frequency is not None:
                self._apply_frequency(port)
                current = None
            restart = self.take_restart()
            now = time.monotonic()
            # Once a pass (not once per use): the pass runs ~28 times a second per U3, and the fit
            # that changes it learns a few times a second at most (benchmarks/bench_host_cost.py).
            range_time = self.range_time()
            if restart or done or current is None or now - sent_at >= range_time:
                work = self.next_work(wait=0.2)
                if work is not None:
                    # A clean job's old work keeps its id too: a late nonce for it is stale, not broken.
                    previous, current = current, work
                    now = sent_at = self._send(port, work, model)
                    done = False
                elif current is None:
                    continue
            wait = min(0.1, max(0.001, sent_at + range_time - now))
            data = read_available(port, wait)
            now = time.monotonic()
            if data and framer.pending and now - last_byte > PARTIAL_REPLY_TIMEOUT:
                self._drop_partial(framer)  # a reply is written in one go: old bytes belong to no reply
            if data:
                last_byte = now
                for reply in framer.feed(data):
                    work = self._reply(reply, model, current, previous, sent_at, now)
                    # sticks that stop at their first find want new work at once (§A4 item 3)
                    done = done or (model.first_nonce_only and work is current)
            elif framer.pending and now - last_byte > PARTIAL_REPLY_TIMEOUT:
                self._drop_partial(framer)

    def _drop_partial(self, framer: p.ReplyFramer) -> None:
        dropped = framer.flush_partial()
        self.comm_errors["Short reads"] += 1
        log.warning("%s: dropped %d bytes of an incomplete reply (%s)", self.name, len(dropped), dropped.hex())

    def _send(self, port: serial.Serial, work: Work, model: p.Model) -> float:
        write_all(port, self._packet(work, model))  # sent when it returns: the range timing starts now
        self.jobs_sent += 1
        return time.monotonic()

    def _packet(self, work: Work, model: p.Model) -> bytes:
        work_id = 0
        if model.work_ids:
            work_id = self._next_id
            self._ring[work_id] = work
            self._next_id = (self._next_id + 1) % p.WORK_ID_COUNT
        return p.work_packet(hashing.midstate(work.header), work.header, work_id)

    def _reply(self, reply: p.Reply, model: p.Model, current: Work | None, previous: Work | None,
               sent_at: float, now: float, timed: bool = True) -> Work | None:
        """Report one reply as a `Nonce` of the work it most likely belongs to (returned). `now`
        is when it came; untimed (read at the range's end), only that it came by `now`."""
        alternatives: tuple[Nonce, ...] = ()
        if model.work_ids:
            work = self._ring[reply.work_id] if reply.work_id is not None and reply.work_id < p.WORK_ID_COUNT else None
            if work is None:
                self.comm_errors["Unknown work ids"] += 1
                self.stats.note_hw_error()
                log.warning("%s: reply %s for work id %s never sent", self.name, reply.encode().hex(), reply.work_id)
                return None
        else:
            work = current
            if work is None:
                return None
            if previous is not None and (not timed or now - sent_at < LATE_WINDOW):
                # Found by the old job just before the stick took the new one? The share path decides.
                alternatives = (Nonce(previous.work_id, reply.header_nonce, device=self.name, found_at=now),)
        # The timing sample rides along; the fit takes it if the share path finds the nonce valid.
        tag = None
        if timed and work is current:
            tag = (p.hashes_done(reply.n, model.engines), now - sent_at)
            self._learn_replies += 1
        self.report_nonce(Nonce(work.work_id, reply.header_nonce, device=self.name, found_at=now, tag=tag,
                                alternatives=alternatives))
        return work

    def on_verdict(self, share: CheckedNonce) -> None:
        super().on_verdict(share)
        sample = share.nonce.tag
        if share.verdict is not Verdict.HW_ERROR and isinstance(sample, tuple):
            self._learn_timing(*sample)

    def _reset_fit(self) -> None:
        with self._fit_lock:
            self._fit.clear()
            self._hs = None
            self._open_learning()

    def _open_learning(self) -> None:
        self._learning = True
        self._learn_samples = self._learn_replies = 0

    def timing_wanted(self, now: float) -> bool:
        """Does the fit want each reply's arrival time now (a learning window is open)?"""
        if self._learning:
            if self._learn_samples >= FIT_SIZE or self._learn_replies >= LEARN_REPLIES:
                self._learning = False
                self._relearn_at = now + RELEARN_SECONDS
        elif now >= self._relearn_at:
            self._open_learning()
        return self._learning

    def _learn_timing(self, hashes: int, elapsed: float) -> None:
        """Least-squares fit of elapsed = Hs * hashes + W over recent valid nonces (§A5)."""
        if hashes < MIN_FIT_HASHES or hashes > NONCE_SPACE - MIN_FIT_HASHES:
            return
        with self._fit_lock:
            self._fit.append((float(hashes), elapsed))
            self._learn_samples += 1
            n = len(self._fit)
            if n < 3:
                self._hs = sum(t for _, t in self._fit) / sum(x for x, _ in self._fit)
                self._overhead = 0.0
                return
            mean_x = sum(x for x, _ in self._fit) / n
            mean_t = sum(t for _, t in self._fit) / n
            var = sum((x - mean_x) ** 2 for x, _ in self._fit)
            if var <= 0:
                return
            hs = sum((x - mean_x) * (t - mean_t) for x, t in self._fit) / var
            if hs <= 0:
                return
            self._hs = hs
            self._overhead = max(0.0, mean_t - hs * mean_x)


def reads_each_reply(model: p.Model, range_time: float, part_read: bool, learning: bool) -> bool:
    """Must a stick on the loop have each reply read as it comes (else: at the range's end)?
    Yes while a reply is part-read (its deadline needs byte times), while the fit learns (it
    needs arrival times), for a stick that stops at its first find (it wants new work at once),
    and when the range is longer than HOLD_LIMIT (a found nonce would wait that long)."""
    return part_read or learning or model.first_nonce_only or range_time > HOLD_LIMIT


def queue_depth(range_time: float) -> int:
    """Packets kept queued in the port pump: the pump asks for more when one is left, so the loop
    wakes once per depth - 1 ranges, and a nonce read at a range's end waits that many ranges at
    most before it is checked: HOLD_LIMIT's worth (3 ranges of a U3's 72 ms), at least one."""
    return 1 + max(1, min(QUEUE_MAX - 1, int(HOLD_LIMIT / range_time)))


class _LoopMining:
    """`IcarusDevice._mine_threaded`'s rules on the event loop, through the port pump
    (devices/portpump.py): the pump sends the packets queued here as each range ends and reads
    what the stick answered; `records` takes its records (packets sent, bytes read) a few times
    a second, frames the replies against the work that was on the stick then, and queues the
    next packets. `tick` (attached, told of work or a clean job, or its timer ran) sends at once
    what must go at once: a clean job's work, new work for a stick that stopped at its first find.
    One timer: a partial reply's deadline, or the retry while no work is to be had.

    A fast stick's replies are read at the range's end (docs/icarus.md §A5.2): the pump reads the
    port before it sends the next packet. Each reply is read as it comes (the port watched) while
    a reply is part-read, while the timing fit learns (it needs arrival times), for a stick that
    stops at its first find (it wants new work at once) and when the range is longer than
    HOLD_LIMIT (a nonce would wait too long)."""

    def __init__(self, device: IcarusDevice, model: p.Model):
        self.device = device
        self.model = model
        self.framer = p.ReplyFramer(model.reply_size)
        self.host: LoopHost | None = None
        self.queued: dict[int, Work] = {}  # in the pump, not yet sent, by seq
        self.seq = 0
        self.current: Work | None = None
        self.previous: Work | None = None
        self.sent_at = 0.0
        self.last_byte = 0.0
        self.done = False  # the stick has stopped working on `current`
        self.starved = False  # no work was to be had: retried on the timer

    def tick(self) -> None:
        device, host = self.device, self.host
        assert host is not None
        if device._pending_frequency is not None:  # noqa: SLF001 - its own device's state
            host.finish()  # the command's pauses are the thread's: it takes over (IcarusDevice.mine)
            return
        now = time.monotonic()
        if self.framer.pending and now - self.last_byte > PARTIAL_REPLY_TIMEOUT:
            device._drop_partial(self.framer)  # noqa: SLF001
        if device.take_restart() or self.done:
            work = device.work_source.next_work(device_rolls_version=device.rolls_version)
            if work is not None:
                seq = self._seq(work)
                for dropped in host.send_now(device._packet(work, self.model), seq):  # noqa: SLF001
                    self.queued.pop(dropped, None)
                self.done = False
        self._refill(now)

    def records(self, records: list[Record]) -> None:
        self._take(records)
        if self.done:
            self.tick()  # new work at once (§A4 item 3)
        else:
            self._refill(time.monotonic())

    def release(self, records: list[Record]) -> None:
        """What the port held when the mining ended (stop, re-init): reported, not lost."""
        self._take(records)

    def _take(self, records: list[Record]) -> None:
        device = self.device
        for kind, t, value, data in records:
            if kind == SENT:
                work = self.queued.pop(value, None)
                if work is not None:
                    self.previous, self.current = self.current, work
                    self.sent_at = t  # the pump took the clock just before its write(2)
                    self.done = False
                    device.jobs_sent += 1
            else:
                self._feed(data, t, timed=bool(value))

    def _refill(self, now: float) -> None:
        """Keep the pump's queue full, pace it, and set the one timer."""
        device, host = self.device, self.host
        assert host is not None
        range_time = device.range_time()
        learning = device.timing_wanted(now)  # asked every wake: it also closes and reopens the window
        pending = bool(self.framer.pending)
        watch = reads_each_reply(self.model, range_time, pending, learning)
        host.pace(range_time, watch)
        device.reads_at_range_end = not watch
        self.starved = False
        for _ in range(queue_depth(range_time) - len(self.queued)):
            work = device.work_source.next_work(device_rolls_version=device.rolls_version)
            if work is None:
                self.starved = True  # no job yet; work_available ticks sooner
                break
            if not host.send(device._packet(work, self.model), self._seq(work)):  # noqa: SLF001
                break
        if pending:
            host.call_later(max(0.001, self.last_byte + PARTIAL_REPLY_TIMEOUT - now), self.tick)
        elif self.starved:
            host.call_later(0.2, self.tick)
        else:
            host.cancel_timer()

    def _seq(self, work: Work) -> int:
        self.seq += 1
        self.queued[self.seq] = work
        return self.seq

    def _feed(self, data: bytes, now: float, timed: bool) -> None:
        device = self.device
        if self.framer.pending and now - self.last_byte > PARTIAL_REPLY_TIMEOUT:
            device._drop_partial(self.framer)  # noqa: SLF001 - a reply is written in one go
        self.last_byte = now
        for reply in self.framer.feed(data):
            work = device._reply(reply, self.model, self.current, self.previous, self.sent_at, now, timed)  # noqa: SLF001
            self.done = self.done or (self.model.first_nonce_only and work is self.current)


class _Golden:
    """What a stick answered to the golden packet."""

    def __init__(self, raw: bytes, size: int | None = None):
        self.raw = raw
        self.size = len(raw) if size is None else size
        self.n = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else -1


def golden_reply_size(answer: bytes, target: int) -> int:
    """The reply size of a stick whose answer to the golden packet starts with the golden nonce.
    Usually the answer is that one reply (4 bytes, or 5 with the Antminer work id), but at a report
    difficulty below 1 (an emulator) or with two engines, more golden-job nonces can follow within
    the wait; the size is the one (5 first) whose every further reply is a valid golden-job nonce."""
    packet = p.WorkPacket.decode(p.GOLDEN_WORK)
    for size in (p.ANT_REPLY_SIZE, p.REPLY_SIZE):
        if len(answer) % size:
            continue
        more = [int.from_bytes(answer[i:i + 4], "big") for i in range(size, len(answer), size)]
        if all(hashing.scan_midstate(packet.midstate, packet.tail, n, 1, target, nonce_be=True) for n in more):
            return size
    return len(answer)


def create(spec: DeviceSpec, work: WorkSource, sink: NonceSink, index: int) -> IcarusDevice:
    if not spec.port:
        raise DeviceError("icarus: give the port, e.g. --device icarus:/dev/ttyUSB0")
    model_name = spec.option("model", str)
    try:
        model = p.model_named(model_name) if model_name else None
    except ValueError as exc:
        raise DeviceError(f"icarus:{spec.port}: {exc}") from None
    return IcarusDevice(work, sink, f"ICA{index}", spec.port, spec.difficulty(), model,
                        spec.option("freq", float, spec.option("frequency", float)))
