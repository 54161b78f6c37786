"""Run `miner` with the USB serial ports read from a JSON file: hot-plug for a real miner process.

An emulated stick is a pseudo-terminal, and a pty has no USB vendor and product id, so the
operating system's port list (pyserial's `list_ports.comports()`, which the device manager
scans) can never show one as an Antminer U3. That is the one thing no real part can do, so this
launcher replaces just `comports()`: each call reads the file the test writes (a list of
`{"device", "vid", "pid", "product", "serial_number", "description"}`), and everything else,
detection, the driver, the emulator on its pty, the dashboard, is the real code.

    python -m tests.helpers.usb_ports PORTS.json -- MINER ARGS...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from serial.tools import list_ports
from serial.tools.list_ports_common import ListPortInfo


def ports_from(path: Path) -> list[ListPortInfo]:
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return []  # mid-write or gone: no ports this scan, as a racing unplug looks
    ports = []
    for entry in entries:
        info = ListPortInfo(entry["device"], skip_link_detection=True)
        info.vid, info.pid = entry.get("vid"), entry.get("pid")
        info.product, info.serial_number = entry.get("product"), entry.get("serial_number")
        info.description = entry.get("description", "")
        ports.append(info)
    return ports


def write_ports(path: Path, entries: list[dict]) -> None:
    """What the test calls: replace the file in one step, so a scan never reads half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(entries))
    tmp.replace(path)


def main() -> int:
    path, separator, *argv = sys.argv[1:]
    assert separator == "--", "usage: python -m tests.helpers.usb_ports PORTS.json -- MINER ARGS..."
    list_ports.comports = lambda include_links=False: ports_from(Path(path))
    from miner.app.cli import main as miner_main

    return miner_main(argv)


if __name__ == "__main__":
    sys.exit(main())
