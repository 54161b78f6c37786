"""getblocktemplate answer -> Job, and a solved header -> the block to submit. No I/O.

The coinbase is built here (facts in docs/gbt.md §2.2-2.5):

    version | 01 | 32x00 ffffffff | scriptSig | ffffffff | outputs | locktime 0
    scriptSig = BIP34 height | 08 <extranonce1 4 bytes><extranonce2 4 bytes> | optional tag push
    outputs   = payout (coinbasevalue) [+ witness commitment, value 0]

coinb1 ends just before the extranonce bytes and coinb2 starts right after them, so the dispatcher
rolls extranonce2 exactly as for a Stratum job.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from miner.core.targets import nbits_to_target
from miner.core.work import Job, dsha256, merkle_branch, merkle_root

EXTRANONCE1_SIZE = 4
EXTRANONCE2_SIZE = 4
MAX_SCRIPTSIG = 100  # consensus: a coinbase scriptSig is 2..100 bytes (bad-cb-length)
MAX_TAG = 64
WITNESS_RESERVED_VALUE = bytes(32)
WITNESS_MAGIC = bytes.fromhex("aa21a9ed")
COINBASE_VERSION = 2


class TemplateError(ValueError):
    """A template this miner cannot mine; str() is the one line to show."""


# ------------------------------------------------------------------------------------ encodings
def compact_size(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    if n <= 0xFFFFFFFF:
        return b"\xfe" + struct.pack("<I", n)
    return b"\xff" + struct.pack("<Q", n)


def script_number(n: int) -> bytes:
    """Script's number encoding: little-endian magnitude, the top bit of the last byte is the sign,
    and no more bytes than needed (0 is empty)."""
    magnitude = abs(n)
    out = bytearray()
    while magnitude:
        out.append(magnitude & 0xFF)
        magnitude >>= 8
    if out and out[-1] & 0x80:
        out.append(0x80 if n < 0 else 0x00)
    elif out and n < 0:
        out[-1] |= 0x80
    return bytes(out)


def push_data(data: bytes) -> bytes:
    """The shortest push of these bytes (direct length, OP_PUSHDATA1 or OP_PUSHDATA2)."""
    if len(data) < 0x4C:
        return bytes([len(data)]) + data
    if len(data) <= 0xFF:
        return b"\x4c" + bytes([len(data)]) + data
    return b"\x4d" + struct.pack("<H", len(data)) + data


def bip34_height(height: int) -> bytes:
    """The height as Bitcoin Core's script builder writes it, which is what its BIP34 check
    compares the scriptSig's first bytes with: OP_0 for 0, OP_1..OP_16 for 1..16, else a push of
    the script number (bcoin would accept a push for 1..16 too; Core would not)."""
    if height < 0:
        raise ValueError(f"height: negative ({height})")
    if height == 0:
        return b"\x00"
    if height <= 16:
        return bytes([0x50 + height])
    return push_data(script_number(height))


def witness_commitment_script(wtxids: Sequence[bytes]) -> bytes:
    """BIP141's commitment output script for the other transactions' wtxids (internal order);
    the coinbase's own wtxid counts as 32 zero bytes."""
    root = merkle_root_of([bytes(32), *wtxids])
    return b"\x6a\x24" + WITNESS_MAGIC + dsha256(root + WITNESS_RESERVED_VALUE)


def merkle_root_of(leaves: Sequence[bytes]) -> bytes:
    return merkle_root(leaves[0], merkle_branch(leaves[1:]))


# ------------------------------------------------------------------------------------ template
@dataclass(frozen=True, slots=True)
class TemplateTx:
    data: bytes
    txid: bytes  # internal order (the template's display hex reversed)
    wtxid: bytes

    @property
    def has_witness(self) -> bool:
        return self.txid != self.wtxid


@dataclass(frozen=True, slots=True)
class BlockTemplate:
    height: int
    version: int
    prevhash: bytes  # header order
    nbits: int
    curtime: int
    coinbase_value: int
    transactions: tuple[TemplateTx, ...]
    segwit: bool  # the node enforces segwit ("segwit" or "!segwit" among the rules)
    default_witness_commitment: bytes | None
    longpollid: str | None

    @property
    def target(self) -> int:
        return nbits_to_target(self.nbits)

    @property
    def needs_witness(self) -> bool:
        # Before activation a coinbase witness is "unexpected-witness" (bcoin offers the commitment
        # anyway); after it, Core always commits, so we do too.
        return self.segwit or any(tx.has_witness for tx in self.transactions)

    def same_work(self, other: BlockTemplate) -> bool:
        """Nothing a block would contain changed (a re-fetch that need not replace the job)."""
        return (self.prevhash, self.version, self.nbits, self.coinbase_value, self.height) == (
            other.prevhash, other.version, other.nbits, other.coinbase_value, other.height
        ) and [t.txid for t in self.transactions] == [t.txid for t in other.transactions]


