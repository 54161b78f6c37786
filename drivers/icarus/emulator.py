"""An Icarus-family stick on a pseudo-terminal: the driver cannot tell it from the hardware.

It does what docs/icarus.md §A4 says a stick does: a 64-byte packet starts a job at once (abandoning
the one before), each engine counts the big-endian nonce N up from the start of its share of the
range, every hash at the stick's target is answered with the 4-byte reply (5 with the work id on
Antminers), and nothing is said otherwise. Antminers take 4-byte clock and voltage commands; the
hash rate scales with the clock. Hashing is real (the C core, from the midstate the packet
carries), paced to the emulated rate; `--difficulty` below 1 reports easier nonces so a CPU-speed
emulator gives tests something to count.

Faults on request: garbage bytes, a reply cut short, wrong nonces (hardware errors), silence, and
an unplug (the pty closes) with a replug (a new pty, behind the same link path if one was given).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass

from miner.drivers.icarus import protocol as p
from miner.drivers.kit.emulation import (
    PtyPort,
    Unplugged,
    emulator_arguments,
    paced_scan,
    serve_until_stopped,
    wait_until,
)

from miner.core import hashing

log = logging.getLogger(__name__)

COMMAND_GAP = 0.010  # a 4-byte command is a burst followed by this much silence (docs/icarus.md Part C)
PARTIAL_PACKET_TIMEOUT = 0.2  # an incomplete packet with no more bytes for this long is dropped
# A U3 at its power-on voltage: ~5 GH/s of the ~63 GH/s it makes once set up (luke-jr/bfgminer #628).
POWER_ON_FRACTION = 5.0 / 63.0
# A job is hashed in small chunks, so the golden nonce (100 258 hashes in) comes back after ~106 000
# hashes (8192, then 16384 at a time) instead of after a whole chunk, and a new packet stops the old
# job within one chunk (the scan checks between chunks). Measured, docs/icarus.md §A7.1b:
# benchmarks/bench_emulator_golden.py.
FIRST_CHUNK = 1 << 13
LAST_CHUNK = 1 << 14
# The front of a job (engine 0's first FRONT nonces, where the golden nonce is) is hashed by the
# serving thread itself, the one the packet woke, before engine 0's hashing thread takes the rest.
# On a loaded machine that matters: the scheduler runs a thread that has been waiting on the port at
# once, while the hashing thread, busy with the old job, waits its turn behind every other process
# (measured: docs/icarus.md §A7.1b). Only for sticks that are through the front within FRONT_LEAD,
# whose nonces there are due as soon as the CPU finds them; slower ones are paced by their thread.
FRONT = 1 << 17
FRONT_LEAD = 0.005


@dataclass(frozen=True, slots=True)
class Sent:
    """A reply the emulator wrote, with the job it answers (for tests to verify)."""

    packet: p.WorkPacket
    reply: p.Reply
    valid: bool  # False for an injected wrong nonce


class IcarusEmulator:
    def __init__(self, model: str = "u3", rate_ghs: float | None = None, difficulty: float = 1.0,
                 link: str | os.PathLike[str] | None = None, engine: str | None = None):
        self.model = p.model_named(model)
        if not difficulty > 0:
            raise ValueError(f"difficulty must be positive, got {difficulty}")
        self.difficulty = difficulty
        self.target = p.nonce_target(difficulty)
        self.base_rate = rate_ghs * 1e9 if rate_ghs else self.model.hashrate()
        self.engine = hashing.check_engine(engine)
        self.port = PtyPort(link)
        self._lock = threading.Lock()  # one writer at a time, and the fault state
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._generation = 0  # bumped by every new job, unplug and stop: running jobs check it
        # One hashing thread per engine for the emulator's life, each taking the latest job: no
        # thread is started per job, and an abandoned job never hashes beside the new one.
        self._engines = list(self.model.engine_ranges())
        self._hashers: list[threading.Thread] = []
        self._wakeups = [threading.Event() for _ in self._engines]
        # the latest job: packet, generation, rate per engine, and where each engine starts (engine 0
        # after the front the serving thread hashed)
        self._work: tuple[p.WorkPacket, int, float, dict[int, int]] | None = None
        self._front_pending = False
        self._power_on()
        # what happened, for tests and the log
        self.jobs: list[p.WorkPacket] = []
        self.commands: list[p.Command] = []
        self.sent: list[Sent] = []
        # Hashes really done, so tests can expect nonces from the work done, not from the clock: a loaded
        # CPU hashes slower than the emulated rate.
        self.hashes_scanned = 0
        self.hashes_at_first_reply: int | None = None  # hashes done when the first reply went out
        self.dropped_partial = 0
        # faults
        self._wrong_nonces = 0
        self._silent_until = 0.0

    def _power_on(self) -> None:
        self.frequency = self.model.default_mhz
        # A U3 hashes from power-on, before any voltage or clock command: bfgminer sends the golden
        # packet first and applies voltage and clock only after detection (driver-antminer.c,
        # antminer_detect_one_with_drv -> icarus_detect_custom; the settings are set-device options
        # applied later by deviceapi.c cgpu_set_defaults), and an owner's log (luke-jr/bfgminer issue
        # #628) shows U3s found that way and hashing "only up to 5 GH/s" until voltage and clock were
        # set. So the emulated U3 answers the golden packet at once and hashes at POWER_ON_FRACTION of
        # its rate until its first voltage command (docs/icarus.md §A8.3). A 0 mV command still stops it.
        self.powered = True
        self.voltage_set = self.model.default_millivolts is None

    # ------------------------------------------------------------ life
    @property
    def device_path(self) -> str:
        return self.port.device_path

    @property
    def rate(self) -> float:
        """Hashes per second now: the base rate scaled by the clock (and, for a U3 not yet given its
        voltage, by the power-on fraction)."""
        rate = self.base_rate if self.voltage_set else self.base_rate * POWER_ON_FRACTION
        if self.model.default_mhz and self.frequency:
            return rate * self.frequency / self.model.default_mhz
        return rate

    def start(self) -> IcarusEmulator:
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=f"icarus-emu-{self.port.path}", daemon=True)
        self._thread.start()
        self._hashers = [threading.Thread(target=self._hasher, args=(index, start, count), daemon=True,
                                          name=f"icarus-emu-hash{index}")
                         for index, (start, count) in enumerate(self._engines)]
        for hasher in self._hashers:
            hasher.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._abandon()
        for wakeup in self._wakeups:
            wakeup.set()
        for thread in [self._thread, *self._hashers]:
            if thread is not None:
                thread.join(2.0)
        self._thread = None
        self._hashers = []
        self.port.close()

    def __enter__(self) -> IcarusEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_difficulty(self, difficulty: float) -> None:
        """Report nonces at `difficulty` from the next job on (the `--difficulty` knob, at run time)."""
        if not difficulty > 0:
            raise ValueError(f"difficulty must be positive, got {difficulty}")
        self.difficulty = difficulty
        self.target = p.nonce_target(difficulty)

    # ------------------------------------------------------------ faults
    def inject_garbage(self, data: bytes | None = None) -> None:
        """Bytes that are no reply at all (line noise); 7 by default, so framing is off afterwards."""
        self._write(data if data is not None else os.urandom(7))

    def inject_short_read(self) -> None:
        """A reply cut short: two bytes, then nothing."""
        self._write(os.urandom(2))

    def inject_wrong_nonce(self, count: int = 1) -> None:
        """The next `count` replies carry nonces that do not meet the target (hardware errors)."""
        with self._lock:
            self._wrong_nonces += count

    def inject_silence(self, seconds: float = 3600.0) -> None:
        """Say nothing for `seconds` (jobs are still taken and hashed; their nonces are lost)."""
        with self._lock:
            self._silent_until = time.monotonic() + seconds

    def resume(self) -> None:
        with self._lock:
            self._silent_until = 0.0

    def unplug(self) -> None:
        self._abandon()
        self.port.unplug()

    def replug(self) -> None:
        """A fresh power-on behind the same path (the link, if there is one)."""
        self._abandon()
        self._power_on()
        self.port.plug()

    # ------------------------------------------------------------ the device
    def _serve(self) -> None:
        buffer = bytearray()
        last = time.monotonic()
        while not self._stop.is_set():
            try:
                data = self.port.read(4096, COMMAND_GAP)
            except Unplugged:
                buffer.clear()
                continue
            now = time.monotonic()
            if data:
                buffer += data
                last = now
                self._leading_commands(buffer)
                while len(buffer) >= p.WORK_SIZE:
                    packet = bytes(buffer[:p.WORK_SIZE])
                    del buffer[:p.WORK_SIZE]
                    self._job(p.WorkPacket.decode(packet), now)
                if self._front_pending and not buffer:
                    self._front(now)
                continue
            if not buffer:
                continue
            if len(buffer) == p.COMMAND_SIZE and self.model.has_clock and p.is_command_start(buffer[0]):
                self._command(bytes(buffer))
                buffer.clear()
            elif now - last >= PARTIAL_PACKET_TIMEOUT:
                log.debug("emulator: dropped %d bytes of an incomplete packet", len(buffer))
                self.dropped_partial += 1
                buffer.clear()

    def _leading_commands(self, buffer: bytearray) -> None:
        """Take the 4-byte commands at the front of bytes that arrived together with a work packet.

        The host leaves a pause after each command (cgminer and bfgminer sleep around them), and a
        command alone is told from the start of a packet by the silence after it (Part C). But this
        loop can be late on a busy machine and read a command (or a U3's voltage and clock
        commands) together with the golden packet behind it: 68 or 72 bytes, no gap between them.
        A buffer that is not a whole number of packets and starts with a command whose CRC holds is
        that command first. A packet that merely starts like a valid command (3 first bytes in 256,
        then a 5-bit CRC: 1 in ~2700) is misread only if its bytes also arrive split; the host writes
        each packet in one go."""
        if not self.model.has_clock:
            return
        while len(buffer) > p.COMMAND_SIZE and len(buffer) % p.WORK_SIZE:
            command = bytes(buffer[:p.COMMAND_SIZE])
            if p.decode_command(command) is None:
                return
            del buffer[:p.COMMAND_SIZE]
            self._command(command)

    def _command(self, data: bytes) -> None:
        command = p.decode_command(data)
        if command is None:
            log.debug("emulator: bad command %s ignored", data.hex())
            return
        self.commands.append(command)
        if isinstance(command, p.FrequencyCommand):
            try:
                self.frequency = self.model.frequency_of(command)
            except ValueError as exc:  # a word for another chip's PLL (a U1 command sent to a U3)
                log.debug("emulator: PLL word %#06x ignored: %s", command.reg, exc)
        elif isinstance(command, p.VoltageCommand):
            self.powered = command.millivolts > 0
            self.voltage_set = True
        # Register reads (0x84): what a BM1380 answers is not known (docs/icarus.md, uncertainty 2);
        # cgminer discards whatever comes, so the emulator stays silent.

    def _abandon(self) -> None:
        with self._lock:
            self._generation += 1

    def _job(self, packet: p.WorkPacket, now: float) -> None:
        self._abandon()  # a new packet abandons the current job at once (§A4 item 1)
        self.jobs.append(packet)
        self._front_pending = False
        if not self.powered:
            return
        rate = self.rate / self.model.engines
        with self._lock:
            self._work = (packet, self._generation, rate, {})
        self._front_pending = min(FRONT, self._engines[0][1]) / rate <= FRONT_LEAD
        for index, wakeup in enumerate(self._wakeups):
            if index or not self._front_pending:
                wakeup.set()

    def _front(self, arrived: float) -> None:
        """Hash the front of engine 0's range here, answering what it finds, then hand the rest of
        the range to engine 0's thread. Bytes from the host end it early (the serving thread must
        read them: a new job, a command)."""
        self._front_pending = False
        with self._lock:
            work = self._work
        if work is None or work[1] != self._generation:
            return
        packet, generation, rate, starts = work
        start, count = self._engines[0]
        pos, end = start, start + min(FRONT, count)
        scan = self._scanner(packet)
        while pos < end and not self.port.has_input():
            size = min(FIRST_CHUNK, end - pos)
            for nonce in scan(pos, size):
                wait_until(arrived + (nonce - start) / rate, lambda: False, step=0.001)  # <= FRONT_LEAD
                self._answer(packet, p.Reply(nonce, packet.work_id & p.WORK_ID_MASK if self.model.work_ids
                                             else None), generation)
                if self.model.first_nonce_only:
                    return  # engine 0 is done with the job (§A4 item 3)
            pos += size
        with self._lock:
            if self._generation != generation:
                return
            starts[0] = pos
        self._wakeups[0].set()

    def _hasher(self, index: int, start: int, count: int) -> None:
        """Engine `index`: hash its share of the latest job, then wait for the next one."""
        wakeup = self._wakeups[index]
        while not self._stop.is_set():
            wakeup.wait()
            wakeup.clear()
            with self._lock:
                work = self._work
            if work is None or work[1] != self._generation:
                continue  # abandoned already (an unplug); the next job wakes this thread again
            packet, generation, rate, starts = work
            begin = starts.get(index, start)
            if begin < start + count:
                self._hash(packet, generation, begin, start + count - begin, rate)

    def _hash(self, packet: p.WorkPacket, generation: int, start: int, count: int, rate: float) -> None:
        def stale() -> bool:
            return self._generation != generation or self._stop.is_set()

        for found in paced_scan(b"", self.target, rate, start, count, stale, chunk=LAST_CHUNK,
                                scanner=self._scanner(packet), first_chunk=FIRST_CHUNK):
            if not wait_until(found.due, stale, step=0.005):
                return
            reply = p.Reply(found.nonce, packet.work_id & p.WORK_ID_MASK if self.model.work_ids else None)
            self._answer(packet, reply, generation)
            if self.model.first_nonce_only:
                return  # this engine is done with the job (§A4 item 3)

    def _scanner(self, packet: p.WorkPacket):
        """scan(first, size): the nonces at the stick's target, counting the hashes done."""
        def scan(first: int, size: int) -> list[int]:
            found = hashing.scan_midstate(packet.midstate, packet.tail, first, size, self.target, self.engine,
                                          nonce_be=True)
            with self._lock:
                self.hashes_scanned += size
            return found
        return scan

    def _answer(self, packet: p.WorkPacket, reply: p.Reply, generation: int) -> None:
        with self._lock:
            if self._generation != generation or time.monotonic() < self._silent_until:
                return
            valid = True
            if self._wrong_nonces:
                self._wrong_nonces -= 1
                reply = p.Reply(self._bad_nonce(packet, reply.n), reply.work_id)
                valid = False
            with contextlib.suppress(Unplugged, OSError):
                self.port.write(reply.encode())
                self.sent.append(Sent(packet, reply, valid))
                if self.hashes_at_first_reply is None:
                    self.hashes_at_first_reply = self.hashes_scanned

    def _bad_nonce(self, packet: p.WorkPacket, n: int) -> int:
        """A nonce near `n` that does not meet the target (checked, so the fault is certain)."""
        for flip in range(1, 1 << 16):
            candidate = n ^ (flip << 8)
            if not hashing.scan_midstate(packet.midstate, packet.tail, candidate, 1, self.target, self.engine,
                                         nonce_be=True):
                return candidate
        return n ^ 0xFFFFFFFF

    def _write(self, data: bytes, quiet: float = 0.1) -> None:
        """Write fault bytes, then keep quiet a moment (noise on a line is followed by a gap, which is
        how the host tells it from the next reply)."""
        with self._lock:
            with contextlib.suppress(Unplugged, OSError):
                self.port.write(data)
            time.sleep(quiet)


