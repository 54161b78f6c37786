"""The downstream session's rules (docs/serve.md) as transcripts: the lines a miner sends go in, the
test reads the lines the session answers with the client's own codec (StratumProtocol), so both
ends of the one wire format are checked against each other. Shares are found with the C core at
difficulties of a few hundred hashes, and every forwarded share is rebuilt the way the test pool
rebuilds a submit (tests/helpers/stratum_pool.py) and hashed with hashlib."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miner.core import hashing
from miner.core.targets import DIFF1_TARGET, difficulty_to_target, hash_to_int
from miner.core.work import Job
from miner.server import session as ds
from miner.server.extranonce import LOCAL_PREFIX, Layout, PrefixPool, layout_for, prefix_size
from miner.server.vardiff import VarDiff
from miner.server.workers import WorkerBook
from miner.sources.stratum import protocol as sp
from tests.helpers.stratum_pool import BRANCH, COINB1, COINB2

EN1 = bytes.fromhex("08000002")
EASY = 1e-6  # ~4,300 hashes a share: found by the C core in well under a millisecond


def source_job(job_id: str = "j1", clean: bool = True, en2_size: int = 4, difficulty: float = 0.01,
               version_mask: int = 0x1FFFE000, ntime: int = 0x6553F100) -> Job:
    return Job(job_id=job_id, prevhash=bytes(range(32)), coinb1=COINB1, coinb2=COINB2, merkle_branch=tuple(BRANCH),
               version=0x20000000, nbits=0x1D00FFFF, ntime=ntime, clean=clean, extranonce1=EN1,
               extranonce2_size=en2_size, share_target=difficulty_to_target(difficulty), version_mask=version_mask,
               source="pool0")


def rules(**kw) -> ds.Rules:
    layout = kw.pop("layout", Layout(2, 2))
    defaults = dict(start_difficulty=EASY, min_difficulty=EASY / 10)
    defaults.update(kw)
    return ds.Rules(layout, PrefixPool(layout.capacity), WorkerBook(), **defaults)


class Miner:
    """A downstream miner made of the client's codec: what it sends, what it makes of the answers."""

    def __init__(self, session: ds.DownstreamSession):
        self.session = session
        self.proto = sp.StratumProtocol("test-miner/1.0")
        self.events: list[sp.Event] = []
        self.replies: list[dict] = []
        self.now = 0.0

    def pump(self) -> list:
        self.session_events = self.session.receive_data(self.proto.data_to_send(), self.now)
        out = self.session.data_to_send()
        for line in out.splitlines():
            message = json.loads(line)
            if "result" in message and message.get("method") is None:
                self.replies.append(message)
        self.events += self.proto.receive_data(out)
        return self.session_events

    def raw(self, message: dict) -> dict:
        self.session_events = self.session.receive_data(sp.encode(message), self.now)
        lines = self.session.data_to_send().splitlines()
        self.events += self.proto.receive_data(b"".join(line + b"\n" for line in lines
                                                        if json.loads(line).get("method")))
        answers = [json.loads(line) for line in lines if json.loads(line).get("method") is None]
        return answers[-1] if answers else {}

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def login(self, mask: bool = True) -> None:
        if mask:
            self.proto.configure()
        self.proto.subscribe()
        self.proto.authorize("alice.1", "x")
        self.pump()

    def find(self, job: sp.NewJob, difficulty: float, en2: bytes = b"\x00\x01", version: int | None = None,
             worse: bool = False) -> tuple[int, int]:
        """A nonce meeting (or, worse=True, missing) the difficulty, via the C core."""
        sub = self.of(sp.Subscribed)[-1]
        coinbase = job.coinb1 + sub.extranonce1 + en2 + job.coinb2
        root = hashlib.sha256(hashlib.sha256(coinbase).digest()).digest()
        for sibling in job.merkle_branch:
            root = hashlib.sha256(hashlib.sha256(root + sibling).digest()).digest()
        v = job.version if version is None else version
        header = v.to_bytes(4, "little") + job.prevhash + root + job.ntime.to_bytes(4, "little") + \
            job.nbits.to_bytes(4, "little") + bytes(4)
        target = difficulty_to_target(difficulty)
        for start in range(0, 1 << 32, 1 << 16):
            for nonce in hashing.scan(header, start, 1 << 16, (1 << 256) - 1 if worse else target):
                digest = hashing.sha256d(header[:76] + nonce.to_bytes(4, "little"))
                if (hash_to_int(digest) > target) == worse:
                    return nonce, hash_to_int(digest)
        raise AssertionError("no nonce found")

    def submit(self, job: sp.NewJob, nonce: int, en2: bytes = b"\x00\x01", ntime: int | None = None,
               bits: int | None = None) -> dict:
        params = ["alice.1", job.job_id, en2.hex(), f"{job.ntime if ntime is None else ntime:08x}", f"{nonce:08x}"]
        if bits is not None:
            params.append(f"{bits:08x}")
        return self.raw({"id": 99, "method": "mining.submit", "params": params})


