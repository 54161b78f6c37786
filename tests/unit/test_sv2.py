"""Stratum V2 without sockets (docs/sv2.md): the spec's authority-key vector, BIP324 ellswift and
BIP340 vectors through secp.py, RFC 8439 through the CipherState, a recorded handshake replayed
byte for byte, certificate refusals, the codec's round trips and fuzzing, and the session's rules
from transcripts driven by the test pool's own NoiseResponder."""

from __future__ import annotations

import functools
import hashlib
import json
import random
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miner.core.shares import check_nonce
from miner.core.work import Nonce
from miner.sources.stratum import session as ss
from miner.sources.stratum.url import PoolConfig, parse_pool_url
from miner.sources.sv2 import codec as c
from miner.sources.sv2 import noise as n
from miner.sources.sv2 import secp
from miner.sources.sv2.session import Sv2Session

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def vectors(name: str) -> dict:
    return json.loads((VECTORS / name).read_text())


# ------------------------------------------------------------------------------------ vectors
def test_the_specs_authority_key_vector():
    # sv2-spec 04-Protocol-Security.md §4.7.1
    raw = bytes([118, 99, 112, 0, 151, 156, 28, 17, 175, 12, 48, 11, 205, 140, 127, 228, 134, 16, 252, 233, 185, 193,
                 30, 61, 174, 227, 90, 224, 176, 138, 116, 85])
    text = "9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh"
    assert n.encode_authority_key(raw) == text
    assert n.decode_authority_key(text) == raw
    url = parse_pool_url(f"stratum2+tcp://thepool.com:34254/{text}")
    assert (url.host, url.port, url.authority_key, url.protocol, url.tls) == ("thepool.com", 34254, raw, "stratum2",
                                                                              False)
    assert str(url) == f"stratum2+tcp://thepool.com:34254/{text}"


@pytest.mark.parametrize("key, words", [
    ("9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXX", "checksum"),
    ("", "ends with the pool's authority key"),
    (n.b58check_encode(b"\x02\x00" + bytes(32)), "version [1, 0]"),
    ("0OIl", "not a base58 character"),
])
def test_a_bad_authority_key_is_one_clear_line(key, words):
    with pytest.raises(ValueError) as info:
        parse_pool_url(f"stratum2+tcp://pool.example:34254/{key}")
    assert words in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("row", vectors("bip324_ellswift.json")["rows"], ids=lambda r: str(r["idx"]))
def test_bip324_ellswift_decode_and_xonly_ecdh(row):
    ours, theirs = bytes.fromhex(row["ellswift_ours"]), bytes.fromhex(row["ellswift_theirs"])
    secret = bytes.fromhex(row["priv_ours"])
    assert secp.ellswift_decode_x(ours).hex() == row["x_ours"]
    assert secp.ellswift_xdh_x(theirs, secret).hex() == row["x_shared"]
    assert secp.v2_ecdh(secret, ours, theirs, row["initiating"]).hex() == row["shared_secret"]


def test_ellswift_create_encodes_the_secrets_key():
    secret = hashlib.sha256(b"k").digest()
    encoding = secp.ellswift_create(secret, bytes(32))
    assert len(encoding) == 64 and secp.ellswift_decode_x(encoding) == secp.xonly_public(secret)
    assert secp.ellswift_create(secret, bytes(32)) == encoding != secp.ellswift_create(secret, b"\x01" * 32)


@pytest.mark.parametrize("row", vectors("bip340.json")["rows"], ids=lambda r: str(r["index"]))
def test_bip340_vectors(row):
    key, message, signature = (bytes.fromhex(row[k]) for k in ("public_key", "message", "signature"))
    assert secp.schnorr_verify(key, message, signature) is row["valid"]
    if row["secret_key"]:
        assert secp.schnorr_sign(bytes.fromhex(row["secret_key"]), message,
                                 bytes.fromhex(row["aux_rand"])) == signature


