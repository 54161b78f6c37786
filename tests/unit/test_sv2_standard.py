"""Stratum V2 standard channels and extension negotiation (docs/sv2.md §8, §9): the dispatcher's
per-device standard jobs (fixed merkle root, no extranonce), the session's transcripts with a pool
that has only standard channels, and RequestExtensions answered, refused or ignored."""

import logging
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miner.core.dispatch import Dispatcher
from miner.core.shares import check_nonce
from miner.core.work import Job, Nonce
from miner.sources.stratum import session as ss
from miner.sources.sv2 import codec as c
from miner.sources.sv2.session import EXTENSIONS_WAIT, refuses_extended
from tests.unit.test_sv2 import EASIEST, Pool, make_session

ROOT_A = bytes(range(32))
ROOT_B = bytes(range(1, 33))


def standard_job(device: str, root: bytes = ROOT_A, mask: int = 0x1FFFE000, job_id: str = "5", **fields) -> Job:
    return Job(job_id=job_id, prevhash=b"\x22" * 32, coinb1=b"", coinb2=b"", merkle_branch=(), version=0x20000000,
               nbits=0x1D00FFFF, ntime=1700000000, extranonce2_size=0, version_mask=mask, source="pool0",
               fixed_merkle_root=root, device=device, **fields)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------------ dispatcher
def test_a_device_job_goes_to_its_device_only_and_a_shared_job_ends_them_all():
    d = Dispatcher()
    heard: list[tuple[str, bool]] = []
    d.add_listener(lambda job, restart: heard.append((job.device, restart)))
    d.set_job(standard_job("cpu0"))
    d.set_job(standard_job("cpu1", ROOT_B))
    assert heard == [("cpu0", True), ("cpu1", True)]
    a, b = d.next_work(device="cpu0"), d.next_work(device="cpu1")
    assert a is not None and b is not None
    assert (a.job.device, a.merkle_root, b.job.device, b.merkle_root) == ("cpu0", ROOT_A, "cpu1", ROOT_B)
    assert a.extranonce2 == b"" and a.header[36:68] == ROOT_A
    assert d.next_work(device="usb0") is None  # no job of its own and no shared one: nothing to hash
    assert d.job_for("cpu1") is d.device_jobs["cpu1"]
    assert d.job is None and d.shown_job in (d.device_jobs["cpu0"], d.device_jobs["cpu1"])
    shared = Job("9", b"\x01" * 32, b"cb1", b"cb2", (), 0x20000000, 0x1D00FFFF, 1700000000, source="pool1")
    d.set_job(shared)
    assert d.device_jobs == {} and d.next_work(device="cpu0").job is shared and heard[-1] == ("", True)
    assert d.shown_job is shared


DEVICES = ("cpu0", "cpu1", "usb0")


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(("own", "shared", "work")), st.sampled_from(DEVICES)), max_size=40))
def test_routing_a_device_mines_its_own_job_else_the_shared_one_and_never_anothers(steps):
    d = Dispatcher()
    own: dict[str, Job] = {}
    shared: Job | None = None
    headers: set[bytes] = set()
    for n, (what, device) in enumerate(steps):
        if what == "own":
            own[device] = standard_job(device, root=bytes([DEVICES.index(device)]) * 32, job_id=str(n))
            d.set_job(own[device])
        elif what == "shared":
            shared = Job(str(n), bytes([n]) * 32, b"cb1", b"cb2", (), 0x20000000, 0x1D00FFFF, 1700000000,
                         source="pool1")
            own.clear()
            d.set_job(shared)
        else:
            work = d.next_work(device=device)
            expected = own.get(device, shared)
            assert (work.job if work is not None else None) is expected and d.job_for(device) is expected
            if work is not None:
                assert work.job.device in ("", device)  # never another device's job
                assert work.header not in headers
                headers.add(work.header)


