"""The CRCs the chips' wire formats use. Pure functions; the vectors are in tests/unit/test_kit.py.

- CRC-5 (poly x^5+x^2+1, init 0x1F, MSB first, no reflection, no final XOR): the BM13xx commands and
  replies (docs/bm13xx.md §2.1) and the Antminer U1/U2/U3 commands (docs/icarus.md §A8.1). Both
  families take it over a bit count that is not always whole bytes, hence `bits`.
- CRC-16 with poly 0x1021, MSB first, in its two initial values: CCITT-FALSE (init 0xFFFF) for BM13xx
  job frames (docs/bm13xx.md §2.2), XMODEM (init 0) for the Avalon MM packets (docs/avalon.md §2).
  binascii.crc_hqx is exactly this CRC with the initial value as its argument, in C.
"""

from __future__ import annotations

import binascii


def crc5(data: bytes, bits: int | None = None) -> int:
    """CRC-5 over the first `bits` bits of data (all of it by default); check("123456789") = 0x0F.
    Callers whose frames end mid-byte pass the bytes padded with zeros and the bit count."""
    total = len(data) * 8 if bits is None else bits
    if not 0 <= total <= len(data) * 8:
        raise ValueError(f"crc5: {total} bits asked of {len(data)} bytes")
    reg = 0x1F
    for i in range(total):
        bit = (data[i >> 3] >> (7 - (i & 7))) & 1
        top = (reg >> 4) & 1
        reg = (reg << 1) & 0x1F
        if top ^ bit:
            reg ^= 0x05
    return reg


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0; check 0x29B1."""
    return binascii.crc_hqx(data, 0xFFFF)


def crc16_xmodem(data: bytes) -> int:
    """CRC-16/XMODEM: poly 0x1021, init 0, no reflection, xorout 0; check 0x31C3."""
    return binascii.crc_hqx(data, 0)
