"""The cgminer API's replies against cgminer's own api.c, without sockets: the joined-reply shape,
every field's JSON type, the commands that were missing, and no Python reprs in the text form.

The type tables are taken from cgminer's api.c (docs/cgminer-api.md §3.8): each field's `api_add_*`
call in summary(), ascstatus(), poolstatus(), lcddata(), minecoin() and minerconfig(). int is
api_add_int/uint/int64/uint64/uint32/time/elapsed, float is api_add_mhs/diff/percent/utility/temp/
mhtotal/timeval/double, str is api_add_string/const/escape, bool is api_add_bool (N, F, S, B below).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter

import pytest

from miner.core.dispatch import Dispatcher
from miner.core.engine import Miner
from miner.devices.cpu import CpuDevice
from miner.devices.work_source import DispatcherWorkSource
from miner.frontends.cgminer import handle_request
from miner.frontends.cgminer_sections import mm_id
from miner.frontends.view import DeviceSnapshot, MinerView
from miner.sources.sandbox import SandboxSource
from miner.sources.stratum.failover import PoolManager
from miner.sources.stratum.url import PoolConfig, Timeouts
from tests.helpers.api_helpers import parse_text

N, F, S, B = int, float, str, bool

# api.c summary()
SUMMARY_TYPES = {
    "Elapsed": N, "MHS av": F, "MHS 5s": F, "MHS 1m": F, "MHS 5m": F, "MHS 15m": F, "Found Blocks": N,
    "Getworks": N, "Accepted": N, "Rejected": N, "Hardware Errors": N, "Utility": F, "Discarded": N, "Stale": N,
    "Get Failures": N, "Local Work": N, "Remote Failures": N, "Network Blocks": N, "Total MH": F,
    "Work Utility": F, "Difficulty Accepted": F, "Difficulty Rejected": F, "Difficulty Stale": F,
    "Best Share": N, "Device Hardware%": F, "Device Rejected%": F, "Pool Rejected%": F, "Pool Stale%": F,
    "Last getwork": N,
}
# api.c ascstatus()
DEVS_TYPES = {
    "ASC": N, "Name": S, "ID": N, "Enabled": S, "Status": S, "Temperature": F, "MHS av": F, "MHS 5s": F,
    "MHS 1m": F, "MHS 5m": F, "MHS 15m": F, "Accepted": N, "Rejected": N, "Hardware Errors": N, "Utility": F,
    "Last Share Pool": N, "Last Share Time": N, "Total MH": F, "Diff1 Work": N, "Difficulty Accepted": F,
    "Difficulty Rejected": F, "Last Share Difficulty": F, "No Device": B, "Last Valid Work": N,
    "Device Hardware%": F, "Device Rejected%": F, "Device Elapsed": N,
}
# api.c poolstatus()
POOLS_TYPES = {
    "POOL": N, "URL": S, "Status": S, "Priority": N, "Quota": N, "Long Poll": S, "Getworks": N, "Accepted": N,
    "Rejected": N, "Works": N, "Discarded": N, "Stale": N, "Get Failures": N, "Remote Failures": N, "User": S,
    "Last Share Time": N, "Diff1 Shares": N, "Proxy Type": S, "Proxy": S, "Difficulty Accepted": F,
    "Difficulty Rejected": F, "Difficulty Stale": F, "Last Share Difficulty": F, "Work Difficulty": F,
    "Has Stratum": B, "Stratum Active": B, "Stratum URL": S, "Stratum Difficulty": F, "Has Vmask": B,
    "Has GBT": B, "Best Share": N, "Pool Rejected%": F, "Pool Stale%": F, "Bad Work": N,
    "Current Block Height": N, "Current Block Version": N,
}
# api.c lcddata()
LCD_TYPES = {
    "Elapsed": N, "GHS av": F, "GHS 5m": F, "GHS 5s": F, "Temperature": F, "Last Share Difficulty": F,
    "Last Share Time": N, "Best Share": N, "Last Valid Work": N, "Found Blocks": N, "Current Pool": S, "User": S,
}
# api.c minecoin()
COIN_TYPES = {"Hash Method": S, "Current Block Time": F, "Current Block Hash": S, "LP": B, "Network Difficulty": F}
# api.c minerconfig() (Hotplug: an int, or the string "Disabled" when hotplug is off)
CONFIG_TYPES = {"ASC Count": N, "PGA Count": N, "Pool Count": N, "Strategy": S, "Log Interval": N,
                "Device Code": S, "OS": S, "Hotplug": S}


def ask(view: MinerView, request: str, group: str = "W") -> dict:
    reply = handle_request(request.encode(), view, group)
    assert reply.endswith(b"\x00") and reply.count(b"\x00") == 1
    return json.loads(reply[:-1])


def ask_text(view: MinerView, request: str, group: str = "W") -> str:
    return handle_request(request.encode(), view, group)[:-1].decode()


def status(reply: dict) -> tuple[str, int]:
    return reply["STATUS"][0]["STATUS"], reply["STATUS"][0]["Code"]


@pytest.fixture()
def pool_view():
    """A miner on two pools (not started: no sockets) whose counters have seen shares and a job."""
    dispatcher = Dispatcher()
    configs = [PoolConfig("stratum+tcp://pool.example:3333", "worker.1", "pw"),
               PoolConfig("stratum+tcp://backup.example:3333", "worker.2", "pw")]
    manager = PoolManager(configs, Timeouts())
    device = CpuDevice(DispatcherWorkSource(dispatcher), lambda n: None, threads=1)
    miner = Miner(manager, [device], dispatcher)
    view = MinerView(miner)
    dispatcher.set_job(SandboxSource(0.5).job)  # what a source's job does: every listener sees it
    now = time.time()
    first = manager.pools[0]
    device.stats.add_hashes(3.0e9, first.name)
    for accepted in (True, True, False):
        device.stats.shares.note_result(accepted, None if accepted else "low", 0.5, 3.7, now)
        miner.source_results(first.name).note_result(accepted, None if accepted else "low", 0.5, 3.7, now)
        first.stats.note_result(accepted, None if accepted else "low", 0.5, 3.7, now)
    device.stats.last_share_source = first.name
    device.stats.shares.diff1 = miner.totals.diff1 = miner.source_results(first.name).diff1 = 1.5
    return view


def test_every_field_has_the_json_type_api_c_gives_it(pool_view):
    summary = ask(pool_view, '{"command":"summary"}')["SUMMARY"][0]
    devs = ask(pool_view, '{"command":"devs"}')["DEVS"][0]
    pools = ask(pool_view, '{"command":"pools"}')["POOLS"]
    lcd = ask(pool_view, '{"command":"lcd"}')["LCD"][0]
    coin = ask(pool_view, '{"command":"coin"}')["COIN"][0]
    config = ask(pool_view, '{"command":"config"}')["CONFIG"][0]
    for item, table in ((summary, SUMMARY_TYPES), (devs, DEVS_TYPES), (pools[0], POOLS_TYPES),
                        (pools[1], POOLS_TYPES), (lcd, LCD_TYPES), (coin, COIN_TYPES), (config, CONFIG_TYPES)):
        for name, kind in table.items():
            assert name in item, name
            assert type(item[name]) is kind, (name, item[name])  # noqa: E721 - bool must not pass as int


def test_shares_fill_the_fields_miner_php_shows(pool_view):
    summary = ask(pool_view, '{"command":"summary"}')["SUMMARY"][0]
    dev = ask(pool_view, '{"command":"devs"}')["DEVS"][0]
    first = ask(pool_view, '{"command":"pools"}')["POOLS"][0]
    now = time.time()
    assert summary["Getworks"] == 1 and summary["Network Blocks"] == 1
    assert summary["Difficulty Rejected"] == 0.5 and summary["Work Utility"] > 0
    assert summary["Device Rejected%"] == pytest.approx(100 * 0.5 / 1.5, abs=1e-3)
    assert summary["Pool Rejected%"] == pytest.approx(100 * 0.5 / 1.5, abs=1e-3)
    assert (dev["Last Share Pool"], dev["Diff1 Work"], dev["Difficulty Rejected"]) == (0, 1, 0.5)
    assert now - 5 < dev["Last Share Time"] <= now and dev["Last Share Difficulty"] == 0.5
    assert (first["Diff1 Shares"], first["Difficulty Rejected"], first["Last Share Difficulty"]) == (1, 0.5, 0.5)
    assert now - 5 < first["Last Share Time"] <= now and first["Best Share"] == 3
    coin = ask(pool_view, '{"command":"coin"}')["COIN"][0]
    assert now - 5 < coin["Current Block Time"] <= now and coin["Network Difficulty"] > 0
    assert len(coin["Current Block Hash"]) == 64


def test_joined_replies_are_one_element_lists_and_bad_commands_answer_in_their_place(pool_view):
    joined = ask(pool_view, '{"command":"summary+devs+summary+nosuch+asc+quit+lockstats"}')
    assert list(joined) == ["summary", "devs", "nosuch", "asc", "quit", "lockstats", "id"]  # repeats skipped
    assert all(isinstance(joined[n], list) and len(joined[n]) == 1 for n in joined if n != "id")
    assert status(joined["summary"][0]) == ("S", 11) and joined["summary"][0]["id"] == 1
    assert status(joined["devs"][0]) == ("S", 9)
    assert status(joined["nosuch"][0]) == ("E", 14)
    assert status(joined["asc"][0]) == ("E", 45) and status(joined["quit"][0]) == ("E", 45)
    assert status(joined["lockstats"][0]) == ("W", 124)  # privileged but joinable in api.c
    assert status(ask(pool_view, '{"command":"summary+lockstats"}', "R")["lockstats"][0]) == ("E", 45)
    text = ask_text(pool_view, "summary+nosuch")
    assert text.startswith("CMD=summary|STATUS=S,") and "|CMD=nosuch|STATUS=E,When=" in text
    assert ",Code=14," in text.split("CMD=nosuch|")[1]


def test_the_missing_commands_answer_as_api_c_does(pool_view, tmp_path):
    assert ask(pool_view, '{"command":"pgacount"}')["PGAS"] == [{"Count": 0}]
    for command in ("pga", "pgaenable", "pgadisable", "pgaidentify", "pgaset"):
        assert status(ask(pool_view, json.dumps({"command": command, "parameter": "0"}))) == ("E", 56), command
    assert status(ask(pool_view, '{"command":"usbstats"}')) == ("I", 88)
    assert status(ask(pool_view, '{"command":"lockstats"}')) == ("W", 124)
    assert status(ask(pool_view, '{"command":"lcount"}')) == ("E", 14)  # not in cgminer's command table
    assert status(ask(pool_view, '{"command":"ascidentify","parameter":"0"}')) == ("W", 114)
    assert status(ask(pool_view, '{"command":"ascidentify","parameter":"5"}')) == ("E", 107)
    assert status(ask(pool_view, '{"command":"setconfig","parameter":"queue,2"}')) == ("E", 127)
    assert status(ask(pool_view, '{"command":"setconfig"}')) == ("E", 85)
    assert status(ask(pool_view, '{"command":"poolquota","parameter":"1,3"}')) == ("S", 122)
    assert ask(pool_view, '{"command":"pools"}')["POOLS"][1]["Quota"] == 3
    assert status(ask(pool_view, '{"command":"poolquota","parameter":"1"}')) == ("E", 86)
    assert status(ask(pool_view, '{"command":"poolquota","parameter":"1,-2"}')) == ("E", 121)
    assert status(ask(pool_view, '{"command":"poolquota","parameter":"9,2"}')) == ("E", 26)
    saved = tmp_path / "cgminer.conf"
    assert status(ask(pool_view, json.dumps({"command": "save", "parameter": str(saved)}))) == ("S", 44)
    conf = json.loads(saved.read_text())
    assert [p["url"] for p in conf["pools"]] == ["stratum+tcp://pool.example:3333", "stratum+tcp://backup.example:3333"]
    assert conf["pools"][1]["quota"] == "3;stratum+tcp://backup.example:3333"
    assert status(ask(pool_view, '{"command":"save"}')) == ("E", 42)
    assert status(ask(pool_view, json.dumps({"command": "save", "parameter": str(tmp_path / "no" / "x")}))) == (
        "E", 43)
    before = logging.getLogger("miner").level
    debug = ask(pool_view, '{"command":"debug","parameter":"d"}')
    assert status(debug) == ("S", 79) and debug["DEBUG"][0]["Debug"] is True
    assert logging.getLogger("miner").level == logging.DEBUG
    assert ask(pool_view, '{"command":"debug","parameter":"n"}')["DEBUG"][0]["Debug"] is False
    assert logging.getLogger("miner").level == before  # Normal gives back the level the miner had
    assert status(ask(pool_view, '{"command":"debug"}', "R")) == ("E", 45)
    lcd = ask(pool_view, '{"command":"lcd"}')
    active = pool_view.pool_manager.active
    assert status(lcd) == ("S", 125) and lcd["LCD"][0]["Current Pool"] == (active.config.url if active else "none")
    assert lcd["LCD"][0]["Best Share"] == 3 and lcd["LCD"][0]["Last Share Difficulty"] == 0.5


def test_estats_writes_avalon_modules_as_mm_id_strings():
    snapshot = DeviceSnapshot(
        index=0, name="avalon0", driver="avalon", port="/dev/ttyUSB0", model="Avalon7", state="Alive",
        enabled=True, rate_5s=0.0, rate_1m=0.0, rate_5m=0.0, rate_15m=0.0, rate_avg=0.0, total_hashes=0.0,
        accepted=0, rejected=Counter(), hw_errors=0, found=0, accepted_difficulty=0.0,
        best_difficulty=0.0, temperature=None, frequency=None, voltage=None, elapsed=61.0, last_valid_age=None)
    module = {"version": "7411706-3162860", "dna": "013cae6bfb1bb6c6", "temperature": 38, "fan": 4110,
              "frequency": [600, 600, 600, 600], "hw_errors": 10, "hashrate": 7.07884e12}
    assert mm_id(snapshot, module) == ("Ver[7411706-3162860] DNA[013cae6bfb1bb6c6] Elapsed[61] Temp[38] Fan[4110] "
                                       "GHSmm[7078.84] Freq[600 600 600 600] HW[10]")


def test_pools_with_no_pool_is_an_error_and_text_replies_carry_no_python_reprs():
    dispatcher = Dispatcher()
    source = SandboxSource(0.01)
    dispatcher.set_job(source.job)
    device = CpuDevice(DispatcherWorkSource(dispatcher), lambda n: None, threads=1)
    view = MinerView(Miner(source, [device], dispatcher))
    assert status(ask(view, '{"command":"pools"}')) == ("E", 8)  # api.c poolstatus(): MSG_NOPOOL, an error
    for command in ("summary", "devs", "stats", "estats", "devdetails", "coin", "lcd", "config", "notify"):
        text = ask_text(view, command)
        assert "None" not in text and "{'" not in text and "[{'" not in text, (command, text)
        assert parse_text(text)[0]["STATUS"] == "S", command


async def test_removepool_keeps_the_totals(pool_view):
    before = ask(pool_view, '{"command":"summary"}')["SUMMARY"][0]
    manager = pool_view.pool_manager
    manager.pools[1].stats.note_result(True, None, 0.5, 1.0, time.time())
    manager.active = manager.pools[0]
    after_share = ask(pool_view, '{"command":"summary"}')["SUMMARY"][0]
    assert after_share["Accepted"] == before["Accepted"] + 1
    assert pool_view.remove_pool(1) == "stratum+tcp://backup.example:3333"
    after = ask(pool_view, '{"command":"summary"}')["SUMMARY"][0]
    assert (after["Accepted"], after["Difficulty Accepted"]) == (after_share["Accepted"],
                                                                 after_share["Difficulty Accepted"])


def test_metrics_use_base_units_and_speak_openmetrics_when_the_scraper_asks(pool_view):
    from miner.frontends.http import metrics_for

    text, content_type = metrics_for(pool_view, None)
    assert content_type.startswith("text/plain; version=0.0.4")
    body = text.decode()
    assert 'miner_hashrate_hertz{device="cpu0",driver="cpu",window="avg"}' in body
    assert "# TYPE miner_shares_total counter" in body and "# TYPE miner_hardware_errors_all_total counter" in body
    assert "hashes_per_second" not in body and "_mhz" not in body
    # every device state is a series of its own, 1 for the current one
    states = [line for line in body.splitlines() if line.startswith("miner_device_state{")]
    assert len(states) == 6 and sum(float(line.rsplit(" ", 1)[1]) for line in states) == 1
    open_text, open_type = metrics_for(pool_view, "application/openmetrics-text; version=1.0.0")
    assert open_type.startswith("application/openmetrics-text")
    assert open_text.decode().endswith("# EOF\n") and "# TYPE miner_shares counter" in open_text.decode()


def test_driver_details_are_flat_api_values_and_no_device_is_an_error(pool_view):
    device = pool_view.devices[0]
    details = {"Modules": [{"dna": "01", "temperature": None}], "Note": None, "Chips": 4}
    device.details = lambda: details  # a driver whose details nest, as the Avalon driver's do
    item = ask(pool_view, '{"command":"devdetails"}')["DEVDETAILS"][0]
    assert item["Modules"] == '[{"dna":"01","temperature":null}]' and item["Note"] == "" and item["Chips"] == 4
    text = ask_text(pool_view, "devdetails")
    assert "None" not in text and "'" not in text
    pool_view.miner.devices.clear()
    assert status(ask(pool_view, '{"command":"devdetails"}')) == ("E", 10)
    assert status(ask(pool_view, '{"command":"devs"}')) == ("E", 10)


@pytest.mark.parametrize(("script", "height"), [
    ("0389130c", 791433),  # the real pool job of docs/stratum.md §1.7(c)
    ("0340d10c", 840000), ("028000", 128), ("0111", 17), ("51", 1), ("60", 16),  # docs/gbt.md §2.2 table
])
def test_the_block_height_comes_from_the_coinbase_as_cgminer_reads_it(script, height):
    from dataclasses import replace

    from miner.frontends.view import coinbase_height

    job = SandboxSource(0.5).job
    coinb1 = bytes.fromhex("02000000" "01" + "00" * 32 + "ffffffff") + bytes([len(script) // 2 + 8])
    coinb1 += bytes.fromhex(script)
    assert coinbase_height(replace(job, coinb1=coinb1, version=0x20000000)) == height
    assert coinbase_height(replace(job, coinb1=coinb1, version=1)) is None  # before BIP34: no height


def test_axeos_info_names_a_chain_by_its_chip_and_leaves_out_what_is_not_measured(pool_view):
    from dataclasses import replace

    from miner.frontends import axeos

    cpu = pool_view.device_snapshots()[0]
    info = axeos.system_info(pool_view)
    assert (info["ASICModel"], info["asicCount"]) == ("", 0)  # a CPU is no chip
    assert "power" not in info and "fanrpm" not in info and "temp" not in info
    after = pool_view.summary().rate_avg  # total / elapsed only falls while nothing hashes: a bracket
    assert after / 1e9 - 1e-6 <= info["hashRate"] <= cpu.rate_avg / 1e9 + 1e-6 and info["sharesRejected"] == 1
    assert (info["stratumURL"], info["stratumPort"], info["stratumUser"]) in (("", 0, ""),
                                                                             ("pool.example", 3333, "worker.1"))
    chain = replace(cpu, name="bm0", driver="bm13xx", model="BM1366", temperature=51.5, frequency=485.0,
                    details={"Chips": 4})
    pool_view.device_snapshots = lambda: [chain, replace(chain, name="bm1", index=1)]
    info = axeos.system_info(pool_view)
    assert (info["ASICModel"], info["asicCount"], info["temp"], info["frequency"]) == ("BM1366", 8, 51.5, 485.0)
    assert [d["name"] for d in axeos.system_asic(pool_view)["devices"]] == ["bm0", "bm1"]
