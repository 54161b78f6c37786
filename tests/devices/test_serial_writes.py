"""Writing to a serial port without pyserial's write loop (devices/serialport.py): every byte
arrives, in order, through a real pseudo-terminal; a port that stops taking bytes is a one-line
timeout, never a hang, on the device thread (write_all). On the loop the port pump writes
(tests/devices/test_port_pump.py has its full-port test)."""

from __future__ import annotations

import os
import pty
import threading
import time
import tty

import pytest
import serial

from miner.devices.serialport import write_all


@pytest.fixture
def port():
    master, slave = pty.openpty()
    tty.setraw(master)
    opened = serial.Serial(os.ttyname(slave), baudrate=115200, timeout=0.1, write_timeout=2.0)
    yield master, opened
    opened.close()
    os.close(slave)
    os.close(master)


def read_all(fd: int, size: int, timeout: float = 10.0) -> bytes:
    data = bytearray()
    deadline = time.monotonic() + timeout
    while len(data) < size and time.monotonic() < deadline:
        data += os.read(fd, size - len(data))
    return bytes(data)


def test_write_all_sends_every_byte_in_order_even_past_the_buffer(port):
    master, opened = port
    data = os.urandom(64 * 1024)  # far past a pty's buffer: partial writes and waits for room
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(read_all(master, len(data))))
    reader.start()
    write_all(opened, data, timeout=10.0)
    reader.join(15)
    assert got == [data]


def test_write_all_to_a_port_that_takes_no_more_times_out(port):
    _, opened = port  # nobody reads the other side
    began = time.monotonic()
    with pytest.raises(serial.SerialTimeoutException):
        write_all(opened, bytes(1 << 20), timeout=0.3)
    assert time.monotonic() - began < 5.0
