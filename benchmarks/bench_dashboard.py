"""The dashboard's numbers (issue 18), against a `miner` process mining two test pools with two
emulated devices (an Icarus U3 stick and a 4-chip BM1397 chain, each on its own pty):

- page weight: the bytes of the page, its script and its style sheet, uncompressed (bar < 200 KB),
  and the requests that left 127.0.0.1 (bar: none);
- time to first chart: navigation start to the chart's first draw with data, in headless
  chromium on loopback, median of 5 loads (bar < 1 s);
- CPU of the live updates: the miner process's CPU (utime + stime from /proc) over a window with
  no browser, then with 3 browsers open on the page (1 update/s each); the difference is what the
  updates cost (bar < 2 % of one core).

    python benchmarks/bench_dashboard.py [--seconds 20] [--shots DIR]

--shots DIR also saves desktop (1280 wide) and phone (390 wide) screenshots of the page, light and dark.
Prints a table and the command that made it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.helpers.browser_rig import (  # noqa: E402
    CHROMEDRIVER,
    CHROMIUM,
    ROOT,
    MinerProcess,
    PoolThread,
    headless_chromium,
    requested_urls,
    wait,
)

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of stat(5))


def cpu_share(pid: int, seconds: float) -> float:
    """The process's CPU over `seconds` of wall time, as a fraction of one core."""
    before, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - start)


def emulator(kind: str, *args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "miner", "emulate", kind, *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return proc, proc.stdout.readline().strip()


def page_weight(base: str) -> int:
    total = 0
    for path in ("/", "/dashboard/app.js", "/dashboard/style.css"):
        with urllib.request.urlopen(base + path) as response:
            total += len(response.read())
    return total


def screenshot(driver, base: str, width: int, path: Path, dark: bool = False) -> None:
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [
        {"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]})
    driver.set_window_size(width, 900)
    driver.get(base + "/")
    wait(lambda: driver.execute_script("return document.getElementById('live').textContent") == "live",
         what="the event stream")
    time.sleep(2.5)  # a few live updates and a share or two in the log
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, height + 100)
    time.sleep(0.5)
    driver.save_screenshot(str(path))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each CPU window")
    parser.add_argument("--shots", type=Path, help="save desktop.png, phone.png (and -dark) here")
    args = parser.parse_args()
    if CHROMIUM is None or CHROMEDRIVER is None:
        print("needs chromium and chromium-driver (apt-get install chromium chromium-driver)", file=sys.stderr)
        return 2
    pools = PoolThread(2, difficulty=0.002)
    icarus, icarus_path = emulator("icarus", "--model", "u3", "--rate", "0.004", "--difficulty", "0.001")
    chain, chain_path = emulator("bm13xx", "--chips", "4", "--rate", "0.004", "--difficulty", "0.001")
    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    urls = [f"stratum+tcp://127.0.0.1:{p.port}" for p in pools.pools]
    miner = MinerProcess(["-o", urls[0], "-u", "bench.1", "-p", "x", "-o", urls[1], "-u", "bench.2", "-p", "x",
                          "--device", f"icarus:{icarus_path},model=u3,difficulty=0.001",
                          "--device", f"bm1397:{chain_path},difficulty=0.001", "--no-cpu", "--http-token", "bench",
                          "--stats-file", str(work / "stats.json")])
    drivers = []
    rows = []
    try:
        weight = page_weight(miner.base)
        driver = headless_chromium(work / "profile0")
        drivers.append(driver)
        firsts = []
        for _ in range(5):
            driver.get(miner.base + "/?fresh=" + str(time.time()))
            firsts.append(wait(lambda: driver.execute_script(
                "const m = performance.getEntriesByName('first-chart'); return m.length && m[0].startTime"),
                what="the first chart") / 1000)
        external = [u for u in requested_urls(driver) if not u.startswith(miner.base + "/")]
        if args.shots is not None:
            args.shots.mkdir(parents=True, exist_ok=True)
            screenshot(driver, miner.base, 1280, args.shots / "desktop.png")
            screenshot(driver, miner.base, 390, args.shots / "phone.png")
            screenshot(driver, miner.base, 1280, args.shots / "desktop-dark.png", dark=True)
            screenshot(driver, miner.base, 390, args.shots / "phone-dark.png", dark=True)
        driver.get("about:blank")
        time.sleep(2)
        idle = cpu_share(miner.proc.pid, args.seconds)
        for i in range(1, 3):
            drivers.append(headless_chromium(work / f"profile{i}"))
        for d in drivers:
            d.get(miner.base + "/")
        for d in drivers:
            wait(lambda d=d: d.execute_script("return document.getElementById('live').textContent") == "live",
                 what="the event stream")
        watched = cpu_share(miner.proc.pid, args.seconds)
    finally:
        for d in drivers:
            d.quit()
        miner.stop()
        for proc in (icarus, chain):
            proc.terminate()
            proc.wait(10)
        pools.stop()
    cost = max(0.0, watched - idle)
    rows = [
        ("page weight (/, app.js, style.css)", f"{weight / 1024:.1f} KB",
         f"{weight / (200 * 1024):.2f} of the 200 KB bar"),
        ("requests beyond 127.0.0.1", str(len(external)), "bar: 0"),
        ("time to first chart (median of 5)", f"{statistics.median(firsts) * 1000:.0f} ms",
         f"{statistics.median(firsts):.2f} of the 1 s bar"),
        ("time to first chart (fastest of 5)", f"{min(firsts) * 1000:.0f} ms", f"{min(firsts):.2f} of the 1 s bar"),
        ("miner CPU, no browser", f"{idle * 100:.2f} % of a core", "baseline"),
        ("miner CPU, 3 browsers at 1 update/s", f"{watched * 100:.2f} % of a core", f"{watched / idle:.2f}x baseline"
         if idle > 0 else "-"),
        ("cost of the live updates", f"{cost * 100:.2f} % of a core", f"{cost / 0.02:.2f} of the 2 % bar"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'operation':<{width}}  {'figure':>18}  ratio")
    for name, figure, ratio in rows:
        print(f"{name:<{width}}  {figure:>18}  {ratio}")
    load = os.getloadavg()
    print(f"\nload average {load[0]:.1f} on {os.cpu_count()} cores while it ran (the browser's timing follows it)")
    print("command: python benchmarks/bench_dashboard.py " + " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
