"""Host cost per device: the miner process's own CPU time while it drives 1, 10 and 50 emulated
Antminer U3 sticks at a real U3's nonce rate, and the share path's cost per nonce.

    python benchmarks/bench_host_cost.py [--sticks 1,10,50] [--seconds S] [--nonce-rate R] [--json]

How it measures (docs/testing.md, "benchmarks"):
- The emulators run in a child process of their own (one process for all sticks), so their
  hashing is not counted; the miner is `python -m miner` in another child, driving every stick
  through its pty with `--device icarus:PTY,model=u3,difficulty=D`. Only the miner's CPU time is
  read (utime + stime of /proc/PID/stat, all its threads), over a window that starts after the
  golden-nonce tests and the timing fit's first learning window (--warmup), so start-up is not
  counted. The port pump's C thread (native/portpump.c) is one of the miner's threads: counted.
- A U3 at ~60 GH/s finds 60e9 / 2**32 ~ 14 nonces a second at difficulty 1. The emulators hash
  for real, so each reports at a tiny difficulty D (2**-20: 4096 hashes a nonce) at the rate that
  gives the same nonce rate: 14 * 2**32 * D H/s each. The miner sees the nonce traffic of a real
  U3 (the pool's share difficulty is far above, as it is on a real pool: nonces are checked and
  counted, a few are submitted to the sandbox).
- The work traffic is that of a real U3 too: the driver starts from the U3's nominal range time
  (2**32 hashes at 60 GH/s: 72 ms) and, as the emulator's nonces all come early in a range (under
  the 65536 hashes the timing fit ignores, docs/icarus.md §A5), keeps sending work every 72 ms.
  The cost of one work unit (cut from the job, midstate, packet) is also timed on its own.
- Per nonce through the share path (Miner._check: rebuild the header, hash it once, classify,
  the device's verdict) is timed in this process with `time.process_time` over many nonces.
- 0 sticks is the idle miner: the same command with one stick that is not plugged in (NoDevice,
  its port tried once a second): the process's fixed cost (timers, the sandbox, statistics).
- loop %: the event loop's thread alone (an Icarus stick mines there, docs/architecture.md,
  "Host cost"); wakes/s: context switches of all the miner's threads (/proc/PID/task/*/status),
  what most of the cost follows: on a busy machine each wake costs tens of microseconds of CPU
  before any work is done.
CPU time depends less on other load than wall time does, but not nothing: a wake on a machine
whose caches the other processes keep cold costs more, so compare runs made side by side (say the
load average). The nonce rates depend on load a little (the emulators hash on the same cores), so
the table gives the nonce rate each run really had.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

U3_HASHRATE = 60e9  # H/s, docs/icarus.md: a U3 at its default clock (63.6 GH/s nominal, ~60 seen)
NONCE_SPACE = 1 << 32
U3_NONCE_RATE = U3_HASHRATE / NONCE_SPACE  # ~14 nonces/s at difficulty 1
DEVICE_DIFFICULTY = 2.0 ** -20
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ the emulator host (child)
def serve_emulators(count: int, rate_ghs: float, difficulty: float) -> int:
    """Run `count` U3 emulators; print their pty paths, then answer 'count' with nonces sent."""
    from miner.drivers.icarus import protocol as p
    from miner.drivers.icarus.emulator import IcarusEmulator

    golden = p.WorkPacket.decode(p.GOLDEN_WORK).midstate

    class BenchU3(IcarusEmulator):
        """A U3 that answers the golden packet at a quarter of its rate. At difficulty 2**-20 the
        golden job's first two nonces are 2573 hashes apart (0x1bcf, 0x25ec): 45 ms at full pace,
        inside the driver's 50 ms wait for a fifth byte, so it would read two replies as one."""

        def _hash(self, packet: p.WorkPacket, generation: int, start: int, count: int, rate: float) -> None:
            super()._hash(packet, generation, start, count, rate / 4 if packet.midstate == golden else rate)

    emulators = [BenchU3("u3", rate_ghs=rate_ghs, difficulty=difficulty).start() for _ in range(count)]
    print(" ".join(e.device_path for e in emulators), flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "count":
                print(" ".join(f"{len(e.sent)}/{len(e.jobs)}" for e in emulators), flush=True)
            elif line.strip() == "quit":
                break
    finally:
        with ThreadPoolExecutor(max(1, len(emulators))) as pool:  # at once: each stop waits for its threads
            list(pool.map(IcarusEmulator.stop, emulators))
    return 0


def proc_cpu_seconds(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """utime + stime of one thread of a process, in seconds."""
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of every thread of a process so far: each time a
    thread slept (a select, a lock, the loop's epoll) and woke, or was preempted."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            text = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except FileNotFoundError:  # a thread that just ended
            continue
        total += sum(int(line.split()[1]) for line in text.splitlines() if "ctxt_switches" in line)
    return total


def scheduled_seconds(pid: int) -> float:
    """CPU time of every thread of a process from the scheduler's own clock (/proc/PID/task/*/schedstat,
    its first field: nanoseconds on a CPU). utime/stime are sampled at the timer tick, so a process
    that wakes for ~100 us, tens of times a second, is charged in whole ticks whenever a tick finds it
    running: for a nearly idle process this is the figure to trust."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
            continue
    return total / 1e9


def proc_threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def run_sticks(sticks: int, seconds: float, nonce_rate: float, warmup: float,
               profile: str | None = None) -> dict[str, float]:
    rate_ghs = nonce_rate * NONCE_SPACE * DEVICE_DIFFICULTY / 1e9
    env = dict(os.environ)
    emu = subprocess.Popen([sys.executable, __file__, "--serve", str(sticks), "--rate", repr(rate_ghs),
                            "--difficulty", repr(DEVICE_DIFFICULTY)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True, env=env)
    miner = None
    try:
        assert emu.stdout is not None and emu.stdin is not None
        paths = emu.stdout.readline().split()
        if len(paths) != sticks:
            raise SystemExit(f"emulator host gave {len(paths)} ptys, expected {sticks}")

        def sent() -> list[tuple[int, int]]:
            """(replies sent, jobs received) per stick."""
            emu.stdin.write("count\n")
            emu.stdin.flush()
            return [(int(r), int(j)) for r, j in (item.split("/") for item in emu.stdout.readline().split())]

        with tempfile.TemporaryDirectory() as home:
            env.update(XDG_CONFIG_HOME=f"{home}/config", XDG_DATA_HOME=f"{home}/data", XDG_STATE_HOME=f"{home}/state")
            command = [sys.executable, "-m", "miner", "--no-cpu", "--hotplug", "0", "--no-tui", "-q",
                       "--status-interval", "60", "--sandbox-diff", "0.01",
                       "--time-limit", str(warmup + seconds + 120)]
            for path in paths:
                command += ["--device", f"icarus:{path},model=u3,difficulty={DEVICE_DIFFICULTY!r}"]
            if not paths:  # 0 sticks: the idle miner, waiting for a stick that is not plugged in
                command += ["--device", f"icarus:{home}/no-stick,model=u3"]
            log_path = Path(home) / "miner.log"
            log_file = log_path.open("w")
            miner = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
            # Start-up (imports, golden-nonce tests) is over once every stick has taken real work
            # (the golden job is the first) and answered; a stick the miner gave up on is not counted.
            # On a loaded machine an emulator may answer the golden job late and the miner gives that
            # stick up (Dead): after 60 s the run goes on with the sticks that mine, and says how many.
            deadline = time.monotonic() + 60

            def starting() -> bool:
                if paths:
                    return min(jobs for _, jobs in sent()) < 5
                return "NoDevice" not in log_path.read_text()  # the idle miner is up once it said so

            while starting() and time.monotonic() < deadline:
                if miner.poll() is not None:
                    raise SystemExit(f"miner exited early: {log_path.read_text()[-2000:]}")
                time.sleep(0.5)
            time.sleep(warmup)
            before, cpu0, t0 = sent(), proc_cpu_seconds(miner.pid), time.monotonic()
            loop0, switches0 = thread_cpu_seconds(miner.pid, miner.pid), context_switches(miner.pid)
            sched0 = scheduled_seconds(miner.pid)
            spy = None
            if profile and profile.endswith(".strace"):  # syscall counts of every miner thread
                spy = subprocess.Popen(["strace", "-c", "-f", "-p", str(miner.pid), "-o", profile],
                                       stderr=subprocess.DEVNULL)
            elif profile:  # Python samples holding the GIL: where the interpreter's time goes
                kind = {".json": "speedscope", ".txt": "raw"}.get(Path(profile).suffix, "flamegraph")
                spy = subprocess.Popen(["py-spy", "record", "--pid", str(miner.pid), "--duration", str(int(seconds)),
                                        "--format", kind,
                                        "-o", profile, "--threads", "--gil", "--rate", "200"],
                                       stdout=subprocess.DEVNULL)
            time.sleep(seconds)
            after, cpu1, t1 = sent(), proc_cpu_seconds(miner.pid), time.monotonic()
            loop1, switches1 = thread_cpu_seconds(miner.pid, miner.pid), context_switches(miner.pid)
            sched1 = scheduled_seconds(miner.pid)
            if spy is not None:
                if profile and profile.endswith(".strace"):
                    spy.send_signal(signal.SIGINT)
                spy.wait()
            threads = proc_threads(miner.pid)
    finally:
        if miner is not None:
            miner.terminate()
            miner.wait(10)
        if emu.stdin is not None:
            try:
                emu.stdin.write("quit\n")
                emu.stdin.flush()
            except BrokenPipeError:
                pass
        try:
            emu.wait(30)
        except subprocess.TimeoutExpired:
            emu.kill()
            emu.wait()
    wall = t1 - t0
    nonces = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
    jobs = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
    mining = sum(1 for a, b in zip(after, before, strict=True) if a[1] > b[1])  # took work in the window
    user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    cpu = user + system
    return {"sticks": sticks, "seconds": wall, "cpu_seconds": cpu, "user_percent": 100 * user / wall,
            "system_percent": 100 * system / wall, "nonces": nonces, "threads": threads,
            "work_per_s": jobs / wall, "mining": mining, "loop_percent": 100 * (loop1 - loop0) / wall,
            "wakes_per_s": (switches1 - switches0) / wall,
            "sched_percent_per_stick": 100 * (sched1 - sched0) / wall / max(1, mining),
            "nonces_per_s": nonces / wall, "cpu_percent": 100 * cpu / wall,
            "percent_per_stick": 100 * cpu / wall / max(1, mining),
            "us_per_nonce": 1e6 * cpu / nonces if nonces else 0.0}


# ------------------------------------------------------------------ in-process parts
def share_path_cost(count: int = 20000) -> dict[str, float]:
    """CPU microseconds per nonce through Miner._check for an Icarus device (mostly 'work' verdicts)."""
    from miner.drivers.icarus.driver import IcarusDevice
    from miner.drivers.icarus.protocol import MODELS

    from miner.core import hashing
    from miner.core.dispatch import Dispatcher
    from miner.core.engine import Miner
    from miner.core.targets import difficulty_to_target
    from miner.core.work import Nonce
    from miner.devices.work_source import DispatcherWorkSource
    from miner.sources.sandbox import SandboxSource, genesis_job

    dispatcher = Dispatcher()
    source = SandboxSource(0.01)
    device = IcarusDevice(DispatcherWorkSource(dispatcher), lambda n: None, "ICA0", "/dev/null",
                          DEVICE_DIFFICULTY, MODELS["u3"])
    miner = Miner(source, [device], dispatcher, status_interval=0)
    dispatcher.set_job(genesis_job(difficulty_to_target(0.01)))
    work = dispatcher.next_work()
    assert work is not None
    target = device.target_for(work)
    found = hashing.scan(work.header, 0, 1 << 24, target)[:count]
    nonces = [Nonce(work.work_id, n, device="ICA0", found_at=time.monotonic()) for n in found]

    async def check_all() -> float:
        start = time.process_time()
        for nonce in nonces:
            await miner._check(nonce)  # noqa: SLF001 - the share path is what is measured
        return time.process_time() - start

    spent = asyncio.run(check_all())
    return {"nonces": len(nonces), "us_per_nonce": 1e6 * spent / len(nonces)}


def work_unit_cost(count: int = 5000) -> dict[str, float]:
    """CPU microseconds per work unit an Icarus driver sends: cut it, midstate, 64-byte packet."""
    from miner.drivers.icarus import protocol as p

    from miner.core import hashing
    from miner.core.dispatch import Dispatcher
    from miner.sources.sandbox import genesis_job

    dispatcher = Dispatcher()
    dispatcher.set_job(genesis_job())
    start = time.process_time()
    for _ in range(count):
        work = dispatcher.next_work()
        assert work is not None
        p.work_packet(hashing.midstate(work.header), work.header, 0)
    return {"units": count, "us_per_unit": 1e6 * (time.process_time() - start) / count}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sticks", default="1,10,50", help="comma-separated stick counts (default 1,10,50; "
                        "0: the idle miner, its one stick unplugged)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per run (default 20)")
    # 15 s: past the timing fit's first learning window, when each reply is read as it comes
    # (drivers/icarus/driver.py LEARN_REPLIES: 128 replies, ~9 s at these emulators' nonce rate).
    # That is the steady state; a real U3 opens a ~5 s window again every 600 s (docs/icarus.md §A5.2).
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds after start-up before measuring "
                        "(default 15: past the first learning window of the timing fit)")
    parser.add_argument("--nonce-rate", type=float, default=U3_NONCE_RATE,
                        help=f"nonces/s per stick (default {U3_NONCE_RATE:.1f}: a 60 GH/s U3 at difficulty 1)")
    parser.add_argument("--profile", metavar="FILE", help="profile the miner over the window of the last run: "
                        "FILE.svg flame graph, FILE.json speedscope or FILE.txt collapsed stacks (py-spy, PyPI), "
                        "FILE.strace syscall counts")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--difficulty", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        return serve_emulators(args.serve, args.rate, args.difficulty)

    # CPU time per operation, best of five: other load only ever adds to it (cold caches, steal)
    share = min((share_path_cost() for _ in range(5)), key=lambda r: r["us_per_nonce"])
    unit = min((work_unit_cost() for _ in range(5)), key=lambda r: r["us_per_unit"])
    counts = [int(n) for n in args.sticks.split(",")]
    runs = [run_sticks(n, args.seconds, args.nonce_rate, args.warmup, args.profile if i == len(counts) - 1 else None)
            for i, n in enumerate(counts)]
    if args.json:
        print(json.dumps({"share_path": share, "work_unit": unit, "runs": runs}, indent=2))
        return 0
    print(f"command: python benchmarks/bench_host_cost.py --sticks {args.sticks} --seconds {args.seconds:g}")
    print(f"emulated U3s (one process) report at difficulty 2**-20 at {args.nonce_rate:.1f} nonces/s each "
          "(60 GH/s at diff 1); the driver sends a U3 work every 72 ms; CPU time of the miner process only")
    print()
    print(f"{'sticks':>6} {'mining':>6} {'nonces/s':>9} {'work/s':>7} {'miner CPU %':>11} {'(user/sys)':>11} "
          f"{'loop %':>7} {'% per stick':>11} {'sched %/stick':>13} {'us/nonce':>9} {'wakes/s':>8} {'threads':>7}")
    for r in runs:
        split = f"{r['user_percent']:.1f}/{r['system_percent']:.1f}"
        print(f"{r['sticks']:>6} {r['mining']:>6} {r['nonces_per_s']:>9.1f} {r['work_per_s']:>7.1f} "
              f"{r['cpu_percent']:>11.2f} {split:>11} {r['loop_percent']:>7.2f} {r['percent_per_stick']:>11.3f} "
              f"{r['sched_percent_per_stick']:>13.3f} "
              f"{r['us_per_nonce']:>9.0f} {r['wakes_per_s']:>8.0f} {r['threads']:>7}")
    print("(mining: sticks that took work in the window, % per stick is over those; us/nonce: all of the "
          "miner's CPU time, work, polling and status included, over the nonces; loop %: the event loop's "
          "thread alone; sched %/stick: the same CPU time from the scheduler's ns clock (schedstat), not "
          "tick-sampled utime/stime; wakes/s: context switches of all the miner's threads)")
    print()
    print(f"{'operation':<48} {'figure':>10} {'target':>8} {'ratio':>7}")
    print(f"{'share path (Miner._check), us/nonce, best of 5':<48} {share['us_per_nonce']:>10.1f} {20:>8} "
          f"{share['us_per_nonce'] / 20:>7.2f}")
    print(f"{'work unit (cut+midstate+packet), us, best of 5':<48} {unit['us_per_unit']:>10.1f} {'':>8} {'':>7}")
    worst = max(r["percent_per_stick"] for r in runs)
    print(f"{'worst % of a core per stick':<48} {worst:>10.3f} {1:>8} {worst:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
