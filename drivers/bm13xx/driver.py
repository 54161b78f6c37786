"""A chain of BM13xx chips behind one UART (GekkoScience Compac F, Bitaxe-class boards).

One thread per chain (SerialDevice): open at 115 200, enumerate the chain by reading chip ids,
chain inactive, address every chip, write the chip's init registers, ticket mask and version mask,
ramp the PLL to the target frequency, switch to the fast baud rate; then send a job every
`job_interval()` (at once after a clean job), read nonce replies, map each back to its work,
version bits and chip, and poll the chain so a chip that drops out is noticed.

BM1366/68/70 roll version bits on the chip; BM1397 and BM1387 get up to four midstates whose
versions the driver rolls; BM1384 takes one midstate. BM1387/BM1384 speak the legacy framing of
docs/bm13xx.md §2.4 (ChipInfo.framing is the codec; the sequence above is the same). Either way
the device hashes versions the dispatcher did not give it, so the class flag `rolls_version` asks
the dispatcher for a merkle root of its own.
"""

from __future__ import annotations

import logging
import random
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import serial
from miner.drivers.bm13xx import protocol as p
from miner.drivers.bm13xx.counters import (
    COUNTER_REGISTERS,
    HASHES_PER_COUNT,
    HASHRATE_UNIT,
    REG_ERROR_COUNT,
    REG_HASHRATE,
    ChainCounters,
)

from miner.core import hashing
from miner.core.shares import CheckedNonce, Verdict
from miner.core.stats import RateMeter
from miner.core.work import Nonce, Work
from miner.devices.base import DeviceError, DeviceSpec, NonceSink, NotThisDevice, WorkSource
from miner.devices.serialport import SerialDevice, open_serial

log = logging.getLogger(__name__)

BOOT_BAUD = 115_200
DEFAULT_TICKET = 256  # ESP-Miner's ticket mask; lowered to the pool's difficulty when that is lower
MIDSTATES = 4  # BM1397 AsicBoost: four versions per job
MISSED_POLLS = 2
COUNTER_INTERVAL = 5.0  # seconds between counter reads: ESP-Miner's hashrate monitor POLL_RATE (5000 ms)


@dataclass
class ChipStats:
    address: int
    nonces: int = 0
    hw_errors: int = 0
    present: bool = True
    missed: int = 0  # polls in a row without a reply
    last_nonce_at: float | None = None
    hashes: RateMeter = field(default_factory=RateMeter)


@dataclass(frozen=True)
class SentJob:
    work: Work
    versions: tuple[int, ...]  # BM1397: the version of each midstate; BM1366+: (base,)
    sent_at: float


