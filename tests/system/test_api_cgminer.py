"""The cgminer API over real 127.0.0.1 sockets, against a miner mining on the test pool(s)."""

import asyncio
import json

from miner.devices.work_source import DispatcherWorkSource
from miner.frontends.cgminer import parse_allow
from tests.helpers.api_helpers import api, api_raw, api_text, parse_text, running_miner, settled, until
from tests.helpers.stratum_pool import StratumTestPool

READ_COMMANDS = {  # command -> (code, section)
    "version": (22, "VERSION"), "config": (33, "CONFIG"), "summary": (11, "SUMMARY"), "devs": (9, "DEVS"),
    "edevs": (9, "DEVS"), "devdetails": (69, "DEVDETAILS"), "pools": (7, "POOLS"), "stats": (70, "STATS"),
    "notify": (60, "NOTIFY"), "coin": (78, "COIN"), "asccount": (104, "ASCS"),
}


def status(reply: dict) -> tuple[str, int, str]:
    s = reply["STATUS"][0]
    return s["STATUS"], s["Code"], s["Msg"]


async def frozen_miner_with_shares(port: int, pool: StratumTestPool, miner) -> None:
    """Wait for accepted shares, then stop the CPU through the API so every counter holds still."""
    await pool.wait_submits(2, accepted=True)
    assert status(await api(port, "ascdisable", "0"))[:2] == ("S", 111)
    device = miner.devices[0]
    await until(lambda: not device._workers, what="cpu stopped")
    await settled(miner, pool)


async def test_read_commands_in_json_and_text_agree_with_the_miner():
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    async with running_miner([pool]) as (miner, view, server):
        port = server.port
        await frozen_miner_with_shares(port, pool, miner)
        accepted = miner.source.stats.accepted
        for command, (code, section) in READ_COMMANDS.items():
            reply = await api(port, command)
            assert status(reply)[:2] == ("S", code), (command, reply["STATUS"])
            assert reply["id"] == 1 and isinstance(reply[section], list) and reply[section], command
            text = parse_text(await api_text(port, command))
            assert text[0]["STATUS"] == "S" and text[0]["Code"] == str(code), (command, text[0])
            # the text form carries the same items, key for key
            assert len(text) == 1 + len(reply[section]), command
            assert set(text[1]) - {"_section"} == set(reply[section][0]), command
        version = (await api(port, "version"))["VERSION"][0]
        # this miner's own name where cgminer writes "CGMiner" (bfgminer's precedent), never cgminer's
        assert version == {"Miner": f"pyminer {view.version}", "pyminer": view.version, "API": "3.7"}
        summary = (await api(port, "summary"))["SUMMARY"][0]
        assert summary["Accepted"] == accepted == sum(s.accepted for s in pool.submits)
        assert summary["Rejected"] == 0 and summary["Hardware Errors"] == 0
        # Best Share is api.c's uint64 (an integer); the exact record is ours beside it
        assert summary["Best Share"] == int(miner.source.stats.best_difficulty)
        assert summary["Best Share All Time"] == miner.source.stats.best_difficulty > 0
        assert summary["Total MH"] > 0
        text_summary = parse_text(await api_text(port, "summary|"))[1]
        assert text_summary["_section"] == "SUMMARY" and int(text_summary["Accepted"]) == accepted
        devs = (await api(port, "devs"))["DEVS"]
        assert devs[0]["ASC"] == 0 and devs[0]["Name"] == "CPU" and devs[0]["Enabled"] == "N"
        assert devs[0]["Accepted"] == accepted and devs[0]["Status"] == "Disabled"
        pools = (await api(port, "pools"))["POOLS"]
        assert pools[0]["URL"] == f"stratum+tcp://127.0.0.1:{pool.port}" and pools[0]["Status"] == "Alive"
        assert pools[0]["Accepted"] == accepted and pools[0]["Has Vmask"] is True
        assert pools[0]["Stratum Difficulty"] == 0.002 and pools[0]["User"] == "worker.1"
        assert "secret-pw" not in json.dumps(await api(port, "pools")) + json.dumps(await api(port, "config"))
        config = (await api(port, "config"))["CONFIG"][0]
        assert config["ASC Count"] == 1 and config["Pool Count"] == 1 and config["Strategy"] == "Failover"
        assert (await api(port, "asccount"))["ASCS"] == [{"Count": 1}]
        asc = await api(port, "asc", "0")
        assert status(asc)[:2] == ("S", 106) and asc["ASC"][0]["Accepted"] == accepted
        assert status(await api(port, "asc", "7"))[:2] == ("E", 107)
        assert status(await api(port, "asc"))[:2] == ("E", 15)
        assert parse_text(await api_text(port, "asc|0"))[1]["ASC"] == "0"
        check = await api(port, "check", "summary")
        assert status(check)[:2] == ("S", 72) and check["CHECK"] == [{"Exists": "Y", "Access": "Y"}]
        assert (await api(port, "check", "nosuch"))["CHECK"] == [{"Exists": "N", "Access": "N"}]
        assert parse_text(await api_text(port, "check|quit"))[1] == {"_section": "CHECK", "Exists": "Y",
                                                                      "Access": "Y"}
    await pool.stop()


