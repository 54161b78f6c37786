"""A hostile pool, line by line (issue 14, faults 1-6): what a single bad input from a pool does to
the session, the codec, the connection task and the share path. In-process and fast: the session is
sans-I/O, so every case is a transcript with its own `now`."""

import asyncio
import contextlib
import logging
from dataclasses import replace

import pytest

from miner.core.dispatch import Dispatcher
from miner.core.engine import Miner
from miner.core.shares import CheckedNonce
from miner.core.stats import ShareStats
from miner.core.work import Job, Nonce
from miner.sources.stratum import protocol as sp
from miner.sources.stratum import session as ss
from miner.sources.stratum.connection import PoolConnection, PoolState, redact_line
from miner.sources.stratum.url import PoolConfig, Timeouts, same_domain
from tests.unit.test_stratum_session import (
    AUTHORIZED,
    CONFIGURED,
    HANDSHAKE,
    SUBSCRIBED,
    kinds,
    mining,
    new_session,
    notify,
    share,
)


def failed(events: list[ss.SessionEvent]) -> str:
    reasons = [e.reason for e in events if isinstance(e, ss.SessionFailed)]
    assert len(reasons) == 1, kinds(events)
    return reasons[0]


# ------------------------------------------------------------------------------------ 1: difficulty
@pytest.mark.parametrize("value", [b"1" + b"0" * 400, b'"1e9999"', b"1e400"])
def test_a_difficulty_too_large_for_any_hash_is_one_line_not_a_dead_task(value):
    session, _ = mining()
    line = b'{"id":null,"method":"mining.set_difficulty","params":[' + value + b"]}\n"
    events = session.receive_data(line, 1.0)  # raised OverflowError before (float() of 10**400)
    assert "difficulty" in failed(events)
    assert not session.connected and session.difficulty == sp.Fraction(1, 2)


def test_the_largest_difficulty_that_still_has_a_target_is_taken():
    assert sp.parse_difficulty(sp.MAX_DIFFICULTY) == sp.MAX_DIFFICULTY
    with pytest.raises(sp._Bad):  # noqa: SLF001 - the codec's own validation error, tested at its edge
        sp.parse_difficulty(sp.MAX_DIFFICULTY + 1)


# ------------------------------------------------------------------------------------ 2: nbits at the edge
@pytest.mark.parametrize("nbits, why", [("00800000", "sign bit"), ("ffffffff", "out of range"),
                                        ("1d000000", "zero"), ("01003456", "zero")])
def test_a_job_whose_nbits_decode_to_no_target_is_refused(nbits, why):
    session, _ = mining()
    line = notify("2").replace(b'"1d00ffff"', f'"{nbits}"'.encode())
    events = session.receive_data(line, 1.0)
    reason = failed(events)
    assert nbits in reason and why in reason and "PublishJob" not in kinds(events)


def test_real_nbits_pass():
    for nbits in (0x1D00FFFF, 0x17034219, 0x207FFFFF, 0x03123456):
        assert sp.check_nbits(nbits) == nbits


class Recorder:
    """A job source that keeps what the share path submits (and raises for one job id)."""

    name = "recorder"

    def __init__(self) -> None:
        self.stats = ShareStats()
        self.submitted: list[CheckedNonce] = []
        self.fail_job: str | None = None

    def bind(self, on_job, on_result) -> None:
        self.on_job = on_job

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, share: CheckedNonce) -> None:
        if share.work.job.job_id == self.fail_job:
            raise RuntimeError("boom in submit")
        self.submitted.append(share)

    def status(self, rate_of) -> str:
        return ""


def easy_job(job_id: str, nbits: int = 0x1D00FFFF) -> Job:
    return Job(job_id, bytes(32), b"\x01" * 40, b"\x02" * 30, (), 0x20000000, nbits, 0x5F5E1000, clean=True,
               extranonce1=b"\0\0\0\1", share_target=(1 << 256) - 1, source="recorder")


