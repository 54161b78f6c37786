"""A job's coinbase transaction, decoded: who the block reward goes to (docs/payout.md §1).

A Stratum job sends the coinbase in two halves around the extranonces (coinb1 + extranonce1 +
extranonce2 + coinb2); a getblocktemplate job builds it the same way. Joining the halves with any
extranonce2 (zeros here: it only sits inside the input script) gives a whole transaction, which is
parsed as Bitcoin Core serialises one (primitives/transaction.h, SerializeTransaction): with or
without the BIP144 segwit marker and flag. Output scripts are named and given an address by
`miner.sources.node.address.classify_script`. Pure code, no I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from miner.core.work import Job, dsha256
from miner.sources.node.address import classify_script

MAX_OUTPUTS = 100_000  # a sanity bound: a 1 MB coinbase holds at most ~110,000 of the smallest outputs
COINBASE_PREVOUT = bytes(32) + b"\xff\xff\xff\xff"


class CoinbaseError(ValueError):
    """A coinbase that is not a transaction; str() is the one line to show."""


@dataclass(frozen=True, slots=True)
class CoinbaseOutput:
    value: int  # satoshis
    script: bytes
    kind: str  # classify_script's kind: p2pkh, p2sh, p2wpkh, p2wsh, p2tr, op_return, p2pk, ...
    address: str | None  # on the network family it was decoded for; None when the script has none


@dataclass(frozen=True, slots=True)
class Coinbase:
    version: int
    script_sig: bytes
    outputs: tuple[CoinbaseOutput, ...]
    locktime: int
    segwit: bool  # serialised with the BIP144 marker and flag
    txid: bytes  # internal order (reverse for the hex explorers show)

    @property
    def total(self) -> int:
        return sum(o.value for o in self.outputs)

    @property
    def height(self) -> int | None:
        """BIP34: the first push of the input script is the height (docs/gbt.md §2.2)."""
        s = self.script_sig
        if s and 1 <= s[0] <= 8 and len(s) > s[0]:
            return int.from_bytes(s[1 : 1 + s[0]], "little")
        if s and 0x51 <= s[0] <= 0x60:  # OP_1..OP_16, as Core encodes heights 1..16
            return s[0] - 0x50
        return None

    @property
    def tag(self) -> str:
        """The printable text in the input script (a pool's signature, e.g. "/ckpool.org/")."""
        text = "".join(chr(b) if 32 <= b < 127 else " " for b in self.script_sig)
        return " ".join(part for part in text.split() if len(part) >= 3)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise CoinbaseError(f"coinbase: ends inside the {what} (byte {self.pos} of {len(self.data)}, "
                                f"{n} more needed)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def varint(self, what: str) -> int:
        first = self.take(1, what)[0]
        if first < 0xFD:
            return first
        size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
        return int.from_bytes(self.take(size, what), "little")


def parse_coinbase(raw: bytes, family: str = "main") -> Coinbase:
    """Decode a whole coinbase transaction; CoinbaseError (one line) when it is not one."""
    r = _Reader(raw)
    version = struct.unpack("<i", r.take(4, "version"))[0]
    segwit = False
    if raw[4:6] == b"\x00\x01":  # BIP144: marker 0x00 (no inputs would be invalid) and flag 0x01
        segwit = True
        r.take(2, "segwit marker")
    inputs = r.varint("input count")
    if inputs != 1:
        raise CoinbaseError(f"coinbase: {inputs} inputs, a coinbase has exactly one")
    prevout = r.take(36, "input's previous output")
    if prevout != COINBASE_PREVOUT:
        raise CoinbaseError("coinbase: the input spends a real output, so this is not a coinbase")
    script_sig = r.take(r.varint("input script length"), "input script")
    r.take(4, "input sequence")
    count = r.varint("output count")
    if count > MAX_OUTPUTS or count > (len(raw) - r.pos) // 9:
        raise CoinbaseError(f"coinbase: claims {count} outputs in {len(raw) - r.pos} bytes")
    outputs = []
    for i in range(count):
        value = int.from_bytes(r.take(8, f"value of output {i}"), "little")
        script = r.take(r.varint(f"script length of output {i}"), f"script of output {i}")
        info = classify_script(script, family)
        outputs.append(CoinbaseOutput(value, script, info.kind, info.address))
    body_end = r.pos
    if segwit:
        for _ in range(r.varint("witness item count")):
            r.take(r.varint("witness item length"), "witness item")
    locktime = struct.unpack("<I", r.take(4, "locktime"))[0]
    if r.pos != len(raw):
        raise CoinbaseError(f"coinbase: {len(raw) - r.pos} bytes after the locktime")
    # The txid hashes the legacy serialisation: no marker, flag or witness (BIP141).
    legacy = raw[:4] + raw[6:body_end] + raw[-4:] if segwit else raw
    return Coinbase(version, script_sig, tuple(outputs), locktime, segwit, dsha256(legacy))


def job_coinbase(job: Job, family: str = "main") -> Coinbase:
    """The coinbase a job's work units are built from (with extranonce2 = zeros)."""
    return parse_coinbase(job.coinbase(bytes(job.extranonce2_size)), family)
