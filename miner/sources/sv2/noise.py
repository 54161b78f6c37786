"""The Stratum V2 transport, sans-I/O: the Noise NX handshake with the pool's certificate, then
encrypted frames (sv2-spec 04-Protocol-Security.md; docs/sv2.md §2, §3).

`NoiseInitiator` is the miner's side, `NoiseResponder` the pool's (the test pool uses it). Both
take and return bytes and never read a clock: the initiator is given `now` to check the
certificate's validity window. After the handshake both hold a `NoiseTransport`, which turns
plaintext frames into ciphertext and a ciphertext stream back into frames.

Sizes follow the peers' source rather than the spec's prose, where they differ: the spec's §4.5.2
still says act 2 is 170 bytes (its size before the 64-byte ElligatorSwift keys), while SRI's
noise_sv2 and ESP-Miner's sv2_noise.c (sv2_noise_handshake: `uint8_t resp[234]`) send and read
64 + 80 + 90 = 234 bytes. Act 1 is 64 bytes in both.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from miner.sources.sv2 import secp

PROTOCOL_NAME = b"Noise_NX_Secp256k1+EllSwift_ChaChaPoly_SHA256"
MAC_SIZE = 16
ACT1_SIZE = secp.ELLSWIFT_SIZE  # -> e
CERT_SIZE = 2 + 4 + 4 + 64  # SIGNATURE_NOISE_MESSAGE: version U16, valid_from U32, not_valid_after U32, signature
ACT2_SIZE = secp.ELLSWIFT_SIZE + (secp.ELLSWIFT_SIZE + MAC_SIZE) + (CERT_SIZE + MAC_SIZE)  # <- e, ee, s, es, cert
HEADER_SIZE = 6  # extension_type U16, msg_type U8, msg_length U24 (03-Protocol-Overview.md §3.2)
ENCRYPTED_HEADER_SIZE = HEADER_SIZE + MAC_SIZE  # 22 (§4.6)
MAX_CT_CHUNK = 65535  # a Noise message is at most 65535 bytes (§4.6)
MAX_PT_CHUNK = MAX_CT_CHUNK - MAC_SIZE  # 65519
# The largest frame payload taken: far above any mining message (a NewExtendedMiningJob with two
# full 64 KiB coinbase halves and 255 merkle hashes is about 140 KB) yet well under U24's 16 MiB, so
# a hostile header cannot make us buffer megabytes.
MAX_PAYLOAD = 1 << 20
NONCE_LIMIT = (1 << 64) - 1  # Noise §5.1: the nonce 2^64-1 is reserved; a CipherState stops before it


class NoiseError(Exception):
    """The handshake or a frame failed; the text is the one line the user sees."""


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def hkdf2(chaining_key: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    """§4.4.2 HKDF with an empty info and two outputs (RFC 5869 as Noise uses it)."""
    temp = _hmac(chaining_key, ikm)
    out1 = _hmac(temp, b"\x01")
    return out1, _hmac(temp, out1 + b"\x02")


def pt_len_to_ct_len(pt_len: int) -> int:
    """§4.6: a payload of pt_len bytes is sent as chunks of up to 65519 bytes, each with its MAC."""
    full, rest = divmod(pt_len, MAX_PT_CHUNK)
    return full * MAX_CT_CHUNK + (rest + MAC_SIZE if rest else 0)


class CipherState:
    """§4.4.1: a key and a nonce counter; ChaCha20-Poly1305 with the nonce as 4 zero bytes and a
    little-endian u64 (the Noise convention). A failed decryption does not advance the nonce.

    The spec defines no rekey; a connection would have to send 2^64 messages to run out, and one
    that does is ended rather than let the nonce wrap."""

    def __init__(self, key: bytes | None = None):
        self._aead = ChaCha20Poly1305(key) if key is not None else None
        self.n = 0

    @property
    def has_key(self) -> bool:
        return self._aead is not None

    def _nonce(self) -> bytes:
        if self.n >= NONCE_LIMIT:
            raise NoiseError("the Noise nonce ran out; reconnect")
        return b"\x00\x00\x00\x00" + struct.pack("<Q", self.n)

    def encrypt(self, ad: bytes, plaintext: bytes) -> bytes:
        if self._aead is None:
            return plaintext
        out = self._aead.encrypt(self._nonce(), plaintext, ad)
        self.n += 1
        return out

    def decrypt(self, ad: bytes, ciphertext: bytes) -> bytes:
        if self._aead is None:
            return ciphertext
        try:
            out = self._aead.decrypt(self._nonce(), ciphertext, ad)
        except InvalidTag:
            raise NoiseError("a message failed its authentication (MAC); the connection is not safe") from None
        self.n += 1
        return out


class SymmetricState:
    """§4.4.2: the chaining key ck, the handshake hash h and the handshake's CipherState."""

    def __init__(self) -> None:
        # §4.5.1: h = HASH(protocolName) (the name is over 32 bytes), ck = h, then h = HASH(h)
        # (the empty prologue mixed in; ESP-Miner's sv2_noise.c calls it MixHash(prologue)).
        self.h = hashlib.sha256(PROTOCOL_NAME).digest()
        self.ck = self.h
        self.mix_hash(b"")
        self.cipher = CipherState()

    def mix_hash(self, data: bytes) -> None:
        self.h = hashlib.sha256(self.h + data).digest()

    def mix_key(self, ikm: bytes) -> None:
        self.ck, temp_k = hkdf2(self.ck, ikm)
        self.cipher = CipherState(temp_k)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cipher.decrypt(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """(initiator -> responder, responder -> initiator)."""
        k1, k2 = hkdf2(self.ck, b"")
        return CipherState(k1), CipherState(k2)


# ------------------------------------------------------------------------------------ certificate
@dataclass(frozen=True)
class Certificate:
    """§4.5.2 SIGNATURE_NOISE_MESSAGE; with the server's static key it makes §4.5.3's CERTIFICATE."""

    version: int
    valid_from: int
    not_valid_after: int
    signature: bytes

    def encode(self) -> bytes:
        return struct.pack("<HII", self.version, self.valid_from, self.not_valid_after) + self.signature

    @classmethod
    def decode(cls, data: bytes) -> Certificate:
        if len(data) != CERT_SIZE:
            raise NoiseError(f"certificate: {len(data)} bytes, expected {CERT_SIZE}")
        version, valid_from, not_valid_after = struct.unpack_from("<HII", data)
        return cls(version, valid_from, not_valid_after, data[10:])

    @staticmethod
    def signed_message(version: int, valid_from: int, not_valid_after: int, server_key_x: bytes) -> bytes:
        """§4.5.3.1: m = SHA-256(version || valid_from || not_valid_after || server_public_key),
        the key as its 32-byte x coordinate."""
        return hashlib.sha256(struct.pack("<HII", version, valid_from, not_valid_after) + server_key_x).digest()

    @classmethod
    def issue(cls, authority_secret: bytes, server_key_x: bytes, valid_from: int, not_valid_after: int,
              version: int = 0, aux: bytes | None = None) -> Certificate:
        """What a pool operator's authority signs (the test pool does it at start)."""
        message = cls.signed_message(version, valid_from, not_valid_after, server_key_x)
        return cls(version, valid_from, not_valid_after, secp.schnorr_sign(authority_secret, message, aux))

    def check(self, authority_key: bytes, server_key_x: bytes, now: float) -> None:
        """Raise NoiseError with the one line to show unless the authority signed this server key
        and `now` is inside the validity window."""
        message = self.signed_message(self.version, self.valid_from, self.not_valid_after, server_key_x)
        if not secp.schnorr_verify(authority_key, message, self.signature):
            raise NoiseError("the pool's certificate is not signed by the authority key in the URL "
                             "(wrong key in the URL, or not the pool you meant); not mining there")
        if now < self.valid_from:
            raise NoiseError(f"the pool's certificate is not valid yet (valid from {self.valid_from}, "
                             f"now {int(now)}); check this machine's clock")
        if now > self.not_valid_after:
            raise NoiseError(f"the pool's certificate expired (not valid after {self.not_valid_after}, "
                             f"now {int(now)}); the pool must renew it, or check this machine's clock")


# ------------------------------------------------------------------------------------ transport
class NoiseTransport:
    """Encrypted frames after the handshake (§4.6): the 6-byte header alone as one AEAD message
    (22 bytes), then the payload in chunks of up to 65519 bytes, each its own AEAD message. An
    empty payload sends no chunk at all (ESP-Miner's sv2_noise_send does the same)."""

    def __init__(self, send: CipherState, receive: CipherState):
        self._send = send
        self._receive = receive
        self._buffer = bytearray()
        self._header: bytes | None = None
        # The largest payload taken; a server lowers it for its downstreams, whose biggest message
        # (SetupConnection) is about 1.3 KB, so a hostile one cannot make it buffer a MiB.
        self.max_payload = MAX_PAYLOAD

    def encrypt_frame(self, frame: bytes) -> bytes:
        if len(frame) < HEADER_SIZE:
            raise ValueError("a frame has at least its 6-byte header")
        out = [self._send.encrypt(b"", frame[:HEADER_SIZE])]
        payload = frame[HEADER_SIZE:]
        for start in range(0, len(payload), MAX_PT_CHUNK):
            out.append(self._send.encrypt(b"", payload[start:start + MAX_PT_CHUNK]))
        return b"".join(out)

    @property
    def partial(self) -> bool:
        """Bytes of an unfinished frame are waiting."""
        return bool(self._buffer) or self._header is not None

    def receive_data(self, data: bytes) -> list[bytes]:
        """The whole plaintext frames (header + payload) that `data` completes; raises NoiseError."""
        self._buffer += data
        frames = []
        while True:
            if self._header is None:
                if len(self._buffer) < ENCRYPTED_HEADER_SIZE:
                    return frames
                self._header = self._receive.decrypt(b"", bytes(self._buffer[:ENCRYPTED_HEADER_SIZE]))
                del self._buffer[:ENCRYPTED_HEADER_SIZE]
            length = int.from_bytes(self._header[3:6], "little")
            if length > self.max_payload:
                raise NoiseError(f"a frame of {length} bytes is larger than any mining message")
            need = pt_len_to_ct_len(length)
            if len(self._buffer) < need:
                return frames
            payload = []
            for start in range(0, need, MAX_CT_CHUNK):
                payload.append(self._receive.decrypt(b"", bytes(self._buffer[start:min(need, start + MAX_CT_CHUNK)])))
            del self._buffer[:need]
            frames.append(self._header + b"".join(payload))
            self._header = None


class NoiseInitiator:
    """The miner's side of §4.5: `act1()` gives 64 bytes to send, `act2(reply, now)` checks the
    pool's 234 bytes and certificate and gives the transport."""

    def __init__(self, authority_key: bytes, ephemeral_secret: bytes | None = None, aux: bytes | None = None):
        if len(authority_key) != 32:
            raise ValueError("the authority key is 32 bytes")
        self.authority_key = authority_key
        self._state = SymmetricState()
        self._e = ephemeral_secret or secp.new_secret()
        self._e_pub = secp.ellswift_create(self._e, aux)
        self.server_key_x: bytes | None = None
        self.certificate: Certificate | None = None

    def act1(self) -> bytes:
        self._state.mix_hash(self._e_pub)  # §4.5.1.1 steps 2-3
        self._state.encrypt_and_hash(b"")  # step 4: k is empty, so a MixHash of nothing
        return self._e_pub

    def act2(self, message: bytes, now: float) -> NoiseTransport:
        if len(message) != ACT2_SIZE:
            raise NoiseError(f"the pool's handshake reply is {len(message)} bytes, expected {ACT2_SIZE} "
                             "(is this a Stratum V2 port?)")
        st = self._state
        re = message[:64]
        st.mix_hash(re)  # §4.5.2.2 steps 2-3
        st.mix_key(secp.v2_ecdh(self._e, self._e_pub, re, initiator=True))  # ee
        try:
            rs = st.decrypt_and_hash(message[64:144])  # s
        except NoiseError:
            raise NoiseError("the pool's handshake reply failed its authentication (not a Stratum V2 "
                             "pool, or the data was altered)") from None
        st.mix_key(secp.v2_ecdh(self._e, self._e_pub, rs, initiator=True))  # es
        cert = Certificate.decode(st.decrypt_and_hash(message[144:]))
        self.server_key_x = secp.ellswift_decode_x(rs)
        self.certificate = cert
        cert.check(self.authority_key, self.server_key_x, now)  # §4.5.3
        send, receive = st.split()
        return NoiseTransport(send, receive)


class NoiseResponder:
    """The pool's side of §4.5 (for the test pool): `respond(act1)` gives act 2 and the transport."""

    def __init__(self, static_secret: bytes, certificate: Certificate, ephemeral_secret: bytes | None = None,
                 aux: bytes | None = None, static_aux: bytes | None = None):
        self._s = static_secret
        self._s_pub = secp.ellswift_create(static_secret, static_aux)
        self._cert = certificate
        self._e = ephemeral_secret or secp.new_secret()
        self._e_pub = secp.ellswift_create(self._e, aux)
        self._state = SymmetricState()

    def respond(self, act1: bytes) -> tuple[bytes, NoiseTransport]:
        if len(act1) != ACT1_SIZE:
            raise NoiseError(f"handshake act 1 is {len(act1)} bytes, expected {ACT1_SIZE}")
        st = self._state
        st.mix_hash(act1)  # §4.5.1.2
        st.decrypt_and_hash(b"")
        out = [self._e_pub]
        st.mix_hash(self._e_pub)  # §4.5.2.1
        st.mix_key(secp.v2_ecdh(self._e, self._e_pub, act1, initiator=False))
        out.append(st.encrypt_and_hash(self._s_pub))
        st.mix_key(secp.v2_ecdh(self._s, self._s_pub, act1, initiator=False))
        out.append(st.encrypt_and_hash(self._cert.encode()))
        to_responder, to_initiator = st.split()
        return b"".join(out), NoiseTransport(to_initiator, to_responder)


# ------------------------------------------------------------------------------------ authority key
B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
AUTHORITY_KEY_VERSION = b"\x01\x00"  # §4.7: a LE u16 version prefix, currently [1, 0]


def b58check_decode(text: str) -> bytes:
    number = 0
    for char in text:
        index = B58_ALPHABET.find(char)
        if index < 0:
            raise ValueError(f"{char!r} is not a base58 character")
        number = number * 58 + index
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    raw = b"\x00" * (len(text) - len(text.lstrip("1"))) + raw
    if len(raw) < 5:
        raise ValueError("too short for base58check")
    body, check = raw[:-4], raw[-4:]
    if hashlib.sha256(hashlib.sha256(body).digest()).digest()[:4] != check:
        raise ValueError("base58check checksum does not match (a typo in the key?)")
    return body


def b58check_encode(body: bytes) -> str:
    raw = body + hashlib.sha256(hashlib.sha256(body).digest()).digest()[:4]
    number = int.from_bytes(raw, "big")
    out = ""
    while number:
        number, rest = divmod(number, 58)
        out = B58_ALPHABET[rest] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\x00"))) + out


def decode_authority_key(text: str) -> bytes:
    """§4.7: base58check of [1, 0] + the 32-byte x-only authority key."""
    body = b58check_decode(text)
    if len(body) != 34 or body[:2] != AUTHORITY_KEY_VERSION:
        raise ValueError(f"an authority key is version [1, 0] and 32 bytes (got {len(body)} bytes, "
                         f"prefix {body[:2].hex()})")
    return body[2:]


def encode_authority_key(key: bytes) -> str:
    return b58check_encode(AUTHORITY_KEY_VERSION + key)
