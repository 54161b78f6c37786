"""The Stratum session's rules as transcripts: the exact bytes a pool sends go in, and the test
checks the exact bytes the session sends back and the decisions it makes. No sockets, no clock
(every input carries its `now`), no hashing beyond building a share by hand."""

import json
import logging
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miner.core.shares import CheckedNonce, check_nonce
from miner.core.stats import ShareStats
from miner.core.targets import difficulty_to_target
from miner.core.work import Job, Nonce, swap_words
from miner.sources.stratum import session as ss
from miner.sources.stratum.connection import PoolConnection, backoff_delay
from miner.sources.stratum.url import PoolConfig, Timeouts, parse_pool_url, same_domain

AGENT = "pyminer/test"
TIMEOUTS = Timeouts(connect=2, reply=2, silence=30, work=60)
PREV1 = "ab02cd818b9e567ee21793cddef299feb29ad444a41b85b8000008a300000000"
PREV2 = "11" * 28 + "00000000"
COINB1 = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20"
COINB2 = "0b2f746573742d706f6f6c2fffffffff0100f2052a01000000"

HANDSHAKE = (
    b'{"id":1,"method":"mining.configure","params":[["version-rolling"],'
    b'{"version-rolling.mask":"1fffffe0","version-rolling.min-bit-count":2}]}\n'
    b'{"id":2,"method":"mining.subscribe","params":["pyminer/test"]}\n'
    b'{"id":3,"method":"mining.authorize","params":["worker.1","x"]}\n'
)
CONFIGURED = b'{"id":1,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null}\n'
SUBSCRIBED = (b'{"id":2,"result":[[["mining.set_difficulty","1"],["mining.notify","ae6812eb"]],"08000002",4],'
              b'"error":null}\n')
AUTHORIZED = b'{"id":3,"result":true,"error":null}\n'


def notify(job_id: str, prevhash: str = PREV1, clean: bool = True, version: str = "20000000") -> bytes:
    return (f'{{"id":null,"method":"mining.notify","params":["{job_id}","{prevhash}","{COINB1}","{COINB2}",'
            f'[],"{version}","1d00ffff","6553f100",{"true" if clean else "false"}]}}\n').encode()


def set_difficulty(difficulty: float) -> bytes:
    return f'{{"id":null,"method":"mining.set_difficulty","params":[{difficulty}]}}\n'.encode()


def reply(request_id: int, result: str = "true", error: str = "null") -> bytes:
    return f'{{"id":{request_id},"result":{result},"error":{error}}}\n'.encode()


def new_session(**config) -> ss.StratumSession:
    return ss.StratumSession(PoolConfig("stratum+tcp://pool.example.com:3333", "worker.1", "x", **config),
                             "pool0", TIMEOUTS, AGENT)