def logged_in(**kw) -> tuple[Miner, Job]:
    session = ds.DownstreamSession(rules(**kw), 0.0, "test")
    job = source_job()
    session.send_job(job, "1", session.notify_line(job, "1", True), 0.0)
    miner = Miner(session)
    miner.login()
    return miner, job


def test_subscribe_authorize_give_a_prefix_the_difficulty_and_a_clean_job():
    miner, job = logged_in()
    configured, = miner.of(sp.Configured)
    assert configured.version_rolling and configured.version_mask == 0x1FFFE000
    sub, = miner.of(sp.Subscribed)
    assert sub.extranonce1 == b"\x00\x01" and sub.extranonce2_size == 2  # prefix 1 of 2 bytes; 2 left
    assert sub.session_id == "00000001"
    assert miner.of(sp.Authorized) == [sp.Authorized(True)]
    diff, = miner.of(sp.SetDifficulty)
    assert float(diff.difficulty) == pytest.approx(EASY)
    new, = miner.of(sp.NewJob)
    # the miner's coinbase = source coinb1 + source extranonce1 | its prefix | its extranonce2 | coinb2
    assert new.coinb1 == COINB1 + EN1 and new.coinb2 == COINB2 and new.clean
    assert new.prevhash == job.prevhash and new.merkle_branch == tuple(BRANCH)


def test_a_valid_share_is_accepted_and_forwarded_as_the_source_would_rebuild_it():
    miner, job = logged_in(start_difficulty=0.0001, min_difficulty=0.0001)
    # the source's difficulty so low every share meets it: every accepted share is forwarded
    easy_source = source_job("j2", difficulty=0.0001)
    miner.session.send_job(easy_source, "2", miner.session.notify_line(easy_source, "2", True), 0.0)
    miner.pump()
    new = miner.of(sp.NewJob)[-1]
    nonce, _ = miner.find(new, 0.0001)
    answer = miner.submit(new, nonce)
    assert answer["result"] is True and answer["error"] is None
    accepted, = [e for e in miner.session_events if isinstance(e, ds.ShareAccepted)]
    forward = accepted.forward
    assert forward is not None and forward.work.job is easy_source
    assert forward.work.extranonce2 == b"\x00\x01" + b"\x00\x01"  # prefix + the miner's extranonce2
    # rebuilt as the test pool does from a submit of the forwarded share
    coinbase = COINB1 + EN1 + forward.work.extranonce2 + COINB2
    root = hashlib.sha256(hashlib.sha256(coinbase).digest()).digest()
    for sibling in BRANCH:
        root = hashlib.sha256(hashlib.sha256(root + sibling).digest()).digest()
    header = forward.header
    assert header[36:68] == root
    assert hashlib.sha256(hashlib.sha256(header).digest()).digest() == forward.digest
    assert hash_to_int(forward.digest) <= easy_source.share_target
    assert miner.session.worker.accepted == 1


def test_a_share_under_the_source_difficulty_is_accepted_but_not_forwarded():
    miner, job = logged_in()  # source difficulty 0.01, ours 1e-6
    new = miner.of(sp.NewJob)[-1]
    nonce, value = miner.find(new, EASY)
    if value <= job.share_target:
        pytest.skip("the share happened to meet the source's difficulty too")  # 1 in 10,000
    assert miner.submit(new, nonce)["result"] is True
    accepted, = [e for e in miner.session_events if isinstance(e, ds.ShareAccepted)]
    assert accepted.forward is None


