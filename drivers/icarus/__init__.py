"""Icarus-family USB sticks: ASICMiner Block Erupter, Bitmain Antminer U1/U2/U3 (and the original
two-FPGA Icarus). `DRIVER` is what the `miner.drivers` entry point names."""

from __future__ import annotations

from miner.devices.base import Device, DeviceSpec, DriverInfo, NonceSink, UsbId, WorkSource

from . import protocol

USB_IDS: tuple[UsbId, ...] = protocol.USB_IDS


def create(spec: DeviceSpec, work: WorkSource, sink: NonceSink, index: int) -> Device:
    from .driver import create as create_device

    # `--device u3:PATH` means model u3; an explicit model= option wins.
    if spec.driver in protocol.ALIASES and spec.driver != "icarus" and "model" not in spec.options:
        spec = DeviceSpec(spec.driver, spec.port, {**spec.options, "model": spec.driver})
    return create_device(spec, work, sink, index)


def emulator_main(name: str, argv: list[str]) -> int:
    from .emulator import main

    return main(name, argv)


DRIVER = DriverInfo(
    name="icarus",
    aliases=("erupter", "blockerupter", "amu", "antminer", "u1", "u2", "u3", "antminer-u1", "antminer-u2",
             "antminer-u3", "au3"),
    usb_ids=USB_IDS,
    description="Icarus-family USB sticks: Block Erupter, Antminer U1/U2/U3 (golden-nonce identified)",
    create=create,
    emulator_main=emulator_main,
)