def kinds(events: list[ss.SessionEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def jobs(events: list[ss.SessionEvent]) -> list[Job]:
    return [e.job for e in events if isinstance(e, ss.PublishJob)]


def mining(now: float = 0.0, **config) -> tuple[ss.StratumSession, Job]:
    """A session through the handshake, difficulty 0.5 and the clean job "1": (session, that job)."""
    session = new_session(**config)
    session.connection_made(now)
    assert session.data_to_send() == HANDSHAKE
    events = session.receive_data(CONFIGURED + SUBSCRIBED + AUTHORIZED + set_difficulty(0.5) + notify("1"), now)
    assert kinds(events) == ["PublishJob", "PoolAlive"]
    return session, jobs(events)[0]


def share(job: Job, nonce: int = 7, extranonce2: bytes | None = None, version: int | None = None) -> CheckedNonce:
    """A checked share for the job by hand (the session takes the share path's word for its verdict)."""
    if extranonce2 is None:  # 00..01, as the pool's hex shows it
        extranonce2 = (1).to_bytes(job.extranonce2_size, "big") if job.extranonce2_size else b""
    work = job.make_work(1, extranonce2, version)
    return check_nonce(work, Nonce(1, nonce, version))


def submit_line(request_id: int, job_id: str, extranonce2: str, nonce: int, bits: str | None = "00000000") -> bytes:
    params = ["worker.1", job_id, extranonce2, "6553f100", f"{nonce:08x}"] + ([bits] if bits is not None else [])
    return json.dumps({"id": request_id, "method": "mining.submit", "params": params},
                      separators=(",", ":")).encode() + b"\n"


# ------------------------------------------------------------------------------------ handshake, mining
def test_handshake_job_and_an_accepted_share_with_version_rolling():
    session, job = mining()
    # BIP310: configure first, then subscribe, authorize (HANDSHAKE checked in mining())
    assert session.version_mask == 0x1FFFE000
    assert (session.extranonce1, session.extranonce2_size, session.session_id) == (bytes.fromhex("08000002"), 4,
                                                                                   "ae6812eb")
    assert job.job_id == "1" and job.clean and job.source == "pool0"
    assert job.prevhash == swap_words(bytes.fromhex(PREV1))
    assert (job.version, job.nbits, job.ntime, job.version_mask) == (0x20000000, 0x1D00FFFF, 0x6553F100, 0x1FFFE000)
    assert job.extranonce1 == bytes.fromhex("08000002") and job.share_target == difficulty_to_target(0.5)
    rolled = share(job, 7, version=0x20000000 | 0x00006000)
    events = session.offer(rolled, 1.0)
    assert events == [ss.ShareSent(rolled, 4)]
    # six params: the rolled bits (and only those) as the version_bits
    assert session.data_to_send() == submit_line(4, "1", "00000001", 7, "00006000")
    assert session.unanswered == 1
    answered = session.receive_data(reply(4), 1.25)
    assert answered == [ss.ShareAnswered(rolled, True, None, None, 0.25)]
    assert session.unanswered == 0
    stats = ShareStats()
    ss.tally(stats, answered[0])
    assert stats.accepted == 1 and stats.rejected_total == 0 and stats.accepted_difficulty == job.share_difficulty
    assert stats.best_difficulty == rolled.difficulty


def test_without_version_rolling_no_configure_and_five_submit_params():
    session = new_session(version_rolling=False)
    session.connection_made(0.0)
    assert session.data_to_send() == (b'{"id":1,"method":"mining.subscribe","params":["pyminer/test"]}\n'
                                      b'{"id":2,"method":"mining.authorize","params":["worker.1","x"]}\n')
    events = session.receive_data(reply(1, '[[["mining.notify","s1"]],"08000002",4]') + reply(2) + notify("1"), 0.0)
    assert kinds(events) == ["PublishJob", "PoolAlive"] and session.version_mask == 0
    first = share(jobs(events)[0])
    session.offer(first, 0.0)
    assert session.data_to_send() == submit_line(3, "1", "00000001", 7, None)


def test_rejected_shares_are_counted_with_their_reasons():
    session, job = mining()
    first, second = share(job, 1), share(job, 2)
    session.offer(first, 0.0)
    session.offer(second, 0.0)
    session.data_to_send()
    events = session.receive_data(reply(4, "null", '[23,"Low difficulty share",null]')
                                  + reply(5, "false", '"Invalid job_id"'), 0.5)
    assert events == [ss.ShareAnswered(first, False, "Low difficulty share", 23, 0.5),
                      ss.ShareAnswered(second, False, "Invalid job_id", None, 0.5)]
    stats = ShareStats()
    for event in events:
        ss.tally(stats, event)
    assert stats.rejected_total == 2
    assert stats.rejected["Low difficulty share"] == 1
    assert stats.rejected["Invalid job_id"] == 1
    assert stats.accepted == 0


def test_a_reply_to_a_share_already_forgotten_is_ignored():
    session, job = mining()
    session.offer(share(job), 0.0)
    session.data_to_send()
    assert kinds(session.receive_data(reply(4), 0.0)) == ["ShareAnswered"]
    assert session.receive_data(reply(4), 0.0) == [ss.SessionFailed("bad message from the pool: reply to an id "
                                                                    "never sent: 4")]


# ------------------------------------------------------------------------------------ difficulty, jobs, staleness
def test_difficulty_change_mid_job_applies_from_the_next_job_and_clean_jobs_end_old_ones():
    session, first = mining()
    # set_difficulty alone changes nothing yet: the job being mined keeps its target
    assert session.receive_data(set_difficulty(0.02), 0.0) == []
    assert session.difficulty == 0.5
    old_share = share(first, 1)
    assert kinds(session.offer(old_share, 0.0)) == ["ShareSent"]  # still a live job, at its own difficulty
    session.data_to_send()
    events = session.receive_data(notify("2", clean=False), 0.0)
    second = jobs(events)[0]
    assert kinds(events) == ["PublishJob"]  # already alive: no second PoolAlive
    assert second.share_difficulty == pytest.approx(0.02) and not second.clean
    assert session.difficulty == pytest.approx(0.02)
    assert list(session.live_jobs) == ["1", "2"]  # not clean: the older job lives on
    # a clean job with a new block: old jobs are dead, shares for them are stale (not sent)
    third = jobs(session.receive_data(notify("3", prevhash=PREV2, clean=True), 0.0))[0]
    assert third.clean and list(session.live_jobs) == ["3"]
    stale = share(second, 2)
    assert session.offer(stale, 0.0) == [ss.ShareStale(stale)]
    assert session.data_to_send() == b""
    fresh = share(third, 3)
    assert session.offer(fresh, 0.0) == [ss.ShareSent(fresh, 5)]
    assert session.data_to_send() == submit_line(5, "3", "00000001", 3)
    stats = ShareStats()
    ss.tally(stats, ss.ShareStale(stale))
    assert stats.stale == 1


def test_a_new_prevhash_is_a_clean_job_even_when_the_flag_is_false():
    session, first = mining()
    second = jobs(session.receive_data(notify("2", prevhash=PREV2, clean=False), 0.0))[0]
    assert second.clean and list(session.live_jobs) == ["2"]


def test_the_same_share_is_sent_once():
    session, job = mining()
    first = share(job, 9)
    assert kinds(session.offer(first, 0.0)) == ["ShareSent"]
    session.data_to_send()
    assert session.offer(share(job, 9), 0.0) == [ss.ShareDuplicate(share(job, 9))]
    assert session.data_to_send() == b""
    assert kinds(session.offer(share(job, 10), 0.0)) == ["ShareSent"]


def test_set_extranonce_applies_from_the_next_job():
    session = new_session(xnsub=True)
    session.connection_made(0.0)
    session.data_to_send()
    first = jobs(session.receive_data(CONFIGURED + SUBSCRIBED + AUTHORIZED + notify("1"), 0.0))[0]
    # xnsub: the extranonce subscription goes right after the authorize reply
    assert session.data_to_send() == b'{"id":4,"method":"mining.extranonce.subscribe","params":[]}\n'
    session.receive_data(reply(4), 0.0)
    assert session.receive_data(b'{"id":null,"method":"mining.set_extranonce","params":["cafe0001",3]}\n', 0.0) == []
    assert session.extranonce1 == bytes.fromhex("08000002")  # not yet
    events = session.receive_data(notify("2", clean=False), 0.0)
    job = jobs(events)[0]
    assert job.extranonce1 == bytes.fromhex("cafe0001") and job.extranonce2_size == 3
    assert job.clean  # new coinbase space: older work is worthless
    assert list(session.live_jobs) == ["2"]
    assert session.offer(share(first, 1), 0.0) == [ss.ShareStale(share(first, 1))]
    session.offer(share(job, 1), 0.0)
    assert session.data_to_send() == submit_line(5, "2", "000001", 1)  # three bytes of extranonce2


def test_xnsub_in_the_url_and_suggest_difficulty_after_authorize():
    session = ss.StratumSession(PoolConfig("stratum+tcp://pool.example.com:3333#xnsub", "worker.1", "x",
                                           suggest_difficulty=0.5, version_rolling=False), "pool0", TIMEOUTS, AGENT)
    session.connection_made(0.0)
    session.data_to_send()
    session.receive_data(reply(1, '[[["mining.notify","s1"]],"08000002",4]') + reply(2), 0.0)
    assert session.data_to_send() == (b'{"id":3,"method":"mining.extranonce.subscribe","params":[]}\n'
                                      b'{"id":4,"method":"mining.suggest_difficulty","params":[0.5]}\n')


def test_set_version_mask_applies_at_once_and_re_announces_the_job():
    session, job = mining()
    events = session.receive_data(b'{"id":null,"method":"mining.set_version_mask","params":["00006000"]}\n', 0.0)
    again = jobs(events)[0]
    assert kinds(events) == ["PublishJob"] and session.version_mask == 0x00006000
    assert again == job and again.version_mask == 0x00006000 and not again.clean
    inside = share(again, 1, version=0x20004000)
    assert session.offer(inside, 0.0) == [ss.ShareSent(inside, 4)]
    assert session.data_to_send() == submit_line(4, "1", "00000001", 1, "00004000")
    outside = share(job, 2, version=0x20100000)  # rolled on the old mask: the pool no longer takes it
    assert session.offer(outside, 0.0) == [ss.ShareStale(outside)]
    assert session.data_to_send() == b""


def test_a_pool_granting_more_bits_than_asked_rolls_only_those_asked_for():
    session = new_session()
    session.connection_made(0.0)
    session.data_to_send()
    session.receive_data(b'{"id":1,"result":{"version-rolling":true,"version-rolling.mask":"ffffffff"},'
                         b'"error":null}\n', 0.0)
    assert session.version_mask == ss.OUR_VERSION_MASK == 0x1FFFFFE0  # BIP323's bits 5-28


# ------------------------------------------------------------------------------------ down, held, resumed
def test_shares_held_while_down_are_sent_after_reconnect(caplog):
    caplog.set_level(logging.INFO)
    session, job = mining()
    in_flight = share(job, 1)
    session.offer(in_flight, 0.0)
    session.data_to_send()
    # the pool goes away with a submit unanswered; the devices keep hashing the same job
    session.connection_lost()
    assert session.held == [in_flight] and not session.connected
    found = share(job, 2)
    assert session.offer(found, 1.0) == [ss.ShareHeld(found)]
    assert session.held == [in_flight, found]
    assert session.data_to_send() == b""
    # back: subscribe resumes the session by its id
    session.connection_made(5.0)
    assert session.connections == 2
    assert session.data_to_send() == HANDSHAKE.replace(b'["pyminer/test"]', b'["pyminer/test","ae6812eb"]')
    before_job = session.receive_data(CONFIGURED + SUBSCRIBED + AUTHORIZED, 5.0)
    assert before_job == [] and session.held  # authorized, but nothing sent before a job is known
    # the pool re-sends the current job as clean; the same block, so the old job still counts
    events = session.receive_data(set_difficulty(0.5) + notify("1"), 5.0)
    assert events == [ss.PublishJob(job), ss.PoolAlive(), ss.ShareSent(in_flight, 4), ss.ShareSent(found, 5)]
    # A submit in flight when the socket died may have reached the pool; resending it then gets
    # "Duplicate share", which is right: the miner cannot know, and a lost share is worse.
    assert session.data_to_send() == submit_line(4, "1", "00000001", 1) + submit_line(5, "1", "00000001", 2)
    assert session.held == []
    assert "held" in caplog.text


def test_held_shares_of_an_older_block_are_stale_after_reconnect():
    session, job = mining()
    session.connection_lost()
    held = share(job, 1)
    session.offer(held, 0.0)
    session.connection_made(1.0)
    session.data_to_send()
    events = session.receive_data(CONFIGURED + SUBSCRIBED + AUTHORIZED + notify("9", prevhash=PREV2), 1.0)
    assert kinds(events) == ["PublishJob", "PoolAlive", "ShareStale"] and events[2] == ss.ShareStale(held)
    assert session.data_to_send() == b"" and list(session.live_jobs) == ["9"]


def test_a_new_extranonce1_after_reconnect_ends_the_old_jobs():
    session, job = mining()
    session.connection_lost()
    held = share(job, 1)
    session.offer(held, 0.0)
    session.connection_made(1.0)
    session.data_to_send()
    other = SUBSCRIBED.replace(b'"08000002"', b'"08000003"')
    events = session.receive_data(CONFIGURED + other + AUTHORIZED + notify("1"), 1.0)
    assert kinds(events) == ["PublishJob", "PoolAlive", "ShareStale"]


def test_too_many_held_shares_count_the_oldest_stale():
    session, job = mining()
    session.connection_lost()
    shares = [share(job, n) for n in range(ss.MAX_HELD_SHARES + 1)]
    for s in shares[:-1]:
        assert session.offer(s, 0.0) == [ss.ShareHeld(s)]
    assert session.offer(shares[-1], 0.0) == [ss.ShareStale(shares[0]), ss.ShareHeld(shares[-1])]
    assert len(session.held) == ss.MAX_HELD_SHARES and session.held[0] == shares[1]


def test_ckpool_order_a_notify_before_the_authorize_reply_is_mined_once_authorized():
    """ckpool answers subscribe, then sends set_difficulty and notify, and answers authorize last
    (ckpool stratifier.c parse_method: init_client() right after the subscribe result). The job
    is mined as soon as the authorize reply comes, not at ckpool's next notify ~30 s later."""
    session = new_session()
    session.connection_made(0.0)
    session.data_to_send()
    events = session.receive_data(CONFIGURED + SUBSCRIBED + set_difficulty(0.5) + notify("1"), 0.0)
    assert kinds(events) == ["PublishJob"]  # published (the pool is not alive yet, so not mined)
    held = share(jobs(events)[0])
    assert session.offer(held, 0.0) == [ss.ShareHeld(held)]
    assert session.data_to_send() == b""
    # the authorize reply makes the pool alive with the job it already sent, and sends what was held
    assert session.receive_data(AUTHORIZED, 0.5) == [ss.PoolAlive(), ss.ShareSent(held, 4)]
    assert session.data_to_send() == submit_line(4, "1", "00000001", 7)
    # the next job does not make it alive twice
    assert kinds(session.receive_data(notify("2", clean=False), 1.0)) == ["PublishJob"]


def test_a_job_from_before_a_reconnect_does_not_make_the_pool_alive_on_authorize():
    session, job = mining()
    session.connection_lost()
    session.connection_made(1.0)
    session.data_to_send()
    assert session.receive_data(CONFIGURED + SUBSCRIBED + AUTHORIZED, 1.0) == []  # no job on this connection yet
    assert kinds(session.receive_data(notify("2", clean=False), 1.0)) == ["PublishJob", "PoolAlive"]


# ------------------------------------------------------------------------------------ redirects, errors
def test_client_reconnect_to_a_new_port_ends_the_connection():
    session, job = mining()
    events = session.receive_data(b'{"id":null,"method":"client.reconnect","params":["pool.example.com",3334,5]}\n'
                                  + notify("2"), 0.0)
    assert events == [ss.Redirected("pool.example.com", 3334, 5.0)]  # the notify after it is not taken
    assert session.target == ("pool.example.com", 3334) and not session.connected
    assert session.receive_data(notify("3"), 0.0) == []
    session.connection_lost()
    session.connection_made(6.0)
    assert session.connections == 2


def test_client_reconnect_without_host_or_port_keeps_them():
    session, _ = mining()
    events = session.receive_data(b'{"id":null,"method":"client.reconnect","params":[]}\n', 0.0)
    assert events == [ss.Redirected("pool.example.com", 3333, 0.0)]


def test_client_reconnect_to_another_domain_is_refused(caplog):
    session, job = mining()
    events = session.receive_data(b'{"id":null,"method":"client.reconnect","params":["evil.example.net",3333,0]}\n',
                                  0.0)
    assert events == [] and session.connected
    assert "REFUSED client.reconnect to evil.example.net:3333" in caplog.text
    assert session.target == ("pool.example.com", 3333) and session.connections == 1
    assert kinds(session.offer(share(job), 0.0)) == ["ShareSent"]


def test_client_reconnect_anywhere_when_allowed():
    session, _ = mining(allow_redirect_anywhere=True)
    events = session.receive_data(b'{"id":null,"method":"client.reconnect","params":["evil.example.net",1,0]}\n',
                                  0.0)
    assert events == [ss.Redirected("evil.example.net", 1, 0.0)]


def test_wrong_password_is_one_clear_line_and_no_shares():
    session = new_session()
    session.connection_made(0.0)
    session.data_to_send()
    events = session.receive_data(CONFIGURED + SUBSCRIBED + b'{"id":3,"result":false,'
                                  b'"error":[24,"Unauthorized worker",null]}\n' + notify("1"), 0.0)
    assert events == [ss.SessionFailed("authorization of 'worker.1' refused: Unauthorized worker")]
    assert not session.authorized and session.current_job is None


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (b"this is not json\n", "invalid JSON"),
        (b"x" * (65 * 1024) + b"\n", "line longer than"),
        (b'{"id":null,"method":"mining.notify","params":["j1","00"]}\n', "mining.notify"),
        (b'{"id":null,"method":"mining.notify","params":["j1",' + b'"zz"' * 1 + b',"","",[],"20000000","1d00ffff",'
         b'"6553f100",true]}\n', "prevhash"),
        (b'{"id":4242,"result":true,"error":null}\n', "id never sent"),
    ],
)
def test_bad_input_from_the_pool_is_one_line_and_ends_the_connection(caplog, bad, expected):
    caplog.set_level(logging.INFO)
    session, job = mining()
    events = session.receive_data(bad + notify("2"), 0.0)
    assert kinds(events) == ["SessionFailed"], events
    assert expected in events[0].reason and len(events[0].reason) < 300 and "\n" not in events[0].reason
    # the connection logs the reason once; the session itself adds no line about it
    assert not [r for r in caplog.records if expected in r.getMessage()]
    # never an unchecked share, and back to work after a reconnect
    session.connection_lost()
    session.connection_made(1.0)
    session.data_to_send()
    again = session.receive_data(CONFIGURED + SUBSCRIBED + AUTHORIZED + notify("1"), 1.0)
    assert kinds(again) == ["PublishJob", "PoolAlive"]