def test_rejects_carry_the_usual_codes_and_are_counted_per_worker():
    miner, job = logged_in()
    new = miner.of(sp.NewJob)[-1]
    nonce, _ = miner.find(new, EASY)
    assert miner.submit(new, nonce)["result"] is True
    assert miner.submit(new, nonce)["error"][:2] == [22, "Duplicate share"]
    bad, _ = miner.find(new, EASY, worse=True)
    assert miner.submit(new, bad)["error"][:2] == [23, "Low difficulty share"]
    assert miner.submit(new, nonce, en2=b"\x00\x01\x02")["error"][:2] == [20, "Invalid nonce2 length"]
    assert miner.submit(new, nonce, ntime=new.ntime - 1)["error"][:2] == [20, "Ntime out of range"]
    assert miner.submit(new, nonce, bits=0x00000001)["error"][:2] == [20, "Invalid version mask"]
    assert miner.submit(replace(new, job_id="nope"), nonce)["error"][:2] == [21, "Job not found"]
    clean = source_job("j9")
    miner.session.send_job(clean, "9", miner.session.notify_line(clean, "9", True), 1.0)
    assert miner.submit(new, nonce)["error"][:2] == [21, "Stale"]
    worker = miner.session.worker
    assert worker.accepted == 1
    assert worker.rejected == {"Duplicate share": 1, "Low difficulty share": 1, "Invalid nonce2 length": 1,
                               "Ntime out of range": 1, "Invalid version mask": 1, "Job not found": 1, "Stale": 1}


def test_rolled_version_bits_inside_the_granted_mask_are_checked_with_the_c_core():
    miner, job = logged_in()
    new = miner.of(sp.NewJob)[-1]
    bits = 0x00004000
    nonce, _ = miner.find(new, EASY, version=new.version | bits)
    assert miner.submit(new, nonce, bits=bits)["result"] is True


def test_submit_before_subscribe_or_authorize():
    session = ds.DownstreamSession(rules(), 0.0)
    job = source_job()
    session.send_job(job, "1", session.notify_line(job, "1", True), 0.0)
    miner = Miner(session)
    params = ["alice.1", "1", "0000", "6553f100", "00000000"]
    assert miner.raw({"id": 1, "method": "mining.submit", "params": params})["error"][:2] == [25, "Not subscribed"]
    miner.proto.subscribe()
    miner.pump()
    assert miner.raw({"id": 2, "method": "mining.submit", "params": params})["error"][:2] == [24, "Unauthorized worker"]


def test_version_mask_is_the_intersection_of_the_miners_and_the_sources():
    session = ds.DownstreamSession(rules(), 0.0)
    job = source_job(version_mask=0x1FFFE000)
    session.send_job(job, "1", session.notify_line(job, "1", True), 0.0)
    miner = Miner(session)
    answer = miner.raw({"id": 1, "method": "mining.configure",
                        "params": [["version-rolling", "made-up"], {"version-rolling.mask": "00ffff00"}]})
    assert answer["result"] == {"version-rolling": True, "version-rolling.mask": "00ffe000", "made-up": False}


def test_password_policy():
    session = ds.DownstreamSession(rules(password="sesame"), 0.0)
    job = source_job()
    session.send_job(job, "1", session.notify_line(job, "1", True), 0.0)
    miner = Miner(session)
    assert miner.raw({"id": 1, "method": "mining.authorize", "params": ["bob", "x"]})["error"][0] == 24
    assert miner.raw({"id": 2, "method": "mining.authorize", "params": ["bob", "sesame"]})["result"] is True


def test_subscribe_resumes_the_session_prefix_after_a_reconnect():
    shared = rules()
    job = source_job()
    first = ds.DownstreamSession(shared, 0.0)
    first.send_job(job, "1", b"", 0.0)
    a = Miner(first)
    a.login()
    sid = a.of(sp.Subscribed)[0].session_id
    first.connection_lost(5.0)
    other = Miner(ds.DownstreamSession(shared, 6.0))
    other.session.send_job(job, "1", b"", 6.0)
    other.login()
    again = Miner(ds.DownstreamSession(shared, 7.0))
    again.session.send_job(job, "1", b"", 7.0)
    again.proto.subscribe(sid)
    again.pump()
    assert again.of(sp.Subscribed)[0].extranonce1 == a.of(sp.Subscribed)[0].extranonce1
    assert other.of(sp.Subscribed)[0].extranonce1 != a.of(sp.Subscribed)[0].extranonce1


def test_suggest_difficulty_sets_the_floor_and_a_new_job_carries_it():
    miner, job = logged_in()
    before = len(miner.of(sp.NewJob))
    assert miner.raw({"id": 5, "method": "mining.suggest_difficulty", "params": [0.5]})["result"] is True
    assert float(miner.of(sp.SetDifficulty)[-1].difficulty) == 0.01  # clamped to the source's difficulty
    assert len(miner.of(sp.NewJob)) == before + 1  # the current job again, so the change applies now