def test_rfc8439_a5_through_the_cipher_state():
    # RFC 8439 appendix A.5: nonce 00000000 0102030405060708 is the Noise nonce n = LE u64 of 01..08
    key = bytes.fromhex("1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0")
    aad = bytes.fromhex("f33388860000000000004e91")
    ciphertext = bytes.fromhex(
        "64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb24c6cfc18755d43eea09ee94e382d26b0"
        "bdb7b73c321b0100d4f03b7f355894cf332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c855"
        "9797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4b9166c767b804d46a59b5216cde7a4e9"
        "9040c5a40433225ee282a1b0a06c523eaf4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a"
        "0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a1049e617d91d361094fa68f0ff77987130"
        "305beaba2eda04df997b714d6c6f2c29a6ad5cb4022b02709b")
    tag = bytes.fromhex("eead9d67890cbb22392336fea1851f38")
    counter = int.from_bytes(bytes(range(1, 9)), "little")
    receive = n.CipherState(key)
    receive.n = counter
    plaintext = receive.decrypt(aad, ciphertext + tag)
    assert plaintext.startswith(b"Internet-Drafts are draft documents valid for a maximum of six months")
    assert receive.n == counter + 1
    send = n.CipherState(key)
    send.n = counter
    assert send.encrypt(aad, plaintext) == ciphertext + tag
    broken = n.CipherState(key)
    broken.n = counter
    with pytest.raises(n.NoiseError):
        broken.decrypt(aad, ciphertext + bytes(16))
    assert broken.n == counter  # §4.4.1: a failed decryption does not advance the nonce


def test_the_initial_handshake_hash_is_esp_miners():
    # ESP-Miner components/stratum_v2/sv2_noise.c, sv2_noise_handshake: expected_h
    assert list(hashlib.sha256(n.PROTOCOL_NAME).digest()) == [
        46, 180, 120, 129, 32, 142, 158, 238, 31, 102, 159, 103, 198, 110, 231, 14,
        169, 234, 136, 9, 13, 80, 63, 232, 48, 220, 75, 200, 62, 41, 191, 16]


# ------------------------------------------------------------------------------------ handshake
def _recorded():
    v = vectors("sv2_handshake.json")
    i = {k: bytes.fromhex(x) for k, x in v["inputs"].items()}
    cv = v["certificate"]
    cert = n.Certificate.issue(i["authority_secret"], secp.xonly_public(i["static_secret"]), cv["valid_from"],
                               cv["not_valid_after"], cv["version"], i["cert_aux"])
    initiator = n.NoiseInitiator(secp.xonly_public(i["authority_secret"]), i["initiator_ephemeral"], i["initiator_aux"])
    responder = n.NoiseResponder(i["static_secret"], cert, i["responder_ephemeral"], i["responder_aux"],
                                 i["static_aux"])
    return v, initiator, responder


def test_a_recorded_handshake_replays_byte_for_byte():
    v, initiator, responder = _recorded()
    act1 = initiator.act1()
    assert act1.hex() == v["act1"] and len(act1) == n.ACT1_SIZE == 64
    act2, to_initiator = responder.respond(act1)
    assert act2.hex() == v["act2"] and len(act2) == n.ACT2_SIZE == 234
    transport = initiator.act2(bytes.fromhex(v["act2"]), v["now"])
    sent = transport.encrypt_frame(bytes.fromhex(v["setup_connection_frame"]))
    assert sent.hex() == v["setup_connection_encrypted"]
    assert len(sent) == n.ENCRYPTED_HEADER_SIZE + (len(sent) - 22) and sent[:22] != bytes.fromhex(
        v["setup_connection_frame"])[:6]
    assert to_initiator.receive_data(sent) == [bytes.fromhex(v["setup_connection_frame"])]
    answer = bytes.fromhex(v["setup_success_encrypted"])
    assert transport.receive_data(answer[:10]) == [] and transport.partial
    assert transport.receive_data(answer[10:]) == [bytes.fromhex(v["setup_success_frame"])]


def test_a_tampered_act2_is_refused():
    v, initiator, _ = _recorded()
    initiator.act1()
    act2 = bytearray.fromhex(v["act2"])
    act2[100] ^= 1
    with pytest.raises(n.NoiseError, match="failed its authentication"):
        initiator.act2(bytes(act2), v["now"])


@pytest.mark.parametrize("now, words", [(4102444801, "certificate expired"), (1735689599, "not valid yet")])
def test_a_certificate_outside_its_window_is_refused(now, words):
    v, initiator, responder = _recorded()
    act2, _ = responder.respond(initiator.act1())
    with pytest.raises(n.NoiseError, match=words) as info:
        initiator.act2(act2, now)
    assert "\n" not in str(info.value)