def test_a_reply_without_an_id_is_ignored(caplog):
    session, _ = mining()
    assert session.receive_data(b'{"id":null,"result":true,"error":null}\n', 0.0) == []
    assert session.connected and "ignored bad message" in caplog.text


def test_pings_and_version_requests_are_answered():
    session, _ = mining()
    assert session.receive_data(b'{"id":"p","method":"mining.ping","params":[]}\n'
                                b'{"id":7,"method":"client.get_version","params":[]}\n', 0.0) == []
    assert session.data_to_send() == (b'{"id":"p","result":"pong","error":null}\n'
                                      b'{"id":7,"result":"pyminer/test","error":null}\n')


# ------------------------------------------------------------------------------------ time
def test_silent_pool_times_out_on_the_handshake():
    session = new_session()
    session.connection_made(100.0)
    assert session.deadline() == (102.0, "no reply to subscribe/authorize within 2 s")
    session.receive_data(CONFIGURED + SUBSCRIBED, 101.0)
    assert session.deadline() == (102.0, "no reply to subscribe/authorize within 2 s")


def test_pool_that_stops_sending_work_or_anything_times_out():
    session = ss.StratumSession(PoolConfig("pool.example.com:3333", "worker.1"), "pool0",
                                Timeouts(silence=30, work=1.5), AGENT)
    session.connection_made(0.0)
    session.receive_data(CONFIGURED + SUBSCRIBED + AUTHORIZED + notify("1"), 10.0)
    assert session.deadline() == (11.5, "no new work for 1.5 s")
    session.receive_data(b'{"id":null,"method":"client.show_message","params":["hi"]}\n', 11.0)
    assert session.deadline() == (11.5, "no new work for 1.5 s")  # data, but no job
    session.receive_data(notify("2", clean=False), 11.4)
    assert session.deadline() == (12.9, "no new work for 1.5 s")
    quiet = ss.StratumSession(PoolConfig("pool.example.com:3333", "worker.1"), "pool0",
                              Timeouts(silence=30, work=60), AGENT)
    quiet.connection_made(0.0)
    quiet.receive_data(CONFIGURED + SUBSCRIBED + AUTHORIZED + notify("1"), 10.0)
    quiet.receive_data(b'{"id":null,"method":"client.show_message","params":["hi"]}\n', 20.0)
    assert quiet.deadline() == (50.0, "nothing from the pool for 30 s")


