"""Where the sha-ni engine's ceiling is on this CPU (issue 17: "why it stops there").

    python benchmarks/bench_shani_ports.py [--reps N]

Three parts, all printed as tables with the command that made them:

1. The instructions the kernel is made of, measured here: latency (one dependent chain) and
   inverse throughput (eight independent chains) of sha256rnds2, sha256msg1, sha256msg2, paddd,
   palignr, pshufd, and pairs of them issued together (do they share an execution pipe?).
2. The instruction count per nonce of scan_shani as built into miner/_sha256d (objdump of the
   extension; the loop body hashes SHANI_STREAMS nonces, so counts are divided by that).
3. The floors that follow, in core cycles per nonce: the rnds2 throughput floor (rnds2 per nonce x
   inverse throughput), the latency floor (one nonce's rnds2 chain x latency / streams), and the
   measured throughput of the kernel's own per-nonce instruction mix issued as independent ops
   (the port floor: what the pipes allow even with every dependency hidden). Then the kernel itself,
   best of short scans in thread CPU time.

The VM has no PMU (perf stat: cycles not supported), so core cycles come from the core clock
measured with a dependent chain of 64-bit adds (one per cycle): TSC ticks are not core cycles
(the TSC runs at the nominal 2445 MHz, the core at ~2.9-3.0 GHz). Times are thread CPU time, best
of N, because other processes load the two cores; the best run is the least disturbed.

Measured on the Zen 3 machine, 2026-12-02 (README.md "How fast sha-ni is, and why it stops
there"): rnds2 latency 3.9-4.0 cycles, one per cycle; msg2 latency 3, one per 2 cycles; msg1 0.6;
floors 61 (rnds2 throughput), 80 (latency over 3 streams), 94-100 (the mix); the engine 102-116.
Variants of scan_shani tried on the way, each timed side by side with the shipped one (TSC
ticks/nonce, best of 41-61 runs; differences under ~2% are noise there): 4 streams 88-93 vs 86-91,
VEX encoding (target "sha,avx": no register copies) the same at 3 and 4 streams, the high K+W half
of the second rnds2 taken through memory (movq) instead of pshufd 128 (store-forward latency on the
chain), the constant groups' high halves precomputed the same (GCC had hoisted them already),
without the pre-allocation scheduler 92.6 vs 89.2, other scheduler/IRA options the same. None
went in.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from miner.core import hashing

STREAMS = 3  # native/sha256d.c SHANI_STREAMS (the engine's default build)

# (label, asm body of one group, ops per group): the body is repeated 100 times per loop pass.
DEP = "{op} %%xmm2, %%xmm1\\n\\t"


def chain(op: str, n: int, src: str = "%%xmm9") -> str:
    """n independent chains (dst xmm1..xmmn) of op with a fixed source."""
    return "".join(f"{op} {src}, %%xmm{r}\\n\\t" for r in range(1, n + 1))


def pairs(op_a: str, op_b: str) -> str:
    """four op_a and four op_b, interleaved, all independent."""
    return "".join(f"{op_a} %%xmm9, %%xmm{r}\\n\\t{op_b} %%xmm10, %%xmm{r + 4}\\n\\t" for r in range(1, 5))


CASES: list[tuple[str, str, float]] = [
    ("sha256rnds2 latency", "sha256rnds2 %%xmm0, %%xmm2, %%xmm1\\n\\t", 1),
    ("sha256rnds2 inverse throughput", "".join(f"sha256rnds2 %%xmm0, %%xmm9, %%xmm{r}\\n\\t" for r in range(1, 9)), 8),
    ("sha256msg1 latency", DEP.format(op="sha256msg1"), 1),
    ("sha256msg1 inverse throughput", chain("sha256msg1", 8), 8),
    ("sha256msg2 latency", DEP.format(op="sha256msg2"), 1),
    ("sha256msg2 inverse throughput", chain("sha256msg2", 8), 8),
    ("paddd latency", DEP.format(op="paddd"), 1),
    ("paddd inverse throughput", chain("paddd", 8), 8),
    ("palignr latency", DEP.format(op="palignr $4,"), 1),
    ("palignr inverse throughput", chain("palignr $4,", 8), 8),
    ("pshufd inverse throughput", chain("pshufd $14,", 8), 8),
]
PAIR_CASES = [
    ("4 rnds2 + 4 msg2", "sha256rnds2 %%xmm0,", "sha256msg2"),
    ("4 rnds2 + 4 msg1", "sha256rnds2 %%xmm0,", "sha256msg1"),
    ("4 rnds2 + 4 palignr", "sha256rnds2 %%xmm0,", "palignr $4,"),
    ("4 rnds2 + 4 pshufd", "sha256rnds2 %%xmm0,", "pshufd $14,"),
    ("4 rnds2 + 4 paddd", "sha256rnds2 %%xmm0,", "paddd"),
    ("4 msg1 + 4 msg2", "sha256msg1", "sha256msg2"),
]
MIX_OPS = {  # mnemonic in objdump -> asm template writing xmm{r} from a fixed source
    "sha256rnds2": "sha256rnds2 %%xmm0, %%xmm9, %%xmm{r}",
    "sha256msg2": "sha256msg2 %%xmm10, %%xmm{r}",
    "sha256msg1": "sha256msg1 %%xmm11, %%xmm{r}",
    "palignr": "palignr $4, %%xmm12, %%xmm{r}",
    "pshufd": "pshufd $14, %%xmm13, %%xmm{r}",
    "paddd": "paddd %%xmm14, %%xmm{r}",
}
CLOBBER = ", ".join(f'"xmm{i}"' for i in range(16))


def mix_body(counts: dict[str, int]) -> str:
    """The per-nonce mix spread evenly, each op on one of 8 rotating registers (dependencies
    between them are far apart, so the loop measures the pipes, not latency)."""
    total = sum(counts.values())
    done = dict.fromkeys(counts, 0)
    out = []
    for i in range(total):
        op = max(counts, key=lambda k: counts[k] * (i + 1) / total - done[k])
        done[op] += 1
        out.append(MIX_OPS[op].format(r=1 + i % 8) + "\\n\\t")
    return "".join(out)


def program(mixes: list[tuple[str, dict[str, int]]], reps: int) -> str:
    funcs, calls = [], []
    all_cases = [(label, body, per, 100) for label, body, per in CASES]
    all_cases += [(label, pairs(a, b), 4, 100) for label, a, b in PAIR_CASES]
    all_cases += [(label, mix_body(counts), 1, 1) for label, counts in mixes]
    for i, (label, body, per, copies) in enumerate(all_cases):
        loops = 200000 if copies == 100 else 20000
        funcs.append(f"""
