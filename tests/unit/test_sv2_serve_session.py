"""`miner serve`'s Stratum V2 session (miner/server/sv2_session.py, docs/serve.md §10) as transcripts:
a scripted downstream built from the client's own codec and NoiseInitiator (tests/helpers/
sv2_downstream.py) does the handshake against the session, sends messages and reads the answers,
so both ends of the one wire format are checked against each other. Shares are found with the C
core at difficulties of a few thousand hashes; every forwarded share is rebuilt the way the test
pools rebuild a submit (coinbase, merkle root, header) and hashed with hashlib."""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miner.core import hashing
from miner.core.targets import DIFF1_TARGET, difficulty_to_target, hash_to_int
from miner.core.work import Job
from miner.server import session as ds
from miner.server import sv2_keys
from miner.server.extranonce import PrefixPool, layout_for
from miner.server.sv2_session import FLUSH_SECONDS, Sv2DownstreamSession, difficulty_for_rate
from miner.server.workers import WorkerBook
from miner.sources.sv2 import codec as c
from miner.sources.sv2 import secp
from miner.sources.sv2.noise import NoiseError, decode_authority_key, encode_authority_key
from tests.helpers.stratum_pool import BRANCH, COINB1, COINB2
from tests.helpers.sv2_downstream import V2Script

EN1 = bytes.fromhex("08000002")
EASY = 2.0**-18  # ~16,000 hashes a share
IDENTITY = sv2_keys.Sv2Identity(secp.new_secret(), secp.new_secret())


def source_job(job_id: str = "j1", clean: bool = True, en2_size: int = 8, difficulty: float = EASY * 4,
               version_mask: int = 0x1FFFE000, prevhash: bytes = bytes(range(32)), ntime: int = 0x6553F100) -> Job:
    return Job(job_id=job_id, prevhash=prevhash, coinb1=COINB1, coinb2=COINB2, merkle_branch=tuple(BRANCH),
               version=0x20000000, nbits=0x1D00FFFF, ntime=ntime, clean=clean, extranonce1=EN1,
               extranonce2_size=en2_size, share_target=difficulty_to_target(difficulty), version_mask=version_mask,
               source="pool0")


def rules(job: Job | None = None, **kw) -> ds.Rules:
    layout = layout_for(job or source_job())
    defaults = dict(start_difficulty=EASY, min_difficulty=EASY / 4)
    defaults.update(kw)
    return ds.Rules(layout, PrefixPool(layout.capacity), WorkerBook(), **defaults)


class Rig:
    """One session and the scripted miner on its other end; `now` is the session's clock."""

    def __init__(self, job: Job | None = None, batch: int = 3, issuer=None, shared: ds.Rules | None = None):
        self.job = job or source_job()
        self.rules = shared or rules(self.job)
        self.issuer = issuer or sv2_keys.CertificateIssuer(IDENTITY)
        self.now = 1000.0
        self.session = Sv2DownstreamSession(self.rules, self.issuer, self.now, "test", batch)
        self.session.send_job(self.job, self.now)
        self.miner = V2Script(IDENTITY.authority_key)
        self.events: list = []
        self.send(self.miner.hello())

    def send(self, data: bytes) -> list:
        self.events = self.session.receive_data(data, self.now)
        return self.miner.take(self.session.data_to_send())

    def publish(self, job: Job) -> list:
        self.job = job
        self.session.send_job(job, self.now)
        return self.miner.take(self.session.data_to_send())

    def channel(self, user: str = "alice.1", **kw) -> int:
        self.send(self.miner.setup()) if not self.miner.of(c.SetupConnectionSuccess) else None
        got = self.send(self.miner.open(user, **kw))
        assert isinstance(got[0], c.OpenExtendedMiningChannelSuccess | c.OpenStandardMiningChannelSuccess), got
        return got[0].channel_id

    def share(self, channel_id: int, **kw) -> list:
        nonce, version, ntime, extranonce, _ = self.miner.find(channel_id, **kw)
        return self.send(self.miner.submit(channel_id, nonce, version, ntime, extranonce))