async def test_joined_commands_and_the_nul_terminator():
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    async with running_miner([pool]) as (miner, view, server):
        await pool.wait_submits(1, accepted=True)
        raw = await api_raw(server.port, json.dumps({"command": "summary+devs+pools"}))
        assert raw[-1:] == b"\x00" and b"\x00" not in raw[:-1]
        joined = json.loads(raw[:-1])
        # api.c head_join/tail_join: each joined reply is a one-element list under the command's name
        assert set(joined) == {"summary", "devs", "pools", "id"} and joined["id"] == 1
        assert all(isinstance(joined[n], list) and len(joined[n]) == 1 for n in ("summary", "devs", "pools"))
        assert status(joined["summary"][0])[:2] == ("S", 11) and joined["summary"][0]["SUMMARY"]
        assert status(joined["devs"][0])[:2] == ("S", 9) and joined["devs"][0]["DEVS"][0]["ASC"] == 0
        assert status(joined["pools"][0])[:2] == ("S", 7) and joined["pools"][0]["POOLS"][0]["POOL"] == 0
        text = await api_text(server.port, "summary+devs")
        assert text.startswith("CMD=summary|STATUS=S,") and "|CMD=devs|STATUS=S," in text
        assert [s.get("Code") for s in parse_text(text) if "STATUS" in s] == ["11", "9"]
        # asc and privileged commands cannot be joined: they answer E 45 in their place, the rest answers
        joined = await api(server.port, "summary+asc", "0")
        assert status(joined["summary"][0])[:2] == ("S", 11) and status(joined["asc"][0])[:2] == ("E", 45)
        joined = await api(server.port, "summary+quit")
        assert status(joined["quit"][0])[:2] == ("E", 45) and joined["summary"][0]["SUMMARY"]
        joined = await api(server.port, "nosuch+devs")
        assert status(joined["nosuch"][0])[:2] == ("E", 14) and status(joined["devs"][0])[:2] == ("S", 9)
        assert not miner._stop_requested.is_set()
    await pool.stop()


