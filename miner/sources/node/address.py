"""Payout address -> output script, for the coinbase of a solo-mined block.

P2PKH and P2SH are Base58Check; P2WPKH and P2WSH are bech32 (BIP173, witness v0); P2TR is bech32m
(BIP350, witness v1). The encodings are written here from the BIPs' definitions: they are a few
dozen lines, and the PyPI packages for them either predate bech32m or pull in a whole wallet.

Networks are families, because several chains share prefixes: "main"; "test" (testnet3, testnet4
and signet: `tb1...`, `m/n/2...`); "regtest" (`bcrt1...`, and the testnet Base58 prefixes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
BECH32_CONST = 1
BECH32M_CONST = 0x2BC830A3
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

HRP = {"main": "bc", "test": "tb", "regtest": "bcrt"}
P2PKH_VERSION = {"main": 0x00, "test": 0x6F, "regtest": 0x6F}
P2SH_VERSION = {"main": 0x05, "test": 0xC4, "regtest": 0xC4}

# bcoin's own regtest prefixes, the forms `bcoin` hands out on regtest (its lib/protocol/networks.js,
# regtest.addressPrefix: pubkeyhash 0x3c, scripthash 0x26, bech32 "rb"); the same output scripts.
BCOIN_REGTEST_HRP = "rb"
BCOIN_REGTEST_P2PKH, BCOIN_REGTEST_P2SH = 0x3C, 0x26

# getblockchaininfo's "chain" -> family. Core: main/test/testnet4/signet/regtest; bcoin: testnet.
CHAIN_FAMILY = {"main": "main", "test": "test", "testnet": "test", "testnet3": "test", "testnet4": "test",
                "signet": "test", "regtest": "regtest"}


class AddressError(ValueError):
    """A payout address that cannot be used; str() is the one line to show."""


@dataclass(frozen=True, slots=True)
class PayoutAddress:
    text: str
    kind: str  # p2pkh, p2sh, p2wpkh, p2wsh, p2tr
    script: bytes  # the scriptPubKey
    families: frozenset[str]  # networks whose nodes accept this encoding

    def check_chain(self, chain: str) -> None:
        """Raise unless this address belongs to the node's chain (getblockchaininfo "chain")."""
        family = CHAIN_FAMILY.get(chain)
        if family is None:
            raise AddressError(f"address {self.text}: the node is on chain {chain!r}, which this miner does not know")
        if family not in self.families:
            wanted = " or ".join(sorted(self.families))
            raise AddressError(f"address {self.text} is a {wanted} address, but the node is on {chain!r}")