def rebuilt(job: Job, extranonce2: bytes, version: int, ntime: int, nonce: int) -> int:
    """What the upstream pool computes for a forwarded share (tests/helpers/stratum_pool.py's check)."""
    coinbase = job.coinb1 + job.extranonce1 + extranonce2 + job.coinb2
    root = hashlib.sha256(hashlib.sha256(coinbase).digest()).digest()
    for sibling in job.merkle_branch:
        root = hashlib.sha256(hashlib.sha256(root + sibling).digest()).digest()
    header = (version.to_bytes(4, "little") + job.prevhash + root + ntime.to_bytes(4, "little")
              + job.nbits.to_bytes(4, "little") + nonce.to_bytes(4, "little"))
    return hash_to_int(hashlib.sha256(hashlib.sha256(header).digest()).digest())


# ------------------------------------------------------------------------------------ setup
def test_handshake_setup_and_an_extended_channel_get_a_prefix_a_future_job_and_its_prev_hash():
    rig = Rig()
    assert rig.miner.transport is not None  # the certificate checked against the authority key
    (ok,) = rig.send(rig.miner.setup())
    assert ok == c.SetupConnectionSuccess(2, 0)
    got = rig.send(rig.miner.open("alice.1"))
    success, job, prev = got
    assert isinstance(success, c.OpenExtendedMiningChannelSuccess)
    assert success.extranonce_size == 6 and len(success.extranonce_prefix) == 2  # 8 = 2 (ours) + 6 (its)
    assert c.target_from_u256(success.target) == difficulty_to_target(EASY)
    assert isinstance(job, c.NewExtendedMiningJob) and job.min_ntime is None  # a future job (SRI's order)
    assert job.coinbase_tx_prefix == COINB1 + EN1 and job.coinbase_tx_suffix == COINB2
    assert job.merkle_path == tuple(BRANCH) and job.version_rolling_allowed
    assert prev == c.SetNewPrevHash(success.channel_id, job.job_id, rig.job.prevhash, rig.job.ntime, rig.job.nbits)
    assert rig.session.ready and rig.session.authorized == {"alice.1"}
    worker = rig.rules.workers.get("alice.1")
    assert worker.protocol == "stratum2" and worker.connections == 1 and "scripted" in worker.user_agent


@pytest.mark.parametrize(("kw", "code"), [
    (dict(protocol=1), "unsupported-protocol"),
    (dict(versions=(3, 4)), "protocol-version-mismatch"),
    (dict(flags=c.REQUIRES_WORK_SELECTION), "unsupported-feature-flags"),
])
def test_setup_connection_refusals_carry_the_spec_codes_and_close(kw, code):
    rig = Rig()
    (error,) = rig.send(rig.miner.setup(**kw))
    assert isinstance(error, c.SetupConnectionError) and error.error_code == code
    assert any(isinstance(e, ds.Close) for e in rig.events)


def test_a_job_without_rolling_answers_fixed_version_and_refuses_a_miner_that_requires_rolling():
    rig = Rig(source_job(version_mask=0))
    (ok,) = rig.send(rig.miner.setup())
    assert ok.flags == c.REQUIRES_FIXED_VERSION
    rig2 = Rig(source_job(version_mask=0))
    (error,) = rig2.send(rig2.miner.setup(flags=c.REQUIRES_VERSION_ROLLING))
    assert error.error_code == "unsupported-feature-flags" and error.flags == c.REQUIRES_VERSION_ROLLING


def test_anything_before_setup_connection_closes():
    rig = Rig()
    rig.send(rig.miner.open("alice.1"))
    assert rig.session.closed and "SetupConnection" in rig.session.closed


def test_channel_refusals():
    rig = Rig()
    rig.send(rig.miner.setup())
    (e1,) = rig.send(rig.miner.open("alice.1", min_extranonce=7))
    (e2,) = rig.send(rig.miner.open(""))
    (e3,) = rig.send(rig.miner.open("alice.1", max_target=c.u256_from_target(difficulty_to_target(1.0))))
    assert [e.error_code for e in (e1, e2, e3)] == ["min-extranonce-size-too-large", "unknown-user",
                                                    "max-target-out-of-range"]
    assert not rig.session.channels and len(rig.rules.prefixes) == 0


def test_nominal_hash_rate_sets_the_start_difficulty_as_sri_does():
    rig = Rig(source_job(difficulty=1.0))
    rate = 2**32 * 0.01 * rig.rules.shares_per_minute / 60  # the rate that makes 6 shares/min at difficulty 0.01
    cid = rig.channel(rate=rate)
    assert rig.session.channels[cid].vardiff.difficulty == pytest.approx(0.01, rel=1e-6)  # the rate is an F32
    assert difficulty_for_rate(rate, 6.0) == pytest.approx(0.01)