# ------------------------------------------------------------------------------------ properties
POOL_LINES = [
    CONFIGURED, SUBSCRIBED, AUTHORIZED, set_difficulty(0.002), set_difficulty(1e-9), notify("1"),
    notify("2", clean=False), notify("3", prevhash=PREV2), notify("4", version="30000003"),
    reply(4), reply(5, "null", '[23,"Low difficulty share",null]'), reply(6, "false", "null"),
    b'{"id":null,"method":"mining.set_extranonce","params":["cafe0001",3]}\n',
    b'{"id":null,"method":"mining.set_version_mask","params":["00006000"]}\n',
    b'{"id":null,"method":"client.reconnect","params":["pool.example.com",3334,5]}\n',
    b'{"id":null,"method":"client.reconnect","params":["evil.example.net",3333,0]}\n',
    b'{"id":null,"method":"client.show_message","params":["hello"]}\n',
    b'{"id":1,"method":"mining.ping","params":[]}\n', b'{"id":null,"result":true,"error":null}\n',
    b'{"id":3,"result":false,"error":[24,"Unauthorized worker",null]}\n', b"not json\n", b"[1,2]\n", b"\n",
    b'{"id":null,"method":"mining.notify","params":["j1","00"]}\n', b'{"id":99,"result":true,"error":null}\n',
]
lines = st.lists(st.one_of(st.sampled_from(POOL_LINES), st.binary(max_size=40).map(lambda b: b + b"\n")),
                 max_size=25)


