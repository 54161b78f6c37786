"""Does an engine that runs SHA-NI streams and AVX2 lanes side by side in one thread beat SHA-NI
alone? (issue 17: "measure SHA-NI and AVX2 lanes running together in one thread").

    python benchmarks/bench_shani_avx2.py [--runs N] [--nonces N]

It builds, with the compiler and flags native/build_ffi.py uses, a small C program that includes
native/sha256d.c unchanged and adds one engine, `scan_hybrid`: each loop pass hashes the SHA-NI
group (SHANI_STREAMS nonces, scan_shani's loop body) and one AVX2 group (8 lanes, the loop body of
native/sha256d_lanes.h with the AVX2 definitions) in one basic block, so the compiler's scheduler
(-fschedule-insns, sched-pressure, as scan_shani has) and the CPU's out-of-order window can
overlap the latency-bound sha256rnds2 chains with the AVX2 integer work. The bodies are taken from
the sources as text, so the experiment follows the engines as they change.

The program checks the hybrid's nonces against the portable engine at an easy target, then times
every engine in TSC ticks per nonce, best of N runs (other engineers load the cores; the best run
is the one least disturbed), and counts the loop bodies' instructions from the disassembly
(objdump), which do not depend on load. The machine has no PMU in its VM (perf stat: cycles not
supported), so cycles are TSC ticks.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NATIVE = ROOT / "native"


def between(text: str, start: str, end: str, include_end: bool = False) -> str:
    a = text.index(start)
    b = text.index(end, a)
    return text[a : b + (len(end) if include_end else 0)]


def program() -> str:
    core = (NATIVE / "sha256d.c").read_text()
    lanes = (NATIVE / "sha256d_lanes.h").read_text()
    shani = between(core, "static uint32_t scan_shani(", "    return scan_tail(ctx, start, i, count")
    shani_consts = between(shani, "    const __m128i ms_abef", "    uint32_t n_found = 0;")
    shani_body = between(shani, "        const uint32_t first = start + (uint32_t)i;",
                         "        if (take_streams(ctx, first, h7, SHANI_STREAMS")
    avx2_defs = between(core, "#define V __m256i", '#include "sha256d_lanes.h"')
    avx2_body = between(lanes, "        V a, b, c_, d, e, f, g, h, h7;",
                        "VADD(w12, VSET1(K256[60] + IV256[7])));", include_end=True)
    avx2_body = avx2_body.replace("V a, b, c_, d, e, f, g, h, h7;", "V a, b, c_, d, e, f, g, h;")
    return f"""
#include <stdio.h>
#include <stdlib.h>
#include <x86intrin.h>
#include "sha256d.c"

{avx2_defs}
#define RND(a, b, c, d, e, f, g, h, x)                                          \\
    do {{                                                                        \\
        V t1_ = VADD(VADD(h, BSIG1(e)), VADD(CH(e, f, g), (x)));                \\
        d = VADD(d, t1_);                                                       \\
        h = VADD(t1_, VADD(BSIG0(a), MAJ(a, b, c)));                            \\
    }} while (0)
#define SCHED(w, wm2, wm7, wm15) w = VADD(VADD(SSIG1(wm2), wm7), VADD(SSIG0(wm15), w))
#define GROUP (SHANI_STREAMS + 8)

__attribute__((target("avx2,sha,sse4.1"))) SHANI_SCHEDULE
static uint32_t scan_hybrid(const struct scan_ctx *ctx, uint32_t start, uint64_t count,
                            uint32_t *found, uint32_t cap, uint64_t *scanned)
{{
{shani_consts}
    uint32_t n_found = 0;
    uint64_t i = 0;
    for (; i + GROUP <= count; i += GROUP) {{
        V h7;
        {{
{shani_body}
            if (take_streams(ctx, first, h7, SHANI_STREAMS, i, found, &n_found, cap, scanned))
                return n_found;
        }}
        {{
            V nonces = VNONCES(start + (uint32_t)i + SHANI_STREAMS);
{avx2_body}
            uint32_t mask = VLE_MASK(VBSWAP(h7), ctx->target[7]);
            while (mask) {{
                uint32_t lane = CTZ32(mask);
                uint32_t nonce = start + (uint32_t)i + SHANI_STREAMS + lane;
                mask &= mask - 1;
                if (check_nonce(ctx, nonce)) {{
                    found[n_found++] = nonce;
                    if (n_found == cap) {{
                        *scanned = i + SHANI_STREAMS + lane + 1;
                        return n_found;
                    }}
                }}
            }}
        }}
    }}
    return scan_tail(ctx, start, i, count, found, n_found, cap, scanned);
}}

typedef uint32_t (*scan_fn)(const struct scan_ctx *, uint32_t, uint64_t, uint32_t *, uint32_t, uint64_t *);

static int cmp_u32(const void *a, const void *b)
{{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}}