async def test_privileged_commands_need_a_w_entry():
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    # 127.0.0.1 may read; only 127.0.0.2 (also loopback on Linux) may write
    async with running_miner([pool], allow="W:127.0.0.2,R:127.0.0.1") as (miner, view, server):
        port = server.port
        for command, parameter in (("switchpool", "0"), ("quit", None), ("ascset", "0,freq,100"),
                                   ("addpool", "stratum+tcp://127.0.0.1:1,u,p"), ("zero", "all")):
            reply = await api(port, command, parameter)
            assert status(reply) == ("E", 45, f"Access denied to '{command}' command"), reply
            text = parse_text(await api_text(port, f"{command}|{parameter or ''}"))
            assert text[0]["STATUS"] == "E" and text[0]["Code"] == "45"
        assert len(view.pool_manager.pools) == 1 and not miner._stop_requested.is_set()
        assert (await api(port, "check", "switchpool"))["CHECK"] == [{"Exists": "Y", "Access": "N"}]
        assert status(await api(port, "summary"))[:2] == ("S", 11)
        # the same commands from the W address
        assert status(await api(port, "privileged", bind="127.0.0.2"))[:2] == ("S", 46)
        assert (await api(port, "check", "switchpool", bind="127.0.0.2"))["CHECK"][0]["Access"] == "Y"
        assert status(await api(port, "zero", "bestshare", bind="127.0.0.2"))[:2] == ("S", 97)
    await pool.stop()


async def test_an_address_outside_the_allow_list_gets_no_answer():
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    async with running_miner([pool], allow="W:127.0.0.2") as (miner, view, server):
        try:
            refused = await api_raw(server.port, "summary")
        except ConnectionResetError:  # closed with our request unread
            refused = b""
        assert refused == b""
        assert status(await api(server.port, "summary", bind="127.0.0.2"))[:2] == ("S", 11)
    await pool.stop()


async def test_addpool_then_switchpool_moves_mining_to_the_new_pool():
    first, second = StratumTestPool(difficulty=0.002), StratumTestPool(difficulty=0.002)
    await first.start()
    await second.start()
    async with running_miner([first]) as (miner, view, server):
        port = server.port
        manager = miner.source
        await first.wait_submits(1, accepted=True)
        reply = await api(port, "addpool", f"stratum+tcp://127.0.0.1:{second.port},worker.2,pw2")
        assert status(reply)[:2] == ("S", 55), reply
        pools = (await api(port, "pools"))["POOLS"]
        assert [p["POOL"] for p in pools] == [0, 1] and pools[1]["Priority"] == 1
        await until(lambda: manager.pools[1].alive, what="second pool alive")
        assert miner.dispatcher.job.source == manager.pools[0].name  # still on the first pool
        assert status(await api(port, "switchpool", "1"))[:2] == ("S", 27)
        assert miner.dispatcher.job.source == manager.pools[1].name
        submits = await second.wait_submits(1, accepted=True)
        assert submits[0].params[0] == "worker.2"  # the new pool's own credentials
        pools = (await api(port, "pools"))["POOLS"]
        assert pools[1]["Priority"] == 0 and pools[1]["Stratum Active"] is True
        # the pool on top cannot be removed while it is mined on; the other can
        assert status(await api(port, "removepool", "1"))[:2] == ("E", 67)
        # priorities back: with no switch-back delay the first pool takes over at once
        assert status(await api(port, "poolpriority", "0,1"))[:2] == ("S", 73)
        assert miner.dispatcher.job.source == manager.pools[0].name
        assert status(await api(port, "disablepool", "0"))[:2] == ("S", 48)
        assert miner.dispatcher.job.source == manager.pools[1].name
        assert status(await api(port, "disablepool", "0"))[:2] == ("I", 50)
        assert status(await api(port, "disablepool", "1"))[:2] == ("E", 51)  # the last enabled one
        assert (await api(port, "pools"))["POOLS"][0]["Status"] == "Disabled"
        assert status(await api(port, "enablepool", "0"))[:2] == ("S", 47)
        assert miner.dispatcher.job.source == manager.pools[0].name
        assert status(await api(port, "enablepool", "0"))[:2] == ("I", 49)
        assert status(await api(port, "removepool", "1"))[:2] == ("S", 68)
        assert status(await api(port, "switchpool", "5"))[:2] == ("E", 26)
        assert status(await api(port, "removepool", "0"))[:2] == ("E", 66)
        assert status(await api(port, "addpool", "nonsense://x,u,p"))[:2] == ("E", 53)
        assert status(await api(port, "addpool"))[:2] == ("E", 52)
        assert len((await api(port, "pools"))["POOLS"]) == 1
    await first.stop()
    await second.stop()


