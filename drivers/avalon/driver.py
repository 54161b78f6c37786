"""The Avalon controller driver: an AUC USB-to-I2C converter (29f1:33f2, CDC-ACM) with Avalon4/6/7/8
MM modules behind it.

The device thread initialises the AUC (RESET, DEINIT, INIT → 'AUC-…'), finds the modules by
broadcasting DETECT with the id each should adopt, configures them, and then loops: send the
current Stratum job whenever the work source has a new one (with the restart flag on clean jobs),
poll every module about every 20 ms, and turn each NONCE packet back into a registered work unit
(job, extranonce2, ntime) for the share path, which hashes it once and hands its verdict back
(`on_verdict`) to the module that found it.

The modules roll extranonce2 themselves, so each job goes out with a range of extranonce2
counters reserved through the work source: no other device ever hashes those headers.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import serial
from miner.drivers.avalon import protocol as p

from miner.core.shares import CheckedNonce, Verdict
from miner.core.stats import RateMeter
from miner.core.targets import difficulty_to_target, target_to_difficulty
from miner.core.work import Job, Nonce, Work
from miner.devices.base import DeviceError, NonceSink, NotThisDevice, WorkSource
from miner.devices.serialport import SerialDevice, open_serial, read_exactly

log = logging.getLogger(__name__)

BAUD = 115200  # CDC-ACM ignores it; pyserial needs one
XFER_TIMEOUT = 0.25  # seconds for one AUC reply (cgminer waits ~5 ms plus USB latency)
POLLING_DELAY = 0.02  # cgminer's --avalon*-polling-delay: 20 ms before each module's poll
NONCE2_RESERVATION = 1 << 20  # extranonce2 values one job send may use
RESEND_AFTER = 60.0  # re-send (with a fresh reservation) a job older than this
ADDRESS_TIMEOUT = 3.2  # the firmware's 3 s address timeout (docs/avalon.md §B6.2), and a margin
REDETECT_EVERY = 30.0  # look for modules plugged in (or reset to address 0) since, as cgminer does
MAX_FAILURES = {p.Family.AVALON4: 4, p.Family.AVALON7: 10, p.Family.AVALON8: 10}
JOBS_KEPT = 4  # the current job and the three before it, as cgminer keeps


class XferError(Exception):
    """One AUC transfer failed (timeout, garbage, CRC, NAK): counted, the module is reset."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@dataclass
class ModuleStats:
    """One MM module as the host sees it."""

    address: int
    dna: bytes
    version: str
    model: p.Model
    asic_count: int
    temperature: int | None = None
    fan: int | None = None
    frequencies: tuple[int, ...] = ()  # PLL MHz the host set
    frequency_reported: float | None = None  # Avalon4 STATUS: what the module says it runs at
    voltage_raw: tuple[int, ...] = ()  # STATUS_VOLT words (ADC counts on real hardware)
    voltage_set: int | None = None  # what the host set, in the generation's own units
    local_works: int = 0
    device_hw_errors: int = 0  # as the module counts them
    crc_errors: int = 0  # the module's count of bad packets it received
    error_code: int = 0
    valid_nonces: int = 0
    hw_errors: int = 0  # nonces the host could not match or verify
    failures: int = 0  # consecutive failed transfers
    hashes: RateMeter = field(default_factory=RateMeter)

    def summary(self) -> dict[str, Any]:
        return {
            "address": self.address, "dna": self.dna.hex(), "version": self.version, "model": self.model.name,
            "asics": self.asic_count, "temperature": self.temperature, "fan": self.fan,
            "frequency": list(self.frequencies), "frequency_reported": self.frequency_reported,
            "voltage_set": self.voltage_set,
            "voltage_raw": list(self.voltage_raw), "local_works": self.local_works,
            "device_hw_errors": self.device_hw_errors, "crc_errors": self.crc_errors,
            "error_code": self.error_code, "valid_nonces": self.valid_nonces, "hw_errors": self.hw_errors,
            "hashrate": self.hashes.rate(60.0),
        }


