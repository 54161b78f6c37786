"""Devices: the CPU worker pool now, USB ASIC drivers later; all report `Nonce`s for `Work`."""