async def test_the_share_path_outlives_a_bad_job_and_an_exception_in_submit(caplog):
    source = Recorder()
    dispatcher = Dispatcher()
    miner = Miner(source, [], dispatcher, status_interval=0)
    bad = dispatcher.register_work(easy_job("bad", nbits=0xFFFFFFFF), b"\0\0\0\1")  # past the codec's check
    failing = dispatcher.register_work(easy_job("fails"), b"\0\0\0\2")
    good = dispatcher.register_work(easy_job("good"), b"\0\0\0\3")
    source.fail_job = "fails"
    run = asyncio.create_task(miner.run())
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING):
        for work in (bad, bad, failing, good):
            miner.on_nonce(Nonce(work.work_id, 5, device="cpu0"))
        async with asyncio.timeout(10):
            while not source.submitted:
                await asyncio.sleep(0.01)
    miner.request_stop()
    await run  # the share path did not die: run ends cleanly
    assert [s.work.job.job_id for s in source.submitted] == ["good"]
    assert miner.share_path_faults == 3
    tracebacks = [r for r in caplog.records if r.exc_info and "share path error" in r.getMessage()]
    assert len(tracebacks) == 2  # once per kind of fault: the bad job's error and the submit's RuntimeError


# ------------------------------------------------------------------------------------ 3: deep JSON
DEEP = b'{"id":null,"method":"mining.notify","params":' + b"[" * 30000 + b"]" * 30000 + b"}"


def test_a_30000_deep_line_is_refused_by_the_codec_and_the_protocol_log():
    events = sp.StratumProtocol("agent").receive_data(DEEP + b"\n")
    assert len(events) == 1 and isinstance(events[0], sp.ProtocolError)
    assert f"deeper than {sp.MAX_DEPTH}" in events[0].message
    assert redact_line(DEEP, "secret").startswith('{"id":null')  # raised RecursionError before


def test_nesting_depth_ignores_brackets_in_strings():
    assert sp.nesting_depth(b'["' + b"[" * 100 + b'"]') == 1
    assert sp.nesting_depth(b'["\\"' + b"[" * 100 + b'"]') == 1
    assert sp.nesting_depth(b"[" * 40 + b"]" * 40) == 40
    assert sp.decode_json(b'{"a":["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]}') == {"a": ["[" * 38]}


# ------------------------------------------------------------------------------------ 4: same domain
def test_reconnect_same_domain_by_public_suffix_and_exact_addresses():
    assert same_domain("stratum.pool.example.com", "eu.pool.example.com")
    assert same_domain("eu.example.co.uk", "pool.example.co.uk")
    assert not same_domain("evil.co.uk", "pool.example.co.uk")
    assert not same_domain("evil.github.io", "pool.github.io")  # a public suffix run by a company
    assert not same_domain("co.uk", "pool.co.uk")
    assert not same_domain("127.1.0.1", "127.0.0.1")
    assert not same_domain("192.168.0.1", "10.0.0.1")
    assert same_domain("127.0.0.1", "127.0.0.1")
    assert not same_domain("::2", "::1")
    assert same_domain("[::1]", "0:0::1")
    assert not same_domain("10.0.0.1", "pool.example.com")
    assert same_domain("localhost", "localhost") and not same_domain("localhost", "otherhost")


def test_client_reconnect_from_an_address_to_a_neighbour_is_refused():
    session = ss.StratumSession(PoolConfig("stratum+tcp://127.0.0.1:3333", "worker.1"), "pool0",
                                Timeouts(reply=2), "pyminer/test")
    session.connection_made(0.0)
    session.data_to_send()
    session.receive_data(CONFIGURED + SUBSCRIBED + AUTHORIZED + notify("1"), 0.0)
    events = session.receive_data(b'{"id":null,"method":"client.reconnect","params":["127.1.0.1",3333,0]}\n', 1.0)
    assert events == [] and session.connected and session.target == ("127.0.0.1", 3333)


# ------------------------------------------------------------------------------------ 5: subscribe
def test_no_alive_and_no_submits_without_a_subscribe_answer():
    session = new_session()
    session.connection_made(0.0)
    assert session.data_to_send() == HANDSHAKE
    events = session.receive_data(CONFIGURED + AUTHORIZED + notify("1"), 0.5)
    assert kinds(events) == []  # mined with extranonce1 "" and extranonce2 size 0 before
    assert session.deadline() == (2.0, "no reply to subscribe/authorize within 2 s")
    # the subscribe answer comes late: the notify held back is built with its extranonce1
    events = session.receive_data(SUBSCRIBED, 1.0)
    assert kinds(events) == ["PublishJob", "PoolAlive"]
    assert events[0].job.extranonce1 == bytes.fromhex("08000002") and events[0].job.extranonce2_size == 4