# ------------------------------------------------------------------------------------ shares
def test_shares_are_checked_answered_in_batches_and_forwarded_as_the_upstream_rebuilds_them():
    rig = Rig(batch=3)
    cid = rig.channel()
    prefix = rig.session.channels[cid].prefix
    accepted, forwards, successes = 0, [], []
    for i in range(7):
        got = rig.share(cid, extranonce=bytes([0, 0, 0, 0, 0, i]))
        successes += [m for m in got if isinstance(m, c.SubmitSharesSuccess)]
        for event in rig.events:
            assert isinstance(event, ds.ShareAccepted)
            accepted += 1
            if event.forward is not None:
                forwards.append(event.forward)
    assert accepted == 7
    assert [(s.last_sequence_number, s.new_submits_accepted_count) for s in successes] == [(3, 3), (6, 3)]
    rig.now += FLUSH_SECONDS
    rig.session.tick(rig.now)  # the partial batch, answered on the timer
    (last,) = rig.miner.take(rig.session.data_to_send())
    assert (last.last_sequence_number, last.new_submits_accepted_count) == (7, 1)
    assert sum(s.new_submits_accepted_count for s in [*successes, last]) == 7
    assert forwards, "at source difficulty 4x the channel's, some shares go upstream"
    for share in forwards:  # each forwarded share is valid for the source's own job, on this prefix
        en2 = share.work.extranonce2
        assert en2[:2] == prefix.to_bytes(2, "big") and len(en2) == 8 and share.work.job == rig.job
        value = rebuilt(rig.job, en2, share.version, share.ntime, share.nonce.nonce)
        assert value <= rig.job.share_target and value == hash_to_int(share.digest)


def test_rejects_carry_sris_codes_by_sequence_number_and_are_counted():
    rig = Rig(batch=1)
    cid = rig.channel()
    m = rig.miner
    nonce, version, ntime, en, _ = m.find(cid)
    worse = m.find(cid, worse=True)
    cases = [
        (lambda: m.submit(cid + 9, nonce, version, ntime, en), "invalid-channel-id"),
        (lambda: m.submit(cid, nonce, version, ntime, en, job_id=999), "invalid-job-id"),
        (lambda: m.submit(cid, nonce, version, ntime, en + b"\x00"), "invalid-share"),
        (lambda: m.submit(cid, nonce, version, ntime - 1, en), "invalid-share"),
        (lambda: m.submit(cid, nonce, version | 0x1, ntime, en), "invalid-share"),
        (lambda: m.submit(cid, worse[0], worse[1], worse[2], worse[3]), "difficulty-too-low"),
    ]
    for frame, code in cases:
        (answer,) = rig.send(frame())
        assert isinstance(answer, c.SubmitSharesError) and answer.error_code == code, (code, answer)
        assert answer.sequence_number == m.sequence
    (ok,) = rig.send(m.submit(cid, nonce, version, ntime, en))
    assert isinstance(ok, c.SubmitSharesSuccess) and ok.last_sequence_number == m.sequence
    (dup,) = rig.send(m.submit(cid, nonce, version, ntime, en))
    assert dup.error_code == "duplicate-share"
    old_job = m.channels[cid].active
    rig.publish(source_job("j2", prevhash=bytes(32)))  # a new block: every older job is stale
    (stale,) = rig.send(m.submit(cid, nonce, version, ntime, en, job_id=old_job))
    assert stale.error_code == "stale-share"
    worker = rig.rules.workers.get("alice.1")
    assert worker.accepted == 1 and worker.rejected_total == 7  # the unknown channel is no worker's


def test_a_job_on_the_same_prev_hash_is_active_at_once_and_old_jobs_stay_valid():
    rig = Rig(batch=1)
    cid = rig.channel()
    first = rig.miner.channels[cid].active
    (job,) = rig.publish(source_job("j2", clean=False))
    assert isinstance(job, c.NewExtendedMiningJob) and job.min_ntime == rig.job.ntime  # no SetNewPrevHash
    (ok,) = rig.share(cid, job_id=first)
    assert isinstance(ok, c.SubmitSharesSuccess)
    (ok2,) = rig.share(cid, extranonce=bytes([0, 0, 0, 0, 0, 1]))  # j2's header is j1's: another extranonce
    assert isinstance(ok2, c.SubmitSharesSuccess)


