"""Coinbases for tests, serialised as Bitcoin Core does (primitives/transaction.h; BIP144 for the
segwit form), split into Stratum's coinb1/coinb2 around the extranonces, which sit inside the input
script as pools put them (ckpool stratifier.c generate_coinbase). docs/payout.md §1."""

from __future__ import annotations

import struct

from miner.sources.node.address import decode_address
from tests.helpers.txbuild import varint

WITNESS_COMMITMENT = bytes.fromhex("6a24aa21a9ed") + bytes(32)  # BIP141's OP_RETURN, value 0


def script_of(address: str) -> bytes:
    return decode_address(address).script


def coinbase_halves(outputs: list[tuple[int, bytes]], height: int = 840_000, tag: bytes = b"/test/",
                    extranonce_size: int = 8, segwit: bool = False) -> tuple[bytes, bytes]:
    """(coinb1, coinb2) for these (value, script) outputs; extranonce1 + extranonce2 go between."""
    push = height.to_bytes((height.bit_length() + 8) // 8, "little")
    script_head = bytes([len(push)]) + push + bytes([len(tag)]) + tag
    script_len = len(script_head) + extranonce_size
    head = struct.pack("<i", 2) + (b"\x00\x01" if segwit else b"") + b"\x01" + bytes(32) + b"\xff\xff\xff\xff"
    coinb1 = head + varint(script_len) + script_head
    body = b"\xff\xff\xff\xff" + varint(len(outputs))
    for value, script in outputs:
        body += struct.pack("<Q", value) + varint(len(script)) + script
    witness = b"\x01\x20" + bytes(32) if segwit else b""
    return coinb1, body + witness + b"\x00\x00\x00\x00"


def coinbase(outputs: list[tuple[int, bytes]], segwit: bool = False, **kwargs) -> bytes:
    coinb1, coinb2 = coinbase_halves(outputs, segwit=segwit, **kwargs)
    return coinb1 + bytes(kwargs.get("extranonce_size", 8)) + coinb2
