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

from miner.core.targets import checked_compact_target, nbits_to_target
from miner.core.work import Job, dsha256, merkle_branch, merkle_root

EXTRANONCE1_SIZE = 4
# 8, not 4: `miner serve` keeps 2 of them for downstream prefixes (docs/serve.md §2), and a Stratum V2
# downstream asks for 4 of its own (docs/sv2.md), as a V1 miner's 4 are the common pool size.
EXTRANONCE2_SIZE = 8
MAX_SCRIPTSIG = 100  # consensus: a coinbase scriptSig is 2..100 bytes (bad-cb-length)
MAX_TAG = 64
WITNESS_RESERVED_VALUE = bytes(32)
WITNESS_MAGIC = bytes.fromhex("aa21a9ed")
COINBASE_VERSION = 2
# Edges of a template (docs/gbt.md §2.1): Core's MAX_MONEY (src/consensus/amount.h), a height that BIP34's
# script number and Core's int nHeight both hold, and the 4 MB that MAX_BLOCK_SERIALIZED_SIZE
# (src/consensus/consensus.h) allows a block; no transaction serializes in under 10 bytes (the same file's
# MIN_SERIALIZABLE_TRANSACTION_WEIGHT, 4 * 10), so a block holds at most 4e6 / 10 of them.
MAX_MONEY = 21_000_000 * 100_000_000
MAX_HEIGHT = (1 << 31) - 1
MAX_BLOCK_SIZE = 4_000_000
MIN_TX_SIZE = 10
MAX_TRANSACTIONS = MAX_BLOCK_SIZE // MIN_TX_SIZE
MAX_LONGPOLLID = 1024


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
    if not isinstance(value, str):
        raise TemplateError(f"template: {key} is not a hex string: {str(value)[:80]!r}")
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise TemplateError(f"template: {key} is not hex: {value[:80]!r}") from None
    if size is not None and len(data) != size:
        raise TemplateError(f"template: {key} must be {size} bytes, got {len(data)}")
    return data


def _int(raw: dict, key: str, low: int, high: int) -> int:
    """An integer field within [low, high]; JSON true/false and 1.5 are not integers."""
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TemplateError(f"template: {key} is not an integer: {str(value)[:80]!r}")
    if not low <= value <= high:
        raise TemplateError(f"template: {key} {value} is out of range ({low}..{high})")
    return value


def _transaction(i: int, tx: object) -> TemplateTx:
    """One entry of `transactions`, its hashes checked against its bytes: a node that lies about a
    txid would have us build a block whose merkle root commits to other transactions."""
    if not isinstance(tx, dict):
        raise TemplateError(f"template: transactions[{i}] is not an object: {str(tx)[:80]!r}")
    data = _hex(tx.get("data"), f"transactions[{i}].data")
    if len(data) < MIN_TX_SIZE:
        raise TemplateError(f"template: transactions[{i}].data is {len(data)} bytes, too short for a transaction")
    full_hash = dsha256(data)  # the wtxid; the txid too when the transaction has no witness
    witness = data[4:6] == b"\x00\x01"
    if tx.get("txid") is None and tx.get("hash") is None:
        raise TemplateError(f"template: transactions[{i}] has neither txid nor hash")
    wtxid = _hex(tx["hash"], f"transactions[{i}].hash", 32)[::-1] if tx.get("hash") is not None else None
    txid = _hex(tx["txid"], f"transactions[{i}].txid", 32)[::-1] if tx.get("txid") is not None else None
    if wtxid is not None and wtxid != full_hash:
        raise TemplateError(f"template: transactions[{i}].hash is not the hash of its data")
    if txid is None or wtxid is None:
        if witness:  # the one hash given cannot be both; a block needs the txid for its merkle root
            raise TemplateError(f"template: transactions[{i}] has a witness but not both txid and hash")
        txid = wtxid = full_hash
    if not witness and txid != full_hash:
        raise TemplateError(f"template: transactions[{i}].txid is not the hash of its data")
    return TemplateTx(data, txid, wtxid)


def parse_template(raw: object) -> BlockTemplate:
    """The node's getblocktemplate result, every field type- and range-checked (docs/gbt.md §2.1):
    whatever a node or a man in the middle sends, the result is a template that builds a block the
    header and coinbase can carry, or one TemplateError line."""
    if not isinstance(raw, dict):
        raise TemplateError(f"template: not an object: {str(raw)[:80]}")
    missing = [k for k in ("version", "previousblockhash", "bits", "curtime", "height", "transactions")
               if k not in raw]
    if missing:
        raise TemplateError(f"template: missing {', '.join(missing)}")
    if "coinbasevalue" not in raw:
        raise TemplateError("template: no coinbasevalue (the node wants to dictate the coinbase; not supported)")
    rules_raw = raw.get("rules") or []
    if not isinstance(rules_raw, list) or not all(isinstance(r, str) for r in rules_raw):
        raise TemplateError(f"template: rules is not a list of names: {str(rules_raw)[:80]!r}")
    unknown = [r for r in rules_raw if r.startswith("!") and r[1:] != "segwit"]
    if unknown:
        raise TemplateError(f"template: the node requires rules this miner does not implement: {', '.join(unknown)}")
    listed = raw["transactions"]
    if not isinstance(listed, list):
        raise TemplateError(f"template: transactions is not a list: {str(listed)[:80]!r}")
    if len(listed) > MAX_TRANSACTIONS:
        raise TemplateError(f"template: {len(listed)} transactions, more than a block can hold")
    txs = tuple(_transaction(i, tx) for i, tx in enumerate(listed))
    if sum(len(tx.data) for tx in txs) > MAX_BLOCK_SIZE:
        raise TemplateError(f"template: the transactions are over {MAX_BLOCK_SIZE} bytes, more than a block holds")
    bits = raw["bits"]
    if not isinstance(bits, str) or len(bits) != 8:
        raise TemplateError(f"template: bits is not 8 hex digits: {str(bits)[:80]!r}")
    try:
        nbits = int(bits, 16)
        checked_compact_target(nbits)
    except ValueError as exc:
        raise TemplateError(f"template: bad bits {bits!r} ({exc})") from None
    commitment = raw.get("default_witness_commitment")
    longpollid = raw.get("longpollid")
    if longpollid is not None and not isinstance(longpollid, str | int):
        raise TemplateError(f"template: longpollid is not a string: {str(longpollid)[:80]!r}")
    return BlockTemplate(
        height=_int(raw, "height", 0, MAX_HEIGHT),
        # Core sends the int32 nVersion; a negative one is the same 32 header bits.
        version=_int(raw, "version", -(1 << 31), 0xFFFFFFFF) & 0xFFFFFFFF,
        prevhash=_hex(raw["previousblockhash"], "previousblockhash", 32)[::-1],
        nbits=nbits,
        curtime=_int(raw, "curtime", 0, 0xFFFFFFFF),  # the header's 32-bit nTime
        coinbase_value=_int(raw, "coinbasevalue", 0, MAX_MONEY),
        transactions=txs,
        segwit=any(r.lstrip("!") == "segwit" for r in rules_raw),
        default_witness_commitment=_hex(commitment, "default_witness_commitment") if commitment else None,
        longpollid=str(longpollid)[:MAX_LONGPOLLID] if longpollid else None,
    )


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
    """Coinbase halves around the 12 extranonce bytes. witness_commitment is the output script
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