def test_rolled_versions_inside_the_sources_mask_are_accepted():
    rig = Rig(batch=1)
    cid = rig.channel()
    (ok,) = rig.share(cid, version=0x20000000 | 0x00ffe000)
    assert isinstance(ok, c.SubmitSharesSuccess)


def test_standard_channel_gets_the_merkle_root_of_its_own_coinbase_and_its_shares_forward():
    rig = Rig(batch=1)
    cid = rig.channel(standard=True)
    ch = rig.session.channels[cid]
    job = rig.miner.channels[cid].jobs[rig.miner.channels[cid].active]
    assert isinstance(job, c.NewMiningJob)
    layout = rig.rules.layout
    coinbase = COINB1 + EN1 + layout.prefix_bytes(ch.prefix) + bytes(layout.downstream_size) + COINB2
    root = hashlib.sha256(hashlib.sha256(coinbase).digest()).digest()
    for sibling in BRANCH:
        root = hashlib.sha256(hashlib.sha256(root + sibling).digest()).digest()
    assert job.merkle_root == root
    forwards = []
    for i in range(6):
        got = rig.share(cid, start=i << 20)
        assert isinstance(got[0], c.SubmitSharesSuccess), got
        forwards += [e.forward for e in rig.events if isinstance(e, ds.ShareAccepted) and e.forward]
    for share in forwards:
        assert rebuilt(rig.job, share.work.extranonce2, share.version, share.ntime, share.nonce.nonce) \
            <= rig.job.share_target
    # an extended submit on a standard channel is refused
    (wrong,) = rig.send(rig.miner.frame(c.SubmitSharesExtended(cid, 99, 1, 0, 0, 0, b"")))
    assert wrong.error_code == "invalid-channel-id"


def test_vardiff_raises_the_target_with_set_target_and_old_jobs_keep_the_lower_difficulty():
    rig = Rig(source_job(difficulty=1.0), batch=1)
    cid = rig.channel()
    ch = rig.session.channels[cid]
    targets = []
    for i in range(12):  # 12 shares at once: far above 6/min, so vardiff raises the difficulty
        got = rig.share(cid, extranonce=bytes([0, 0, 0, 0, 1, i]))
        targets += [m for m in got if isinstance(m, c.SetTarget)]
    assert len(targets) == 1 and ch.vardiff.difficulty > EASY
    assert c.target_from_u256(targets[0].maximum_target) == difficulty_to_target(ch.vardiff.difficulty)
    assert rig.rules.workers.get("alice.1").difficulty == ch.vardiff.difficulty
    # the job sent before the raise is still judged at its old difficulty (the V1 path's rule)
    rig.miner.channels[cid].target = difficulty_to_target(EASY)
    (ok,) = rig.share(cid, extranonce=bytes([0, 0, 0, 0, 2, 0]))
    assert isinstance(ok, c.SubmitSharesSuccess)


def test_update_channel_sets_the_difficulty_from_the_rate_and_answers_set_target():
    rig = Rig(source_job(difficulty=1.0))
    cid = rig.channel()
    rate = 2**32 * 0.02 * 6 / 60
    (answer,) = rig.send(rig.miner.frame(c.UpdateChannel(cid, rate, b"\xff" * 32)))
    assert isinstance(answer, c.SetTarget)
    assert DIFF1_TARGET / c.target_from_u256(answer.maximum_target) == pytest.approx(0.02, rel=1e-6)  # an F32 rate
    floor = c.u256_from_target(difficulty_to_target(0.5))  # the miner's maximum target becomes the floor
    (answer,) = rig.send(rig.miner.frame(c.UpdateChannel(cid, rate, floor)))
    assert c.target_from_u256(answer.maximum_target) == difficulty_to_target(0.5)
    (error,) = rig.send(rig.miner.frame(c.UpdateChannel(cid + 5, rate, floor)))
    assert isinstance(error, c.UpdateChannelError) and error.error_code == "invalid-channel-id"
    (error,) = rig.send(rig.miner.frame(c.UpdateChannel(cid, rate, c.u256_from_target(1))))
    assert error.error_code == "max-target-out-of-range"


def test_close_channel_frees_the_prefix_and_the_worker_connection():
    rig = Rig()
    cid = rig.channel()
    assert len(rig.rules.prefixes) == 1
    rig.send(rig.miner.frame(c.CloseChannel(cid, "bye")))
    assert not rig.session.channels and len(rig.rules.prefixes) == 0
    assert rig.rules.workers.get("alice.1").connections == 0


