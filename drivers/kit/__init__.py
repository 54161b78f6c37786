"""What the drivers share: CRCs (crc.py), bit and byte helpers (bits.py), USB ids (usb.py) and the
pty emulation kit (emulation.py). No driver defines its own copy of these."""
