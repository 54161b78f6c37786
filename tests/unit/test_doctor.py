"""`miner devices` and `miner udev-rules`, with drivers and ports given by the test."""

import os

from miner.drivers.kit.usb import UsbId

from miner.app.cli import main
from miner.app.doctor import format_reports, port_reports, udev_rules
from miner.devices.manager import PortInfo


class Driver:
    def __init__(self, name, *usb_ids):
        self.name, self.aliases, self.description, self.usb_ids = name, (), name, usb_ids


ICARUS = Driver("icarus", UsbId(0x067B, 0x2303, model="Block Erupter"), UsbId(0x10C4, 0xEA60))
BM = Driver("bm13xx", UsbId(0x10C4, 0xEA60, product="Compac F", model="BM1397"))


def test_ports_are_matched_to_drivers_with_access_and_fix(tmp_path):
    not_a_tty = tmp_path / "file"
    not_a_tty.write_text("")
    ports = [PortInfo("/dev/null", 0x10C4, 0xEA60, "GekkoScience Compac F Bitcoin Miner"),
             PortInfo("/dev/null", 0x067B, 0x2303, "USB-Serial Controller"),
             PortInfo(str(not_a_tty), 0x1234, 0x0001, "Something else"),
             PortInfo("/dev/does-not-exist", None, None, None, description="ttyS0")]
    denied = lambda path, mode: False  # noqa: E731 - a user without access to anything
    reports = port_reports(ports, [ICARUS, BM, ICARUS], access=denied)
    assert [(r.driver, r.model) for r in reports] == [("bm13xx", "BM1397"), ("icarus", "Block Erupter"),
                                                      (None, None), (None, None)]
    assert not any(r.accessible for r in reports)
    group = __import__("grp").getgrgid(os.stat("/dev/null").st_gid).gr_name
    assert reports[0].fix.startswith(f"sudo usermod -aG {group} $USER") and "miner udev-rules" in reports[0].fix
    assert reports[2].fix == "not a character device" and reports[3].fix == "vanished (unplugged?)"
    table = format_reports(reports)
    assert "10c4:ea60" in table and "bm13xx (BM1397)" in table and "DENIED" in table
    allowed = port_reports(ports[:1], [BM])
    assert allowed[0].accessible and allowed[0].fix == ""  # /dev/null is open to everyone


def test_udev_rules_cover_every_claimed_id_once():
    rules = udev_rules([ICARUS, BM])
    lines = [line for line in rules.splitlines() if line and not line.startswith("#")]
    assert len(lines) == 4  # two ids (tty and usb rule each); 10c4:ea60 is shared by two drivers
    assert 'SUBSYSTEM=="tty", ATTRS{idVendor}=="067b", ATTRS{idProduct}=="2303", MODE="0660", GROUP="plugdev", ' \
           'TAG+="uaccess"' in lines
    assert "# icarus, bm13xx BM1397 (Compac F)" in rules
    assert "no installed driver" in udev_rules([Driver("cpu")])


def test_the_subcommands_run(capsys):
    assert main(["udev-rules"]) == 0
    assert capsys.readouterr().out.startswith("# udev rules for the miner")
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("port") or out.startswith("no serial ports found")
