"""SHA-256 with its state exposed (FIPS 180-4 §6.2), in plain Python.

The Avalon Stratum job hands the device "the SHA-256 state after the coinbase bytes before
extranonce2", and the device continues hashing from it. hashlib keeps its state private and the C
core only exposes the first block's midstate, so the host (to build that state) and the emulator (to
continue from it) need a compression function they can start from any state. A few blocks per job
or per extranonce2 are hashed here; the nonce scan itself stays in the C core.
"""

from __future__ import annotations

import struct

_K = (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
)
IV = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19)
_M = 0xFFFFFFFF


def _ror(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & _M


def compress(state: tuple[int, ...], block: bytes) -> tuple[int, ...]:
    """One 64-byte block into an 8-word state."""
    w = list(struct.unpack(">16I", block))
    for t in range(16, 64):
        x, y = w[t - 15], w[t - 2]
        w.append((w[t - 16] + (_ror(x, 7) ^ _ror(x, 18) ^ (x >> 3)) + w[t - 7]
                  + (_ror(y, 17) ^ _ror(y, 19) ^ (y >> 10))) & _M)
    a, b, c, d, e, f, g, h = state
    for t in range(64):
        t1 = (h + (_ror(e, 6) ^ _ror(e, 11) ^ _ror(e, 25)) + ((e & f) ^ (~e & g)) + _K[t] + w[t]) & _M
        t2 = ((_ror(a, 2) ^ _ror(a, 13) ^ _ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) & _M
        a, b, c, d, e, f, g, h = (t1 + t2) & _M, a, b, c, (d + t1) & _M, e, f, g
    return tuple((s + v) & _M for s, v in zip(state, (a, b, c, d, e, f, g, h), strict=True))


def state_after(data: bytes, state: tuple[int, ...] = IV) -> tuple[int, ...]:
    """The state after whole 64-byte blocks of `data` (its length must be a multiple of 64)."""
    if len(data) % 64:
        raise ValueError(f"state_after: {len(data)} bytes is not a whole number of blocks")
    for i in range(0, len(data), 64):
        state = compress(state, data[i : i + 64])
    return state


def finish(state: tuple[int, ...], tail: bytes, total_length: int) -> bytes:
    """The digest of a message whose first `total_length - len(tail)` bytes gave `state`."""
    padded = tail + b"\x80" + b"\x00" * ((55 - len(tail)) % 64) + struct.pack(">Q", 8 * total_length)
    return struct.pack(">8I", *state_after(padded, state))


def state_bytes(state: tuple[int, ...]) -> bytes:
    return struct.pack(">8I", *state)


def state_from_bytes(data: bytes) -> tuple[int, ...]:
    return struct.unpack(">8I", data)
