"""The public face of the native sha256d core (native/sha256d.c, built by cffi).

Every hash the miner computes goes through here: share checks, the CPU device, the emulators.
cffi releases the GIL for the duration of each C call, so scans in several threads run in
parallel.
"""

from __future__ import annotations

import threading
import time

from miner._sha256d import ffi, lib
from miner.core.targets import MAX_TARGET, NONCE_SPACE

# Every engine the core knows. Which is fastest depends on the CPU (SHA-NI beats AVX2 on Zen 3,
# AVX-512 beats both on Zen 4), so the order engines() gives is measured, not this one. On x86 the
# ARM engines are never available, on aarch64 the x86 ones.
_ENGINE_IDS: dict[str, int] = {
    "avx512": lib.SHA256D_AVX512,
    "sha-ni": lib.SHA256D_SHANI,
    "avx2": lib.SHA256D_AVX2,
    "armv8-sha2": lib.SHA256D_ARMV8_SHA2,  # aarch64 with the SHA-2 instructions (Cortex-A76, Pi 5)
    "neon": lib.SHA256D_NEON,  # any aarch64 (Cortex-A72, Pi 4)
    "portable": lib.SHA256D_PORTABLE,
}

# Result buffer per C call; a scan that finds more simply resumes where the C side stopped.
_FOUND_CAP = 256

# Calibration: each engine gets _CALIBRATION_ROUNDS short timed scans of about _ROUND_SECONDS,
# round-robin, and keeps its best. Best-of-rounds is what makes ~50 ms enough on a busy machine:
# a round that another process preempted is slow, never fast, so the maximum is the honest rate.
_CALIBRATION_ROUNDS = 3
_ROUND_SECONDS = 0.004
_rates: dict[str, float] | None = None  # MH/s per available engine, fastest first, once measured
_calibration_lock = threading.Lock()


def _available(engine_id: int) -> bool:
    return bool(lib.sha256d_engine_available(engine_id))


def _measure_mhs(engine: str, nonces: int) -> float:
    """MH/s of one scan of `nonces` nonces (a target that never matches, so nothing is rechecked).

    Timed in this thread's CPU time, not wall time: on a loaded machine a wall-clock round is
    mostly other processes' time slices, and with rounds of a few ms the engines' order then comes
    out at random (seen on the shared 2-core Zen 3 box: avx2, even portable, ahead of a 3x faster
    sha-ni). Preemption does not count against CPU time.
    """
    header = bytes(range(80))
    t0 = time.thread_time()
    scan(header, 0, nonces, 1, engine)
    return nonces / max(time.thread_time() - t0, 1e-9) / 1e6


def _calibrate() -> dict[str, float]:
    names = [name for name, engine_id in _ENGINE_IDS.items() if _available(engine_id)]
    # A first small scan per engine sizes its rounds (and warms caches and clocks).
    sizes = {name: max(1024, int(_measure_mhs(name, 4096) * 1e6 * _ROUND_SECONDS)) for name in names}
    best = dict.fromkeys(names, 0.0)
    for _ in range(_CALIBRATION_ROUNDS):
        for name in names:
            best[name] = max(best[name], _measure_mhs(name, sizes[name]))
    return dict(sorted(best.items(), key=lambda item: -item[1]))


def engine_rates() -> dict[str, float]:
    """MH/s per engine this CPU can run (one thread), fastest first, as measured on first use.

    The calibration takes about 50 ms and runs once per process; later calls return its result.
    """
    global _rates
    with _calibration_lock:
        if _rates is None:
            _rates = _calibrate()
        rates = _rates
    return {name: mhs for name, mhs in rates.items() if _available(_ENGINE_IDS[name])}


def engines() -> list[str]:
    """Engines this CPU can run, fastest first as measured on this machine; "portable" is always there."""
    return list(engine_rates())


def all_engines() -> list[str]:
    """Every engine the core knows, whether or not this CPU can run it."""
    return list(_ENGINE_IDS)


def best_engine() -> str:
    return engines()[0]


def sha256d(data: bytes) -> bytes:
    """sha256(sha256(data)), digest byte order (a block hash is this, reversed for display)."""
    out = ffi.new("uint8_t[32]")
    lib.sha256d_hash(ffi.from_buffer(data), len(data), out)
    return bytes(out)


