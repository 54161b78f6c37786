"""An Avalon controller (AUC converter + MM modules) behind a pseudo-terminal.

It speaks what the AUC speaks on its CDC-ACM port: 64-byte RESET/DEINIT/INIT/INFO frames and
length-framed XFERs carrying 40-byte MM packets to I2C addresses. Its modules answer DETECT
(adopting the id they are given), take configuration (SET, SET_VOLT, SET_PLL per miner, SET_SS,
SET_FIN: the PLL frequencies set the emulated rate, the status replies report what was set, the fan
follows POLLING's PWM word; docs/avalon.md §B7.4), accept a Stratum job as the real firmware
does (STATIC … HEADER, then JOB_FIN or SET+FINISH), build headers themselves by rolling extranonce2
from the coinbase state the host sent, hash them with the C core at an emulated rate, and answer
each POLLING with a queued NONCE or a status packet of their generation.

Faults on request: CRC errors in replies, garbage bytes on the line, a stall (requests swallowed),
an unplug (the pty closes; `replug` brings it back, at the same path with `link`).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable

from miner.drivers.avalon import protocol as p
from miner.drivers.kit.emulation import (
    PtyPort,
    Unplugged,
    emulator_arguments,
    paced_scan,
    serve_until_stopped,
    wait_until,
)

from miner.core.targets import DIFF1_TARGET, difficulty_to_target

log = logging.getLogger(__name__)

MODELS = {
    # model -> (version prefix, default hash rate GH/s of one module)
    "avalon7": ("7211804", 6000.0),
    "avalon8": ("8411811", 13000.0),
    "avalon4": ("4115070", 1000.0),  # an MM41 module: N + 0x4000 and little-endian reply CRCs
    # An MM60 (Avalon6) module: the Avalon4 protocol with plain N, 2 miners x 40 chips, STATUS [8] the
    # sum of its chips' MHz, no STATUS_HW (docs/avalon.md §B7.3); version >= "1512" as cgminer checks.
    "avalon6": ("6015120", 3500.0),
}
NONCE_FIFO = 64
# What STATUS_PLL counts and STATUS_VOLT measures (docs/avalon.md §B7.1, §B7.2, §B7.4). cgminer's
# avalon7_hash_cal / avalon8_hash_cal multiply each PLL's count by its frequency and the api_stats
# divide the sum by asics x miners x 128 (Avalon7) or x 172 (Avalon8) to print the mean frequency, so
# a count is a number of cores at that PLL, 128 (A3212) or 172 (A3210) a chip [inferred from those].
CORES_PER_CHIP = {p.Family.AVALON7: 128, p.Family.AVALON8: 172}
# decode_voltage: STATUS_VOLT x ratio / asics / 100 = chip volts x 10000, the ratio being a 10-bit
# (Avalon7) or 12-bit (Avalon8) ADC of 3.3 V behind a divider (driver-avalon7.h / driver-avalon8.h).
AV7_VOUT_ADC = {"711": 3.3 / 1024 * 125 / 43, "721": 3.3 / 1024 * 125 / 43, "741": 3.3 / 1024 * 63 / 20}
AV7_DEFAULT_VOLTAGE = {"711": 4981, "721": 4981, "741": 4825}  # avalon7_dev_table set_voltage (0.1 mV a chip)
AV8_VOUT_ADC = 3.3 / 4095 * 63 / 20
# How an Avalon8 voltage level maps to volts is in no source read; the emulator reports this chip
# voltage whatever the level [unconfirmed], so that cgminer's Vo[] at least decodes to a real voltage.
AV8_CHIP_VOLTS = 0.40
# The fan answers its PWM word (0x3FF is off, 0 full speed: cgminer get_fan_pwm, docs/avalon.md §B7.4);
# the speed at full duty is not in the sources read [inferred], nor the speed before the first word.
FAN_PWM_MAX = 0x3FF
FAN_FULL_RPM = 6000
FAN_POWER_ON_RPM = 3000
# MM firmware rule (docs/avalon.md §B6.2): a module that gets no packet of its own for 3 s forgets
# its I2C address and idles until a DETECT addresses it again. So a host run that starts while the
# modules still hold the previous run's addresses finds none until that time has passed.
ADDRESS_TIMEOUT = 3.0


class Module:
    """One MM module on the I2C bus."""

    def __init__(self, number: int, version: str, rate: float, report_target: int, stop: Callable[[], bool]):
        self.number = number
        self.dna = bytes((0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x80 + number))
        self.version = version
        self.model = p.model_for_version(version)
        self.family = self.model.family
        self.rate = rate
        self.base_rate = rate  # at the model's default frequencies; SET_PLL / SET scale it
        self.report_target = report_target
        self.address = 0  # unaddressed until a DETECT gives it an id
        self.last_heard = 0.0  # when a packet for this module (its address) last arrived
        self.powered = True
        self.assembler = p.JobAssembler(self.family)
        self.job: p.DeviceJob | None = None
        self.generation = 0
        self.nonces: collections.deque[p.NonceReport] = collections.deque(maxlen=NONCE_FIFO)
        self.freqs: tuple[int, ...] = self.model.default_freqs
        # Avalon7/8: SET_PLL is per miner (idx = miner + 1); `freqs` stays miner 0's for old callers.
        self.miner_freqs: list[tuple[int, ...]] = [self.model.default_freqs] * self.model.miners
        self.voltage_words: tuple[int, ...] = ()
        self.settings: list[int] = []  # every SET/SET_VOLT/SET_PLL/SET_SS/SET_FIN type, in order
        self.set_words: p.Set78 | None = None
        self.smart_speed: tuple[int, ...] = ()  # SET_SS words
        self.led = 0  # POLLING data[0..3]: the red LED
        self.fan_pwm: int | None = None  # POLLING data[4..7] & 0x3FF when bit 31 is set
        self.voltage4 = p.av4_voltage_word(6875)
        self.configured = False
        self.crc_errors = 0  # bad packets from the host since the last status
        self.local_works = 0  # nonce2 values started since the last status
        self.hw_errors = 0
        self.nonce2_done = 0
        self.nonce2_at_lw = 0  # nonce2_done at the last Avalon4 STATUS_LW
        self.status_turn = 0
        self.jobs_received = 0
        self.restarts = 0
        self.nonces_reported = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = stop
        self._thread = threading.Thread(target=self._hash, name=f"avalon-emu-module{number}", daemon=True)
        self._thread.start()

    @property
    def crc_le(self) -> bool:
        return self.family.reply_crc_little_endian

    def expire(self, now: float) -> None:
        """The firmware's 3 s rule: no packet of its own for ADDRESS_TIMEOUT -> unaddressed and idle."""
        if self.address and now - self.last_heard > ADDRESS_TIMEOUT:
            log.debug("emulator: module %d heard nothing for %.1f s; forgets address %d", self.number,
                      now - self.last_heard, self.address)
            self.reset()

    def reset(self) -> None:
        """Power cycle (a re-plugged controller): no address, no job."""
        with self._lock:
            self.address = 0
            self.job = None
            self.generation += 1
            self.nonces.clear()
            self.assembler.reset()

    # ---------------------------------------------------------------- packets
    def broadcast(self, packet: p.Packet) -> None:
        if self.address == 0:
            return  # an undetected module ignores jobs
        job = self.assembler.feed(packet)
        if job is not None:
            self._take_job(job)

    def _take_job(self, job: p.DeviceJob) -> None:
        with self._lock:
            self.jobs_received += 1
            if job.restart:
                self.restarts += 1
                self.nonces.clear()
            self.job = job
            self.generation += 1
        self._wake.set()

    def addressed(self, packet: p.Packet) -> p.Packet | None:
        t = packet.type
        if t == p.POLLING:
            self._take_polling(packet)
            return self._poll_reply()
        if t == p.SYNC and self.family is not p.Family.AVALON4:
            return None
        if t in (p.SET, p.SET_VOLT, p.SET_PLL, p.SET_SS, p.SET_FIN):
            self.settings.append(t)
        if t == p.SET:
            if self.family is p.Family.AVALON4:
                s4 = p.Set4.from_packet(packet)
                self.assembler.nonce2_start, self.assembler.nonce2_range = s4.nonce2_start, s4.nonce2_range
                self.freqs = s4.freqs
                self.voltage4 = s4.voltage
                self._scale_rate([s4.freqs])
            else:
                self.set_words = p.Set78.from_packet(self.family, packet)
            return None
        if t == p.SET_PLL and self.family is not p.Family.AVALON4:
            freqs = p.set_pll_frequencies(self.family, packet)
            miner = packet.idx - 1
            if 0 <= miner < self.model.miners and None not in freqs:
                self.miner_freqs[miner] = tuple(f for f in freqs if f is not None)
                self.freqs = self.miner_freqs[0]
                self._scale_rate(self.miner_freqs)
            return None
        if t == p.SET_VOLT:
            self.voltage_words = p.WordList.from_packet(packet, self.model.miners).words
            return None
        if t == p.SET_SS and self.family is not p.Family.AVALON4:
            # th_pass, th_fail, th_init, th_ms, th_timeout (+ th_add on Avalon8), docs/avalon.md §B7.1, §B7.2
            self.smart_speed = p.WordList.from_packet(packet, 6 if self.family is p.Family.AVALON8 else 5).words
            return None
        if t == p.SET_FIN:
            self.configured = True
            return None
        return None  # RSTMMTX and everything else: no reply

    def _take_polling(self, packet: p.Packet) -> None:
        """cgminer avalon7_polling / avalon4_polling: [0..3] red LED, [4..7] fan PWM | 0x80000000 when
        the host adjusts the fan (every 2 s), else 0 (keep the fan as it is)."""
        self.led = packet.word(0)
        fan = packet.word(4)
        if fan & 0x80000000:
            self.fan_pwm = fan & FAN_PWM_MAX

    def fan_rpm(self) -> int:
        if self.fan_pwm is None:
            return FAN_POWER_ON_RPM
        return round(FAN_FULL_RPM * (FAN_PWM_MAX - min(self.fan_pwm, FAN_PWM_MAX)) / FAN_PWM_MAX)

    def _scale_rate(self, freqs: list[tuple[int, ...]]) -> None:
        """A module hashes in proportion to its clock: the emulated rate follows the PLL settings
        (the next nonce2 it starts runs at the new rate)."""
        default = sum(self.model.default_freqs) * len(freqs)
        now = sum(sum(f) for f in freqs)
        if default and now:
            self.rate = self.base_rate * now / default

    def status_volt_words(self) -> tuple[int, ...]:
        """STATUS_VOLT: per miner the ADC code of its string of chips (cgminer decode_voltage: code x ratio
        / asics / 100 = chip volts x 10000). Avalon7 reads back the voltage set; Avalon8 see AV8_CHIP_VOLTS."""
        miners, asics = self.model.miners, self.model.asics
        if self.family is p.Family.AVALON8:
            return tuple([round(AV8_CHIP_VOLTS * asics / AV8_VOUT_ADC)] * miners)
        ratio = AV7_VOUT_ADC.get(self.model.name, AV7_VOUT_ADC["741"])
        default = AV7_DEFAULT_VOLTAGE.get(self.model.name, 4825)
        words = self.voltage_words or tuple([p.av7_voltage_word(default)] * miners)
        return tuple(round(p.av7_voltage_value(w) / 10000 * asics / ratio) for w in words[:miners])

    def pll_counts(self, miner: int) -> tuple[int, ...]:
        """STATUS_PLL for one miner: its cores spread evenly over the PLLs that run (a PLL set to 0 MHz
        has none); how the smart-speed firmware really spreads them is not in the sources read [inferred]."""
        freqs = self.miner_freqs[miner] if 0 <= miner < len(self.miner_freqs) else self.freqs
        count = p.PLL_COUNT[self.family]
        running = [i for i, f in enumerate(freqs[:count]) if f] or [count - 1]
        share, rest = divmod(self.model.asics * CORES_PER_CHIP[self.family], len(running))
        counts = [0] * count
        for n, i in enumerate(running):
            counts[i] = share + (1 if n < rest else 0)
        return tuple(counts)

    def _poll_reply(self) -> p.Packet:
        with self._lock:
            if self.nonces:
                self.nonces_reported += 1
                return self.nonces.popleft().to_packet(self.family, self.dna[7])
        opt = self.dna[7]
        turn = self.status_turn
        self.status_turn += 1
        miners = self.model.miners
        if self.family is p.Family.AVALON4:
            mm60 = self.model.name == "MM60"
            kind = turn % (2 if mm60 else 3)  # cgminer only logs a STATUS_HW from an Avalon6
            if kind == 1:
                # cgminer adds each miner's count to its total (decode_pkg AVA4_P_STATUS_LW), so these are
                # the works started since the last STATUS_LW, spread over the miners.
                done, self.nonce2_at_lw = self.nonce2_done - self.nonce2_at_lw, self.nonce2_done
                count = min(miners, 10)
                share, rest = divmod(done, count)
                return p.Counters24(p.STATUS_LW, tuple(share + (1 if i < rest else 0)
                                                       for i in range(count))).to_packet(opt)
            if kind == 2:
                return p.Counters24(p.STATUS_HW, tuple([0] * min(miners, 10))).to_packet(opt)
            works, hw, self.local_works, self.hw_errors = self.local_works, self.hw_errors, 0, 0
            top = max(self.freqs) if self.freqs else 0
            # decode_pkg: MHz = [8] x 3968 / 65 (MM40/41/50), or [8] / total ASICs (MM60)
            freq = top * miners * self.model.asics if mm60 else round(top * 65 / 3968)
            return p.Status4(38 + self.number, self.fan_rpm(), freq, self.voltage4, works, hw, 1, 0).to_packet(opt)
        kind = turn % 3
        miner = (turn // 3) % miners
        if kind == 1:
            return p.WordList(p.STATUS_VOLT, self.status_volt_words()).to_packet(opt)
        if kind == 2:
            return p.WordList(p.STATUS_PLL, self.pll_counts(miner), miner, miners).to_packet(opt)
        works, hw, crc = self.local_works, self.hw_errors, self.crc_errors
        self.local_works = self.hw_errors = self.crc_errors = 0
        return p.Status7(40 + self.number, self.fan_rpm(), works, hw, 0, 0, crc, miner, miners).to_packet(opt)

    # ---------------------------------------------------------------- hashing
    def _hash(self) -> None:
        nonce2 = 0
        current: p.DeviceJob | None = None
        while not self._stop():
            with self._lock:
                job, generation = self.job, self.generation
            if job is None:
                self._wake.wait(0.1)
                self._wake.clear()
                continue
            if job is not current:
                current = job
                # The firmware's partition: each module starts range/64 × its id into the range.
                nonce2 = job.nonce2_start + (job.nonce2_range // 64) * self.address
            span = max(job.nonce2_range, 1)
            if not job.nonce2_start <= nonce2 < job.nonce2_start + span:
                nonce2 = job.nonce2_start
            header = job.header(nonce2)
            self.local_works += 1
            self.nonce2_done += 1
            target = min(job.target, self.report_target)

            def moved(g: int = generation) -> bool:
                return self._stop() or self.generation != g

            for found in paced_scan(header, target, self.rate, stop=moved):
                if not wait_until(found.due, moved):
                    break
                miner = found.nonce % self.model.miners
                chip = (found.nonce >> 8) % self.model.asics
                report = p.NonceReport(miner, chip, nonce2, 0, p.n_field(found.nonce, self.model.nonce_offset),
                                       job.job_id_crc, job.pool)
                with self._lock:
                    if self.generation == generation:
                        self.nonces.append(report)
            if self.generation == generation:
                nonce2 += 1


class AvalonEmulator:
    """An AUC with `modules` MM modules of one generation on a pty."""

    def __init__(self, model: str = "avalon7", rate_ghs: float | None = None, difficulty: float = 1.0,
                 modules: int = 1, link: str | os.PathLike[str] | None = None, auc_version: str = "AUC-20151208",
                 powered: int | None = None):
        if model not in MODELS:
            raise ValueError(f"--model {model}: choose one of {', '.join(MODELS)}")
        prefix, default_rate = MODELS[model]
        self.model = model
        self.auc_version = auc_version
        self.port = PtyPort(link)
        self._stop = threading.Event()
        rate = (rate_ghs if rate_ghs is not None else default_rate * modules) * 1e9
        report_target = difficulty_to_target(difficulty) if difficulty != 1 else DIFF1_TARGET
        self.modules = [Module(i + 1, f"{prefix}-{0xabcde0 + i:07x}", rate / modules, report_target,
                               self._stop.is_set) for i in range(modules)]
        for module in self.modules[powered if powered is not None else modules:]:
            module.powered = False
        self._crc_faults = 0
        self._garbage_faults = 0
        self._stall_until = 0.0
        self.requests = 0
        self.bad_requests = 0
        self._thread: threading.Thread | None = None

    @property
    def path(self) -> str:
        return self.port.device_path

    # ---------------------------------------------------------------- faults
    def corrupt_crc(self, count: int = 1) -> None:
        """The next `count` MM replies go out with a wrong CRC."""
        self._crc_faults += count

    def send_garbage(self, count: int = 1) -> None:
        """The next `count` replies are preceded by bytes that are no AUC frame."""
        self._garbage_faults += count

    def stall(self, seconds: float) -> None:
        """Swallow every request for `seconds` (a hung controller)."""
        self._stall_until = time.monotonic() + seconds

    def unplug(self) -> None:
        self.port.unplug()

    def power(self, module: int, on: bool) -> None:
        """Switch module `module` (1-based) off (silent, forgets its address) or on again."""
        m = self.modules[module - 1]
        if not on:
            m.reset()
        m.powered = on

    def replug(self) -> None:
        for module in self.modules:
            module.reset()
        self.port.plug()

    # ---------------------------------------------------------------- running
    def start(self) -> AvalonEmulator:
        self._thread = threading.Thread(target=self.run, args=(self._stop,), name="avalon-emu", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        self.port.close()

    def __enter__(self) -> AvalonEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def run(self, stop: threading.Event) -> None:
        buffer = bytearray()
        while not stop.is_set() and not self._stop.is_set():
            try:
                data = self.port.read(4096, 0.05)
            except Unplugged:
                buffer.clear()
                continue
            if time.monotonic() < self._stall_until:
                buffer.clear()
                continue
            buffer += data
            while True:
                request, used = p.parse_auc_request(bytes(buffer))
                if used == 0:
                    break
                del buffer[:used]
                if isinstance(request, p.BadBytes):
                    self.bad_requests += 1
                    continue
                assert request is not None
                self.requests += 1
                reply = self._answer(request)
                with contextlib.suppress(Unplugged, OSError):
                    if self._garbage_faults:
                        self._garbage_faults -= 1
                        self.port.write(b"\xff\xfe\xa5garbage" + os.urandom(5))
                    self.port.write(reply)
        if stop.is_set():
            self._stop.set()

    def _answer(self, request: p.AucRequest) -> bytes:
        if request.request == p.AUC_INIT:
            return p.auc_reply(self.auc_version.encode()[: p.AUC_VERSION_LEN])
        if request.request == p.AUC_INFO:
            return p.auc_reply(p.AucInfo(512, self.requests & 0xFF, self.requests & 0xFF, 0, 1).encode())
        if request.request != p.AUC_XFER:
            return p.auc_reply()
        try:
            packet = p.decode_packet(request.payload[: p.PACKET_SIZE])
        except p.PacketError:
            for module in self.modules:
                if module.address == request.address or request.address == p.BROADCAST:
                    module.crc_errors += 1
            return p.auc_reply(b"", p.AUC_SLAVE_NAK if request.rx else p.AUC_OK)
        answer: p.Packet | None = None
        module: Module | None = None
        now = time.monotonic()
        for m in self.modules:
            m.expire(now)
        if request.address == p.BROADCAST:
            if packet.type == p.DETECT:
                module = next((m for m in self.modules if m.address == 0 and m.powered), None)
                if module is not None:
                    module.address = p.detect_module_id(packet)
                    module.last_heard = now
                    asics = module.model.miners * module.model.asics
                    answer = p.DetectAck(module.dna, module.version, asics).to_packet()
            else:
                for m in self.modules:
                    if m.powered:
                        m.broadcast(packet)
        else:
            module = next((m for m in self.modules if m.address == request.address and m.powered), None)
            if module is None:
                return p.auc_reply(b"", p.AUC_SLAVE_NAK if request.rx else p.AUC_OK)
            module.last_heard = now
            answer = module.addressed(packet)
        if not request.rx:
            return p.auc_reply()
        if answer is None or module is None:
            return p.auc_reply(b"", p.AUC_SLAVE_NAK)
        raw = bytearray(answer.encode(module.crc_le))
        if self._crc_faults:
            self._crc_faults -= 1
            raw[-1] ^= 0x5A
        return p.auc_reply(bytes(raw[: request.rx]))


def main(name: str, argv: list[str]) -> int:
    """`miner emulate avalon --model avalon7 [--modules N] [--rate GH/s] [--difficulty D] [--link PATH]`."""
    default_model = name if name in MODELS else "avalon7"
    parser = emulator_arguments(f"miner emulate {name}", "Emulate a Canaan Avalon controller (AUC + MM modules) "
                                "on a pseudo-terminal.", MODELS[default_model][1])
    parser.add_argument("--model", choices=sorted(MODELS), default=default_model)
    parser.add_argument("--modules", type=int, default=1, help="MM modules on the bus (1-6, default 1)")
    args = parser.parse_args(argv)
    if not any(a == "--rate" or a.startswith("--rate=") for a in argv):
        args.rate = MODELS[args.model][1] * args.modules
    if not 1 <= args.modules <= 6:
        parser.error("--modules: 1 to 6")
    if not args.difficulty > 0:
        parser.error("--difficulty: must be positive")
    emulator = AvalonEmulator(args.model, args.rate, args.difficulty, args.modules, args.link)
    return serve_until_stopped(emulator.path, emulator.run)