def test_v1_and_v2_sessions_on_one_rules_never_share_a_prefix():
    job = source_job()
    shared = rules(job)
    prefixes = []
    for i in range(5):
        rig = Rig(job, shared=shared)
        prefixes += [rig.session.channels[rig.channel(f"v2.{i}")].prefix, rig.session.channels[rig.channel(
            f"v2.{i}", standard=True)].prefix]
        v1 = ds.DownstreamSession(shared, 0.0, "v1")
        v1.send_job(job, "1", v1.notify_line(job, "1", True), 0.0)
        v1.receive_data(b'{"id":1,"method":"mining.subscribe","params":["x"]}\n', 0.0)
        prefixes.append(v1.prefix)
    assert len(prefixes) == len(set(prefixes)) == 15 and 0 not in prefixes  # 0 is the local devices'


def test_reconnect_is_an_empty_host_and_port_zero():
    rig = Rig()
    rig.channel()
    rig.session.reconnect()
    (m,) = rig.miner.take(rig.session.data_to_send())
    assert m == c.Reconnect("", 0)


# ------------------------------------------------------------------------------------ limits
def test_login_and_idle_timeouts_and_a_flood():
    rig = Rig()
    assert rig.session.tick(rig.now + 31) and "no Stratum V2 channel" in rig.session.closed
    rig = Rig()
    rig.channel()
    assert rig.session.tick(rig.now + 899) == []
    assert rig.session.tick(rig.now + 901) and "silent" in rig.session.closed
    rig = Rig()
    rig.channel()
    frames = b"".join(rig.miner.frame(c.UpdateChannel(1, 1.0, b"\xff" * 32)) for _ in range(300))
    rig.send(frames)
    assert rig.session.closed and "messages/s" in rig.session.closed


def test_a_frame_larger_than_any_downstream_message_closes_before_it_is_buffered():
    rig = Rig()
    rig.channel()
    big = c.encode_header(0, False, 0x00, 1 << 20)
    rig.send(rig.miner.transport.encrypt_frame(big + bytes(32)))  # header says 1 MiB
    assert rig.session.closed and "larger than any mining message" in rig.session.closed


def test_twenty_unexpected_messages_in_a_row_close():
    rig = Rig()
    rig.channel()
    for _ in range(19):
        rig.send(rig.miner.frame(c.SetTarget(1, b"\x00" * 32)))
    assert rig.session.closed is None
    rig.send(rig.miner.frame(c.SetTarget(1, b"\x00" * 32)))
    assert rig.session.closed and "unusable" in rig.session.closed


# ------------------------------------------------------------------------------------ hypothesis
@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=6))
def test_any_bytes_in_the_handshake_or_after_it_never_raise(chunks):
    rig = Rig()
    rig.channel()
    for chunk in chunks:  # not authenticated: the session closes, never raises
        rig.session.receive_data(chunk, rig.now)
    fresh = Sv2DownstreamSession(rules(), sv2_keys.CertificateIssuer(IDENTITY), 0.0)
    for chunk in chunks:
        fresh.receive_data(chunk, 0.0)
        fresh.data_to_send()


