"""cffi builder for the sha256d core; setup.py names it in cffi_modules."""

import sys

from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef(
    """
    enum { SHA256D_PORTABLE, SHA256D_AVX2, SHA256D_AVX512, SHA256D_SHANI, SHA256D_NEON, SHA256D_ARMV8_SHA2 };
    void sha256d_hash(const uint8_t *data, size_t len, uint8_t out[32]);
    void sha256d_midstate(const uint8_t header[64], uint8_t out[32]);
    void sha256_blocks(uint8_t state[32], const uint8_t *data, size_t nblocks);
    int sha256d_engine_available(int engine);
    uint32_t sha256d_scan(int engine, const uint8_t header[80], uint32_t start, uint64_t count,
                          const uint8_t target[32], uint32_t *found, uint32_t cap,
                          uint64_t *scanned);
    uint32_t sha256d_scan_midstate(int engine, const uint8_t midstate[32], const uint8_t tail[12],
                                   int nonce_be, uint32_t start, uint64_t count, const uint8_t target[32],
                                   uint32_t *found, uint32_t cap, uint64_t *scanned);
    """
)
# -O3 matters: the scan loops are fully unrolled straight-line code.
ffibuilder.set_source(
    "miner._sha256d",
    '#include "sha256d.h"',
    sources=["native/sha256d.c"],
    include_dirs=["native"],
    extra_compile_args=[] if sys.platform == "win32" else ["-O3", "-Wall"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
