"""A chain of emulated BM13xx chips behind one pseudo-terminal.

The chain answers the init sequence register by register (broadcast reads: one reply per chip in
chain order; writes and set-address: silent), refuses jobs until it is initialised, rolls version
bits within the 0xA4 mask (BM1366+), honours the ticket mask, and hashes real work with the C core:
full headers for BM1366+, midstates for BM1397, BM1387 and BM1384 (the chip never sees the first
64 header bytes). BM1387/BM1384 answer in the legacy framing (ChipInfo.framing, docs/bm13xx.md §2.4):
7-byte replies, or 5-byte ones with the job id in the last byte and the BM1384's ticket mask taken
from each work block.
A nonce belongs to the chip whose address range holds the nonce's chip field (§5.2), so a chip
that drops out of the chain takes its share of the nonces with it.

Faults for tests: corrupted CRCs, garbage, a wrong chip id under a good CRC, a chip dropping out, a
stall, an unplug.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
import threading
import time
from dataclasses import dataclass, field

from miner.drivers.bm13xx import protocol as p
from miner.drivers.bm13xx.counters import (
    HASHES_PER_COUNT,
    HASHRATE_INVALID,
    HASHRATE_LONG,
    HASHRATE_UNIT,
    REG_DOMAIN_COUNT,
    REG_ERROR_COUNT,
    REG_HASHRATE,
    REG_TOTAL_COUNT,
)
from miner.drivers.kit.bits import bswap32
from miner.drivers.kit.emulation import (
    PtyPort,
    Unplugged,
    emulator_arguments,
    paced_scan,
    serve_until_stopped,
    wait_until,
)

from miner.core import hashing
from miner.core.work import spread_bits

log = logging.getLogger(__name__)

NONCE_WINDOW = 1 << 16  # nonces one lane (midstate or rolled version) scans before the next lane's turn
# A window is hashed in chunks this big: a new job (or clock, or ticket mask) is taken within one
# chunk instead of a whole window, and an early nonce (the golden one a Compac host probes for,
# 100 258 in) is answered ~16 000 hashes sooner (benchmarks/bench_emulator_golden.py).
SCAN_CHUNK = 1 << 14
# Power-on PLL values. BM1384: no source gives its reset clock; 100 MHz (word 0x0783) is where
# cgminer's compac_shutdown leaves it and the bottom of cgminer's Compac table [decision].
# BM1387: no source gives it either; cgminer mines it before any PLL write, taking the chip to be
# at its start frequency; 100 MHz (the chip table's default, 00 20 02 41 in cgminer's
# compac_set_frequency encoding) [decision].
PLL_ENABLE = 0x40000000  # BM1366+ PLL0 bit 30 (the 0x40 of the top byte, §3.6)
PLL_LOCKED = 0x80000000
PLL0_RESET = {"bm1397": 0xC0600161, "bm1384": 0x0783, "bm1387": 0x00200241}


@dataclass
class EmulatedChip:
    index: int
    info: p.ChipInfo
    address: int = 0
    awaiting_address: bool = False
    present: bool = True
    registers: dict[int, int] = field(default_factory=dict)
    written: set[int] = field(default_factory=set)
    results: int = 0  # BM1397: results counted for its 0x04 rate (it has no result counter registers)
    rate_mark: tuple[float, int] | None = None  # (time, results) at the last 0x04 read

    def reset(self) -> None:
        self.address = 0
        self.awaiting_address = False
        self.results, self.rate_mark = 0, None
        self.registers = {p.REG_CHIP_ID: self.info.id_value, p.REG_TICKET_MASK: 0, p.REG_VERSION_MASK: 0x0000FFFF,
                          self.info.pll_reg: PLL0_RESET.get(self.info.name, 0)}
        self.written = set()

    def read(self, reg: int) -> int:
        if reg == p.REG_CHIP_ID:
            return (self.info.id_value & ~0xFF) | self.address
        if reg == REG_HASHRATE and self.info.hashrate_register:
            return self._measured_rate()
        value = self.registers.get(reg, 0)
        if reg == self.info.pll_reg and self.info.header_jobs and value & PLL_ENABLE:
            # A running PLL reads back with bit 31 set: mujina's bring-up (asic/bm13xx/thread.rs
            # initialize_chain, its readback check) expects "PLL_DIVIDER bit 31, the lock report
            # (LOCKED), which a healthy chip answers set after the ramp" (docs/bm13xx.md §3.6).
            value |= PLL_LOCKED
        return value

    def _measured_rate(self) -> int:
        """BM1397 0x04: the rate since the previous read in 2^20 H/s units (counted at the emulator's
        scale, as the counters are), bit 31 set until there is a first interval: its reset value
        0x80000000 (skot/BM1397 registers.md). Over what time a real chip measures is not public:
        here, since the last read [decision]."""
        now = time.monotonic()
        mark, self.rate_mark = self.rate_mark, (now, self.results)
        if mark is None or now <= mark[0]:
            return HASHRATE_LONG
        units = round((self.results - mark[1]) * HASHES_PER_COUNT / (now - mark[0]) / HASHRATE_UNIT)
        units = min(units, 0x7FFFFFFF)
        return units - 1 if units == HASHRATE_INVALID else units

    def write(self, reg: int, value: int) -> None:
        self.registers[reg] = value
        self.written.add(reg)

    def count_result(self, domain: int | None, error_rate: float, rng: random.Random) -> bool:
        """One difficulty-1 result (at the emulator's scale): the total and its domain's counter
        count it (the BM1397: its rate register), or, with probability `error_rate`, the error
        counter does (False). uint32, wrapping."""
        if error_rate and rng.random() < error_rate:
            self._bump(REG_ERROR_COUNT)
            return False
        if domain is None:
            self.results += 1
            return True
        self._bump(REG_TOTAL_COUNT)
        self._bump(REG_DOMAIN_COUNT[domain])
        return True

    def _bump(self, reg: int) -> None:
        self.registers[reg] = (self.registers.get(reg, 0) + 1) & 0xFFFFFFFF

    @property
    def initialised(self) -> bool:
        if not self.info.required <= self.written:
            return False
        return not self.info.header_jobs or bool(self.registers[p.REG_VERSION_MASK] & 0x80000000)


class Bm13xxEmulator:
    """`chips` chips of one kind on one pty; `rate` is the chain's hash rate in H/s at the chip's
    default frequency (it follows the PLL), `difficulty` scales the ticket mask's difficulty."""

    def __init__(self, chip: str = "bm1366", chips: int = 1, rate: float = 20e6, difficulty: float = 1.0,
                 link: str | os.PathLike[str] | None = None, engine: str | None = None):
        if chip not in p.CHIPS:
            raise ValueError(f"no emulator for {chip!r} (have: {', '.join(p.CHIPS)})")
        if chips < 1:
            raise ValueError(f"chips: need at least one, got {chips}")
        if chip == "bm1384" and chips > 1:
            # BM1384 replies carry no chip address (§2.4), and the Compac sticks have one chip.
            raise ValueError("chips: a BM1384 stick has one chip (its replies carry no chip address)")
        self.info = p.CHIPS[chip]
        self.rate = rate
        self.scale = difficulty
        self.engine = hashing.check_engine(engine)
        self.chips = [EmulatedChip(i, self.info) for i in range(chips)]
        self.port = PtyPort(link)
        self._parser = self.info.command_parser()
        self._write_lock = threading.Lock()
        self._job_lock = threading.Lock()
        self._job: p.MidstateJob | p.HeaderJob | p.Bm1384Job | None = None
        self._generation = 0
        self._job_event = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._stalled_until = 0.0
        self._held = False  # reset line low or no core power (a board's control port decides)
        self._corrupt = 0
        self._wrong_ids = 0
        self._error_rate = 0.0
        self._rng = random.Random(1366)
        self.baud = 115_740
        # what happened, for tests and the log
        self.jobs = 0
        self.jobs_refused = 0
        self.bad_frames = 0
        self.nonces_sent = 0
        self.hashes_done = 0
        self.commands: list[p.Command] = []
        self.versions_seen: set[int] = set()
        self.reset()

    # ------------------------------------------------------------ control
    @property
    def device_path(self) -> str:
        return self.port.device_path

    def start(self) -> Bm13xxEmulator:
        self._stop.clear()
        for target, name in ((self._reader, "rx"), (self._hasher, "hash")):
            thread = threading.Thread(target=target, name=f"emu-{self.info.name}-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._job_event.set()
        for thread in self._threads:
            thread.join(5.0)
        self._threads.clear()
        self.port.close()

    def __enter__(self) -> Bm13xxEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run(self, stop: threading.Event) -> None:
        """For serve_until_stopped."""
        self.start()
        stop.wait()
        self.stop()

    def reset(self) -> None:
        """Power-on state (the reset line, or a replug)."""
        for chip in self.chips:
            chip.reset()
        self.baud = 115_740
        with self._job_lock:
            self._job = None
            self._generation += 1
        self._parser = self.info.command_parser()

    @property
    def initialised(self) -> bool:
        present = [c for c in self.chips if c.present]
        addressed = len({c.address for c in present}) == len(present) and not any(c.awaiting_address for c in present)
        return bool(present) and addressed and all(c.initialised for c in present)

    @property
    def frequency(self) -> float:
        return self.info.pll_mhz(self.chips[0].registers.get(self.info.pll_reg, 0))

    @property
    def ticket_difficulty(self) -> int:
        if self.info.ticket_in_job:
            job = self._job
            return job.ticket_difficulty if isinstance(job, p.Bm1384Job) else 1
        return p.ticket_mask_difficulty(self.chips[0].registers.get(p.REG_TICKET_MASK, 0))

    @property
    def version_mask(self) -> int:
        return p.register_version_mask(self.chips[0].registers.get(p.REG_VERSION_MASK, 0))

    # ------------------------------------------------------------ faults
    def corrupt_replies(self, count: int = 1) -> None:
        """The next `count` replies go out with a wrong CRC."""
        self._corrupt += count

    def inject_error_rate(self, rate: float) -> None:
        """From now on each counted result is a chip error with probability `rate` (0..1): counted in
        register 0x4C instead of 0x8C and its domain's (the BM1397: instead of its 0x04 rate), and not sent."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"error rate must be 0..1, got {rate}")
        self._error_rate = rate

    def wrong_chip_ids(self, count: int = 1) -> None:
        """The next `count` chip-id answers carry another chip's id under a good CRC: line noise that
        the 5-bit CRC lets through (1 corrupted frame in 32 passes it)."""
        self._wrong_ids += count

    def send_garbage(self, size: int = 37) -> None:
        self._send(bytes(random.getrandbits(8) for _ in range(size)))

    def drop_chip(self, index: int) -> None:
        self.chips[index].present = False

    def restore_chip(self, index: int) -> None:
        self.chips[index].present = True

    def stall(self, seconds: float) -> None:
        """Answer nothing and hash nothing for a while; what arrives meanwhile is lost."""
        self._stalled_until = time.monotonic() + seconds

    def hold(self, held: bool) -> None:
        """The chain's reset line (or its core power), as a board drives it: held, the chips neither
        listen nor hash; released, they start from their power-on state."""
        if held and not self._held:
            self._held = True
            self.reset()
            self._job_event.set()
        elif not held and self._held:
            self.reset()
            self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def unplug(self) -> None:
        self.port.unplug()

    def replug(self) -> None:
        self.reset()  # a replugged stick powers up again
        self.port.plug()

    def _stalled(self) -> bool:
        return time.monotonic() < self._stalled_until

    # ------------------------------------------------------------ the link
    def _send(self, data: bytes) -> None:
        # Unplugged: the bytes are lost, as on a wire.
        with self._write_lock, contextlib.suppress(Unplugged, OSError):
            self.port.write(data)

    def _reply(self, reply: p.Reply) -> None:
        frame = bytearray(self.info.encode_reply(reply, self._long()))
        if self._corrupt > 0:
            self._corrupt -= 1
            frame[-1] ^= 0x01
        self._send(bytes(frame))

    def _long(self) -> bool:
        # BM1366+ send 11-byte replies once version rolling is enabled (§2.3)
        return self.info.long_replies and bool(self.chips[0].registers.get(p.REG_VERSION_MASK, 0) & 0x80000000)

    def _reader(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.port.read(4096, 0.1)
            except Unplugged:
                self._stop.wait(0.05)
                continue
            if not data or self._stalled() or self._held:
                continue
            for item in self._parser.feed(data):
                if isinstance(item, p.BadFrame):
                    self.bad_frames += 1
                elif isinstance(item, p.Command):
                    self._command(item)
                else:
                    self._new_job(item)

    def _command(self, cmd: p.Command) -> None:
        self.commands.append(cmd)
        present = [c for c in self.chips if c.present]
        if cmd.cmd == p.CMD_INACTIVE:
            for chip in present:
                chip.awaiting_address = True
        elif cmd.cmd == p.CMD_SET_ADDRESS:
            # The first chip still waiting takes the address and stops passing the command on.
            for chip in present:
                if chip.awaiting_address:
                    chip.address, chip.awaiting_address = cmd.chip, False
                    break
        else:
            targets = present if cmd.broadcast else [
                c for c in present if self.info.command_address(c.address) == cmd.chip]
            for chip in targets:
                if cmd.cmd == p.CMD_READ:
                    value = chip.read(cmd.reg)
                    if cmd.reg == p.REG_CHIP_ID and self._wrong_ids > 0:
                        self._wrong_ids -= 1
                        value ^= 0x00100000  # 1366 -> 1376 and the like: a chip that is not there
                    self._reply(p.RegisterReply(value, chip.address, cmd.reg))
                else:
                    assert cmd.value is not None
                    chip.write(cmd.reg, cmd.value)
            if cmd.cmd == p.CMD_WRITE and cmd.reg == self.info.baud_register and targets:
                self._set_baud(cmd.value or 0)
            if cmd.cmd == p.CMD_WRITE and cmd.reg in (p.REG_TICKET_MASK, p.REG_VERSION_MASK, self.info.pll_reg):
                self._restart()  # the hasher picks up the new mask / clock

    def _set_baud(self, value: int) -> None:
        # Each chip generation encodes its UART divider its own way (clocks.py, docs/bm13xx.md §1.1).
        self.baud = self.info.clocks.uart_baud(value)
        log.info("%s: chip UART now %d baud", self.info.name, self.baud)

    def _new_job(self, job: p.MidstateJob | p.HeaderJob | p.Bm1384Job) -> None:
        if not self.initialised:
            self.jobs_refused += 1
            return
        self.jobs += 1
        with self._job_lock:
            self._job = job  # a chip mines only its latest job
        self._restart()

    def _restart(self) -> None:
        with self._job_lock:
            self._generation += 1
        self._job_event.set()

    # ------------------------------------------------------------ hashing
    def _hasher(self) -> None:
        while not self._stop.is_set():
            self._job_event.wait(0.2)
            self._job_event.clear()
            with self._job_lock:
                job, generation = self._job, self._generation
            if job is None or not self.initialised or self._held:
                continue
            self._mine(job, generation)

    def _mine(self, job: p.MidstateJob | p.HeaderJob | p.Bm1384Job, generation: int) -> None:
        def stop() -> bool:
            return self._stop.is_set() or self._generation != generation or not self.port.plugged or self._held

        target = p.report_target(self.ticket_difficulty * self.scale)
        # Chips with hash counters count every result at difficulty 1 (here: at the emulator's scale),
        # whatever the ticket mask lets through to the host; so the scan runs at the counting
        # target and the ticket decides what is sent (docs/bm13xx.md §7.1).
        counting = self.info.hash_domains > 0 or self.info.hashrate_register
        domains = self.info.hash_domains
        scan_target = p.report_target(self.scale) if counting else target
        freq = self.frequency
        rate = self.rate * (freq / self.info.default_mhz if freq else 1.0)
        chips = len(self.chips)
        # Lanes (midstates, or rolled versions) take turns over small nonce windows, as a chip's
        # cores work on them side by side.
        job_began, done = time.monotonic(), 0
        for window in range(0, 1 << 32, NONCE_WINDOW):
            for index, scan, vbits in self._lanes(job, scan_target):
                # Keep the chain's pace: this lane's window starts when the device would reach it.
                if not wait_until(job_began + done / rate, stop):
                    return
                done += NONCE_WINDOW
                scanned = 0

                def counted(start: int, count: int, scan=scan) -> list[int]:
                    nonlocal scanned
                    found = scan(start, count)
                    scanned += count
                    return found

                began = time.monotonic()
                over = False  # the job ended inside this chunk (a new job, a clock change, a stop)
                for found in paced_scan(b"", scan_target, rate, window, NONCE_WINDOW, stop, chunk=SCAN_CHUNK,
                                        scanner=counted):
                    if not over and not wait_until(found.due, stop):
                        over = True
                    if over and found.due > time.monotonic():
                        continue  # the emulated chip never got this far
                    if self.info.counts_big_endian:  # the scan gave N; the reply carries header order
                        wire, nonce = found.nonce, bswap32(found.nonce)
                    else:
                        wire, nonce = int.from_bytes(found.nonce.to_bytes(4, "little"), "big"), found.nonce
                    chip = self.chips[p.chip_index(wire, chips)]
                    if not chip.present:
                        continue
                    if counting:
                        if not chip.count_result(index % domains if domains else None, self._error_rate, self._rng):
                            continue  # an error: counted in 0x4C, never sent
                        if scan_target != target and not self._meets(job, found.nonce, vbits, target, index):
                            continue  # under the ticket mask: counted, not sent
                    if over or self._stalled():
                        continue  # counted by the chip, but its job is over / the link is stalled
                    self.nonces_sent += 1
                    self._reply(p.NonceReply(nonce, self.info.job_byte(job.job_id, index), vbits))
                if stop():
                    # Hashes count as far as the emulated device got: nonces due later were never sent.
                    self.hashes_done += min(scanned, int((time.monotonic() - began) * rate))
                    return
                self.hashes_done += scanned

    def _meets(self, job, nonce: int, vbits: int | None, target: int, lane: int = 0) -> bool:
        """Whether a found nonce (header order) also meets `target` (the ticket mask's)."""
        if not isinstance(job, p.HeaderJob):  # midstate jobs (BM1397): the lane is the midstate
            return bool(hashing.scan_midstate(job.midstates[lane], job.tail, nonce, 1, target, self.engine,
                                              nonce_be=self.info.counts_big_endian))
        header = job.header(p.rolled_version(job.version, vbits or 0))
        return bool(hashing.scan(header, nonce, 1, target, self.engine))

    def _lanes(self, job, target):
        """(index, scan(start, count), version bits) for each header the chain hashes."""
        if not isinstance(job, p.HeaderJob):
            be = self.info.counts_big_endian
            for i, ms in enumerate(job.midstates):
                yield i, (lambda s, c, ms=ms: hashing.scan_midstate(ms, job.tail, s, c, target, self.engine,
                                                                    nonce_be=be)), None
            return
        mask16 = self.version_mask >> 13
        core_mask = (1 << self.info.core_bits) - 1
        for counter in range(1 << bin(mask16).count("1")):
            vbits = spread_bits(counter, mask16)
            header = job.header(p.rolled_version(job.version, vbits))
            self.versions_seen.add(vbits)
            yield vbits & core_mask, (lambda s, c, h=header: hashing.scan(h, s, c, target, self.engine)), vbits


def main(name: str, argv: list[str]) -> int:
    chip = name.lower()
    if chip not in p.CHIPS:
        chip = "bm1397"  # `miner emulate bm13xx`: the Compac F's chip, as the driver assumes
    info = p.CHIPS[chip]
    parser = emulator_arguments(f"miner emulate {name}", f"A chain of emulated {chip.upper()} chips on a pty.",
                                default_rate_ghs=info.hashrate(info.default_mhz) / 1e9)
    parser.add_argument("--chips", type=int, default=1, metavar="N", help="chips on the chain (default 1)")
    args = parser.parse_args(argv)
    try:
        emulator = Bm13xxEmulator(chip, args.chips, args.rate * 1e9, args.difficulty, args.link)
    except ValueError as exc:
        print(f"miner emulate {name}: {exc}", file=sys.stderr)
        return 2
    return serve_until_stopped(emulator.device_path, emulator.run)