def test_the_engine_tells_only_the_jobs_device():
    from miner.core.engine import Miner

    class Dev:
        def __init__(self, name):
            self.name, self.calls = name, []

        def restart_work(self):
            self.calls.append("restart")

        def work_available(self):
            self.calls.append("more")

    class Source:
        def bind(self, on_job, on_result):
            self.on_job = on_job

    devices = [Dev("cpu0"), Dev("cpu1")]
    d = Dispatcher()
    source = Source()
    Miner(source, devices, d, status_interval=0)  # type: ignore[arg-type]
    source.on_job(standard_job("cpu1"))
    source.on_job(standard_job("cpu1", job_id="6"))  # not clean, same source: more work, no restart
    assert devices[0].calls == [] and devices[1].calls == ["restart", "more"]


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(0, 16), units=st.integers(1, 400), rolls_itself=st.booleans(), step=st.floats(0, 3))
def test_a_standard_job_never_repeats_a_header_and_ntime_never_runs_ahead_of_the_clock(bits, units, rolls_itself,
                                                                                        step):
    mask = 0
    for i in range(bits):
        mask |= 1 << (13 + i)  # inside BIP320's 0x1fffe000
    clock = Clock()
    d = Dispatcher()
    d.clock = clock
    job = standard_job("cpu0", mask=mask)
    d.set_job(job)
    started = clock.now
    headers = set()
    for _ in range(units):
        work = d.next_work(device_rolls_version=rolls_itself, device="cpu0")
        if work is None:  # this second's space is used up: only the clock gives more
            clock.now += max(step, 0.5)
            continue
        assert work.header not in headers
        headers.add(work.header)
        assert 0 <= work.ntime - job.ntime <= clock.now - started  # §5.3.11
        assert not (work.version ^ job.version) & ~mask & 0xFFFFFFFF
        if rolls_itself:
            assert work.version == job.version  # the device rolls the bits itself: only ntime moves
        share = check_nonce(work, Nonce(work.work_id, 7), device_target=EASIEST)
        assert share.ntime == work.ntime and share.header[:76] == work.header[:76]
        clock.now += step
    assert headers


def test_a_shared_job_without_extranonce2_no_longer_repeats_after_sixteen_version_rolls():
    # the known gap: every unit of such a job had the same merkle root, and after VERSIONS_PER_ROOT
    # rolls the next "fresh" root was the same root at roll 0 again
    d = Dispatcher()
    d.clock = Clock()
    job = Job("7", b"\x01" * 32, b"cb1", b"cb2", (b"\x11" * 32,), 0x20000000, 0x1D00FFFF, 1700000000,
              extranonce2_size=0, version_mask=0x1FFFE000, source="pool1")
    d.set_job(job)
    works = [d.next_work(device=name) for _ in range(100) for name in ("cpu0", "usb0")]
    assert len({w.header for w in works}) == 200  # across both devices too: one space for the shared job
    assert {w.merkle_root for w in works} == {job.make_work(0, b"").merkle_root}


def test_a_new_job_for_the_device_starts_its_space_again_and_the_wait_is_logged_once(caplog):
    clock = Clock()
    d = Dispatcher()
    d.clock = clock
    d.set_job(standard_job("cpu0", mask=0))  # no version rolling: one unit per second of ntime
    first = d.next_work(device="cpu0")
    with caplog.at_level(logging.WARNING):
        assert d.next_work(device="cpu0") is None and d.next_work(device="cpu0") is None
    assert len([r for r in caplog.records if "waiting for the clock" in r.message]) == 1
    clock.now += 1.0
    second = d.next_work(device="cpu0")
    assert second.ntime == first.ntime + 1
    d.set_job(standard_job("cpu0", ROOT_B, mask=0, job_id="6"))
    assert d.next_work(device="cpu0").ntime == first.ntime


# ------------------------------------------------------------------------------------ session
def negotiate(pool: Pool, flags: int = 0) -> list:
    pool.send(c.SetupConnectionSuccess(2, flags))
    (ask,) = pool.read()
    pool.send(c.RequestExtensionsSuccess(ask.request_id, ()))
    return pool.read()