def main(name: str, argv: list[str]) -> int:
    """`miner emulate icarus [--model u3] [--rate GH/s] [--difficulty D] [--link PATH]`."""
    default_model = name if name.lower() in p.ALIASES and name.lower() != "icarus" else "u3"
    pre = emulator_arguments(f"miner emulate {name}", "", 1.0)
    pre.add_argument("--model", default=default_model)
    known, _ = pre.parse_known_args(argv)
    try:
        model = p.model_named(known.model)
    except ValueError as exc:
        print(f"miner emulate {name}: {exc}", file=sys.stderr)
        return 2
    parser = emulator_arguments(
        f"miner emulate {name}",
        "Emulate an Icarus-family USB stick (Block Erupter, Antminer U1/U2/U3) on a pseudo-terminal.",
        round(model.hashrate() / 1e9, 3))
    parser.add_argument("--model", default=default_model, choices=sorted(p.ALIASES),
                        help=f"which stick (default {default_model})")
    parser.add_argument("--engine", help="sha256d engine for the hashing (default: the fastest)")
    args = parser.parse_args(argv)
    try:
        emulator = IcarusEmulator(args.model, args.rate, args.difficulty, args.link, args.engine)
    except ValueError as exc:
        print(f"miner emulate {name}: {exc}", file=sys.stderr)
        return 2

    def run(stop: threading.Event) -> None:
        with emulator:
            print(f"{emulator.model.name} at {emulator.rate / 1e9:g} GH/s, difficulty {emulator.difficulty:g}",
                  file=sys.stderr, flush=True)
            stop.wait()

    return serve_until_stopped(emulator.device_path, run)
