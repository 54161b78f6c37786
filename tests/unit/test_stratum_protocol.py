import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miner.core import hashing
from miner.core.targets import display_hash, nbits_to_target
from miner.core.work import Job, Nonce
from miner.sources.sandbox import GENESIS_COINB1, GENESIS_COINB2, GENESIS_HASH
from miner.sources.stratum import protocol as sp

AGENT = "pyminer/test"


def fresh() -> sp.StratumProtocol:
    proto = sp.StratumProtocol(AGENT)
    proto.configure()  # id 1
    proto.subscribe()  # id 2
    proto.authorize("user", "pw")  # id 3
    proto.submit("user", "j1", b"\x00\x00\x00\x01", 0x6553F100, 0x1234, 0x2000)  # id 4
    proto.submit("user", "j1", b"\x00\x00\x00\x02", 0x6553F100, 0x1235)  # id 5
    proto.submit("user", "j1", b"\x00\x00\x00\x03", 0x6553F100, 0x1236)  # id 6
    proto.submit("user", "j1", b"\x00\x00\x00\x04", 0x6553F100, 0x1237)  # id 7
    proto.data_to_send()
    return proto


NOTIFY = {"id": None, "method": "mining.notify", "params": [
    "b3", "ab02cd818b9e567ee21793cddef299feb29ad444a41b85b8000008a300000000", "01000000", "ffffffff",
    ["11" * 32, "22" * 32], "20000000", "1a44b9f2", "4dd7f5c7", True]}

TRANSCRIPT = b"".join(json.dumps(m).encode() + b"\n" for m in [
    {"id": 1, "error": None, "result": {"version-rolling": True, "version-rolling.mask": "1fffe000"}},
    {"id": 2, "error": None, "result": [[["mining.notify", "ae6812eb4cd7735a302a8a9dd95cf71f"]], "08000002", 4]},
    {"id": 3, "error": None, "result": True},
    {"id": None, "method": "mining.set_difficulty", "params": [0.5]},
    NOTIFY,
    {"id": None, "method": "mining.set_extranonce", "params": ["a1b2c3d4", 3]},
    {"id": None, "method": "mining.set_version_mask", "params": ["00fff000"]},
    {"id": None, "method": "client.show_message", "params": ["hello"]},
    {"id": 4, "result": True, "error": None},
    {"id": 5, "result": None, "error": [23, "Low difficulty share", None]},
    {"id": 6, "result": False, "error": {"code": 21, "message": "Job not found"}},
    {"id": 7, "result": False, "error": None, "reject-reason": "Stale"},
    {"id": None, "method": "client.reconnect", "params": ["pool.example.com", 3334, 5]},
])


def test_transcript_events():
    events = fresh().receive_data(TRANSCRIPT)
    assert events[0] == sp.Configured(True, 0x1FFFE000)
    assert events[1] == sp.Subscribed(bytes.fromhex("08000002"), 4, "ae6812eb4cd7735a302a8a9dd95cf71f")
    assert events[2] == sp.Authorized(True)
    assert events[3] == sp.SetDifficulty(sp.Fraction(1, 2))
    job = events[4]
    assert isinstance(job, sp.NewJob) and job.clean and job.job_id == "b3"
    assert display_hash(job.prevhash) == "00000000000008a3a41b85b8b29ad444def299fee21793cd8b9e567eab02cd81"
    assert (job.version, job.nbits, job.ntime) == (0x20000000, 0x1A44B9F2, 0x4DD7F5C7)
    assert job.merkle_branch == (b"\x11" * 32, b"\x22" * 32)
    assert events[5] == sp.SetExtranonce(bytes.fromhex("a1b2c3d4"), 3)
    assert events[6] == sp.SetVersionMask(0x1FFFE000 & 0x00FFF000)
    assert events[7] == sp.ShowMessage("hello")
    assert events[8] == sp.SubmitResult(4, True)
    assert events[9] == sp.SubmitResult(5, False, "Low difficulty share", 23)
    assert events[10] == sp.SubmitResult(6, False, "Job not found", 21)
    assert events[11] == sp.SubmitResult(7, False, "Stale", None)
    assert events[12] == sp.Reconnect("pool.example.com", 3334, 5.0)
    assert len(events) == 13