def test_hostile_lines_get_errors_then_the_connection_is_closed():
    miner, _ = logged_in()
    assert miner.raw({"id": 7, "method": "mining.nothing", "params": []})["error"][0] == 20
    events = miner.session.receive_data(b"{not json\n" * ds.MAX_BAD_LINES, 1.0)
    assert any(isinstance(e, ds.Close) for e in events)
    miner2, _ = logged_in()
    events = miner2.session.receive_data(b"x" * (ds.MAX_LINE + 10), 1.0)
    assert [type(e) for e in events] == [ds.Close]


def test_a_flood_of_messages_is_cut_off():
    miner, _ = logged_in(messages_per_second=10, burst=20)
    line = sp.encode({"id": 1, "method": "mining.ping", "params": []})
    events = miner.session.receive_data(line * 50, 0.5)
    assert any(isinstance(e, ds.Close) and "messages/s" in e.reason for e in events)


def test_login_and_idle_timeouts():
    session = ds.DownstreamSession(rules(login_timeout=30, idle_timeout=100), 0.0)
    assert session.tick(29.0) == []
    assert [type(e) for e in session.tick(31.0)] == [ds.Close]
    miner, _ = logged_in(idle_timeout=100)
    assert miner.session.tick(50.0) == []
    assert [type(e) for e in miner.session.tick(101.0)] == [ds.Close]


# ------------------------------------------------------------------------------------ hypothesis
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_never_raise_and_every_answer_is_a_json_line(data):
    miner, _ = logged_in()
    miner.session.receive_data(data, 1.0)
    for line in miner.session.data_to_send().splitlines():
        json.loads(line)


METHODS = ["mining.configure", "mining.subscribe", "mining.authorize", "mining.extranonce.subscribe",
           "mining.suggest_difficulty", "mining.submit", "mining.ping", "mining.other"]
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
                       lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=30), inner,
                                                                                    max_size=4), max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(METHODS), st.lists(JSONISH, max_size=7) | JSONISH, st.integers(0, 10**6) | st.none())
def test_every_downstream_message_with_any_params_gets_an_answer_never_an_exception(method, params, call_id):
    session = ds.DownstreamSession(rules(), 0.0)
    job = source_job()
    session.send_job(job, "1", b"", 0.0)
    session.receive_data(sp.encode({"id": call_id, "method": method, "params": params}), 1.0)
    lines = [json.loads(line) for line in session.data_to_send().splitlines()]
    answers = [m for m in lines if m.get("method") is None]
    assert len(answers) == 1 and answers[0]["id"] == call_id
    assert (answers[0]["error"] is None) != (answers[0]["result"] in (None, False)) or answers[0]["result"] is False


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=60).filter(lambda b: b"\n" not in b), max_size=8), st.data())
def test_line_reader_gives_the_same_lines_however_the_stream_is_cut(lines, data):
    stream = b"".join(line + b"\n" for line in lines)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    reader = sp.LineReader(max_line=40)
    got: list[bytes] = []
    dropped = 0
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        more, d = reader.feed(stream[a:b])
        got += more
        dropped += d
    assert got == [line.strip() for line in lines if line.strip() and len(line) <= 40]
    assert dropped == sum(len(line) > 40 for line in lines)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=12), st.binary(min_size=32, max_size=32),
       st.binary(max_size=80), st.binary(max_size=80), st.lists(st.binary(min_size=32, max_size=32), max_size=12),
       st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF), st.booleans())
def test_notify_message_is_read_back_by_the_client_codec(job_id, prevhash, coinb1, coinb2, branch, version, ntime,
                                                          clean):
    line = sp.notify_message(job_id, prevhash, coinb1, coinb2, tuple(branch), version, 0x1D00FFFF, ntime, clean)
    event, = sp.StratumProtocol("t").receive_data(line)
    assert event == sp.NewJob(job_id, prevhash, coinb1, coinb2, tuple(branch), version, 0x1D00FFFF, ntime, clean)


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 16), st.integers(0, 0xFFFF), st.binary(min_size=16, max_size=16))
def test_a_cut_job_has_the_source_coinbase_for_its_prefix(en2_size, prefix, en2_bytes):
    job = source_job(en2_size=en2_size)
    layout = layout_for(job)
    prefix %= layout.capacity + 1
    cut = layout.cut(job, prefix)
    en2 = en2_bytes[: layout.downstream_size]
    assert cut.coinbase(en2) == job.coinbase(layout.upstream_extranonce2(job, layout.prefix_bytes(prefix), en2))
    # a backup pool with a longer extranonce2 keeps the same split: the spare bytes are ours, zero
    longer = source_job(en2_size=en2_size + 3)
    assert layout.fits(longer)
    assert layout.cut(longer, prefix).coinbase(en2) == longer.coinbase(
        layout.upstream_extranonce2(longer, layout.prefix_bytes(prefix), en2))


