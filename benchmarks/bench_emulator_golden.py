"""How soon each emulator answers a host's golden packet (issue 16, fault 4): the time from writing
bfgminer's golden work (driver-icarus.c icarus_detect_custom) to the last byte of the reply, over a
real pty, for the Icarus-family emulators and the BM1384 (Compac) one. A real stick answers in well
under a millisecond (the golden nonce is 100 258 hashes in); hosts give it 100 ms (bfgminer) to
300 ms (cgminer). Bar: 20 ms at the median on a loaded machine. Baseline: hashing a whole 2^18-nonce
chunk first, as the emulators did before adaptive scanning (measured here with the same engine).

    python benchmarks/bench_emulator_golden.py [--tries N]

Prints a table (operation, figure, ratio to the baseline) and the command that made it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import serial  # noqa: E402
from miner.drivers.bm13xx.emulator import Bm13xxEmulator  # noqa: E402
from miner.drivers.icarus import protocol as p  # noqa: E402
from miner.drivers.icarus.emulator import IcarusEmulator  # noqa: E402

from miner.core import hashing  # noqa: E402

BAR_MS = 20.0


def golden_latency(emulator, reply_size: int, tries: int) -> list[float]:
    times = []
    with emulator, serial.Serial(emulator.device_path, 115200, timeout=2) as port:
        for _ in range(tries):
            port.reset_input_buffer()
            start = time.perf_counter()
            port.write(p.GOLDEN_WORK)
            reply = port.read(reply_size)
            took = time.perf_counter() - start
            if reply[:4] == p.GOLDEN_REPLY:
                times.append(took * 1000)
            time.sleep(0.2)
    return times


def whole_chunk_ms(tries: int) -> float:
    packet = p.WorkPacket.decode(p.GOLDEN_WORK)
    engine = hashing.best_engine()
    times = []
    for _ in range(tries):
        start = time.perf_counter()
        hashing.scan_midstate(packet.midstate, packet.tail, 0, 1 << 18, p.nonce_target(1), engine, nonce_be=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=10)
    args = parser.parse_args()
    baseline = whole_chunk_ms(args.tries)
    rows = [("U1 (icarus emulator)", IcarusEmulator("u1"), 5), ("U3 at power-on", IcarusEmulator("u3"), 5),
            ("Block Erupter", IcarusEmulator("erupter"), 4),
            ("Compac BM1384", Bm13xxEmulator("bm1384", rate=11.7e9), 5)]
    print(f"{'operation':<34} {'median ms':>10} {'max ms':>8} {'ratio to baseline':>18}")
    print(f"{'baseline: hash a 2^18 chunk first':<34} {baseline:10.1f} {'':>8} {1.0:18.2f}")
    for name, emulator, size in rows:
        times = golden_latency(emulator, size, args.tries)
        if not times:
            print(f"{name:<34} {'no answer':>10}")
            continue
        median = statistics.median(times)
        print(f"{'golden answer, ' + name:<34} {median:10.1f} {max(times):8.1f} {median / baseline:18.2f}")
    print(f"\nbar: {BAR_MS:g} ms at the median; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("command: python benchmarks/bench_emulator_golden.py " + " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