def standard_session(devices=("cpu0", "cpu1")):
    """A pool refusing the extended channel; the session reconnects asking for standard jobs."""
    session = make_session()
    session.set_devices(devices, 0.0)
    pool = Pool(session)
    (request,) = negotiate(pool)
    assert isinstance(request, c.OpenExtendedMiningChannel)
    events = pool.send(c.OpenMiningChannelError(request.request_id, "unsupported-extended-channels"))
    assert events == [ss.Redirected("pool.example", 34254, 0.0)] and session.standard_only
    session.connection_lost()
    pool = Pool(session, now=2.0)
    (setup,) = pool.received
    assert setup.flags == c.REQUIRES_STANDARD_JOBS  # §5.3.1: SRI's pool then sends each channel its jobs
    requests = negotiate(pool)
    assert [type(r) for r in requests] == [c.OpenStandardMiningChannel] * len(devices)
    assert len({r.request_id for r in requests}) == len(devices)  # one request id per channel
    for i, r in enumerate(requests):
        prefix = bytes([0xA0 + i]) * 12
        pool.send(c.OpenStandardMiningChannelSuccess(r.request_id, 20 + i, c.u256_from_target(EASIEST), prefix, 0))
    return session, pool


def activate_standard(pool: Pool, channel_id: int, root: bytes, job_id: int = 5) -> list:
    assert pool.send(c.NewMiningJob(channel_id, job_id, None, 0x20000000, root)) == []  # a future job
    return pool.send(c.SetNewPrevHash(channel_id, job_id, b"\x22" * 32, 1700000000, 0x1D00FFFF))


def test_standard_only_pool_gets_one_channel_per_device_and_jobs_for_each_device_alone():
    session, pool = standard_session()
    assert {ch.device: ch.channel_id for ch in session.standard.values()} == {"cpu0": 20, "cpu1": 21}
    a = activate_standard(pool, 20, ROOT_A)
    b = activate_standard(pool, 21, ROOT_B)
    assert [type(e) for e in a] == [ss.PublishJob, ss.PoolAlive] and [type(e) for e in b] == [ss.PublishJob]
    job_a, job_b = a[0].job, b[0].job
    assert (job_a.device, job_a.fixed_merkle_root, job_a.extranonce2_size, job_a.clean) == ("cpu0", ROOT_A, 0, True)
    assert (job_b.device, job_b.fixed_merkle_root, job_b.job_id) == ("cpu1", ROOT_B, "5")  # the same id, its own job
    assert job_a.version_mask == 0x1FFFE000
    # min_ntime set: mined at once on the channel's prev hash
    (now,) = pool.send(c.NewMiningJob(21, 6, 1700000003, 0x20000000, ROOT_A))
    assert now.job.device == "cpu1" and now.job.ntime == 1700000003 and not now.job.clean
    # SetTarget for one channel: that device's job again, with the exact (fractional) target
    (retarget,) = pool.send(c.SetTarget(21, c.u256_from_target((1 << 240) + 7)))
    assert retarget.job.device == "cpu1" and retarget.job.share_target == (1 << 240) + 7
    assert session.standard["cpu0"].target == EASIEST and session.difficulty == Fraction(0xFFFF << 208, (1 << 240) + 7)


