"""The avalonm (nano 2.0 / Avalon4 mini) path without hardware: the session and device logic over
a fake transport that answers with the codec's packets, and the missing-library error."""

import builtins
import queue
import time

import pytest
from miner.drivers.avalon import DRIVER
from miner.drivers.avalon import protocol as p
from miner.drivers.avalon.hid import AvalonMDevice, AvalonMSession, import_hid

from miner.core.shares import Verdict, check_nonce
from miner.core.work import Job
from miner.devices.base import DeviceError, DeviceSpec, DeviceState
from miner.devices.work_source import NoWork
from tests.conftest import load_vectors

V = {x["name"]: bytes.fromhex(x["packet"]) for x in load_vectors("avalon.json")["avalonm_genesis_work_id_1"]}
STRATUM = load_vectors("avalon.json")["avalon7_8_genesis_stratum_job"]["packets"]
GENESIS = load_vectors("headers.json")["genesis"]


def genesis_job() -> Job:
    tail = b"".join(bytes.fromhex(x["packet"])[6:38] for x in STRATUM if x["name"].startswith("COINBASE")
                    and x["name"] != "COINBASE1")[:204]
    return Job("1", bytes(32), tail[:43], tail[47:], (), 1, 0x1D00FFFF, 0x495FAB29, extranonce2_size=4)


class FakeNano:
    """A nano 2.0 as its HID reports show it: ACKDETECT, WORK in pairs, one reply per POLLING (a
    queued NONCE_M, else STATUS_M). It knows one answer: the genesis work's nonce (found by the
    research's brute-force scan), which it reports for whatever work id carries that work."""

    def __init__(self):
        self.replies: queue.Queue[bytes] = queue.Queue()
        self.nonces: list[bytes] = []
        self.pending: p.Packet | None = None
        self.received: list[p.Packet] = []
        self.unplugged = False

    def write(self, report: bytes) -> None:
        if self.unplugged:
            raise OSError("unplugged")
        packet = p.decode_packet(report)
        self.received.append(packet)
        if packet.type == p.DETECT:
            self.replies.put(p.DetectAck(b"\x01" * 8, "3U1505-abcdef00", 1).to_packet().encode())
        elif packet.type == p.WORK and packet.idx == 1:
            self.pending = packet
        elif packet.type == p.WORK and packet.idx == 2 and self.pending is not None:
            work = p.MidstateWork.from_packets(self.pending, packet)
            if work.work64 == p.icarus_work(bytes.fromhex(GENESIS["header"])):
                n = p.n_field(GENESIS["nonce"], p.NONCE_OFFSET_A3222)
                self.nonces.append(p.nonce_m_packet(p.MidstateNonce(work.work_id, 0, 0, n)).encode())
        elif packet.type == p.POLLING:
            if self.nonces:
                self.replies.put(self.nonces.pop(0))
            else:
                self.replies.put(p.StatusM(200, 0, 0xFFFFFFFF, 900, 0, 47, 0, 1).to_packet().encode())

    def read(self, timeout: float) -> bytes:
        if self.unplugged:
            raise OSError("unplugged")
        try:
            return self.replies.get(timeout=min(timeout, 0.05))
        except queue.Empty:
            return b""

    def close(self) -> None:
        pass


def test_session_speaks_the_vector_bytes():
    nano = FakeNano()
    session = AvalonMSession(nano)
    ack = session.detect()
    assert ack.version.startswith("3U") and ack.asic_count == 1
    assert [x.encode() for x in nano.received] == [p.Packet(p.DETECT).encode(), V["SETM_1000000"]]
    session.send_work(1, bytes.fromhex(GENESIS["header"]))
    assert [x.encode() for x in nano.received[-2:]] == [V["WORK1"], V["WORK2"]]
    assert session.poll().encode() == V["NONCE_M"]
    assert session.poll().type == p.STATUS


def test_device_maps_nonce_m_back_to_its_work_and_it_verifies():
    job = genesis_job()
    genesis_work = job.make_work(7, bytes.fromhex("ffff001d"))
    assert genesis_work.header[:76] == bytes.fromhex(GENESIS["header"])[:76]
    works = [genesis_work]
    found = []
    nano = FakeNano()

    class Works(NoWork):
        def next_work(self, device_rolls_version=False, device=""):
            return works.pop(0) if works else job.make_work(8 + len(found), b"\x00\x00\x00\x01")

    dev = AvalonMDevice(Works(), found.append, "AVM0", transport_factory=lambda: nano)
    dev.start()
    try:
        deadline = time.monotonic() + 5
        while not found and time.monotonic() < deadline:
            time.sleep(0.02)
        assert dev.stats.state is DeviceState.ALIVE and dev.model == "nano2"
        assert found and found[0].work_id == 7 and found[0].nonce == GENESIS["nonce"]
        assert check_nonce(genesis_work, found[0]).verdict is Verdict.BLOCK
        deadline = time.monotonic() + 5
        while dev.stats.temperature is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert dev.stats.temperature == 47.0 and dev.stats.frequency == 200.0
        nano.unplugged = True
        deadline = time.monotonic() + 5
        while dev.stats.state is not DeviceState.NO_DEVICE and time.monotonic() < deadline:
            time.sleep(0.02)
        assert dev.stats.state is DeviceState.NO_DEVICE
    finally:
        dev.stop()


def test_missing_hid_library_is_one_clear_line(monkeypatch):
    real_import = builtins.__import__

    def no_hid(name, *args, **kwargs):
        if name == "hid":
            raise ImportError("No module named 'hid'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_hid)
    with pytest.raises(DeviceError, match=r"pip install '\.\[hid\]'"):
        import_hid()
    dev = DRIVER.create(DeviceSpec.parse("nano2"), NoWork(), lambda n: None, 0)
    assert isinstance(dev, AvalonMDevice)
    dev.reopen_interval = 0.05
    dev.start()
    try:
        deadline = time.monotonic() + 3
        while dev.stats.state is not DeviceState.NO_DEVICE and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "pip install '.[hid]'" in dev.stats.last_error
    finally:
        dev.stop()
