"""Just enough transaction building and signing to put our own transactions in a node's mempool:
spend P2WPKH outputs (BIP143 signature hashes, signed with coincurve) to any output scripts.

Test-only; written from BIP141/BIP143's definitions.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

import coincurve

SIGHASH_ALL = 1


def dsha256(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def hash160(data: bytes) -> bytes:
    return hashlib.new("ripemd160", hashlib.sha256(data).digest()).digest()


def varint(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    return b"\xfe" + struct.pack("<I", n)


class Key:
    def __init__(self, secret: bytes):
        self.private = coincurve.PrivateKey(secret)
        self.public = self.private.public_key.format(compressed=True)
        self.pkh = hash160(self.public)

    @property
    def p2wpkh_script(self) -> bytes:
        return b"\x00\x14" + self.pkh


@dataclass
class Spend:
    txid: str  # display hex
    vout: int
    value: int  # satoshis
    key: Key


def p2wpkh_spend(spends: list[Spend], outputs: list[tuple[int, bytes]]) -> tuple[bytes, str]:
    """A signed segwit transaction spending P2WPKH outputs; (raw bytes, txid display hex)."""
    version, locktime, sequence = 2, 0, 0xFFFFFFFF
    outpoints = [bytes.fromhex(s.txid)[::-1] + struct.pack("<I", s.vout) for s in spends]
    outs = b"".join(struct.pack("<q", value) + varint(len(script)) + script for value, script in outputs)
    hash_prevouts = dsha256(b"".join(outpoints))
    hash_sequence = dsha256(struct.pack("<I", sequence) * len(spends))
    hash_outputs = dsha256(outs)
    witnesses = []
    for spend, outpoint in zip(spends, outpoints, strict=True):
        script_code = b"\x19\x76\xa9\x14" + spend.key.pkh + b"\x88\xac"
        preimage = (struct.pack("<I", version) + hash_prevouts + hash_sequence + outpoint + script_code
                    + struct.pack("<q", spend.value) + struct.pack("<I", sequence) + hash_outputs
                    + struct.pack("<I", locktime) + struct.pack("<I", SIGHASH_ALL))
        signature = spend.key.private.sign(dsha256(preimage), hasher=None) + bytes([SIGHASH_ALL])
        witnesses.append(b"\x02" + varint(len(signature)) + signature + varint(33) + spend.key.public)
    inputs = b"".join(op + b"\x00" + struct.pack("<I", sequence) for op in outpoints)
    body = varint(len(spends)) + inputs + varint(len(outputs)) + outs
    stripped = struct.pack("<I", version) + body + struct.pack("<I", locktime)
    raw = struct.pack("<I", version) + b"\x00\x01" + body + b"".join(witnesses) + struct.pack("<I", locktime)
    return raw, dsha256(stripped)[::-1].hex()
