"""Bitmain BM13xx chip chains: the GekkoScience Compac F / NewPac / R606 / Compac sticks and
Bitaxe-class boards. `--device bm1397:PORT` (or bm1384, bm1387, bm1362, bm1366, bm1368, bm1370, bm1372,
bm1373) picks the chip; `miner emulate bm1366 --chips 4` runs an emulated chain."""

from miner.drivers.bm13xx.driver import Bm13xxDevice, create
from miner.drivers.kit.usb import UsbId

from miner.devices.base import DriverInfo

# cgminer's usbutils.c (docs/bm13xx.md §1.2). The bridges are generic (FTDI FT-X 0403:6015, Silicon Labs
# CP210x 10c4:ea60), so each id names its product string. Bitaxe boards have no USB bridge (the
# ESP32's UART drives the chip): they are reached as --device bm1366:PORT over whatever UART is
# wired. The Compac A2 (BM1370 on a dual-UART CP2105, 10c4:ea70) is left out of detection: only
# one of its two ports talks to the chips and no source says which.
USB_IDS = (
    UsbId(0x0403, 0x6015, "CompacF Bitcoin Miner", "bm1397"),
    UsbId(0x0403, 0x6015, "R909 Bitcoin Miner", "bm1397"),
    UsbId(0x0403, 0x6015, "NewPac Bitcoin Miner", "bm1387"),
    UsbId(0x0403, 0x6015, "R606 Bitcoin Miner", "bm1387"),
    UsbId(0x10C4, 0xEA60, "Compac BM1384 Bitcoin Miner", "bm1384"),
    UsbId(0x10C4, 0xEA60, "2Pac BM1384 Bitcoin Miner", "bm1384"),
    UsbId(0x10C4, 0xEA60, "Terminus BM1384 Bitcoin Miner", "bm1384"),
)



def emulator_main(name: str, argv: list[str]) -> int:
    from miner.drivers.bm13xx.emulator import main

    return main(name, argv)


DRIVER = DriverInfo(
    name="bm13xx",
    aliases=("bm1384", "bm1387", "bm1397", "bm1362", "bm1366", "bm1368", "bm1370", "bm1372", "bm1373"),
    usb_ids=USB_IDS,
    description="Bitmain BM13xx chains: GekkoScience Compac F / NewPac / R606 / Compac, Bitaxe boards",
    create=create,
    emulator_main=emulator_main,
)

__all__ = ["DRIVER", "USB_IDS", "Bm13xxDevice"]