static double case{i}(void) {{
    double best = 1e9;
    for (int rep = 0; rep < {reps}; rep++) {{
        double t0 = tcpu();
        for (long i = 0; i < {loops}; i++)
            __asm__ volatile({'R100("' + body + '")' if copies == 100 else '"' + body + '"'} ::: {CLOBBER});
        double t = tcpu() - t0;
        if (t < best) best = t;
    }}
    return best / ({loops}.0 * {copies}) / {per};
}}""")
        calls.append(f'    printf("%s\\t%.3f\\n", "{label}", case{i}() * clk);')
    return f"""
#include <stdio.h>
#include <time.h>
static double tcpu(void) {{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}}
#define R10(x) x x x x x x x x x x
#define R100(x) R10(R10(x))
static double add_chain(void) {{
    double best = 1e9;
    for (int rep = 0; rep < {reps}; rep++) {{
        double t0 = tcpu();
        for (long i = 0; i < 200000; i++) __asm__ volatile(R100("add $1, %%rax\\n\\t") ::: "rax");
        double t = tcpu() - t0;
        if (t < best) best = t;
    }}
    return best / 2e7;
}}
{''.join(funcs)}
int main(void) {{
    double clk = 1.0 / add_chain();
    printf("clock\\t%.1f\\n", clk / 1e6);
{chr(10).join(calls)}
    return 0;
}}
"""


def extension() -> Path:
    """The built core (the cffi extension miner.core.hashing loads)."""
    spec = importlib.util.find_spec("miner._sha256d")
    if spec is None or not spec.origin:
        raise SystemExit("the native core is not built: pip install -e .")
    return Path(spec.origin)


def kernel_counts() -> dict[str, float]:
    """Instructions per nonce in scan_shani's loop as built into the extension (objdump)."""
    so = extension()
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(so)], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"<scan_shani>:\n(.*?)\n\n", out, re.S)
    if not m:
        raise SystemExit("objdump: no scan_shani in the extension (stripped build?)")
    counts: dict[str, int] = {}
    for line in m.group(1).splitlines():
        parts = line.split()
        if len(parts) >= 2:
            counts[parts[1]] = counts.get(parts[1], 0) + 1
    counts["(all)"] = sum(counts.values())
    # The function is the loop body (STREAMS nonces) plus set-up and the tail; rnds2 appear only in
    # the body, 61 per nonce, so the body share is taken from them.
    return {k: v / STREAMS for k, v in counts.items()}