def _hex(value: object, key: str, size: int | None = None) -> bytes:
    try:
        data = bytes.fromhex(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TemplateError(f"template: {key} is not hex: {value!r}") from None
    if size is not None and len(data) != size:
        raise TemplateError(f"template: {key} must be {size} bytes, got {len(data)}")
    return data


def parse_template(raw: object) -> BlockTemplate:
    if not isinstance(raw, dict):
        raise TemplateError(f"template: not an object: {str(raw)[:80]}")
    missing = [k for k in ("version", "previousblockhash", "bits", "curtime", "height", "transactions")
               if k not in raw]
    if missing:
        raise TemplateError(f"template: missing {', '.join(missing)}")
    if "coinbasevalue" not in raw:
        raise TemplateError("template: no coinbasevalue (the node wants to dictate the coinbase; not supported)")
    rules = [str(r) for r in raw.get("rules") or []]
    unknown = [r for r in rules if r.startswith("!") and r[1:] != "segwit"]
    if unknown:
        raise TemplateError(f"template: the node requires rules this miner does not implement: {', '.join(unknown)}")
    txs = []
    for i, tx in enumerate(raw["transactions"]):
        data = _hex(tx.get("data"), f"transactions[{i}].data")
        txid = _hex(tx.get("txid") or tx.get("hash"), f"transactions[{i}].txid", 32)[::-1]
        wtxid = _hex(tx.get("hash") or tx.get("txid"), f"transactions[{i}].hash", 32)[::-1]
        txs.append(TemplateTx(data, txid, wtxid))
    commitment = raw.get("default_witness_commitment")
    try:
        return BlockTemplate(
            height=int(raw["height"]),
            version=int(raw["version"]) & 0xFFFFFFFF,
            prevhash=_hex(raw["previousblockhash"], "previousblockhash", 32)[::-1],
            nbits=int(raw["bits"], 16),
            curtime=int(raw["curtime"]),
            coinbase_value=int(raw["coinbasevalue"]),
            transactions=tuple(txs),
            segwit=any(r.lstrip("!") == "segwit" for r in rules),
            default_witness_commitment=_hex(commitment, "default_witness_commitment") if commitment else None,
            longpollid=str(raw["longpollid"]) if raw.get("longpollid") else None,
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, TemplateError):
            raise
        raise TemplateError(f"template: bad field ({exc})") from None


# ------------------------------------------------------------------------------------ coinbase
def check_tag(tag: bytes) -> bytes:
    if len(tag) > MAX_TAG:
        raise ValueError(f"coinbase tag: {len(tag)} bytes, at most {MAX_TAG}")
    return tag


@dataclass(frozen=True, slots=True)
class Coinbase:
    coinb1: bytes
    coinb2: bytes
    witness: bool  # serialize with the witness reserved value in blocks


def build_coinbase(template: BlockTemplate, payout_script: bytes, tag: bytes = b"",
                   witness_commitment: bytes | None = None) -> Coinbase:
    """Coinbase halves around the 8 extranonce bytes. witness_commitment is the output script
    (None: no commitment output and no coinbase witness)."""
    check_tag(tag)
    height = bip34_height(template.height)
    extranonce_push = bytes([EXTRANONCE1_SIZE + EXTRANONCE2_SIZE])
    tail = push_data(tag) if tag else b""
    script_len = len(height) + 1 + EXTRANONCE1_SIZE + EXTRANONCE2_SIZE + len(tail)
    if script_len > MAX_SCRIPTSIG:  # not reachable with MAX_TAG, kept as the consensus guard
        raise ValueError(f"coinbase scriptSig would be {script_len} bytes (max {MAX_SCRIPTSIG})")
    outputs = [struct.pack("<q", template.coinbase_value) + compact_size(len(payout_script)) + payout_script]
    if witness_commitment is not None:
        outputs.append(struct.pack("<q", 0) + compact_size(len(witness_commitment)) + witness_commitment)
    coinb1 = (struct.pack("<I", COINBASE_VERSION) + b"\x01" + bytes(32) + b"\xff\xff\xff\xff"
              + compact_size(script_len) + height + extranonce_push)
    coinb2 = tail + b"\xff\xff\xff\xff" + compact_size(len(outputs)) + b"".join(outputs) + struct.pack("<I", 0)
    return Coinbase(coinb1, coinb2, witness_commitment is not None)


def with_witness(coinbase: bytes) -> bytes:
    """The segwit serialization of a coinbase: marker, flag, and one 32-byte reserved-value item."""
    return coinbase[:4] + b"\x00\x01" + coinbase[4:-4] + b"\x01\x20" + WITNESS_RESERVED_VALUE + coinbase[-4:]


@dataclass(frozen=True, slots=True)
class PreparedTemplate:
    """A template with our coinbase: makes the Job, and turns a solved header into a block."""

    template: BlockTemplate
    coinbase: Coinbase
    commitment: bytes | None

    def job(self, job_id: str, extranonce1: bytes, source: str, clean: bool) -> Job:
        t = self.template
        return Job(
            job_id=job_id, prevhash=t.prevhash, coinb1=self.coinbase.coinb1, coinb2=self.coinbase.coinb2,
            merkle_branch=tuple(merkle_branch([tx.txid for tx in t.transactions])),
            version=t.version, nbits=t.nbits, ntime=t.curtime, clean=clean, extranonce1=extranonce1,
            extranonce2_size=EXTRANONCE2_SIZE, share_target=t.target, source=source, height=t.height,
        )

    def block(self, header: bytes, coinbase: bytes) -> bytes:
        """header (80 bytes, solved) + every transaction, the coinbase (non-witness bytes) first."""
        if len(header) != 80:
            raise ValueError("header must be 80 bytes")
        cb = with_witness(coinbase) if self.coinbase.witness else coinbase
        txs = self.template.transactions
        return header + compact_size(1 + len(txs)) + cb + b"".join(tx.data for tx in txs)


def prepare(template: BlockTemplate, payout_script: bytes, tag: bytes = b"") -> PreparedTemplate:
    commitment = None
    if template.needs_witness:
        commitment = witness_commitment_script([tx.wtxid for tx in template.transactions])
    return PreparedTemplate(template, build_coinbase(template, payout_script, tag, commitment), commitment)
