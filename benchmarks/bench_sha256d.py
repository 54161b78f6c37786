"""sha256d engines: MH/s per engine and thread count, the ratio to a Python hashlib loop, the
Python-side overhead per scan() call, and how the best engine compares with the reference CPU
miners measured on this machine kind (AMD EPYC, SHA-NI and AVX-512).

    python benchmarks/bench_sha256d.py [--seconds S] [--threads N] [--json]
"""

from __future__ import annotations

import argparse
import json

from miner.app import bench
from miner.core import hashing

# Per thread, median of 45-second runs on the same machine kind (figures from issue 2).
REFERENCE_MHS = {
    "cpuminer-opt avx512": 26.2,
    "cpuminer-opt sha-ni": 22.9,
    "cpuminer (pooler) avx2 asm": 15.4,
    "cpuminer-opt avx2": 10.0,
}


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
    print()
    print(f"Python side per scan() call, as a share of one {bench.CHUNK}-nonce call:")
    for engine, (per_call, fraction) in overhead.items():
        print(f"  {engine:<10} {per_call * 1e6:7.1f} us  {fraction * 100:6.3f} %")
    best_single = max((r for r in results if r.threads == 1 and r.engine != bench.NAIVE_ENGINE),
                      key=lambda r: r.mhs)
    print()
    print(f"Best engine on one thread: {best_single.engine} {best_single.mhs:.2f} MH/s")
    for name, mhs in REFERENCE_MHS.items():
        print(f"  vs {name:<28} {mhs:6.1f} MH/s/thread  ratio {best_single.mhs / mhs:5.2f}")
    for engine in {r.engine for r in results if r.engine != bench.NAIVE_ENGINE}:
        rows = {r.threads: r.mhs for r in results if r.engine == engine}
        if 1 in rows and len(rows) > 1:
            top = max(rows)
            print(f"  scaling {engine:<9} {top} threads / 1 thread = {rows[top] / rows[1]:.2f}x")


if __name__ == "__main__":
    main()