def test_standard_shares_go_to_their_channel_and_batched_successes_count_per_channel():
    session, pool = standard_session()
    job_a = activate_standard(pool, 20, ROOT_A)[0].job
    job_b = activate_standard(pool, 21, ROOT_B)[0].job
    d = Dispatcher()
    d.set_job(job_a)
    d.set_job(job_b)
    shares = []
    for device in ("cpu0", "cpu1", "cpu0", "cpu1", "cpu0"):
        work = d.next_work(device=device)
        shares.append(check_nonce(work, Nonce(work.work_id, 0x99, device=device), device_target=EASIEST))
    sent = [session.offer(s, 3.0)[0] for s in shares]
    assert all(isinstance(e, ss.ShareSent) for e in sent)
    submits = pool.read()
    assert [(m.channel_id, m.sequence_number) for m in submits] == [(20, 1), (21, 1), (20, 2), (21, 2), (20, 3)]
    assert all(isinstance(m, c.SubmitSharesStandard) for m in submits)
    assert submits[2].version == shares[2].version != submits[0].version  # the next version roll
    events = pool.send(c.SubmitSharesSuccess(20, 2, 2, 2))  # channel 20's first two only
    assert [e.share for e in events] == [shares[0], shares[2]] and session.unanswered == 3
    events = pool.send(c.SubmitSharesError(21, 1, "difficulty-too-low"), c.SubmitSharesSuccess(21, 2, 1, 1),
                       c.SubmitSharesSuccess(20, 3, 1, 1))
    assert [(e.share, e.accepted) for e in events] == [(shares[1], False), (shares[3], True), (shares[4], True)]
    assert {ch.device: ch.accepted for ch in session.standard.values()} == {"cpu0": 3, "cpu1": 1}
    assert session.unanswered == 0 and session.batches == 3


def test_update_channel_reports_each_standard_channels_own_rate():
    session, pool = standard_session()  # channels opened at t=1.0
    job_a = activate_standard(pool, 20, ROOT_A)[0].job
    activate_standard(pool, 21, ROOT_B)
    d = Dispatcher()
    d.set_job(job_a)
    shares = []
    for _ in range(30):  # the easiest target: each share stands for 1 hash; 30 in 60 s is over the 25 % change
        work = d.next_work(device="cpu0")
        shares.append(check_nonce(work, Nonce(work.work_id, 1, device="cpu0"), device_target=EASIEST))
        session.offer(shares[-1], 10.0)
    pool.read()
    pool.send(c.SubmitSharesSuccess(20, 30, 30, 30))
    assert session.offer(shares[0], 30.0) == [ss.ShareDuplicate(shares[0])] and pool.read() == []  # < a minute
    session.offer(shares[0], 61.0)
    (update,) = pool.read()  # only cpu0's channel has a rate; cpu1's has none to report
    assert update.channel_id == 20
    assert update.nominal_hash_rate == pytest.approx(30 * job_a.share_difficulty * 2**32 / 60.0, rel=1e-6)


def test_a_hot_plugged_device_gets_its_own_channel_and_one_that_goes_is_closed():
    session, pool = standard_session()
    activate_standard(pool, 20, ROOT_A)
    job_b = activate_standard(pool, 21, ROOT_B)[0].job
    session.set_devices(("cpu0", "cpu1", "usb0"), 5.0)
    (request,) = pool.read()
    assert isinstance(request, c.OpenStandardMiningChannel)
    assert request.request_id not in {ch.request_id for ch in session.standard.values() if ch.device != "usb0"}
    pool.send(c.OpenStandardMiningChannelSuccess(request.request_id, 22, c.u256_from_target(EASIEST), b"\xcc" * 12, 0))
    (event, ) = activate_standard(pool, 22, ROOT_B, job_id=9)
    assert event.job.device == "usb0"
    session.set_devices(("cpu0", "usb0"), 6.0)
    assert pool.read() == [c.CloseChannel(21, "device-removed")]
    share = check_nonce(job_b.make_work(1, b""), Nonce(1, 5, device="cpu1"), device_target=EASIEST)
    assert session.offer(share, 7.0) == [ss.ShareStale(share)]  # its channel is gone
    assert sorted(session.standard) == ["cpu0", "usb0"]