def test_plain_string_error_reply():
    proto = fresh()
    [event] = proto.receive_data(b'{"id":4,"result":null,"error":"Invalid job_id"}\n')
    assert event == sp.SubmitResult(4, False, "Invalid job_id", None)


def test_split_at_every_byte_boundary_gives_the_same_events():
    whole = fresh().receive_data(TRANSCRIPT)
    for cut in range(1, len(TRANSCRIPT)):
        proto = fresh()
        assert proto.receive_data(TRANSCRIPT[:cut]) + proto.receive_data(TRANSCRIPT[cut:]) == whole


@settings(max_examples=100)
@given(st.lists(st.integers(min_value=1, max_value=len(TRANSCRIPT) - 1), max_size=12))
def test_split_anywhere_many_times(cuts):
    whole = fresh().receive_data(TRANSCRIPT)
    proto = fresh()
    events = []
    last = 0
    for cut in sorted(set(cuts)) + [len(TRANSCRIPT)]:
        events += proto.receive_data(TRANSCRIPT[last:cut])
        last = cut
    assert events == whole


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(data):
    events = fresh().receive_data(data)
    assert all(isinstance(e, sp.Event) for e in events)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
methods = st.sampled_from(["mining.notify", "mining.set_difficulty", "mining.set_extranonce",
                           "mining.set_version_mask", "client.reconnect", "client.show_message",
                           "client.get_version", "mining.ping", "mining.whatever"])
messages = st.one_of(
    json_values,
    st.fixed_dictionaries({"id": json_values, "method": methods, "params": json_values}),
    st.fixed_dictionaries({"id": st.integers(0, 9) | json_values, "result": json_values, "error": json_values}),
)


# 150 here; tests/unit/test_stratum_session.py fuzzes whole sessions with pool lines on top of this.
@settings(max_examples=150)
@given(st.lists(messages, max_size=6))
def test_arbitrary_json_never_raises(items):
    proto = fresh()
    data = b"".join(json.dumps(m).encode() + b"\n" for m in items)
    events = proto.receive_data(data)
    assert all(isinstance(e, sp.Event) for e in events)
    json.loads(proto.data_to_send().split(b"\n")[0] or b"null")  # replies we queued are JSON


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (NOTIFY["params"][:5], "needs 9 params"),
        ([*NOTIFY["params"][:1], "abc", *NOTIFY["params"][2:]], "prevhash"),
        ([*NOTIFY["params"][:5], 536870912, *NOTIFY["params"][6:]], "version"),
        ([*NOTIFY["params"][:4], "not a list", *NOTIFY["params"][5:]], "merkle_branch"),
        ([*NOTIFY["params"][:4], ["12"], *NOTIFY["params"][5:]], "merkle branch item"),
        ([*NOTIFY["params"][:8], "yes"], "clean_jobs"),
        ([None, *NOTIFY["params"][1:]], "job_id"),
    ],
)
def test_bad_notify_is_a_fatal_error_naming_the_field(params, field):
    [event] = fresh().receive_data(json.dumps({"id": None, "method": "mining.notify", "params": params}).encode()
                                   + b"\n")
    assert isinstance(event, sp.ProtocolError) and event.fatal
    assert field in event.message


def test_reply_to_an_id_never_sent():
    [event] = fresh().receive_data(b'{"id":99,"result":true,"error":null}\n')
    assert isinstance(event, sp.ProtocolError) and "never sent" in event.message


def test_overlong_line_is_dropped_and_the_next_line_still_parses():
    proto = fresh()
    events = proto.receive_data(b"a" * (sp.MAX_LINE + 10))
    assert [type(e) for e in events] == [sp.ProtocolError]
    events = proto.receive_data(b"aaaa\n" + json.dumps({"id": 3, "result": True, "error": None}).encode() + b"\n")
    assert events == [sp.Authorized(True)]