@pytest.mark.parametrize("size", [0, 17, 32])
def test_extranonce2_sizes_no_pool_sends_are_refused(size):
    session = new_session()
    session.connection_made(0.0)
    subscribed = SUBSCRIBED.replace(b'"08000002",4]', f'"08000002",{size}]'.encode())
    assert "extranonce2_size must be an integer 1..16" in failed(session.receive_data(CONFIGURED + subscribed, 0.1))
    session, _ = mining()
    line = f'{{"id":null,"method":"mining.set_extranonce","params":["01020304",{size}]}}\n'.encode()
    assert "extranonce2_size" in failed(session.receive_data(line, 1.0))


# ------------------------------------------------------------------------------------ 6: stalls
def test_a_trickling_pool_must_finish_a_line_within_the_line_deadline():
    session, _ = mining(now=0.0)
    line = notify("2")
    for second, byte in enumerate(line[:20], start=1):  # 1 byte/s kept the silence timer happy before
        session.receive_data(bytes([byte]), float(second))
    assert session.deadline() == (6.0, "a line from the pool took over 5 s")
    session.receive_data(line[20:], 5.5)  # the line completes in time: no deadline from it any more
    assert session.deadline()[1].startswith("nothing from the pool")


def test_a_frozen_pool_with_a_submit_out_is_dead_after_the_answer_deadline():
    session, job = mining(now=0.0)
    session.offer(share(job, 1), 10.0)
    assert session.deadline() == (15.0, "the pool went silent for 5 s with 1 submit(s) unanswered")
    session.receive_data(b'{"id":4,"result":true,"error":null}\n', 11.0)
    assert session.deadline()[1].startswith("nothing from the pool")


def test_a_pool_that_sends_jobs_but_never_answers_submits_is_dead():
    session, job = mining(now=0.0)
    for n in range(3):
        session.offer(share(job, n), 10.0 + n)
        session.receive_data(notify(f"j{n}", clean=False), 10.5 + n)  # jobs keep coming
    assert session.deadline() == (17.0, "3 submits unanswered for over 5 s")


def test_a_client_reconnect_wait_is_capped():
    session, _ = mining()
    events = session.receive_data(b'{"id":null,"method":"client.reconnect","params":["",4444,3600]}\n', 1.0)
    assert events == [ss.Redirected("pool.example.com", 4444, sp.MAX_RECONNECT_WAIT)]
    assert sp.MAX_RECONNECT_WAIT == 60.0


# ------------------------------------------------------------------------------------ supervision
async def test_an_unexpected_error_in_the_pool_task_is_logged_once_and_the_pool_reconnects(caplog, monkeypatch):
    answers = asyncio.Queue()

    async def pool(reader, writer):
        await reader.readline()
        writer.write(b"anything\n")
        await writer.drain()
        await answers.put(1)
        with contextlib.suppress(asyncio.CancelledError):  # the server closing at the end of the test
            await reader.read()
        writer.close()

    server = await asyncio.start_server(pool, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    states: list[PoolState] = []
    connection = PoolConnection(PoolConfig(f"stratum+tcp://127.0.0.1:{port}", "w"), "pool0",
                                on_job=lambda p, j: None, on_state=lambda p: states.append(p.state),
                                timeouts=Timeouts(connect=2, reply=5, backoff_base=0.05, backoff_cap=0.1))

    def broken(data, now):
        raise KeyError("a bug")
    monkeypatch.setattr(connection.session, "receive_data", broken)
    with caplog.at_level(logging.WARNING):
        connection.start()
        async with asyncio.timeout(10):
            for _ in range(3):  # it keeps reconnecting: the task is alive
                await answers.get()
        await connection.stop(answer_wait=0)
    server.close()
    await server.wait_closed()
    assert connection.last_error == "internal error: KeyError: 'a bug'"
    assert states.count(PoolState.DISCONNECTED) >= 2 and connection.state is PoolState.DISCONNECTED
    assert len([r for r in caplog.records if r.exc_info]) == 1  # the traceback once, not per reconnect


def test_alive_needs_subscribe_even_when_the_pool_orders_replies_oddly():
    session = new_session()
    session.connection_made(0.0)
    session.data_to_send()
    events = session.receive_data(CONFIGURED + AUTHORIZED, 0.1)
    events += session.receive_data(notify("1"), 0.2)
    events += session.receive_data(SUBSCRIBED, 0.3)
    assert kinds(events) == ["PublishJob", "PoolAlive"]
    job = events[0].job
    assert replace(job, clean=True) == job