int main(int argc, char **argv)
{{
    uint64_t nonces = argc > 1 ? strtoull(argv[1], NULL, 0) : (1u << 22);
    int runs = argc > 2 ? atoi(argv[2]) : 7;
    uint8_t header[80], target[32];
    for (int k = 0; k < 80; k++) header[k] = (uint8_t)(k * 37 + 11);
    struct scan_ctx ctx;
    static uint32_t a[1 << 16], b[1 << 16];
    uint64_t scanned;
    /* correctness first: every nonce <= an easy target (about 1 in 4096), hybrid against portable */
    memset(target, 0xff, sizeof(target));
    target[31] = 0x00; target[30] = 0x0f;
    scan_ctx_init(&ctx, header, target);
    for (uint32_t start = 0; start < 5; start++) {{
        uint64_t count = (1u << 20) + start * 3;
        uint32_t na = scan_portable(&ctx, start * 1000003u, count, a, 1 << 16, &scanned);
        uint32_t nb = scan_hybrid(&ctx, start * 1000003u, count, b, 1 << 16, &scanned);
        qsort(b, nb, sizeof(uint32_t), cmp_u32);
        if (na != nb || memcmp(a, b, na * sizeof(uint32_t)) != 0 || na == 0) {{
            printf("MISMATCH start %u: portable %u hybrid %u\\n", start, na, nb);
            return 1;
        }}
    }}
    printf("check: hybrid finds what portable finds over 5 ranges of 2^20 (%s)\\n", "ok");
    memset(target, 0, sizeof(target)); /* nothing found: pure scanning */
    scan_ctx_init(&ctx, header, target);
    const char *names[] = {{"sha-ni", "avx2", "hybrid"}};
    scan_fn fns[] = {{scan_shani, scan_avx2, scan_hybrid}};
    for (int e = 0; e < 3; e++) {{
        double best = 1e30;
        for (int r = 0; r < runs; r++) {{
            uint64_t t0 = __rdtsc();
            fns[e](&ctx, 0, nonces, a, 1, &scanned);
            uint64_t t1 = __rdtsc();
            double per = (double)(t1 - t0) / (double)nonces;
            if (per < best) best = per;
        }}
        printf("%s %.2f\\n", names[e], best);
    }}
    return 0;
}}
"""


def loop_instructions(binary: Path) -> dict[str, int]:
    """Instructions in each scan function's main loop: the longest backward-jump span in its
    disassembly (the unrolled loop body is one straight block), counted once."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(binary)], capture_output=True, text=True,
                         check=True).stdout
    counts: dict[str, int] = {}
    for name in ("scan_shani", "scan_avx2", "scan_hybrid"):
        m = re.search(rf"<{name}[^>]*>:\n(.*?)\n\n", out, re.S)
        if not m:
            continue
        lines = [ln for ln in m.group(1).splitlines() if re.match(r"\s+[0-9a-f]+:", ln)]
        addrs = [int(ln.split(":")[0], 16) for ln in lines]
        best = 0
        for idx, ln in enumerate(lines):
            j = re.search(r"\sj\w+\s+([0-9a-f]+)\s", ln + " ")
            if j:
                dest = int(j.group(1), 16)
                if dest < addrs[idx] and dest in addrs:
                    best = max(best, idx - addrs.index(dest) + 1)
        counts[name] = best
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--nonces", type=int, default=1 << 22)
    parser.add_argument("--streams", type=int, default=3, help="SHA-NI streams in both engines (default 3, "
                        "as native/sha256d.c)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "hybrid.c"
        binary = Path(tmp) / "hybrid"
        src.write_text(program())
        subprocess.run(["cc", "-O3", "-Wall", f"-DSHANI_STREAMS={args.streams}", "-I", str(NATIVE), str(src),
                        "-o", str(binary)], check=True)
        result = subprocess.run([str(binary), str(args.nonces), str(args.runs)], capture_output=True, text=True)
        if result.returncode:
            print(result.stdout, result.stderr)
            return 1
        lines = result.stdout.splitlines()
        ticks = {ln.split()[0]: float(ln.split()[1]) for ln in lines[1:]}
        instructions = loop_instructions(binary)
    per_pass = {"sha-ni": args.streams, "avx2": 8, "hybrid": args.streams + 8}  # nonces per loop pass
    print(f"command: python benchmarks/bench_shani_avx2.py --runs {args.runs} --nonces {args.nonces} "
          f"--streams {args.streams}")
    print(lines[0])
    print(f"{'engine':<8} {'ticks/nonce (best)':>18} {'instr/nonce':>12} {'instr/tick':>11} {'vs sha-ni':>10}")
    sequential = (per_pass["sha-ni"] * ticks["sha-ni"] + 8 * ticks["avx2"]) / per_pass["hybrid"]
    for name, fn in (("sha-ni", "scan_shani"), ("avx2", "scan_avx2"), ("hybrid", "scan_hybrid")):
        ipn = instructions.get(fn, 0) / per_pass[name]
        print(f"{name:<8} {ticks[name]:>18.2f} {ipn:>12.1f} {ipn / ticks[name]:>11.2f} "
              f"{ticks['sha-ni'] / ticks[name]:>10.3f}")
    print(f"{'(the two engines one after the other would give':<48} {sequential:.2f} ticks/nonce)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
