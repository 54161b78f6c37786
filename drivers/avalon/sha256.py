"""SHA-256 with its state exposed (FIPS 180-4 §6.2), through the C core.

The Avalon Stratum job hands the device "the SHA-256 state after the coinbase bytes before
extranonce2", and the device continues hashing from it. hashlib keeps its state private, so the
host (to build that state) and the emulator (to continue from it) use the core's block function.
States are tuples of 8 words here, as the packet codec reads and writes them.
"""

from __future__ import annotations

import struct

from miner.core import hashing

IV = struct.unpack(">8I", hashing.SHA256_IV)


def state_after(data: bytes, state: tuple[int, ...] = IV) -> tuple[int, ...]:
    """The state after whole 64-byte blocks of `data` (its length must be a multiple of 64)."""
    if len(data) % 64:
        raise ValueError(f"state_after: {len(data)} bytes is not a whole number of blocks")
    return struct.unpack(">8I", hashing.sha256_state_after(data, struct.pack(">8I", *state)))


def finish(state: tuple[int, ...], tail: bytes, total_length: int) -> bytes:
    """The digest of a message whose first `total_length - len(tail)` bytes gave `state`."""
    padded = tail + b"\x80" + b"\x00" * ((55 - len(tail)) % 64) + struct.pack(">Q", 8 * total_length)
    return struct.pack(">8I", *state_after(padded, state))


def state_bytes(state: tuple[int, ...]) -> bytes:
    return struct.pack(">8I", *state)


def state_from_bytes(data: bytes) -> tuple[int, ...]:
    return struct.unpack(">8I", data)