@dataclass(frozen=True)
class SentJob:
    job: Job
    crc: int
    pool: int
    start: int  # nonce2 as the module counts it
    span: int
    template: bytes  # the extranonce2 sent in the coinbase (its bytes past nonce2_size stay fixed)
    nonce2_size: int
    target: int


class AvalonDevice(SerialDevice):
    driver = "avalon"

    def __init__(self, work: WorkSource, sink: NonceSink, name: str, port: str | None, difficulty: float = 1.0,
                 frequencies: Sequence[int] | None = None,
                 voltage: int | None = None, max_modules: int = 6, polling_delay: float = POLLING_DELAY,
                 xfer_timeout: float = XFER_TIMEOUT, family_hint: p.Family = p.Family.AVALON7):
        super().__init__(work, sink, name, port, difficulty)
        self.family_hint = family_hint  # the DETECT layout to use before a module has said what it is
        self.wanted_frequencies = tuple(frequencies) if frequencies else None
        self.wanted_voltage = voltage
        self.max_modules = max_modules
        self.polling_delay = polling_delay
        self.xfer_timeout = xfer_timeout
        self.family: p.Family | None = None
        self.auc_version = ""
        self.modules: list[ModuleStats] = []
        self.counters = collections.Counter()  # xfer failures by kind, jobs sent, restarts
        self._sent: collections.deque[SentJob] = collections.deque(maxlen=JOBS_KEPT)
        self._last_job: Job | None = None
        self._last_sent_at = 0.0
        self._pools: dict[str, int] = {}
        self._config_pending = False
        self._warned_job: Job | None = None
        self._next_detect = 0.0

    # ------------------------------------------------------------ SerialDevice
    def open_port(self) -> serial.Serial:
        if not self.port:
            raise DeviceError(f"{self.name}: no port given (--device avalon:/dev/ttyACM0)")
        return open_serial(self.port, BAUD, timeout=0.05)

    def initialise(self, port: serial.Serial) -> None:
        self.modules = []
        self.family = None
        self._sent.clear()
        self._last_job = None
        self._next_detect = time.monotonic() + REDETECT_EVERY
        self.auc_version = self._auc_init(port)
        self._detect(port)
        if not self.modules:
            # Modules still addressed by a previous host run (this program's, or cgminer's) ignore
            # DETECT until they have heard nothing for 3 s (docs/avalon.md §B6.2); cgminer gets past
            # this by probing again on its next hot-plug scan, we by waiting it out once, here.
            log.info("%s: no module answered DETECT; waiting %.1f s for modules of a previous run to "
                     "release their addresses", self.name, ADDRESS_TIMEOUT)
            if not self.pause(ADDRESS_TIMEOUT):
                self._detect(port)
        if not self.modules:
            raise DeviceError(f"{self.port}: the AUC answers ({self.auc_version}) but no Avalon module does "
                              "(powered? I2C cable seated?)")
        self.model = "/".join(sorted({m.model.name for m in self.modules}))
        self.serial_number = self.modules[0].dna.hex()
        for module in self.modules:
            self._configure(port, module)
        self._refresh_fields()

    def mine(self, port: serial.Serial) -> None:
        while not self.stopping() and not self.reinit_requested():
            if time.monotonic() > self._next_detect:
                self._next_detect = time.monotonic() + REDETECT_EVERY
                new = self._detect(port)
                for module in new:
                    self._configure(port, module)
                if new:
                    self._last_job = None  # the new modules need the current job
            restart = self.take_restart()
            job = self.work_source.job_for(self.name)  # its own (a standard channel, extranonce 0: refused below)
            if job is not None and (restart or job is not self._last_job or self._config_pending
                                    or time.monotonic() - self._last_sent_at > RESEND_AFTER):
                if self._config_pending:
                    self._config_pending = False
                    for module in self.modules:
                        self._configure(port, module)
                self._send_job(port, job, restart or job.clean)
            for module in list(self.modules):
                time.sleep(self.polling_delay)
                self._poll(port, module)
            if not self.modules:
                raise DeviceError(f"{self.port}: every Avalon module stopped answering; re-detecting")

    def idle(self, port: serial.Serial) -> None:
        # A module idles by itself 3 s after the last packet; a DEINIT releases the AUC.
        port.write(p.auc_command(p.AUC_DEINIT))

    # ------------------------------------------------------------ AUC
    def _auc(self, port: serial.Serial, frame: bytes) -> p.AucReply:
        port.reset_input_buffer()  # a late or garbled reply must not be taken for this one
        port.write(frame)
        head = read_exactly(port, 4, self.xfer_timeout)
        if len(head) < 4:
            raise XferError("timeout", f"{len(head)} of 4 reply header bytes")
        if not 4 <= head[0] <= p.AUC_FRAME:
            raise XferError("garbage", f"reply header {head.hex()} is no AUC frame")
        rest = read_exactly(port, head[0] - 4, self.xfer_timeout)
        try:
            return p.parse_auc_reply(head + rest)
        except p.PacketError as exc:
            raise XferError("short", str(exc)) from None

    def _auc_init(self, port: serial.Serial) -> str:
        last = ""
        for _ in range(2):  # cgminer tries twice
            try:
                self._auc(port, p.auc_command(p.AUC_RESET))
                self._auc(port, p.auc_command(p.AUC_DEINIT))
                return p.auc_version(self._auc(port, p.auc_init()))
            except (XferError, p.PacketError) as exc:
                last = str(exc)
                time.sleep(0.05)
        raise NotThisDevice(f"{self.port}: not an Avalon USB2IIC converter (AUC INIT: {last})")

    def _xfer(self, port: serial.Serial, address: int, packet: p.Packet, rx: bool,
              crc_order: str | None = "family") -> p.Packet | None:
        """One MM packet to `address`; with `rx`, the module's reply. `crc_order=None` accepts either
        reply CRC order (during detection, before the generation is known)."""
        reply = self._auc(port, p.auc_xfer(address, packet.encode(), p.PACKET_SIZE if rx else 0))
        if not rx:
            return None
        if not reply.ok or len(reply.payload) < p.PACKET_SIZE:
            raise XferError("nak", f"module {address}: AUC status {p.AUC_STATUS.get(reply.status, reply.status)}")
        raw = reply.payload[: p.PACKET_SIZE]
        if crc_order is None:
            orders = (False, True)
        else:
            orders = (self.family.reply_crc_little_endian if self.family else False,)
        error = ""
        for crc_le in orders:
            try:
                return p.decode_packet(raw, crc_le)
            except p.PacketError as exc:
                error = str(exc)
        raise XferError("crc", error)

    def _broadcast(self, port: serial.Serial, packet: p.Packet) -> None:
        for attempt in range(3):  # cgminer retries broadcasts until they go through
            try:
                self._xfer(port, p.BROADCAST, packet, rx=False)
                return
            except XferError as exc:
                self.counters[exc.kind] += 1
                if attempt == 2:
                    raise DeviceError(f"{self.port}: broadcast failed three times ({exc})") from None

    def _send(self, port: serial.Serial, module: ModuleStats, packet: p.Packet) -> None:
        try:
            self._xfer(port, module.address, packet, rx=False)
        except XferError as exc:
            self.counters[exc.kind] += 1

    # ------------------------------------------------------------ detection and configuration
    def _detect(self, port: serial.Serial) -> list[ModuleStats]:
        """DETECT with each free id in turn until nobody answers; the new modules found."""
        family_guess = self.family if self.family is not None else self.family_hint
        found: list[ModuleStats] = []
        used = {m.address for m in self.modules}
        for address in range(1, self.max_modules + 1):
            if address in used:
                continue
            # Avalon4 modules read their frequency limits from the same packet; Avalon7/8 only the id.
            packet = p.detect_packet(p.Family.AVALON4 if family_guess is p.Family.AVALON4 else p.Family.AVALON7,
                                     address)
            try:
                reply = self._xfer(port, p.BROADCAST, packet, rx=True, crc_order=None)
                ack = p.DetectAck.from_packet(reply) if reply is not None else None
            except (XferError, p.PacketError) as exc:
                log.debug("%s: DETECT %d: %s", self.name, address, exc)
                ack = None
            if ack is None:
                break
            try:
                model = p.model_for_version(ack.version)
            except p.PacketError as exc:
                log.warning("%s: module %d: %s; skipped", self.name, address, exc)
                continue
            if self.modules and model.family is not self.modules[0].model.family:
                log.warning("%s: module %d is %s, not %s; skipped", self.name, address, model.family.value,
                            self.modules[0].model.family.value)
                continue
            self.family = family_guess = model.family
            if any(m.dna == ack.dna for m in self.modules):
                continue
            module = ModuleStats(address, ack.dna, ack.version, model, ack.asic_count)
            self.modules.append(module)
            found.append(module)
            log.info("%s: module %d: Avalon %s (%s), %d ASICs, DNA %s", self.name, address, model.name,
                     ack.version, ack.asic_count, ack.dna.hex())
            if model.family is not p.Family.AVALON4:
                self._send(port, module, p.sync_packet(ack.dna))
        if self.modules:
            self.family = self.modules[0].model.family
        return found

    def _frequencies(self, module: ModuleStats) -> tuple[int, ...]:
        default = module.model.default_freqs
        wanted = self.wanted_frequencies
        if not wanted:
            return default
        if len(wanted) == 1:  # one value: every PLL (Avalon8: the top one, the others off as by default)
            if module.model.family is p.Family.AVALON8:
                return default[:-1] + (wanted[0],)
            return tuple(wanted * len(default))
        if len(wanted) != len(default):
            raise DeviceError(f"{self.name}: {module.model.family.value} takes {len(default)} PLL frequencies "
                              f"(frequency=A:B:...), got {len(wanted)}")
        return tuple(wanted)

    def _configure(self, port: serial.Serial, module: ModuleStats) -> None:
        family = module.model.family
        freqs = self._frequencies(module)
        module.frequencies = freqs
        if family is p.Family.AVALON4:
            module.voltage_set = self.wanted_voltage if self.wanted_voltage is not None else 6875
            return  # Avalon4 takes voltage and frequency in the SET sent with each job
        for f in freqs:
            p.cpm_word(family, f)  # a frequency off the table is a one-line error, before anything is sent
        self._send(port, module, p.Set78(nonce_mask=24 if family is p.Family.AVALON8 else 29).to_packet(family))
        if self.wanted_voltage is not None:
            if family is p.Family.AVALON7:
                word = p.av7_voltage_word(self.wanted_voltage)
            else:
                word = p.av8_voltage_word(self.wanted_voltage)
            module.voltage_set = self.wanted_voltage
            self._send(port, module, p.set_volt_packet(family, [word] * module.model.miners))
        for miner in range(module.model.miners):
            self._send(port, module, p.set_pll_packet(family, miner, module.model.miners, freqs))
        self._send(port, module, p.Packet(p.SET_FIN))

    # ------------------------------------------------------------ jobs
    def _send_job(self, port: serial.Serial, job: Job, restart: bool) -> None:
        family = self.family
        assert family is not None
        self._last_job = job
        self._last_sent_at = time.monotonic()
        if job.extranonce2_size < 3:
            if self._warned_job is not job:
                self._warned_job = job
                log.error("%s: the pool's extranonce2 is %d bytes; Avalon modules need at least 3, not mining "
                          "this job", self.name, job.extranonce2_size)
            return
        size = min(job.extranonce2_size, 4)
        span = min(NONCE2_RESERVATION, (1 << (8 * size)) // 16)
        base = self.work_source.reserve_extranonce2(span)
        template = job.extranonce2_for(base)
        start = base % (1 << (8 * size))
        pool = self._pools.setdefault(job.source, len(self._pools) & 0xFFFF)
        target = max(job.share_target, difficulty_to_target(p.DIFFMAX[family]))  # min(pool diff, DIFFMAX)
        crc = p.job_id_crc(job.job_id)
        header = job.work_from_root(0, template, bytes(32), job.version).header
        sj = p.StratumJob(job.coinbase(template), len(job.coinb1) + len(job.extranonce1), size, job.merkle_branch,
                          p.header_bin(header), crc, pool, target, start, span, restart,
                          max(1, int(job.share_difficulty)))
        for packet in p.job_packets(family, sj):
            self._broadcast(port, packet)
        if family is p.Family.AVALON4:
            for module in self.modules:
                voltage = p.av4_voltage_word(module.voltage_set or 6875)
                freqs = tuple((module.frequencies + (0, 0, 0))[:3])
                self._send(port, module, p.Set4(voltage, freqs, start, span).to_packet())  # type: ignore[arg-type]
            self._broadcast(port, p.Packet(p.FINISH))
        self._sent.append(SentJob(job, crc, pool, start, span, template, size, target))
        self.counters["jobs"] += 1
        if restart:
            self.counters["restarts"] += 1

    # ------------------------------------------------------------ polling
    def _poll(self, port: serial.Serial, module: ModuleStats) -> None:
        for _ in range(16):  # drain queued nonces, a status reply ends the round
            try:
                packet = self._xfer(port, module.address, p.polling_packet(), rx=True)
            except XferError as exc:
                self.counters[exc.kind] += 1
                module.failures += 1
                log.debug("%s: module %d: %s", self.name, module.address, exc)
                self._send(port, module, p.Packet(p.RSTMMTX))
                if module.failures >= MAX_FAILURES[module.model.family]:
                    log.warning("%s: module %d stopped answering (%d failures); detached", self.name,
                                module.address, module.failures)
                    self.modules.remove(module)
                return
            module.failures = 0
            assert packet is not None
            if packet.opt != module.dna[7]:
                self.counters["wrong_opt"] += 1  # cgminer reads this as a duplicate address
            if packet.type == p.NONCE:
                self._on_nonce_report(module, p.NonceReport.from_packet(module.model.family, packet))
                continue
            self._on_status(module, packet)
            return

    def _on_status(self, module: ModuleStats, packet: p.Packet) -> None:
        family = module.model.family
        if packet.type == p.STATUS:
            if family is p.Family.AVALON4:
                s4 = p.Status4.from_packet(packet)
                module.temperature, module.fan = s4.temperature, s4.fan
                module.local_works += s4.local_works
                module.device_hw_errors += s4.hw_errors
                module.error_code = s4.error_code
                module.voltage_raw = (s4.voltage,)
                module.frequency_reported = (round(s4.frequency_mhz_of(module.model.name, module.asic_count), 1)
                                             if s4.frequency else None)
            else:
                s7 = p.Status7.from_packet(packet)
                module.temperature, module.fan = s7.temperature, s7.fan
                module.local_works += s7.local_works
                module.device_hw_errors += s7.hw_errors
                module.crc_errors += s7.crc_errors
                module.error_code = s7.error_code
        elif packet.type == p.STATUS_VOLT and family is not p.Family.AVALON4:
            module.voltage_raw = p.WordList.from_packet(packet, min(module.model.miners, 8)).words
        self._refresh_fields()

    def _refresh_fields(self) -> None:
        temps = [m.temperature for m in self.modules if m.temperature is not None]
        self.stats.temperature = float(max(temps)) if temps else None
        freqs = [m.frequency_reported or max(m.frequencies, default=0) for m in self.modules]
        self.stats.frequency = float(max(freqs)) if any(freqs) else None
        if self.family is p.Family.AVALON4:
            # what the modules report back (STATUS [12]), else what was set
            volts = [p.av4_voltage_value(m.voltage_raw[0]) if m.voltage_raw else m.voltage_set for m in self.modules]
            volts = [v for v in volts if v]
            # cgminer's Avalon4 unit reads as 0.1 mV (6875 = 0.6875 V) [inferred, avalon.md B4.2/B6.6]
            self.stats.voltage = max(volts) / 10000 if volts else None

    # ------------------------------------------------------------ nonces
    def _on_nonce_report(self, module: ModuleStats, report: p.NonceReport) -> None:
        now = time.monotonic()
        nonce = p.header_nonce(report.nonce, module.model.nonce_offset)
        candidates = [s for s in reversed(self._sent) if s.crc == report.job_id_crc and s.pool == report.pool]
        if not candidates:
            module.hw_errors += 1
            self.stats.note_hw_error()
            log.warning("%s: module %d: nonce for unknown job (crc %04x, pool %d)", self.name, module.address,
                        report.job_id_crc, report.pool)
            return
        # A job-id CRC can match an older job too: every job whose range holds nonce2 is a candidate,
        # newest first, and the share path (hashing each at most once) takes the one it solves. A
        # nonce no candidate solves is a hardware error of the newest, counted with the others.
        found: list[Nonce] = []
        for sent in candidates:
            if not sent.start <= report.nonce2 < sent.start + sent.span:
                continue
            extranonce2 = report.nonce2.to_bytes(sent.nonce2_size, "little") + sent.template[sent.nonce2_size:]
            ntime = (sent.job.ntime + report.ntime_roll) & 0xFFFFFFFF if report.ntime_roll else None
            work = self.work_source.register_work(sent.job, extranonce2)
            found.append(Nonce(work.work_id, nonce, ntime=ntime, device=self.name, found_at=now,
                               chip=module.address))
        if not found:
            module.hw_errors += 1
            self.stats.note_hw_error()
            log.warning("%s: module %d: nonce2 %08x outside the range it was given", self.name, module.address,
                        report.nonce2)
            return
        first, *others = found
        self.report_nonce(Nonce(first.work_id, first.nonce, ntime=first.ntime, device=self.name, found_at=now,
                                chip=module.address, alternatives=tuple(others)))

    # ------------------------------------------------------------ Device
    def target_for(self, work: Work) -> int:
        # The module reports nonces under min(pool target, DIFFMAX target) that are also diff-1
        # (or the emulator's difficulty=D).
        cap = difficulty_to_target(p.DIFFMAX[self.family or p.Family.AVALON7])
        return min(self.nonce_target, max(work.target, cap))

    def hashes_per_nonce(self, work: Work) -> float:
        # Each nonce stands for (the difficulty it was reported at) × 2^32 hashes.
        return target_to_difficulty(self.target_for(work)) * (1 << 32)

    def on_verdict(self, share: CheckedNonce) -> None:
        super().on_verdict(share)
        module = next((m for m in self.modules if m.address == share.nonce.chip), None)
        if module is None:
            return  # detached since
        if share.verdict is Verdict.HW_ERROR:
            module.hw_errors += 1
        else:
            module.valid_nonces += 1
            module.hashes.add(self.hashes_per_nonce(share.work), share.nonce.found_at)

    def expected_nonce_interval(self) -> float | None:
        return None  # nonces come at the pool's difficulty, which the device does not know ahead

    def set_frequency(self, mhz: float) -> None:
        family = self.family or p.Family.AVALON7
        if family is not p.Family.AVALON4:
            p.cpm_word(family, int(mhz))  # raises a one-line ValueError for a frequency off the table
        self.wanted_frequencies = (int(mhz),)
        self._config_pending = True
        self.work_available()

    def set_voltage(self, value: int) -> None:
        """Avalon7: cgminer --avalon7-voltage units (3889..5059); Avalon8: level -15..15; Avalon4: mV units."""
        self.wanted_voltage = int(value)
        self._config_pending = True
        self.work_available()

    def details(self) -> dict[str, Any]:
        return {
            "Family": self.family.value if self.family else None, "AUC": self.auc_version,
            "Modules": [m.summary() for m in self.modules],
            "Jobs sent": self.counters["jobs"], "Restarts": self.counters["restarts"],
            "Xfer errors": {k: v for k, v in self.counters.items() if k not in ("jobs", "restarts")},
        }