def test_a_certificate_from_another_authority_is_refused():
    v, _, responder = _recorded()
    stranger = n.NoiseInitiator(secp.xonly_public(hashlib.sha256(b"someone else").digest()))
    act2, _ = responder.respond(stranger.act1())
    with pytest.raises(n.NoiseError, match="not signed by the authority key in the URL"):
        stranger.act2(act2, v["now"])


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=3 * n.MAX_PT_CHUNK), st.integers(1, 50))
def test_frames_of_any_size_round_trip_in_any_split(payload, cut):
    _, initiator, responder = _recorded()
    act2, server = responder.respond(initiator.act1())
    client = initiator.act2(act2, 1767225600)
    frame = c.encode_header(0, True, 0x1F, len(payload)) + payload
    wire = client.encrypt_frame(frame)
    assert len(wire) == n.ENCRYPTED_HEADER_SIZE + n.pt_len_to_ct_len(len(payload))
    step = max(1, len(wire) // cut)
    got = []
    for start in range(0, len(wire), step):
        got += server.receive_data(wire[start:start + step])
    assert got == [frame]


def test_chunk_lengths_follow_the_spec():
    assert n.pt_len_to_ct_len(0) == 0
    assert n.pt_len_to_ct_len(1) == 17
    assert n.pt_len_to_ct_len(65519) == 65535
    assert n.pt_len_to_ct_len(65520) == 65535 + 17


# ------------------------------------------------------------------------------------ codec
U32 = st.integers(0, 2**32 - 1)
KINDS = {
    "U8": st.integers(0, 255), "U16": st.integers(0, 65535), "U24": st.integers(0, 2**24 - 1), "U32": U32,
    "U64": st.integers(0, 2**64 - 1), "BOOL": st.booleans(),
    "F32": st.floats(width=32, allow_nan=False), "U256": st.binary(min_size=32, max_size=32),
    "STR0_255": st.text(max_size=60).filter(lambda s: len(s.encode()) <= 255),
    "B0_32": st.binary(max_size=32), "B0_255": st.binary(max_size=255), "B0_64K": st.binary(max_size=2000),
    "SEQ0_255[U256]": st.lists(st.binary(min_size=32, max_size=32), max_size=12).map(tuple),
    "SEQ0_64K[U32]": st.lists(U32, max_size=20).map(tuple), "SEQ0_64K[U16]": st.lists(st.integers(0, 65535),
                                                                                       max_size=20).map(tuple),
    "OPTION[U32]": st.none() | U32,
}


@pytest.mark.parametrize("cls", sorted(c.MESSAGES.values(), key=lambda m: m.MSG_TYPE), ids=lambda m: m.__name__)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_every_message_round_trips(cls, data):
    message = cls(*(data.draw(KINDS[kind]) for kind in cls.FIELDS))
    frame = c.encode_frame(message)
    header = c.decode_header(frame)
    assert (header.msg_type, header.channel, header.length) == (cls.MSG_TYPE, cls.CHANNEL, len(frame) - 6)
    assert c.decode_frame(frame) == message


def test_a_known_frame():
    # SetTarget: channel 1, target 2^224 - 1 (difficulty 1 of the LE U256), the channel bit set (SRI)
    frame = c.encode_frame(c.SetTarget(1, c.u256_from_target((1 << 224) - 1)))
    assert frame.hex() == "008021240000" + "01000000" + "ff" * 28 + "00" * 4
    submit = c.SubmitSharesExtended(7, 2, 3, 0xDEADBEEF, 0x65000000, 0x20000000, b"\x01\x02")
    assert c.encode_frame(submit).hex() == ("00801b1b0000" + "07000000" + "02000000" + "03000000" + "efbeadde"
                                            + "00000065" + "00000020" + "020102")


def test_ten_thousand_fuzzed_frames_never_crash_the_codec():
    rng = random.Random(21)
    samples = [c.encode_frame(c.NewExtendedMiningJob(1, 2, 3, 0x20000000, True, (bytes(32),) * 3, b"p" * 40,
                                                     b"s" * 40)),
               c.encode_frame(c.OpenExtendedMiningChannelSuccess(1, 2, bytes(32), 4, b"abcd", 0)),
               c.encode_frame(c.SubmitSharesSuccess(1, 2, 3, 4)), c.encode_frame(c.SetupConnectionError(0, "x"))]
    decoded = 0
    for _ in range(10_000):
        frame = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 4)):
            match rng.randint(0, 3):
                case 0 if frame:
                    frame[rng.randrange(len(frame))] = rng.randrange(256)
                case 1:
                    frame = frame[:rng.randint(0, len(frame))]
                case 2:
                    frame += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
                case _:
                    frame = bytearray(rng.randbytes(rng.randint(0, 80)))
        try:
            c.decode_frame(bytes(frame))
            decoded += 1
        except c.CodecError:
            pass
    assert 0 < decoded < 10_000