def kernel_rate(reps: int) -> float:
    """sha-ni MH/s on one thread: best of reps short scans in thread CPU time."""
    header = bytes(range(80))
    n = 1 << 19
    best = 1e9
    for i in range(reps):
        t0 = time.thread_time()
        hashing.scan(header, i * n, n, 1, "sha-ni")
        best = min(best, time.thread_time() - t0)
    return n / best / 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=9, help="runs per case; the best is kept")
    args = p.parse_args()
    if "sha-ni" not in hashing.engines():
        raise SystemExit("this CPU has no SHA extensions: nothing to measure")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})  # one core, as taskset -c would

    per_nonce = kernel_counts()
    ours = {op: round(per_nonce.get(op, 0)) for op in MIX_OPS}
    # cpuminer-opt 26.x scanhash_sha256d_sha (JayDDee/cpuminer-opt algo/sha/sha256d.c, with
    # sha256_ni2x_final_rounds and sha256_ni2x_transform_le of algo/sha/sha256-hash.c), counted by
    # objdump of its loop built with its own -O3 -march=native, per nonce (two per pass; 2026-12-02).
    cpuopt = {"sha256rnds2": 62, "sha256msg2": 24, "sha256msg1": 21, "palignr": 25, "pshufd": 31, "paddd": 53}
    mixes = [("mix: rnds2 only", {"sha256rnds2": ours["sha256rnds2"]}),
             ("mix: rnds2 + msg2", {k: ours[k] for k in ("sha256rnds2", "sha256msg2")}),
             ("mix: ours without msg2", {k: v for k, v in ours.items() if k != "sha256msg2"}),
             ("mix: ours (per nonce)", ours),
             ("mix: cpuminer-opt (per nonce)", cpuopt)]
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise SystemExit("no C compiler (cc): apt-get install gcc")
    with tempfile.TemporaryDirectory() as tmp:
        src, binary = Path(tmp) / "ports.c", Path(tmp) / "ports"
        src.write_text(program(mixes, args.reps))
        subprocess.run([cc, "-O1", str(src), "-o", str(binary)], check=True)
        rows = [line.split("\t") for line in subprocess.run([str(binary)], capture_output=True, text=True,
                                                             check=True).stdout.splitlines()]
    table = {label: float(v) for label, v in rows}
    clock = table.pop("clock")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"core clock (dependent add chain): {clock:.0f} MHz; TSC (cpuinfo) is the nominal clock")
    print()
    print(f"{'instruction(s)':<34} {'core cycles':>11}")
    for label, cycles in table.items():
        if not label.startswith("mix"):
            unit = "per pair" if "+" in label else "per op"
            print(f"{label:<34} {cycles:>11.2f}  {unit}")
    print()
    print(f"scan_shani per nonce (objdump of {extension().name}, loop of {STREAMS} nonces):")
    shown = ["sha256rnds2", "sha256msg2", "sha256msg1", "paddd", "pshufd", "palignr", "movdqa", "movaps", "(all)"]
    print("  " + "  ".join(f"{op} {per_nonce.get(op, 0):.0f}" for op in shown))
    print()
    rnds2 = per_nonce["sha256rnds2"]
    lat = table["sha256rnds2 latency"]
    tput = table["sha256rnds2 inverse throughput"]
    rate = kernel_rate(max(args.reps, 15))
    print(f"{'floor / measurement':<44} {'cycles/nonce':>12}")
    label = f"rnds2 throughput floor ({rnds2:.0f} x {tput:.2f})"
    print(f"{label:<44} {rnds2 * tput:>12.1f}")
    label = f"rnds2 latency floor ({rnds2:.0f} x {lat:.2f} / {STREAMS} streams)"
    print(f"{label:<44} {rnds2 * lat / STREAMS:>12.1f}")
    for label, cycles in table.items():
        if label.startswith("mix"):
            print(f"{label:<44} {cycles:>12.1f}")
    label = f"sha-ni engine, measured ({rate:.2f} MH/s)"
    print(f"{label:<44} {clock / rate:>12.1f}")


if __name__ == "__main__":
    main()
