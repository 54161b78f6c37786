"""A browser and a miner process for the dashboard's tests and its benchmark: Debian's headless
chromium driven by Selenium, `miner` in a subprocess with --http on a free port, and test pools
on their own event loop in a thread (the browser calls block)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from tests.helpers.stratum_pool import StratumTestPool

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(predicate, timeout: float = 20.0, what: str = "condition", step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


class MinerProcess:
    """`miner` in a subprocess with --http on a free port; its log is kept for failures."""

    def __init__(self, args: list[str], launcher: list[str] | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - kept open for the process's life, closed in stop()
        command = launcher or ["-m", "miner"]
        self.proc = subprocess.Popen([sys.executable, *command, "--http", f"127.0.0.1:{self.port}", "--no-tui",
                                      "--status-interval", "30", *args], cwd=ROOT, stdout=self.log,
                                     stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        wait(self._up, what=f"the miner's HTTP listener ({self.output()})")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"miner exited: {self.output()}")
        try:
            get_json(self.base + "/api/summary")
            return True
        except OSError:
            return False

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class PoolThread:
    """Test pools served by their own event loop in a thread, so the synchronous browser code
    can run in the test's thread."""

    def __init__(self, count: int, difficulty: float = 0.002):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.pools = [StratumTestPool(difficulty=difficulty) for _ in range(count)]
        for pool in self.pools:
            asyncio.run_coroutine_threadsafe(pool.start(), self.loop).result(10)

    def stop(self) -> None:
        for pool in self.pools:
            asyncio.run_coroutine_threadsafe(pool.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def headless_chromium(profile: Path, width: int = 1280, height: int = 900):
    """Debian's chromium, headless, with a fresh profile and the DevTools network log on."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # every request the page makes
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def click(driver, selector: str) -> None:
    """Click what the selector finds; the page redraws its tables every second, so an element
    found a moment ago may have been replaced: find it again then."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def attempt() -> bool:
        try:
            driver.find_element(By.CSS_SELECTOR, selector).click()
            return True
        except StaleElementReferenceException:
            return False
    wait(attempt, what=f"a click on {selector}")


def device_states(driver) -> dict[str, str]:
    return driver.execute_script("return Object.fromEntries([...document.querySelectorAll("
                                 "'#devices tr[data-device]')].map(r => [r.dataset.device, r.dataset.state]))")


def requested_urls(driver) -> list[str]:
    """Every network URL the browser asked for, from the DevTools protocol's Network events (the
    browser's own chrome:// pages and data: URLs go over no network)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if url.split(":", 1)[0] in ("http", "https", "ws", "wss", "ftp"):
                urls.append(url)
            else:
                assert url.startswith(("chrome://", "data:", "about:", "blob:")), url
    return urls