def test_other_channel_errors_and_a_refused_standard_channel():
    assert refuses_extended("unsupported-extended-channels") and not refuses_extended("unknown-user")
    session = make_session()
    pool = Pool(session)
    (request,) = negotiate(pool)
    (failed,) = pool.send(c.OpenMiningChannelError(request.request_id, "unknown-user"))
    assert isinstance(failed, ss.SessionFailed) and "unknown-user" in failed.reason and not session.standard_only
    session, pool = standard_session(("cpu0",))
    (ch,) = session.standard.values()
    # the pool closes the channel: the device has none; a refused request for a new device is one line
    pool.send(c.CloseChannel(20, "bye"))
    assert session.standard == {} and session.connected


# ------------------------------------------------------------------------------------ extensions
def test_request_extensions_frame_vector():
    # extension_type 0x0001, channel bit 0, msg_type 0x00, 4 bytes: request_id 1, an empty SEQ0_64K[U16]
    assert c.encode_frame(c.RequestExtensions(1, ())).hex() == "010000040000" + "0100" + "0000"
    frame = c.encode_frame(c.RequestExtensionsError(7, (2, 3), (5,)))
    assert frame.hex() == "0100020c0000" + "0700" + "0200" + "0200" + "0300" + "0100" + "0500"
    assert c.decode_frame(frame) == c.RequestExtensionsError(7, (2, 3), (5,))
    assert c.decode_frame(bytes.fromhex("0100010600000200010001 00".replace(" ", ""))) == \
        c.RequestExtensionsSuccess(2, (1,))


def test_request_extensions_comes_first_and_an_error_is_one_info_line(caplog):
    session = make_session()
    pool = Pool(session)
    pool.send(c.SetupConnectionSuccess(2, 0))
    (ask,) = pool.read()
    assert ask == c.RequestExtensions(ask.request_id, ())  # and nothing else until the answer (§4.2)
    assert pool.send(c.RequestExtensionsSuccess(ask.request_id + 1, ())) == [] and pool.read() == []  # not ours
    with caplog.at_level(logging.INFO, logger="miner.sources.sv2.session"):
        pool.send(c.RequestExtensionsError(ask.request_id, (), (0x0003,)))
    (request,) = pool.read()
    assert isinstance(request, c.OpenExtendedMiningChannel)
    lines = [r.message for r in caplog.records if r.name == "miner.sources.sv2.session" and "extensions" in r.message]
    assert len(lines) == 1 and "0x0003" in lines[0] and "going on without" in lines[0]


def test_a_pool_that_never_answers_request_extensions_does_not_block_mining():
    session = make_session()
    pool = Pool(session)
    pool.send(c.SetupConnectionSuccess(2, 0), now=1.0)
    pool.read()
    # the channel's reply time counts from the end of the wait, not from the handshake
    assert session.deadline()[0] >= 1.0 + EXTENSIONS_WAIT + session.timeouts.reply
    assert session.tick(1.0 + EXTENSIONS_WAIT / 2) == [] and pool.read() == []
    session.tick(1.0 + EXTENSIONS_WAIT)
    (request,) = pool.read()
    assert isinstance(request, c.OpenExtendedMiningChannel)
    pool.send(c.RequestExtensionsSuccess(1, ()))  # a late answer changes nothing
    assert pool.read() == []


def test_the_payout_check_says_a_standard_job_hides_its_coinbase():
    from miner.sources.payout import PayoutMonitor, PayoutPolicy
    from miner.sources.stratum.connection import PoolConnection
    from miner.sources.stratum.url import PoolConfig

    def pool(user):
        return PoolConnection(PoolConfig("stratum+tcp://127.0.0.1:3333", user, "x"), "pool0", lambda p, j: None,
                              lambda p: None)

    monitor = PayoutMonitor(PayoutPolicy.parse((), 95.0, "enforce"))
    job = standard_job("cpu0")
    checked = pool("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq.rig")  # a solo pool's user: its address is checked
    checked.current_job = job
    assert not monitor.allows(checked, job)
    assert "standard job" in monitor.latest["pool0"].summary and "coinbase" in monitor.latest["pool0"].summary
    unchecked = pool("worker.1")
    unchecked.current_job = job
    assert monitor.allows(unchecked, job)  # nothing to check against: mined