def test_answers_get_version_ping_and_unknown_requests():
    proto = fresh()
    proto.receive_data(b'{"id":"v","method":"client.get_version","params":[]}\n'
                       b'{"id":8,"method":"mining.ping","params":[]}\n'
                       b'{"id":9,"method":"mining.capabilities","params":[]}\n'
                       b'{"id":null,"method":"mining.unknown_note","params":[]}\n')
    replies = [json.loads(line) for line in proto.data_to_send().splitlines()]
    assert replies[0] == {"id": "v", "result": AGENT, "error": None}
    assert replies[1] == {"id": 8, "result": "pong", "error": None}
    assert replies[2]["id"] == 9 and replies[2]["error"][0] == 20
    assert len(replies) == 3


def test_request_encodings():
    proto = sp.StratumProtocol(AGENT)
    proto.configure()
    proto.subscribe("deadbeef")
    proto.authorize("addr.worker", "x")
    proto.suggest_difficulty(512)
    proto.suggest_difficulty(0.5)
    proto.extranonce_subscribe()
    proto.submit("addr.worker", "1", bytes.fromhex("99020000"), 0x64B1F10F, 0x2402812D, 0x00006000)
    sent = [json.loads(line) for line in proto.data_to_send().splitlines()]
    assert sent[0] == {"id": 1, "method": "mining.configure", "params": [
        ["version-rolling"], {"version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 2}]}
    assert sent[1]["params"] == [AGENT, "deadbeef"]
    assert sent[2]["params"] == ["addr.worker", "x"]
    assert sent[3]["params"] == [512] and sent[4]["params"] == [0.5]
    assert sent[5] == {"id": 6, "method": "mining.extranonce.subscribe", "params": []}
    # public-pool's recorded Bitaxe submit (stratum.md §1.7(d))
    assert sent[6]["params"] == ["addr.worker", "1", "99020000", "64b1f10f", "2402812d", "00006000"]


def test_configure_grant_is_anded_with_what_we_asked():
    proto = sp.StratumProtocol(AGENT, version_mask_wanted=0x00FFE000)
    proto.configure()
    [event] = proto.receive_data(b'{"id":1,"error":null,"result":{"version-rolling":true,'
                                 b'"version-rolling.mask":"1fffe000"}}\n')
    assert event == sp.Configured(True, 0x00FFE000)


def test_genesis_block_as_a_notify_builds_the_genesis_header():
    # docs/stratum.md §1.7(a): the genesis block written as a Stratum job
    proto = sp.StratumProtocol(AGENT)
    proto.subscribe()
    notify = {"id": None, "method": "mining.notify", "params": [
        "g", "00" * 32, GENESIS_COINB1.hex(), GENESIS_COINB2.hex(), [], "00000001", "1d00ffff", "495fab29", True]}
    events = proto.receive_data(
        b'{"id":1,"result":[[["mining.notify","s"]],"45546865",4],"error":null}\n'
        + json.dumps(notify).encode() + b"\n")
    sub, note = events
    job = Job(note.job_id, note.prevhash, note.coinb1, note.coinb2, note.merkle_branch, note.version, note.nbits,
              note.ntime, note.clean, sub.extranonce1, sub.extranonce2_size)
    work = job.make_work(1, bytes.fromhex("2054696d"))
    nonce = int("7c2bac1d", 16)  # as submitted
    header = work.header_for(nonce)
    assert header[76:] == bytes.fromhex("1dac2b7c")  # as stored
    assert display_hash(hashing.sha256d(header)) == GENESIS_HASH
    assert hashing.scan(work.header, nonce - 10, 20, nbits_to_target(job.nbits)) == [nonce]
    assert Nonce(1, nonce).nonce == 2083236893


@given(st.one_of(st.integers(min_value=1, max_value=10**12), st.floats(min_value=1e-9, max_value=1e12),
                 st.decimals(min_value="0.000001", max_value="1000000", places=6).map(str)))
def test_difficulty_parses_numbers_and_numeric_strings(value):
    assert sp.parse_difficulty(value) > 0


@pytest.mark.parametrize("value", [0, -1, "abc", None, True, float("inf"), float("nan"), [1]])
def test_bad_difficulty_is_an_error_not_an_exception(value):
    [event] = fresh().receive_data(json.dumps({"id": None, "method": "mining.set_difficulty",
                                               "params": [value]}).encode() + b"\n")
    assert isinstance(event, sp.ProtocolError) and "difficulty" in event.message
