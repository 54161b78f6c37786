"""Bitaxe boards running the bitaxe-raw USB firmware (a Bitaxe Gamma reflashed, the emberOne/00):
two CDC-ACM ports, the control port (board peripherals, control.py) and the data port (the raw
BM13xx UART, driven by the bm13xx driver). `DRIVER` is what the `miner.drivers` entry point names."""

from __future__ import annotations

from miner.drivers.kit.usb import UsbId

from miner.devices.base import Device, DeviceSpec, DriverInfo, NonceSink, WorkSource

# bitaxe-raw's USB descriptor (bitaxeorg/bitaxe-raw src/main.rs: embassy_usb::Config::new(0xc0de,
# 0xcafe), manufacturer "OSMU"); mujina matches the strings: "OSMU"/"Bitaxe" (board/bitaxe.rs) and
# "256F"/"EmberOne00" (board/emberone00.rs). The model names the chain's chip. The emberOne's BM1362
# has no chip table yet (docs/bm13xx.md), so it is not claimed.
USB_IDS: tuple[UsbId, ...] = (
    UsbId(0xC0DE, 0xCAFE, "Bitaxe", "bm1370"),
)


def create(spec: DeviceSpec, work: WorkSource, sink: NonceSink, index: int) -> Device:
    from .driver import create as create_device

    return create_device(spec, work, sink, index)


def emulator_main(name: str, argv: list[str]) -> int:
    from .emulator import main

    return main(name, argv)


DRIVER = DriverInfo(
    name="bitaxe_raw",
    aliases=("bitaxe-raw", "bitaxeraw"),
    usb_ids=USB_IDS,
    companion_option="data",  # the second CDC-ACM interface is the chain's data port (docs/bitaxe-raw.md §1)
    description="Bitaxe boards on bitaxe-raw firmware: control port (TPS546, EMC2101, reset) + BM13xx data port",
    create=create,
    emulator_main=emulator_main,
)
