"""Hostile-input fuzz (issue 14, tests): node answers into the template codec, and device nonces of
every kind (right, wrong, out of range, rolled outside the mask, for unknown work) into the real
share path. Invariants after each example: the codec gives a minable template or one TemplateError
line; the share path stays up, sends nothing the C core's check would refuse, and stays bounded.
The Stratum lines and API requests have their fuzz next to their codecs
(test_stratum_session.py `test_any_sequence_of_pool_lines_never_raises`, test_api_parsing.py)."""

from __future__ import annotations

import asyncio
import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miner.core import hashing
from miner.core.dispatch import Dispatcher
from miner.core.engine import Miner
from miner.core.shares import CheckedNonce, Verdict
from miner.core.stats import ShareStats
from miner.core.targets import DIFF1_TARGET, difficulty_to_target, hash_to_int
from miner.core.work import Job, Nonce, parse_header
from miner.sources.node.template import TemplateError, parse_template, prepare
from tests.helpers.hostile_node import HostileNode

PAYOUT = bytes.fromhex("0014751e76e8199196d454941c45d1b3a323f1433bd6")
GOOD = HostileNode().template()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.floats(allow_nan=True)
    | st.text(max_size=70) | st.sampled_from(["207fffff", "ffffffff", "00800000", "ab" * 32, "00" * 60]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
FIELDS = [*GOOD, "txid", "hash", "data"]


@st.composite
def node_answers(draw):
    """A good bcoin-shaped template with some fields (or a transaction's fields) replaced."""
    raw = copy.deepcopy(GOOD)
    for key in draw(st.lists(st.sampled_from(FIELDS), max_size=4)):
        value = draw(json_values)
        if key in ("txid", "hash", "data"):
            raw["transactions"] = [{"data": "02000000" + "00" * 56, "txid": "11" * 32, "hash": "11" * 32, key: value}]
        elif draw(st.booleans()):
            raw[key] = value
        else:
            raw.pop(key, None)
    return raw


@settings(max_examples=200, deadline=None)
@given(st.one_of(node_answers(), json_values))
def test_any_node_answer_is_a_minable_template_or_one_template_error(raw):
    json.dumps(raw)  # what a node could have sent (after JSON decoding)
    try:
        template = parse_template(raw)
    except TemplateError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("template: ")
        return
    job = prepare(template, PAYOUT).job("j", bytes(4), "node", True)
    work = job.make_work(1, bytes(job.extranonce2_size))
    fields = parse_header(work.header_for(12345))
    assert fields.ntime == template.curtime < 1 << 32 and fields.nbits == template.nbits
    assert 0 < template.target < 1 << 256 and 0 <= template.coinbase_value <= 21_000_000 * 10**8
    block = prepare(template, PAYOUT).block(work.header_for(12345), job.coinbase(bytes(job.extranonce2_size)))
    assert block[:80] == work.header_for(12345)


# ------------------------------------------------------------------------------------ share path
class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.stats = ShareStats()
        self.submitted: list[CheckedNonce] = []

    def bind(self, on_job, on_result) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, share: CheckedNonce) -> None:
        self.submitted.append(share)

    def status(self, rate_of) -> str:
        return ""


def job(job_id: str, difficulty: float, mask: int) -> Job:
    return Job(job_id, bytes(range(32)), b"\x01" * 41, b"\x02" * 30, (bytes(32),), 0x20000000, 0x1D00FFFF,
               0x5F5E1000, clean=True, extranonce1=b"\0\0\0\1", share_target=difficulty_to_target(difficulty),
               version_mask=mask, source="recorder")


nonce_kinds = st.sampled_from(["found", "random", "unknown work", "rolled outside mask", "rolled inside mask",
                               "ntime", "huge"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(nonce_kinds, st.integers(0, (1 << 32) - 1)), min_size=1, max_size=30),
       st.sampled_from([1e-9, 2**-16, 1e-4, 1.0]), st.sampled_from([0, 0x1FFFE000]))
def test_whatever_devices_report_the_share_path_sends_only_checked_shares(reports, difficulty, mask):
    asyncio.run(_share_path(reports, difficulty, mask))


async def _share_path(reports, difficulty, mask):
    source = Recorder()
    dispatcher = Dispatcher(remember=16)
    miner = Miner(source, [], dispatcher, status_interval=0)
    the_job = job("j", difficulty, mask)
    dispatcher.set_job(the_job)
    run = asyncio.create_task(miner.run())
    await asyncio.sleep(0)
    for kind, value in reports:
        work = dispatcher.next_work()
        assert work is not None
        nonce = Nonce(work.work_id, value, device="cpu0")
        if kind == "found":
            found = hashing.scan(work.header, 0, 1 << 12, max(work.target, DIFF1_TARGET >> 4))
            nonce = Nonce(work.work_id, found[0] if found else value, device="cpu0")
        elif kind == "unknown work":
            nonce = Nonce(work.work_id + 1000, value, device="cpu0")
        elif kind == "rolled outside mask":
            nonce = Nonce(work.work_id, value, version=work.version ^ 0x40000000, device="cpu0")
        elif kind == "rolled inside mask":
            nonce = Nonce(work.work_id, value, version=work.version ^ (mask & 0x00002000), device="cpu0")
        elif kind == "ntime":
            nonce = Nonce(work.work_id, value, ntime=the_job.ntime + value % 7200, device="cpu0")
        elif kind == "huge":  # wider than the header's field: a driver bug or a corrupted frame
            nonce = Nonce(work.work_id, value + (1 << 32), ntime=-1 if value % 2 else None, device="cpu0")
        miner.on_nonce(nonce)
    assert len(miner.nonces) <= miner.nonces.limit  # bounded, whatever the devices send
    async with asyncio.timeout(10):
        while len(miner.nonces):
            await asyncio.sleep(0.001)
    miner.request_stop()
    async with asyncio.timeout(5):
        await run  # the share path is alive to the end and stops when asked
    for share in source.submitted:
        assert share.verdict in (Verdict.SHARE, Verdict.BLOCK)
        digest = hashing.sha256d(share.header)  # the C core, again, on exactly the bytes sent
        assert hash_to_int(digest) <= share.work.job.share_target
        fields = parse_header(share.header)
        assert not (fields.version ^ the_job.version) & ~mask & 0xFFFFFFFF
    assert len(source.submitted) <= len(reports)
    assert miner.share_path_faults == 0  # every report was judged, none crashed its check