def run(session: ss.StratumSession, chunks: list[bytes]) -> tuple[list[str], bytes]:
    """Feed chunks (all at now = 0); (repr of every event, every byte sent)."""
    out: list[str] = []
    sent = bytearray(session.data_to_send())
    for chunk in chunks:
        out.extend(repr(e) for e in session.receive_data(chunk, 0.0))
        sent += session.data_to_send()
    return out, bytes(sent)


@settings(max_examples=60, deadline=None)
@given(lines)
def test_any_sequence_of_pool_lines_never_raises(sequence):
    session = new_session(xnsub=True)
    for attempt in range(2):  # and again after a reconnect, with whatever state the first left
        session.connection_made(float(attempt))
        sent = bytearray()
        for n, line in enumerate(sequence):
            events = session.receive_data(line, 0.0)
            ending = [i for i, e in enumerate(events) if isinstance(e, ss.Redirected | ss.SessionFailed)]
            assert ending in ([], [len(events) - 1])  # an ending event comes last, and once
            if ending:
                assert not session.connected and session.receive_data(notify("x"), 0.0) == []
            if session.current_job is not None:
                events += session.offer(share(session.current_job, n), 0.0)
            sent += session.data_to_send()
            assert all(isinstance(e, ss.SessionEvent) for e in events)
            assert len(session.live_jobs) <= ss.MAX_LIVE_JOBS and len(session.held) <= ss.MAX_HELD_SHARES
            for job in jobs(events):
                assert job.source == "pool0" and job.share_target > 0
        # what went to the pool is always well-formed JSON lines, whatever came from it
        assert all(isinstance(json.loads(line), dict) for line in bytes(sent).splitlines())
        session.connection_lost()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(POOL_LINES), max_size=20), st.randoms(use_true_random=False))