# ------------------------------------------------------------------------------------ bech32
def _polymod(values: Sequence[int]) -> int:
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_GENERATOR):
            if (top >> i) & 1:
                check ^= gen
    return check


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def bech32_encode(hrp: str, data: Sequence[int], const: int) -> str:
    values = _hrp_expand(hrp) + list(data)
    checksum = _polymod([*values, 0, 0, 0, 0, 0, 0]) ^ const
    tail = [(checksum >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(BECH32_CHARSET[d] for d in [*data, *tail])


def bech32_decode(text: str) -> tuple[str, list[int], int]:
    """(hrp, data without checksum, constant found); raises AddressError with the reason."""
    if len(text) > 90:
        raise AddressError(f"address {text}: too long for bech32 ({len(text)} > 90 characters)")
    if text.lower() != text and text.upper() != text:
        raise AddressError(f"address {text}: mixes upper and lower case")
    lower = text.lower()
    pos = lower.rfind("1")
    if pos < 1 or pos + 7 > len(lower):
        raise AddressError(f"address {text}: not bech32 (no human-readable part or too short)")
    hrp = lower[:pos]
    if any(not 33 <= ord(c) <= 126 for c in hrp):
        raise AddressError(f"address {text}: bad character in the prefix")
    try:
        data = [BECH32_CHARSET.index(c) for c in lower[pos + 1 :]]
    except ValueError:
        bad = next(c for c in lower[pos + 1 :] if c not in BECH32_CHARSET)
        raise AddressError(f"address {text}: {bad!r} is not a bech32 character") from None
    const = _polymod(_hrp_expand(hrp) + data)
    if const not in (BECH32_CONST, BECH32M_CONST):
        raise AddressError(f"address {text}: bad checksum (a typo?)")
    return hrp, data[:-6], const


def convert_bits(data: Sequence[int], from_bits: int, to_bits: int, pad: bool) -> list[int] | None:
    """Regroup bit strings; None when the input is not a valid regrouping (BIP173's padding rules)."""
    acc = bits = 0
    out = []
    maxv = (1 << to_bits) - 1
    for value in data:
        if value >> from_bits:
            return None
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & maxv)
    elif bits >= from_bits or (acc << (to_bits - bits)) & maxv:
        return None
    return out


def encode_segwit(hrp: str, version: int, program: bytes) -> str:
    const = BECH32_CONST if version == 0 else BECH32M_CONST
    return bech32_encode(hrp, [version, *convert_bits(program, 8, 5, True)], const)  # type: ignore[misc]


# ------------------------------------------------------------------------------------ base58
def _dsha256(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def base58check_encode(payload: bytes) -> str:
    data = payload + _dsha256(payload)[:4]
    number = int.from_bytes(data, "big")
    chars = []
    while number:
        number, digit = divmod(number, 58)
        chars.append(BASE58_ALPHABET[digit])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(chars))


def base58check_decode(text: str) -> bytes:
    number = 0
    for c in text:
        digit = BASE58_ALPHABET.find(c)
        if digit < 0:
            raise AddressError(f"address {text}: {c!r} is not a base58 character")
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    data = b"\0" * zeros + body
    if len(data) < 5:
        raise AddressError(f"address {text}: too short")
    payload, checksum = data[:-4], data[-4:]
    if _dsha256(payload)[:4] != checksum:
        raise AddressError(f"address {text}: bad checksum (a typo?)")
    return payload


# ------------------------------------------------------------------------------------ scripts
def p2pkh_script(hash160: bytes) -> bytes:
    return b"\x76\xa9\x14" + hash160 + b"\x88\xac"


def p2sh_script(hash160: bytes) -> bytes:
    return b"\xa9\x14" + hash160 + b"\x87"


def witness_script(version: int, program: bytes) -> bytes:
    return bytes([0x50 + version if version else 0, len(program)]) + program


def encode_address(kind: str, payload: bytes, family: str) -> str:
    """The address of `kind` for a hash or witness program on a network family."""
    if family not in HRP:
        raise ValueError(f"unknown network family {family!r}")
    if kind == "p2pkh":
        return base58check_encode(bytes([P2PKH_VERSION[family]]) + payload)
    if kind == "p2sh":
        return base58check_encode(bytes([P2SH_VERSION[family]]) + payload)
    if kind in ("p2wpkh", "p2wsh"):
        return encode_segwit(HRP[family], 0, payload)
    if kind == "p2tr":
        return encode_segwit(HRP[family], 1, payload)
    raise ValueError(f"unknown address kind {kind!r}")


def decode_address(text: str) -> PayoutAddress:
    """Parse and check a payout address; AddressError (one line) for anything unusable."""
    text = text.strip()
    if not text:
        raise AddressError("address: empty")
    lower = text.lower()
    for family, hrp in sorted(HRP.items(), key=lambda item: -len(item[1])):  # bcrt before bc
        if lower.startswith(hrp + "1"):
            return _decode_segwit(text, family)
    if lower.startswith(BCOIN_REGTEST_HRP + "1"):
        return _decode_segwit(text, "regtest", BCOIN_REGTEST_HRP)
    payload = base58check_decode(text)
    if len(payload) != 21:
        raise AddressError(f"address {text}: {len(payload)}-byte payload, not a P2PKH or P2SH address")
    version, hash160 = payload[0], payload[1:]
    if version == BCOIN_REGTEST_P2PKH:
        return PayoutAddress(text, "p2pkh", p2pkh_script(hash160), frozenset({"regtest"}))
    if version == BCOIN_REGTEST_P2SH:
        return PayoutAddress(text, "p2sh", p2sh_script(hash160), frozenset({"regtest"}))
    if version in P2PKH_VERSION.values():
        families = frozenset(f for f, v in P2PKH_VERSION.items() if v == version)
        return PayoutAddress(text, "p2pkh", p2pkh_script(hash160), families)
    if version in P2SH_VERSION.values():
        families = frozenset(f for f, v in P2SH_VERSION.items() if v == version)
        return PayoutAddress(text, "p2sh", p2sh_script(hash160), families)
    raise AddressError(f"address {text}: unknown Base58 version byte 0x{version:02x} (not a Bitcoin address?)")


def _decode_segwit(text: str, family: str, expected_hrp: str | None = None) -> PayoutAddress:
    hrp, data, const = bech32_decode(text)
    if hrp != (expected_hrp or HRP[family]):  # the prefix matched but the separator is elsewhere
        raise AddressError(f"address {text}: unknown prefix {hrp!r}")
    if not data:
        raise AddressError(f"address {text}: no witness version")
    version = data[0]
    program = convert_bits(data[1:], 5, 8, False)
    if version > 16 or program is None or not 2 <= len(program) <= 40:
        raise AddressError(f"address {text}: not a valid witness program")
    expected = BECH32_CONST if version == 0 else BECH32M_CONST
    if const != expected:
        wanted = "bech32" if version == 0 else "bech32m"
        raise AddressError(f"address {text}: witness v{version} must use the {wanted} checksum")
    prog = bytes(program)
    if version == 0 and len(prog) == 20:
        kind = "p2wpkh"
    elif version == 0 and len(prog) == 32:
        kind = "p2wsh"
    elif version == 0:
        raise AddressError(f"address {text}: witness v0 program of {len(prog)} bytes (must be 20 or 32)")
    elif version == 1 and len(prog) == 32:
        kind = "p2tr"
    else:
        # Valid to send to, but no one can spend these yet: refuse to mine coins into them.
        raise AddressError(f"address {text}: witness v{version} ({len(prog)} bytes) is not a known "
                           "address type (P2PKH, P2SH, P2WPKH, P2WSH, P2TR)")
    return PayoutAddress(text, kind, witness_script(version, prog), frozenset({family}))


# ------------------------------------------------------------------------------------ script -> address
@dataclass(frozen=True, slots=True)
class ScriptInfo:
    """What an output script is: its kind, and its address on a network family when it has one."""

    kind: str  # p2pkh, p2sh, p2wpkh, p2wsh, p2tr, op_return, p2pk, witness_unknown, nonstandard
    address: str | None  # None for OP_RETURN, bare public keys and scripts with no address


def classify_script(script: bytes, family: str = "main") -> ScriptInfo:
    """The inverse of the script builders above (Bitcoin Core's script/solver.cpp Solver templates):
    P2PKH, P2SH, witness v0 (P2WPKH/P2WSH), v1 (P2TR), OP_RETURN; P2PK is named but has no address."""
    if family not in HRP:
        raise ValueError(f"unknown network family {family!r}")
    n = len(script)
    if n == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac":
        return ScriptInfo("p2pkh", encode_address("p2pkh", script[3:23], family))
    if n == 23 and script[:2] == b"\xa9\x14" and script[22] == 0x87:
        return ScriptInfo("p2sh", encode_address("p2sh", script[2:22], family))
    if n >= 4 and (script[0] == 0 or 0x51 <= script[0] <= 0x60) and script[1] == n - 2 and 2 <= n - 2 <= 40:
        version = 0 if script[0] == 0 else script[0] - 0x50
        program = script[2:]
        if version == 0 and len(program) == 20:
            return ScriptInfo("p2wpkh", encode_address("p2wpkh", program, family))
        if version == 0 and len(program) == 32:
            return ScriptInfo("p2wsh", encode_address("p2wsh", program, family))
        if version == 1 and len(program) == 32:
            return ScriptInfo("p2tr", encode_address("p2tr", program, family))
        if version != 0:  # BIP350: future witness versions have bech32m addresses too
            return ScriptInfo("witness_unknown", encode_segwit(HRP[family], version, program))
        return ScriptInfo("nonstandard", None)
    if n >= 1 and script[0] == 0x6A:
        return ScriptInfo("op_return", None)
    if (n == 35 and script[0] == 33 and script[34] == 0xAC) or (n == 67 and script[0] == 65 and script[66] == 0xAC):
        return ScriptInfo("p2pk", None)
    return ScriptInfo("nonstandard", None)
