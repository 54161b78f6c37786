"""The Avalon nano 2.0 and Avalon4 mini ("avalonm"): midstate work over USB HID, 40-byte reports.

These sticks are HID devices (29f1:33f3, 29f1:40f1), not serial ports, so they are reached through
the hidapi library, an optional extra (`pip install '.[hid]'` in the checkout), imported only when such a
device is used. The protocol logic (`AvalonMSession`) works on any transport with `write(40 bytes)`
and `read(timeout) -> bytes`, which is how it is tested without hardware.

The host loop follows the firmware's rules (docs/avalon.md §B4): after DETECT and SETM,
send one work per ASIC, poll every 5 ms until a STATUS_M arrives (processing every NONCE_M), wait
the calibration delay, repeat. Each nonce carries the work id it was sent with and N + 0x4000.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any, Protocol

from miner.drivers.avalon import protocol as p

from miner.core.work import Nonce, Work
from miner.devices.base import DeviceError, NonceSink, NotThisDevice, WorkSource
from miner.devices.serialport import SerialDevice

log = logging.getLogger(__name__)

NANO2_ID = (0x29F1, 0x33F3)
MINI_ID = (0x29F1, 0x40F1)
READ_TIMEOUT = 0.3  # cgminer's per-transfer timeout
POLL_GAP = 0.005
NANO_SETTLE = 0.4  # the nano 2.0 needs this after a batch before polling
POLLS_PER_BATCH = 200


def import_hid():
    """The hidapi module, or one line saying how to install it."""
    try:
        import hid  # the 'hidapi' package on PyPI
    except ImportError:
        raise DeviceError("avalonm: USB HID support is not installed; in the miner's checkout: pip install "
                          "'.[hid]' (the hidapi package)") from None
    return hid


class Transport(Protocol):
    def write(self, report: bytes) -> None: ...

    def read(self, timeout: float) -> bytes: ...

    def close(self) -> None: ...


class HidTransport:
    """One hidapi device: 40-byte reports, no report id (hidapi wants a leading 0 byte on write)."""

    def __init__(self, path: str | None = None):
        hid = import_hid()
        self._dev = hid.device()
        try:
            if path:
                self._dev.open_path(path.encode())
            else:
                for vid, pid in (NANO2_ID, MINI_ID):
                    try:
                        self._dev.open(vid, pid)
                        break
                    except OSError:
                        continue
                else:
                    raise OSError("no Avalon nano 2.0 / Avalon4 mini found (29f1:33f3, 29f1:40f1)")
        except OSError as exc:
            where = f"avalonm {path or ''}".strip()
            raise DeviceError(f"{where}: cannot open: {exc} (permissions? install the udev rules)") from None

    def write(self, report: bytes) -> None:
        if self._dev.write(b"\x00" + report) < 0:
            raise OSError("HID write failed (unplugged?)")

    def read(self, timeout: float) -> bytes:
        return bytes(self._dev.read(p.PACKET_SIZE, max(1, int(timeout * 1000))))

    def close(self) -> None:
        self._dev.close()


class AvalonMSession:
    """The avalonm conversation over one transport; raises OSError when the transport does."""

    def __init__(self, transport: Transport):
        self.transport = transport
        self.stream = p.PacketStream()
        self.bad_packets = 0

    def read_packet(self, timeout: float = READ_TIMEOUT) -> p.Packet | None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            data = self.transport.read(left)
            if not data:
                return None
            for event in self.stream.feed(data):
                if isinstance(event, p.Packet):
                    return event
                self.bad_packets += 1

    def send(self, packet: p.Packet) -> None:
        self.transport.write(packet.encode())

    def detect(self) -> p.DetectAck:
        while self.transport.read(0.01):  # drain what an earlier session left
            pass
        self.send(p.detect_packet(p.Family.AVALONM))
        reply = self.read_packet()
        if reply is None or reply.type != p.ACKDETECT:
            raise NotThisDevice("avalonm: no ACKDETECT in answer to DETECT: not an Avalon nano 2.0 / 4 mini")
        ack = p.DetectAck.from_packet(reply)
        self.send(p.setm_packet())
        return ack

    def send_work(self, work_id: int, header: bytes, ntime_roll: int = 0) -> None:
        for packet in p.work_packets(work_id & 0xFFFFFFFF, p.icarus_work(header), ntime_roll):
            self.send(packet)

    def poll(self) -> p.Packet | None:
        self.send(p.polling_packet())
        return self.read_packet()


class AvalonMDevice(SerialDevice):
    """A nano 2.0 / Avalon4 mini; `port` is a hidapi path (or empty for the first one found).

    The HID transport takes the place of the serial port in SerialDevice's open/init/mine
    thread, so a vanished device is NoDevice and reopened, and a wrong answer is Dead, as for
    every other device.
    """

    driver = "avalonm"

    def __init__(self, work: WorkSource, sink: NonceSink, name: str, port: str | None = None,
                 difficulty: float = 1.0, frequency: int | None = None, voltage: int | None = None,
                 transport_factory=None):
        super().__init__(work, sink, name, port, difficulty)
        self._factory = transport_factory or (lambda: HidTransport(port))
        self.wanted_frequency = frequency
        self.wanted_voltage = voltage
        self.asic_count = 1
        self.version = ""
        self.status: p.StatusM | None = None
        self.counters = collections.Counter()
        self._works: collections.OrderedDict[int, Work] = collections.OrderedDict()
        self._session: AvalonMSession | None = None

    def open_port(self):
        return self._factory()

    def initialise(self, port) -> None:
        self._session = AvalonMSession(port)
        self._initialise(self._session)

    def mine(self, port) -> None:
        assert self._session is not None
        self._mine(self._session)

    def _initialise(self, session: AvalonMSession) -> None:
        ack = session.detect()
        model = p.model_for_version(ack.version)
        self.version, self.model, self.serial_number = ack.version, model.name, ack.dna.hex()
        self.asic_count = max(1, ack.asic_count)
        # The nano 2.0 firmware ignores SET_VOLT/SET_FREQ (it runs its own thermal clock loop), so
        # they are sent only when asked for; the Avalon4 mini acts on them.
        if self.wanted_voltage is not None:
            session.send(p.avalonm_set_volt_packet(self.wanted_voltage))
        if self.wanted_frequency is not None:
            session.send(p.avalonm_set_freq_packet(self.wanted_frequency))

    def _mine(self, session: AvalonMSession) -> None:
        while not self.stopping() and not self.reinit_requested():
            self.take_restart()  # every batch is fresh work: a clean job needs nothing more
            batch = []
            for _ in range(self.asic_count):
                work = self.work_source.next_work(device_rolls_version=False, device=self.name)
                if work is None:
                    break
                batch.append(work)
            if not batch:
                self.pause(0.2)
                continue
            for work in batch:
                self._works[work.work_id & 0xFFFFFFFF] = work
                while len(self._works) > 64:
                    self._works.popitem(last=False)
                session.send_work(work.work_id, work.header)
            if self.version.startswith("3U"):
                self.pause(NANO_SETTLE)
            for _ in range(POLLS_PER_BATCH):
                if self.stopping():
                    return
                packet = session.poll()
                if packet is None:
                    self.counters["timeouts"] += 1
                    break
                if packet.type == p.NONCE:
                    for report in p.decode_nonce_m(packet):
                        self._on_report(report)
                    time.sleep(POLL_GAP)
                    continue
                if packet.type == p.STATUS:
                    self._on_status(p.StatusM.from_packet(packet))
                break
            # one A3222 core covers 2^32 in ~703 ms at 100 MHz: wait that share of a batch
            self.pause(100 * 703 / max(self.stats.frequency or 200, 100) / 4 / 1000)

    def _on_report(self, report: p.MidstateNonce) -> None:
        work = self._works.get(report.work_id)
        if work is None or report.chip >= self.asic_count:
            self.stats.note_hw_error()
            self.counters["unknown_work"] += 1
            return
        ntime = (work.job.ntime + report.ntime_roll) & 0xFFFFFFFF if report.ntime_roll else None
        nonce = p.header_nonce(report.nonce, p.NONCE_OFFSET_A3222)
        self.report_nonce(Nonce(work.work_id, nonce, ntime=ntime, device=self.name, found_at=time.monotonic(),
                                chip=report.chip))

    def _on_status(self, status: p.StatusM) -> None:
        self.status = status
        if self.version.startswith("3U"):
            self.stats.frequency = float(status.spi_speed)  # the nano 2.0 reports its current clock here
            self.stats.temperature = float(status.temperature)

    def details(self) -> dict[str, Any]:
        s = self.status
        return {"Version": self.version, "ASICs": self.asic_count,
                "Status": None if s is None else {"led": s.led, "fan": s.fan, "voltage_raw": s.voltage,
                                                  "power_good": s.power_good},
                "Bad packets": self.counters["bad"], "Timeouts": self.counters["timeouts"]}
