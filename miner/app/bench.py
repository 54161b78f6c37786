"""Hash-rate measurement shared by `miner benchmark` and benchmarks/bench_sha256d.py."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import asdict, dataclass

from miner.core import hashing
from miner.core.targets import DIFF1_TARGET
from miner.devices.cpu import default_threads

NAIVE_ENGINE = "hashlib-loop"
CHUNK = 1 << 21


@dataclass(frozen=True)
class Result:
    engine: str
    threads: int
    mhs: float
    ratio: float  # to the naive hashlib loop on one thread

    def as_dict(self) -> dict:
        return asdict(self)


def naive_mhs(seconds: float) -> float:
    """The floor: a Python loop over hashlib, one thread."""
    prefix = os.urandom(76)
    sha256 = hashlib.sha256
    target = DIFF1_TARGET
    done = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        for nonce in range(done, done + 10_000):
            digest = sha256(sha256(prefix + nonce.to_bytes(4, "little")).digest()).digest()
            if int.from_bytes(digest, "little") <= target:
                pass
        done += 10_000
    return done / (time.perf_counter() - start) / 1e6


def engine_mhs(engine: str, threads: int, seconds: float) -> float:
    """Total MH/s of `threads` threads each scanning its own header for `seconds`."""
    counts = [0] * threads
    barrier = threading.Barrier(threads + 1)
    stop = threading.Event()

    def worker(index: int) -> None:
        header = os.urandom(80)
        pos = 0
        barrier.wait()
        while not stop.is_set():
            hashing.scan(header, pos, CHUNK, DIFF1_TARGET, engine)
            counts[index] += CHUNK
            pos = (pos + CHUNK) % (1 << 32)

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    return sum(counts) / elapsed / 1e6


def python_overhead(engine: str) -> tuple[float, float]:
    """(seconds of Python per scan() call, that as a fraction of one CHUNK-sized call).

    The per-call cost is taken from calls that hash almost nothing, so it is all binding overhead.
    """
    header = os.urandom(80)
    calls = 20_000
    t0 = time.perf_counter()
    for _ in range(calls):
        hashing.scan(header, 0, 1, DIFF1_TARGET, engine)
    per_call = (time.perf_counter() - t0) / calls
    t0 = time.perf_counter()
    hashing.scan(header, 0, CHUNK, DIFF1_TARGET, engine)
    chunk_time = time.perf_counter() - t0
    return per_call, per_call / chunk_time


def run(engines: list[str] | None = None, max_threads: int | None = None,
        seconds: float = 3.0) -> list[Result]:
    engines = engines or hashing.engines()
    max_threads = max_threads or default_threads()
    base = naive_mhs(min(seconds, 2.0))
    results = [Result(NAIVE_ENGINE, 1, base, 1.0)]
    for engine in engines:
        for threads in range(1, max_threads + 1):
            mhs = engine_mhs(engine, threads, seconds)
            results.append(Result(engine, threads, mhs, mhs / base))
    return results


def format_table(results: list[Result]) -> str:
    lines = [f"{'engine':<14} {'threads':>7} {'MH/s':>10} {'per thread':>10} {'x hashlib':>10}"]
    lines.append("-" * len(lines[0]))
    for r in results:
        per_thread = r.mhs / r.threads
        lines.append(f"{r.engine:<14} {r.threads:>7} {r.mhs:>10.2f} {per_thread:>10.2f} {r.ratio:>10.1f}")
    lines.append("")
    lines.append(measured_order())
    return "\n".join(lines)


def measured_order() -> str:
    """The engine order the miner picks from: its ~50 ms start-up calibration, fastest first."""
    order = " > ".join(f"{name} ({mhs:.1f} MH/s)" for name, mhs in hashing.engine_rates().items())
    return f"engine order from the start-up calibration (one thread, fastest first): {order}"
