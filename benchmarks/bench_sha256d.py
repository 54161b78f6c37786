"""sha256d engines: MH/s per engine and thread count, the ratio to a Python hashlib loop, clock
cycles per nonce, the Python-side overhead per scan() call, and how the best engine compares with
reference CPU miners measured by this team on two machine kinds.

    python benchmarks/bench_sha256d.py [--seconds S] [--threads N] [--json]

Cycles per nonce use the clock /proc/cpuinfo reports ("cpu MHz"); on a virtual machine that is
usually the nominal (TSC) clock, not the boosted core clock, so read them as reference cycles.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from miner.app import bench
from miner.core import hashing

# MH/s per thread as this team measured them (not the projects' own published figures): the
# AMD EPYC Zen 4 machine (SHA-NI and AVX-512; medians of 45-second runs, issue 2) and the AMD EPYC
# Zen 3 machine (SHA-NI and AVX2, no AVX-512; one pinned thread, issue 17).
REFERENCE_MHS = {
    "zen4": {
        "cpuminer-opt avx512": 26.2,
        "cpuminer-opt sha-ni": 22.9,
        "cpuminer (pooler) avx2 asm": 15.4,
        "cpuminer-opt avx2": 10.0,
    },
    "zen3": {
        "cpuminer-opt 26.1 sha-ni (18-20)": 19.0,
    },
}


def cpu_mhz() -> float | None:
    """The clock the kernel reports for the first CPU, or None where there is no /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_kind() -> str:
    return "zen4" if "avx512" in hashing.engines() else "zen3"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--threads", type=int)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    results = bench.run(None, args.threads, args.seconds)
    overhead = {e: bench.python_overhead(e) for e in hashing.engines()}
    if args.json:
        print(json.dumps({"results": [r.as_dict() for r in results],
                          "python_overhead": {e: {"seconds_per_call": o[0], "fraction_of_chunk": o[1]}
                                              for e, o in overhead.items()}}, indent=1))
        return
    print(bench.format_table(results))
    mhz = cpu_mhz()
    if mhz:
        print()
        print(f"Cycles per nonce per thread at the reported {mhz:.0f} MHz:")
        for r in results:
            if r.engine != bench.NAIVE_ENGINE:
                print(f"  {r.engine:<10} {r.threads} thread(s) {mhz * r.threads / r.mhs:8.1f}")
    print()
    print(f"Python side per scan() call, as a share of one {bench.CHUNK}-nonce call:")
    for engine, (per_call, fraction) in overhead.items():
        print(f"  {engine:<10} {per_call * 1e6:7.1f} us  {fraction * 100:6.3f} %")
    best_single = max((r for r in results if r.threads == 1 and r.engine != bench.NAIVE_ENGINE),
                      key=lambda r: r.mhs)
    print()
    print(f"Best engine on one thread: {best_single.engine} {best_single.mhs:.2f} MH/s")
    kind = machine_kind()
    print(f"Reference miners as measured on the {kind} machine kind:")
    for name, mhs in REFERENCE_MHS[kind].items():
        print(f"  vs {name:<28} {mhs:6.1f} MH/s/thread  ratio {best_single.mhs / mhs:5.2f}")
    for engine in {r.engine for r in results if r.engine != bench.NAIVE_ENGINE}:
        rows = {r.threads: r.mhs for r in results if r.engine == engine}
        if 1 in rows and len(rows) > 1:
            top = max(rows)
            print(f"  scaling {engine:<9} {top} threads / 1 thread = {rows[top] / rows[1]:.2f}x")


if __name__ == "__main__":
    main()