def midstate(header: bytes) -> bytes:
    """SHA-256 state after the first 64 bytes of header: words S0..S7, each big-endian."""
    if len(header) < 64:
        raise ValueError(f"header: need at least 64 bytes for a midstate, got {len(header)}")
    out = ffi.new("uint8_t[32]")
    lib.sha256d_midstate(ffi.from_buffer(header), out)
    return bytes(out)


SHA256_IV = bytes.fromhex("6a09e667bb67ae853c6ef372a54ff53a510e527f9b05688c1f83d9ab5be0cd19")


def sha256_state_after(data: bytes, state: bytes = SHA256_IV) -> bytes:
    """SHA-256 continued from `state` (8 words, big-endian, as `midstate()` gives them) over
    whole 64-byte blocks of `data`, unpadded: the state a device is handed to carry on from."""
    if len(state) != 32:
        raise ValueError(f"state: must be 32 bytes, got {len(state)}")
    if len(data) % 64:
        raise ValueError(f"data: {len(data)} bytes is not a whole number of 64-byte blocks")
    out = ffi.new("uint8_t[32]", state)
    if data:
        lib.sha256_blocks(out, ffi.from_buffer(data), len(data) // 64)
    return bytes(out)


def check_engine(engine: str | None) -> str:
    """The engine to use: the named one if this CPU has it, the fastest one for None."""
    if engine is None:
        return best_engine()
    if engine not in _ENGINE_IDS:
        raise ValueError(f"engine: unknown engine {engine!r}; known: {', '.join(_ENGINE_IDS)}")
    if not _available(_ENGINE_IDS[engine]):
        raise ValueError(
            f"engine: this CPU cannot run {engine!r}; it can run: {', '.join(engines())}"
        )
    return engine


def scan(header: bytes, start: int, count: int, target: int, engine: str | None = None) -> list[int]:
    """Every nonce in [start, start+count) whose sha256d, read little-endian, is <= target.

    The header's own nonce bytes (76..79) are ignored. Nonces come back in increasing order.
    """
    if len(header) != 80:
        raise ValueError(f"header: must be 80 bytes, got {len(header)}")
    header_buf = ffi.from_buffer(header)
    return _scan(lambda e, s, c, t, f, cap, done: lib.sha256d_scan(e, header_buf, s, c, t, f, cap, done),
                 start, count, target, engine)


def scan_midstate(midstate_bytes: bytes, tail: bytes, start: int, count: int, target: int,
                  engine: str | None = None, nonce_be: bool = False) -> list[int]:
    """The scan as a hashing chip does it, from the midstate (`midstate()`'s layout) and header
    bytes 64..75 alone. With `nonce_be` (what USB sticks do) the counter, and every value returned,
    is the big-endian reading of header bytes 76..79; otherwise the header's own nonce as in scan().
    """
    if len(midstate_bytes) != 32 or len(tail) != 12:
        raise ValueError(f"midstate/tail: need 32 and 12 bytes, got {len(midstate_bytes)} and {len(tail)}")
    ms_buf, tail_buf = ffi.from_buffer(midstate_bytes), ffi.from_buffer(tail)
    flag = 1 if nonce_be else 0
    return _scan(lambda e, s, c, t, f, cap, done: lib.sha256d_scan_midstate(e, ms_buf, tail_buf, flag, s, c, t, f,
                                                                             cap, done),
                 start, count, target, engine)


def _scan(call, start: int, count: int, target: int, engine: str | None) -> list[int]:
    if not 0 <= start < NONCE_SPACE:
        raise ValueError(f"start: must be a 32-bit nonce, got {start}")
    if count < 0 or start + count > NONCE_SPACE:
        raise ValueError(f"count: the range {start}+{count} runs past the nonce space (2**32)")
    if target <= 0:
        raise ValueError(f"target: must be positive, got {target}")
    if target > MAX_TARGET:
        raise ValueError("target: must fit in 256 bits")
    engine_id = _ENGINE_IDS[check_engine(engine)]
    if count == 0:
        return []

    target_buf = ffi.from_buffer(target.to_bytes(32, "little"))
    found = ffi.new("uint32_t[]", _FOUND_CAP)
    scanned = ffi.new("uint64_t *")
    result: list[int] = []
    while count > 0:
        n = call(engine_id, start, count, target_buf, found, _FOUND_CAP, scanned)
        result.extend(found[0:n])
        done = scanned[0]
        if done == 0:  # only if the C side refused the call; the checks above make that a bug
            raise RuntimeError("sha256d_scan refused its arguments")
        start += done
        count -= done
    return result