MESSAGES = st.one_of(
    st.builds(c.SubmitSharesExtended, st.integers(0, 3), st.integers(0, 2**32 - 1), st.integers(0, 5),
              st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
              st.binary(max_size=32)),
    st.builds(c.SubmitSharesStandard, st.integers(0, 3), st.integers(0, 2**32 - 1), st.integers(0, 5),
              st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.builds(c.OpenExtendedMiningChannel, st.integers(0, 9), st.text(max_size=20), st.floats(0, 1e15),
              st.binary(min_size=32, max_size=32), st.integers(0, 40)),
    st.builds(c.OpenStandardMiningChannel, st.integers(0, 9), st.text(max_size=20), st.floats(0, 1e15),
              st.binary(min_size=32, max_size=32)),
    st.builds(c.UpdateChannel, st.integers(0, 3), st.floats(0, 1e15), st.binary(min_size=32, max_size=32)),
    st.builds(c.CloseChannel, st.integers(0, 3), st.text(max_size=10)),
    st.builds(c.SetTarget, st.integers(0, 3), st.binary(min_size=32, max_size=32)),
    st.builds(c.SetupConnection, st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.integers(0, 7),
              st.text(max_size=5), st.integers(0, 65535), st.text(max_size=5), st.text(max_size=5),
              st.text(max_size=5), st.text(max_size=5)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(MESSAGES, max_size=12))
def test_any_message_sequence_never_raises_and_every_answer_decodes(messages):
    rig = Rig(batch=2)
    rig.send(rig.miner.setup())
    for message in messages:
        rig.now += 0.1
        rig.send(rig.miner.frame(message))  # the script decodes every answer with the codec
        for event in rig.events:
            if isinstance(event, ds.ShareAccepted):  # only a real share is accepted
                assert hash_to_int(event.share.digest) <= difficulty_to_target(event.difficulty)
        if rig.session.closed:
            break
    rig.session.tick(rig.now + 10)
    rig.session.connection_lost(rig.now)
    assert len(rig.rules.prefixes) == 0 and all(w.connections == 0 for w in rig.rules.workers.all())


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 16), st.integers(1, 200))
def test_a_channels_coinbase_is_the_sources_with_its_prefix(en2_size, prefix):
    job = source_job(en2_size=en2_size)
    layout = layout_for(job)
    if layout.prefix_size == 0 or prefix > layout.capacity:
        return
    cut = layout.cut(job, prefix)
    en = bytes(range(layout.downstream_size))
    upstream = layout.upstream_extranonce2(job, layout.prefix_bytes(prefix), en)
    # the V2 job's prefix + extranonce_prefix + extranonce + suffix is the source's coinbase
    assert (job.coinb1 + job.extranonce1) + layout.prefix_bytes(prefix) + en + (layout.padding(job) + job.coinb2) \
        == job.coinbase(upstream) == cut.coinbase(en)


# ------------------------------------------------------------------------------------ keys and certificate
def test_sri_key_utils_vector_secret_to_authority_key():
    # stratum-mining/stratum utils/key-utils/src/lib.rs, test key_conversions
    secret = sv2_keys.decode_secret("zmBEmPhqo3A92FkiLVvyCz6htc3e53ph3ZbD4ASqGaLjwnFLi")
    assert encode_authority_key(secp.xonly_public(secret)) == "9bDuixKmZqAJnrmP746n8zU1wyAQRrus7th9dxnkPg6RzQvCnan"
    assert sv2_keys.encode_secret(secret) == "zmBEmPhqo3A92FkiLVvyCz6htc3e53ph3ZbD4ASqGaLjwnFLi"


def test_keys_are_made_once_0600_never_overwritten_and_read_back(tmp_path):
    first = sv2_keys.load_identity(directory=tmp_path)
    assert first.created
    for name in (sv2_keys.AUTHORITY_FILE, sv2_keys.STATIC_FILE):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
    before = (tmp_path / sv2_keys.AUTHORITY_FILE).read_bytes()
    again = sv2_keys.load_identity(directory=tmp_path)
    assert not again.created and again.authority_secret == first.authority_secret
    assert again.static_secret == first.static_secret
    assert (tmp_path / sv2_keys.AUTHORITY_FILE).read_bytes() == before
    assert decode_authority_key(first.authority_text) == first.authority_key
    assert first.url("0.0.0.0", 3336) == f"stratum2+tcp://127.0.0.1:3336/{first.authority_text}"