def test_bytes_split_anywhere_give_the_same_outputs(sequence, rng):
    data = b"".join(sequence)
    whole = new_session()
    whole.connection_made(0.0)
    expected = run(whole, [data])
    cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, rng.randint(0, 6))))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    split = new_session()
    split.connection_made(0.0)
    events, sent = run(split, pieces)
    assert (events, sent) == expected  # the same events and the same bytes back


# ------------------------------------------------------------------------------------ the connection's side
async def test_the_connection_counts_what_the_session_decides_without_a_socket():
    pool = PoolConnection(PoolConfig("stratum+tcp://pool.example.com:3333", "worker.1"), "pool0",
                          on_job=lambda pool, job: None, on_state=lambda pool: None, timeouts=TIMEOUTS)
    _, job = mining()  # a job this pool never announced: its shares are stale
    await pool.submit(share(job, 1))
    assert pool.stats.stale == 1 and pool.held == [] and pool.sessions == 0
    assert pool.host == "pool.example.com:3333" and not pool.alive


# ------------------------------------------------------------------------------------ urls, backoff
def test_pool_urls():
    u = parse_pool_url("stratum+ssl://pool.example:4333#xnsub")
    assert (u.host, u.port, u.tls, u.xnsub) == ("pool.example", 4333, True, True)
    assert parse_pool_url("pool.example:3333").tls is False
    for scheme in ("stratum+tls", "stratum+tcps"):
        assert parse_pool_url(f"{scheme}://h:1").tls
    for bad in ("http://h:1", "stratum+tcp://h", "stratum+tcp://:3333"):
        with pytest.raises(ValueError, match="pool url"):
            parse_pool_url(bad)


def test_same_domain_rule():
    assert same_domain("stratum.pool.example.com", "eu.pool.example.com")
    assert same_domain("localhost", "localhost")
    assert not same_domain("evil.example.net", "pool.example.com")


def test_backoff_is_capped_and_jittered():
    rng = random.Random(1)
    delays = [backoff_delay(n, 1.0, 60.0, rng) for n in range(1, 12)]
    assert all(0.5 <= d <= 1.0 for d in delays[:1])
    assert all(d <= 60.0 for d in delays) and max(delays) >= 30.0
    assert len({round(d, 6) for d in delays[8:]}) == 3  # jitter: capped steps still differ


# ------------------------------------------------------------------------------------ version bits vs pool rules
CONFIGURED_BIP320 = CONFIGURED  # the pool grants 0x1fffe000 of the 0x1fffffe0 we ask for
REGTEST_VERSION = 0x30000003  # bcoin/Bitcoin Core regtest from height 144: bit 28 is inside the mask


def mining_version(version: int) -> tuple[ss.StratumSession, Job]:
    session = new_session()
    session.connection_made(0.0)
    session.data_to_send()
    events = session.receive_data(CONFIGURED_BIP320 + SUBSCRIBED + AUTHORIZED + set_difficulty(0.5)
                                  + notify("1", version=f"{version:08x}"), 0.0)
    return session, jobs(events)[0]


