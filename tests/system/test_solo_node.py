"""Solo mining against a real bcoin regtest node: blocks the node accepts, paying the address."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import subprocess
import sys

import pytest

from miner.app.compose import run_solo
from miner.app.settings import DeviceSettings, NodeSettings, RunSettings, Settings
from miner.sources.node.address import decode_address, encode_address, encode_segwit
from miner.sources.node.gbt import GbtSource
from tests.helpers.bcoin_node import ROOT, BcoinNode, free_port
from tests.helpers.txbuild import Key, Spend, p2wpkh_spend

P2WPKH_ADDRESS = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"  # docs/gbt.md §2.8
HASH160 = "751e76e8199196d454941c45d1b3a323f1433bd6"
PROGRAM32 = bytes(range(32))

# Every address type for regtest, with the output script written out by hand.
ADDRESSES = {
    "p2pkh": ("mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r", f"76a914{HASH160}88ac"),
    "p2sh": ("2N3vVYSK5XRgVSGWy21PnsRmBUywSQNdCsf", f"a914{HASH160}87"),
    "p2wpkh": (P2WPKH_ADDRESS, f"0014{HASH160}"),
    "p2wsh": (encode_address("p2wsh", PROGRAM32, "regtest"), "0020" + PROGRAM32.hex()),
    "p2tr": (encode_address("p2tr", PROGRAM32, "regtest"), "5120" + PROGRAM32.hex()),
}


@pytest.fixture(autouse=True)
def stats_in_tmp(tmp_path, monkeypatch):
    """run_solo goes through the composition root, which saves statistics: not in the user's data dir."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))


def options(node: BcoinNode, address: str = P2WPKH_ADDRESS, time_limit: float = 90, **node_settings) -> Settings:
    defaults = dict(rpc_url=node.url, rpc_password=node.api_key, address=address, retry_cap=0.5, rpc_timeout=10)
    return Settings(node=NodeSettings(**{**defaults, **node_settings}), devices=DeviceSettings(threads=1),
                    run=RunSettings(time_limit=time_limit, status_interval=60))


