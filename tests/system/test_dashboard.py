"""The dashboard in a real browser (Debian's headless chromium through Selenium) against a real
`miner` process: the chart draws the persisted history, a hot-plugged emulated stick gets a row
within 2 s and goes to NoDevice when pulled, a pool switch from the page needs the token, and the
page asks nothing of any host but 127.0.0.1. Plus the event stream's shutdown, without a browser."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from miner.frontends.http import HttpServer
from tests.helpers.api_helpers import running_miner, until
from tests.helpers.browser_rig import (
    CHROMEDRIVER,
    CHROMIUM,
    MinerProcess,
    PoolThread,
    click,
    device_states,
    get_json,
    headless_chromium,
    requested_urls,
    wait,
)
from tests.helpers.stratum_pool import StratumTestPool
from tests.helpers.usb_ports import write_ports

needs_browser = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
TOKEN = "s3cret-token"
U3 = {"vid": 0x10C4, "pid": 0xEA60, "product": "Antminer U3", "serial_number": "0042",
      "description": "CP2102 USB to UART"}


@pytest.fixture
def browser(tmp_path) -> Iterator:
    driver = headless_chromium(tmp_path / "chromium")
    try:
        yield driver
    finally:
        driver.quit()


def stats_file(path: Path, now: float) -> tuple[list, list]:
    """A statistics file as a miner that ran before would have left it: 30 one-minute points and
    12 five-second points, peaking at 42 MH/s."""
    minutes = [[now - 60 * (30 - i), (10 + i) * 1e6] for i in range(30)]
    minutes[17][1] = 42e6
    fives = [[now - 5 * (12 - i), 5e6 + i * 1e5] for i in range(12)]
    path.write_text(json.dumps({"format": 1, "saved_at": now, "best_all_time": 1234.5, "best_per_pool": {},
                                "rejects": {}, "history": {"5s": fives, "1m": minutes, "10m": [], "1h": []}}))
    return fives, minutes


@needs_browser
def test_chart_draws_the_persisted_history_with_no_request_beyond_loopback(browser, tmp_path):
    from selenium.webdriver.common.by import By

    fives, minutes = stats_file(tmp_path / "stats.json", time.time())
    miner = MinerProcess(["--stats-file", str(tmp_path / "stats.json"), "--threads", "1", "--sandbox-diff", "0.01"])
    try:
        browser.get(miner.base + "/")
        canvas = browser.find_element(By.ID, "chart")
        # the 5 s tab: the saved points, then the live ones the event stream adds
        wait(lambda: int(canvas.get_attribute("data-points") or 0) >= len(fives), what="the 5 s points drawn")
        browser.find_element(By.CSS_SELECTOR, "#ranges button[data-ring='1m']").click()
        wait(lambda: canvas.get_attribute("data-ring") == "1m", what="the 1 m tab")
        assert int(canvas.get_attribute("data-points")) == len(minutes) == 30
        note = browser.find_element(By.ID, "chart-note").text
        assert note.startswith("30 samples") and "peak 42.00 MH/s" in note, note
        # the page follows the live stream: the uptime and the 5 s rate change without a reload
        wait(lambda: browser.find_element(By.ID, "live").text == "live", what="the event stream")
        first = browser.find_element(By.ID, "uptime").text
        wait(lambda: browser.find_element(By.ID, "uptime").text != first, what="a live update")
        assert browser.find_element(By.ID, "best-all").text == "1.23k"  # the saved all-time best, as format_difficulty
        assert browser.execute_script("return performance.getEntriesByName('first-chart').length") == 1
        # nothing but the miner itself was asked for (the DevTools log and the page's own record)
        urls = requested_urls(browser)
        entries = browser.execute_script("return performance.getEntries().map(e => e.name)"
                                         ".filter(n => n.includes('://'))")
        assert urls and all(u.startswith(miner.base + "/") for u in urls), urls
        assert all(u.startswith(miner.base + "/") for u in entries), entries
        assert {miner.base + "/dashboard/app.js", miner.base + "/api/history"} <= set(urls)
    finally:
        miner.stop()


@needs_browser
def test_a_hot_plugged_stick_appears_within_2s_and_goes_to_nodevice_when_pulled(browser, tmp_path):
    from miner.drivers.icarus.emulator import IcarusEmulator
    from selenium.webdriver.common.by import By

    ports = tmp_path / "ports.json"
    write_ports(ports, [])
    config = tmp_path / "miner.toml"
    config.write_text("[devices.icarus]\ndifficulty = 0.001\n")  # the emulator answers at this difficulty
    link = tmp_path / "ttyUSB0"
    miner = MinerProcess(["--config", str(config), "--hotplug", "0.3", "--threads", "1", "--sandbox-diff", "0.01",
                   "--stats-file", str(tmp_path / "stats.json")],
                  launcher=["-m", "tests.helpers.usb_ports", str(ports), "--"])
    emu = IcarusEmulator("u3", rate_ghs=0.004, difficulty=0.001, link=link).start()
    try:
        browser.get(miner.base + "/")
        wait(lambda: browser.find_element(By.ID, "live").text == "live", what="the event stream")
        rows = lambda: device_states(browser)  # noqa: E731
        assert "ICA0" not in rows()
        plugged = time.monotonic()
        write_ports(ports, [{"device": str(link), **U3}])
        wait(lambda: "ICA0" in rows(), timeout=10, what="the stick's row", step=0.02)
        took = time.monotonic() - plugged
        assert took < 2.0, f"the row took {took:.2f} s"
        wait(lambda: rows()["ICA0"] == "Alive", what="the stick Alive")
        emu.unplug()
        write_ports(ports, [])
        wait(lambda: rows()["ICA0"] == "NoDevice", timeout=10, what="NoDevice after the unplug")
        cell = browser.execute_script("const c = document.querySelector(\"#devices tr[data-device='ICA0'] "
                                      "td:nth-child(2)\"); return [c.textContent, c.className]")
        assert cell == ["NoDevice", "state-NoDevice"]
    finally:
        miner.stop()
        emu.stop()


@needs_browser
def test_a_pool_switch_from_the_page_needs_the_token(browser, tmp_path):
    from selenium.webdriver.common.by import By

    pools = PoolThread(2)
    urls = [f"stratum+tcp://127.0.0.1:{p.port}" for p in pools.pools]
    miner = MinerProcess(["-o", urls[0], "-u", "w.1", "-p", "x", "-o", urls[1], "-u", "w.2", "-p", "x",
                   "--http-token", TOKEN, "--threads", "1", "--stats-file", str(tmp_path / "stats.json")])
    try:
        api_pools = lambda: get_json(miner.base + "/api/pools")  # noqa: E731
        wait(lambda: [p["state"] for p in api_pools()] == ["Alive", "Alive"], what="both pools alive")
        browser.get(miner.base + "/")
        switch = "#pools tr[data-pool='1'] button"
        wait(lambda: browser.find_elements(By.CSS_SELECTOR, switch), what="the second pool's switch button")
        # without the token: refused, said so, and nothing changes
        click(browser, switch)
        message = browser.find_element(By.ID, "message")
        wait(lambda: message.text, what="the refusal")
        assert "bearer token" in message.text and "401" in message.text and "error" in message.get_attribute("class")
        assert [p["active"] for p in api_pools()] == [True, False]
        # with the token (entered once, kept in localStorage): the switch takes effect
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#tokenform button").click()
        assert browser.execute_script("return localStorage.getItem('miner-token')") == TOKEN
        click(browser, switch)
        wait(lambda: [p["active"] for p in api_pools()] == [False, True], what="pool 1 active")
        wait(lambda: browser.execute_script("return document.querySelector(\"#pools tr[data-pool='1']\")"
                                            ".dataset.active") == "true", what="the page marking pool 1 active")
        # the token stays after a reload: the page asks for it once
        browser.refresh()
        assert browser.execute_script("return localStorage.getItem('miner-token')") == TOKEN
    finally:
        miner.stop()
        pools.stop()


async def test_writes_from_another_origin_are_refused_and_streams_end_at_shutdown():
    pool = StratumTestPool(difficulty=0.002)
    await pool.start()
    async with running_miner([pool]) as (miner, view, server):
        http = HttpServer(view, "127.0.0.1", 0, token=TOKEN)
        base = f"http://127.0.0.1:{await http.start()}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession() as session:
            evil = {**auth, "Origin": "http://evil.example"}
            async with session.post(f"{base}/api/pools/0/disable", headers=evil) as r:
                assert r.status == 403 and "cross-site" in (await r.json())["error"]
                assert "Access-Control-Allow-Origin" not in r.headers
            async with session.post(f"{base}/api/pools", json={"url": "stratum+tcp://127.0.0.1:1"}) as r:
                assert r.status == 401
            async with session.post(f"{base}/api/pools", json={"url": "stratum+tcp://127.0.0.1:1", "user": "u"},
                                    headers={**auth, "Origin": base}) as r:
                assert r.status == 200 and (await r.json())["index"] == 1
            assert [p.url for p in view.pool_snapshots()][1] == "stratum+tcp://127.0.0.1:1"
            # what a pool or a user typed cannot end the page's embedded state (no markup injection)
            async with session.post(f"{base}/api/pools", json={"url": "stratum+tcp://127.0.0.1:2",
                                                               "user": "</script><b id=x>"}, headers=auth) as r:
                assert r.status == 200
            async with session.get(f"{base}/") as r:
                page = await r.text()
            assert "</script><b id=x>" not in page and "AxeOS" in page
            boot = page.split('<script id="boot" type="application/json">')[1].split("</script>")[0]
            assert json.loads(boot)["state"]["pools"][2]["user"] == "</script><b id=x>"
            streams = [await session.get(f"{base}/api/dashboard/events") for _ in range(3)]
            for stream in streams:
                assert stream.headers["Content-Type"] == "text/event-stream"
                assert (await stream.content.readline()) == b"retry: 3000\n"
            started = time.monotonic()
            await http.stop()  # open streams must not hold the stop
            assert time.monotonic() - started < 2.0
            for stream in streams:
                with contextlib.suppress(aiohttp.ClientError):
                    await asyncio.wait_for(stream.content.read(), 2)
                stream.release()
            # quit from the page's button: answered first, then the miner stops
            http = HttpServer(view, "127.0.0.1", 0, token=TOKEN)
            base = f"http://127.0.0.1:{await http.start()}"
            async with session.post(f"{base}/api/quit", headers={**auth, "Origin": base}) as r:
                assert r.status == 200 and (await r.json())["message"] == "stopping"
            # the miner's run ends: it closes its connection to the pool
            await until(lambda: not pool.active, timeout=20, what="the miner stopped by quit")
            await http.stop()
    await pool.stop()