def test_only_bits_that_are_zero_in_the_job_version_are_rolled():
    session, job = mining_version(REGTEST_VERSION)
    assert session.version_mask == 0x1FFFE000
    assert job.version_mask == 0x0FFFE000  # bit 28 is the job's: never flipped, so every pool's rule agrees
    with pytest.raises(ValueError):
        job.make_work(1, b"\0\0\0\1", REGTEST_VERSION & ~0x10000000)


def test_a_job_version_without_bits_in_the_mask_sends_the_rolled_bits_whatever_the_rule():
    session, job = mining_version(0x20000000)
    rolled = share(job, 7, version=0x20006000)
    assert session.version_bits(rolled, "delta") == session.version_bits(rolled, "bits") == 0x6000
    assert not session.rule_matters(rolled)


def test_ambiguous_job_starts_with_the_delta_rule_that_ckpool_and_public_pool_follow():
    session, job = mining_version(REGTEST_VERSION)
    rolled = share(job, 7, version=REGTEST_VERSION | 0x6000)
    session.offer(rolled, 0.0)
    # ckpool: 0x30000003 | 0x6000; public-pool: 0x30000003 ^ 0x6000: both the header we hashed
    assert session.data_to_send() == submit_line(4, "1", "00000001", 7, "00006000")
    assert kinds(session.receive_data(reply(4), 0.1)) == ["ShareAnswered"]
    # confirmed: a later over-target reject does not switch the rule
    other = share(job, 8, version=REGTEST_VERSION | 0x2000)
    session.offer(other, 0.2)
    session.data_to_send()
    events = session.receive_data(reply(5, "null", '[23,"Low difficulty share",null]'), 0.3)
    assert kinds(events) == ["ShareAnswered"] and session.version_rule == "delta"


def test_a_bip310_pool_rejecting_as_over_target_switches_the_rule_and_gets_the_share_again():
    session, job = mining_version(REGTEST_VERSION)
    rolled = share(job, 7, version=REGTEST_VERSION | 0x6000)
    session.offer(rolled, 0.0)
    assert session.data_to_send() == submit_line(4, "1", "00000001", 7, "00006000")
    # a BIP310 pool rebuilt (job & ~mask) | bits = 0x20006003: another header, "Above target" (ckpool's words)
    events = session.receive_data(reply(4, "null", '[23,"Above target",null]'), 0.1)
    assert events == [ss.ShareAnswered(rolled, False, "Above target", 23, pytest.approx(0.1)),
                      ss.ShareSent(rolled, 5)]
    assert session.version_rule == "bits"
    # the same share again, with the header's bits inside the mask (bit 28 included)
    assert session.data_to_send() == submit_line(5, "1", "00000001", 7, "10006000")
    assert kinds(session.receive_data(reply(5), 0.2)) == ["ShareAnswered"]
    # unrolled shares of the job carry its own in-mask bits under this rule
    plain = share(job, 9)
    session.offer(plain, 0.3)
    assert session.data_to_send() == submit_line(6, "1", "00000001", 9, "10000000")


def test_other_rejects_do_not_switch_the_rule():
    session, job = mining_version(REGTEST_VERSION)
    rolled = share(job, 7, version=REGTEST_VERSION | 0x6000)
    session.offer(rolled, 0.0)
    session.data_to_send()
    assert kinds(session.receive_data(reply(4, "null", '[21,"Job not found",null]'), 0.1)) == ["ShareAnswered"]
    assert session.version_rule == "delta" and session.data_to_send() == b""


# ------------------------------------------------------------------------------------ difficulty enforced at once
def shares_by_difficulty(job: Job, low: float, high: float) -> tuple[CheckedNonce, CheckedNonce]:
    """A share meeting `low` but not `high`, and one meeting `high` (found by hashing a few thousand nonces)."""
    between = above = None
    for nonce in range(1, 2_000_000):
        found = share(job, nonce)
        if found.difficulty >= high and above is None:
            above = found
        elif low <= found.difficulty < high and between is None:
            between = found
        if between is not None and above is not None:
            return between, above
    raise AssertionError("no shares found")


def test_after_a_higher_set_difficulty_only_shares_meeting_both_are_sent_until_the_next_job():
    session = new_session()
    session.connection_made(0.0)
    session.data_to_send()
    events = session.receive_data(CONFIGURED + SUBSCRIBED + AUTHORIZED + set_difficulty(1e-7) + notify("1"), 0.0)
    job = jobs(events)[0]
    between, above = shares_by_difficulty(job, 1e-7, 1e-6)
    # e.g. the answer to --suggest-diff: a pool that enforces it at once would reject `between`
    assert session.receive_data(set_difficulty(1e-6), 0.1) == []
    assert session.offer(between, 0.2) == [ss.ShareTooEasy(between)]
    assert session.offer(above, 0.2) == [ss.ShareSent(above, 4)]
    stats = ShareStats()
    ss.tally(stats, ss.ShareTooEasy(between))
    assert stats.stale == 1
    # a lower difficulty asks nothing more of the job's shares
    session.receive_data(set_difficulty(1e-7), 0.3)
    assert kinds(session.offer(between, 0.4)) == ["ShareSent"]


