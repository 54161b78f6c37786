"""Canaan Avalon miners: Avalon4/6/7/8 controllers behind the AUC USB-to-I2C converter (CDC-ACM,
29f1:33f2), and the HID Avalon nano 2.0 / Avalon4 mini ("avalonm"). The Avalon nano 1.0 speaks
Icarus and belongs to the Icarus driver."""

from __future__ import annotations

import sys

from miner.devices.base import Device, DeviceError, DeviceSpec, DriverInfo, NonceSink, UsbId, WorkSource

AUC_ID = UsbId(0x29F1, 0x33F2, model="auc")
USB_IDS: tuple[UsbId, ...] = (AUC_ID,)
FAMILY_BY_ALIAS = {"avalon4": "avalon4", "avalon6": "avalon4", "avalon7": "avalon7", "avalon8": "avalon8"}
HID_ALIASES = ("avalonm", "nano2")


def _frequencies(text: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in text.split(":") if v)
    if not values or any(v < 0 for v in values):
        raise ValueError("expected MHz or MHz:MHz:...")
    return values


def create(spec: DeviceSpec, work: WorkSource, sink: NonceSink, index: int) -> Device:
    from miner.drivers.avalon import protocol as p

    if spec.driver in HID_ALIASES:
        from miner.drivers.avalon.hid import AvalonMDevice

        return AvalonMDevice(work, sink, f"AVM{index}", spec.port, spec.difficulty(),
                             frequency=spec.option("frequency", int),
                             voltage=spec.option("voltage", int))
    from miner.drivers.avalon.driver import AvalonDevice

    family = p.Family(FAMILY_BY_ALIAS.get(spec.driver, "avalon7"))
    try:
        return AvalonDevice(work, sink, f"AV{index}", spec.port, spec.difficulty(),
                            frequencies=spec.option("frequency", _frequencies),
                            voltage=spec.option("voltage", int),
                            max_modules=spec.option("modules", int, 6),
                            polling_delay=spec.option("polling_delay", float, 0.02),
                            family_hint=family)
    except ValueError as exc:
        raise DeviceError(f"{spec.driver}:{spec.port}: {exc}") from None


def emulator_main(name: str, argv: list[str]) -> int:
    if name in HID_ALIASES:
        print(f"miner emulate {name}: the nano 2.0 is a USB HID device, not a serial port; emulate an AUC "
              "controller instead (miner emulate avalon --model avalon7)", file=sys.stderr)
        return 2
    from miner.drivers.avalon.emulator import main

    return main(name, argv)


DRIVER = DriverInfo(
    name="avalon",
    aliases=("avalon4", "avalon6", "avalon7", "avalon8", *HID_ALIASES),
    usb_ids=USB_IDS,
    description=("Canaan Avalon4/6/7/8 controllers behind the AUC converter; avalonm (nano 2.0, Avalon4 mini) "
                 "over USB HID with the 'hid' extra"),
    create=create,
    emulator_main=emulator_main,
)