def subsidy(height: int) -> int:
    return (50 * 10**8) >> (height // 150)  # regtest halves every 150 blocks


def sats(btc: float) -> int:
    return round(btc * 10**8)


def height_in_coinbase(script_sig: bytes) -> int:
    """Read BIP34's height back the way Core writes it: OP_1..OP_16, or a minimal number push."""
    op = script_sig[0]
    if 0x51 <= op <= 0x60:
        return op - 0x50
    assert 1 <= op <= 5, f"not a height push: {script_sig.hex()}"
    number = script_sig[1 : 1 + op]
    assert not number[-1] & 0x80, "negative"
    if number[-1] == 0:  # a zero top byte is only there to clear the sign bit of the byte below
        assert len(number) > 1 and number[-2] & 0x80, "not minimal"
    return int.from_bytes(number, "little")


async def wait_until(condition, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def node_blocks(node: BcoinNode, first: int, last: int) -> list[dict]:
    return [node.block_at(h) for h in range(first, last + 1)]


# ------------------------------------------------------------------------------------ mining
async def test_mines_110_blocks_each_paying_the_address(regtest_node):
    node = regtest_node
    start = node.rpc("getblockcount")
    source = await run_solo(options(node, coinbase_tag="pyminer-test"), max_blocks=110)
    end = node.rpc("getblockcount")
    assert source.stats.accepted >= 110
    assert end - start == source.stats.accepted  # every block the miner counts, and no other
    assert source.stats.rejected_total == 0
    blocks = node_blocks(node, start + 1, end)
    assert [b["hash"] for b in blocks] == source.accepted_hashes
    for block in blocks:
        coinbase = block["tx"][0]
        script_sig = bytes.fromhex(coinbase["vin"][0]["coinbase"])
        assert height_in_coinbase(script_sig) == block["height"]
        assert b"pyminer-test" in script_sig
        assert 2 <= len(script_sig) <= 100
        payout = coinbase["vout"][0]
        assert payout["scriptPubKey"]["hex"] == ADDRESSES["p2wpkh"][1]
        assert sats(payout["value"]) == subsidy(block["height"])


@pytest.mark.parametrize("kind", sorted(ADDRESSES))
async def test_every_address_type_gets_paid_in_an_accepted_block(regtest_node, kind):
    node = regtest_node
    address, script = ADDRESSES[kind]
    assert decode_address(address).kind == kind
    start = node.rpc("getblockcount")
    source = await run_solo(options(node, address), max_blocks=2)
    end = node.rpc("getblockcount")
    assert end - start == source.stats.accepted >= 2
    for block in node_blocks(node, start + 1, end):
        assert block["hash"] in source.accepted_hashes
        assert block["tx"][0]["vout"][0]["scriptPubKey"]["hex"] == script


async def test_block_with_mempool_transactions_is_accepted(regtest_node):
    """Our own signed segwit transactions (one spending another) go through the template into a
    block the node accepts: the merkle tree over five leaves and the witness commitment are right."""
    node = regtest_node
    key = Key(hashlib.sha256(b"pyminer regtest key").digest())
    first = node.rpc("getblockcount") + 1
    # bcoin's own miner moves the chain past segwit activation (bcoin regtest: BIP9, height 432)
    # and matures coinbases paying our key; its regtest bech32 prefix is "rb".
    bcoin_address = encode_segwit("rb", 0, key.pkh)
    while True:
        node.rpc("generatetoaddress", 50, bcoin_address)
        rules = node.rpc("getblocktemplate", {"rules": ["segwit"]})["rules"]
        if "!segwit" in rules and node.rpc("getblockcount") >= first + 103:
            break
        assert node.rpc("getblockcount") < 1000, "segwit never activated"
    coinbases = [node.block_at(first + i)["tx"][0] for i in range(3)]
    for cb in coinbases:
        assert cb["vout"][0]["scriptPubKey"]["hex"] == key.p2wpkh_script.hex()
    values = [sats(cb["vout"][0]["value"]) for cb in coinbases]
    fee = 10_000
    p2pkh = bytes.fromhex(ADDRESSES["p2pkh"][1])
    raw1, txid1 = p2wpkh_spend([Spend(coinbases[0]["txid"], 0, values[0], key)],
                               [(values[0] - fee, key.p2wpkh_script)])
    raw2, txid2 = p2wpkh_spend([Spend(txid1, 0, values[0] - fee, key)], [(values[0] - 2 * fee, p2pkh)])  # a child
    raw3, txid3 = p2wpkh_spend([Spend(coinbases[1]["txid"], 0, values[1], key)],
                               [(values[1] // 2, key.p2wpkh_script), (values[1] // 2 - fee, p2pkh)])
    raw4, txid4 = p2wpkh_spend([Spend(coinbases[2]["txid"], 0, values[2], key)], [(values[2] - fee, p2pkh)])
    ours = {txid1, txid2, txid3, txid4}
    for raw in (raw1, raw2, raw3, raw4):
        node.rpc("sendrawtransaction", raw.hex())
    # bcoin answers sendrawtransaction before its mempool has taken the transaction
    await wait_until(lambda: ours <= set(node.rpc("getrawmempool")), 10, "our transactions in the mempool")

    start = node.rpc("getblockcount")
    source = await run_solo(options(node, ADDRESSES["p2tr"][0]), max_blocks=3)
    end = node.rpc("getblockcount")
    assert end - start == source.stats.accepted and source.stats.rejected_total == 0
    mined = {tx["txid"]: block for block in node_blocks(node, start + 1, end) for tx in block["tx"][1:]}
    assert ours <= mined.keys()
    assert node.rpc("getrawmempool") == []
    block = mined[txid1]
    assert block["hash"] in source.accepted_hashes
    assert len(block["tx"]) == 5  # coinbase + our four: an odd level in the merkle tree
    coinbase = block["tx"][0]
    assert coinbase["vin"][0]["txinwitness"] == ["00" * 32]
    assert any(o["scriptPubKey"]["hex"].startswith("6a24aa21a9ed") for o in coinbase["vout"])
    assert sats(coinbase["vout"][0]["value"]) == subsidy(block["height"]) + 4 * fee


# ------------------------------------------------------------------------------------ node trouble
def _run_in_background(opts: Settings, max_blocks: int | None = None) -> tuple[asyncio.Task, list[GbtSource]]:
    holder: list[GbtSource] = []
    return asyncio.create_task(run_solo(opts, max_blocks, on_source=holder.append)), holder


def _warnings(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


def _no_tracebacks(caplog) -> None:
    assert not [r for r in caplog.records if r.exc_info], "a node problem was logged with a traceback"


async def test_node_down_at_start_then_up(make_node, caplog):
    caplog.set_level(logging.INFO)
    node = make_node()  # not started yet
    task, holder = _run_in_background(options(node), max_blocks=3)
    await wait_until(lambda: "connection refused" in _warnings(caplog), 10, "the refused-connection message")
    assert not task.done()
    await asyncio.to_thread(node.start)
    source = await asyncio.wait_for(task, 60)
    assert source is holder[0]
    assert source.stats.accepted >= 3
    assert node.rpc("getblockcount") == source.stats.accepted
    assert f"node {node.url} answers again" in caplog.text
    _no_tracebacks(caplog)


async def test_wrong_password_is_one_clear_line_and_mining_resumes_with_the_right_one(make_node, caplog):
    caplog.set_level(logging.INFO)
    port = free_port()
    wrong = make_node(port=port, api_key="not-the-miners")
    await asyncio.to_thread(wrong.start)
    task, holder = _run_in_background(options(wrong, rpc_password="miners-password"), max_blocks=3)
    await wait_until(lambda: "HTTP 401, wrong RPC credentials" in _warnings(caplog), 10, "the 401 message")
    lines = [r.getMessage() for r in caplog.records if "401" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]  # said once, not at every retry
    assert wrong.rpc("getblockcount") == 0
    # The node restarts with the password the miner has (as when Core rewrites its cookie).
    wrong.stop()
    right = make_node(port=port, api_key="miners-password")
    await asyncio.to_thread(right.start)
    source = await asyncio.wait_for(task, 60)
    assert source.stats.accepted >= 3
    assert right.rpc("getblockcount") == source.stats.accepted
    _no_tracebacks(caplog)


async def test_node_dies_mid_run_and_comes_back(make_node, caplog):
    caplog.set_level(logging.INFO)
    port = free_port()
    node = make_node(port=port)
    await asyncio.to_thread(node.start)
    task, holder = _run_in_background(options(node, time_limit=120))
    await wait_until(lambda: holder and holder[0].stats.accepted >= 5, 30, "five blocks")
    source = holder[0]
    node.stop(kill=True)
    await wait_until(lambda: "connection refused" in _warnings(caplog), 15, "the node-down message")
    before = source.stats.accepted
    assert not task.done()
    # A regtest node with its chain in memory comes back at height 0: the old template is stale.
    again = make_node(port=port)
    await asyncio.to_thread(again.start)
    await wait_until(lambda: source.stats.accepted >= before + 5, 30, "five blocks on the new node")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    height = again.rpc("getblockcount")
    assert height >= 5
    assert {b["hash"] for b in node_blocks(again, 1, height)} <= set(source.accepted_hashes)
    assert source.stats.accepted == before + height
    _no_tracebacks(caplog)


# ------------------------------------------------------------------------------------ command line
def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "miner", "solo", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_cli_mines_and_shows_height_difficulty_and_block_counts(regtest_node):
    node = regtest_node
    start = node.rpc("getblockcount")
    proc = run_cli("--rpc-url", node.url, "--rpc-user", "x", "--rpc-pass", node.api_key, "--address",
                   ADDRESSES["p2sh"][0], "-t", "1", "--time-limit", "4", "--status-interval", "1")
    assert proc.returncode == 0, proc.stderr
    final = [line for line in proc.stderr.splitlines() if "final:" in line][-1]
    assert "netdiff 4.657e-10" in final and "height " in final
    counts = final.split("blocks found/accepted/rejected ")[1].split()[0]
    found, accepted, rejected = map(int, counts.split("/"))
    assert accepted > 0 and rejected == 0 and found == accepted
    assert node.rpc("getblockcount") - start == accepted
    assert "accepted at height" in proc.stderr


def test_cli_address_for_another_network_is_one_clear_error(regtest_node):
    proc = run_cli("--rpc-url", regtest_node.url, "--rpc-pass", regtest_node.api_key, "--address",
                   "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "--time-limit", "20")
    assert proc.returncode == 2
    assert "is a main address, but the node is on 'regtest'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_bad_checksum_is_one_clear_error_before_any_connection():
    typo = P2WPKH_ADDRESS[:-1] + ("q" if P2WPKH_ADDRESS[-1] != "q" else "p")
    proc = run_cli("--rpc-url", "http://127.0.0.1:9", "--address", typo)
    assert proc.returncode == 2
    assert "bad checksum" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_solo_mines_with_an_emulated_board(regtest_node, tmp_path):
    """A board (the Avalon emulator on a pty) instead of the CPU: its nonces become accepted blocks."""
    difficulty = "0.001"
    link = tmp_path / "auc"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    emulator = subprocess.Popen([sys.executable, "-m", "miner", "emulate", "avalon", "--model", "avalon4", "--rate",
                                 "0.02", "--difficulty", difficulty, "--link", str(link)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert emulator.stdout.readline().strip() == str(link)
        start = regtest_node.rpc("getblockcount")
        proc = run_cli("--rpc-url", regtest_node.url, "--rpc-pass", regtest_node.api_key, "--address",
                       ADDRESSES["p2wsh"][0], "--device", f"avalon:{link},difficulty={difficulty}", "--no-cpu",
                       "--hotplug", "0", "--blocks", "2", "--time-limit", "120", "--status-interval", "1")
        assert proc.returncode == 0, proc.stderr[-3000:]
        final = [line for line in proc.stderr.splitlines() if "final:" in line][-1]
        found, accepted, rejected = map(int, final.split("blocks found/accepted/rejected ")[1].split()[0].split("/"))
        # --blocks 2 ends the run on the event (two accepted blocks), not after a fixed window that a
        # loaded machine's emulator may not fill; --time-limit only bounds a run that finds none.
        assert accepted >= 2 and rejected == 0, final
        assert "cpu" not in final.lower().split("|")[0]
        assert regtest_node.rpc("getblockcount") - start == accepted
    finally:
        emulator.terminate()
        emulator.wait(5)


async def test_cli_solo_serves_the_apis_reads_the_config_file_and_saves_statistics(regtest_node, tmp_path):
    """`miner solo` goes through the same composition root as pool mining: cgminer API, REST,
    /metrics, the config file (here its hotplug; its pools are ignored) and the statistics file."""
    import json
    import signal

    import aiohttp

    from tests.helpers.api_helpers import api

    node = regtest_node
    api_port, http_port = free_port(), free_port()
    config, stats = tmp_path / "miner.toml", tmp_path / "stats.json"
    config.write_text('[miner]\nhotplug = 7\n[[pool]]\nurl = "stratum+tcp://pool.example:3333"\nuser = "me"\n')
    start = node.rpc("getblockcount")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "miner", "solo", "--rpc-url", node.url, "--rpc-pass", node.api_key, "--address",
        P2WPKH_ADDRESS, "-t", "1", "--api-listen", "--api-port", str(api_port), "--http", f"127.0.0.1:{http_port}",
        "--config", str(config), "--stats-file", str(stats), "--no-tui", "--status-interval", "1",
        cwd=ROOT, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        async def accepted_blocks() -> int:
            try:
                return (await api(api_port, "summary"))["SUMMARY"][0]["Accepted"]
            except OSError:  # not listening yet
                return 0

        blocks = 0

        async def poll() -> bool:
            nonlocal blocks
            blocks = await accepted_blocks()
            return blocks >= 2

        deadline = asyncio.get_running_loop().time() + 60
        while not await poll():
            assert process.returncode is None and asyncio.get_running_loop().time() < deadline, "no blocks via API"
            await asyncio.sleep(0.2)
        assert (await api(api_port, "config"))["CONFIG"][0]["Hotplug"] == 7  # from the file
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{http_port}/api/summary") as response:
                assert response.status == 200
                rest = await response.json()
            async with session.get(f"http://127.0.0.1:{http_port}/metrics") as response:
                assert response.status == 200
                metrics = await response.text()
        assert rest["accepted"] >= blocks >= 2
        assert 'miner_shares_total{result="accepted"}' in metrics
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = err.decode()
    assert process.returncode == 0, log[-3000:]
    assert "the file's pools are ignored" in log and "SIGTERM: stopping devices" in log
    final = [line for line in log.splitlines() if "final:" in line][-1]
    accepted = int(final.split("blocks found/accepted/rejected ")[1].split()[0].split("/")[1])
    assert accepted >= 2 and node.rpc("getblockcount") - start == accepted
    saved = json.loads(stats.read_text())
    assert saved["format"] == 1 and saved["best_all_time"] > 0