class Bm13xxDevice(SerialDevice):
    driver = "bm13xx"
    rolls_version = True

    def __init__(self, chip: p.ChipInfo, work: WorkSource, sink: NonceSink, name: str, port: str,
                 scale: float = 1.0, chips: int | None = None, frequency: float | None = None,
                 ticket: float = DEFAULT_TICKET, baud: int | None = None, ramp_delay: float = 0.1,
                 poll_interval: float = 1.0, stall_timeout: float | None = None,
                 job_interval: float | None = None, enumerate_timeout: float = 0.5,
                 counter_interval: float = COUNTER_INTERVAL):
        super().__init__(work, sink, name, port, difficulty=scale)
        self.info = chip
        self.model = chip.name.upper()
        self.scale = scale
        self.expected_chips = chips
        self.target_frequency = frequency or chip.default_mhz
        self.configured_ticket = p.ticket_difficulty(ticket)
        if chip.ticket_in_job:
            self.configured_ticket = min(256, self.configured_ticket)  # one byte of the BM1384 job
        self.fast_baud = chip.fast_baud if baud is None else baud
        self.ramp_delay = ramp_delay
        self.poll_interval = poll_interval
        self.stall_timeout = stall_timeout or max(3.0, 3 * poll_interval)
        self.fixed_job_interval = job_interval
        self.enumerate_timeout = enumerate_timeout
        # The chips' own hash and error counters (counters.py), read every counter_interval s (0: off).
        self.counter_interval = counter_interval if self._has_counters else 0.0
        self.counters = self._new_counters(0, scale)
        self.chip_count = 0
        self.chip_stats: list[ChipStats] = []
        self.ticket = self.configured_ticket
        self.baud = BOOT_BAUD
        self.version_mask = 0
        # link counters (details())
        self.crc_errors = 0
        self.garbage_bytes = 0
        self.stalls = 0
        self.chip_dropouts = 0
        self.stale_nonces = 0  # for a job slot a clean job invalidated
        self.duplicates = 0
        self.jobs_sent = 0
        self._slots: dict[int, SentJob] = {}
        # A random first id: after a host that died mid-job, the chips may still send a nonce for that
        # run's last job; a new run that starts its ids elsewhere finds no slot for it and counts it
        # stale, where one that starts at the same id would hash it against its own job (an HW error).
        # (k steps into the chip's own id sequence, so the ids keep the alignment its job byte needs).
        self._job_id = 0
        for _ in range(random.randrange(chip.job_ids[1] - chip.job_ids[0])):
            self._job_id = chip.next_job_id(self._job_id)
        self._last_nonce: tuple[int, int] | None = None
        self._parser = chip.reply_parser()
        self._pending_frequency: float | None = None
        self._freq_lock = threading.Lock()
        self._set_ticket(self.configured_ticket)

    # ------------------------------------------------------------ Device API
    def nominal_hashrate(self) -> float | None:
        if not self.chip_count or not self.stats.frequency:
            return None
        return self.info.hashrate(self.stats.frequency, self.chip_count)

    def job_interval(self) -> float:
        """How often the chain gets new work. BM1366+ have ~2^48 nonce × version space per job, so
        ESP-Miner's fixed freshness interval applies; BM1397 must have new work before its four
        midstates' nonce space runs out (half of the scan time, as cgminer's wait factor)."""
        if self.fixed_job_interval is not None:
            return self.fixed_job_interval
        rate = self.nominal_hashrate()
        if not rate:
            return 1.0
        chips = p.next_pow2(self.chip_count)
        if self.info.header_jobs:
            versions = 1 << bin(self.version_mask).count("1")
        else:
            versions = min(MIDSTATES, self.info.midstates) if self.version_mask else 1
        exhaust = (1 << 32) * versions / rate
        if self.info.job_interval is not None:
            return min(self.info.job_interval / chips, 0.5 * exhaust)
        return 0.5 * exhaust

    def set_frequency(self, mhz: float) -> None:
        try:
            self.info.actual_mhz(mhz)
        except ValueError as exc:
            raise DeviceError(f"{self.name}: {exc}") from None
        with self._freq_lock:
            self._pending_frequency = mhz
        self.target_frequency = mhz

    def details(self) -> dict[str, Any]:
        return {
            "Chip": self.info.name.upper(),
            "Chips": self.chip_count,
            "Frequency": self.stats.frequency,
            "Baud": self.baud,
            "Ticket Difficulty": self.ticket,
            "Version Mask": f"{self.version_mask:08x}",
            "Jobs Sent": self.jobs_sent,
            "CRC Errors": self.crc_errors,
            "Garbage Bytes": self.garbage_bytes,
            "Stalls": self.stalls,
            "Chip Dropouts": self.chip_dropouts,
            "Stale Nonces": self.stale_nonces,
            "Duplicate Nonces": self.duplicates,
            # None of these chips reports a temperature over its UART (bm13xx.md §7).
            "Temperature": self.stats.temperature,
            "Per Chip": [{"Address": c.address, "Present": c.present, "Nonces": c.nonces, "HW Errors": c.hw_errors,
                          "Hashrate": c.hashes.rate(60.0), **self._counter_details(i)}
                         for i, c in enumerate(self.chip_stats)],
            **self._chain_counter_details(),
        }

    @property
    def _has_counters(self) -> bool:
        return bool(self.info.hash_domains or self.info.hashrate_register)

    def _new_counters(self, chips: int, scale: float) -> ChainCounters:
        # An emulator at difficulty D counts (and measures its 0x04 rate) at D: the same D here.
        unit = HASHRATE_UNIT * scale if self.info.hashrate_register else None
        return ChainCounters(chips, HASHES_PER_COUNT * scale, unit)

    def _counter_registers(self) -> tuple[int, ...]:
        """What the counter poll reads: 0x8C, the domains' 0x88.., 0x4C; the BM1397 0x04 and 0x4C."""
        if self.info.hashrate_register:
            return (REG_HASHRATE, REG_ERROR_COUNT)
        return COUNTER_REGISTERS[: 1 + self.info.hash_domains] + (REG_ERROR_COUNT,)

    def _chain_counter_details(self) -> dict[str, Any]:
        """The chain's counter rate and error % (flat, so estats and devs carry them as cgminer does)."""
        if not self._has_counters:
            return {}
        rate, error = self.counters.chain_rate(), self.counters.error_percent()
        return {"Counter Hashrate": None if rate is None else round(rate),
                "Counter Error %": None if error is None else round(error, 3)}

    # ------------------------------------------------------------ SerialDevice
    def open_port(self) -> serial.Serial:
        return open_serial(self.port or "", BOOT_BAUD, timeout=0.05)

    def initialise(self, port: serial.Serial) -> None:
        info = self.info
        port.baudrate = BOOT_BAUD
        self.baud = BOOT_BAUD
        port.reset_input_buffer()
        self._parser = info.reply_parser(long=False if info.enumerates_short else None)
        self._slots.clear()
        for reg, value in info.pre_enumerate:
            self._send(port, p.write_register(reg, value))
        # Enumerate: every chip answers the broadcast chip-id read, in chain order.
        self._send(port, p.read_register(p.REG_CHIP_ID))
        ids = [r for r in self._collect(port, self.enumerate_timeout) if r.reg == p.REG_CHIP_ID]
        if not ids and info.enumerates_short:
            # A chain still rolling versions from an earlier run (no reset line here) answers in
            # 11 bytes, not the 9 of a fresh one (§2.3, §3.9): read the ids again in that form.
            self._parser = info.reply_parser()
            self._send(port, p.read_register(p.REG_CHIP_ID))
            ids = [r for r in self._collect(port, self.enumerate_timeout) if r.reg == p.REG_CHIP_ID]
        if not ids:
            raise DeviceError(f"{self.port}: no {info.name.upper()} answered the chip-id read (powered? reset? "
                              "the right --device family?)")
        wrong = [r.value >> 16 for r in ids if not info.accepts_id(r.value >> 16)]
        if wrong:
            raise NotThisDevice(f"{self.port}: a chip answers id {wrong[0]:04x}, not {info.chip_id:04x} "
                                f"({info.name.upper()}); use --device bm{wrong[0]:04x}:{self.port} if that is the chip")
        count = len(ids)
        if self.expected_chips and count != self.expected_chips:
            log.warning("%s: %d chips answered, %d configured (chips=); mining with %d", self.name, count,
                        self.expected_chips, count)
        # Chain inactive (cgminer sends it three times to BM1397), then one address per chip.
        for _ in range(1 if info.header_jobs else 3):
            self._send(port, p.chain_inactive())
        interval = info.address_stride or p.address_interval(count)
        addresses = [i * interval for i in range(count)]
        for address in addresses:
            self._send(port, p.set_address(address))
        for reg, value in info.broadcast_init:
            self._send(port, p.write_register(reg, value))
        for address in addresses:
            for reg, value in info.per_chip_init:
                self._send(port, p.write_register(reg, value, chip=info.command_address(address)))
        self.chip_count = count
        if len(self.chip_stats) != count:
            self.chip_stats = [ChipStats(a) for a in addresses]
        for stats in self.chip_stats:
            stats.present, stats.missed = True, 0
        self.counters = self._new_counters(count, self.scale)
        self._set_ticket(self.configured_ticket)
        if not info.ticket_in_job:
            self._send(port, p.write_register(p.REG_TICKET_MASK, p.ticket_mask(self.ticket)))
        self.stats.frequency = None
        self._ramp(port, self.target_frequency)
        if info.header_jobs:
            # ESP-Miner's hash counting number: the nonce range per core before the chip moves on.
            hcn = info.hash_counting or int(
                (1 << 32) / p.next_pow2(info.big_cores) / p.next_pow2(count) * 25 / self.stats.frequency * 0.5)
            self._send(port, p.write_register(p.REG_HASH_COUNTING, hcn))
            self.version_mask = 0x1FFFE000
            self._send(port, p.write_register(p.REG_VERSION_MASK, p.version_mask_register(self.version_mask)))
            if info.enumerates_short:
                self._parser = info.reply_parser()  # version rolling on: 11-byte replies from here
        if self.fast_baud and self.fast_baud != BOOT_BAUD:
            self._send(port, p.write_register(info.baud_register, info.fast_baud_value))
            port.flush()
            time.sleep(0.01)
            port.baudrate = self.fast_baud
            self.baud = self.fast_baud
            port.reset_input_buffer()
        # Read the clock back from the first chip: proves the link works at the new rate.
        self._send(port, p.read_register(info.pll_reg, chip=0))
        back = [r for r in self._collect(port, max(self.enumerate_timeout, 0.5), want=1) if r.reg == info.pll_reg]
        if not back:
            raise DeviceError(f"{self.port}: the chain went silent after init (baud switch to {self.baud} failed?)")
        self._last_rx = time.monotonic()
        log.info("%s: %d × %s at %.2f MHz, ticket difficulty %d, %d baud", self.name, count, self.model,
                 self.stats.frequency or 0, self.ticket, self.baud)

    def mine(self, port: serial.Serial) -> None:
        next_job = 0.0
        next_poll = time.monotonic() + self.poll_interval
        next_counters = time.monotonic() if self.counter_interval else float("inf")
        polled: set[int] | None = None
        self._last_rx = time.monotonic()
        while not self.stopping() and not self.reinit_requested():
            now = time.monotonic()
            if self.take_restart():
                # A clean job: old slots are void, late nonces for them are dropped (§5.3).
                self._slots.clear()
                next_job = 0.0
            with self._freq_lock:
                mhz, self._pending_frequency = self._pending_frequency, None
            if mhz is not None and mhz != self.stats.frequency:
                self._ramp(port, mhz)
            if now >= next_job:
                work = self.next_work(wait=0.0)
                if work is not None:
                    self._send_work(port, work)
                    next_job = now + self.job_interval()
                else:
                    next_job = now + 0.1
            if now >= next_poll:
                if polled is not None:
                    self._note_presence(polled)
                polled = set()
                self._send(port, p.read_register(p.REG_CHIP_ID))
                next_poll = now + self.poll_interval
            if now >= next_counters:
                for reg in self._counter_registers():
                    self._send(port, p.read_register(reg))
                next_counters = now + self.counter_interval
            self.between_reads()
            data = port.read(max(1, port.in_waiting or 1))
            if data:
                self._last_rx = time.monotonic()
                for item in self._parser.feed(data):
                    if isinstance(item, p.RegisterReply):
                        if polled is not None and item.reg == p.REG_CHIP_ID:
                            polled.add(item.chip)
                        elif item.reg in self._counter_registers():
                            self._on_counter(item)
                    else:
                        self._on_item(item)
            elif time.monotonic() - self._last_rx > self.stall_timeout:
                self.stalls += 1
                raise DeviceError(f"no reply from the chain for {self.stall_timeout:.1f}s (stalled); resetting it")

    def between_reads(self) -> None:
        """Called in the mining loop between reads of the chain: a board with more than the chain
        (bitaxe_raw: its control port) watches it here; raise DeviceError to leave the loop."""

    # ------------------------------------------------------------ helpers
    def _set_ticket(self, ticket: int) -> None:
        self.ticket = ticket
        self.difficulty = ticket * self.scale
        self.nonce_target = p.report_target(self.difficulty)

    def _send(self, port: serial.Serial, command: p.Command) -> None:
        port.write(self.info.encode_command(command))

    def _collect(self, port: serial.Serial, silence: float, want: int | None = None) -> list[p.RegisterReply]:
        """Register replies until `silence` seconds pass without one (or `want` arrived)."""
        replies: list[p.RegisterReply] = []
        last = time.monotonic()
        while time.monotonic() - last < silence and (want is None or len(replies) < want):
            data = port.read(64)
            if not data:
                continue
            for item in self._parser.feed(data):
                if isinstance(item, p.RegisterReply):
                    replies.append(item)
                    last = time.monotonic()
                elif isinstance(item, p.BadFrame):
                    self._count_bad(item)
        return replies

    def _ramp(self, port: serial.Serial, target: float) -> None:
        """PLL0 in 6.25 MHz steps (§3.7); a change at run time ramps from the current clock."""
        start = self.stats.frequency or p.RAMP_START_MHZ
        for mhz in p.frequency_ramp(start, target):
            self._send(port, p.write_register(self.info.pll_reg, self.info.pll_register(mhz)))
            if self.ramp_delay:
                time.sleep(self.ramp_delay)
        self.stats.frequency = self.info.actual_mhz(target)
        self.counters.reset()  # counts at the old clock say nothing about the new rate (ESP-Miner too)
        log.info("%s: clock %.2f MHz", self.name, self.stats.frequency)

    def _send_work(self, port: serial.Serial, work: Work) -> None:
        info = self.info
        job = work.job
        want = p.ticket_difficulty(min(self.configured_ticket, job.share_difficulty))
        if want < self.ticket:
            # Only ever lowered at run time: nonces in flight at the old mask still meet the new one.
            self._set_ticket(want)
            if not info.ticket_in_job:
                self._send(port, p.write_register(p.REG_TICKET_MASK, p.ticket_mask(want)))
        self._job_id = info.next_job_id(self._job_id)
        header = work.header
        if info.header_jobs:
            if job.version_mask != self.version_mask:
                self.version_mask = job.version_mask
                self._send(port, p.write_register(p.REG_VERSION_MASK, p.version_mask_register(job.version_mask)))
            versions: tuple[int, ...] = (work.version,)
            frame = p.HeaderJob(self._job_id, job.nbits, work.ntime, work.merkle_root, job.prevhash,
                                work.version).encode()
        else:
            self.version_mask = job.version_mask  # rolled here, into the midstates
            count = min(MIDSTATES, info.midstates) if job.version_mask else 1
            versions = (work.version,)
            while len(versions) < count:
                versions += (p.increment_in_mask(versions[-1], job.version_mask),)
            mids = tuple(hashing.midstate(struct.pack("<I", v) + header[4:64]) for v in versions)
            # The framing puts the ticket and HCN in the job where it has them (BM1384). HCN: the nonce
            # range per core, as for the newer chips (2^32 / next_pow2(cores)); the emulator ignores it
            # and no source says how the BM1384 uses it [decision].
            frame = info.framing.encode_midstate_job(
                p.MidstateJob(self._job_id, job.nbits, work.ntime, header[64:68], mids), ticket=self.ticket,
                hcn=(1 << 32) // p.next_pow2(info.big_cores))
        self._slots[self._job_id] = SentJob(work, versions, time.monotonic())
        port.write(frame)
        self.jobs_sent += 1

    def _on_item(self, item: p.NonceReply | p.BadFrame) -> None:
        if isinstance(item, p.BadFrame):
            self._count_bad(item)
            return
        key = (item.nonce, item.job_byte)
        if key == self._last_nonce:
            self.duplicates += 1  # chips may send a nonce twice (§5.3)
            return
        self._last_nonce = key
        job_id, index = self.info.split_job_byte(item.job_byte)
        sent = self._slots.get(job_id)
        if sent is None:
            self.stale_nonces += 1
            return
        chip_index = p.chip_index(item.wire_value, self.chip_count)
        chip = self.chip_stats[chip_index]
        if self.info.header_jobs:
            version = p.rolled_version(sent.versions[0], item.version_bits or 0)
        elif index < len(sent.versions):
            version = sent.versions[index]
        else:
            version = sent.versions[0]  # a midstate slot we did not fill: the share path calls it an HW error
        now = time.monotonic()
        chip.nonces += 1
        chip.last_nonce_at = now
        # Valid or not is the share path's verdict (on_verdict), from the one hash of this nonce.
        self.report_nonce(Nonce(sent.work.work_id, item.nonce, version if version != sent.work.version else None,
                                device=self.name, found_at=now, chip=chip_index))

    def on_verdict(self, share: CheckedNonce) -> None:
        super().on_verdict(share)
        index = share.nonce.chip
        if index is None or not 0 <= index < len(self.chip_stats):
            return
        chip = self.chip_stats[index]
        if share.verdict is Verdict.HW_ERROR:
            chip.hw_errors += 1
        else:
            chip.hashes.add(self.difficulty * (1 << 32), share.nonce.found_at)

    def _count_bad(self, item: p.BadFrame) -> None:
        if item.reason == "crc":
            self.crc_errors += 1
        else:
            self.garbage_bytes += len(item.data)

    def _on_counter(self, item: p.RegisterReply) -> None:
        index = next((i for i, c in enumerate(self.chip_stats) if c.address == item.chip), None)
        if index is not None:
            self.counters.feed(index, item.reg, item.value, time.monotonic())

    def _counter_details(self, index: int) -> dict[str, Any]:
        """One chip's counter figures for details(): H/s over the last WINDOW s, per domain, error %."""
        if not self._has_counters or index >= len(self.counters.chips):
            return {}
        rate = self.counters.chip_rate(index)
        error = self.counters.error_percent(index)
        figures: dict[str, Any] = {"Counter Hashrate": None if rate is None else round(rate),
                                   "Error %": None if error is None else round(error, 3)}
        if self.info.hash_domains:
            domains = self.counters.domain_rates(index)[: self.info.hash_domains]
            figures["Domain Hashrates"] = [None if r is None else round(r) for r in domains]
        return figures

    def _note_presence(self, answered: set[int]) -> None:
        """After each poll: a chip missing from MISSED_POLLS polls in a row has dropped out (one
        missed reply is more likely a line error)."""
        for stats in self.chip_stats:
            if stats.address in answered:
                if not stats.present:
                    log.info("%s: chip %02x is back", self.name, stats.address)
                stats.present, stats.missed = True, 0
                continue
            stats.missed += 1
            if stats.present and stats.missed >= MISSED_POLLS:
                stats.present = False
                self.chip_dropouts += 1
                log.warning("%s: chip %02x stopped answering", self.name, stats.address)


def create(spec: DeviceSpec, work: WorkSource, sink: NonceSink, index: int) -> Bm13xxDevice:
    """`--device bm1397:/dev/ttyUSB0[,chips=N][,frequency=MHz][,ticket=D][,difficulty=D]...`"""
    chip = spec.option("chip", str, None) or spec.option("model", str, None) or spec.driver
    chip = chip.lower()
    if chip == "bm13xx":
        chip = "bm1397"  # a bare bm13xx:PORT: the Compac F's chip
    if not spec.port:
        raise DeviceError(f"{spec.driver}: needs a port, e.g. --device {chip}:/dev/ttyUSB0")
    if chip not in p.CHIPS:
        raise DeviceError(f"{spec.driver}:{spec.port}: unknown chip {chip!r} (have: {', '.join(p.CHIPS)})")
    info = p.CHIPS[chip]
    chips = spec.option("chips", int)
    if chips is not None and chips < 1:
        raise DeviceError(f"{spec.driver}:{spec.port}: chips={chips}: a chain has at least 1 chip (leave chips= out to "
                          "count them)")
    return Bm13xxDevice(
        info, work, sink, f"{info.name}-{index}", spec.port,
        scale=spec.difficulty(), chips=chips, frequency=spec.option("frequency", float),
        ticket=spec.option("ticket", float, DEFAULT_TICKET), baud=spec.option("baud", int),
        ramp_delay=spec.option("ramp_delay", float, 0.1), poll_interval=spec.option("poll", float, 1.0),
        stall_timeout=spec.option("stall", float), job_interval=spec.option("job_interval", float),
        enumerate_timeout=spec.option("enumerate", float, 0.5),
        counter_interval=spec.option("counters", float, COUNTER_INTERVAL))