def test_an_sri_pool_config_is_a_key_file_and_bad_files_are_one_line(tmp_path):
    good = tmp_path / "pool-config.toml"
    good.write_text('listen_address = "0.0.0.0:34254"\n'
                    'authority_public_key = "9bDuixKmZqAJnrmP746n8zU1wyAQRrus7th9dxnkPg6RzQvCnan"\n'
                    'authority_secret_key = "zmBEmPhqo3A92FkiLVvyCz6htc3e53ph3ZbD4ASqGaLjwnFLi"\n')
    ident = sv2_keys.load_identity(good, directory=tmp_path)
    assert ident.authority_text == "9bDuixKmZqAJnrmP746n8zU1wyAQRrus7th9dxnkPg6RzQvCnan" and not ident.created
    for text, words in [("x = 1\n", "no authority_secret_key"), ("authority_secret_key = \"abc\"\n", "copy it again"),
                        ("[[[", "not a TOML"),
                        ('authority_secret_key = "zmBEmPhqo3A92FkiLVvyCz6htc3e53ph3ZbD4ASqGaLjwnFLi"\n'
                         'authority_public_key = "9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh"\n',
                         "not the public")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(sv2_keys.KeyFileError) as info:
            sv2_keys.load_identity(bad, directory=tmp_path)
        assert words in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(sv2_keys.KeyFileError, match="cannot read"):
        sv2_keys.load_identity(tmp_path / "missing.toml", directory=tmp_path)


def test_the_certificate_is_renewed_before_it_expires_and_an_expired_one_is_refused_by_the_client():
    clock = [1_000_000.0]
    issuer = sv2_keys.CertificateIssuer(IDENTITY, validity=3600, wall_clock=lambda: clock[0])
    first = issuer.current()
    assert first.not_valid_after == 1_000_000 + 3600 and first.valid_from <= 1_000_000
    first.check(IDENTITY.authority_key, issuer.static_key_x, clock[0])
    clock[0] += 2000
    assert issuer.current() is first  # more than a quarter left
    clock[0] += 800
    second = issuer.current()
    assert second is not first and second.not_valid_after == int(clock[0]) + 3600 and issuer.issued == 2
    # a certificate issued by a clock two hours behind is expired for a miner with the right time
    stale = sv2_keys.CertificateIssuer(IDENTITY, validity=3600, wall_clock=lambda: time.time() - 7200)
    rig_session = Sv2DownstreamSession(rules(), stale, 0.0)
    miner = V2Script(IDENTITY.authority_key)
    rig_session.receive_data(miner.hello(), 0.0)
    with pytest.raises(NoiseError, match="certificate expired"):
        miner.take(rig_session.data_to_send())
    other = V2Script(secp.xonly_public(secp.new_secret()))
    fresh = Sv2DownstreamSession(rules(), sv2_keys.CertificateIssuer(IDENTITY), 0.0)
    fresh.receive_data(other.hello(), 0.0)
    with pytest.raises(NoiseError, match="not signed by the authority key"):
        other.take(fresh.data_to_send())



# ------------------------------------------------------------------------------------ a foreign client
def esp_frame(msg_type: int, payload: bytes, channel: bool = False) -> bytes:
    """A frame as ESP-Miner builds it (components/stratum_v2/sv2_protocol.c at 04fd4aa,
    sv2_encode_frame_header): extension_type U16 (0x8000 for a channel message), msg_type, U24 length."""
    return (0x8000 if channel else 0).to_bytes(2, "little") + bytes([msg_type]) + len(payload).to_bytes(3, "little") \
        + payload


def esp_str(text: str) -> bytes:
    raw = text.encode()
    return bytes([len(raw)]) + raw


def test_esp_miners_standard_channel_session_byte_for_byte():
    """ESP-Miner's SV2 client (bitaxeorg/ESP-Miner components/stratum_v2/sv2_protocol.c at 04fd4aa):
    sv2_build_setup_connection (protocol 0, versions 2..2, flags 1 = REQUIRES_STANDARD_JOBS, vendor
    "bitaxe", its ASIC as hardware_version, empty firmware and device_id), then
    sv2_build_open_standard_mining_channel (max_target all 0xFF) and sv2_build_submit_shares_standard;
    the answers read at the offsets its parsers use. The bytes are built here from those layouts, not
    with the codec, so the codec's reading of them is checked too."""
    u16, u32 = (lambda v: v.to_bytes(2, "little")), (lambda v: v.to_bytes(4, "little"))
    rig = Rig(batch=1)
    transport = rig.miner.transport
    assert transport is not None

    def exchange(frame: bytes) -> list[bytes]:
        rig.events = rig.session.receive_data(transport.encrypt_frame(frame), rig.now)
        return transport.receive_data(rig.session.data_to_send())

    setup = bytes([0]) + u16(2) + u16(2) + u32(1) + esp_str("pool.local") + u16(3336) + esp_str("bitaxe") \
        + esp_str("BM1370") + esp_str("") + esp_str("")
    (answer,) = exchange(esp_frame(0x00, setup))
    assert answer[2] == 0x01 and int.from_bytes(answer[6:8], "little") == 2  # SetupConnection.Success, version 2
    hash_rate = 1.2e12  # a Gamma: its start difficulty is far above the source's, so the source's is used
    open_channel = u32(1) + esp_str("bc1qexample.gamma") + struct.pack("<f", hash_rate) + b"\xff" * 32
    success, job, prev = exchange(esp_frame(0x10, open_channel))
    assert success[2] == 0x11 and len(success) - 6 >= 45  # sv2_parse_open_channel_success: at least 45 bytes
    body = success[6:]
    channel_id = int.from_bytes(body[4:8], "little")
    target = int.from_bytes(body[8:40], "little")
    assert target == rig.job.share_target  # clamped to the source's difficulty
    assert job[2] == 0x15 and job[6 + 8] == 0  # NewMiningJob, min_ntime absent: a future job
    job_body = job[6:]
    job_id, version, root = int.from_bytes(job_body[4:8], "little"), int.from_bytes(job_body[9:13], "little"), \
        job_body[13:45]
    assert prev[2] == 0x20 and int.from_bytes(prev[6 + 4:6 + 8], "little") == job_id  # SetNewPrevHash names it
    prev_body = prev[6:]
    prev_hash, ntime, nbits = prev_body[8:40], int.from_bytes(prev_body[40:44], "little"), \
        int.from_bytes(prev_body[44:48], "little")
    head = u32(version) + prev_hash + root + u32(ntime) + u32(nbits)
    nonce = next(n for start in range(0, 1 << 32, 1 << 16)
                 for n in hashing.scan(head + bytes(4), start, 1 << 16, target))
    submit = u32(channel_id) + u32(1) + u32(job_id) + u32(nonce) + u32(ntime) + u32(version)
    (ok,) = exchange(esp_frame(0x1A, submit, channel=True))
    assert ok[2] == 0x1C and int.from_bytes(ok[6:10], "little") == channel_id  # SubmitShares.Success
    (event,) = rig.events
    assert isinstance(event, ds.ShareAccepted) and event.forward is not None  # the source's target: forwarded
    assert rebuilt(rig.job, event.forward.work.extranonce2, version, ntime, nonce) <= rig.job.share_target
    worker = rig.rules.workers.get("bc1qexample.gamma")
    assert worker.user_agent == "bitaxe BM1370" and worker.protocol == "stratum2"


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.one_of(st.none(), st.integers(0, 2**32 - 1)),
       st.binary(max_size=3), st.booleans())