def test_prefix_sizes_leave_the_miner_at_least_two_bytes_where_they_can():
    assert [prefix_size(n) for n in (1, 2, 3, 4, 8, 16)] == [0, 1, 1, 2, 2, 2]
    assert layout_for(source_job(en2_size=4)) == Layout(2, 2)


def test_prefix_pool_hands_out_unique_prefixes_and_parks_released_ones():
    pool = PrefixPool(capacity=3, resume_seconds=10)
    taken = [pool.take(0.0) for _ in range(3)]
    assert sorted(taken) == [1, 2, 3] and LOCAL_PREFIX not in taken
    assert pool.take(0.0) is None
    pool.release(2, 1.0)
    assert pool.take(2.0, resume=2) == 2
    pool.release(2, 3.0)
    assert pool.take(4.0) == 2  # full: the parked one goes to a live connection
    pool.release(1, 5.0)
    assert pool.take(20.0) == 1  # expired from parking, free again


# ------------------------------------------------------------------------------------ vardiff
@pytest.mark.parametrize("true_rate", [0.01, 1.0, 50.0])  # shares/s the miner would find at difficulty 1
def test_vardiff_converges_to_about_six_shares_a_minute(true_rate):
    vd = VarDiff(start=1.0, minimum=1e-6)
    now, changes = 0.0, 0
    vd.reset(now)
    for _ in range(2000):
        rate = true_rate / vd.difficulty  # shares/s at the current difficulty (deterministic stream)
        now += 1.0 / rate
        if vd.on_share(now) is not None:
            changes += 1
    final_rate = true_rate / vd.difficulty * 60
    assert 3 <= final_rate <= 12, final_rate
    assert changes >= 1 or true_rate == 0.1


def test_vardiff_eases_a_quiet_miner_and_respects_suggest_and_limits():
    vd = VarDiff(start=1000.0, minimum=0.0001, maximum=5000.0)
    assert vd.on_tick(4 * vd.interval + 1) is not None and vd.difficulty < 1000.0
    assert vd.suggest(10_000.0, 100.0) == 5000.0  # clamped to the source's difficulty
    vd2 = VarDiff(start=1.0)
    vd2.suggest(2.0, 0.0)
    for i in range(1, 200):
        vd2.on_tick(i * 100.0)
    assert vd2.difficulty == 2.0  # never under the miner's own suggestion


def test_difficulty_one_is_sent_as_an_integer():
    assert ds._number(1.0) == 1 and isinstance(ds._number(1.0), int)  # noqa: SLF001
    assert difficulty_to_target(1) == DIFF1_TARGET


@given(host=st.sampled_from(["127.0.0.1", "pool.example.com", "::1"]), port=st.integers(1, 65535),
       wait=st.integers(0, 3600))
@settings(max_examples=50, deadline=None)
def test_client_reconnect_line_carries_the_port_as_a_string_and_the_client_codec_reads_it_back(host, port, wait):
    miner, _ = logged_in()
    miner.session.reconnect(host, port, wait)
    line = miner.session.data_to_send()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    message = json.loads(line)
    # cgminer util.c parse_reconnect reads the port with json_string_value: a number would be ignored
    assert message == {"id": None, "method": "client.reconnect", "params": [host, str(port), wait]}
    events = miner.proto.receive_data(line)
    assert events == [sp.Reconnect(host, port, float(min(wait, sp.MAX_RECONNECT_WAIT)))]


def test_client_reconnect_without_a_host_is_an_empty_call_and_a_missing_port_is_null():
    miner, _ = logged_in()
    miner.session.reconnect()
    assert json.loads(miner.session.data_to_send())["params"] == []
    miner.session.reconnect("pool.example.com", None, 0)
    assert json.loads(miner.session.data_to_send())["params"] == ["pool.example.com", None, 0]