async def test_device_commands():
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    async with running_miner([pool]) as (miner, view, server):
        port = server.port
        cpu = miner.devices[0]
        # the CPU has no frequency: the driver's DeviceError comes back as the message
        reply = await api(port, "ascset", "0,freq,500")
        assert status(reply)[:2] == ("E", 120) and "no frequency setting" in status(reply)[2]
        seen = []
        cpu.set_frequency = seen.append  # a device that takes the setting
        assert status(await api(port, "ascset", "0,freq,500"))[:2] == ("S", 119)
        assert seen == [500.0]
        assert status(await api(port, "ascset", "0,help"))[:2] == ("S", 118)
        assert status(await api(port, "ascset", "0"))[:2] == ("E", 116)
        assert status(await api(port, "ascset", "0,volts,1"))[:2] == ("E", 120)
        assert status(await api(port, "ascset", "3,freq,500"))[:2] == ("E", 107)
        assert status(await api(port, "ascdisable", "0"))[:2] == ("S", 111)
        assert status(await api(port, "ascdisable", "0"))[:2] == ("I", 109)
        assert (await api(port, "devs"))["DEVS"][0]["Enabled"] == "N"
        assert status(await api(port, "ascenable", "0"))[:2] == ("S", 110)
        assert status(await api(port, "ascenable", "0"))[:2] == ("I", 108)
        count = len(pool.submits)
        await pool.wait_submits(count + 1)  # mining again
        # disable and enable back to back: the start waits for the stop instead of racing it
        assert status(await api(port, "ascdisable", "0"))[:2] == ("S", 111)
        assert status(await api(port, "ascenable", "0"))[:2] == ("S", 110)
        await until(lambda: len(cpu._workers) == 1 and all(w.is_alive() for w in cpu._workers), what="restarted")
        count = len(pool.submits)
        await pool.wait_submits(count + 2)
        assert status(await api(port, "hotplug", "5"))[:2] == ("W", 102)  # no device manager here
        assert status(await api(port, "hotplug", "x"))[:2] == ("E", 99)
        assert status(await api(port, "hotplug"))[:2] == ("E", 103)
    await pool.stop()


async def test_zero_restart_and_quit():
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    restarts = []
    async with running_miner([pool]) as (miner, view, server):
        port = server.port
        view._on_restart = lambda: restarts.append(1)
        await frozen_miner_with_shares(port, pool, miner)
        before = (await api(port, "summary"))["SUMMARY"][0]
        assert before["Best Share All Time"] > 0 and before["Accepted"] >= 2  # no store: the session's best
        assert status(await api(port, "zero", "bestshare"))[:2] == ("S", 97)
        after = (await api(port, "summary"))["SUMMARY"][0]
        assert after["Best Share All Time"] == after["Best Share"] == 0 and after["Accepted"] == before["Accepted"]
        assert (await api(port, "pools"))["POOLS"][0]["Best Share All Time"] == 0
        reply = await api(port, "zero", "all,true")
        assert status(reply) == ("S", 96, "Zeroed all stats with summary")
        assert reply["SUMMARY"][0]["Accepted"] == before["Accepted"]  # the summary from before the zeroing
        after = (await api(port, "summary"))["SUMMARY"][0]
        assert (after["Accepted"], after["Total MH"], after["Rejected"]) == (0, 0, 0)
        assert (await api(port, "devs"))["DEVS"][0]["Accepted"] == 0
        assert status(await api(port, "zero", "nope"))[:2] == ("E", 95)
        assert status(await api(port, "zero"))[:2] == ("E", 94)
        assert await api_text(port, "restart") == "RESTART"
        await until(lambda: restarts == [1], what="restart callback")
        assert await api_text(port, "quit") == "BYE"
        await until(lambda: miner._stop_requested.is_set(), what="quit")
    await pool.stop()


