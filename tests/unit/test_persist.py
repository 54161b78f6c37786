"""Persisted statistics: best shares, rejects and the hash-rate history survive a restart."""

import json
from collections import Counter

import aiohttp
import pytest

from miner.frontends.http import HttpServer
from miner.frontends.persist import StatsStore, observe_view
from miner.frontends.view import MinerView
from tests.helpers.api_helpers import api, running_miner, until
from tests.helpers.stratum_pool import StratumTestPool


class Clock:
    def __init__(self, now=1_700_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_rings_sample_at_their_own_intervals_and_survive_a_reload(tmp_path):
    clock = Clock()
    store = StatsStore(tmp_path / "stats.json", clock)
    for minute in range(25):
        clock.now += 60
        store.observe(2.5, {"stratum+tcp://a:1": 2.5}, Counter({"Stale": minute}),
                      {"1m": minute * 1e6, "10m": 7e6, "1h": 8e6})
    assert len(store.history["1m"]) == 25
    assert len(store.history["10m"]) == 3  # first sample, then every 600 s: minutes 1, 11, 21
    assert len(store.history["1h"]) == 1
    store.save()
    again = StatsStore(tmp_path / "stats.json", clock)
    again.load()
    assert again.best_all_time == 2.5 and again.best_per_pool == {"stratum+tcp://a:1": 2.5}
    assert again.all_rejects() == Counter({"Stale": 24})
    assert [r for _, r in again.history["1m"]] == [m * 1e6 for m in range(25)]
    # the next run adds its own rejects on top of the saved ones
    again.observe(1.0, {}, Counter({"Stale": 1, "Low difficulty share": 2}), {})
    assert again.all_rejects() == Counter({"Stale": 25, "Low difficulty share": 2})
    assert again.best_all_time == 2.5  # a lower session best does not lower the record


def test_reset_and_a_damaged_file(tmp_path):
    path = tmp_path / "stats.json"
    store = StatsStore(path)
    store.observe(9.0, {"u": 9.0}, Counter({"x": 1}), {"1m": 1.0})
    store.reset(everything=False)
    saved = json.loads(path.read_text())
    assert saved["best_all_time"] == 0 and saved["best_per_pool"] == {} and saved["rejects"] == {"x": 1}
    store.reset(everything=True)
    assert json.loads(path.read_text())["rejects"] == {} and not store.history["1m"]
    path.write_text('{"format": 1, "best_all')  # one of ours, cut short
    broken = StatsStore(path)
    broken.load()  # a warning, not a crash; the bad file is kept aside
    assert broken.best_all_time == 0 and path.with_suffix(".broken").exists()


async def test_best_share_survives_a_restart_and_zero_bestshare_clears_it(tmp_path):
    path = tmp_path / "stats.json"
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    store = StatsStore(path)
    async with running_miner([pool], store=store) as (miner, view, server):
        await pool.wait_submits(2, accepted=True)
        await until(lambda: miner.source.stats.best_difficulty > 0, what="a best share")
        best = view.best_session()
        observe_view(store, view)
        store.save()
    first_best = StatsStore(path)
    first_best.load()
    assert first_best.best_all_time >= best > 0
    assert first_best.best_per_pool[f"stratum+tcp://127.0.0.1:{pool.port}"] > 0
    # a new miner: the record is there before it finds anything
    store = StatsStore(path)
    store.load()
    async with running_miner([pool], store=store) as (miner, view, server):
        summary = (await api(server.port, "summary"))["SUMMARY"][0]
        assert summary["Best Share All Time"] == first_best.best_all_time
        pool_record = (await api(server.port, "pools"))["POOLS"][0]["Best Share All Time"]
        assert pool_record == first_best.best_per_pool[f"stratum+tcp://127.0.0.1:{pool.port}"]
        http = HttpServer(view, "127.0.0.1", 0)
        port = await http.start()
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/api/history") as r:
            history = await r.json()
        await http.stop()
        assert history["best_all_time"] == first_best.best_all_time and history["history"]["1m"]
        assert status_code(await api(server.port, "zero", "bestshare")) == 97
        assert (await api(server.port, "summary"))["SUMMARY"][0]["Best Share All Time"] == view.best_session()
    cleared = StatsStore(path)
    cleared.load()
    assert cleared.best_all_time == 0 and cleared.best_per_pool == {}
    await pool.stop()


def status_code(reply):
    return reply["STATUS"][0]["Code"]


async def test_observe_view_reads_the_miner():
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    pool.reject_next = [[23, "Low difficulty share", None]]
    store = StatsStore("/nonexistent/never-written.json")
    async with running_miner([pool], store=store) as (miner, view, server):
        await pool.wait_submits(2)
        await until(lambda: miner.source.stats.rejected_total == 1, what="the reject")
        observe_view(store, view)
        assert store.all_rejects() == Counter({"Low difficulty share": 1})
        assert store.history["1m"][-1][1] > 0
        assert isinstance(view, MinerView)
    await pool.stop()


# ------------------------------------------------------------------------------------ the user's files
def test_a_directory_as_stats_file_is_refused_and_left_alone(tmp_path):
    from miner.frontends.persist import StatsFileError, check_stats_path

    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(StatsFileError, match="not a file"):
        check_stats_path(folder)
    with pytest.raises(StatsFileError):
        StatsStore(folder).load()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
    assert (folder / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("content", ["my essay\n", '{"not": "ours"}', "[1, 2]", '{"format": 1'[:5]])
def test_a_file_this_miner_did_not_write_is_refused_and_left_alone(tmp_path, content):
    from miner.frontends.persist import StatsFileError, check_stats_path

    path = tmp_path / "important.json"
    path.write_text(content)
    with pytest.raises(StatsFileError, match="refusing"):
        check_stats_path(path)
    with pytest.raises(StatsFileError):
        StatsStore(path).load()
    assert path.read_text() == content and sorted(p.name for p in tmp_path.iterdir()) == ["important.json"]


def test_a_damaged_file_of_ours_is_set_aside_never_overwritten(tmp_path):
    from miner.frontends.persist import check_stats_path

    path = tmp_path / "stats.json"
    for round_ in range(2):
        path.write_text('{"format": 1, "best_all_time": "garbage"' + str(round_))
        check_stats_path(path)  # ours: accepted
        StatsStore(path).load()
        assert not path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.broken", "stats.broken.1"]
    assert (tmp_path / "stats.broken").read_text().endswith('"garbage"0')


def test_a_stats_path_under_a_file_is_refused(tmp_path):
    from miner.frontends.persist import StatsFileError, check_stats_path

    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(StatsFileError, match="not a writable folder"):
        check_stats_path(blocker / "stats.json")
    check_stats_path(tmp_path / "new" / "stats.json")  # a folder still to be made is fine