def test_the_next_job_carries_the_new_difficulty_and_the_extra_check_ends():
    session = new_session()
    session.connection_made(0.0)
    session.data_to_send()
    session.receive_data(CONFIGURED + SUBSCRIBED + AUTHORIZED + set_difficulty(1e-7) + notify("1"), 0.0)
    session.receive_data(set_difficulty(1e-6), 0.1)
    second = jobs(session.receive_data(notify("2", clean=False), 0.2))[0]
    assert second.share_target == difficulty_to_target(1e-6)
    assert session.offer(share(second, 1), 0.3)[0].__class__ is ss.ShareSent  # the job's own target rules now


def test_show_message_is_shown_at_the_default_level(caplog):
    session, _ = mining()
    caplog.set_level(logging.WARNING)
    session.receive_data(b'{"id":null,"method":"client.show_message","params":["Authorised, welcome!"]}\n', 0.0)
    assert "pool0 says: Authorised, welcome!" in caplog.text


# ------------------------------------------------------------------------------------ credentials, backoff, tls
def test_credentials_in_the_url_stand_in_for_user_and_password():
    url = parse_pool_url("stratum+tcp://bc1qworker.rig1:s%40cret@pool.example.com:3333")
    assert (url.host, url.port, url.user, url.password) == ("pool.example.com", 3333, "bc1qworker.rig1", "s@cret")
    assert "s@cret" not in str(url) and "s%40cret" not in str(url)
    config = PoolConfig("stratum+tcp://bc1qworker.rig1:s%40cret@pool.example.com:3333", "")
    assert (config.user, config.password) == ("bc1qworker.rig1", "s@cret")
    session = ss.StratumSession(config, "pool0", TIMEOUTS, AGENT)
    session.connection_made(0.0)
    assert b'"mining.authorize","params":["bc1qworker.rig1","s@cret"]' in session.data_to_send()
    # a user given on its own (-u/-p) wins
    given = PoolConfig("stratum+tcp://a:b@pool.example.com:3333", "other", "pw")
    assert (given.user, given.password) == ("other", "pw")
    assert parse_pool_url("pool.example.com:3333").user is None


def test_a_dead_pool_is_probed_at_least_every_10_seconds():
    rng = random.Random(3)
    assert Timeouts().backoff_cap == 10.0
    assert max(backoff_delay(n, Timeouts().backoff_base, Timeouts().backoff_cap, rng) for n in range(1, 30)) <= 10.0


def test_a_missing_tls_ca_file_is_one_line_once_and_no_retries(caplog, tmp_path):
    import asyncio

    async def main() -> PoolConnection:
        config = PoolConfig("stratum+ssl://127.0.0.1:1", "w", ca_file=str(tmp_path / "missing.pem"))
        pool = PoolConnection(config, "pool0", lambda p, j: None, lambda p: None, TIMEOUTS, AGENT)
        pool.start()
        await asyncio.wait_for(pool.wait_ended(), 2.0)  # it ends by itself: nothing to retry
        return pool
    caplog.set_level(logging.WARNING)
    pool = asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if "missing.pem" in r.getMessage()]
    assert len(lines) == 1 and "not found" in lines[0]
    assert pool.sessions == 0 and "missing.pem" in pool.last_error


def test_a_share_refused_under_both_rules_is_sent_again_only_once():
    session, job = mining_version(REGTEST_VERSION)
    rolled = share(job, 7, version=REGTEST_VERSION | 0x6000)
    session.offer(rolled, 0.0)
    session.data_to_send()
    events = session.receive_data(reply(4, "null", '[23,"Low difficulty share",null]'), 0.1)
    assert kinds(events) == ["ShareAnswered", "ShareSent"] and session.version_rule == "bits"
    session.data_to_send()
    # refused again: the share was bad under both readings; no third try, and the first rule stays
    events = session.receive_data(reply(5, "null", '[23,"Low difficulty share",null]'), 0.2)
    assert kinds(events) == ["ShareAnswered"] and session.version_rule == "delta"
    assert session.data_to_send() == b""


def test_answers_are_logged_one_a_second_at_most(caplog):
    caplog.set_level(logging.INFO)
    session, job = mining()
    for n in range(5):  # five answers within 0.4 s: one line
        session.offer(share(job, n + 1), n * 0.1)
        session.receive_data(reply(4 + n), n * 0.1)
    session.offer(share(job, 99), 1.5)
    session.receive_data(reply(9), 1.5)
    lines = [r.getMessage() for r in caplog.records if "accepted" in r.getMessage()]
    assert len(lines) == 2 and lines[1].endswith("(and 4 more like it in the last 1 s)")


def test_expiry_counts_a_share_on_an_old_job_stale_and_sends_nothing():
    # cgminer --expiry (cgminer.c stale_work): a share found on work older than opt_expiry is stale
    session, job = mining(now=0.0, expiry=120.0)
    fresh = share(job, 7)
    assert kinds(session.offer(fresh, 119.0)) == ["ShareSent"]
    session.data_to_send()
    old = share(job, 8)
    assert kinds(session.offer(old, 121.0)) == ["ShareStale"]
    assert session.data_to_send() == b""
    # without --expiry only the pool ends a job
    session, job = mining(now=0.0)
    assert kinds(session.offer(share(job, 8), 10_000.0)) == ["ShareSent"]