# ------------------------------------------------------------------------------------ session
AUTH = hashlib.sha256(b"pool authority").digest()
STATIC = hashlib.sha256(b"pool static").digest()
EASIEST = (1 << 256) - 1


@functools.cache
def certificate(not_valid_after: int) -> n.Certificate:
    return n.Certificate.issue(AUTH, secp.xonly_public(STATIC), 1735689600, not_valid_after)


class Pool:
    """The pool's side of a transcript: our NoiseResponder and codec."""

    def __init__(self, session: Sv2Session, now: float = 0.0, cert_until: int = 4102444800):
        self.session = session
        self.responder = n.NoiseResponder(STATIC, certificate(cert_until))
        session.connection_made(now)
        act2, self.transport = self.responder.respond(session.data_to_send())
        self.events = session.receive_data(act2, now)
        self.received = self.read()

    def read(self) -> list:
        return [c.decode_frame(f) for f in self.transport.receive_data(self.session.data_to_send())]

    def send(self, *messages: c.Message, now: float = 1.0) -> list:
        data = b"".join(self.transport.encrypt_frame(c.encode_frame(m)) for m in messages)
        return self.session.receive_data(data, now)


def setup_success(pool: Pool, flags: int = 0) -> list:
    """SetupConnection.Success, then the extensions' exchange (RequestExtensions for none, answered
    with Success), then what the session sends next (its channel requests)."""
    pool.send(c.SetupConnectionSuccess(2, flags))
    (ask,) = pool.read()
    assert ask == c.RequestExtensions(ask.request_id, ())
    pool.send(c.RequestExtensionsSuccess(ask.request_id, ()))
    return pool.read()


def make_session(**config) -> Sv2Session:
    url = f"stratum2+tcp://pool.example:34254/{n.encode_authority_key(secp.xonly_public(AUTH))}"
    return Sv2Session(PoolConfig(url, "worker.1", "x", **config), "pool0", wall_clock=lambda: 1767225600.0)


def open_channel(target: int = EASIEST, prefix: bytes = b"\xaa\xbb", size: int = 4, **config):
    session = make_session(**config)
    pool = Pool(session)
    assert isinstance(pool.received[0], c.SetupConnection)
    setup = pool.received[0]
    assert (setup.protocol, setup.min_version, setup.max_version, setup.endpoint_host, setup.endpoint_port) == (
        0, 2, 2, "pool.example", 34254)
    (request,) = setup_success(pool)
    assert isinstance(request, c.OpenExtendedMiningChannel) and request.user_identity == "worker.1"
    assert request.min_extranonce_size == 4 and request.max_target == b"\xff" * 32
    pool.send(c.OpenExtendedMiningChannelSuccess(request.request_id, 9, c.u256_from_target(target), size, prefix, 0))
    return session, pool


def activate(pool: Pool, job_id: int = 5, version_rolling: bool = True) -> list:
    job = c.NewExtendedMiningJob(9, job_id, None, 0x20000000, version_rolling, (b"\x11" * 32,), b"cb1", b"cb2")
    assert pool.send(job) == []  # a future job: nothing to mine until its prev hash
    return pool.send(c.SetNewPrevHash(9, job_id, b"\x22" * 32, 1700000000, 0x1D00FFFF))


def test_the_channel_and_a_future_job_become_a_job_for_the_devices():
    session, pool = open_channel(target=(1 << 240) + 12345)
    events = activate(pool)
    assert [type(e) for e in events] == [ss.PublishJob, ss.PoolAlive]
    job = events[0].job
    assert (job.job_id, job.coinb1, job.extranonce1, job.extranonce2_size, job.coinb2) == ("5", b"cb1", b"\xaa\xbb",
                                                                                           4, b"cb2")
    assert (job.prevhash, job.merkle_branch, job.ntime, job.nbits, job.clean) == (
        b"\x22" * 32, (b"\x11" * 32,), 1700000000, 0x1D00FFFF, True)
    assert job.share_target == (1 << 240) + 12345 and job.version_mask == 0x1FFFE000
    assert float(session.difficulty) == pytest.approx(0xFFFF * 2**208 / ((1 << 240) + 12345))