async def test_malformed_requests_get_an_error_and_the_server_keeps_serving():
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    async with running_miner([pool]) as (miner, view, server):
        port = server.port
        assert status(await api(port, "nosuchcommand"))[:2] == ("E", 14)
        assert parse_text(await api_text(port, "nosuchcommand|1"))[0]["Code"] == "14"
        for bad, code in ((b'{"command": "summ', 23), (b"[1,2]", 14), (b'{"parameter": "x"}', 24),
                          (b"{not json at all}", 23), (b"\xff\xfe\x00\x01", 14)):
            raw = await api_raw(port, bad)
            assert raw.endswith(b"\x00")
            reply = json.loads(raw[:-1]) if raw.startswith(b"{") else {"STATUS": [
                {"STATUS": parse_text(raw[:-1].decode())[0]["STATUS"],
                 "Code": int(parse_text(raw[:-1].decode())[0]["Code"]), "Msg": ""}]}
            assert status(reply)[:2] == ("E", code), (bad, raw)
        garbage = bytes(range(1, 256)) * (1 << 20 // 255)
        raw = await api_raw(port, garbage + b"x" * ((1 << 20) - len(garbage)))
        assert raw.endswith(b"\x00") and parse_text(raw[:-1].decode())[0]["Code"] == "14"
        raw = await api_raw(port, b"{" + b"a" * (1 << 20))
        assert status(json.loads(raw[:-1]))[:2] == ("E", 14)
        # a client that connects and says nothing does not block others
        idle = await asyncio.open_connection("127.0.0.1", port)
        assert status(await api(port, "summary"))[:2] == ("S", 11)
        idle[1].close()
    await pool.stop()


def test_allow_list_examples():
    entries = parse_allow("W:127.0.0.1,192.168/16,R:10.0.0.0/8,0/0")
    assert [(e.group, str(e.network)) for e in entries] == [
        ("W", "127.0.0.1/32"), ("R", "192.168.0.0/16"), ("R", "10.0.0.0/8"), ("R", "0.0.0.0/0")]


def test_hotplug_sets_the_device_managers_scan():
    """Without I/O: the request handler against a miner that has a device manager (not running)."""
    from miner.core.dispatch import Dispatcher
    from miner.core.engine import Miner
    from miner.devices.cpu import CpuDevice
    from miner.devices.manager import DeviceManager
    from miner.frontends.cgminer import handle_request
    from miner.frontends.view import MinerView
    from miner.sources.sandbox import SandboxSource

    dispatcher = Dispatcher()
    manager = DeviceManager(DispatcherWorkSource(dispatcher), lambda n: None, list_ports=lambda: [], hotplug=5.0,
                            cpu_factory=lambda: CpuDevice(DispatcherWorkSource(dispatcher), lambda n: None, threads=1))
    manager.setup()
    view = MinerView(Miner(SandboxSource(), [], dispatcher, manager=manager))

    def ask(request: str) -> dict:
        return json.loads(handle_request(request.encode(), view, "W")[:-1])["STATUS"][0]

    assert ask('{"command":"hotplug","parameter":"7"}')["Code"] == 100 and manager.hotplug == 7
    assert (json.loads(handle_request(b'{"command":"config"}', view, "W")[:-1])["CONFIG"][0]["Hotplug"]) == 7
    assert ask('{"command":"hotplug","parameter":"0"}')["Code"] == 101 and manager.scan_usb is False
    assert ask('{"command":"hotplug","parameter":"10000"}')["Code"] == 99
    assert ask('{"command":"hotplug","parameter":"3"}')["Code"] == 100 and manager.scan_usb is True
    assert ask('{"command":"hotplug","parameter":"3"}')["STATUS"] == "S"
    assert handle_request(b"hotplug|9", view, "R").startswith(b"STATUS=E,") and manager.hotplug == 3