def test_the_shared_job_payload_is_the_codecs_frame_for_every_channel(channel_id, job_id, min_ntime, padding, rolls):
    from miner.server.sv2_session import extended_job_frame

    job = source_job(version_mask=0x1FFFE000 if rolls else 0)
    expected = c.encode_frame(c.NewExtendedMiningJob(channel_id, job_id, min_ntime, job.version, rolls,
                                                     job.merkle_branch, job.coinb1 + job.extranonce1,
                                                     padding + job.coinb2))
    assert extended_job_frame(channel_id, job_id, job, min_ntime, padding) == expected
    assert extended_job_frame(channel_id ^ 1, job_id, job, min_ntime, padding)[10:] == expected[10:]  # cached tail


def test_request_extensions_is_answered_at_once():
    rig = Rig()
    rig.send(rig.miner.setup())
    (ok,) = rig.send(rig.miner.frame(c.RequestExtensions(7, ())))
    assert ok == c.RequestExtensionsSuccess(7, ())
    (error,) = rig.send(rig.miner.frame(c.RequestExtensions(8, (0x0002, 0x0003))))
    assert error == c.RequestExtensionsError(8, (0x0002, 0x0003), ())
    assert rig.session.closed is None


def test_a_solo_templates_job_leaves_a_v2_downstream_the_extranonce_our_client_asks_for():
    """`miner serve` on a node: the solo coinbase's extranonce2 (template.EXTRANONCE2_SIZE) less the
    server's prefix must still hold the client's MIN_EXTRANONCE_SIZE (with 4 + 4 it held 2 and every
    V2 miner was refused min-extranonce-size-too-large)."""
    from miner.sources.node.template import EXTRANONCE2_SIZE
    from miner.sources.sv2.session import MIN_EXTRANONCE_SIZE

    rig = Rig(source_job(en2_size=EXTRANONCE2_SIZE))
    rig.send(rig.miner.setup())
    success, *_ = rig.send(rig.miner.open("alice.1", min_extranonce=MIN_EXTRANONCE_SIZE))
    assert isinstance(success, c.OpenExtendedMiningChannelSuccess)
    assert success.extranonce_size >= MIN_EXTRANONCE_SIZE