def test_version_rolling_only_where_the_job_and_the_pool_allow_it():
    _, pool = open_channel()
    assert activate(pool, version_rolling=False)[0].job.version_mask == 0
    session = make_session()
    pool = Pool(session)
    (request,) = setup_success(pool, c.REQUIRES_FIXED_VERSION)
    pool.send(c.OpenExtendedMiningChannelSuccess(request.request_id, 9, bytes(32), 4, b"", 0))
    assert activate(pool)[0].job.version_mask == 0


def share_for(job, counter: int = 0, version: int | None = None):
    work = job.make_work(counter, job.extranonce2_for(counter), version)
    return check_nonce(work, Nonce(counter, 0x1234 + counter, version), device_target=EASIEST)


def test_shares_are_submitted_and_a_batch_answers_them_all():
    session, pool = open_channel()
    job = activate(pool)[0].job
    shares = [share_for(job, i) for i in range(3)] + [share_for(job, 3, 0x20002000)]
    for share in shares:
        assert isinstance(session.offer(share, 2.0)[0], ss.ShareSent)
    submits = pool.read()
    assert [s.sequence_number for s in submits] == [1, 2, 3, 4]
    assert submits[0] == c.SubmitSharesExtended(9, 1, 5, 0x1234, 1700000000, 0x20000000, bytes(4))
    assert submits[3].version == 0x20002000 and submits[3].extranonce == (3).to_bytes(4, "little")
    assert session.offer(shares[0], 2.0) == [ss.ShareDuplicate(shares[0])]
    events = pool.send(c.SubmitSharesError(9, 2, "difficulty-too-low"), c.SubmitSharesSuccess(9, 3, 2, 2))
    assert [(e.share, e.accepted, e.reason) for e in events] == [
        (shares[1], False, "difficulty-too-low"), (shares[0], True, None), (shares[2], True, None)]
    assert session.unanswered == 1 and session.batches == 1


def test_set_new_prev_hash_ends_other_jobs_and_set_target_applies_at_once():
    session, pool = open_channel()
    old = activate(pool)[0].job
    pool.send(c.NewExtendedMiningJob(9, 6, 1700000005, 0x20000000, True, (), b"x", b"y"))
    assert session.current_job.job_id == "6" and session.current_job.ntime == 1700000005
    harder = 1 << 200
    (event,) = pool.send(c.SetTarget(9, c.u256_from_target(harder)))
    assert event.job.share_target == harder and not event.job.clean
    easy_share = share_for(old)
    assert session.offer(easy_share, 2.0) == [ss.ShareTooEasy(easy_share)]  # not sent: misses the new target
    events = pool.send(c.NewExtendedMiningJob(9, 7, None, 0x20000000, True, (), b"x", b"y"),
                       c.SetNewPrevHash(9, 7, b"\x33" * 32, 1700000100, 0x1D00FFFF))
    assert [e.job.job_id for e in events] == ["7"] and list(session.live_jobs) == ["7"]
    assert session.offer(easy_share, 2.0) == [ss.ShareStale(easy_share)]


def test_reconnect_errors_and_close_end_the_connection_with_one_line():
    _, pool = open_channel()
    assert pool.send(c.Reconnect("", 4444)) == [ss.Redirected("pool.example", 4444, 0.0)]
    session = make_session()
    pool = Pool(session)
    (failed,) = pool.send(c.SetupConnectionError(0, "unsupported-protocol"))
    assert failed == ss.SessionFailed("the pool refused the connection: unsupported-protocol")
    session, pool = open_channel()
    assert pool.send(c.CloseChannel(9, "bye")) == [ss.SessionFailed("the pool closed the channel: bye")]


def test_an_expired_certificate_fails_the_session_with_one_line():
    session = make_session()
    pool = Pool(session, cert_until=1767225599)
    assert len(pool.events) == 1 and "certificate expired" in pool.events[0].reason
    assert pool.received == [] and not session.connected


def test_shares_held_while_down_are_sent_when_the_channel_is_back():
    session, pool = open_channel()
    job = activate(pool)[0].job
    session.connection_lost()
    share = share_for(job)
    assert session.offer(share, 3.0) == [ss.ShareHeld(share)]
    pool = Pool(session, now=4.0)
    (request,) = setup_success(pool)
    pool.send(c.OpenExtendedMiningChannelSuccess(request.request_id, 9, c.u256_from_target(EASIEST), 4, b"\xaa\xbb",
                                                 0))
    events = pool.send(c.NewExtendedMiningJob(9, 5, 1700000000, 0x20000000, True, (b"\x11" * 32,), b"cb1", b"cb2"))
    assert events == []  # a job with min_ntime needs a prev hash first on a new connection
    events = pool.send(c.SetNewPrevHash(9, 5, b"\x22" * 32, 1700000000, 0x1D00FFFF))
    assert ss.ShareSent(share, 1) in events  # the same job lives on: the held share goes out


def test_a_thousand_fuzzed_frames_never_crash_the_session():
    rng = random.Random(7)
    session, pool = open_channel()
    activate(pool)
    for _ in range(1000):
        kind = rng.choice(list(c.MESSAGES))
        payload = rng.randbytes(rng.randint(0, 60))
        frame = struct.pack("<HB", kind[0] | (0x8000 if rng.random() < 0.5 else 0), kind[1]) + \
            len(payload).to_bytes(3, "little") + payload
        events = session.receive_data(pool.transport.encrypt_frame(frame), 5.0)
        assert all(isinstance(e, ss.SessionEvent) for e in events)
        if not session.connected:  # a malformed frame, or a valid error or redirect: one printable line
            assert isinstance(events[-1], ss.SessionFailed | ss.Redirected)
            assert isinstance(events[-1], ss.Redirected) or events[-1].reason.isprintable()
            session, pool = open_channel()
            activate(pool)


def test_update_channel_reports_the_rate_the_accepted_shares_show():
    session, pool = open_channel()  # opened at t=1.0
    job = activate(pool)[0].job
    shares = [share_for(job, i) for i in range(40)]  # the easiest target: every hash is a share
    for share in shares:
        session.offer(share, 10.0)
    sent = pool.read()
    assert len(sent) == 40 and all(isinstance(m, c.SubmitSharesExtended) for m in sent)
    pool.send(c.SubmitSharesSuccess(9, sent[-1].sequence_number, 40, 40))
    work = 40 * job.share_difficulty * 2**32  # hashes the accepted shares stand for
    assert session.offer(shares[0], 30.0) == [ss.ShareDuplicate(shares[0])]
    assert pool.read() == []  # under a minute since the channel opened: nothing yet
    session.offer(shares[0], 61.0)
    (update,) = pool.read()
    assert isinstance(update, c.UpdateChannel) and update.channel_id == 9 and update.maximum_target == b"\xff" * 32
    assert update.nominal_hash_rate == pytest.approx(work / 60.0, rel=1e-6)
    session.offer(shares[0], 100.0)  # under a minute since the last report
    assert pool.read() == []
    session.offer(shares[0], 125.0)  # 60 s more without shares: the rate fell by more than a quarter
    (again,) = pool.read()
    assert again.nominal_hash_rate == pytest.approx(work / 124.0, rel=1e-6)


# ------------------------------------------------------------------------------------ wiring
def test_a_stratum2_url_on_the_command_line_becomes_an_sv2_pool_in_the_same_list():
    from miner.app.settings import PoolSettings, command_line_pools
    from miner.sources.stratum.connection import PoolConnection
    from miner.sources.stratum.failover import connection_class
    from miner.sources.sv2.connection import Sv2Connection

    key = n.encode_authority_key(secp.xonly_public(AUTH))
    urls = (f"stratum2+tcp://pool.example:34254/{key}", "stratum+tcp://backup.example:3333")
    configs = command_line_pools(PoolSettings(urls=urls, users=("w.1",)))
    assert [c_.url for c_ in configs] == list(urls) and [c_.user for c_ in configs] == ["w.1", "w.1"]
    assert [connection_class(c_.url) for c_ in configs] == [Sv2Connection, PoolConnection]
    with pytest.raises(ValueError, match="authority key"):
        command_line_pools(PoolSettings(urls=("stratum2+tcp://pool.example:34254/",), users=("w",)))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_after_the_handshake_is_a_noise_error_never_a_crash(data):
    _, initiator, responder = _recorded()
    act2, _ = responder.respond(initiator.act1())
    transport = initiator.act2(act2, 1767225600)
    try:
        transport.receive_data(data)
    except n.NoiseError as exc:
        assert "\n" not in str(exc)
    else:
        assert len(data) < n.ENCRYPTED_HEADER_SIZE  # nothing decrypts by chance: only too little to try
